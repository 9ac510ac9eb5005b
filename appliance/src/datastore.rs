//! The datastore the CLI and the daemon use: the embedded directory (the
//! default) or an etcd v3 cluster, behind one async interface.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use starling_store::{Change, Embedded, StoreError};
use starling_store_etcd::Etcd;
use tokio::sync::mpsc;

/// The default embedded datastore directory.
pub(crate) const DEFAULT_PATH: &str = "/var/lib/starling/store";

/// Where the resources live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Embedded(PathBuf),
    /// `http://host:port` client URLs.
    Etcd(Vec<String>),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Embedded(path) => write!(f, "embedded datastore {}", path.display()),
            Location::Etcd(endpoints) => write!(f, "etcd {}", endpoints.join(",")),
        }
    }
}

/// The calicoctl-style names of the backends (`DATASTORE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    Embedded,
    Etcdv3,
}

impl Location {
    /// From the CLI's flags (or their `DATASTORE_TYPE`, `ETCD_ENDPOINTS`,
    /// `STARLING_DATASTORE` variables).
    pub(crate) fn from_flags(
        kind: Kind,
        path: &std::path::Path,
        endpoints: Option<&str>,
    ) -> anyhow::Result<Self> {
        match kind {
            Kind::Embedded => Ok(Location::Embedded(path.to_owned())),
            Kind::Etcdv3 => {
                let endpoints = endpoints
                    .map(split_endpoints)
                    .filter(|e| !e.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--datastore-type etcdv3 needs --etcd-endpoints (or ETCD_ENDPOINTS)"
                        )
                    })?;
                check_endpoints(&endpoints)?;
                Ok(Location::Etcd(endpoints))
            }
        }
    }
}

pub(crate) fn split_endpoints(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Plain `http://host:port` only: this build has no TLS.
pub(crate) fn check_endpoints(endpoints: &[String]) -> anyhow::Result<()> {
    for e in endpoints {
        let Some(rest) = e.strip_prefix("http://") else {
            anyhow::bail!("etcd endpoint '{e}': expected http://host:port (this build has no TLS)");
        };
        if rest.is_empty() || rest.contains('/') {
            anyhow::bail!("etcd endpoint '{e}': expected http://host:port");
        }
    }
    Ok(())
}

/// An open datastore. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) enum Datastore {
    Embedded(Embedded),
    /// Boxed: the client is large, the embedded handle a path.
    Etcd(Box<Etcd>),
}

/// How often the embedded store's journal is checked for changes.
const EMBEDDED_POLL: Duration = Duration::from_millis(200);

impl Datastore {
    pub(crate) async fn open(location: &Location) -> Result<Self, StoreError> {
        match location {
            Location::Embedded(path) => Embedded::open(path).map(Datastore::Embedded),
            Location::Etcd(endpoints) => Etcd::connect(endpoints, Duration::from_secs(5))
                .await
                .map(|e| Datastore::Etcd(Box::new(e))),
        }
    }

    pub(crate) async fn revision(&self) -> Result<u64, StoreError> {
        match self {
            Datastore::Embedded(s) => s.revision(),
            Datastore::Etcd(s) => s.revision().await,
        }
    }

    pub(crate) async fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, StoreError> {
        match self {
            Datastore::Embedded(s) => s.get(kind, name),
            Datastore::Etcd(s) => s.get(kind, name).await,
        }
    }

    pub(crate) async fn list(&self, kind: &str) -> Result<Vec<Value>, StoreError> {
        match self {
            Datastore::Embedded(s) => s.list(kind),
            Datastore::Etcd(s) => s.list(kind).await,
        }
    }

    pub(crate) async fn everything(&self) -> Result<Vec<Value>, StoreError> {
        match self {
            Datastore::Embedded(s) => s.everything(),
            Datastore::Etcd(s) => s.everything().await,
        }
    }

    /// Every readable resource, and a problem for each stored one that
    /// cannot be read.
    pub(crate) async fn snapshot(
        &self,
    ) -> Result<(Vec<Value>, Vec<starling_store::Problem>), StoreError> {
        match self {
            Datastore::Embedded(s) => s.snapshot(),
            Datastore::Etcd(s) => s.snapshot().await,
        }
    }

    pub(crate) async fn create(&self, doc: Value) -> Result<Value, StoreError> {
        match self {
            Datastore::Embedded(s) => s.create(doc),
            Datastore::Etcd(s) => s.create(doc).await,
        }
    }

    pub(crate) async fn update(&self, doc: Value) -> Result<Value, StoreError> {
        match self {
            Datastore::Embedded(s) => s.update(doc),
            Datastore::Etcd(s) => s.update(doc).await,
        }
    }

    pub(crate) async fn delete(
        &self,
        kind: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, StoreError> {
        match self {
            Datastore::Embedded(s) => s.delete(kind, name, resource_version),
            Datastore::Etcd(s) => s.delete(kind, name, resource_version).await,
        }
    }

    /// Every change after `revision`, until the receiver is dropped.
    pub(crate) fn watch(&self, revision: u64) -> mpsc::Receiver<Change> {
        match self {
            Datastore::Etcd(s) => s.watch(revision),
            Datastore::Embedded(s) => {
                // The journal is the embedded store's history; several
                // processes write it, so it is read, not notified.
                let (tx, rx) = mpsc::channel(64);
                tokio::spawn(follow_journal(s.clone(), revision, tx));
                rx
            }
        }
    }
}

/// The embedded store's watch: poll the journal's revision, send what
/// came after `seen`. Its revisions count up by one per change and the
/// file only grows, so a gap, a step back or a shorter file (a journal
/// truncated or damaged by hand or by a disk that failed; writers then
/// hand out revisions again) means changes were lost from it: then
/// everything is re-read ([`Change::Resync`]). An unreadable journal is
/// said once ([`Change::Lost`]) and its return once ([`Change::Restored`]).
async fn follow_journal(store: Embedded, mut seen: u64, tx: mpsc::Sender<Change>) {
    let mut lost = false;
    let mut length = store.journal_len().unwrap_or_default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(EMBEDDED_POLL) => {}
            () = tx.closed() => return,
        }
        // The length first: a write between the two reads makes the
        // length look older, never newer, than the revision.
        let read = store.journal_len().and_then(|len| {
            let now = store.revision()?;
            let events = match now == seen {
                true => Vec::new(),
                false => store.events_since(seen)?,
            };
            Ok((len, now, events))
        });
        let change = match read {
            Err(e) => {
                if !std::mem::replace(&mut lost, true) {
                    tracing::warn!("datastore watch: {e}");
                    let reason = e.to_string();
                    if tx.send(Change::Lost { reason }).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Ok(read) => {
                if std::mem::take(&mut lost) && tx.send(Change::Restored).await.is_err() {
                    return;
                }
                read
            }
        };
        let (len, now, events) = change;
        let shrunk = len < length;
        length = len;
        let contiguous = !shrunk
            && events
                .iter()
                .zip(seen + 1..)
                .all(|(e, want)| e.revision == want);
        let change = match (now.cmp(&seen), contiguous) {
            (std::cmp::Ordering::Equal, true) => continue,
            (std::cmp::Ordering::Greater, true) if !events.is_empty() => {
                seen = events.last().map_or(now, |e| e.revision);
                Change::Events(events)
            }
            _ => {
                tracing::warn!(
                    seen,
                    now,
                    "the datastore journal lost changes (truncated or damaged): re-reading everything"
                );
                seen = now;
                Change::Resync { revision: now }
            }
        };
        if tx.send(change).await.is_err() {
            return;
        }
    }
}
