//! Calico resources, parsed and validated (calico-model.md §1).
//!
//! Loading is all or nothing: every problem in every resource is collected
//! and reported, naming the resource, the field and the reason, and a set
//! with any problem is refused.
//!
//! Over 800 lines on purpose: one validator per Calico kind, each a list
//! of field checks mirroring calicoctl's, side by side so a field's rule
//! is found next to its kind's others; splitting per kind would scatter
//! the shared `Check` helpers and the cross-kind rules (a node's port,
//! a peer's node) over files.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value};
use starling_plugin_sdk::{Family, NextHopMode, Object, Prefix, Problem, SecretRef, Selector};

use crate::values::{self, Community};

/// The built-in cluster AS when nothing sets one.
pub const DEFAULT_AS: u32 = 64512;

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub asn: Option<u32>,
    pub ipv4: Option<(IpAddr, u8)>,
    pub ipv6: Option<(IpAddr, u8)>,
    pub cluster_id: Option<String>,
}

impl Node {
    pub fn address(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4 => self.ipv4.map(|(ip, _)| ip),
            Family::Ipv6 => self.ipv6.map(|(ip, _)| ip),
        }
    }
}

/// The `default` BGPConfiguration, with per-node overrides folded in.
#[derive(Debug, Clone)]
pub struct Config {
    pub mesh: bool,
    pub asn: Option<u32>,
    pub listen_port: Option<u16>,
    /// `bindMode: NodeIP`: listen on the node's own addresses only.
    pub bind_node_ip: bool,
    pub mesh_password: Option<SecretRef>,
    pub mesh_restart_time: Option<u32>,
    pub communities: BTreeMap<String, Community>,
    pub prefix_advertisements: Vec<(Prefix, Vec<Community>)>,
    /// `node.<name>` listenPort overrides.
    pub node_listen_ports: BTreeMap<String, u16>,
    /// `node.<name>` prefixAdvertisements overrides.
    pub node_prefix_advertisements: BTreeMap<String, Vec<(Prefix, Vec<Community>)>>,
    /// serviceClusterIPs, serviceExternalIPs and serviceLoadBalancerIPs of
    /// the default: advertised from every node.
    pub service_cidrs: Vec<Prefix>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mesh: true,
            asn: None,
            listen_port: None,
            bind_node_ip: false,
            mesh_password: None,
            mesh_restart_time: None,
            communities: BTreeMap::new(),
            prefix_advertisements: Vec::new(),
            node_listen_ports: BTreeMap::new(),
            node_prefix_advertisements: BTreeMap::new(),
            service_cidrs: Vec::new(),
        }
    }
}

impl Config {
    /// The port node `name` listens on, when one is configured.
    pub fn listen_port(&self, node: &str) -> Option<u16> {
        self.node_listen_ports
            .get(node)
            .copied()
            .or(self.listen_port)
    }

    pub fn default_as(&self) -> u32 {
        self.asn.unwrap_or(DEFAULT_AS)
    }
}

#[derive(Debug, Clone)]
pub enum LocalSide {
    Global,
    Node(String),
    Selector(Selector),
}

#[derive(Debug, Clone)]
pub enum RemoteSide {
    Ip(IpAddr, Option<u16>),
    Selector(Selector),
    /// `localWorkloadSelector`: peers are pods, which a router appliance
    /// does not see; kept so the resource validates, planned as nothing.
    Workloads,
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub local: LocalSide,
    pub remote: RemoteSide,
    pub asn: u32,
    pub local_asn: Option<u32>,
    pub keep_original_next_hop: bool,
    pub next_hop_mode: Option<NextHopMode>,
    pub password: Option<SecretRef>,
    /// `sourceAddress: None`.
    pub no_source_address: bool,
    pub max_restart_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub allow_local_as: Option<u32>,
    pub ttl_security: Option<u8>,
    pub reachable_by: Option<IpAddr>,
    pub filters: Vec<String>,
    pub reverse_manual: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOperator {
    Equal,
    NotEqual,
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    AddCommunity(Community),
    PrependAsPath(Vec<u32>),
    SetPriority(u32),
}

#[derive(Debug, Clone)]
pub struct FilterRule {
    pub accept: bool,
    pub cidr: Option<(Prefix, MatchOperator)>,
    /// Effective prefix-length bounds for `In`/`NotIn`.
    pub length: (u8, u8),
    pub from_peer: bool,
    pub interface: Option<String>,
    pub peer_type_ebgp: Option<bool>,
    pub community: Option<Community>,
    pub as_path_prefix: Vec<u32>,
    pub priority: Option<u32>,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub import_v4: Vec<FilterRule>,
    pub export_v4: Vec<FilterRule>,
    pub import_v6: Vec<FilterRule>,
    pub export_v6: Vec<FilterRule>,
}

impl Filter {
    pub fn has_rules(&self, family: Family) -> bool {
        match family {
            Family::Ipv4 => !self.import_v4.is_empty() || !self.export_v4.is_empty(),
            Family::Ipv6 => !self.import_v6.is_empty() || !self.export_v6.is_empty(),
        }
    }
}

/// An IPPool, as far as route export cares.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub cidr: Prefix,
    pub disabled: bool,
    pub disable_bgp_export: bool,
}

