//! What peers are sent: update groups (peers that export alike share one
//! Adj-RIB-Out and one encoding), the passes that send them what changed,
//! and the slow reader held back until it catches up.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use smallvec::SmallVec;
use starling_wire::{Afi, Family, MessageType, Nlri, PerFamily, Prefix, RouteRefresh};
use starling_wire::{Context, encode_end_of_rib};

use super::core::Core;
use super::export_cache::Exporter;
use super::links::{Link, Links};
use super::peer::{Behind, GroupId, PeerEntry};
use super::timers::Timer;
use crate::groups::{Audience, GroupAdjOut, GroupKey, Member, Members, Outgoing, UpdateGroup};
use crate::policy::{Candidate, Direction, Verdict};
use crate::rib::adj_out::{AddPathOut, PathIds, SetId};
use crate::rib::export::{ExportTarget, NextHopMode};
use crate::rib::{BestChange, Path, PeerInfo, Slot, Source};

/// A peer with more than this many octets unread stops being sent
/// updates ...
pub(super) const BACKLOG_HIGH: usize = 4 << 20;
/// ... until it is down to this many; then it gets what changed meanwhile.
/// Each peer's queue is bounded by about `BACKLOG_HIGH` plus one batch.
pub(super) const BACKLOG_LOW: usize = 1 << 20;
/// How often a peer that is behind is looked at.
pub(super) const BACKLOG_POLL: Duration = Duration::from_millis(5);

/// One change, as one group sees it.
struct Work<'a> {
    change: &'a BestChange,
    family: Family,
    /// ADD-PATH send: every path goes, each with its id.
    every_path: bool,
    /// The paths to evaluate (none: the prefix is gone).
    paths: &'a [Path],
}

impl<L: Links> Core<L> {
    pub(super) fn group_ids(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    /// Re-evaluate what every peer is sent; only differences go out.
    pub(super) fn readvertise_all(&mut self) {
        let all = self.all_best();
        for id in self.group_ids() {
            self.advertise(id, &all);
        }
    }

    pub(super) fn retry_export(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        entry.export_retry_pending = false;
        if let Some(id) = entry.group {
            let all = self.all_best();
            self.advertise(id, &all);
        }
    }

    fn all_best(&self) -> Vec<BestChange> {
        self.rib
            .iter_best()
            .map(|(prefix, slot, path)| BestChange {
                prefix,
                slot,
                best: smallvec::smallvec![path.clone()],
                best_changed: true,
            })
            .collect()
    }

    /// What decides the group of an established peer, and the target its
    /// group exports to.
    fn group_key(&self, address: IpAddr) -> Option<(GroupKey, ExportTarget)> {
        let entry = self.peers.get(&address)?;
        let n = entry.negotiated.as_ref()?;
        // Ourselves as next hop: the configured address, else the
        // session's source address, else the address the connection
        // actually has (a session with no source address configured, as
        // Calico's `sourceAddress: None`), else (a family the session is
        // not of) the node's address in that family.
        let local = entry
            .policy
            .next_hop_address
            .or(entry.cfg.local_address)
            .or_else(|| n.endpoints.map(|(local, _)| local.ip().to_canonical()));
        let own = entry.policy.own_addresses;
        let target = ExportTarget {
            info: entry.info(address, n),
            next_hop: entry.policy.next_hop,
            local_v4: match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => own.v4,
            },
            local_v6: match local {
                Some(IpAddr::V6(a)) => Some(a),
                _ => own.v6,
            },
            local_as: entry.policy.local_as,
            extended_next_hop: n.codec.extended_next_hop,
            // Only an eBGP peer's automatic next hop looks at the subnet,
            // and only a peer on it can be sent a third-party next hop:
            // peers elsewhere export alike and may share a group.
            shared_subnet: entry.policy.shared_subnet.filter(|&subnet| {
                entry.cfg.is_ebgp()
                    && entry.policy.next_hop == NextHopMode::Auto
                    && crate::rib::export::within(address, subnet)
            }),
        };
        let codec = encoding_only(&n.codec);
        // A route policy decides per peer unless it promises otherwise; a
        // third-party next hop depends on the peer's address; ADD-PATH
        // path ids are kept per peer.
        let policy = self.route_policy.as_ref().map(|p| p.export_class(address));
        let unique = (policy.is_some_and(|class| class.is_none())
            || target.shared_subnet.is_some()
            || codec.add_path_send != PerFamily::NONE)
            .then_some(address);
        let target = match unique {
            Some(_) => target,
            // Split horizon is the group's business (see crate::groups);
            // export never looks at the peer's AS (eBGP peers in different
            // ASes are sent the same, as an exchange's members are) nor at
            // what it may import.
            None => ExportTarget {
                info: PeerInfo {
                    address: IpAddr::from([0, 0, 0, 0]),
                    router_id: Ipv4Addr::UNSPECIFIED,
                    asn: 0,
                    allow_own_as: 0,
                    ..target.info
                },
                ..target
            },
        };
        let key = GroupKey {
            target: target.clone(),
            codec,
            policy: policy.flatten(),
            unique,
        };
        Some((key, target))
    }

