//! CalicoNodeStatus: for each such resource naming this node, write its
//! `status` every `updatePeriodSeconds` (0: never), with the classes it
//! asks for (calico-model.md §1.6).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::datastore::Datastore;
use serde_json::{Value, json};
use starling_speaker::State;
use starling_speaker::instance::Instance;
use starling_speaker::rib::Source;
use starling_store::StoreError;

use crate::daemon::Shared;

/// When each CalicoNodeStatus was last written.
#[derive(Debug, Default)]
pub(crate) struct Reporter {
    written: BTreeMap<String, Instant>,
    started: Option<String>,
    /// Periods are whole seconds: looking for due statuses once a second
    /// is enough, not at every poll of the journal.
    checked: Option<Instant>,
}

impl Reporter {
    /// Write the statuses that are due.
    pub(crate) async fn tick(
        &mut self,
        store: &Datastore,
        node: &str,
        router_id: Option<std::net::Ipv4Addr>,
        shared: &std::sync::Arc<std::sync::Mutex<Shared>>,
    ) -> anyhow::Result<Tick> {
        if self
            .checked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Ok(Tick::Skipped);
        }
        self.checked = Some(Instant::now());
        let boot = self
            .started
            .get_or_insert_with(|| human_time(&starling_store::now_rfc3339()))
            .clone();
        let due: Vec<Value> = store
            .list(super::STATUS_KIND)
            .await?
            .into_iter()
            .filter(|d| d["spec"]["node"] == node)
            .filter(|d| {
                let period = d["spec"]["updatePeriodSeconds"].as_u64().unwrap_or(0);
                let name = d["metadata"]["name"].as_str().unwrap_or_default();
                period > 0
                    && self
                        .written
                        .get(name)
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(period))
            })
            .collect();
        if due.is_empty() {
            return Ok(Tick::Idle);
        }
        let (instance, sessions) = match shared.lock() {
            Ok(s) => (s.instance.clone(), s.sessions.clone()),
            Err(_) => return Ok(Tick::Skipped),
        };
        let mut tick = Tick::Written;
        for mut doc in due {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let classes: Vec<String> = doc["spec"]["classes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let status = status(instance.as_ref(), &sessions, &classes, router_id, &boot).await;
            doc["status"] = status;
            // Status is ours: a concurrent spec change wins and we retry
            // at the next period.
            match store.update(doc).await {
                Ok(_) => {
                    self.written.insert(name, Instant::now());
                }
                Err(e) => {
                    tracing::warn!(status = name, "CalicoNodeStatus not written: {e}");
                    // A spec changed under us is not the store's fault.
                    if !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound { .. }) {
                        tick = Tick::Failed(format!("writing CalicoNodeStatus '{name}': {e}"));
                    }
                }
            }
        }
        Ok(tick)
    }
}

/// What one [`Reporter::tick`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Not the time to look.
    Skipped,
    /// The store was read; nothing was due.
    Idle,
    Written,
    /// A write the store refused (a full disk, a lost etcd).
    Failed(String),
}

/// `2026-11-25T22:40:00Z` as BIRD prints times: `2026-11-25 22:40:00`.
fn human_time(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").trim_end_matches('Z').to_owned()
}

async fn status(
    instance: Option<&Instance>,
    sessions: &Sessions,
    classes: &[String],
    router_id: Option<std::net::Ipv4Addr>,
    boot: &str,
) -> Value {
    let now = starling_store::now_rfc3339();
    let mut status = json!({"lastUpdated": now});
    let wants = |class: &str| classes.iter().any(|c| c == class);
    if wants("Agent") {
        let agent = agent_status(instance.is_some(), router_id, boot);
        status["agent"] = json!({"birdV4": agent.clone(), "birdV6": agent});
    }
    if wants("BGP") {
        let peers = match instance {
            Some(i) => i.peers().await,
            None => Vec::new(),
        };
        status["bgp"] = bgp_status(sessions, &peers);
    }
    if wants("Routes")
        && let Some(i) = instance
    {
        status["routes"] = routes_status(sessions, i.paths().await);
    }
    status
}