/// A BlockAffinity: `node` owns the IPAM block `cidr`.
#[derive(Debug, Clone)]
pub struct Block {
    pub node: String,
    pub cidr: Prefix,
    /// `confirmed` (or no state): the node advertises the block. `pending`
    /// and `pendingDeletion` blocks produce nothing.
    pub confirmed: bool,
}

/// A validated Calico resource set.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Sorted by name.
    pub pools: Vec<Pool>,
    /// Node names by BGP address (either family), sorted.
    pub by_address: BTreeMap<IpAddr, Vec<String>>,
    pub nodes: BTreeMap<String, Node>,
    pub config: Config,
    /// Sorted by name: Calico walks peers in map order, we walk them in
    /// name order so the result is deterministic.
    pub peers: Vec<Peer>,
    pub filters: BTreeMap<String, Filter>,
    /// Block affinities, sorted by node then block.
    pub blocks: Vec<Block>,
}

/// Collects problems for one resource.
struct Check<'a> {
    kind: &'a str,
    name: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            kind: self.kind.to_owned(),
            name: self.name.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        });
    }

    /// Report fields the kind does not have: a misspelt field must not be
    /// silently ignored.
    fn only(&mut self, path: &str, map: &Map<String, Value>, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.fail(&format!("{path}.{key}"), "unknown field");
            }
        }
    }

    fn string<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v str> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.fail(&format!("{path}.{key}"), "must be a string");
                None
            }
        }
    }

    fn object<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.fail(&format!("{path}.{key}"), "must be an object");
                None
            }
        }
    }

    fn array<'v>(&mut self, map: &'v Map<String, Value>, path: &str, key: &str) -> &'v [Value] {
        match map.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.fail(&format!("{path}.{key}"), "must be a list");
                &[]
            }
        }
    }

    fn boolean(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<bool> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.fail(&format!("{path}.{key}"), "must be true or false");
                None
            }
        }
    }

    fn unsigned(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        max: u64,
    ) -> Option<u64> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|n| *n <= max) {
                Some(n) => Some(n),
                None => {
                    self.fail(
                        &format!("{path}.{key}"),
                        format!("must be an integer 0-{max}"),
                    );
                    None
                }
            },
        }
    }

    fn asn(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<u32> {
        let v = map.get(key).filter(|v| !v.is_null())?;
        match values::parse_asn(v) {
            Ok(n) => Some(n),
            Err(e) => {
                self.fail(&format!("{path}.{key}"), e);
                None
            }
        }
    }

    fn duration(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<u32> {
        let s = self.string(map, path, key)?;
        match values::parse_duration(s) {
            Ok(n) => Some(n),
            Err(e) => {
                self.fail(&format!("{path}.{key}"), e);
                None
            }
        }
    }

    fn selector(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<Selector> {
        let s = self.string(map, path, key).filter(|s| !s.is_empty())?;
        if s.len() > 1024 {
            self.fail(
                &format!("{path}.{key}"),
                "selector longer than 1024 characters",
            );
            return None;
        }
        match Selector::parse(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                self.fail(
                    &format!("{path}.{key}"),
                    format!("invalid selector '{s}': {e}"),
                );
                None
            }
        }
    }

    fn secret(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<SecretRef> {
        let pw = self.object(map, path, key)?;
        let here = format!("{path}.{key}");
        self.only(&here, pw, &["secretKeyRef"]);
        let Some(r) = self.object(pw, &here, "secretKeyRef") else {
            self.fail(&here, "needs secretKeyRef");
            return None;
        };
        let here = format!("{here}.secretKeyRef");
        self.only(&here, r, &["name", "key", "optional"]);
        let name = self.string(r, &here, "name");
        let key = self.string(r, &here, "key");
        match (name, key) {
            (Some(name), Some(key)) if !name.is_empty() && !key.is_empty() => Some(SecretRef {
                name: name.to_owned(),
                key: key.to_owned(),
            }),
            _ => {
                self.fail(&here, "needs both name and key");
                None
            }
        }
    }
}

fn spec_of(object: &Object, check: &mut Check<'_>) -> Map<String, Value> {
    match serde_json::from_str::<Value>(&object.spec) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) => Map::new(),
        Ok(_) => {
            check.fail("spec", "must be an object");
            Map::new()
        }
        Err(e) => {
            check.fail("spec", format!("is not JSON: {e}"));
            Map::new()
        }
    }
}

