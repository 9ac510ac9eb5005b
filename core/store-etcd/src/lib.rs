//! The etcd v3 backend, in Calico's key layout, so a Starling cluster and
//! a Calico cluster can read the same keys:
//!
//! ```text
//! /calico/resources/v3/projectcalico.org/<plural>/<name>  →  the resource as JSON
//! ```
//!
//! As in Calico, the stored JSON carries no `resourceVersion`: it is the
//! key's `mod_revision`, filled in on every read. Every conditional write
//! is one etcd transaction comparing revisions, so two writers racing on a
//! resource never both win.
//!
//! [`Etcd::watch`] follows the prefix from a revision and survives server
//! restarts: it reconnects with backoff and resumes after the last revision
//! it delivered, so a change is reported once, never lost; when etcd has
//! compacted that history away it says [`Change::Resync`].

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use serde_json::{Value, json};
use starling_store::kinds::{self, plural};
use starling_store::meta::{self, identity};
use starling_store::{Change, Event, EventKind, Problem, StoreError};
use tokio::sync::mpsc;

/// Calico's prefix for v3 resources.
pub const PREFIX: &str = "/calico/resources/v3/projectcalico.org/";

/// A connection to an etcd v3 cluster. Cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    endpoints: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The key of a resource.
pub fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{}/{name}", plural(kind))
}

