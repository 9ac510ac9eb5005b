//! Best paths → the kernel: starts `starling_fib::Programmer` on the
//! speaker's best-path stream, says which kernel route each best path
//! wants, and counts what the programmer reports.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use starling_fib::{Destination, FibConfig, Gateways, Pacing, Programmer, Report, Target};
use starling_speaker::instance::BestPathStream;
use starling_speaker::rib::BestChange;
use starling_wire::NextHop;

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
        move |changes: Vec<BestChange>, want: &mut dyn FnMut(Destination, Option<Target>)| {
            for change in changes {
                if let Some(dest) =
                    Destination::new(change.prefix.addr(), change.prefix.prefix_len())
                {
                    want(dest, kernel_route(&change, &originated));
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

/// The kernel route a best-path change asks for (`None`: no route): its
/// paths' gateways, or for a prefix this node originates, what the
/// origination said (a blackhole for Calico's blocks).
fn kernel_route(change: &BestChange, originated: &KernelRoutes) -> Option<Target> {
    let gateways: Gateways = change
        .best
        .iter()
        .filter(|p| !p.is_local())
        .map(|p| match p.route.next_hop {
            NextHop::V4(a) => IpAddr::V4(a),
            NextHop::V6 { global, .. } => IpAddr::V6(global),
        })
        .collect();
    if !gateways.is_empty() {
        return Some(Target::via(gateways));
    }
    if !change.best.first().is_some_and(|p| p.is_local()) {
        return None;
    }
    originated.lock().ok()?.get(&change.prefix).cloned()
}

fn count(stats: &Mutex<FibStats>, report: Report) {
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    match report {
        Report::Write {
            duration,
            installed,
            added,
            replaced,
            deleted,
            refused,
            failed,
        } => {
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