impl Model {
    /// Parse and validate. Kinds this plugin does not know are ignored:
    /// other plugins may define them.
    pub fn load(objects: &[Object]) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut model = Model::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut configs = Vec::new();
        for object in objects {
            let kind = object.kind.as_str();
            if !matches!(
                kind,
                "Node" | "BGPConfiguration" | "BGPPeer" | "BGPFilter" | "IPPool" | "BlockAffinity"
            ) {
                continue;
            }
            let mut check = Check {
                kind,
                name: &object.name,
                problems: &mut problems,
            };
            if let Err(e) = values::check_name(&object.name) {
                check.fail("metadata.name", e);
            }
            if !seen.insert((kind, object.name.as_str())) {
                check.fail("metadata.name", "defined more than once");
            }
            for (key, value) in &object.labels {
                if let Err(e) = values::check_label_key(key)
                    .and_then(|()| values::check_label_value(key, value))
                {
                    check.fail("metadata.labels", e);
                }
            }
            let spec = spec_of(object, &mut check);
            match kind {
                "Node" => {
                    if let Some(node) = parse_node(object, &spec, &mut check) {
                        model.nodes.insert(node.name.clone(), node);
                    }
                }
                "BGPConfiguration" => configs.push((object.name.as_str(), spec)),
                "BGPPeer" => {
                    if let Some(peer) = parse_peer(&object.name, &spec, &mut check) {
                        model.peers.push(peer);
                    }
                }
                "IPPool" => {
                    if let Some(pool) = parse_pool(&object.name, &spec, &mut check) {
                        model.pools.push(pool);
                    }
                }
                "BlockAffinity" => {
                    if let Some(block) = parse_block(&spec, &mut check) {
                        model.blocks.push(block);
                    }
                }
                _ => {
                    let filter = parse_filter(&spec, &mut check);
                    model.filters.insert(object.name.clone(), filter);
                }
            }
        }
        // The default first, so per-node overrides can check community names.
        configs.sort_by_key(|(name, _)| *name != "default");
        for (name, spec) in &configs {
            let mut check = Check {
                kind: "BGPConfiguration",
                name,
                problems: &mut problems,
            };
            parse_config(name, spec, &mut model.config, &mut check);
        }
        model.peers.sort_by(|a, b| a.name.cmp(&b.name));
        model.blocks.sort_by(|a, b| {
            (&a.node, a.cidr.bits, a.cidr.length).cmp(&(&b.node, b.cidr.bits, b.cidr.length))
        });
        model.pools.sort_by(|a, b| a.name.cmp(&b.name));
        for n in model.nodes.values() {
            for (ip, _) in [n.ipv4, n.ipv6].into_iter().flatten() {
                model.by_address.entry(ip).or_default().push(n.name.clone());
            }
        }
        if problems.is_empty() {
            Ok(model)
        } else {
            Err(problems)
        }
    }
}

fn parse_node(object: &Object, spec: &Map<String, Value>, check: &mut Check<'_>) -> Option<Node> {
    check.only(
        "spec",
        spec,
        &[
            "bgp",
            "ipv4VXLANTunnelAddr",
            "vxlanTunnelMACAddr",
            "ipv6VXLANTunnelAddr",
            "vxlanTunnelMACAddrV6",
            "orchRefs",
            "wireguard",
            "addresses",
            "interfaces",
        ],
    );
    let mut node = Node {
        name: object.name.clone(),
        labels: object.labels.clone(),
        asn: None,
        ipv4: None,
        ipv6: None,
        cluster_id: None,
    };
    let Some(bgp) = check.object(spec, "spec", "bgp") else {
        return Some(node);
    };
    if bgp.is_empty() {
        check.fail("spec.bgp", "Spec.BGP should not be empty");
    }
    let path = "spec.bgp";
    check.only(
        path,
        bgp,
        &[
            "asNumber",
            "ipv4Address",
            "ipv6Address",
            "ipv4IPIPTunnelAddr",
            "routeReflectorClusterID",
        ],
    );
    node.asn = check.asn(bgp, path, "asNumber");
    for (key, want_v4) in [("ipv4Address", true), ("ipv6Address", false)] {
        let Some(text) = check.string(bgp, path, key).filter(|s| !s.is_empty()) else {
            continue;
        };
        match values::parse_cidr(text) {
            Ok((ip, len)) if ip.is_ipv4() == want_v4 => {
                if want_v4 {
                    node.ipv4 = Some((ip, len));
                } else {
                    node.ipv6 = Some((ip, len));
                }
            }
            Ok(_) => check.fail(
                &format!("{path}.{key}"),
                format!(
                    "'{text}' is not an {} address",
                    if want_v4 { "IPv4" } else { "IPv6" }
                ),
            ),
            Err(e) => check.fail(&format!("{path}.{key}"), e),
        }
    }
    if let Some(id) = check
        .string(bgp, path, "routeReflectorClusterID")
        .filter(|s| !s.is_empty())
    {
        if id.parse::<std::net::Ipv4Addr>().is_ok() {
            node.cluster_id = Some(id.to_owned());
        } else {
            check.fail(
                "spec.bgp.routeReflectorClusterID",
                format!("'{id}' is not an IPv4 address"),
            );
        }
    }
    Some(node)
}

const DEFAULT_ONLY: &[&str] = &[
    "nodeToNodeMeshEnabled",
    "asNumber",
    "serviceLoadBalancerIPs",
    "serviceExternalIPs",
    "serviceClusterIPs",
    "nodeMeshPassword",
    "nodeMeshMaxRestartTime",
];

