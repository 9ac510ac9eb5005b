//! `starling plan --diff`: what a change of resources or plugins would do
//! to each node, before it ships — sessions added, removed, reset or
//! updated in place, and node roles changed — as the daemon would apply it.
//!
//! The daemon keys a node's sessions by peer address; a session whose
//! connection parameters change is replaced (the peer sees it drop), while
//! passive mode, route-reflector clients, next-hop mode, filters and the
//! like change in place (see `daemon::sessions`). A change of the node's
//! AS or router id re-forms every session; one of where it listens does
//! not.

use std::collections::BTreeMap;

use starling_plugin_host::contract::{NodeFacts, NodePlan, Session};
use starling_plugin_host::pipeline::Plan;
use starling_store::ResourceSet;

/// What happens to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) node: String,
    pub(crate) kind: Kind,
    /// The session's name (the new one when it changes), or empty.
    pub(crate) session: String,
    pub(crate) detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// The node's AS, router id or reflector role.
    Role,
    Added,
    Removed,
    /// Replaced: the peer sees the session drop and form again.
    Reset,
    /// Changed in place: the session stays up.
    Updated,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Role => "role",
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Reset => "reset",
            Kind::Updated => "updated",
        }
    }
}

/// One side of the comparison: a plan and the Secrets its passwords name.
pub(crate) struct Side<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) secrets: &'a ResourceSet,
}

/// Every change from `before` to `after`, by node, then roles first, then
/// sessions by name; and warnings about changes that look like mistakes.
pub(crate) fn diff(before: &Side<'_>, after: &Side<'_>) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let mut nodes: Vec<&str> = before
        .plan
        .facts
        .iter()
        .chain(&after.plan.facts)
        .map(|f| f.node.as_str())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    for node in nodes {
        let (old, new) = (before.plan.facts(node), after.plan.facts(node));
        let resets_all = role_changes(node, old, new, &mut changes);
        if let (Some(old), Some(new)) = (before.plan.node(node), after.plan.node(node)) {
            listen_changes(old, new, &mut changes);
        }
        session_changes(node, before, after, resets_all, &mut changes);
    }
    (changes, warnings(before.plan, after.plan))
}

/// The node's own changes; whether they re-form every session.
fn role_changes(
    node: &str,
    old: Option<&NodeFacts>,
    new: Option<&NodeFacts>,
    out: &mut Vec<Change>,
) -> bool {
    let mut role = |detail: String| {
        out.push(Change {
            node: node.to_owned(),
            kind: Kind::Role,
            session: String::new(),
            detail,
        });
    };
    let (old, new) = match (old, new) {
        (None, None) => return false,
        (None, Some(_)) => {
            role("new node".to_owned());
            return false;
        }
        (Some(_), None) => {
            role("node gone".to_owned());
            return false;
        }
        (Some(old), Some(new)) => (old, new),
    };
    let reflector = |f: &NodeFacts| match &f.cluster_id {
        Some(c) => format!("route reflector (cluster {c})"),
        None => "not a reflector".to_owned(),
    };
    if old.cluster_id != new.cluster_id {
        role(format!("{} → {}", reflector(old), reflector(new)));
    }
    let mut resets = false;
    if old.local_as != new.local_as {
        role(format!(
            "AS {} → {}: every session re-forms",
            old.local_as, new.local_as
        ));
        resets = true;
    }
    if old.router_id != new.router_id {
        let id = |f: &NodeFacts| f.router_id.clone().unwrap_or_else(|| "-".to_owned());
        role(format!(
            "router id {} → {}: every session re-forms",
            id(old),
            id(new)
        ));
        resets = true;
    }
    resets
}

/// Where the node accepts connections: its listen port and addresses.
/// The daemon rebinds at once; running sessions stay up.
fn listen_changes(old: &NodePlan, new: &NodePlan, out: &mut Vec<Change>) {
    let listen = |p: &NodePlan| {
        let port = p.listen_port.unwrap_or(179);
        match p.listen_addresses.as_slice() {
            [] => format!("every address, port {port}"),
            addresses => {
                let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                format!("{} port {port}", addresses.join(", "))
            }
        }
    };
    let (before, after) = (listen(old), listen(new));
    if before != after {
        out.push(Change {
            node: new.node.clone(),
            kind: Kind::Role,
            session: String::new(),
            detail: format!("listens on {before} → {after}; sessions stay up"),
        });
    }
}

