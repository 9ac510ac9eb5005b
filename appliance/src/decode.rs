//! `starling decode`: a readable dump of BGP messages, with the verdict a
//! receiver would reach under RFC 7606.

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use starling_wire::{
    Context, Message, Nlri, ParsedUpdate, PathAttributes, PerFamily, Verdict, peek_header,
};

#[derive(Debug, clap::Args)]
pub(crate) struct DecodeArgs {
    /// Hex file holding one or more concatenated messages, or `-` for stdin.
    /// Whitespace is ignored.
    input: String,
    /// Decode as received from an external (eBGP) peer in this AS.
    #[arg(long, value_name = "ASN")]
    ebgp: Option<u32>,
    /// The session negotiated ADD-PATH receive for IPv4 and IPv6 unicast.
    #[arg(long)]
    add_path: bool,
    /// The session uses 2-octet AS numbers (no 4-octet AS capability).
    #[arg(long)]
    two_octet_as: bool,
    /// The session negotiated Extended Messages (up to 65535 octets).
    #[arg(long)]
    extended_message: bool,
    /// Our address on the session: a NEXT_HOP equal to it is refused, and a
    /// loopback address here allows loopback next hops.
    #[arg(long, value_name = "IPV4")]
    local: Option<std::net::Ipv4Addr>,
}

pub(crate) fn run(args: &DecodeArgs) -> anyhow::Result<ExitCode> {
    let text = if args.input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input))?
    };
    let compact: String = text.split_whitespace().collect();
    let bytes = hex::decode(&compact).with_context(|| format!("{} is not hex", args.input))?;
    let add_path = if args.add_path {
        PerFamily::BOTH
    } else {
        PerFamily::NONE
    };
    let ctx = Context {
        ebgp: args.ebgp.is_some(),
        peer_as: args.ebgp.unwrap_or(0),
        four_octet_as: !args.two_octet_as,
        extended_message: args.extended_message,
        add_path_receive: add_path,
        add_path_send: add_path,
        local_ipv4: args.local,
        ..Context::default()
    };

    let mut rest = bytes.as_slice();
    let mut failed = false;
    let mut index = 0usize;
    while !rest.is_empty() {
        index += 1;
        let header = match peek_header(rest, ctx.max_message_len()) {
            Ok(Some(h)) => h,
            Ok(None) => bail!(
                "message {index}: {} trailing octets are not a whole header",
                rest.len()
            ),
            Err(n) => {
                println!("message {index}: invalid header -> NOTIFICATION {n}");
                return Ok(ExitCode::from(1));
            }
        };
        let Some((msg, tail)) = rest.split_at_checked(header.len) else {
            bail!(
                "message {index}: header says {} octets, only {} remain",
                header.len,
                rest.len()
            );
        };
        rest = tail;
        match Message::decode(msg, &ctx) {
            Ok(m) => print!("{}", describe(&m)),
            Err(e) => {
                failed = true;
                println!(
                    "{:?} ({} octets): session reset -> NOTIFICATION {}",
                    header.kind,
                    header.len,
                    e.notification()
                );
                if let starling_wire::DecodeError::Update(reset) = &e {
                    for p in &reset.problems {
                        println!("  problem: {p}");
                    }
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(msg: &Message) -> String {
    let mut out = String::new();
    match msg {
        Message::Open(o) => {
            let _ = writeln!(
                out,
                "OPEN as {} hold {}s id {}",
                o.asn(),
                o.hold_time,
                o.bgp_id
            );
            for c in o.capabilities() {
                let _ = writeln!(out, "  capability {c:?}");
            }
        }
        Message::Update(p) => describe_update(p, &mut out),
        Message::Notification(n) => {
            let _ = writeln!(out, "NOTIFICATION {n}");
        }
        Message::Keepalive => out.push_str("KEEPALIVE\n"),
        Message::RouteRefresh(r) => {
            let _ = writeln!(out, "ROUTE-REFRESH {} {:?}", r.family, r.subtype);
        }
    }
    out
}

fn describe_update(p: &ParsedUpdate, out: &mut String) {
    let u = &p.update;
    if let Some(family) = u.end_of_rib() {
        let _ = writeln!(out, "UPDATE End-of-RIB {family}");
        return;
    }
    let verdict = match p.verdict {
        Verdict::Accept => "accept",
        Verdict::AttributeDiscard => "accept after discarding attributes",
        Verdict::TreatAsWithdraw => "treat as withdraw",
    };
    let _ = writeln!(out, "UPDATE ({verdict})");
    for f in &p.disabled {
        let _ = writeln!(out, "  disable family {f}");
    }
    for problem in &p.problems {
        let _ = writeln!(out, "  problem: {problem}");
    }
    let list = |nlri: &[Nlri]| nlri.iter().map(show_nlri).collect::<Vec<_>>().join(" ");
    if !u.withdrawn.is_empty() {
        let _ = writeln!(out, "  withdraw {}", list(&u.withdrawn));
    }
    if let Some(m) = &u.mp_unreach {
        let _ = writeln!(out, "  withdraw {}", list(&m.nlri));
    }
    if !u.nlri.is_empty() {
        let nh = u
            .attributes
            .next_hop
            .map(|n| n.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "  announce {} via {nh}", list(&u.nlri));
    }
    if let Some(m) = &u.mp_reach {
        let _ = writeln!(out, "  announce {} via {:?}", list(&m.nlri), m.next_hop);
    }
    describe_attributes(&u.attributes, out);
}

fn show_nlri(n: &Nlri) -> String {
    match n.path_id {
        Some(id) => format!("{}#{id}", n.prefix),
        None => n.prefix.to_string(),
    }
}

fn describe_attributes(a: &PathAttributes, out: &mut String) {
    if let Some(o) = a.origin {
        let _ = writeln!(out, "  origin {o:?}");
    }
    if let Some(p) = &a.as_path {
        let _ = writeln!(out, "  as-path [{p}]");
    }
    let scalars = [("med", a.med), ("local-pref", a.local_pref), ("otc", a.otc)];
    for (name, value) in scalars {
        if let Some(v) = value {
            let _ = writeln!(out, "  {name} {v}");
        }
    }
    if a.atomic_aggregate {
        out.push_str("  atomic-aggregate\n");
    }
    if let Some(agg) = a.aggregator {
        let _ = writeln!(out, "  aggregator {} {}", agg.asn, agg.address);
    }
    if !a.communities.is_empty() {
        let _ = writeln!(out, "  communities {:?}", a.communities);
    }
    if !a.large_communities.is_empty() {
        let _ = writeln!(out, "  large-communities {:?}", a.large_communities);
    }
    if !a.extended_communities.is_empty() {
        let _ = writeln!(out, "  extended-communities {:?}", a.extended_communities);
    }
    if let Some(id) = a.originator_id {
        let _ = writeln!(out, "  originator-id {id}");
    }
    if !a.cluster_list.is_empty() {
        let _ = writeln!(out, "  cluster-list {:?}", a.cluster_list);
    }
    for raw in &a.other {
        let _ = writeln!(
            out,
            "  attribute {} flags {:#04x} value {}",
            raw.code,
            raw.flags,
            hex::encode(&raw.value)
        );
    }
}
