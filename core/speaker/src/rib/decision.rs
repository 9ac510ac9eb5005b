//! The BGP decision process (RFC 4271 §9.1.2), with the tie-breaks every
//! production router adds.
//!
//! Spec versus ours:
//! - §9.1.2.2 (a)–(c): highest LOCAL_PREF, shortest AS_PATH (AS_SET counts
//!   one, confederation segments nothing), lowest ORIGIN.
//! - (c) MED: compared only between routes from the same neighbouring AS,
//!   unless `always_compare_med`. A missing MED counts as 0, as the RFC
//!   says (not as "worst", which some vendors offer). Done by elimination,
//!   as §9.1.2.2 describes, so the result does not depend on the order the
//!   routes arrived in.
//! - (d) eBGP over iBGP. (e) IGP cost: next hops are not resolved through
//!   an IGP here, so all costs are equal.
//! - (f) lowest BGP Identifier, using ORIGINATOR_ID when present (RFC 4456
//!   §9); then the shortest CLUSTER_LIST (RFC 4456 §9); (g) lowest peer
//!   address.
//! - Multipath: routes equal through (e) form the ECMP set; among eBGP
//!   routes they must also share the neighbouring AS.

use std::cmp::{Ordering, Reverse};
use std::net::{IpAddr, Ipv4Addr};

use starling_wire::{Origin, PathAttributes};

/// What the decision process looks at for one candidate route.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub attrs: &'a PathAttributes,
    /// LOCAL_PREF after import policy (eBGP routes get the default).
    pub local_pref: u32,
    pub ebgp: bool,
    pub peer_id: Ipv4Addr,
    pub peer_address: IpAddr,
    /// Locally originated routes win over learned ones.
    pub local: bool,
}

/// Decision process options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionOptions {
    pub always_compare_med: bool,
    /// Largest ECMP set; 1 disables multipath.
    pub max_paths: usize,
}

impl Default for DecisionOptions {
    fn default() -> Self {
        Self {
            always_compare_med: false,
            max_paths: 1,
        }
    }
}

impl Candidate<'_> {
    fn med(&self) -> u32 {
        self.attrs.med.unwrap_or(0)
    }

    fn neighbor_as(&self) -> Option<u32> {
        self.attrs.as_path.as_ref().and_then(|p| p.first_asn())
    }

    fn router_id(&self) -> Ipv4Addr {
        self.attrs.originator_id.unwrap_or(self.peer_id)
    }
}

