//! Update groups: peers that export alike share one Adj-RIB-Out and one
//! encoding of every UPDATE.
//!
//! A reflector's clients, a route server's members, a Calico node's mesh
//! peers: each is sent the same routes with the same attributes, except
//! that no peer is sent its own routes back (split horizon). A group keeps
//! one Adj-RIB-Out for all of its members, noting per prefix whose route
//! it is, and encodes each pass once. Each part of the encoding names its
//! audience ([`Audience`]): everyone, everyone but the route's source, or
//! only the source (which must drop the route it had before its own won).
//! Members are sent slices of the one encoding: a member with nothing
//! withheld one slice, one with something withheld the slices around it.
//!
//! The instance decides who belongs together ([`GroupKey`]) and drives
//! the passes; this module is the bookkeeping and the encoding.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use starling_wire::{Context, Family, Nlri, ReachEncoder, encode_withdrawals};

use crate::rib::Slot;
use crate::rib::adj_out::{AddPathOut, AdjRibOut, SetId, SetTable};
use crate::rib::export::ExportTarget;

/// A peer, as the routes it is the source of name it: 0 is no peer (a
/// locally originated route).
pub(crate) type Member = u32;

/// Numbers for peer addresses, kept for the instance's lifetime (a few
/// per configured peer), so an Adj-RIB-Out entry names its route's source
/// in four bytes.
#[derive(Debug, Default)]
pub(crate) struct Members {
    ids: HashMap<IpAddr, Member>,
}

impl Members {
    pub(crate) fn of(&mut self, address: IpAddr) -> Member {
        let next = self.ids.len() as Member + 1;
        *self.ids.entry(address).or_insert(next)
    }
}

/// Who among a group's members one part of a pass is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Audience {
    All,
    /// Everyone but the route's source.
    AllBut(Member),
    /// The route's source alone: its own route replaced what it had.
    Only(Member),
}

impl Audience {
    /// The audience of a route from `from`.
    pub(crate) fn of_route_from(from: Member) -> Self {
        match from {
            0 => Audience::All,
            m => Audience::AllBut(m),
        }
    }

    pub(crate) fn includes(self, member: Member) -> bool {
        match self {
            Audience::All => true,
            Audience::AllBut(m) => m != member,
            Audience::Only(m) => m == member,
        }
    }
}

/// What a group has been sent: per RIB slot, the exported set and the
/// member whose route it is (who was not sent it).
#[derive(Debug, Default)]
pub(crate) struct GroupAdjOut {
    sets: AdjRibOut,
    /// Indexed by slot; grows only when a peer's route is first recorded.
    from: Vec<Member>,
    /// Entries per source, so a member's count is cheap to give.
    per_source: FxHashMap<Member, usize>,
}

impl GroupAdjOut {
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sets.heap_bytes()
            + self.from.capacity() * size_of::<Member>()
            + self.per_source.capacity() * (size_of::<(Member, usize)>() + 1)
    }

    pub(crate) fn get(&self, slot: Slot) -> Option<(SetId, Member)> {
        let set = self.sets.get(slot)?;
        Some((set, self.from.get(slot as usize).copied().unwrap_or(0)))
    }

    /// The set `member` holds `slot` with, if it holds it.
    pub(crate) fn visible(&self, slot: Slot, member: Member) -> Option<SetId> {
        self.get(slot)
            .filter(|&(_, from)| from != member)
            .map(|(set, _)| set)
    }

    /// Record `slot` as sent with `set`, from `from`; `false` when it
    /// already was.
    pub(crate) fn advertise(
        &mut self,
        sets: &mut SetTable,
        slot: Slot,
        set: SetId,
        from: Member,
    ) -> bool {
        let old_from = self.source_of(slot);
        if self.get(slot) == Some((set, from)) {
            return false;
        }
        if self.sets.get(slot).is_some() {
            self.uncount(old_from);
        }
        self.sets.advertise(sets, slot, set);
        let i = slot as usize;
        if from != 0 && i >= self.from.len() {
            self.from.resize(i + 1, 0);
        }
        if let Some(f) = self.from.get_mut(i) {
            *f = from;
        }
        if from != 0 {
            *self.per_source.entry(from).or_default() += 1;
        }
        true
    }

    /// Record `slot` as withdrawn: whose route it was, if it was sent.
    pub(crate) fn withdraw(&mut self, sets: &mut SetTable, slot: Slot) -> Option<Member> {
        if !self.sets.withdraw(sets, slot) {
            return None;
        }
        let from = self.source_of(slot);
        self.uncount(from);
        if let Some(f) = self.from.get_mut(slot as usize) {
            *f = 0;
        }
        Some(from)
    }

    fn source_of(&self, slot: Slot) -> Member {
        self.from.get(slot as usize).copied().unwrap_or(0)
    }

    fn uncount(&mut self, from: Member) {
        if from == 0 {
            return;
        }
        if let Some(n) = self.per_source.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&from);
            }
        }
    }

    /// Prefixes `member` holds.
    pub(crate) fn len_for(&self, member: Member) -> usize {
        self.sets.len() - self.per_source.get(&member).copied().unwrap_or(0)
    }

    /// What `member` holds, as an Adj-RIB-Out of its own (it leaves the
    /// group). Walks every slot.
    pub(crate) fn view_of(&self, sets: &mut SetTable, member: Member) -> GroupAdjOut {
        let mut view = GroupAdjOut::default();
        for slot in 0..self.sets.capacity() as Slot {
            if let Some((set, from)) = self.get(slot)
                && from != member
            {
                view.advertise(sets, slot, set, from);
            }
        }
        view
    }

    pub(crate) fn clear(&mut self, sets: &mut SetTable) {
        self.sets.clear(sets);
        self.from = Vec::new();
        self.per_source.clear();
    }
}

