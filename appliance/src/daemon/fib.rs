//! Best paths → the kernel: starts `starling_fib::Programmer` on the
//! speaker's best-path stream, says which kernel route each best path
//! wants, and counts what the programmer reports.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use starling_fib::{Destination, FibConfig, Gateways, Pacing, Programmer, Report, Target};
use starling_speaker::instance::{BestChanges, BestPathStream};
use starling_speaker::rib::BestChange;
use starling_wire::{NextHop, Prefix};

use super::metrics::FibStats;
use super::origination::KernelRoutes;

/// Start programming the kernel table `config` names from `best`.
pub(super) fn start(
    config: &super::config::Fib,
    best: BestPathStream,
    stats: Arc<Mutex<FibStats>>,
    originated: KernelRoutes,
) -> anyhow::Result<Programmer> {
    let fib_config = FibConfig {
        table: config.table,
        protocol: config.protocol,
        ..FibConfig::default()
    };
    let translate = Box::new(
        move |changes: BestChanges, want: &mut dyn FnMut(Destination, Option<Target>)| {
            // One look at what we originate per batch, not per route.
            let Ok(originated) = originated.lock() else {
                return;
            };
            let hosts = host_routes(&originated);
            for change in &changes {
                if let Some(dest) =
                    Destination::new(change.prefix.addr(), change.prefix.prefix_len())
                {
                    want(dest, kernel_route(change, &originated, &hosts));
                }
            }
        },
    );
    let report = Box::new(move |report: Report| count(&stats, report));
    Ok(Programmer::start(
        fib_config,
        Pacing::default(),
        best,
        translate,
        report,
    )?)
}

/// The host routes we originate through a gateway (Calico's `reachableBy`):
/// an address → its gateways.
fn host_routes(originated: &BTreeMap<Prefix, Target>) -> Vec<(IpAddr, Gateways)> {
    originated
        .iter()
        .filter(|(p, _)| p.prefix_len() == if p.addr().is_ipv4() { 32 } else { 128 })
        .filter_map(|(p, t)| match t {
            Target::Via(gateways) => Some((p.addr(), gateways.clone())),
            Target::Blackhole => None,
        })
        .collect()
}

/// The kernel route a best-path change asks for (`None`: no route): its
/// paths' gateways, or for a prefix this node originates, what the
/// origination said (a blackhole for Calico's blocks).
///
/// A next hop that is a peer reached through one of our host routes (a
/// multihop peer's own address, as a ToR's loopback behind `reachableBy`)
/// is not on any link, and the kernel refuses it as a gateway: the route
/// goes via that host route's gateway instead, as BIRD's `gateway
/// recursive` resolves it.
fn kernel_route(
    change: &BestChange,
    originated: &BTreeMap<Prefix, Target>,
    hosts: &[(IpAddr, Gateways)],
) -> Option<Target> {
    let mut gateways = Gateways::new();
    for p in change.best.iter().filter(|p| !p.is_local()) {
        let hop = match p.route.next_hop {
            NextHop::V4(a) => IpAddr::V4(a),
            NextHop::V6 { global, .. } => IpAddr::V6(global),
        };
        match hosts.iter().find(|(host, _)| *host == hop) {
            Some((_, via)) => gateways.extend(via.iter().copied()),
            None => gateways.push(hop),
        }
    }
    if !gateways.is_empty() {
        return Some(Target::via(gateways));
    }
    if !change.best.first().is_some_and(|p| p.is_local()) {
        return None;
    }
    originated.get(&change.prefix).cloned()
}

fn count(stats: &Mutex<FibStats>, report: Report) {
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    match report {
        Report::Write {
            duration,
            installed,
            installed_bytes,
            pending_bytes,
            added,
            replaced,
            deleted,
            refused,
            failed,
        } => {
            s.installed_bytes = installed_bytes as u64;
            s.pending_bytes = pending_bytes as u64;
            s.writes += 1;
            s.write_seconds += duration.as_secs_f64();
            s.write_latency.observe(duration.as_secs_f64());
            s.installed = installed as u64;
            s.added += added as u64;
            s.replaced += replaced as u64;
            s.deleted += deleted as u64;
            s.refused += refused as u64;
            s.write_errors += u64::from(failed);
        }
        Report::Repaired(routes) => s.repaired += routes as u64,
    }
}