fn parse_advertisements(
    spec: &Map<String, Value>,
    communities: &BTreeMap<String, Community>,
    check: &mut Check<'_>,
) -> Vec<(Prefix, Vec<Community>)> {
    let mut out = Vec::new();
    let list = check.array(spec, "spec", "prefixAdvertisements");
    if list.len() > 500 {
        check.fail("spec.prefixAdvertisements", "at most 500 entries");
    }
    for (i, entry) in list.iter().enumerate() {
        let path = format!("spec.prefixAdvertisements[{i}]");
        let Some(entry) = entry.as_object() else {
            check.fail(&path, "must be an object");
            continue;
        };
        check.only(&path, entry, &["cidr", "communities"]);
        let cidr = match check.string(entry, &path, "cidr").map(values::parse_cidr) {
            Some(Ok((ip, len))) => Some(Prefix::new(ip, len)),
            Some(Err(e)) => {
                check.fail(&format!("{path}.cidr"), e);
                None
            }
            None => {
                check.fail(&format!("{path}.cidr"), "is required");
                None
            }
        };
        let mut values_out = Vec::new();
        for (j, c) in check.array(entry, &path, "communities").iter().enumerate() {
            let here = format!("{path}.communities[{j}]");
            let Some(text) = c.as_str() else {
                check.fail(&here, "must be a string");
                continue;
            };
            if let Some(c) = communities.get(text) {
                values_out.push(*c);
            } else {
                match values::parse_community(text) {
                    Ok(c) => values_out.push(c),
                    Err(_) => check.fail(
                        &here,
                        format!("'{text}' is neither a community value nor a name defined in spec.communities"),
                    ),
                }
            }
        }
        if let Some(cidr) = cidr {
            out.push((cidr, values_out));
        }
    }
    out
}

fn parse_config(name: &str, spec: &Map<String, Value>, config: &mut Config, check: &mut Check<'_>) {
    check.only(
        "spec",
        spec,
        &[
            "logSeverityScreen",
            "nodeToNodeMeshEnabled",
            "asNumber",
            "serviceClusterIPs",
            "serviceExternalIPs",
            "serviceLoadBalancerIPs",
            "serviceLoadBalancerAggregation",
            "communities",
            "prefixAdvertisements",
            "listenPort",
            "nodeMeshPassword",
            "nodeMeshMaxRestartTime",
            "bindMode",
            "ignoredInterfaces",
            "localWorkloadPeeringIPV4",
            "localWorkloadPeeringIPV6",
            "programClusterRoutes",
            "ipv4NormalRoutePriority",
            "ipv6NormalRoutePriority",
        ],
    );
    let is_default = name == "default";
    let node_override = name.strip_prefix("node.");
    if !is_default {
        for field in DEFAULT_ONLY {
            if spec.get(*field).is_some_and(|v| !v.is_null()) {
                check.fail(
                    &format!("spec.{field}"),
                    format!("Cannot set {field} on a non default BGP Configuration"),
                );
            }
        }
    }
    if let Some(level) = check.string(spec, "spec", "logSeverityScreen") {
        let ok = ["", "trace", "debug", "info", "warning", "error", "fatal"]
            .contains(&level.to_ascii_lowercase().as_str());
        if !ok {
            check.fail(
                "spec.logSeverityScreen",
                format!("'{level}' is not one of Trace, Debug, Info, Warning, Error, Fatal"),
            );
        }
    }
    let listen_port = check.unsigned(spec, "spec", "listenPort", 65535);
    if listen_port == Some(0) {
        check.fail("spec.listenPort", "must be 1-65535");
    }
    let listen_port = listen_port.filter(|p| *p != 0).map(|p| p as u16);
    let bind_mode = check.string(spec, "spec", "bindMode");
    if let Some(mode) = bind_mode
        && !["None", "NodeIP"].contains(&mode)
    {
        check.fail("spec.bindMode", format!("'{mode}' is not None or NodeIP"));
    }
    let bind_node_ip = bind_mode == Some("NodeIP");
    for (i, iface) in check
        .array(spec, "spec", "ignoredInterfaces")
        .iter()
        .enumerate()
    {
        let field = format!("spec.ignoredInterfaces[{i}]");
        match iface.as_str() {
            Some("*") => check.fail(&field, "'*' would ignore every interface"),
            Some(s) => {
                if let Err(e) = values::check_interface(s) {
                    check.fail(&field, e);
                }
            }
            None => check.fail(&field, "must be a string"),
        }
    }
    for key in [
        "serviceClusterIPs",
        "serviceExternalIPs",
        "serviceLoadBalancerIPs",
    ] {
        for (i, entry) in check.array(spec, "spec", key).iter().enumerate() {
            let field = format!("spec.{key}[{i}].cidr");
            match entry
                .get("cidr")
                .and_then(Value::as_str)
                .map(values::parse_cidr)
            {
                Some(Ok((ip, len))) => {
                    if name == "default" {
                        config.service_cidrs.push(Prefix::new(ip, len));
                    }
                }
                Some(Err(e)) => check.fail(&field, e),
                None => check.fail(&field, "is required"),
            }
        }
    }
    if let Some(agg) = check.string(spec, "spec", "serviceLoadBalancerAggregation")
        && !["Enabled", "Disabled"].contains(&agg)
    {
        check.fail(
            "spec.serviceLoadBalancerAggregation",
            format!("'{agg}' is not Enabled or Disabled"),
        );
    }
    let mut communities = config.communities.clone();
    let list = check.array(spec, "spec", "communities");
    if list.len() > 500 {
        check.fail("spec.communities", "at most 500 entries");
    }
    for (i, entry) in list.iter().enumerate() {
        let path = format!("spec.communities[{i}]");
        let Some(entry) = entry.as_object() else {
            check.fail(&path, "must be an object");
            continue;
        };
        check.only(&path, entry, &["name", "value"]);
        let cname = check.string(entry, &path, "name");
        let value = check.string(entry, &path, "value");
        if let Some(n) = cname
            && let Err(e) = values::check_name(n)
        {
            check.fail(&format!("{path}.name"), e);
        }
        let parsed = match value {
            Some(v) => values::parse_community(v)
                .map_err(|e| check.fail(&format!("{path}.value"), e))
                .ok(),
            None => {
                check.fail(&format!("{path}.value"), "is required");
                None
            }
        };
        match (cname, parsed) {
            (Some(n), Some(c)) => {
                communities.insert(n.to_owned(), c);
            }
            (None, _) => check.fail(&format!("{path}.name"), "is required"),
            _ => {}
        }
    }
    let advertisements = parse_advertisements(spec, &communities, check);
    if !list.is_empty() && advertisements.is_empty() {
        check.fail(
            "spec.communities",
            "communities are only used by prefixAdvertisements, which is empty",
        );
    }
    let mesh = check.boolean(spec, "spec", "nodeToNodeMeshEnabled");
    let password = check.secret(spec, "spec", "nodeMeshPassword");
    let restart = check.duration(spec, "spec", "nodeMeshMaxRestartTime");
    if mesh == Some(false) {
        if password.is_some() {
            check.fail(
                "spec.nodeMeshPassword",
                "cannot be set when nodeToNodeMeshEnabled is false",
            );
        }
        if restart.is_some() {
            check.fail(
                "spec.nodeMeshMaxRestartTime",
                "cannot be set when nodeToNodeMeshEnabled is false",
            );
        }
    }
    let asn = check.asn(spec, "spec", "asNumber");
    if is_default {
        config.mesh = mesh.unwrap_or(true);
        config.asn = asn;
        config.listen_port = listen_port;
        config.bind_node_ip = bind_node_ip;
        config.mesh_password = password;
        config.mesh_restart_time = restart;
        config.communities = communities;
        config.prefix_advertisements = advertisements;
    } else if let Some(node) = node_override {
        if let Some(port) = listen_port {
            config.node_listen_ports.insert(node.to_owned(), port);
        }
        if spec.contains_key("prefixAdvertisements") {
            config
                .node_prefix_advertisements
                .insert(node.to_owned(), advertisements);
        }
    }
    // Any other name is ignored, as confd ignores it.
}