/// What decides whether peers may share a group: everything export and
/// encoding look at, but the peer's address and router id (unless
/// `unique`, when the peer is alone: a route policy decides for it alone,
/// its third-party next hop depends on its address, or it has ADD-PATH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupKey {
    pub(crate) target: ExportTarget,
    pub(crate) codec: Context,
    /// The route policy's export class (see
    /// [`crate::policy::RoutePolicy::export_class`]).
    pub(crate) policy: Option<u64>,
    pub(crate) unique: Option<IpAddr>,
}

/// Peers sent the same UPDATEs.
#[derive(Debug)]
pub(crate) struct UpdateGroup {
    pub(crate) key: GroupKey,
    /// The target routes are exported to: the key's (no address) for a
    /// group that may be shared, the peer's own for a unique one.
    pub(crate) target: ExportTarget,
    pub(crate) members: Vec<(IpAddr, Member)>,
    pub(crate) adj_out: GroupAdjOut,
    /// Families with ADD-PATH send, only in unique groups.
    pub(crate) add_path_out: AddPathOut,
    /// While a group has had one member only, that member's own routes
    /// are not exported at all (no entry, no work): a peer alone in its
    /// group, the common case outside reflectors, pays nothing for
    /// sharing. A second member first completes the table
    /// ([`UpdateGroup::sole`] is then cleared for good).
    pub(crate) sole: Option<IpAddr>,
}

impl UpdateGroup {
    pub(crate) fn new(key: GroupKey, target: ExportTarget, first: IpAddr) -> Self {
        Self {
            key,
            target,
            members: Vec::new(),
            adj_out: GroupAdjOut::default(),
            add_path_out: AddPathOut::default(),
            sole: Some(first),
        }
    }

    pub(crate) fn clear(&mut self, sets: &mut SetTable) {
        self.adj_out.clear(sets);
        self.add_path_out.clear(sets);
    }

    /// Heap bytes of what the group has been sent (its Adj-RIB-Out).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.adj_out.heap_bytes() + self.add_path_out.heap_bytes()
    }

    /// Routes `member` holds.
    pub(crate) fn advertised_to(&self, member: Member) -> usize {
        self.adj_out.len_for(member) + self.add_path_out.len()
    }
}

/// One pass's UPDATE contents for a group, grouped: withdrawals per
/// (family, audience), announcements per (family, set, audience).
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    withdraw: Vec<((Family, Audience), Vec<Nlri>)>,
    announce: Vec<((Family, SetId, Audience), Vec<Nlri>)>,
    /// Where each (family, set, audience) is in `announce`.
    groups: FxHashMap<(Family, SetId, Audience), usize>,
    /// The group used last: consecutive prefixes usually share it.
    last: Option<((Family, SetId, Audience), usize)>,
    /// With `track_slots`: each announced slot and its audience, for
    /// members that are behind and are told later.
    pub(crate) slots: Vec<(Slot, Audience)>,
    track_slots: bool,
}

impl Outgoing {
    /// Also record announced slots (some member is behind).
    pub(crate) fn tracking_slots(track: bool) -> Self {
        Self {
            track_slots: track,
            ..Self::default()
        }
    }