    /// Put an established peer into the group of the peers that export
    /// alike, and send it what the group holds.
    fn join(&mut self, address: IpAddr) {
        let Some((key, target)) = self.group_key(address) else {
            return;
        };
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let member = entry.member;
        let existing = self
            .groups
            .iter()
            .find(|(_, g)| g.key == key)
            .map(|(id, _)| *id);
        match existing {
            None => {
                let id = self.next_group;
                self.next_group += 1;
                let mut group = UpdateGroup::new(key, target, address);
                group.members.push((address, member));
                self.groups.insert(id, group);
                entry.group = Some(id);
                tracing::debug!(peer = %address, group = id, "new update group");
                let all = self.all_best();
                self.advertise(id, &all);
            }
            Some(id) => {
                entry.group = Some(id);
                self.complete(id);
                if let Some(group) = self.groups.get_mut(&id) {
                    group.members.push((address, member));
                    tracing::debug!(peer = %address, group = id, members = group.members.len(), "joined an update group");
                }
                self.send_held(address, [], |_| true);
            }
        }
    }

    /// A group's second member is coming: export its first member's own
    /// routes, which were left out while it was alone (no message goes
    /// out: that member is not sent them).
    fn complete(&mut self, id: GroupId) {
        let Core {
            rib,
            groups,
            exported,
            exports,
            members,
            ..
        } = self;
        let Some(group) = groups.get_mut(&id) else {
            return;
        };
        let Some(sole) = group.sole.take() else {
            return;
        };
        let from = members.of(sole);
        let mut exporter = Exporter {
            rib,
            class: exports.class(&group.target),
            target: &group.target,
            sets: exported,
            cache: exports,
            last: None,
            no_next_hop: 0,
        };
        let families = group.key.codec.families;
        for (prefix, slot, path) in rib.iter_best() {
            if rib.source_of(path) != Source::Peer(sole)
                || !families.get(family_of(&prefix))
                || group.adj_out.get(slot).is_some()
            {
                continue;
            }
            if let Some(set) = exporter.export(None, path, None) {
                group.adj_out.advertise(exporter.sets, slot, set, from);
            }
        }
    }

    /// The peer is no longer sent anything (its session went down, or it
    /// is about to join another group).
    pub(super) fn leave_group(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        entry.behind = None;
        let Some(id) = entry.group.take() else {
            return;
        };
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        group.members.retain(|(a, _)| *a != address);
        if group.members.is_empty()
            && let Some(mut group) = self.groups.remove(&id)
        {
            group.clear(&mut self.exported);
        }
    }