fn parse_peer(name: &str, spec: &Map<String, Value>, check: &mut Check<'_>) -> Option<Peer> {
    check.only(
        "spec",
        spec,
        &[
            "node",
            "nodeSelector",
            "peerIP",
            "peerSelector",
            "asNumber",
            "localASNumber",
            "keepOriginalNextHop",
            "nextHopMode",
            "password",
            "sourceAddress",
            "maxRestartTime",
            "keepaliveTime",
            "numAllowedLocalASNumbers",
            "ttlSecurity",
            "reachableBy",
            "filters",
            "localWorkloadSelector",
            "reversePeering",
        ],
    );
    let node = check.string(spec, "spec", "node").filter(|s| !s.is_empty());
    if let Some(n) = node
        && let Err(e) = values::check_name(n)
    {
        check.fail("spec.node", e);
    }
    let node_selector = check.selector(spec, "spec", "nodeSelector");
    let peer_ip_text = check
        .string(spec, "spec", "peerIP")
        .filter(|s| !s.is_empty());
    let peer_ip = peer_ip_text.and_then(|s| match values::parse_peer_ip(s) {
        Ok(v) => Some(v),
        Err(e) => {
            check.fail("spec.peerIP", e);
            None
        }
    });
    let peer_selector = check.selector(spec, "spec", "peerSelector");
    let workloads = check.selector(spec, "spec", "localWorkloadSelector");
    let asn = check.asn(spec, "spec", "asNumber");
    let local_asn = check.asn(spec, "spec", "localASNumber");
    let keep = check
        .boolean(spec, "spec", "keepOriginalNextHop")
        .unwrap_or(false);
    let next_hop_mode = match check.string(spec, "spec", "nextHopMode") {
        None => None,
        Some("Auto") => Some(NextHopMode::Auto),
        Some("Self") => Some(NextHopMode::SetSelf),
        Some("Keep") => Some(NextHopMode::Keep),
        Some(other) => {
            check.fail(
                "spec.nextHopMode",
                format!("'{other}' is not Auto, Self or Keep"),
            );
            None
        }
    };
    let password = check.secret(spec, "spec", "password");
    let no_source_address = match check.string(spec, "spec", "sourceAddress") {
        None | Some("UseNodeIP") => false,
        Some("None") => true,
        Some(other) => {
            check.fail(
                "spec.sourceAddress",
                format!("'{other}' is not UseNodeIP or None"),
            );
            false
        }
    };
    let max_restart_time = check.duration(spec, "spec", "maxRestartTime");
    let keepalive_time = check.duration(spec, "spec", "keepaliveTime");
    let allow_local_as = check
        .unsigned(spec, "spec", "numAllowedLocalASNumbers", i32::MAX as u64)
        .map(|n| n as u32);
    let ttl_security = check
        .unsigned(spec, "spec", "ttlSecurity", 255)
        .map(|n| n as u8);
    let reachable_by = check
        .string(spec, "spec", "reachableBy")
        .filter(|s| !s.is_empty())
        .and_then(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                check.fail("spec.reachableBy", format!("'{s}' is not an IP address"));
                None
            }
        });
    let mut filters = Vec::new();
    for (i, f) in check.array(spec, "spec", "filters").iter().enumerate() {
        match f.as_str() {
            Some(s) => match values::check_name(s) {
                Ok(()) => filters.push(s.to_owned()),
                Err(e) => check.fail(&format!("spec.filters[{i}]"), e),
            },
            None => check.fail(&format!("spec.filters[{i}]"), "must be a string"),
        }
    }
    let reverse_manual = match check.string(spec, "spec", "reversePeering") {
        None | Some("Auto") => false,
        Some("Manual") => true,
        Some(other) => {
            check.fail(
                "spec.reversePeering",
                format!("'{other}' is not Auto or Manual"),
            );
            false
        }
    };

    // Calico's cross-field rules.
    if node.is_some() && node_selector.is_some() {
        check.fail("spec.node", "node and nodeSelector are mutually exclusive");
    }
    if peer_ip_text.is_some() && peer_selector.is_some() {
        check.fail(
            "spec.peerIP",
            "peerIP and peerSelector are mutually exclusive",
        );
    }
    if peer_selector.is_some() && asn.is_some_and(|a| a != 0) {
        check.fail(
            "spec.asNumber",
            "must be empty when peerSelector is set: the AS comes from each selected node",
        );
    }
    if workloads.is_some() {
        if peer_ip_text.is_some() || peer_selector.is_some() {
            check.fail(
                "spec.localWorkloadSelector",
                "cannot be combined with peerIP or peerSelector",
            );
        }
        if asn.unwrap_or(0) == 0 {
            check.fail("spec.asNumber", "is required with localWorkloadSelector");
        }
    }
    if let Some(via) = reachable_by {
        match peer_ip {
            None => check.fail("spec.reachableBy", "needs peerIP"),
            Some((ip, _)) if ip.is_ipv4() != via.is_ipv4() => check.fail(
                "spec.reachableBy",
                "must be the same address family as peerIP",
            ),
            Some(_) => {}
        }
    }
    if keep && next_hop_mode.is_some() {
        check.fail(
            "spec.nextHopMode",
            "cannot be combined with keepOriginalNextHop: true",
        );
    }
    let remote = match (peer_ip, peer_selector, workloads) {
        (Some((ip, port)), _, _) => RemoteSide::Ip(ip, port),
        (None, Some(s), _) => RemoteSide::Selector(s),
        (None, None, Some(_)) => RemoteSide::Workloads,
        (None, None, None) => {
            if peer_ip_text.is_none() {
                check.fail(
                    "spec",
                    "needs peerIP, peerSelector or localWorkloadSelector: nothing to peer with",
                );
            }
            return None;
        }
    };
    let local = match (node, node_selector) {
        (Some(n), _) => LocalSide::Node(n.to_owned()),
        (None, Some(s)) => LocalSide::Selector(s),
        (None, None) => LocalSide::Global,
    };
    Some(Peer {
        name: name.to_owned(),
        local,
        remote,
        asn: asn.unwrap_or(0),
        local_asn,
        keep_original_next_hop: keep,
        next_hop_mode,
        password,
        no_source_address,
        max_restart_time,
        keepalive_time,
        allow_local_as,
        ttl_security,
        reachable_by,
        filters,
        reverse_manual,
    })
}

