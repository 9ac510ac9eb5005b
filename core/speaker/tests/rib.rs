//! Adj-RIB-In / Loc-RIB behaviour: best path changes, loop checks, peer
//! down, graceful-restart stale marking, treat-as-withdraw and interning.

use std::net::{IpAddr, Ipv4Addr};

use starling_speaker::rib::{PeerInfo, Rib, RibConfig, Source};
use starling_wire::{
    AsPath, Context, Message, NextHop, Nlri, Origin, ParsedUpdate, PathAttributes, Prefix, Update,
    Verdict,
};

fn peer(n: u8, asn: u32) -> PeerInfo {
    PeerInfo {
        address: IpAddr::from([192, 0, 2, n]),
        router_id: Ipv4Addr::new(198, 51, 100, n),
        asn,
        ebgp: asn != 64512,
        rr_client: false,
        allow_own_as: 0,
    }
}

fn rib() -> Rib {
    let mut r = Rib::new(RibConfig::new(64512, Ipv4Addr::new(198, 51, 100, 254)));
    for p in [peer(1, 65001), peer(2, 65002), peer(3, 64512)] {
        r.set_peer(p).expect("room for the peer");
    }
    r
}

fn p(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

fn announce(path: &[u32], prefixes: &[&str]) -> ParsedUpdate {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(path.iter().copied())),
            next_hop: Some(Ipv4Addr::new(203, 0, 113, path.len() as u8)),
            ..PathAttributes::default()
        },
        nlri: prefixes.iter().map(|s| Nlri::new(p(s))).collect(),
        ..Update::default()
    }
    .into()
}

fn withdraw(prefixes: &[&str]) -> ParsedUpdate {
    Update {
        withdrawn: prefixes.iter().map(|s| Nlri::new(p(s))).collect(),
        ..Update::default()
    }
    .into()
}

fn best_source(rib: &Rib, prefix: &str) -> Option<Source> {
    rib.best(&p(prefix)).first().map(|path| rib.source_of(path))
}

#[test]
fn best_path_moves_with_announcements_and_withdrawals() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let b = IpAddr::from([192, 0, 2, 2]);
    let changes = r.apply_update(a, &announce(&[65001, 65010, 65020], &["10.0.0.0/8"]));
    assert_eq!(changes.len(), 1);
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(a)));
    // A shorter path from b takes over.
    let changes = r.apply_update(b, &announce(&[65002], &["10.0.0.0/8"]));
    assert_eq!(changes.len(), 1);
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(b)));
    // A worse path from a changes nothing visible.
    assert!(
        r.apply_update(a, &announce(&[65001, 1, 2, 3, 4], &["10.0.0.0/8"]))
            .is_empty()
    );
    // b withdraws: back to a.
    r.apply_update(b, &withdraw(&["10.0.0.0/8"]));
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(a)));
    // a withdraws: gone, and the change says so.
    let changes = r.apply_update(a, &withdraw(&["10.0.0.0/8"]));
    assert_eq!(changes.len(), 1);
    assert!(changes[0].best.is_empty());
    assert!(r.is_empty());
}

#[test]
fn a_gone_prefix_keeps_its_slot_until_recycled_and_counts_follow() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let b = IpAddr::from([192, 0, 2, 2]);
    let first = r.apply_update(a, &announce(&[65001], &["10.0.0.0/8", "10.9.0.0/16"]));
    let slot = first[0].slot;
    assert_ne!(first[1].slot, slot);
    r.apply_update(b, &announce(&[65002, 65003], &["10.0.0.0/8"]));
    assert_eq!((r.received_count(a), r.received_count(b)), (2, 1));
    // Both paths go: the change names the slot, which is not reused
    // before `recycle` (Adj-RIB-Outs still hold it until they withdraw).
    r.apply_update(b, &withdraw(&["10.0.0.0/8"]));
    let gone = r.apply_update(a, &withdraw(&["10.0.0.0/8"]));
    assert_eq!((gone[0].slot, gone[0].best.len()), (slot, 0));
    assert_eq!((r.received_count(a), r.received_count(b)), (1, 0));
    let other = r.apply_update(a, &announce(&[65001], &["10.1.0.0/16"]));
    assert_ne!(other[0].slot, slot);
    assert_eq!(r.recycle(), vec![slot]);
    assert!(r.recycle().is_empty());
    let reused = r.apply_update(a, &announce(&[65001], &["10.2.0.0/16"]));
    assert_eq!(reused[0].slot, slot);
    let listed: Vec<String> = r.iter_best().map(|(p, _, _)| p.to_string()).collect();
    assert_eq!(listed, ["10.1.0.0/16", "10.2.0.0/16", "10.9.0.0/16"]);
}