fn session_changes(
    node: &str,
    before: &Side<'_>,
    after: &Side<'_>,
    resets_all: bool,
    out: &mut Vec<Change>,
) {
    // Keyed as the daemon keys them: by peer address.
    let by_peer = |side: &Side<'_>| -> BTreeMap<String, Session> {
        side.plan
            .node(node)
            .map(|p| {
                p.sessions
                    .iter()
                    .map(|s| (s.peer_ip.clone(), s.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (by_peer(before), by_peer(after));
    // Listed by peer address, as `starling plan` lists sessions.
    let mut found = Vec::new();
    let mut note = |peer: &str, kind: Kind, s: &Session, detail: String| {
        let address = peer.parse::<std::net::IpAddr>().ok();
        found.push((address, kind, s.name.clone(), detail));
    };
    for (peer, o) in &old {
        let Some(n) = new.get(peer) else {
            note(peer, Kind::Removed, o, describe(o));
            continue;
        };
        let (reset, updated) = differences(o, n, before.secrets, after.secrets);
        if !reset.is_empty() {
            note(peer, Kind::Reset, n, reset.join(", "));
        } else if resets_all {
            note(
                peer,
                Kind::Reset,
                n,
                "the node's AS or router id".to_owned(),
            );
        }
        if !updated.is_empty() && reset.is_empty() && !resets_all {
            note(peer, Kind::Updated, n, updated.join(", "));
        }
    }
    for (peer, n) in &new {
        if !old.contains_key(peer) {
            note(peer, Kind::Added, n, describe(n));
        }
    }
    found.sort();
    out.extend(found.into_iter().map(|(_, kind, session, detail)| Change {
        node: node.to_owned(),
        kind,
        session,
        detail,
    }));
}

fn describe(s: &Session) -> String {
    let port = s
        .peer_port
        .map(|p| format!(" port {p}"))
        .unwrap_or_default();
    format!("peer {}{port} AS {}", s.peer_ip, s.peer_as)
}

/// What differs between two sessions to one peer: (what replaces the
/// session, what changes in place).
fn differences(
    o: &Session,
    n: &Session,
    old_secrets: &ResourceSet,
    new_secrets: &ResourceSet,
) -> (Vec<String>, Vec<String>) {
    fn show<T: std::fmt::Debug>(v: &T) -> String {
        let text = format!("{v:?}");
        text.strip_prefix("Some(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(&text)
            .trim_matches('"')
            .to_owned()
    }
    let mut reset = Vec::new();
    let mut updated = Vec::new();
    macro_rules! compare {
        ($into:ident, $($field:ident),+) => {
            $(if o.$field != n.$field {
                $into.push(format!(
                    "{} {} → {}",
                    stringify!($field),
                    show(&o.$field),
                    show(&n.$field)
                ));
            })+
        };
    }
    compare!(
        reset,
        peer_port,
        peer_as,
        local_as,
        source_address,
        families,
        extended_next_hop,
        ttl_security,
        keepalive_time,
        graceful_restart_time,
        error_wait
    );
    // The password's value, not the Secret's name: never printed.
    let secret = |s: &Session, secrets: &ResourceSet| {
        s.password
            .as_ref()
            .and_then(|r| secrets.secret(r).ok().map(str::to_owned))
    };
    if secret(o, old_secrets) != secret(n, new_secrets) {
        reset.push("password".to_owned());
    }
    compare!(
        updated,
        name,
        passive,
        rr_client,
        next_hop,
        allow_local_as,
        filters,
        reachable_by
    );
    (reset, updated)
}

/// Changes that leave something worse off than any change should by
/// accident: every reflector gone, or a node left without sessions.
fn warnings(before: &Plan, after: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let reflectors = |p: &Plan| p.facts.iter().filter(|f| f.cluster_id.is_some()).count();
    if reflectors(before) > 0 && reflectors(after) == 0 {
        out.push(format!(
            "the cluster loses every route reflector ({} before)",
            reflectors(before)
        ));
    }
    for old in &before.nodes {
        let lost = !old.sessions.is_empty()
            && after
                .node(&old.node)
                .is_some_and(|new| new.sessions.is_empty());
        if lost {
            out.push(format!(
                "node {} loses every session ({} before)",
                old.node,
                old.sessions.len()
            ));
        }
    }
    out
}

/// calicoctl's table style, as `starling plan` prints.
pub(crate) fn table(changes: &[Change]) -> String {
    let mut rows = vec![["NODE", "CHANGE", "SESSION", "DETAIL"].map(str::to_owned)];
    for c in changes {
        rows.push([
            c.node.clone(),
            c.kind.as_str().to_owned(),
            if c.session.is_empty() {
                "-".to_owned()
            } else {
                c.session.clone()
            },
            c.detail.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_plugin_host::contract::SecretRef;

    fn session(name: &str, peer: &str, asn: u32) -> Session {
        Session {
            name: name.to_owned(),
            peer_ip: peer.to_owned(),
            peer_as: asn,
            local_as: 64512,
            ..Session::default()
        }
    }

    fn facts(node: &str, cluster: Option<&str>) -> NodeFacts {
        NodeFacts {
            node: node.to_owned(),
            local_as: 64512,
            cluster_id: cluster.map(str::to_owned),
            router_id: Some("192.0.2.1".to_owned()),
            addresses: Vec::new(),
        }
    }

    fn plan(nodes: Vec<(NodeFacts, Vec<Session>)>) -> Plan {
        Plan {
            facts: nodes.iter().map(|(f, _)| f.clone()).collect(),
            nodes: nodes
                .into_iter()
                .map(|(f, sessions)| NodePlan {
                    node: f.node,
                    router_id: None,
                    listen_port: None,
                    listen_addresses: Vec::new(),
                    sessions,
                    warnings: Vec::new(),
                })
                .collect(),
            originated: BTreeMap::new(),
            inputs: BTreeMap::new(),
            mended: None,
        }
    }

    fn run(before: &Plan, after: &Plan) -> (Vec<String>, Vec<String>) {
        let secrets = ResourceSet::default();
        let (changes, warnings) = diff(
            &Side {
                plan: before,
                secrets: &secrets,
            },
            &Side {
                plan: after,
                secrets: &secrets,
            },
        );
        let lines = changes
            .iter()
            .map(|c| format!("{} {} {} {}", c.node, c.kind.as_str(), c.session, c.detail))
            .collect();
        (lines, warnings)
    }

    #[test]
    fn sessions_added_removed_reset_and_updated() {
        let mut passive = session("Mesh_192_0_2_3", "192.0.2.3", 64512);
        passive.passive = true;
        let before = plan(vec![(
            facts("a", None),
            vec![
                session("Mesh_192_0_2_2", "192.0.2.2", 64512),
                session("Mesh_192_0_2_3", "192.0.2.3", 64512),
                session("Global_198_51_100_1", "198.51.100.1", 65000),
            ],
        )]);
        let after = plan(vec![(
            facts("a", None),
            vec![
                passive,
                session("Global_198_51_100_1", "198.51.100.1", 65001),
                session("Node_192_0_2_4", "192.0.2.4", 64512),
            ],
        )]);
        let (lines, warnings) = run(&before, &after);
        assert_eq!(
            lines,
            [
                "a removed Mesh_192_0_2_2 peer 192.0.2.2 AS 64512",
                "a updated Mesh_192_0_2_3 passive false → true",
                "a added Node_192_0_2_4 peer 192.0.2.4 AS 64512",
                "a reset Global_198_51_100_1 peer_as 65000 → 65001",
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_listen_change_is_the_nodes_and_resets_nothing() {
        let sessions = vec![session("Mesh_192_0_2_2", "192.0.2.2", 64512)];
        let before = plan(vec![(facts("a", None), sessions.clone())]);
        let mut after = plan(vec![(facts("a", None), sessions)]);
        after.nodes[0].listen_port = Some(1790);
        after.nodes[0].listen_addresses = vec!["192.0.2.1".parse().unwrap()];
        let (lines, _) = run(&before, &after);
        assert_eq!(
            lines,
            ["a role  listens on every address, port 179 → 192.0.2.1 port 1790; sessions stay up"]
        );
    }

    #[test]
    fn a_new_as_resets_everything_and_losing_reflectors_is_warned() {
        let mut rr = facts("rr", Some("244.0.0.1"));
        let client = || vec![session("Node_192_0_2_9", "192.0.2.9", 64512)];
        let before = plan(vec![(rr.clone(), client()), (facts("b", None), client())]);
        rr.cluster_id = None;
        rr.local_as = 65001;
        let after = plan(vec![(rr, client()), (facts("b", None), Vec::new())]);
        let (lines, warnings) = run(&before, &after);
        assert_eq!(
            lines,
            [
                "b removed Node_192_0_2_9 peer 192.0.2.9 AS 64512",
                "rr role  route reflector (cluster 244.0.0.1) → not a reflector",
                "rr role  AS 64512 → 65001: every session re-forms",
                "rr reset Node_192_0_2_9 the node's AS or router id",
            ]
        );
        assert_eq!(
            warnings,
            [
                "the cluster loses every route reflector (1 before)",
                "node b loses every session (1 before)",
            ]
        );
    }

    #[test]
    fn a_password_change_resets_and_is_not_printed() {
        let with = |secret: &str| {
            let mut s = session("Global_198_51_100_1", "198.51.100.1", 65000);
            s.password = Some(SecretRef {
                name: secret.to_owned(),
                key: "k".to_owned(),
            });
            s
        };
        let mut old_secrets = ResourceSet::default();
        let mut new_secrets = ResourceSet::default();
        let doc = |value: &str| {
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                               "stringData": {"k": value}})
        };
        old_secrets.add_secret(&doc("old-s3cr3t")).expect("secret");
        new_secrets.add_secret(&doc("new-s3cr3t")).expect("secret");
        let before = plan(vec![(facts("a", None), vec![with("s")])]);
        let after = plan(vec![(facts("a", None), vec![with("s")])]);
        let (changes, _) = diff(
            &Side {
                plan: &before,
                secrets: &old_secrets,
            },
            &Side {
                plan: &after,
                secrets: &new_secrets,
            },
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].kind, changes[0].detail.as_str()),
            (Kind::Reset, "password")
        );
        assert!(!table(&changes).contains("s3cr3t"));
    }
}