fn parse_filter(spec: &Map<String, Value>, check: &mut Check<'_>) -> Filter {
    check.only(
        "spec",
        spec,
        &["exportV4", "importV4", "exportV6", "importV6"],
    );
    let mut filter = Filter::default();
    for (key, family) in [
        ("exportV4", Family::Ipv4),
        ("importV4", Family::Ipv4),
        ("exportV6", Family::Ipv6),
        ("importV6", Family::Ipv6),
    ] {
        let mut rules = Vec::new();
        for (i, rule) in check.array(spec, "spec", key).iter().enumerate() {
            let path = format!("spec.{key}[{i}]");
            match rule.as_object() {
                Some(r) => {
                    if let Some(rule) = parse_rule(r, &path, family, check) {
                        rules.push(rule);
                    }
                }
                None => check.fail(&path, "must be an object"),
            }
        }
        match key {
            "exportV4" => filter.export_v4 = rules,
            "importV4" => filter.import_v4 = rules,
            "exportV6" => filter.export_v6 = rules,
            _ => filter.import_v6 = rules,
        }
    }
    filter
}

fn parse_rule(
    r: &Map<String, Value>,
    path: &str,
    family: Family,
    check: &mut Check<'_>,
) -> Option<FilterRule> {
    check.only(
        path,
        r,
        &[
            "action",
            "cidr",
            "matchOperator",
            "prefixLength",
            "source",
            "interface",
            "peerType",
            "communities",
            "asPathPrefix",
            "priority",
            "operations",
        ],
    );
    let width: u8 = if family == Family::Ipv4 { 32 } else { 128 };
    let accept = match check.string(r, path, "action") {
        Some("Accept") => Some(true),
        Some("Reject") => Some(false),
        Some(other) => {
            check.fail(
                &format!("{path}.action"),
                format!("'{other}' is not Accept or Reject"),
            );
            None
        }
        None => {
            check.fail(&format!("{path}.action"), "is required");
            None
        }
    };
    let cidr = check.string(r, path, "cidr").filter(|s| !s.is_empty());
    let op = check
        .string(r, path, "matchOperator")
        .filter(|s| !s.is_empty());
    let op = op.and_then(|o| match o {
        "Equal" => Some(MatchOperator::Equal),
        "NotEqual" => Some(MatchOperator::NotEqual),
        "In" => Some(MatchOperator::In),
        "NotIn" => Some(MatchOperator::NotIn),
        other => {
            check.fail(
                &format!("{path}.matchOperator"),
                format!("'{other}' is not Equal, NotEqual, In or NotIn"),
            );
            None
        }
    });
    let mut prefix = None;
    if let Some(text) = cidr {
        match values::parse_cidr(text) {
            Ok((ip, len)) if Family::of(&ip) == family => prefix = Some(Prefix::new(ip, len)),
            Ok(_) => check.fail(
                &format!("{path}.cidr"),
                format!(
                    "'{text}' is not an {} CIDR",
                    if width == 32 { "IPv4" } else { "IPv6" }
                ),
            ),
            Err(e) => check.fail(&format!("{path}.cidr"), e),
        }
    }
    if cidr.is_some() != r.get("matchOperator").is_some_and(|v| !v.is_null()) {
        check.fail(
            &format!("{path}.cidr"),
            "cidr and matchOperator must be set together",
        );
    }
    let mut length = (prefix.map_or(0, |p| p.length), width);
    if let Some(pl) = check.object(r, path, "prefixLength") {
        let here = format!("{path}.prefixLength");
        check.only(&here, pl, &["min", "max"]);
        if cidr.is_none() {
            check.fail(&here, "needs cidr");
        }
        let min = check
            .unsigned(pl, &here, "min", u64::from(width))
            .map(|n| n as u8);
        let max = check
            .unsigned(pl, &here, "max", u64::from(width))
            .map(|n| n as u8);
        length = (
            length.0.max(min.unwrap_or(0)),
            max.unwrap_or(width).min(width),
        );
    }
    let from_peer = match check.string(r, path, "source") {
        None | Some("") => false,
        Some("RemotePeers") => true,
        Some(other) => {
            check.fail(
                &format!("{path}.source"),
                format!("'{other}' is not RemotePeers"),
            );
            false
        }
    };
    let interface = check.string(r, path, "interface").filter(|s| !s.is_empty());
    if let Some(i) = interface
        && let Err(e) = values::check_interface(i)
    {
        check.fail(&format!("{path}.interface"), e);
    }
    let peer_type_ebgp = match check.string(r, path, "peerType") {
        None | Some("") => None,
        Some("eBGP") => Some(true),
        Some("iBGP") => Some(false),
        Some(other) => {
            check.fail(
                &format!("{path}.peerType"),
                format!("'{other}' is not eBGP or iBGP"),
            );
            None
        }
    };
    let mut community = None;
    if let Some(c) = check.object(r, path, "communities") {
        let here = format!("{path}.communities");
        check.only(&here, c, &["values"]);
        let list = check.array(c, &here, "values");
        if list.len() != 1 {
            check.fail(&format!("{here}.values"), "exactly one value is supported");
        }
        if let Some(v) = list.first() {
            match v.as_str().map(values::parse_community) {
                Some(Ok(c)) => community = Some(c),
                Some(Err(e)) => check.fail(&format!("{here}.values[0]"), e),
                None => check.fail(&format!("{here}.values[0]"), "must be a string"),
            }
        }
    }
    let mut as_path_prefix = Vec::new();
    for (i, v) in check.array(r, path, "asPathPrefix").iter().enumerate() {
        match values::parse_asn(v) {
            Ok(a) => as_path_prefix.push(a),
            Err(e) => check.fail(&format!("{path}.asPathPrefix[{i}]"), e),
        }
    }
    let priority = check
        .unsigned(r, path, "priority", 2147483646)
        .map(|n| n as u32);
    if priority == Some(0) {
        check.fail(&format!("{path}.priority"), "must be 1-2147483646");
    }
    let mut operations = Vec::new();
    let ops = check.array(r, path, "operations");
    if ops.len() > 10 {
        check.fail(&format!("{path}.operations"), "at most 10 operations");
    }
    if !ops.is_empty() && accept == Some(false) {
        check.fail(
            &format!("{path}.operations"),
            "only allowed with action: Accept",
        );
    }
    for (i, op) in ops.iter().enumerate() {
        let here = format!("{path}.operations[{i}]");
        let Some(op) = op.as_object() else {
            check.fail(&here, "must be an object");
            continue;
        };
        check.only(&here, op, &["addCommunity", "prependASPath", "setPriority"]);
        if op.len() != 1 {
            check.fail(
                &here,
                "needs exactly one of addCommunity, prependASPath, setPriority",
            );
            continue;
        }
        if let Some(a) = check.object(op, &here, "addCommunity") {
            match a
                .get("value")
                .and_then(Value::as_str)
                .map(values::parse_community)
            {
                Some(Ok(c)) => operations.push(Operation::AddCommunity(c)),
                Some(Err(e)) => check.fail(&format!("{here}.addCommunity.value"), e),
                None => check.fail(&format!("{here}.addCommunity.value"), "is required"),
            }
        }
        if let Some(p) = check.object(op, &here, "prependASPath") {
            let list = check.array(p, &format!("{here}.prependASPath"), "prefix");
            if !(1..=10).contains(&list.len()) {
                check.fail(
                    &format!("{here}.prependASPath.prefix"),
                    "needs 1-10 AS numbers",
                );
            }
            let mut asns = Vec::new();
            for (j, v) in list.iter().enumerate() {
                match values::parse_asn(v) {
                    Ok(a) => asns.push(a),
                    Err(e) => check.fail(&format!("{here}.prependASPath.prefix[{j}]"), e),
                }
            }
            operations.push(Operation::PrependAsPath(asns));
        }
        if let Some(p) = check.object(op, &here, "setPriority") {
            match p.get("value").and_then(Value::as_u64) {
                Some(v @ 1..=2147483646) => operations.push(Operation::SetPriority(v as u32)),
                _ => check.fail(&format!("{here}.setPriority.value"), "must be 1-2147483646"),
            }
        }
    }
    let cidr = prefix.zip(op);
    Some(FilterRule {
        accept: accept?,
        cidr,
        length,
        from_peer,
        interface: interface.map(str::to_owned),
        peer_type_ebgp,
        community,
        as_path_prefix,
        priority,
        operations,
    })
}

