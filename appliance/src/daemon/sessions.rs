//! Planned sessions → speaker peers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use starling_plugin_host::contract::{Family, NextHopMode, Session};
use starling_speaker::config::{GracefulRestartConfig, PeerConfig, Secret};
use starling_speaker::instance::{Instance, OwnAddresses, PeerPolicy};
use starling_speaker::rib::RibConfig;
use starling_store::ResourceSet;

use super::route_policy::SessionContext;

/// The running sessions, by peer address (the speaker's key).
///
/// Changes are **make-before-break**: a session the plan drops keeps
/// running ("retiring") until every session the same change added is
/// Established and has sent its table, or [`REPLACEMENT_DEADLINE`] passes.
/// A retiring session to another node of the cluster also waits until no
/// prefix depends on it alone: changes between nodes come in steps (a node
/// is made a reflector, then its peering appears, then the mesh goes), and
/// the traffic between the nodes must not notice the steps between.
/// a session whose name or policy changed but whose OPEN would not is
/// updated in place, without a reset (a mesh peer becoming a route
/// reflector's client, a configured peering taking over from the mesh). Only a change
/// the peer must see in an OPEN (ASes, identifier, timers, password, ...)
/// replaces the session.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    running: BTreeMap<IpAddr, Running>,
    /// Sessions added by recent changes, not yet known to be synced.
    fresh: BTreeMap<IpAddr, Instant>,
    /// The kernel kept our routes from the previous run: every session's
    /// graceful restart capability says so (the F bit), and peers keep
    /// our routes through our restart.
    pub(super) forwarding_preserved: bool,
    /// The first and the longest wait before a failed session is tried
    /// again (`bgp.error_wait`); a session's own `error_wait` replaces the
    /// first.
    pub(super) error_wait: (Duration, Duration),
}

#[derive(Debug)]
struct Running {
    name: String,
    family: Family,
    config: PeerConfig,
    policy: PeerPolicy,
    context: SessionContext,
    /// No longer planned since then: waiting for its replacements.
    retiring: Option<Instant>,
    /// The peer is a node of the cluster (a Node still has its address).
    to_node: bool,
}

/// How long after a failed connection attempt the next one starts.
const CONNECT_RETRY: Duration = Duration::from_secs(5);

/// How long retiring sessions wait for their replacements to sync.
const REPLACEMENT_DEADLINE: Duration = Duration::from_secs(30);

impl Sessions {
    /// No sessions yet; failed ones wait `error_wait` (first, longest)
    /// before they are tried again.
    pub(super) fn new(error_wait: (Duration, Duration)) -> Self {
        Sessions {
            error_wait,
            ..Sessions::default()
        }
    }

    /// Make the speaker run `desired`, make-before-break.
    pub(super) fn reconcile(
        &mut self,
        instance: &Instance,
        rib: &RibConfig,
        desired: &[&Session],
        secrets: &ResourceSet,
        subnets: &[(IpAddr, u8)],
        nodes: &HashSet<IpAddr>,
    ) {
        let mut wanted: BTreeMap<IpAddr, Running> = BTreeMap::new();
        for s in desired {
            let Some(r) = peer(
                s,
                rib,
                secrets,
                subnets,
                self.forwarding_preserved,
                self.error_wait,
            ) else {
                tracing::warn!(session = s.name, "unusable session in the plan; skipped");
                continue;
            };
            let address = r.config.remote.ip();
            // The speaker keys peers by address: one session per address.
            if let Some(first) = wanted.get(&address) {
                tracing::warn!(
                    session = s.name,
                    "same peer address as {}; only {} is run",
                    first.name,
                    first.name
                );
                continue;
            }
            wanted.insert(address, r);
        }
        for (address, r) in &mut self.running {
            r.to_node = nodes.contains(address);
            if !wanted.contains_key(address) && r.retiring.is_none() {
                tracing::info!(session = r.name, peer = %address, "session retiring: removed once its replacements are up");
                r.retiring = Some(Instant::now());
            }
        }
        for (address, want) in wanted {
            match self.running.get_mut(&address) {
                Some(r) if same_but_passive(&r.config, &want.config) => {
                    if r.config.passive != want.config.passive {
                        // Who connects is ours alone to decide: no reset.
                        tracing::info!(session = want.name, peer = %address, passive = want.config.passive, "session passive mode changed in place");
                        instance.set_passive(address, want.config.passive);
                    }
                    if r.policy != want.policy {
                        tracing::info!(session = want.name, peer = %address, "session policy updated in place");
                        instance.update_peer_policy(address, want.policy.clone());
                    }
                    if r.name != want.name {
                        tracing::info!(from = r.name, to = want.name, peer = %address, "session renamed");
                    }
                    *r = want;
                }
                Some(r) => {
                    tracing::info!(session = want.name, peer = %address, "session settings changed: replacing it");
                    instance.remove_peer(address);
                    instance.add_peer(want.config.clone(), want.policy.clone());
                    *r = want;
                    self.fresh.insert(address, Instant::now());
                }
                None => {
                    tracing::info!(session = want.name, peer = %address, "adding session");
                    instance.add_peer(want.config.clone(), want.policy.clone());
                    self.running.insert(address, want);
                    self.fresh.insert(address, Instant::now());
                }
            }
        }
    }

