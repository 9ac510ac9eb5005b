//! Where a RIB's heap bytes are, for the `starling_memory_bytes` metric.

use std::sync::Arc;

use super::{Destination, Path, Rib, RouteAttrs, Slot};

/// Where a RIB's heap bytes are, near enough for a metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RibMemory {
    /// Prefix → slot.
    pub index: usize,
    /// The destinations by slot, with their paths.
    pub table: usize,
    /// The interned attribute sets (their fixed part: an AS path or a
    /// community list of their own is not counted).
    pub attributes: usize,
}

impl Rib {
    /// Where the RIB's heap bytes are. Walks the table: for a scrape,
    /// not for a hot path (a millisecond per million prefixes).
    pub fn memory(&self) -> RibMemory {
        let spilled: usize = self
            .destinations
            .iter()
            .filter(|d| d.paths.spilled())
            .map(|d| d.paths.capacity() * size_of::<Path>())
            .sum();
        RibMemory {
            index: self.index.heap_bytes(),
            table: self.destinations.capacity() * size_of::<Destination>()
                + spilled
                + (self.free.capacity() + self.emptied.capacity()) * size_of::<Slot>(),
            attributes: self.interned.0.capacity() * (size_of::<Arc<RouteAttrs>>() + 1)
                + self.interned.0.len() * (size_of::<RouteAttrs>() + 2 * size_of::<usize>()),
        }
    }
}