/// Calico's BlockAffinity spec: `node`, `cidr`, `state`, and the
/// `deleted` flag Calico keeps as a string.
fn parse_block(spec: &Map<String, Value>, check: &mut Check<'_>) -> Option<Block> {
    check.only("spec", spec, &["node", "cidr", "state", "deleted", "type"]);
    let node = check.string(spec, "spec", "node").map(str::to_owned);
    if node.is_none() {
        check.fail("spec.node", "is required");
    }
    let state = check.string(spec, "spec", "state").unwrap_or("confirmed");
    if !["confirmed", "pending", "pendingDeletion", ""].contains(&state) {
        check.fail(
            "spec.state",
            format!("'{state}' is not confirmed, pending or pendingDeletion"),
        );
    }
    let deleted = match spec.get("deleted") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(_) => {
            check.fail("spec.deleted", "must be true or false");
            false
        }
    };
    let cidr = match check.string(spec, "spec", "cidr").map(values::parse_cidr) {
        Some(Ok((ip, len))) => Some(Prefix::new(ip, len)),
        Some(Err(e)) => {
            check.fail("spec.cidr", e);
            None
        }
        None => {
            check.fail("spec.cidr", "is required");
            None
        }
    };
    Some(Block {
        node: node?,
        cidr: cidr?,
        confirmed: matches!(state, "confirmed" | "") && !deleted,
    })
}

fn parse_pool(name: &str, spec: &Map<String, Value>, check: &mut Check<'_>) -> Option<Pool> {
    check.only(
        "spec",
        spec,
        &[
            "cidr",
            "blockSize",
            "ipipMode",
            "vxlanMode",
            "natOutgoing",
            "disabled",
            "disableBGPExport",
            "nodeSelector",
            "allowedUses",
            "assignmentMode",
            "namespaceSelector",
        ],
    );
    let disabled = check.boolean(spec, "spec", "disabled").unwrap_or(false);
    let disable_bgp_export = check
        .boolean(spec, "spec", "disableBGPExport")
        .unwrap_or(false);
    match check.string(spec, "spec", "cidr").map(values::parse_cidr) {
        Some(Ok((ip, len))) => Some(Pool {
            name: name.to_owned(),
            cidr: Prefix::new(ip, len),
            disabled,
            disable_bgp_export,
        }),
        Some(Err(e)) => {
            check.fail("spec.cidr", e);
            None
        }
        None => {
            check.fail("spec.cidr", "is required");
            None
        }
    }
}
