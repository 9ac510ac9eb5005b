//! The embedded datastore on a real directory.

use serde_json::{Value, json};
use starling_store::{Embedded, EventKind, StoreError};

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("starling-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The failure may point at a log in here: keep it.
            eprintln!("kept {} (the test failed)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn peer(name: &str, asn: u32) -> Value {
    json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "BGPPeer",
        "metadata": {"name": name, "labels": {"team": "net"}},
        "spec": {"peerIP": "192.0.2.1", "asNumber": asn},
    })
}

#[test]
fn create_get_update_delete_with_versions() {
    let dir = Dir::new("crud");
    let store = Embedded::open(&dir.0).expect("open");
    let created = store.create(peer("p", 65000)).expect("create");
    assert_eq!(created["metadata"]["resourceVersion"], "1");
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert_eq!(
        store.create(peer("p", 65000)).expect_err("exists"),
        StoreError::AlreadyExists {
            kind: "BGPPeer".into(),
            name: "p".into()
        }
    );

    // Update without a version: latest wins; metadata merged, labels from
    // the new document.
    let mut doc = peer("p", 65001);
    doc["metadata"]["labels"] = json!({"team": "edge"});
    let updated = store.update(doc).expect("update");
    assert_eq!(updated["metadata"]["resourceVersion"], "2");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(updated["metadata"]["labels"], json!({"team": "edge"}));
    assert_eq!(
        store.get("BGPPeer", "p").expect("get").expect("some")["spec"]["asNumber"],
        65001
    );

    // A stale version is refused and changes nothing.
    let mut stale = peer("p", 65002);
    stale["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(
        store.update(stale).expect_err("stale"),
        StoreError::Conflict {
            given: "1".into(),
            latest: "2".into()
        }
    );
    assert_eq!(
        store.get("BGPPeer", "p").expect("get").expect("some")["spec"]["asNumber"],
        65001
    );

    assert!(matches!(
        store.update(peer("q", 1)),
        Err(StoreError::NotFound { .. })
    ));
    store.delete("BGPPeer", "p", None).expect("delete");
    assert_eq!(store.get("BGPPeer", "p").expect("get"), None);
    assert!(matches!(
        store.delete("BGPPeer", "p", None),
        Err(StoreError::NotFound { .. })
    ));

    let events: Vec<(u64, EventKind)> = store
        .events_since(0)
        .expect("events")
        .into_iter()
        .map(|e| (e.revision, e.event))
        .collect();
    assert_eq!(
        events,
        [
            (1, EventKind::Added),
            (2, EventKind::Modified),
            (3, EventKind::Deleted)
        ]
    );
    assert_eq!(store.events_since(2).expect("events").len(), 1);
}

#[test]
fn a_second_handle_sees_changes_and_versions_stay_ordered() {
    let dir = Dir::new("shared");
    let a = Embedded::open(&dir.0).expect("open a");
    let b = Embedded::open(&dir.0).expect("open b");
    let since = b.revision().expect("rev");
    a.create(peer("p1", 1)).expect("create");
    let seen = b.events_since(since).expect("events");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name, "p1");
    // Writers from both handles, interleaved from threads, never reuse a
    // revision.
    std::thread::scope(|s| {
        for (h, prefix) in [(&a, "a"), (&b, "b")] {
            s.spawn(move || {
                for i in 0..20 {
                    h.create(peer(&format!("{prefix}{i}"), i)).expect("create");
                }
            });
        }
    });
    let revisions: Vec<u64> = a
        .events_since(0)
        .expect("events")
        .iter()
        .map(|e| e.revision)
        .collect();
    assert_eq!(revisions, (1..=41).collect::<Vec<_>>());
    assert_eq!(b.list("BGPPeer").expect("list").len(), 41);
}

#[test]
fn a_write_the_journal_missed_is_recovered_on_open() {
    let dir = Dir::new("recover");
    let store = Embedded::open(&dir.0).expect("open");
    store.create(peer("p", 1)).expect("create");
    // Simulate a crash after the rename but before the journal append: a
    // resource newer than the journal.
    let path = dir.0.join("resources/bgppeers/p.json");
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    doc["metadata"]["resourceVersion"] = json!("2");
    doc["spec"]["asNumber"] = json!(2);
    std::fs::write(&path, serde_json::to_vec(&doc).expect("json")).expect("write");
    // And a torn journal line.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.0.join("journal"))
        .expect("journal")
        .write_all(b"{\"revision\": 9")
        .expect("tear");
    let reopened = Embedded::open(&dir.0).expect("reopen");
    let events = reopened.events_since(1).expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].revision, events[0].event),
        (2, EventKind::Modified)
    );
    // Writes continue from there.
    assert_eq!(
        reopened.create(peer("q", 3)).expect("create")["metadata"]["resourceVersion"],
        "3"
    );
}