impl Etcd {
    /// Connect to `endpoints` (`http://host:port`). Fails when none
    /// answers within `timeout`.
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Self, StoreError> {
        let joined = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(10), timeout);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Io(format!("etcd {joined}: {e}")))?;
        let etcd = Etcd {
            client,
            endpoints: joined,
        };
        // connect() is lazy about the cluster; ask once so a wrong address
        // fails here, with the address in the message.
        etcd.revision().await?;
        Ok(etcd)
    }

    fn error(&self, e: etcd_client::Error) -> StoreError {
        StoreError::Io(format!("etcd {}: {e}", self.endpoints))
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse, StoreError> {
        self.client
            .kv_client()
            .txn(txn)
            .await
            .map_err(|e| self.error(e))
    }

    /// The cluster's current revision.
    pub async fn revision(&self) -> Result<u64, StoreError> {
        let response = self
            .client
            .kv_client()
            .get(
                PREFIX,
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(response.header().map_or(0, |h| h.revision()) as u64)
    }

    /// One resource, or `None`.
    pub async fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, StoreError> {
        let response = self
            .client
            .kv_client()
            .get(key(kind, name), None)
            .await
            .map_err(|e| self.error(e))?;
        response.kvs().first().map(decode).transpose()
    }

    /// Every resource of `kind`, sorted by name.
    pub async fn list(&self, kind: &str) -> Result<Vec<Value>, StoreError> {
        self.range(&format!("{PREFIX}{}/", plural(kind))).await
    }

    /// Every resource of every kind, sorted by kind and name.
    pub async fn everything(&self) -> Result<Vec<Value>, StoreError> {
        let mut docs = self.range(PREFIX).await?;
        docs.sort_by_key(identity);
        Ok(docs)
    }

    /// Every resource that can be read, sorted by kind and name, and a
    /// problem for each key whose value cannot (not JSON: another writer's,
    /// or damaged): a reader that must go on, like the daemon, goes on
    /// without them.
    pub async fn snapshot(&self) -> Result<(Vec<Value>, Vec<Problem>), StoreError> {
        let response = self
            .client
            .kv_client()
            .get(PREFIX, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.error(e))?;
        let mut docs = Vec::new();
        let mut unreadable = Vec::new();
        for kv in response.kvs() {
            match decode(kv) {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    let key = String::from_utf8_lossy(kv.key());
                    let rest = key.strip_prefix(PREFIX).unwrap_or(&key);
                    let (plural, name) = rest.split_once('/').unwrap_or((rest, ""));
                    unreadable.push(Problem {
                        kind: kinds::resolve(plural),
                        name: name.to_owned(),
                        field: String::new(),
                        reason: format!("cannot be read: {e}"),
                    });
                }
            }
        }
        docs.sort_by_key(identity);
        Ok((docs, unreadable))
    }

    async fn range(&self, prefix: &str) -> Result<Vec<Value>, StoreError> {
        let response = self
            .client
            .kv_client()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.error(e))?;
        // etcd returns keys in byte order, which is name order within a kind.
        response.kvs().iter().map(decode).collect()
    }

    /// Create; fails if it exists.
    pub async fn create(&self, mut doc: Value) -> Result<Value, StoreError> {
        let (kind, name) = identity(&doc);
        let key = key(&kind, &name);
        meta::stamp(&mut doc, None, clock_seed())?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), encode(&doc)?, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists { kind, name });
        }
        let revision = response.header().map_or(0, |h| h.revision());
        doc["metadata"]["resourceVersion"] = json!(revision.to_string());
        Ok(doc)
    }

    /// Replace; fails if it does not exist, or if the document carries a
    /// `resourceVersion` that is not the stored one.
    pub async fn update(&self, doc: Value) -> Result<Value, StoreError> {
        let (kind, name) = identity(&doc);
        let key = key(&kind, &name);
        // Without a resourceVersion the write is unconditional, but the
        // metadata it keeps must come from the version it replaces: retry
        // when another writer slips in between the read and the write.
        loop {
            let Some(stored) = self.get(&kind, &name).await? else {
                return Err(StoreError::NotFound { kind, name });
            };
            meta::check_version(&doc, &stored)?;
            let stored_revision: i64 = meta::resource_version(&stored).parse().unwrap_or(0);
            let mut doc = doc.clone();
            meta::stamp(&mut doc, Some(&stored), clock_seed())?;
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    stored_revision,
                )])
                .and_then([TxnOp::put(key.as_str(), encode(&doc)?, None)]);
            let response = self.txn(txn).await?;
            if response.succeeded() {
                let revision = response.header().map_or(0, |h| h.revision());
                doc["metadata"]["resourceVersion"] = json!(revision.to_string());
                return Ok(doc);
            }
            if !meta::resource_version(&doc).is_empty() {
                // The caller's version was current a moment ago and no
                // longer is: that is a conflict, not something to retry.
                let latest = self
                    .get(&kind, &name)
                    .await?
                    .map(|d| meta::resource_version(&d).to_owned())
                    .unwrap_or_default();
                return Err(StoreError::Conflict {
                    given: meta::resource_version(&doc).to_owned(),
                    latest,
                });
            }
        }
    }

    /// Delete; returns what was stored. A `resource_version`, when given,
    /// must match.
    pub async fn delete(
        &self,
        kind: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, StoreError> {
        let key = key(kind, name);
        loop {
            let Some(stored) = self.get(kind, name).await? else {
                return Err(StoreError::NotFound {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                });
            };
            meta::check_given(resource_version, &stored)?;
            let stored_revision: i64 = meta::resource_version(&stored).parse().unwrap_or(0);
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    stored_revision,
                )])
                .and_then([TxnOp::delete(key.as_str(), None)]);
            let response = self.txn(txn).await?;
            if response.succeeded()
                && response
                    .op_responses()
                    .iter()
                    .any(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted() > 0))
            {
                return Ok(stored);
            }
            // Changed (or deleted) under us: check again from the top.
        }
    }

    /// Follow every change after `revision` until the receiver is dropped.
    pub fn watch(&self, revision: u64) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(follow(self.clone(), revision, tx));
        rx
    }
}