#[test]
fn own_as_in_the_path_is_ineligible_unless_allowed() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    r.apply_update(a, &announce(&[65001, 64512, 65010], &["10.0.0.0/8"]));
    assert!(r.best(&p("10.0.0.0/8")).is_empty());
    let mut lenient = peer(1, 65001);
    lenient.allow_own_as = 1;
    r.set_peer(lenient).expect("room for the peer");
    r.apply_update(a, &announce(&[65001, 64512, 65010], &["10.0.0.0/8"]));
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(a)));
}

#[test]
fn reflection_loops_are_ineligible() {
    let mut r = rib();
    let ibgp = IpAddr::from([192, 0, 2, 3]);
    let mut u = announce(&[], &["10.1.0.0/16"]);
    u.update.attributes.local_pref = Some(100);
    u.update.attributes.originator_id = Some(Ipv4Addr::new(198, 51, 100, 254));
    r.apply_update(ibgp, &u);
    assert!(
        r.best(&p("10.1.0.0/16")).is_empty(),
        "our own ORIGINATOR_ID"
    );
    u.update.attributes.originator_id = None;
    u.update.attributes.cluster_list = vec![Ipv4Addr::new(198, 51, 100, 254)];
    r.apply_update(ibgp, &u);
    assert!(
        r.best(&p("10.1.0.0/16")).is_empty(),
        "our cluster id in CLUSTER_LIST"
    );
}

#[test]
fn treat_as_withdraw_removes_the_routes() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    r.apply_update(a, &announce(&[65001], &["10.0.0.0/8", "10.1.0.0/16"]));
    let mut bad = announce(&[65001], &["10.0.0.0/8"]);
    bad.verdict = Verdict::TreatAsWithdraw;
    r.apply_update(a, &bad);
    assert!(r.best(&p("10.0.0.0/8")).is_empty());
    assert_eq!(
        best_source(&r, "10.1.0.0/16"),
        Some(Source::Peer(a)),
        "other routes untouched"
    );
}

#[test]
fn peer_down_and_graceful_restart() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let b = IpAddr::from([192, 0, 2, 2]);
    r.apply_update(a, &announce(&[65001], &["10.0.0.0/8", "10.1.0.0/16"]));
    r.apply_update(b, &announce(&[65002, 1], &["10.0.0.0/8"]));
    assert_eq!(r.received_count(a), 2);
    // Graceful restart: stale paths stay usable...
    r.mark_stale(a);
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(a)));
    // ... the restarted peer refreshes one of them, then End-of-RIB sweeps
    // the other.
    r.apply_update(a, &announce(&[65001], &["10.0.0.0/8"]));
    let changes = r.sweep_stale(a, None);
    assert_eq!(changes.len(), 1);
    assert!(r.best(&p("10.1.0.0/16")).is_empty());
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(a)));
    // Without GR, a peer going down takes its routes with it.
    let changes = r.peer_down(a);
    assert_eq!(changes.len(), 1);
    assert_eq!(best_source(&r, "10.0.0.0/8"), Some(Source::Peer(b)));
    assert_eq!(r.received_count(a), 0);
}

#[test]
fn ebgp_routes_get_the_default_local_pref_and_local_routes_win() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    r.apply_update(a, &announce(&[65001], &["192.0.2.0/24"]));
    assert_eq!(
        r.best(&p("192.0.2.0/24"))[0].route.attrs.local_pref,
        Some(100)
    );
    r.originate(
        p("192.0.2.0/24"),
        PathAttributes {
            origin: Some(Origin::Igp),
            ..PathAttributes::default()
        },
        NextHop::V4(Ipv4Addr::UNSPECIFIED),
    );
    assert_eq!(best_source(&r, "192.0.2.0/24"), Some(Source::Local));
    r.withdraw_local(p("192.0.2.0/24"));
    assert_eq!(best_source(&r, "192.0.2.0/24"), Some(Source::Peer(a)));
}

