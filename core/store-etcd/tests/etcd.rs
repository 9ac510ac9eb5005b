//! The etcd backend against a real etcd server.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use starling_store::{Change, Event, EventKind, StoreError};
use starling_store_etcd::Etcd;
use starling_store_etcd::test_server::EtcdServer;
use tokio::sync::mpsc;

fn dir(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("etcd-{test}-{}", std::process::id()))
}

async fn connect(server: &EtcdServer) -> Etcd {
    Etcd::connect(&[server.endpoint()], Duration::from_secs(5))
        .await
        .expect("connect to etcd")
}

fn peer(name: &str, asn: u32) -> Value {
    json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": {"peerIP": "192.0.2.1", "asNumber": asn},
    })
}

fn version(doc: &Value) -> String {
    doc["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned()
}

/// Events from `rx` until `n` have arrived, or panic at the deadline.
async fn next_events(rx: &mut mpsc::Receiver<Change>, n: usize) -> Vec<Event> {
    let (events, outages) = next_events_and_outages(rx, n).await;
    assert!(outages.is_empty(), "unexpected {outages:?}");
    events
}

/// [`next_events`], and the watch's word on the connection meanwhile
/// (`Lost`, `Restored`), in order.
async fn next_events_and_outages(
    rx: &mut mpsc::Receiver<Change>,
    n: usize,
) -> (Vec<Event>, Vec<Change>) {
    let mut events = Vec::new();
    let mut outages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Change::Events(batch))) => events.extend(batch),
            Ok(Some(change @ (Change::Lost { .. } | Change::Restored))) => outages.push(change),
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            Ok(None) => panic!("watch ended"),
            Err(_) => panic!(
                "only {} of {n} events within 20 s: {events:?}",
                events.len()
            ),
        }
    }
    (events, outages)
}

