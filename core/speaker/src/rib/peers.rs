//! The peers the RIB knows, numbered: a path names its peer by number
//! (see [`super::path`]), and the decision process reads a path's peer by
//! that number with no hashing.

use std::net::{IpAddr, Ipv4Addr};

use super::path::{Source, SourceRef};

/// What the RIB needs to know about a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    pub address: IpAddr,
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub ebgp: bool,
    /// The peer is our route-reflector client.
    pub rr_client: bool,
    /// How often our own AS may appear in a received AS_PATH.
    pub allow_own_as: usize,
}

/// Every peer ever set, by number and by address. Numbers are never
/// reused: paths may outlive a peer's session (graceful restart), and a
/// number must not come to name another peer under them. Like the address
/// map before it, the table grows by one entry per distinct address.
#[derive(Debug, Default)]
pub(super) struct PeerTable {
    /// A fast hash: the addresses are configured, not chosen by a peer.
    numbers: rustc_hash::FxHashMap<IpAddr, SourceRef>,
    info: Vec<PeerInfo>,
}

/// More distinct peer addresses than a path can number (a billion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the RIB has numbered as many peers as a path can name")]
pub struct PeerTableFull;

impl PeerTable {
    /// Add or update a peer; its number stays if it had one.
    pub(super) fn set(&mut self, info: PeerInfo) -> Result<SourceRef, PeerTableFull> {
        if let Some(&number) = self.numbers.get(&info.address) {
            if let Some(index) = number.peer_index() {
                self.info[index] = info;
            }
            return Ok(number);
        }
        let number = SourceRef::peer(self.info.len()).ok_or(PeerTableFull)?;
        self.numbers.insert(info.address, number);
        self.info.push(info);
        Ok(number)
    }

    pub(super) fn number(&self, address: IpAddr) -> Option<SourceRef> {
        self.numbers.get(&address).copied()
    }

    pub(super) fn by_address(&self, address: IpAddr) -> Option<&PeerInfo> {
        self.number(address).and_then(|n| self.by_number(n))
    }

    /// The peer a path came from; `None` for a local path.
    pub(super) fn by_number(&self, number: SourceRef) -> Option<&PeerInfo> {
        number.peer_index().and_then(|i| self.info.get(i))
    }

    pub(super) fn source(&self, number: SourceRef) -> Source {
        match self.by_number(number) {
            Some(info) => Source::Peer(info.address),
            None => Source::Local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(last: u8, asn: u32) -> PeerInfo {
        PeerInfo {
            address: IpAddr::from([192, 0, 2, last]),
            router_id: Ipv4Addr::new(192, 0, 2, last),
            asn,
            ebgp: true,
            rr_client: false,
            allow_own_as: 0,
        }
    }

    #[test]
    fn a_peer_keeps_its_number_when_updated() {
        let mut table = PeerTable::default();
        let a = table.set(info(1, 65001)).expect("room");
        let b = table.set(info(2, 65002)).expect("room");
        assert_ne!(a, b);
        assert!(!a.is_local() && !b.is_local());
        assert_eq!(table.set(info(1, 65010)), Ok(a));
        assert_eq!(table.by_number(a).map(|i| i.asn), Some(65010));
        assert_eq!(table.source(b), Source::Peer(IpAddr::from([192, 0, 2, 2])));
        assert_eq!(table.source(SourceRef::LOCAL), Source::Local);
        assert_eq!(table.number(IpAddr::from([192, 0, 2, 3])), None);
    }
}