#[test]
fn attribute_sets_are_interned() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let prefixes: Vec<String> = (0..1000)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    for chunk in refs.chunks(100) {
        r.apply_update(a, &announce(&[65001, 65002], chunk));
    }
    assert_eq!(r.len(), 1000);
    assert_eq!(r.attribute_sets(), 1);
    r.peer_down(a);
    r.collect_garbage();
    assert_eq!(r.attribute_sets(), 0);
}

#[test]
fn decoded_updates_from_the_wire_apply() {
    // The path from bytes to the RIB, as the speaker runs it.
    let ctx = Context::external(65001);
    let bytes = Message::Update(announce(&[65001], &["198.51.100.0/24"]))
        .to_bytes(&ctx)
        .expect("encodes");
    let Message::Update(parsed) = Message::decode(&bytes, &ctx).expect("decodes") else {
        panic!()
    };
    let mut r = rib();
    r.apply_update(IpAddr::from([192, 0, 2, 1]), &parsed);
    assert_eq!(r.len(), 1);
}

#[test]
fn every_path_is_listed_with_the_selected_one_first() {
    let mut rib = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let b = IpAddr::from([192, 0, 2, 2]);
    // B's path is longer; A's wins. A second prefix only B has.
    rib.apply_update(
        b,
        &announce(&[65002, 65009], &["10.0.0.0/24", "10.0.1.0/24"]),
    );
    rib.apply_update(a, &announce(&[65001], &["10.0.0.0/24"]));
    let listed: Vec<(String, Source, bool)> = rib
        .iter_paths()
        .map(|(prefix, path, best)| (prefix.to_string(), rib.source_of(path), best))
        .collect();
    assert_eq!(
        listed,
        [
            ("10.0.0.0/24".to_owned(), Source::Peer(a), true),
            ("10.0.0.0/24".to_owned(), Source::Peer(b), false),
            ("10.0.1.0/24".to_owned(), Source::Peer(b), true),
        ]
    );
}

fn leaving(rib: &Rib, peers: &[IpAddr]) -> std::collections::HashMap<IpAddr, usize> {
    rib.sole_paths(&peers.iter().copied().collect())
}

#[test]
fn sole_paths_counts_what_leaving_peers_alone_provide() {
    let mut r = rib();
    let [a, b, c] = [1, 2, 3].map(|n| IpAddr::from([192, 0, 2, n]));
    r.apply_update(a, &announce(&[65001], &["10.0.0.0/8", "10.1.0.0/16"]));
    r.apply_update(b, &announce(&[65002], &["10.0.0.0/8", "10.2.0.0/16"]));
    r.apply_update(c, &announce(&[], &["10.3.0.0/16"]));

    // a alone gives 10.1/16; 10/8 has b's path too.
    assert_eq!(leaving(&r, &[a]), [(a, 1)].into());
    // a and b together: both give 10/8, which nothing else has.
    assert_eq!(leaving(&r, &[a, b]), [(a, 2), (b, 2)].into());
    // A peer with nothing of its own can go at once.
    r.apply_update(b, &withdraw(&["10.2.0.0/16"]));
    assert_eq!(leaving(&r, &[b]), [(b, 0)].into());
    // A peer that sent nothing at all is reported too.
    let d = IpAddr::from([192, 0, 2, 4]);
    assert_eq!(leaving(&r, &[d]), [(d, 0)].into());
}

#[test]
fn changes_of_paths_not_selected_are_reported_only_when_tracked() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let b = IpAddr::from([192, 0, 2, 2]);
    r.apply_update(a, &announce(&[65001], &["10.0.0.0/8"]));
    // A worse second path: nobody but an ADD-PATH peer cares.
    assert!(
        r.apply_update(b, &announce(&[65002, 1], &["10.0.0.0/8"]))
            .is_empty()
    );
    r.set_track_all_paths(true);
    let changes = r.apply_update(b, &announce(&[65002, 2], &["10.0.0.0/8"]));
    assert_eq!(changes.len(), 1);
    assert!(!changes[0].best_changed, "the selection stayed");
    assert_eq!(r.source_of(&changes[0].best[0]), Source::Peer(a));
    assert_eq!(r.paths_at(changes[0].slot).len(), 2);
    let changes = r.apply_update(b, &withdraw(&["10.0.0.0/8"]));
    assert_eq!((changes.len(), changes[0].best_changed), (1, false));
    assert_eq!(r.paths_at(changes[0].slot).len(), 1);
    // A change of the selection says so.
    let changes = r.apply_update(a, &withdraw(&["10.0.0.0/8"]));
    assert!(changes[0].best_changed && changes[0].best.is_empty());
}