#[tokio::test]
async fn crud_in_calicos_key_layout_with_optimistic_concurrency() {
    let server = EtcdServer::start(&dir("crud"));
    let etcd = connect(&server).await;

    let created = etcd.create(peer("tor", 64567)).await.unwrap();
    let v1 = version(&created);
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert_eq!(
        etcd.create(peer("tor", 1)).await.unwrap_err(),
        StoreError::AlreadyExists {
            kind: "BGPPeer".into(),
            name: "tor".into()
        }
    );

    // Stored where calicoctl (etcdv3 mode) keeps it, without resourceVersion.
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let response = raw
        .get("/calico/resources/v3/projectcalico.org/bgppeers/tor", None)
        .await
        .unwrap();
    let stored: Value = serde_json::from_slice(response.kvs()[0].value()).unwrap();
    assert_eq!(stored["spec"]["asNumber"], 64567);
    assert!(stored["metadata"].get("resourceVersion").is_none());
    assert_eq!(v1, response.kvs()[0].mod_revision().to_string());

    let got = etcd.get("BGPPeer", "tor").await.unwrap().unwrap();
    assert_eq!(got, created);

    // Update with the current version; then the old version is stale.
    let mut change = got.clone();
    change["spec"]["asNumber"] = json!(64568);
    let updated = etcd.update(change.clone()).await.unwrap();
    assert_ne!(version(&updated), v1);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        etcd.update(change).await.unwrap_err(),
        StoreError::Conflict {
            given: v1.clone(),
            latest: version(&updated)
        }
    );
    // No version given: unconditional, metadata kept.
    let blind = etcd.update(peer("tor", 64569)).await.unwrap();
    assert_eq!(blind["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        etcd.update(peer("absent", 1)).await.unwrap_err(),
        StoreError::NotFound {
            kind: "BGPPeer".into(),
            name: "absent".into()
        }
    );

    etcd.create(peer("another", 65000)).await.unwrap();
    let names: Vec<_> = etcd
        .list("BGPPeer")
        .await
        .unwrap()
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["another", "tor"]);
    assert!(etcd.list("Node").await.unwrap().is_empty());

    assert!(matches!(
        etcd.delete("BGPPeer", "tor", Some(&v1)).await,
        Err(StoreError::Conflict { .. })
    ));
    let deleted = etcd
        .delete("BGPPeer", "tor", Some(&version(&blind)))
        .await
        .unwrap();
    assert_eq!(deleted["spec"]["asNumber"], 64569);
    assert_eq!(etcd.get("BGPPeer", "tor").await.unwrap(), None);
    assert!(matches!(
        etcd.delete("BGPPeer", "tor", None).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Another writer's value that is not JSON: `everything` refuses the
/// read, `snapshot` reads the rest and names it.
#[tokio::test]
async fn a_value_that_is_not_json_is_named_and_the_rest_read() {
    let server = EtcdServer::start(&dir("unreadable"));
    let etcd = connect(&server).await;
    etcd.create(peer("tor", 65000)).await.unwrap();
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    raw.put(
        "/calico/resources/v3/projectcalico.org/bgpconfigurations/default",
        "{\"spec\": ",
        None,
    )
    .await
    .unwrap();
    let error = etcd.everything().await.unwrap_err().to_string();
    assert!(
        error.contains("bgpconfigurations/default: corrupt resource"),
        "{error}"
    );
    let (docs, unreadable) = etcd.snapshot().await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["metadata"]["name"], "tor");
    assert_eq!(unreadable.len(), 1);
    assert_eq!(
        (unreadable[0].kind.as_str(), unreadable[0].name.as_str()),
        ("BGPConfiguration", "default")
    );
    assert!(
        unreadable[0].reason.starts_with("cannot be read: "),
        "{:?}",
        unreadable[0]
    );
}

#[tokio::test]
async fn watch_reports_every_change_in_order() {
    let server = EtcdServer::start(&dir("watch"));
    let etcd = connect(&server).await;
    let start = etcd.revision().await.unwrap();
    let mut rx = etcd.watch(start);

    let created = etcd.create(peer("a", 1)).await.unwrap();
    etcd.update(peer("a", 2)).await.unwrap();
    etcd.delete("BGPPeer", "a", None).await.unwrap();

    let events = next_events(&mut rx, 3).await;
    let kinds: Vec<_> = events.iter().map(|e| e.event).collect();
    assert_eq!(
        kinds,
        [EventKind::Added, EventKind::Modified, EventKind::Deleted]
    );
    assert!(events.iter().all(|e| e.kind == "BGPPeer" && e.name == "a"));
    assert_eq!(events[0].revision.to_string(), version(&created));
    assert!(events.windows(2).all(|w| w[0].revision < w[1].revision));

    // A second watcher from the old revision replays the same history.
    let mut replay = etcd.watch(start);
    assert_eq!(next_events(&mut replay, 3).await, events);
}

#[tokio::test]
async fn watch_resumes_after_the_server_restarts() {
    let mut server = EtcdServer::start(&dir("restart"));
    let etcd = connect(&server).await;
    let mut rx = etcd.watch(etcd.revision().await.unwrap());
    etcd.create(peer("before", 1)).await.unwrap();
    let before = next_events(&mut rx, 1).await;
    assert_eq!(before[0].name, "before");

    server.kill();
    server.restart();
    // The client reconnects by itself; the write may need a retry while the
    // connection comes back, as any etcd client would.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match etcd.create(peer("after", 2)).await {
            Ok(_) => break,
            Err(StoreError::Io(e)) if tokio::time::Instant::now() < deadline => {
                eprintln!("retrying after restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("etcd did not come back: {e}"),
        }
    }
    etcd.update(peer("before", 3)).await.unwrap();

    let (after, outages) = next_events_and_outages(&mut rx, 2).await;
    let seen: Vec<_> = after.iter().map(|e| (e.name.as_str(), e.event)).collect();
    assert_eq!(
        seen,
        [("after", EventKind::Added), ("before", EventKind::Modified)],
        "each change once, none lost, none repeated"
    );
    assert!(after[0].revision > before[0].revision);
    // The outage was said once, with the address, and its end once.
    assert!(
        matches!(&outages[..], [Change::Lost { reason }, Change::Restored] if reason.contains(&server.endpoint())),
        "{outages:?}"
    );
}

#[tokio::test]
async fn a_wrong_endpoint_fails_naming_it() {
    let error = Etcd::connect(&["http://127.0.0.1:9".to_owned()], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("http://127.0.0.1:9"), "{error}");
}

#[tokio::test]
async fn a_watch_from_compacted_history_asks_for_a_resync() {
    let server = EtcdServer::start(&dir("compact"));
    let etcd = connect(&server).await;
    let start = etcd.revision().await.unwrap();
    etcd.create(peer("a", 1)).await.unwrap();
    etcd.update(peer("a", 2)).await.unwrap();
    let now = etcd.revision().await.unwrap();
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    raw.compact(now as i64, None).await.unwrap();

    let mut rx = etcd.watch(start);
    let change = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an answer within 20 s");
    assert_eq!(change, Some(Change::Resync { revision: now }));
    // And it carries on from there.
    etcd.delete("BGPPeer", "a", None).await.unwrap();
    let events = next_events(&mut rx, 1).await;
    assert_eq!(events[0].event, EventKind::Deleted);
}
