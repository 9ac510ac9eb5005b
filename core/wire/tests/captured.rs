//! Messages captured from real BIRD 2 and GoBGP sessions on loopback (see
//! tests/fixtures/README.md) decode without complaint and re-encode to the
//! very same bytes.

use std::net::Ipv4Addr;
use std::path::Path;

use starling_wire::capability::Capability;
use starling_wire::{
    Community, Context, Family, LargeCommunity, Message, NextHop, Origin, PerFamily, Prefix,
    Update, Verdict,
};

fn load(dir: &str) -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, hex::decode(text.trim()).expect("hex fixture"))
        })
        .collect()
}

fn context(ebgp: bool, peer_as: u32, add_path: bool) -> Context {
    Context {
        ebgp,
        peer_as,
        add_path_receive: if add_path {
            PerFamily::BOTH
        } else {
            PerFamily::NONE
        },
        add_path_send: if add_path {
            PerFamily::BOTH
        } else {
            PerFamily::NONE
        },
        local_ipv4: Some(Ipv4Addr::new(127, 0, 0, 2)),
        ..Context::default()
    }
}

/// Decode every fixture of `dir`, check it re-encodes byte for byte, and
/// return the UPDATEs and the OPEN.
fn replay(dir: &str, ctx: &Context) -> (Vec<Update>, starling_wire::Open) {
    let mut updates = Vec::new();
    let mut open = None;
    for (name, bytes) in load(dir) {
        let msg = Message::decode(&bytes, ctx).unwrap_or_else(|e| panic!("{dir}/{name}: {e}"));
        if let Message::Update(parsed) = &msg {
            assert_eq!(
                parsed.verdict,
                Verdict::Accept,
                "{dir}/{name}: {:?}",
                parsed.problems
            );
            assert!(
                parsed.problems.is_empty(),
                "{dir}/{name}: {:?}",
                parsed.problems
            );
            updates.push(parsed.update.clone());
        }
        if let Message::Open(o) = &msg {
            open = Some(o.clone());
        }
        let again = msg
            .to_bytes(ctx)
            .unwrap_or_else(|e| panic!("{dir}/{name}: {e}"));
        assert_eq!(
            hex::encode(&again),
            hex::encode(&bytes),
            "{dir}/{name} re-encodes differently"
        );
    }
    (updates, open.expect("an OPEN was captured"))
}

fn route<'a>(updates: &'a [Update], prefix: &str) -> &'a Update {
    let prefix: Prefix = prefix.parse().expect("prefix");
    updates
        .iter()
        .find(|u| {
            u.nlri
                .iter()
                .chain(u.mp_reach.iter().flat_map(|m| &m.nlri))
                .any(|n| n.prefix == prefix)
        })
        .unwrap_or_else(|| panic!("{prefix} was not announced"))
}

fn eors(updates: &[Update]) -> Vec<Family> {
    updates.iter().filter_map(Update::end_of_rib).collect()
}

#[test]
fn bird2_ebgp_round_trips_and_means_what_bird_said() {
    let (updates, open) = replay("bird2-ebgp", &context(true, 64512, false));
    assert_eq!(open.asn(), 64512);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.bgp_id, Ipv4Addr::new(192, 0, 2, 1));
    assert!(
        open.capabilities()
            .any(|c| *c == Capability::Multiprotocol(Family::IPV6_UNICAST))
    );
    assert!(
        open.capabilities()
            .any(|c| matches!(c, Capability::GracefulRestart(_)))
    );

    let r = &route(&updates, "198.51.100.0/24").attributes;
    assert_eq!(r.med, Some(50));
    assert_eq!(
        r.communities,
        vec![Community::new(64512, 100), Community::NO_EXPORT]
    );
    assert_eq!(
        r.large_communities,
        vec![LargeCommunity {
            global: 64512,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(r.local_pref, None);
    assert_eq!(
        r.as_path.as_ref().map(ToString::to_string).as_deref(),
        Some("64512")
    );

    let r = &route(&updates, "10.0.0.0/8").attributes;
    assert_eq!(r.origin, Some(Origin::Incomplete));
    assert_eq!(
        r.as_path.as_ref().map(ToString::to_string).as_deref(),
        Some("64512 65010 4200000001")
    );
    assert_eq!(r.extended_communities.len(), 1);

    let v6 = route(&updates, "2001:db8:100::/48");
    let mp = v6.mp_reach.as_ref().expect("IPv6 travels in MP_REACH_NLRI");
    assert!(
        matches!(mp.next_hop, NextHop::V6 { global, .. } if global.to_string() == "2001:db8::1")
    );
    assert_eq!(v6.attributes.med, Some(7));

    route(&updates, "0.0.0.0/0");
    route(&updates, "192.0.2.0/32");
    route(&updates, "2001:db8:ffff::1/128");
    let mut eor = eors(&updates);
    eor.sort();
    assert_eq!(eor, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
}

#[test]
fn bird2_ibgp_add_path_round_trips() {
    let (updates, open) = replay("bird2-ibgp-addpath", &context(false, 64512, true));
    assert!(
        open.capabilities()
            .any(|c| matches!(c, Capability::AddPath(v)
        if v.iter().any(|(f, m)| *f == Family::IPV4_UNICAST && m.can_send())))
    );
    let u = route(&updates, "198.51.100.0/24");
    assert_eq!(u.attributes.local_pref, Some(100));
    assert!(
        u.nlri.iter().all(|n| n.path_id.is_some()),
        "ADD-PATH ids are decoded"
    );
    assert_eq!(eors(&updates).len(), 2);
}

#[test]
fn gobgp_ebgp_round_trips_and_means_what_gobgp_said() {
    let (updates, open) = replay("gobgp-ebgp", &context(true, 64520, false));
    assert_eq!(open.asn(), 64520);
    assert!(
        open.capabilities()
            .any(|c| matches!(c, Capability::Fqdn { .. }))
    );

    let r = &route(&updates, "198.51.100.0/24").attributes;
    assert_eq!(r.med, Some(10));
    assert_eq!(r.origin, Some(Origin::Igp));
    assert_eq!(
        r.communities,
        vec![Community::new(64520, 1), Community::NO_EXPORT]
    );

    let r = &route(&updates, "203.0.113.128/25").attributes;
    assert_eq!(r.origin, Some(Origin::Egp));
    assert_eq!(
        r.as_path.as_ref().map(ToString::to_string).as_deref(),
        Some("64520 65001 4200000002")
    );
    assert_eq!(r.local_pref, None, "GoBGP strips LOCAL_PREF towards eBGP");

    let r = &route(&updates, "10.20.0.0/16").attributes;
    assert_eq!(r.origin, Some(Origin::Incomplete));
    assert!(r.aggregator.is_some());
    assert!(r.other.iter().any(|a| a.code == 26), "AIGP is carried");

    let v6 = route(&updates, "2001:db8:21::/64");
    assert_eq!(v6.attributes.med, Some(99));
}

#[test]
fn gobgp_ibgp_round_trips() {
    let (updates, _) = replay("gobgp-ibgp", &context(false, 64520, false));
    let r = &route(&updates, "203.0.113.128/25").attributes;
    assert_eq!(r.local_pref, Some(250));
    assert_eq!(
        r.as_path.as_ref().map(ToString::to_string).as_deref(),
        Some("65001 4200000002")
    );
}