#[test]
fn a_walk_over_some_slots_yields_their_best_paths_in_address_order() {
    let mut r = rib();
    let a = IpAddr::from([192, 0, 2, 1]);
    let changes = r.apply_update(
        a,
        &announce(&[65001], &["10.2.0.0/16", "10.1.0.0/16", "10.3.0.0/16"]),
    );
    let slot = |prefix: &str| {
        changes
            .iter()
            .find(|c| c.prefix == p(prefix))
            .map(|c| c.slot)
            .expect("a change")
    };
    let wanted = [slot("10.3.0.0/16"), slot("10.1.0.0/16")];
    let walked: Vec<Prefix> = r
        .best_of_slots(|s| wanted.contains(&s))
        .map(|(prefix, _, path)| {
            assert_eq!(r.source_of(path), Source::Peer(a));
            prefix
        })
        .collect();
    assert_eq!(walked, [p("10.1.0.0/16"), p("10.3.0.0/16")]);
}

/// The RIB decides most arrivals by comparing with the best path alone
/// (when they differ before MED); the full decision process, which an
/// ECMP-enabled RIB always runs, must agree on the best path after every
/// announcement and withdrawal, ties, MEDs and iBGP included.
#[test]
fn deciding_against_the_best_alone_agrees_with_the_full_process() {
    let peers = [
        peer(1, 65001),
        peer(2, 65001),
        peer(3, 65002),
        peer(4, 64512),
        peer(5, 64512),
        peer(6, 65003),
    ];
    let mut fast = Rib::new(RibConfig::new(64512, Ipv4Addr::new(198, 51, 100, 254)));
    let mut cfg = RibConfig::new(64512, Ipv4Addr::new(198, 51, 100, 254));
    cfg.decision.max_paths = 4;
    let mut full = Rib::new(cfg);
    for info in &peers {
        fast.set_peer(info.clone()).expect("room for the peer");
        full.set_peer(info.clone()).expect("room for the peer");
    }
    let prefixes = ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"];
    // A fixed xorshift sequence: the same cases on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut wins = 0;
    for step in 0..5_000 {
        let info = &peers[next(peers.len() as u64) as usize];
        let prefix = prefixes[next(prefixes.len() as u64) as usize];
        let update = if next(5) == 0 {
            withdraw(&[prefix])
        } else {
            let mut path = vec![info.asn; 1 + next(3) as usize];
            if info.asn == 64512 {
                path.remove(0);
            }
            Update {
                attributes: PathAttributes {
                    origin: Some([Origin::Igp, Origin::Egp][next(2) as usize]),
                    as_path: Some(AsPath::from_sequence(path)),
                    med: [None, Some(0), Some(50)][next(3) as usize],
                    local_pref: (!info.ebgp).then(|| [100, 200][next(2) as usize]),
                    next_hop: Some(Ipv4Addr::new(203, 0, 113, next(4) as u8)),
                    ..PathAttributes::default()
                },
                nlri: vec![Nlri::new(p(prefix))],
                ..Update::default()
            }
            .into()
        };
        let before = fast.best(&p(prefix)).first().cloned();
        let changes = fast.apply_update(info.address, &update);
        full.apply_update(info.address, &update);
        let after = fast.best(&p(prefix)).first().cloned();
        let expected = full.best(&p(prefix)).first().cloned();
        assert_eq!(
            after.as_ref().map(|b| (fast.source_of(b), b.route.clone())),
            expected.map(|b| (full.source_of(&b), b.route)),
            "step {step}: {prefix} from {}",
            info.address
        );
        assert_eq!(fast.paths(&p(prefix)).len(), full.paths(&p(prefix)).len());
        // A change is reported exactly when the best path changed.
        assert_eq!(
            changes.iter().any(|c| c.best_changed),
            before != after,
            "step {step}"
        );
        wins += usize::from(before.is_some() && before != after);
    }
    assert!(
        wins > 100,
        "the sequence moves the best path often ({wins})"
    );
}

