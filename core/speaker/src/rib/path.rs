//! One candidate path, kept at 16 bytes.
//!
//! A full table from each of N peers is N million paths, and every byte of
//! a path is a megabyte per table (perf-method S8). A path names its
//! source by a number in the RIB's peer table rather than by its 17-byte
//! address, and keeps its two flags in the same word.

use std::net::IpAddr;
use std::sync::Arc;

use super::RouteAttrs;

/// Where a path came from, as the RIB's users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Local,
    Peer(IpAddr),
}

/// Where a path came from, as the RIB stores it: locally originated, or
/// the number of a peer in the RIB's peer table. A peer keeps its number
/// for the RIB's lifetime, so a number never names two peers; resolve it
/// with [`super::Rib::source_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef(u32);

impl SourceRef {
    pub const LOCAL: SourceRef = SourceRef(0);

    /// Peer numbers leave room for the flags in [`Path`]'s word.
    const MAX_PEERS: usize = (STALE - 1) as usize;

    /// The `index`-th peer of the table, if the word has room for it.
    pub(super) fn peer(index: usize) -> Option<SourceRef> {
        (index < Self::MAX_PEERS).then(|| SourceRef(index as u32 + 1))
    }

    /// The peer table index this names; `None` for a local path.
    pub(super) fn peer_index(self) -> Option<usize> {
        (self.0 as usize).checked_sub(1)
    }

    pub fn is_local(self) -> bool {
        self == Self::LOCAL
    }
}

const STALE: u32 = 1 << 30;
const SELECTED: u32 = 1 << 31;
const FLAGS: u32 = STALE | SELECTED;

/// One candidate path for a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    pub route: Arc<RouteAttrs>,
    /// ADD-PATH path identifier as received (0 without ADD-PATH).
    pub path_id: u32,
    /// The [`SourceRef`] in the low bits; above it, whether the path is
    /// stale (kept through a graceful restart until the peer refreshes
    /// it) and whether the decision process selected it (the best path or
    /// ECMP).
    word: u32,
}

impl Path {
    pub(super) fn new(source: SourceRef, path_id: u32, route: Arc<RouteAttrs>) -> Self {
        Self {
            route,
            path_id,
            word: source.0,
        }
    }

    pub fn source_ref(&self) -> SourceRef {
        SourceRef(self.word & !FLAGS)
    }

    pub fn is_local(&self) -> bool {
        self.source_ref().is_local()
    }

    /// Kept through a graceful restart until the peer refreshes it.
    pub fn stale(&self) -> bool {
        self.word & STALE != 0
    }

    pub(super) fn set_stale(&mut self) {
        self.word |= STALE;
    }

    /// Chosen by the decision process: the best path or ECMP.
    pub(super) fn selected(&self) -> bool {
        self.word & SELECTED != 0
    }

    pub(super) fn set_selected(&mut self, selected: bool) {
        if selected {
            self.word |= SELECTED;
        } else {
            self.word &= !SELECTED;
        }
    }

    /// The same source and path id: the path a newer one replaces.
    pub(super) fn same_key(&self, source: SourceRef, path_id: u32) -> bool {
        self.source_ref() == source && self.path_id == path_id
    }
}

/// The same path, whether or not it is selected.
impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        (self.word & !SELECTED) == (other.word & !SELECTED)
            && self.path_id == other.path_id
            && self.route == other.route
    }
}

impl Eq for Path {}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_wire::{NextHop, PathAttributes};

    fn path(source: SourceRef) -> Path {
        let route = Arc::new(RouteAttrs {
            attrs: PathAttributes::default(),
            next_hop: NextHop::V4([192, 0, 2, 1].into()),
        });
        Path::new(source, 7, route)
    }

    #[test]
    fn a_path_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Path>(), 16);
    }

    #[test]
    fn flags_leave_the_source_alone() {
        let last = SourceRef::peer(SourceRef::MAX_PEERS - 1).expect("fits");
        assert_eq!(SourceRef::peer(SourceRef::MAX_PEERS), None);
        let mut p = path(last);
        p.set_stale();
        p.set_selected(true);
        assert_eq!(p.source_ref(), last);
        assert!(p.stale() && p.selected());
        p.set_selected(false);
        assert_eq!(p.source_ref(), last);
        assert!(p.stale() && !p.selected());
        assert_eq!(last.peer_index(), Some(SourceRef::MAX_PEERS - 1));
        assert_eq!(SourceRef::LOCAL.peer_index(), None);
    }

    #[test]
    fn equality_ignores_selection_only() {
        let a = SourceRef::peer(0).expect("fits");
        let mut selected = path(a);
        selected.set_selected(true);
        assert_eq!(selected, path(a));
        let mut stale = path(a);
        stale.set_stale();
        assert_ne!(stale, path(a));
        assert_ne!(path(SourceRef::LOCAL), path(a));
    }
}