    pub(crate) fn withdraw(&mut self, family: Family, audience: Audience, nlri: Nlri) {
        let key = (family, audience);
        match self.withdraw.iter_mut().find(|(k, _)| *k == key) {
            Some((_, all)) => all.push(nlri),
            None => self.withdraw.push((key, vec![nlri])),
        }
    }

    pub(crate) fn announce(
        &mut self,
        family: Family,
        set: SetId,
        audience: Audience,
        slot: Slot,
        nlri: Nlri,
    ) {
        let key = (family, set, audience);
        let group = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let next = self.announce.len();
                let i = *self.groups.entry(key).or_insert(next);
                if i == next {
                    self.announce.push((key, Vec::new()));
                }
                self.last = Some((key, i));
                i
            }
        };
        self.announce[group].1.push(nlri);
        if self.track_slots {
            self.slots.push((slot, audience));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }

    /// The withdrawals `member` is to be sent.
    pub(crate) fn withdrawals_for(&self, member: Member) -> impl Iterator<Item = &Nlri> {
        self.withdraw
            .iter()
            .filter(move |((_, a), _)| a.includes(member))
            .flat_map(|(_, nlri)| nlri)
    }

    /// Withdrawals first, then announcements in the order their sets were
    /// first used, then what single members are told alone; each part
    /// marked with its audience. A source's own withdrawal concerns a
    /// prefix nobody else is sent in this pass, so it may come last, and
    /// everyone else shares what comes before.
    pub(crate) fn encode(&self, ctx: &Context, sets: &SetTable) -> Encoded {
        let mut bytes = Vec::new();
        let mut parts: Vec<(Range<usize>, Audience)> = Vec::new();
        let mut mark = |bytes: &Vec<u8>, start: usize, audience: Audience| {
            if bytes.len() == start {
                return;
            }
            match parts.last_mut() {
                Some((range, a)) if *a == audience && range.end == start => range.end = bytes.len(),
                _ => parts.push((start..bytes.len(), audience)),
            }
        };
        let single = |a: &Audience| matches!(a, Audience::Only(_));
        for ((family, audience), nlri) in self.withdraw.iter().filter(|((_, a), _)| !single(a)) {
            let start = bytes.len();
            encode_withdrawals(*family, nlri, ctx, &mut bytes);
            mark(&bytes, start, *audience);
        }
        for ((family, set, audience), nlri) in &self.announce {
            let start = bytes.len();
            let route = sets.attrs(*set);
            match ReachEncoder::new(&route.attrs, *family, route.next_hop, ctx) {
                Ok(encoder) => {
                    encoder.encode(nlri, &mut bytes);
                }
                Err(e) => tracing::error!(%family, "cannot encode {} prefixes: {e}", nlri.len()),
            }
            mark(&bytes, start, *audience);
        }
        for ((family, audience), nlri) in self.withdraw.iter().filter(|((_, a), _)| single(a)) {
            let start = bytes.len();
            encode_withdrawals(*family, nlri, ctx, &mut bytes);
            mark(&bytes, start, *audience);
        }
        Encoded {
            bytes: Bytes::from(bytes),
            parts,
        }
    }
}

/// A pass encoded once for a whole group.
#[derive(Debug)]
pub(crate) struct Encoded {
    bytes: Bytes,
    parts: Vec<(Range<usize>, Audience)>,
}

impl Encoded {
    /// What `member` is sent, as slices of the shared encoding (nothing is
    /// copied): its parts, with neighbouring ones joined. A member with
    /// nothing withheld gets one slice of everything before the parts for
    /// single members; one whose own routes are in the pass, a slice on
    /// either side of them.
    pub(crate) fn for_member(&self, member: Member) -> SmallVec<[Bytes; 2]> {
        let mut out = SmallVec::new();
        let mut run: Option<Range<usize>> = None;
        for (range, _) in self.parts.iter().filter(|(_, a)| a.includes(member)) {
            match &mut run {
                Some(r) if r.end == range.start => r.end = range.end,
                _ => {
                    if let Some(r) = run.replace(range.clone()) {
                        out.push(self.bytes.slice(r));
                    }
                }
            }
        }
        if let Some(r) = run {
            out.push(self.bytes.slice(r));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use starling_wire::{Message, NextHop, PathAttributes, Prefix};

    use super::*;
    use crate::rib::RouteAttrs;

    fn set(sets: &mut SetTable, n: u8) -> SetId {
        sets.intern(RouteAttrs {
            attrs: PathAttributes {
                med: Some(n.into()),
                ..PathAttributes::default()
            },
            next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, n)),
        })
    }

