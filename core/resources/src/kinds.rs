//! Resource kinds: canonical names, plurals for storage paths, and the
//! names calicoctl accepts on its command line.

/// `(canonical kind, plural, accepted names)`. Names are matched
/// case-insensitively.
const KINDS: &[(&str, &str, &[&str])] = &[
    ("Node", "nodes", &["node", "nodes", "no", "nos"]),
    (
        "BGPConfiguration",
        "bgpconfigurations",
        &[
            "bgpconfiguration",
            "bgpconfigurations",
            "bgpconfig",
            "bgpconfigs",
        ],
    ),
    (
        "BGPPeer",
        "bgppeers",
        &["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"],
    ),
    (
        "BGPFilter",
        "bgpfilters",
        &["bgpfilter", "bgpfilters", "bgpf", "bgpfs", "bf", "bfs"],
    ),
    (
        "CalicoNodeStatus",
        "caliconodestatuses",
        &[
            "caliconodestatus",
            "caliconodestatuses",
            "nodestatus",
            "nodestatuses",
            "cns",
        ],
    ),
    (
        "IPPool",
        "ippools",
        &["ippool", "ippools", "ipp", "ipps", "pool", "pools"],
    ),
    // Calico's record of which node owns which IPAM block; the minimal
    // form `{spec: {node, cidr}}` is what origination reads.
    (
        "BlockAffinity",
        "blockaffinities",
        &["blockaffinity", "blockaffinities", "ba", "bas"],
    ),
    // Kubernetes' kind, kept so BGP passwords can be resolved.
    ("Secret", "secrets", &["secret", "secrets"]),
];

/// The canonical kind for a command-line name (`bgpp` → `BGPPeer`). Kinds
/// plugins define are accepted as given.
pub fn resolve(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(kind, _, names)| kind.eq_ignore_ascii_case(name) || names.contains(&lower.as_str()))
        .map_or_else(|| name.to_owned(), |(kind, _, _)| (*kind).to_owned())
}

/// The storage folder of a kind.
pub fn plural(kind: &str) -> String {
    KINDS.iter().find(|(k, _, _)| *k == kind).map_or_else(
        || format!("{}s", kind.to_ascii_lowercase()),
        |(_, p, _)| (*p).to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(resolve("bgpp"), "BGPPeer");
        assert_eq!(resolve("BGPConfiguration"), "BGPConfiguration");
        assert_eq!(resolve("bgpconfig"), "BGPConfiguration");
        assert_eq!(resolve("Nodes"), "Node");
        assert_eq!(resolve("Rack"), "Rack");
        assert_eq!(plural("BGPPeer"), "bgppeers");
        assert_eq!(plural("Rack"), "racks");
    }
}