    /// Retire what waited for replacements that are now synced (or late).
    /// Cheap when nothing is retiring; call it every tick.
    pub(super) async fn retire(&mut self, instance: &Instance) {
        let leaving: HashSet<IpAddr> = self
            .running
            .iter()
            .filter(|(_, r)| r.retiring.is_some())
            .map(|(a, _)| *a)
            .collect();
        if leaving.is_empty() {
            self.fresh.clear();
            return;
        }
        let counts = instance.counts().await;
        self.fresh.retain(|address, added| {
            added.elapsed() < REPLACEMENT_DEADLINE
                && !counts.peers.get(address).is_some_and(|c| c.synced)
        });
        let replacements_up = self.fresh.is_empty();
        let to_nodes = leaving.iter().any(|a| self.running[a].to_node);
        let sole = if replacements_up && to_nodes {
            instance.sole_paths(leaving.clone()).await
        } else {
            HashMap::new()
        };
        let gone: Vec<IpAddr> = leaving
            .into_iter()
            .filter(|address| {
                let r = &self.running[address];
                let late = r
                    .retiring
                    .is_some_and(|since| since.elapsed() >= REPLACEMENT_DEADLINE);
                let needed = r.to_node && sole.get(address).is_some_and(|n| *n > 0);
                late || (replacements_up && !needed)
            })
            .collect();
        for address in gone {
            if let Some(r) = self.running.remove(&address) {
                tracing::info!(session = r.name, peer = %address, "removing session");
                instance.remove_peer(address);
            }
        }
    }

    /// Every session is synced (or there are none): the routing has
    /// converged as far as this node can tell.
    pub(super) async fn all_synced(&self, instance: &Instance) -> bool {
        let counts = instance.counts().await;
        self.running
            .keys()
            .all(|a| counts.peers.get(a).is_some_and(|c| c.synced))
    }

    /// Every running session (retiring ones too): name → (family, address).
    pub(super) fn names(&self) -> BTreeMap<String, (Family, IpAddr)> {
        self.running
            .iter()
            .map(|(a, r)| (r.name.clone(), (r.family, *a)))
            .collect()
    }

    /// The running sessions whose peers are route-reflector clients.
    pub(super) fn reflector_clients(&self) -> BTreeSet<String> {
        self.running
            .values()
            .filter(|r| r.policy.rr_client)
            .map(|r| r.name.clone())
            .collect()
    }

    /// What the route-policy plugin is told about each running session
    /// and each session `desired` will add (the first per address, as
    /// `reconcile` takes them).
    pub(super) fn contexts_with(&self, desired: &[&Session]) -> HashMap<IpAddr, SessionContext> {
        let mut contexts = self.contexts();
        let mut seen = HashSet::new();
        for s in desired {
            let Ok(address) = s.peer_ip.parse::<IpAddr>() else {
                continue;
            };
            if seen.insert(address) {
                contexts.insert(address, SessionContext::of(s));
            }
        }
        contexts
    }

    /// What the route-policy plugin is told about each running session.
    pub(super) fn contexts(&self) -> HashMap<IpAddr, SessionContext> {
        self.running
            .iter()
            .map(|(a, r)| (*a, r.context.clone()))
            .collect()
    }

    /// Close every session with Cease / Administrative Shutdown and
    /// `message` (what BIRD and FRR show their operators).
    pub(super) fn shutdown(&mut self, instance: &Instance, message: &str) {
        instance.shutdown(std::mem::take(&mut self.running).into_keys(), message);
        self.fresh.clear();
    }
}

/// A planned session as the speaker's peer configuration.
/// Equal but for `passive`, which never reaches the peer.
fn same_but_passive(a: &PeerConfig, b: &PeerConfig) -> bool {
    let mut b = b.clone();
    b.passive = a.passive;
    *a == b
}