/// Session name → (family, peer address).
type Sessions = BTreeMap<String, (starling_plugin_host::contract::Family, std::net::IpAddr)>;

fn agent_status(running: bool, router_id: Option<std::net::Ipv4Addr>, boot: &str) -> Value {
    match (running, router_id) {
        (true, Some(id)) => json!({
            "state": "Ready",
            "version": concat!("starling-", env!("CARGO_PKG_VERSION")),
            "routerID": id.to_string(),
            "lastBootTime": boot,
            "lastReconfigurationTime": boot,
        }),
        _ => json!({"state": "NotReady"}),
    }
}

fn bgp_status(sessions: &Sessions, peers: &[starling_speaker::driver::PeerStatus]) -> Value {
    let mut bgp = json!({
        "numberEstablishedV4": 0, "numberNotEstablishedV4": 0,
        "numberEstablishedV6": 0, "numberNotEstablishedV6": 0,
        "peersV4": [], "peersV6": [],
    });
    let clock = Instant::now();
    for (name, (family, address)) in sessions {
        let kind = match name.split('_').next() {
            Some("Mesh") => "NodeMesh",
            Some("Node") => "NodePeer",
            Some("Global") => "GlobalPeer",
            _ => continue,
        };
        let peer = peers.iter().find(|p| p.remote.ip() == *address);
        let state = peer.map_or(State::Idle, |p| p.state);
        let since = peer.map_or(0, |p| clock.saturating_duration_since(p.since).as_secs());
        let v = if *family == starling_plugin_host::contract::Family::Ipv4 {
            "V4"
        } else {
            "V6"
        };
        let counter = if state == State::Established {
            format!("numberEstablished{v}")
        } else {
            format!("numberNotEstablished{v}")
        };
        bgp[&counter] = json!(bgp[&counter].as_u64().unwrap_or(0) + 1);
        if let Some(list) = bgp[format!("peers{v}")].as_array_mut() {
            list.push(json!({
                "peerIP": address.to_string(),
                "type": kind,
                "state": state.name(),
                "since": since_text(since),
            }));
        }
    }
    bgp
}

fn routes_status(sessions: &Sessions, paths: Vec<starling_speaker::instance::RibPath>) -> Value {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for path in paths {
        let (prefix, route, source) = (path.prefix, path.route, path.source);
        let (gateway, learned) = match source {
            Source::Local => ("N/A".to_owned(), json!({"sourceType": "Static"})),
            Source::Peer(ip) => {
                let gw = match route.next_hop {
                    starling_wire::NextHop::V4(a) => a.to_string(),
                    starling_wire::NextHop::V6 { global, .. } => global.to_string(),
                };
                let mesh = sessions
                    .iter()
                    .any(|(n, (_, a))| *a == ip && n.starts_with("Mesh_"));
                let kind = if mesh { "NodeMesh" } else { "BGPPeer" };
                (gw, json!({"sourceType": kind, "peerIP": ip.to_string()}))
            }
        };
        let entry = json!({
            // Calico's names: the selected route is what the FIB has; the
            // alternatives are RIB entries.
            "type": if path.best { "FIB" } else { "RIB" },
            "destination": prefix.to_string(),
            "gateway": gateway,
            "learnedFrom": learned,
        });
        if prefix.addr().is_ipv4() {
            v4.push(entry);
        } else {
            v6.push(entry);
        }
    }
    json!({"routesV4": v4, "routesV6": v6})
}

/// SINCE as the daemon prints it: a duration ago, as `HH:MM:SS` of UTC now
/// minus it.
fn since_text(ago: u64) -> String {
    let t = crate::daemon::unix_now().saturating_sub(ago) % 86_400;
    format!("{:02}:{:02}:{:02}", t / 3600, t % 3600 / 60, t % 60)
}