#[test]
fn sessions_ending_together_leave_what_ending_one_by_one_leaves() {
    let (a, b, c) = (
        IpAddr::from([192, 0, 2, 1]),
        IpAddr::from([192, 0, 2, 2]),
        IpAddr::from([192, 0, 2, 3]),
    );
    let load = || {
        let mut r = rib();
        r.apply_update(a, &announce(&[65001], &["10.0.0.0/24", "10.0.1.0/24"]));
        r.apply_update(
            b,
            &announce(&[65002, 65009], &["10.0.0.0/24", "10.0.2.0/24"]),
        );
        r.apply_update(c, &announce(&[65003, 65009, 1], &["10.0.0.0/24"]));
        r
    };
    let mut one_by_one = load();
    one_by_one.peer_down(a);
    one_by_one.peer_down(b);
    let mut together = load();
    let changes = together.peers_down(&[b, a, b]);
    let state = |r: &Rib| -> Vec<(String, Option<Source>)> {
        ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
            .into_iter()
            .map(|s| (s.to_owned(), best_source(r, s)))
            .collect()
    };
    assert_eq!(state(&together), state(&one_by_one));
    assert_eq!(best_source(&together, "10.0.0.0/24"), Some(Source::Peer(c)));
    assert_eq!((together.len(), together.received_count(a)), (1, 0));
    // One change per prefix: the walk saw each destination once.
    let mut prefixes: Vec<String> = changes.iter().map(|c| c.prefix.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]);
    assert!(changes.iter().filter(|c| c.best.is_empty()).count() == 2);
}

/// A departure walked a few changes at a time makes the changes one walk
/// makes, in the same order, and leaves the same table.
#[test]
fn a_departure_in_steps_makes_what_one_walk_makes() {
    let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
    let prefixes: Vec<String> = (0..40)
        .map(|i| format!("10.{}.{}.0/24", i % 3, i))
        .collect();
    let names: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let load = || {
        let mut r = rib();
        r.apply_update(a, &announce(&[65001], &names));
        // b also has every fourth prefix: those keep a path.
        let some: Vec<&str> = names.iter().copied().step_by(4).collect();
        r.apply_update(b, &announce(&[65002, 65009], &some));
        r
    };
    let mut whole = load();
    let at_once = whole.peers_down(&[a]);
    let mut stepped = load();
    let mut departure = stepped.begin_departure(&[a]);
    let mut steps = Vec::new();
    while !departure.is_done() {
        let changes = stepped.continue_departure(&mut departure, 3);
        assert!(changes.len() <= 3);
        steps.push(changes);
        // As the instance does between steps: emptied slots go back.
        stepped.recycle();
    }
    assert!(steps.len() >= 40 / 3, "{} steps", steps.len());
    assert_eq!(steps.concat(), at_once);
    assert_eq!(at_once.len(), 40);
    assert_eq!((stepped.len(), whole.len()), (10, 10));
    for name in &names {
        assert_eq!(
            best_source(&stepped, name),
            best_source(&whole, name),
            "{name}"
        );
    }
}

/// What a route costs the RIB, held to today's figures so a change that
/// grows it fails here (docs/performance.md "Where the bytes are" has the
/// breakdown for a full table): 262,144 IPv4 /24s from one peer, spread
/// in no order over 16,384 of the index's buckets, 16 to a bucket on
/// average as in a full table.
#[test]
fn a_route_costs_the_rib_no_more_bytes_than_today() {
    let a = IpAddr::from([192, 0, 2, 1]);
    let mut r = rib();
    // An odd multiplier permutes the 2^22 /24s of 0.0.0.0/2.
    let prefixes: Vec<String> = (0..1u32 << 18)
        .map(|i| {
            let nth = i.wrapping_mul(2_654_435_761) & ((1 << 22) - 1);
            let addr = Ipv4Addr::from(nth << 8);
            format!("{addr}/24")
        })
        .collect();
    for batch in prefixes.chunks(1024) {
        let names: Vec<&str> = batch.iter().map(String::as_str).collect();
        r.apply_update(a, &announce(&[65001], &names));
    }
    assert_eq!(r.len(), prefixes.len());
    let memory = r.memory();
    let per_route = |bytes: usize| bytes as f64 / prefixes.len() as f64;
    let (index, table) = (per_route(memory.index), per_route(memory.table));
    eprintln!(
        "bytes per route: index {index:.1}, table {table:.1}, attributes {}",
        memory.attributes
    );
    assert!(
        index <= 11.5,
        "the prefix index takes {index:.1} bytes a route"
    );
    assert!(
        table <= 25.0,
        "the destination table takes {table:.1} bytes a route"
    );
    assert!(
        memory.attributes < 4096,
        "one attribute set took {}",
        memory.attributes
    );
}
