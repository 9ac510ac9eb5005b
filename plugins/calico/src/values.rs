//! Calico's shared value formats (calico-model.md §1.1): AS numbers,
//! durations, `peerIP` with an optional port, CIDRs, communities and names.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

/// An AS number as Calico accepts it: a JSON number, a decimal string, or
/// asdot `"A.B"`.
pub fn parse_asn(value: &Value) -> Result<u32, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                format!("invalid AS Number format: {n} is not a 32-bit unsigned number")
            }),
        Value::String(s) => parse_asn_text(s),
        other => Err(format!("invalid AS Number format: {other}")),
    }
}

pub fn parse_asn_text(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid AS Number format: '{s}'");
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    match s.split_once('.') {
        None if digits(s) => s.parse().map_err(|_| bad()),
        Some((high, low)) if digits(high) && digits(low) => {
            let high: u16 = high.parse().map_err(|_| bad())?;
            let low: u16 = low.parse().map_err(|_| bad())?;
            Ok(u32::from(high) << 16 | u32::from(low))
        }
        _ => Err(bad()),
    }
}

/// A Go duration (`10s`, `2m`, `1h30m`, `1.5s`) in whole seconds, rounded.
pub fn parse_duration(s: &str) -> Result<u32, String> {
    let bad = |why: &str| format!("invalid duration '{s}': {why}");
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut rest = s;
    let mut nanos: f64 = 0.0;
    if rest == "0" {
        return Ok(0);
    }
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if number_len == 0 {
            return Err(bad("expected a number"));
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad("bad number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .bytes()
            .take_while(|c| !(c.is_ascii_digit() || *c == b'.'))
            .count();
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad("unknown unit")),
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    let seconds = (nanos / 1e9).round();
    if seconds > f64::from(u32::MAX) {
        return Err(bad("too long"));
    }
    Ok(seconds as u32)
}

/// `peerIP`: an address, `a.b.c.d:port` or `[v6]:port`. A bare IPv6
/// address never carries a port (`fd00::1:179` is an address).
pub fn parse_peer_ip(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let bad = || format!("'{s}' is not an IP address, IPv4:port or [IPv6]:port");
    if s.len() > 64 {
        return Err(format!("'{s}' is longer than 64 characters"));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
        let ip: std::net::Ipv6Addr = host.parse().map_err(|_| bad())?;
        (IpAddr::V6(ip), port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let ip: Ipv4Addr = host.parse().map_err(|_| bad())?;
        (IpAddr::V4(ip), port)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("'{s}': port must be 1-65535"))?;
    Ok((host, Some(port)))
}

/// A CIDR or bare address; host bits are kept, as Calico keeps them.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("'{s}' is not a CIDR");
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => {
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            (ip, len)
        }
        None => {
            let ip: IpAddr = s.parse().map_err(|_| bad())?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let width = if ip.is_ipv4() { 32 } else { 128 };
    if len > width {
        return Err(format!("'{s}': prefix length above {width}"));
    }
    Ok((ip, len))
}

/// Standard `aa:nn` or large `aa:nn:mm` community.
pub fn parse_community(s: &str) -> Result<Community, String> {
    let bad = || format!("'{s}' is not a community (aa:nn or aa:nn:mm)");
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [a, n] => {
            let a: u16 = a.parse().map_err(|_| bad())?;
            let n: u16 = n.parse().map_err(|_| bad())?;
            Ok(Community::Standard(u32::from(a) << 16 | u32::from(n)))
        }
        [a, n, m] => Ok(Community::Large(
            a.parse().map_err(|_| bad())?,
            n.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Community {
    Standard(u32),
    Large(u32, u32, u32),
}

/// A DNS-1123 subdomain: Calico's resource name format.
pub fn check_name(s: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    if s.is_empty() {
        return Err("name is required".to_owned());
    }
    if s.len() > 253 {
        return Err(format!("'{s}' is longer than 253 characters"));
    }
    if !s.split('.').all(label_ok) {
        return Err(format!(
            "'{s}' is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A Kubernetes label key: optional `prefix/` (DNS subdomain) plus a name
/// of up to 63 characters.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_name(p).map_err(|_| format!("label key '{key}': invalid prefix '{p}'"))?;
    }
    if name.is_empty() || !label_value_ok(name) {
        return Err(format!("label key '{key}' is not a qualified name"));
    }
    Ok(())
}

pub fn check_label_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || label_value_ok(value) {
        Ok(())
    } else {
        Err(format!(
            "label '{key}': value '{value}' is not a valid label value"
        ))
    }
}

fn label_value_ok(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() <= 63
        && !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// An interface name or glob, as `ignoredInterfaces` and BGPFilter
/// `interface` take it.
pub fn check_interface(s: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'*' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("'{s}' is not an interface name or pattern"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn as_numbers() {
        assert_eq!(parse_asn(&json!(64512)), Ok(64512));
        assert_eq!(parse_asn(&json!("64513")), Ok(64513));
        assert_eq!(parse_asn(&json!("64512.100")), Ok(4227858532));
        assert_eq!(parse_asn(&json!("1.10")), Ok(65546));
        assert_eq!(parse_asn(&json!(4294967295u64)), Ok(u32::MAX));
        for bad in [
            json!(-1),
            json!(4294967296u64),
            json!("65536.1"),
            json!("1.65536"),
            json!("as64512"),
            json!("1.2.3"),
            json!(""),
            json!(1.5),
            json!(true),
        ] {
            let err = parse_asn(&bad).expect_err(&bad.to_string());
            assert!(err.contains("invalid AS Number format"), "{err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(10));
        assert_eq!(parse_duration("2m"), Ok(120));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1.6s"), Ok(2));
        assert_eq!(parse_duration("500ms"), Ok(1));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "10", "s", "10x", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn peer_ips() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(parse_peer_ip("10.0.0.1"), Ok((ip("10.0.0.1"), None)));
        assert_eq!(
            parse_peer_ip("10.0.0.1:1790"),
            Ok((ip("10.0.0.1"), Some(1790)))
        );
        assert_eq!(
            parse_peer_ip("[fd00::1]:1790"),
            Ok((ip("fd00::1"), Some(1790)))
        );
        assert_eq!(parse_peer_ip("fd00::1:179"), Ok((ip("fd00::1:179"), None)));
        for bad in [
            "10.0.0.1:0",
            "10.0.0.1:65536",
            "host:179",
            "[10.0.0.1]:179",
            "10.0.0",
        ] {
            assert!(parse_peer_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_communities_names() {
        assert_eq!(
            parse_cidr("10.0.0.5/24"),
            Ok(("10.0.0.5".parse().expect("ip"), 24))
        );
        assert_eq!(
            parse_cidr("fd00::1"),
            Ok(("fd00::1".parse().expect("ip"), 128))
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert_eq!(
            parse_community("65001:100"),
            Ok(Community::Standard(65001 << 16 | 100))
        );
        assert_eq!(
            parse_community("4200000000:1:2"),
            Ok(Community::Large(4200000000, 1, 2))
        );
        assert!(parse_community("65536:1").is_err());
        assert!(parse_community("1").is_err());
        assert!(check_name("node-1.example").is_ok());
        assert!(check_name("Node1").is_err());
        assert!(check_name("-a").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_label_key("kubernetes.io/hostname").is_ok());
        assert!(check_label_key("bad key").is_err());
        assert!(check_label_value("k", "").is_ok());
        assert!(check_label_value("k", "-x").is_err());
        assert!(check_interface("eth*").is_ok());
        assert!(check_interface("a-very-long-interface").is_err());
    }
}