    /// Move every peer whose group no longer fits it (a route policy came
    /// or went, its own policy changed) into a group of its own, holding
    /// what it holds now; the pass that follows sends it the differences.
    /// Groups do not merge again until their members' sessions restart.
    /// Whether any peer changed group (its new one holds what it was
    /// sent, for a pass of exports to correct).
    pub(super) fn regroup(&mut self) -> bool {
        let mut moved = false;
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            let Some((key, target)) = self.group_key(address) else {
                continue;
            };
            let Some(entry) = self.peers.get(&address) else {
                continue;
            };
            let (Some(id), member) = (entry.group, entry.member) else {
                continue;
            };
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            if group.key == key {
                continue;
            }
            tracing::debug!(peer = %address, group = id, "peer leaves its update group");
            moved = true;
            if group.members.len() == 1 {
                // Alone already: the group changes with it. Entries of its
                // own routes are withdrawn by the next pass, unheard by it.
                group.key = key;
                group.target = target;
                group.sole = Some(address);
                continue;
            }
            group.members.retain(|(a, _)| *a != address);
            let mut own = UpdateGroup::new(key, target, address);
            own.adj_out = group.adj_out.view_of(&mut self.exported, member);
            own.members.push((address, member));
            let new_id = self.next_group;
            self.next_group += 1;
            self.groups.insert(new_id, own);
            if let Some(entry) = self.peers.get_mut(&address) {
                entry.group = Some(new_id);
            }
        }
        moved
    }

    /// Ask an established peer that supports it to send everything again.
    pub(super) fn request_refresh(&self, address: IpAddr) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(n) = entry.negotiated.as_ref().filter(|n| n.route_refresh) else {
            return;
        };
        let mut bytes = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            if n.codec.families.get(family) {
                let message = starling_wire::Message::RouteRefresh(RouteRefresh::request(family));
                if let Err(e) = message.encode(&n.codec, &mut bytes) {
                    tracing::error!(peer = %address, "cannot encode ROUTE-REFRESH: {e}");
                    return;
                }
            }
        }
        entry.link.send(bytes.into(), MessageType::RouteRefresh);
    }

    /// Send a peer its whole table and End-of-RIB: on Established, and in
    /// answer to a ROUTE-REFRESH.
    pub(super) fn initial_advertisement(&mut self, address: IpAddr) {
        // A peer that kept our routes as stale waits for the whole table;
        // one that dropped them is better off with part of it now. So is a
        // peer restarting too: it sends its own table only after our
        // End-of-RIB (RFC 4724 §4.1), and the others still wait for that
        // table, so they never see an End-of-RIB without its routes.
        let defer = self
            .peers
            .get(&address)
            .is_some_and(|e| e.graceful.is_some() && !e.peer_restarting());
        if let Some(recovery) = &mut self.recovery
            && defer
        {
            recovery.deferred.insert(address);
            return;
        }
        match self.peers.get(&address).map(|e| e.group) {
            None => return,
            Some(None) => self.join(address),
            // Route refresh: the group's Adj-RIB-Out is what it was sent.
            Some(Some(_)) => self.send_held(address, [], |_| true),
        }
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(n) = &entry.negotiated else { return };
        let mut bytes = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            if n.codec.families.get(family) {
                encode_end_of_rib(family, &mut bytes);
            }
        }
        entry.link.send(bytes.into(), MessageType::Update);
    }

    /// A peer that is behind: has it read its backlog?
    pub(super) fn check_backlog(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        if entry.behind.is_none() {
            return;
        }
        if entry.link.backlog() > BACKLOG_LOW && !entry.link.is_closed() {
            self.timers
                .set(self.now + BACKLOG_POLL, Timer::Backlog(address));
            return;
        }
        self.catch_up(address);
    }

    /// A peer that was behind has read its backlog: withdraw what went
    /// meanwhile, then send the prefixes that changed, as its group holds
    /// them now.
    fn catch_up(&mut self, address: IpAddr) {
        let Some(entry) = self.peers.get_mut(&address) else {
            return;
        };
        let Some(behind) = entry.behind.take() else {
            return;
        };
        tracing::debug!(peer = %address, "peer caught up; sending what changed");
        let changed = behind.changed;
        self.send_held(address, behind.withdrawn, |slot| changed.contains(slot));
    }

    /// Send one member withdrawals of `withdrawn`, then what its group
    /// holds for it in the slots `wanted` picks: for a joining member or a
    /// route refresh every slot, for one that caught up those that
    /// changed meanwhile.
    fn send_held(
        &mut self,
        address: IpAddr,
        withdrawn: impl IntoIterator<Item = Nlri>,
        wanted: impl Fn(Slot) -> bool,
    ) {
        let Some(entry) = self.peers.get(&address) else {
            return;
        };
        let Some(group) = entry.group.and_then(|id| self.groups.get(&id)) else {
            return;
        };
        let ctx = &group.key.codec;
        let mut outgoing = Outgoing::default();
        for nlri in withdrawn {
            outgoing.withdraw(family_of(&nlri.prefix), Audience::All, nlri);
        }
        // A walk over the table, as slots do not know their prefix; a peer
        // pays for it once per BACKLOG_HIGH octets it falls behind by.
        for (prefix, slot, _) in self.rib.best_of_slots(wanted) {
            let family = family_of(&prefix);
            if !ctx.families.get(family) {
                continue;
            }
            if ctx.add_path_send.get(family) {
                for &(id, set) in group.add_path_out.get(slot) {
                    let nlri = Nlri::with_path_id(prefix, id);
                    outgoing.announce(family, set, Audience::All, slot, nlri);
                }
            } else if let Some(set) = group.adj_out.visible(slot, entry.member) {
                outgoing.announce(family, set, Audience::All, slot, Nlri::new(prefix));
            }
        }
        if outgoing.is_empty() {
            return;
        }
        for bytes in outgoing
            .encode(ctx, &self.exported)
            .for_member(entry.member)
        {
            entry.link.send(bytes, MessageType::Update);
        }
    }

    /// Send group `id` what changed for it, grouped by attribute set and
    /// encoded once: the best path per prefix, or in families with ADD-PATH
    /// send every path that may go to it. Export results are cached (see
    /// [`super::export_cache::ExportCache`]), so groups that export alike
    /// compute each only once.
    pub(super) fn advertise(&mut self, id: GroupId, changes: &[BestChange]) {
        let Some((live, behind)) = self.readers_of(id) else {
            return;
        };
        let Core {
            rib,
            peers,
            groups,
            exported,
            exports,
            members,
            path_ids,
            route_policy,
            ..
        } = self;
        let Some(group) = groups.get_mut(&id) else {
            return;
        };
        let work = work_for(&group.key.codec, rib, changes);
        // Policy first, on the Loc-RIB route; then the protocol's export
        // rules on what policy let through. A group with a policy has one
        // member, or members the policy promised to treat alike (see
        // Core::group_key).
        let policy_peer = group.members.first().map(|(a, _)| *a);
        let verdicts = match (route_policy.as_ref(), policy_peer) {
            (Some(policy), Some(peer)) => Some(export_verdicts(policy.as_ref(), peer, &work)),
            _ => None,
        };
        let policy_failed = matches!(verdicts, Some(Err(_)));
        if let Some(Err(e)) = &verdicts {
            tracing::warn!(peer = ?policy_peer, routes = work.len(), "export policy failed, no route changes sent; retrying in 1 s: {e}");
        }
        let mut verdicts = verdicts.and_then(Result::ok).map(Vec::into_iter);
        let mut exporter = Exporter {
            rib,
            class: exports.class(&group.target),
            target: &group.target,
            sets: exported,
            cache: exports,
            last: None,
            no_next_hop: 0,
        };
        let mut outgoing = Outgoing::tracking_slots(!behind.is_empty());
        let mut pass = Pass {
            sole: group.sole,
            adj_out: &mut group.adj_out,
            add_path_out: &mut group.add_path_out,
            exporter: &mut exporter,
            members,
            path_ids,
            outgoing: &mut outgoing,
            wanted: SmallVec::new(),
            paths: SmallVec::new(),
            gone: Vec::new(),
            sent: Vec::new(),
        };
        for w in work {
            // Routes a failed policy would decide on stay as they are; a
            // prefix that is gone goes all the same.
            if !policy_failed || w.paths.is_empty() {
                pass.change(&w, &mut verdicts);
            }
        }
        if !outgoing.is_empty() {
            let encoded = outgoing.encode(&group.key.codec, exporter.sets);
            for (link, member) in &live {
                for bytes in encoded.for_member(*member) {
                    link.send(bytes, MessageType::Update);
                }
            }
            for address in &behind {
                if let Some(entry) = peers.get_mut(address) {
                    hold_for_later(entry, &outgoing);
                }
            }
        }
        if exporter.no_next_hop > 0 {
            let withheld = exporter.no_next_hop;
            for (address, _) in &group.members {
                if let Some(entry) = peers.get_mut(address) {
                    entry.no_next_hop += withheld;
                    if !std::mem::replace(&mut entry.no_next_hop_warned, true) {
                        // Once per session: a route that needs us as its
                        // next hop and a session without an address of
                        // its family stay that way until reconfigured.
                        tracing::warn!(
                            peer = %address,
                            routes = withheld,
                            "routes not advertised: no next hop to give (the session has no local address of the routes' family); counted in bgp_routes_without_next_hop_total"
                        );
                    }
                }
            }
        }
        if policy_failed && let Some(peer) = policy_peer {
            // The peer must not keep a stale view for ever: the whole table
            // is evaluated again shortly (only differences go out).
            self.schedule_retry(Timer::RetryExport(peer));
        }
    }

    /// Group `id`'s members that read what they are sent, and those that
    /// are behind: members that do not read are told later what changed
    /// (see [`Core::catch_up`]), as encoding more for them would only grow
    /// their queues. A member newly behind gets a timer that watches its
    /// backlog.
    #[allow(clippy::type_complexity)]
    fn readers_of(
        &mut self,
        id: GroupId,
    ) -> Option<(SmallVec<[(L::Link, Member); 4]>, SmallVec<[IpAddr; 4]>)> {
        let group = self.groups.get(&id)?;
        let mut live = SmallVec::new();
        let mut behind = SmallVec::new();
        for &(address, member) in &group.members {
            let Some(entry) = self.peers.get_mut(&address) else {
                continue;
            };
            if entry.behind.is_none() && entry.link.backlog() <= BACKLOG_HIGH {
                live.push((entry.link.clone(), member));
                continue;
            }
            let state = entry.behind.get_or_insert_with(|| {
                tracing::debug!(peer = %address, "peer is behind; holding its updates");
                Behind::default()
            });
            if !std::mem::replace(&mut state.watched, true) {
                self.timers
                    .set(self.now + BACKLOG_POLL, Timer::Backlog(address));
            }
            behind.push(address);
        }
        Some((live, behind))
    }
}

