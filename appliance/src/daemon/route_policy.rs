//! The route-policy plugin as the speaker's import/export policy.
//!
//! One [`PluginPolicy`] per plan: it knows the snapshot (the resources the
//! plan was made from) and, for each running session, the context the
//! plugin is asked with (session name, ASes, filters). The plugin's model
//! is loaded on first use and kept; calls run under the host's deadline,
//! off the async workers (`block_in_place`). A failed call poisons the
//! evaluation; the next attempt reloads it, at most once per
//! [`RETRY_AFTER`], so a plugin that loops costs one deadline per interval,
//! not one per batch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use starling_plugin_host::contract::{self as sdk, Object};
use starling_plugin_host::{Evaluation, Plugin};
use starling_speaker::policy::{Candidate, Direction, RoutePolicy, Verdict};
use starling_wire::attr::{AsPath, Community, LargeCommunity};
use starling_wire::{Afi, PathAttributes};

const RETRY_AFTER: Duration = Duration::from_secs(10);

/// What the plugin is told about one session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SessionContext {
    pub(super) name: String,
    pub(super) peer_as: u32,
    pub(super) local_as: u32,
    pub(super) filters: Vec<String>,
}

impl SessionContext {
    /// What the plugin is told about a planned session.
    pub(super) fn of(s: &starling_plugin_host::contract::Session) -> Self {
        SessionContext {
            name: s.name.clone(),
            peer_as: s.peer_as,
            local_as: s.local_as,
            filters: s.filters.clone(),
        }
    }
}

#[derive(Debug)]
pub(super) struct PluginPolicy {
    node: String,
    plugin: Plugin,
    objects: Vec<Object>,
    sessions: HashMap<IpAddr, SessionContext>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    evaluation: Option<Evaluation>,
    failed_at: Option<Instant>,
}

impl PluginPolicy {
    pub(super) fn new(
        node: String,
        plugin: Plugin,
        objects: Vec<Object>,
        sessions: HashMap<IpAddr, SessionContext>,
    ) -> Self {
        PluginPolicy {
            node,
            plugin,
            objects,
            sessions,
            state: Mutex::new(State::default()),
        }
    }

    /// Make sure the plugin has evaluated the current resources, unless
    /// it failed less than [`RETRY_AFTER`] ago.
    fn load(&self, state: &mut State) -> Result<(), String> {
        if state.evaluation.is_some() {
            return Ok(());
        }
        if let Some(at) = state.failed_at
            && at.elapsed() < RETRY_AFTER
        {
            return Err(format!(
                "plugin '{}' failed {} s ago; retrying after {} s",
                self.plugin.name(),
                at.elapsed().as_secs(),
                RETRY_AFTER.as_secs()
            ));
        }
        match self.plugin.evaluate(&self.objects) {
            Ok(e) => {
                state.evaluation = Some(e);
                Ok(())
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(e.to_string())
            }
        }
    }

    fn decide(
        &self,
        session: &SessionContext,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| "route policy lock poisoned".to_owned())?;
        self.load(&mut state)?;
        let mut verdicts = vec![Verdict::Reject; routes.len()];
        // One plugin call per family: the context names the family.
        for family in [sdk::Family::Ipv4, sdk::Family::Ipv6] {
            let indices: Vec<usize> = (0..routes.len())
                .filter(|&i| family_of(&routes[i]) == family)
                .collect();
            if indices.is_empty() {
                continue;
            }
            let context = sdk::RouteContext {
                node: self.node.clone(),
                session: session.name.clone(),
                family,
                direction: match direction {
                    Direction::Import => sdk::Direction::Import,
                    Direction::Export => sdk::Direction::Export,
                },
                peer_as: session.peer_as,
                local_as: session.local_as,
                filters: session.filters.clone(),
            };
            let (sets, batch) = batch(routes, &indices);
            let evaluation = state.evaluation.as_mut().ok_or("no evaluation")?;
            let answer = match evaluation.route_policy(&context, &sets, &batch) {
                Ok(a) => a,
                Err(e) => {
                    // The evaluation is poisoned now; reload it later.
                    state.evaluation = None;
                    state.failed_at = Some(Instant::now());
                    return Err(e.to_string());
                }
            };
            for (&i, outcome) in indices.iter().zip(answer.outcome) {
                verdicts[i] = match outcome {
                    sdk::Verdicts::REJECT => Verdict::Reject,
                    sdk::Verdicts::ACCEPT => Verdict::Accept,
                    n => {
                        // The host checked the index against `changed`.
                        let changed = &answer.changed[n as usize - 2];
                        Verdict::Replace(Box::new(apply(&routes[i].route.attrs, changed)))
                    }
                };
            }
        }
        Ok(verdicts)
    }
}

impl RoutePolicy for PluginPolicy {
    fn evaluate(
        &self,
        peer: IpAddr,
        direction: Direction,
        routes: &[Candidate<'_>],
    ) -> Result<Vec<Verdict>, String> {
        let Some(session) = self.sessions.get(&peer) else {
            return Err(format!("no planned session for {peer}"));
        };
        // Plugins run under a deadline that may be seconds: let the
        // runtime move other tasks off this worker meanwhile.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.decide(session, direction, routes))
            }
            _ => self.decide(session, direction, routes),
        }
    }

    /// Sessions whose context differs only in its name and external AS
    /// share verdicts: plugins decide on the context's other fields and,
    /// on export, look at the peer AS only to tell iBGP from eBGP (the
    /// WIT contract of `route-policy.evaluate`), so such peers share an
    /// update group. A hundred eBGP peers with the same filters are one
    /// export evaluation, not a hundred.
    fn export_class(&self, peer: IpAddr) -> Option<u64> {
        self.sessions.get(&peer).map(export_class)
    }
}