    fn nlri(s: &str) -> Nlri {
        Nlri::new(s.parse::<Prefix>().unwrap())
    }

    /// The prefixes announced and withdrawn in `bytes`, in order.
    fn decode(bytes: &[u8], ctx: &Context) -> (Vec<Prefix>, Vec<Prefix>) {
        let (mut announced, mut withdrawn) = (Vec::new(), Vec::new());
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
            let (message, tail) = rest.split_at(len);
            rest = tail;
            let Ok(Message::Update(parsed)) = Message::decode(message, ctx) else {
                panic!("not an UPDATE");
            };
            let u = &parsed.update;
            announced.extend(
                u.nlri
                    .iter()
                    .chain(u.mp_reach.iter().flat_map(|m| &m.nlri))
                    .map(|n| n.prefix),
            );
            withdrawn.extend(u.withdrawals(false).map(|n| n.prefix));
        }
        (announced, withdrawn)
    }

    #[test]
    fn audiences() {
        assert!(Audience::All.includes(3));
        assert!(Audience::of_route_from(0).includes(3));
        assert!(!Audience::of_route_from(3).includes(3));
        assert!(Audience::of_route_from(3).includes(4));
        assert!(Audience::Only(3).includes(3));
        assert!(!Audience::Only(3).includes(4));
    }

    #[test]
    fn a_member_does_not_hold_its_own_routes() {
        let mut sets = SetTable::default();
        let (a, b) = (set(&mut sets, 1), set(&mut sets, 2));
        let mut out = GroupAdjOut::default();
        assert!(out.advertise(&mut sets, 0, a, 0));
        assert!(out.advertise(&mut sets, 5, b, 7));
        assert!(!out.advertise(&mut sets, 5, b, 7), "nothing changed");
        assert_eq!(out.visible(0, 7), Some(a));
        assert_eq!(out.visible(5, 7), None, "its own route");
        assert_eq!(out.visible(5, 8), Some(b));
        assert_eq!((out.len_for(7), out.len_for(8)), (1, 2));
        // The same set from another source is a change: member 7 now holds
        // it.
        assert!(out.advertise(&mut sets, 5, b, 8));
        assert_eq!((out.len_for(7), out.len_for(8)), (2, 1));
        let view = out.view_of(&mut sets, 8);
        assert_eq!((view.get(0), view.get(5)), (Some((a, 0)), None));
        assert_eq!(out.withdraw(&mut sets, 5), Some(8));
        assert_eq!(out.withdraw(&mut sets, 5), None);
        assert_eq!((out.len_for(7), out.len_for(8)), (1, 1));
        out.clear(&mut sets);
        let mut view = view;
        view.clear(&mut sets);
        sets.collect_unused();
        assert!(sets.is_empty(), "every set released");
    }

    #[test]
    fn a_pass_is_encoded_once_and_each_member_gets_its_part() {
        let mut sets = SetTable::default();
        let (shared, from_7) = (set(&mut sets, 1), set(&mut sets, 2));
        let ctx = Context::default();
        let v4 = Family::IPV4_UNICAST;
        let mut pass = Outgoing::default();
        pass.withdraw(v4, Audience::All, nlri("198.51.100.0/24"));
        pass.announce(v4, shared, Audience::All, 0, nlri("203.0.113.0/24"));
        pass.announce(v4, from_7, Audience::AllBut(7), 1, nlri("203.0.113.64/26"));
        // Member 7 had another route for this prefix; its own now won.
        pass.withdraw(v4, Audience::Only(7), nlri("203.0.113.64/26"));
        let encoded = pass.encode(&ctx, &sets);

        let to_8 = encoded.for_member(8);
        assert_eq!(to_8.len(), 1);
        assert_eq!(
            to_8[0].as_ptr(),
            encoded.bytes.as_ptr(),
            "a member with nothing withheld shares the encoding"
        );
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        assert_eq!(
            decode(&to_8[0], &ctx),
            (
                vec![p("203.0.113.0/24"), p("203.0.113.64/26")],
                vec![p("198.51.100.0/24")]
            )
        );
        let to_7: Vec<u8> = encoded.for_member(7).concat();
        assert_eq!(
            decode(&to_7, &ctx),
            (
                vec![p("203.0.113.0/24")],
                vec![p("198.51.100.0/24"), p("203.0.113.64/26")]
            )
        );
        let only = Outgoing::default();
        assert!(only.encode(&ctx, &sets).for_member(1).is_empty());
        assert_eq!(
            pass.withdrawals_for(8).count(),
            1,
            "the source's own withdrawal is not another member's"
        );
    }
}