/// One export pass of one group: what each change means for it, into
/// its Adj-RIB-Out and the UPDATEs that go out.
struct Pass<'p, 'e> {
    /// The group's only member, whose own routes it is not sent.
    sole: Option<IpAddr>,
    adj_out: &'p mut GroupAdjOut,
    add_path_out: &'p mut AddPathOut,
    exporter: &'p mut Exporter<'e>,
    members: &'p mut Members,
    path_ids: &'p mut PathIds,
    outgoing: &'p mut Outgoing,
    // Scratch space, reused across changes.
    wanted: SmallVec<[(u32, SetId, Member); 4]>,
    paths: SmallVec<[(u32, SetId); 4]>,
    gone: Vec<u32>,
    sent: Vec<(u32, SetId)>,
}

impl Pass<'_, '_> {
    /// Export `w`'s paths (with the policy's verdicts, one per path, when
    /// there is a policy) and record what the group must be sent.
    fn change(&mut self, w: &Work<'_>, verdicts: &mut Option<std::vec::IntoIter<Verdict>>) {
        let (prefix, slot) = (w.change.prefix, w.change.slot);
        self.wanted.clear();
        for path in w.paths {
            let verdict = verdicts.as_mut().and_then(Iterator::next);
            if let Some(set) = self.exporter.export(self.sole, path, verdict) {
                let source = self.exporter.rib.source_of(path);
                let path_id = match w.every_path {
                    true => self.path_ids.get(source, path.path_id),
                    false => 0,
                };
                let from = match source {
                    Source::Peer(a) => self.members.of(a),
                    Source::Local => 0,
                };
                self.wanted.push((path_id, set, from));
            }
        }
        let sets = &mut *self.exporter.sets;
        if w.every_path {
            // Unique groups only: the member is never a path's source.
            self.paths.clear();
            self.paths
                .extend(self.wanted.iter().map(|&(id, set, _)| (id, set)));
            self.add_path_out
                .sync(sets, slot, &self.paths, &mut self.gone, &mut self.sent);
            for id in self.gone.drain(..) {
                let nlri = Nlri::with_path_id(prefix, id);
                self.outgoing.withdraw(w.family, Audience::All, nlri);
            }
            for (id, set) in self.sent.drain(..) {
                let nlri = Nlri::with_path_id(prefix, id);
                self.outgoing
                    .announce(w.family, set, Audience::All, slot, nlri);
            }
        } else if let Some(&(_, set, from)) = self.wanted.first() {
            let before = self.adj_out.get(slot);
            if self.adj_out.advertise(sets, slot, set, from) {
                let audience = Audience::of_route_from(from);
                self.outgoing
                    .announce(w.family, set, audience, slot, Nlri::new(prefix));
                if from != 0 && before.is_some_and(|(_, f)| f != from) {
                    // Its own route won over what it had: that goes.
                    self.outgoing
                        .withdraw(w.family, Audience::Only(from), Nlri::new(prefix));
                }
            }
        } else if let Some(from) = self.adj_out.withdraw(sets, slot) {
            let audience = Audience::of_route_from(from);
            self.outgoing
                .withdraw(w.family, audience, Nlri::new(prefix));
        }
    }
}