fn export_class(session: &SessionContext) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let internal = session.peer_as == session.local_as;
    // Deterministic (fixed keys): classes from successive plans compare.
    let mut hasher = DefaultHasher::new();
    (internal, session.local_as, &session.filters).hash(&mut hasher);
    hasher.finish()
}

/// The routes at `indices` as a plugin batch: routes share attribute
/// sets, and each distinct set is sent once.
fn batch(routes: &[Candidate<'_>], indices: &[usize]) -> (Vec<sdk::Attributes>, Vec<sdk::Route>) {
    let mut sets = Vec::new();
    let mut index: HashMap<(*const starling_speaker::rib::RouteAttrs, bool), u32> = HashMap::new();
    let batch = indices
        .iter()
        .map(|&i| {
            let c = &routes[i];
            let key = (std::ptr::from_ref(c.route), c.from_peer);
            let attributes = *index.entry(key).or_insert_with(|| {
                sets.push(to_sdk(&c.route.attrs, c.from_peer));
                sets.len() as u32 - 1
            });
            sdk::Route {
                prefix: sdk::Prefix::new(c.prefix.addr(), c.prefix.prefix_len()),
                attributes,
            }
        })
        .collect();
    (sets, batch)
}

fn family_of(c: &Candidate<'_>) -> sdk::Family {
    match c.prefix.afi() {
        Afi::IPV6 => sdk::Family::Ipv6,
        _ => sdk::Family::Ipv4,
    }
}

/// What plugins see of a path's attributes.
fn to_sdk(attrs: &PathAttributes, from_peer: bool) -> sdk::Attributes {
    sdk::Attributes {
        as_path: flat_as_path(attrs),
        communities: attrs.communities.iter().map(|c| c.0).collect(),
        large_communities: attrs
            .large_communities
            .iter()
            .map(|l| (l.global, l.local1, l.local2))
            .collect(),
        local_pref: attrs.local_pref,
        from_peer,
        interface: None,
    }
}

fn flat_as_path(attrs: &PathAttributes) -> Vec<u32> {
    attrs
        .as_path
        .iter()
        .flat_map(|p| &p.segments)
        .flat_map(|s| s.asns.iter().copied())
        .collect()
}

/// The plugin's changes applied to the original attributes: what the
/// plugin can see (AS path, communities, large communities, LOCAL_PREF)
/// is taken from its answer; everything else is kept.
fn apply(original: &PathAttributes, changed: &sdk::Attributes) -> PathAttributes {
    let mut out = original.clone();
    // A path the plugin left alone keeps its segments (sets included);
    // a changed one becomes one AS_SEQUENCE.
    if changed.as_path != flat_as_path(original) {
        out.as_path = Some(AsPath::from_sequence(changed.as_path.iter().copied()));
    }
    out.communities = changed.communities.iter().map(|c| Community(*c)).collect();
    out.large_communities = changed
        .large_communities
        .iter()
        .map(|&(global, local1, local2)| LargeCommunity {
            global,
            local1,
            local2,
        })
        .collect();
    out.local_pref = changed.local_pref;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_classes_part_ibgp_from_ebgp_and_filters_not_external_ases() {
        let session = |name: &str, peer_as: u32, filters: &[&str]| SessionContext {
            name: name.to_owned(),
            peer_as,
            local_as: 64512,
            filters: filters.iter().map(|f| (*f).to_owned()).collect(),
        };
        let class = |s: SessionContext| export_class(&s);
        let tor = class(session("tor-a", 65001, &["f"]));
        assert_eq!(tor, class(session("tor-b", 65002, &["f"])));
        assert_ne!(tor, class(session("mesh", 64512, &["f"])), "iBGP");
        assert_ne!(tor, class(session("tor-c", 65001, &["g"])), "filters");
        assert_ne!(tor, class(session("tor-d", 65001, &[])), "no filters");
        let mut other_local = session("tor-e", 65001, &["f"]);
        other_local.local_as = 64513;
        assert_ne!(tor, class(other_local), "another local AS");
    }

    #[test]
    fn changes_apply_to_what_plugins_see_and_keep_the_rest() {
        let mut original = PathAttributes {
            as_path: Some(AsPath::from_sequence([65001, 65002])),
            med: Some(5),
            communities: vec![Community(1)],
            ..PathAttributes::default()
        };
        original.local_pref = Some(100);
        let mut seen = to_sdk(&original, true);
        assert_eq!(seen.as_path, [65001, 65002]);
        assert!(seen.from_peer);
        // Unchanged: identical attributes.
        assert_eq!(apply(&original, &seen), original);
        seen.as_path.insert(0, 64512);
        seen.communities.push(2);
        seen.local_pref = Some(200);
        let out = apply(&original, &seen);
        assert_eq!(
            out.as_path,
            Some(AsPath::from_sequence([64512, 65001, 65002]))
        );
        assert_eq!(out.communities, [Community(1), Community(2)]);
        assert_eq!(out.local_pref, Some(200));
        assert_eq!(out.med, Some(5));
    }
}
