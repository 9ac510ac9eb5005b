//! What the instance keeps per configured peer.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use starling_wire::capability::GracefulRestart;
use starling_wire::{Family, Nlri};

use super::links::Link;
use super::{PeerPolicy, SYNC_GRACE};
use crate::config::PeerConfig;
use crate::groups::Member;
use crate::rib::{PeerInfo, Slot};
use crate::session::Negotiated;

pub(super) type GroupId = u32;

pub(super) struct PeerEntry<L> {
    pub(super) link: L,
    /// The peer's graceful restart capability from the last session: kept
    /// after it goes down to decide what to do with its routes.
    pub(super) graceful: Option<GracefulRestart>,
    pub(super) graceful_notification: bool,
    /// Bumped on every restart timer start, so stale timer firings are
    /// recognised and ignored.
    pub(super) restart_generation: u64,
    /// Families whose stale routes wait for End-of-RIB.
    pub(super) awaiting_eor: Vec<Family>,
    pub(super) cfg: PeerConfig,
    pub(super) policy: PeerPolicy,
    pub(super) negotiated: Option<Negotiated>,
    /// The update group it is in while established (what it was sent is
    /// the group's Adj-RIB-Out).
    pub(super) group: Option<GroupId>,
    /// How the groups' Adj-RIB-Outs name this peer as a route's source.
    pub(super) member: Member,
    /// Families whose End-of-RIB this session has not yet received, and
    /// when the session came up.
    pub(super) initial_eor: Vec<Family>,
    pub(super) established_at: Option<Instant>,
    /// The peer reads slower than it is sent routes: nothing more is
    /// encoded for it until it has read most of its backlog; then it gets
    /// what changed meanwhile (see `Core::catch_up`).
    pub(super) behind: Option<Behind>,
    /// A full re-evaluation after a failed export is scheduled.
    pub(super) export_retry_pending: bool,
    /// A ROUTE-REFRESH after a failed import is scheduled.
    pub(super) import_retry_pending: bool,
    /// Routes withheld from the peer for want of a next hop, ever; and
    /// whether this session has said so in the log.
    pub(super) no_next_hop: u64,
    pub(super) no_next_hop_warned: bool,
}

impl<L: Link> PeerEntry<L> {
    pub(super) fn new(link: L, cfg: PeerConfig, policy: PeerPolicy, member: Member) -> Self {
        Self {
            link,
            graceful: None,
            graceful_notification: false,
            restart_generation: 0,
            awaiting_eor: Vec::new(),
            cfg,
            policy,
            negotiated: None,
            group: None,
            member,
            initial_eor: Vec::new(),
            established_at: None,
            behind: None,
            export_retry_pending: false,
            import_retry_pending: false,
            no_next_hop: 0,
            no_next_hop_warned: false,
        }
    }

    /// Established, and it has sent its whole table by `now`.
    pub(super) fn synced(&self, now: Instant) -> bool {
        self.established_at.is_some_and(|at| {
            self.initial_eor.is_empty() || now.saturating_duration_since(at) >= SYNC_GRACE
        })
    }

    /// The peer restarted too (the R bit in its OPEN): it waits for our
    /// End-of-RIB before it sends its table (RFC 4724 §4.1), so it is
    /// sent ours at once rather than deferred.
    pub(super) fn peer_restarting(&self) -> bool {
        self.established_at.is_some() && self.graceful.as_ref().is_some_and(|g| g.restarting)
    }

    /// Whether the peer may be sent every path of some family.
    pub(super) fn sends_every_path(&self) -> bool {
        self.cfg.add_path.iter().any(|(_, mode)| mode.can_send())
    }

    pub(super) fn set_restarting(&mut self, restarting: bool) {
        if let Some(gr) = &mut self.cfg.graceful_restart {
            gr.restarting = restarting;
        }
        self.link.set_restarting(restarting);
    }

    /// What the RIB needs to know about this peer on this session.
    pub(super) fn info(&self, address: IpAddr, n: &Negotiated) -> PeerInfo {
        PeerInfo {
            address,
            router_id: n.peer_id,
            asn: n.peer_as,
            ebgp: self.cfg.is_ebgp(),
            rr_client: self.policy.rr_client,
            allow_own_as: self.policy.allow_own_as,
        }
    }
}

/// What a peer that fell behind must still be told.
#[derive(Debug, Default)]
pub(super) struct Behind {
    /// Prefixes (with ADD-PATH, paths) it was sent that it must no longer
    /// hold: each once, so the set is bounded by the table.
    pub(super) withdrawn: HashSet<Nlri>,
    /// Slots whose best path changed since: a bit per slot, so a peer
    /// that is behind by a whole table costs an eighth of a byte per
    /// route.
    pub(super) changed: SlotSet,
    /// A timer watches its backlog.
    pub(super) watched: bool,
}

/// A set of RIB slots.
#[derive(Debug, Default)]
pub(super) struct SlotSet(Vec<u64>);

impl SlotSet {
    pub(super) fn insert(&mut self, slot: Slot) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    pub(super) fn contains(&self, slot: Slot) -> bool {
        self.0
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }
}