fn peer(
    s: &Session,
    rib: &RibConfig,
    secrets: &ResourceSet,
    subnets: &[(IpAddr, u8)],
    forwarding_preserved: bool,
    error_wait: (Duration, Duration),
) -> Option<Running> {
    let Ok(address) = s.peer_ip.parse::<IpAddr>() else {
        // Sessions on an interface, their peer learnt there, come with
        // the fabric protocols (issue-tracked): not run yet.
        tracing::warn!(session = s.name, interface = ?s.interface, "a session without a peer address is not supported yet");
        return None;
    };
    if s.bfd.is_some() {
        tracing::debug!(session = s.name, "BFD asked for; not run yet");
    }
    let mut config = PeerConfig::new(
        SocketAddr::new(address, s.peer_port.unwrap_or(179)),
        s.local_as,
        s.peer_as,
        rib.router_id,
    );
    config.local_address = s.source_address.as_deref().and_then(|a| a.parse().ok());
    // RFC 4271's 120 s ConnectRetry means a peer that was not listening
    // yet (nodes booting together) is tried again only two minutes later;
    // an appliance on a fabric retries in seconds, as FRR's datacenter
    // profile does.
    config.connect_retry = CONNECT_RETRY;
    config.passive = s.passive;
    config.families = s
        .families
        .iter()
        .map(|f| match f {
            Family::Ipv4 => starling_wire::Family::IPV4_UNICAST,
            Family::Ipv6 => starling_wire::Family::IPV6_UNICAST,
        })
        .collect();
    config.extended_next_hop = s.extended_next_hop;
    // The first wait after a failure; repeated failures back off from
    // there, to the ceiling (never below the first wait).
    let (first, longest) = error_wait;
    let seconds = |w: u32| Duration::from_secs(w.into());
    config.idle_hold = s.error_wait.map_or(first, seconds);
    config.max_idle_hold = s
        .error_wait_longest
        .map_or(longest, seconds)
        .max(config.idle_hold);
    config.ttl_security = s.ttl_security;
    if let Some(keepalive) = s.keepalive_time {
        // BGP negotiates hold time; keepalive is a third of it.
        config.hold_time = u16::try_from(keepalive.saturating_mul(3)).unwrap_or(u16::MAX);
    }
    config.password = s.password.as_ref().and_then(|r| match secrets.secret(r) {
        Ok(key) => Some(Secret::new(key)),
        Err(why) => {
            tracing::warn!(session = s.name, "{why}; no password");
            None
        }
    });
    // Calico's sessions have graceful restart on, 120 s unless configured.
    config.graceful_restart = Some(GracefulRestartConfig {
        restart_time: u16::try_from(s.graceful_restart_time.unwrap_or(120).min(4095)).ok()?,
        forwarding_preserved,
        ..GracefulRestartConfig::default()
    });
    let policy = PeerPolicy {
        rr_client: s.rr_client,
        next_hop: match s.next_hop {
            NextHopMode::Auto => starling_speaker::rib::export::NextHopMode::Auto,
            NextHopMode::SetSelf => starling_speaker::rib::export::NextHopMode::SelfAddress,
            NextHopMode::Keep => starling_speaker::rib::export::NextHopMode::Keep,
        },
        allow_own_as: s.allow_local_as.unwrap_or(0) as usize,
        local_as: (s.local_as != rib.local_as).then_some(s.local_as),
        shared_subnet: subnets
            .iter()
            .find(|(net, _)| net.is_ipv4() == address.is_ipv4())
            .copied(),
        // A session carrying the other family too (MP-BGP) announces
        // ourselves there with the node's address in that family.
        own_addresses: OwnAddresses {
            v4: subnets.iter().find_map(|(a, _)| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            }),
            v6: subnets.iter().find_map(|(a, _)| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            }),
        },
        ..PeerPolicy::default()
    };
    Some(Running {
        name: s.name.clone(),
        family: s.family,
        config,
        policy,
        context: SessionContext::of(s),
        retiring: None,
        to_node: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(error_wait: Option<u32>) -> Session {
        Session {
            name: "Global_192_0_2_9".to_owned(),
            peer_ip: "192.0.2.9".to_owned(),
            peer_as: 65000,
            local_as: 64512,
            error_wait,
            ..Session::default()
        }
    }

    #[test]
    fn a_failed_session_waits_as_configured_and_as_the_plan_says() {
        let rib = RibConfig::new(64512, std::net::Ipv4Addr::new(192, 0, 2, 1));
        let wait = |s: &Session, bounds: (u64, u64)| {
            let bounds = (Duration::from_secs(bounds.0), Duration::from_secs(bounds.1));
            let r = peer(s, &rib, &ResourceSet::default(), &[], false, bounds).expect("a peer");
            (
                r.config.idle_hold.as_secs(),
                r.config.max_idle_hold.as_secs(),
            )
        };
        // starling.toml's bounds.
        assert_eq!(wait(&session(None), (1, 120)), (1, 120));
        assert_eq!(wait(&session(None), (5, 600)), (5, 600));
        // The plan's first wait; the ceiling never below it.
        assert_eq!(wait(&session(Some(30)), (1, 120)), (30, 120));
        assert_eq!(wait(&session(Some(300)), (1, 120)), (300, 300));
        // The plan's ceiling (contract 0.3), alone or with a first wait.
        let ceiling = |first, longest| Session {
            error_wait_longest: Some(longest),
            ..session(first)
        };
        assert_eq!(wait(&ceiling(None, 30), (1, 120)), (1, 30));
        assert_eq!(wait(&ceiling(Some(10), 600), (1, 120)), (10, 600));
        assert_eq!(wait(&ceiling(Some(60), 5), (1, 120)), (60, 60));
    }
}
