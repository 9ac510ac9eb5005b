//! Unit tests of the programmer's pure parts.
use super::*;

#[test]
fn a_resync_scan_keeps_only_differences_and_forgets_an_interrupted_family() {
    let d = |s: &str| s.parse::<Destination>().expect("parse");
    let via = |last: u8| Target::via([IpAddr::from([192, 0, 2, last])]);
    let mut installed = Installed::default();
    installed.insert(d("10.0.0.0/24"), via(1));
    installed.insert(d("10.0.1.0/24"), via(1));
    installed.insert(d("2001:db8::/48"), via(1));
    let mut scan = Scan::default();
    scan.see(&installed, Dumped::Route(d("10.0.0.0/24"), via(1)));
    scan.see(&installed, Dumped::Route(d("10.0.1.0/24"), via(2)));
    scan.see(&installed, Dumped::Route(d("2001:db8::/48"), via(1)));
    scan.see(&installed, Dumped::Route(d("2001:db8:1::/48"), via(1)));
    assert_eq!(scan.matched, [1, 1]);
    assert_eq!(scan.differ.len(), 2);
    // The IPv6 dump was interrupted: its routes come again.
    scan.see(&installed, Dumped::Restart { ipv6: true });
    assert_eq!(scan.matched, [1, 0]);
    assert_eq!(scan.differ, vec![(d("10.0.1.0/24"), via(2))]);
}

#[test]
fn destinations_are_masked_and_checked() {
    let d: Destination = "192.0.2.77/24".parse().expect("parse");
    assert_eq!(d.to_string(), "192.0.2.0/24");
    assert_eq!(
        "10.0.0.1/0"
            .parse::<Destination>()
            .expect("parse")
            .to_string(),
        "0.0.0.0/0"
    );
    assert_eq!(
        "2001:db8::1/32"
            .parse::<Destination>()
            .expect("parse")
            .to_string(),
        "2001:db8::/32"
    );
    assert!("10.0.0.0/33".parse::<Destination>().is_err());
    assert!("10.0.0.0".parse::<Destination>().is_err());
    assert_eq!(
        Target::via(vec![
            "192.0.2.2".parse().expect("ip"),
            "192.0.2.1".parse().expect("ip")
        ]),
        Target::via(vec![
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip")
        ])
    );
}
