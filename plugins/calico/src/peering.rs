//! Which sessions a node has (calico-model.md §2.2–§2.6).
//!
//! Calico computes peer entries for every node and dedupes them per scope,
//! first writer wins, in three passes: global BGPPeers, node-specific
//! BGPPeers, automatic reverse peerings. Dedupe is per node, so planning one
//! node only needs that node's entries; the passes and their order are the
//! same. Where Calico walks maps in unspecified order we walk resources and
//! nodes by name.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::net::IpAddr;

use starling_plugin_sdk::{Family, NextHopMode, NodeFacts, NodePlan, Selector, Session};

use crate::model::{LocalSide, Model, Node, Peer, RemoteSide};

/// What the host decided about every node: AS and reflector cluster id.
#[derive(Debug)]
pub struct Facts<'a> {
    by_node: BTreeMap<&'a str, &'a NodeFacts>,
    default_as: u32,
}

impl<'a> Facts<'a> {
    pub fn new(facts: &'a [NodeFacts], default_as: u32) -> Self {
        Facts {
            by_node: facts.iter().map(|f| (f.node.as_str(), f)).collect(),
            default_as,
        }
    }

    fn asn(&self, node: &str) -> u32 {
        self.by_node
            .get(node)
            .map_or(self.default_as, |f| f.local_as)
    }

    fn cluster_id(&self, node: &str) -> Option<&'a str> {
        self.by_node.get(node).and_then(|f| f.cluster_id.as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    Node,
}

/// One remote end before it becomes a session.
struct Entry<'m> {
    scope: Scope,
    ip: IpAddr,
    port: Option<u16>,
    peer_as: u32,
    /// The reflector cluster of the remote node; none for a plain peerIP.
    remote_cluster: Option<String>,
    /// A `peerIP` that is the address of one of our nodes: the only kind of
    /// BGPPeer entry Calico makes passive by the lexical rule. Nodes that a
    /// `peerSelector` picks are not marked, so both ends connect and
    /// collision detection picks one (calico-model.md §2.3, note after the
    /// option table).
    calico_node: bool,
    /// Entries from peerIP carry these; node-to-node entries do not.
    per_ip_options: bool,
    peer: &'m Peer,
}

impl Entry<'_> {
    /// Calico's dedupe key: the port is left out when it is 179.
    fn key(&self) -> (IpAddr, u16) {
        (self.ip, self.port.unwrap_or(179))
    }
}

/// Calico's session-name form of an address: `.` and `:` become `_`.
fn name_part(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "_")
}

fn session_name(prefix: &str, ip: &IpAddr, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{prefix}_{}_port_{p}", name_part(ip)),
        None => format!("{prefix}_{}", name_part(ip)),
    }
}

#[derive(Debug)]
pub struct Planner<'a> {
    model: &'a Model,
    facts: Facts<'a>,
    family: Family,
    /// Per BGPPeer (by index), the nodes its `peerSelector` matches and the
    /// nodes on its local side: computed once per plan, shared by every
    /// node planned, so planning a whole cluster is not quadratic in
    /// selector evaluations.
    selected: Vec<OnceCell<Vec<&'a Node>>>,
    local_side: Vec<OnceCell<Vec<&'a Node>>>,
}

impl<'a> Planner<'a> {
    pub fn new(model: &'a Model, facts: &'a [NodeFacts], family: Family) -> Self {
        Planner {
            model,
            facts: Facts::new(facts, model.config.default_as()),
            family,
            selected: model.peers.iter().map(|_| OnceCell::new()).collect(),
            local_side: model.peers.iter().map(|_| OnceCell::new()).collect(),
        }
    }

    fn selected_by(&self, index: usize, selector: &Selector) -> &[&'a Node] {
        self.selected[index].get_or_init(|| {
            self.nodes()
                .filter(|m| selector.matches(&m.labels))
                .collect()
        })
    }

    fn local_side_of(&self, index: usize, peer: &Peer) -> &[&'a Node] {
        self.local_side[index].get_or_init(|| {
            self.nodes()
                .filter(|r| self.local_side_has(peer, r))
                .collect()
        })
    }

    /// The nodes at a BGP address (either family), by name.
    fn nodes_at(&self, ip: &IpAddr) -> impl Iterator<Item = &'a Node> + 'a {
        let model = self.model;
        model
            .by_address
            .get(ip)
            .into_iter()
            .flatten()
            .filter_map(move |name| model.nodes.get(name))
    }

    fn nodes(&self) -> impl Iterator<Item = &'a Node> + 'a {
        self.model.nodes.values()
    }

    fn local_side_has(&self, peer: &Peer, node: &Node) -> bool {
        match &peer.local {
            LocalSide::Global => true,
            LocalSide::Node(n) => *n == node.name,
            LocalSide::Selector(s) => s.matches(&node.labels),
        }
    }