/// The watch loop: (re)connect, stream, resume after the last delivered
/// revision. A lost connection is said once ([`Change::Lost`]), and its
/// end once the server answers again ([`Change::Restored`]).
async fn follow(etcd: Etcd, mut delivered: u64, tx: mpsc::Sender<Change>) {
    const BACKOFF_MIN: Duration = Duration::from_millis(100);
    const BACKOFF_MAX: Duration = Duration::from_secs(5);
    let mut backoff = BACKOFF_MIN;
    let mut lost = false;
    // Say the watch is lost, once per outage; false when the receiver is
    // gone.
    let lose = |lost: &mut bool, reason: String| {
        let first = !std::mem::replace(lost, true);
        let tx = tx.clone();
        async move { !first || tx.send(Change::Lost { reason }).await.is_ok() }
    };
    loop {
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(delivered as i64 + 1);
        let mut stream = match etcd.client.clone().watch(PREFIX, Some(options)).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(endpoints = etcd.endpoints, "etcd watch: {e}; retrying");
                if !lose(&mut lost, etcd.error(e).to_string()).await
                    || sleep_or_closed(&tx, backoff).await
                {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                () = tx.closed() => return,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => {
                    if !lose(
                        &mut lost,
                        format!("etcd {}: the watch ended", etcd.endpoints),
                    )
                    .await
                    {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(endpoints = etcd.endpoints, "etcd watch lost: {e}; resuming");
                    if !lose(&mut lost, etcd.error(e).to_string()).await {
                        return;
                    }
                    break;
                }
            };
            backoff = BACKOFF_MIN;
            if std::mem::take(&mut lost) {
                tracing::info!(endpoints = etcd.endpoints, "etcd watch resumed");
                if tx.send(Change::Restored).await.is_err() {
                    return;
                }
            }
            if response.canceled() {
                if response.compact_revision() > 0 {
                    // The history we would resume from is gone.
                    let Ok(revision) = etcd.revision().await else {
                        break;
                    };
                    delivered = revision;
                    if tx.send(Change::Resync { revision }).await.is_err() {
                        return;
                    }
                } else {
                    tracing::warn!(
                        "etcd watch cancelled: {}; resuming",
                        response.cancel_reason()
                    );
                }
                break;
            }
            let mut events = Vec::new();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let revision = kv.mod_revision() as u64;
                if revision <= delivered {
                    continue;
                }
                let kind = match event.event_type() {
                    EventType::Put if kv.create_revision() == kv.mod_revision() => EventKind::Added,
                    EventType::Put => EventKind::Modified,
                    EventType::Delete => EventKind::Deleted,
                };
                let source = if kind == EventKind::Deleted {
                    event.prev_kv()
                } else {
                    Some(kv)
                };
                let (resource_kind, name) = source
                    .and_then(|kv| decode(kv).ok())
                    .map(|doc| identity(&doc))
                    .unwrap_or_else(|| from_key(kv.key()));
                events.push(Event {
                    revision,
                    event: kind,
                    kind: resource_kind,
                    name,
                });
            }
            if let Some(last) = events.last() {
                delivered = last.revision;
                if tx.send(Change::Events(events)).await.is_err() {
                    return;
                }
            }
        }
        if sleep_or_closed(&tx, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Sleep; true when the receiver went away meanwhile.
async fn sleep_or_closed(tx: &mpsc::Sender<Change>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        () = tx.closed() => true,
    }
}

/// Kind (as its plural) and name from a key, for a deletion whose previous
/// value etcd no longer has.
fn from_key(key: &[u8]) -> (String, String) {
    let key = String::from_utf8_lossy(key);
    let rest = key.strip_prefix(PREFIX).unwrap_or(&key);
    let (plural, name) = rest.split_once('/').unwrap_or(("", rest));
    (plural.to_owned(), name.to_owned())
}

fn encode(doc: &Value) -> Result<Vec<u8>, StoreError> {
    let mut doc = doc.clone();
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&doc).map_err(|e| StoreError::Io(e.to_string()))
}

fn decode(kv: &KeyValue) -> Result<Value, StoreError> {
    let mut doc: Value = serde_json::from_slice(kv.value()).map_err(|e| {
        StoreError::Io(format!(
            "{}: corrupt resource: {e}",
            String::from_utf8_lossy(kv.key())
        ))
    })?;
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".to_owned(),
            json!(kv.mod_revision().to_string()),
        );
    }
    Ok(doc)
}

/// A uid seed for resources created here: etcd has no revision to give
/// before the write, and two creations must not share an id.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Support for tests here and in the appliance: a real etcd server.
pub mod test_server;