/// Remember what a member that is behind was not sent.
fn hold_for_later<L>(entry: &mut PeerEntry<L>, outgoing: &Outgoing) {
    let member = entry.member;
    let Some(state) = &mut entry.behind else {
        return;
    };
    state
        .withdrawn
        .extend(outgoing.withdrawals_for(member).copied());
    for &(slot, audience) in &outgoing.slots {
        if audience.includes(member) {
            state.changed.insert(slot);
        }
    }
}

/// Per change, the paths a group with this codec may be sent: with
/// ADD-PATH all of the prefix's paths as they are now; else the best path,
/// and only if the selection moved.
fn work_for<'a>(
    ctx: &Context,
    rib: &'a crate::rib::Rib,
    changes: &'a [BestChange],
) -> Vec<Work<'a>> {
    changes
        .iter()
        .filter_map(|change| {
            let family = family_of(&change.prefix);
            if !ctx.families.get(family) {
                return None;
            }
            let every_path = ctx.add_path_send.get(family);
            let paths = if every_path {
                rib.paths_at(change.slot)
            } else if change.best_changed {
                &change.best[..change.best.len().min(1)]
            } else {
                return None;
            };
            Some(Work {
                change,
                family,
                every_path,
                paths,
            })
        })
        .collect()
}

/// The policy's export verdicts for every path of `work`, one each.
fn export_verdicts(
    policy: &dyn crate::policy::RoutePolicy,
    peer: IpAddr,
    work: &[Work<'_>],
) -> Result<Vec<Verdict>, String> {
    let candidates: Vec<Candidate<'_>> = work
        .iter()
        .flat_map(|w| w.paths.iter().map(|path| (w.change.prefix, path)))
        .map(|(prefix, path)| Candidate {
            prefix,
            route: &path.route,
            from_peer: !path.is_local(),
        })
        .collect();
    let verdicts = policy.evaluate(peer, Direction::Export, &candidates)?;
    if verdicts.len() != candidates.len() {
        return Err(format!(
            "{} verdicts for {} routes",
            verdicts.len(),
            candidates.len()
        ));
    }
    Ok(verdicts)
}

/// A session's codec parameters without what only decoding looks at,
/// which does not split groups.
fn encoding_only(codec: &Context) -> Context {
    let mut codec = codec.clone();
    codec.local_ipv4 = None;
    codec.add_path_receive = PerFamily::NONE;
    codec.enhanced_route_refresh = false;
    codec.peer_as = 0;
    codec.enforce_first_as = false;
    codec.mp_errors = Default::default();
    codec
}

pub(super) fn family_of(prefix: &Prefix) -> Family {
    match prefix.afi() {
        Afi::IPV6 => Family::IPV6_UNICAST,
        _ => Family::IPV4_UNICAST,
    }
}