    /// The remote entries of `peer` in this family.
    fn remote_entries(&self, index: usize, peer: &'a Peer, scope: Scope) -> Vec<Entry<'a>> {
        match &peer.remote {
            RemoteSide::Workloads => Vec::new(),
            RemoteSide::Ip(ip, port) => {
                if Family::of(ip) != self.family {
                    return Vec::new();
                }
                let wanted_as = if peer.asn == 0 {
                    self.model.config.default_as()
                } else {
                    peer.asn
                };
                let calico_node = self.nodes_at(ip).next().is_some();
                // No explicit port: only a Calico node at that address and AS
                // lends one, its own listen port or else the global one (the
                // first such node by name). Any other peer is dialled at the
                // port given, or 179: the global listen port is ours, not
                // theirs.
                let port = port.or_else(|| {
                    self.nodes_at(ip)
                        .find(|n| {
                            n.address(self.family) == Some(*ip)
                                && self.facts.asn(&n.name) == wanted_as
                        })
                        .and_then(|n| self.model.config.listen_port(&n.name))
                });
                vec![Entry {
                    scope,
                    ip: *ip,
                    port,
                    peer_as: peer.asn,
                    remote_cluster: None,
                    calico_node,
                    per_ip_options: true,
                    peer,
                }]
            }
            RemoteSide::Selector(selector) => self
                .selected_by(index, selector)
                .iter()
                .filter_map(|m| {
                    let ip = m.address(self.family)?;
                    Some(Entry {
                        scope,
                        ip,
                        port: self.model.config.listen_port(&m.name),
                        peer_as: self.facts.asn(&m.name),
                        remote_cluster: self.facts.cluster_id(&m.name).map(str::to_owned),
                        calico_node: false,
                        per_ip_options: false,
                        peer,
                    })
                })
                .collect(),
        }
    }

    /// Whether `node` is on the reverse-local side of `peer` (§2.4).
    fn reverse_local_has(&self, index: usize, peer: &Peer, node: &Node) -> bool {
        match &peer.remote {
            RemoteSide::Workloads => false,
            RemoteSide::Selector(s) => self
                .selected_by(index, s)
                .iter()
                .any(|m| std::ptr::eq(*m, node)),
            RemoteSide::Ip(ip, port) => {
                let wanted_as = if peer.asn == 0 {
                    self.model.config.default_as()
                } else {
                    peer.asn
                };
                let at_ip =
                    node.ipv4.map(|a| a.0) == Some(*ip) || node.ipv6.map(|a| a.0) == Some(*ip);
                let port_ok = port
                    .is_none_or(|p| self.model.config.listen_port(&node.name).unwrap_or(179) == p);
                at_ip && self.facts.asn(&node.name) == wanted_as && port_ok
            }
        }
    }

    /// Plan the sessions of one node.
    pub fn plan(&self, me: &Node) -> NodePlan {
        let mut plan = NodePlan {
            node: me.name.clone(),
            router_id: me.ipv4.map(|(ip, _)| ip.to_string()),
            listen_port: self.model.config.listen_port(&me.name),
            listen_addresses: Vec::new(),
            sessions: Vec::new(),
            warnings: Vec::new(),
        };
        let Some(my_ip) = me.address(self.family) else {
            return plan;
        };
        // BIRD's `listen bgp address` in this family's configuration.
        if self.model.config.bind_node_ip {
            plan.listen_addresses.push(my_ip);
        }
        let my_as = self.facts.asn(&me.name);
        let my_cluster = self.facts.cluster_id(&me.name);
        let config = &self.model.config;

        // The mesh: every other non-reflector node with an address in this
        // family, unless we reflect ourselves.
        let mut taken: BTreeMap<(IpAddr, u16), String> = BTreeMap::new();
        if config.mesh && my_cluster.is_none() {
            for n in self.nodes() {
                let Some(ip) = n.address(self.family) else {
                    continue;
                };
                if ip == my_ip || self.facts.cluster_id(&n.name).is_some() {
                    continue;
                }
                let port = config.listen_port(&n.name);
                // Mesh names never carry the port, unlike BGPPeer ones
                // (confd: mesh/communities, listenPort 177).
                let name = session_name("Mesh", &ip, None);
                taken.insert((ip, port.unwrap_or(179)), name.clone());
                plan.sessions.push(Session {
                    name,
                    family: self.family,
                    origin: "mesh".to_owned(),
                    peer_ip: ip.to_string(),
                    peer_port: port,
                    peer_as: self.facts.asn(&n.name),
                    local_as: my_as,
                    source_address: Some(my_ip.to_string()),
                    // Calico's tie-break compares the address *text*.
                    passive: ip.to_string() > my_ip.to_string(),
                    rr_client: false,
                    rr_cluster_id: None,
                    password: config.mesh_password.clone(),
                    graceful_restart_time: config.mesh_restart_time,
                    keepalive_time: None,
                    ttl_security: None,
                    next_hop: NextHopMode::Auto,
                    allow_local_as: None,
                    filters: Vec::new(),
                    reachable_by: None,
                    ..self.session_defaults()
                });
            }
        }

        // Pass 1: global BGPPeers.
        let mut global: BTreeMap<(IpAddr, u16), Entry<'a>> = BTreeMap::new();
        let peers = self.model.peers.iter().enumerate();
        for (i, peer) in peers
            .clone()
            .filter(|(_, p)| matches!(p.local, LocalSide::Global))
        {
            for e in self.remote_entries(i, peer, Scope::Global) {
                global.entry(e.key()).or_insert(e);
            }
        }
        // Pass 2: node-specific BGPPeers that select us.
        let mut local: BTreeMap<(IpAddr, u16), Entry<'a>> = BTreeMap::new();
        for (i, peer) in peers
            .clone()
            .filter(|(_, p)| !matches!(p.local, LocalSide::Global))
        {
            if !self.local_side_has(peer, me) {
                continue;
            }
            for e in self.remote_entries(i, peer, Scope::Node) {
                if !global.contains_key(&e.key()) {
                    local.entry(e.key()).or_insert(e);
                }
            }
        }
        // Pass 3: reverse peerings that point back at the peer's local side.
        for (i, peer) in peers.filter(|(_, p)| !p.reverse_manual) {
            if !self.reverse_local_has(i, peer, me) {
                continue;
            }
            // A peerIP mirror exists only in the peerIP's family.
            if let RemoteSide::Ip(ip, _) = &peer.remote
                && Family::of(ip) != self.family
            {
                continue;
            }
            for r in self.local_side_of(i, peer) {
                let Some(ip) = r.address(self.family) else {
                    continue;
                };
                let e = Entry {
                    scope: Scope::Node,
                    ip,
                    port: config.listen_port(&r.name),
                    peer_as: self.facts.asn(&r.name),
                    remote_cluster: self.facts.cluster_id(&r.name).map(str::to_owned),
                    calico_node: false,
                    per_ip_options: false,
                    peer,
                };
                if !global.contains_key(&e.key()) {
                    local.entry(e.key()).or_insert(e);
                }
            }
        }

        for e in global.into_values().chain(local.into_values()) {
            if e.ip == my_ip {
                continue; // never peer with ourselves
            }
            let resource = e.peer.name.clone();
            let key = e.key();
            let session = self.session(e, my_ip, my_as, my_cluster);
            if let Some(mesh) = taken.get(&key) {
                plan.warnings.push(format!(
                    "{} from BGPPeer '{}' duplicates {mesh}: one address, one session; \
                     turn the node-to-node mesh off to peer with nodes through BGPPeers",
                    session.name, resource
                ));
                continue;
            }
            plan.sessions.push(session);
        }
        plan
    }

    fn session(
        &self,
        e: Entry<'a>,
        my_ip: IpAddr,
        my_as: u32,
        my_cluster: Option<&str>,
    ) -> Session {
        let peer = e.peer;
        let local_as = if e.per_ip_options {
            peer.local_asn.unwrap_or(my_as)
        } else {
            my_as
        };
        let ibgp = e.peer_as == local_as;
        // §2.6: a reflector treats an iBGP peer outside its cluster as a client.
        let rr_client = my_cluster.is_some_and(|c| ibgp && e.remote_cluster.as_deref() != Some(c));
        let next_hop = match peer.next_hop_mode {
            Some(mode) => mode,
            None if peer.keep_original_next_hop && !ibgp => NextHopMode::Keep,
            None => NextHopMode::Auto,
        };
        let passive =
            e.scope == Scope::Global && e.calico_node && e.ip.to_string() > my_ip.to_string();
        let filters = peer
            .filters
            .iter()
            .filter(|f| {
                self.model
                    .filters
                    .get(*f)
                    .is_some_and(|filter| filter.has_rules(self.family))
            })
            .cloned()
            .collect();
        let prefix = match e.scope {
            Scope::Global => "Global",
            Scope::Node => "Node",
        };
        Session {
            name: session_name(prefix, &e.ip, e.port),
            family: self.family,
            origin: prefix.to_ascii_lowercase(),
            peer_ip: e.ip.to_string(),
            peer_port: e.port,
            peer_as: e.peer_as,
            local_as,
            source_address: (!peer.no_source_address).then(|| my_ip.to_string()),
            passive,
            rr_client,
            rr_cluster_id: if rr_client {
                my_cluster.map(str::to_owned)
            } else {
                None
            },
            password: peer.password.clone(),
            graceful_restart_time: peer.max_restart_time,
            keepalive_time: peer.keepalive_time,
            ttl_security: peer.ttl_security.filter(|t| *t > 0),
            next_hop,
            allow_local_as: if e.per_ip_options {
                peer.allow_local_as.filter(|n| *n > 0)
            } else {
                None
            },
            filters,
            reachable_by: peer.reachable_by.map(|ip| ip.to_string()),
            ..self.session_defaults()
        }
    }

    /// What every Calico session shares: it carries its own family only
    /// (confd renders one BIRD protocol per family), with no interface,
    /// BFD (Calico's open source has none) or error wait.
    fn session_defaults(&self) -> Session {
        Session {
            family: self.family,
            families: vec![self.family],
            ..Session::default()
        }
    }
}