/// Indices of the best route and of the ECMP set (best first), or an empty
/// list when there is no candidate.
pub fn select(candidates: &[Candidate<'_>], opts: DecisionOptions) -> Vec<usize> {
    let mut alive: Vec<usize> = (0..candidates.len()).collect();
    let c = |i: usize| &candidates[i];
    // Local routes first, then (a)–(c) up to MED: one key, compared
    // lexicographically (the same as eliminating step by step).
    keep_best(&mut alive, |i| {
        rank(c(i).local, c(i).local_pref, c(i).attrs)
    });
    eliminate_by_med(&mut alive, candidates, opts.always_compare_med);
    keep_best(&mut alive, |i| u8::from(c(i).ebgp));
    // Everything still alive is equally good up to the IGP cost: the
    // multipath candidates, ordered by the final tie-breaks.
    alive.sort_by(|&a, &b| tie_break(c(a), c(b)));
    if let Some(&best) = alive.first() {
        let best = c(best);
        alive.retain(|&i| !c(i).ebgp || c(i).neighbor_as() == best.neighbor_as());
    }
    alive.truncate(opts.max_paths.max(1));
    alive
}

/// How a route compares before MED: locally originated first, then
/// LOCAL_PREF, AS_PATH length and ORIGIN. These steps are transitive, so
/// a route strictly below the best on this key can never be selected,
/// and one strictly above it is the only one left: the RIB decides such
/// arrivals without running the whole process.
pub type Rank = (bool, u32, Reverse<usize>, Reverse<u8>);

pub fn rank(local: bool, local_pref: u32, attrs: &PathAttributes) -> Rank {
    (
        local,
        local_pref,
        Reverse(attrs.as_path.as_ref().map_or(0, |p| p.len())),
        Reverse(attrs.origin.unwrap_or(Origin::Incomplete) as u8),
    )
}

/// The final tie-breaks, (f) and (g) of §9.1.2.2 with RFC 4456's changes.
fn tie_break(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.router_id()
        .cmp(&b.router_id())
        .then_with(|| a.attrs.cluster_list.len().cmp(&b.attrs.cluster_list.len()))
        .then_with(|| a.peer_address.cmp(&b.peer_address))
}

/// Keep only the candidates whose key is the largest.
fn keep_best<K: Ord>(alive: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if let Some(best) = alive.iter().map(|&i| key(i)).max() {
        alive.retain(|&i| key(i) == best);
    }
}

/// §9.1.2.2 (c): remove every route that has a lower-MED competitor from
/// the same neighbouring AS (or from anywhere, with always-compare).
fn eliminate_by_med(alive: &mut Vec<usize>, c: &[Candidate<'_>], always: bool) {
    let snapshot = alive.clone();
    alive.retain(|&i| {
        !snapshot.iter().any(|&j| {
            (always || c[j].neighbor_as() == c[i].neighbor_as()) && c[j].med() < c[i].med()
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_wire::AsPath;

    fn attrs(path: &[u32], med: Option<u32>) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(path.iter().copied())),
            med,
            ..PathAttributes::default()
        }
    }

    fn cand(a: &PathAttributes, n: u8) -> Candidate<'_> {
        Candidate {
            attrs: a,
            local_pref: 100,
            ebgp: true,
            peer_id: Ipv4Addr::new(192, 0, 2, n),
            peer_address: IpAddr::from([198, 51, 100, n]),
            local: false,
        }
    }

    #[test]
    fn local_pref_beats_path_length() {
        let (a, b) = (attrs(&[1, 2, 3], None), attrs(&[1], None));
        let mut x = cand(&a, 1);
        x.local_pref = 200;
        assert_eq!(
            select(&[cand(&b, 2), x], DecisionOptions::default()),
            vec![1]
        );
    }

    #[test]
    fn shorter_path_then_origin() {
        let (a, b) = (attrs(&[1, 2], None), attrs(&[3], None));
        assert_eq!(
            select(&[cand(&a, 1), cand(&b, 2)], DecisionOptions::default()),
            vec![1]
        );
        let mut c = attrs(&[1], None);
        c.origin = Some(Origin::Incomplete);
        let d = attrs(&[2], None);
        assert_eq!(
            select(&[cand(&c, 1), cand(&d, 2)], DecisionOptions::default()),
            vec![1]
        );
    }

    #[test]
    fn med_only_within_the_same_neighbour_as() {
        // a (AS 1, MED 10) beats b (AS 1, MED 20); c (AS 2, MED 5) is not
        // compared with them by MED, and wins on the router id tie-break.
        let a = attrs(&[1, 9], Some(10));
        let b = attrs(&[1, 9], Some(20));
        let c = attrs(&[2, 9], Some(50));
        let cands = [cand(&b, 1), cand(&a, 3), cand(&c, 2)];
        assert_eq!(select(&cands, DecisionOptions::default()), vec![2]);
        // With always-compare-med, the lowest MED overall wins.
        let opts = DecisionOptions {
            always_compare_med: true,
            ..DecisionOptions::default()
        };
        assert_eq!(select(&cands, opts), vec![1]);
    }

    #[test]
    fn the_result_does_not_depend_on_arrival_order() {
        // The classic MED cycle: with pairwise comparison the winner
        // depends on order; by elimination it does not.
        let a = attrs(&[1, 9], Some(100));
        let b = attrs(&[2, 9], Some(50));
        let c = attrs(&[1, 9], Some(10));
        let base = [cand(&a, 1), cand(&b, 2), cand(&c, 3)];
        let winner = |order: [usize; 3]| {
            let cands: Vec<_> = order.iter().map(|&i| base[i]).collect();
            order[select(&cands, DecisionOptions::default())[0]]
        };
        let w = winner([0, 1, 2]);
        for order in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            assert_eq!(winner(order), w, "{order:?}");
        }
    }

    #[test]
    fn ebgp_over_ibgp_then_router_id_then_cluster_list_then_address() {
        let a = attrs(&[1], None);
        let mut i = cand(&a, 1);
        i.ebgp = false;
        assert_eq!(
            select(&[i, cand(&a, 9)], DecisionOptions::default()),
            vec![1]
        );

        let mut with_originator = attrs(&[1], None);
        with_originator.originator_id = Some(Ipv4Addr::new(192, 0, 2, 200));
        let plain = attrs(&[1], None);
        assert_eq!(
            select(
                &[cand(&with_originator, 1), cand(&plain, 50)],
                DecisionOptions::default()
            ),
            vec![1],
            "ORIGINATOR_ID stands in for the router id"
        );

        let mut long = attrs(&[1], None);
        long.originator_id = Some(Ipv4Addr::new(192, 0, 2, 7));
        long.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)];
        let mut short = long.clone();
        short.cluster_list.truncate(1);
        assert_eq!(
            select(
                &[cand(&long, 1), cand(&short, 2)],
                DecisionOptions::default()
            ),
            vec![1]
        );

        let mut x = cand(&a, 5);
        let mut y = cand(&a, 5);
        x.peer_address = IpAddr::from([198, 51, 100, 9]);
        y.peer_address = IpAddr::from([198, 51, 100, 8]);
        assert_eq!(select(&[x, y], DecisionOptions::default()), vec![1]);
    }

    #[test]
    fn ecmp_set_from_the_same_neighbour_as() {
        let a = attrs(&[1, 9], None);
        let b = attrs(&[1, 8], None);
        let other = attrs(&[2, 9], None);
        let opts = DecisionOptions {
            max_paths: 4,
            ..DecisionOptions::default()
        };
        assert_eq!(
            select(&[cand(&b, 2), cand(&a, 1), cand(&other, 3)], opts),
            vec![1, 0]
        );
        let opts = DecisionOptions {
            max_paths: 1,
            ..DecisionOptions::default()
        };
        assert_eq!(select(&[cand(&b, 2), cand(&a, 1)], opts), vec![1]);
    }

    #[test]
    fn local_routes_win() {
        let a = attrs(&[], None);
        let b = attrs(&[], None);
        let mut l = cand(&a, 9);
        l.local = true;
        l.local_pref = 0;
        assert_eq!(
            select(&[cand(&b, 1), l], DecisionOptions::default()),
            vec![1]
        );
        assert!(select(&[], DecisionOptions::default()).is_empty());
    }
}
