//! perf-method.md's S2 and S8: several peers send the same table, each
//! with its own AS paths, and the daemon must pick one best path per
//! prefix among them.
//!
//! Peer `p`'s path to the `g`-th prefix carries `(g + p) mod N` extra
//! copies of its AS, so exactly one peer has the shortest path to each
//! prefix, and the winners are spread evenly over the peers. All peers
//! send at once; the clock runs from the first byte until the sink holds,
//! for every prefix, the winner's path (an announcement's AS path shows
//! it: the winner's carries its AS once). Along the way the sink counts
//! every announcement it is sent, the best-path changes the daemon
//! exported. The daemon's RSS with N peers, against its RSS with one,
//! gives the memory each extra path costs.
//!
//! With `--flaps K`, issue 22's leak test follows: the first peer's
//! session ends (the sink has had every prefix it won replaced), it
//! comes back and sends its table again (the sink holds every winner
//! again), K times; the daemon's resident set once it is idle after each
//! flap must not grow from the first flap to the last.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use starling_wire::testdata::Table;
use starling_wire::{AsPath, Context, Prefix, Update};
use tokio::io::AsyncWriteExt;

use crate::{
    DUT, DUT_AS, Dut, Peers, SEED, SINK, SINK_AS, connect, free_port, member_as, peak_rss_kib,
    rr_client, start_dut, stats, status_kib,
};

/// How long one run may take.
const DEADLINE: Duration = Duration::from_secs(900);

#[derive(Debug, clap::Args)]
pub(crate) struct PathsRun {
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) prefixes: usize,
    /// Attribute sets of the generated table; each peer's AS-path
    /// variants multiply them by the number of peers.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) attribute_sets: usize,
    /// Numbers of peers to measure, each with its own runs: the first
    /// is the baseline the memory per extra path is taken against.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub(crate) peers: Vec<usize>,
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Daemons to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "starling,bird,frr,gobgp")]
    pub(crate) dut: Vec<Dut>,
    /// Pin the daemon to this CPU (taskset).
    #[arg(long, default_value_t = 1)]
    pub(crate) cpu: usize,
    /// After each run's table is in, the first peer's session ends and
    /// comes back with its table this many times (the leak test).
    #[arg(long, default_value_t = 0)]
    pub(crate) flaps: usize,
    /// How much the resident set may grow from the first flap to the
    /// last before the leak test fails (MiB).
    #[arg(long, default_value_t = 4.0)]
    pub(crate) flap_growth_mib: f64,
    #[arg(long, hide = true)]
    pub(crate) inside: bool,
}

/// What one run measured.
struct Sample {
    time: Duration,
    /// Announcements the sink was sent (best-path changes exported).
    announcements: usize,
    peak_rss_kib: u64,
    /// Resident set once the sink holds every winner.
    settled_rss_kib: u64,
    /// Resident set once the daemon is idle after each flap.
    flap_rss_kib: Vec<u64>,
}

pub(crate) async fn run(run: PathsRun) -> anyhow::Result<()> {
    let PathsRun {
        prefixes,
        attribute_sets,
        peers,
        runs,
        dut,
        cpu,
        flaps,
        flap_growth_mib,
        ..
    } = run;
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(n) = peers.iter().find(|n| !(1..=254).contains(*n)) {
        bail!("--peers {n}: between 1 and 254 peers");
    }
    eprintln!("generating {prefixes} prefixes over {attribute_sets} attribute sets ...");
    let table = Table::generate(prefixes, attribute_sets, 0, SEED);
    println!("dut,peers,run,seconds,announcements_to_sink,peak_rss_mib,settled_rss_mib");
    let mut rows: Vec<(Dut, usize, Vec<Sample>)> = Vec::new();
    let mut leaks = Vec::new();
    for &n in &peers {
        let streams: Vec<Vec<u8>> = (0..n).map(|p| peer_stream(&table, n, p)).collect();
        eprintln!("{n} peers: {} MiB of UPDATEs each", streams[0].len() >> 20);
        for &d in &dut {
            let mut samples = Vec::with_capacity(runs);
            for r in 1..=runs {
                let s = one_run(d, &streams, prefixes, cpu, flaps).await?;
                if let Some(growth) = flap_growth(&s.flap_rss_kib) {
                    eprintln!(
                        "{d:?}, {n} peers, run {r}: RSS after each of {flaps} flaps (MiB): {}; \
                         growth from the first to the last {growth:+.1}",
                        mib_list(&s.flap_rss_kib)
                    );
                    leaks.push((d, n, r, growth));
                }
                println!(
                    "{d:?},{n},{r},{:.3},{},{:.1},{:.1}",
                    s.time.as_secs_f64(),
                    s.announcements,
                    s.peak_rss_kib as f64 / 1024.0,
                    s.settled_rss_kib as f64 / 1024.0
                );
                samples.push(s);
            }
            rows.push((d, n, samples));
        }
    }
    report(&rows, prefixes);
    if !leaks.is_empty() {
        println!();
        println!("dut,peers,run,flaps,rss_growth_first_to_last_flap_mib");
        for (d, n, r, growth) in &leaks {
            println!("{d:?},{n},{r},{flaps},{growth:.1}");
        }
        let grew: Vec<String> = leaks
            .iter()
            .filter(|(d, _, _, g)| *d == Dut::Starling && *g > flap_growth_mib)
            .map(|(_, n, r, g)| format!("{n} peers, run {r}: {g:+.1} MiB"))
            .collect();
        if !grew.is_empty() {
            bail!(
                "Starling's resident set grew over {flaps} flaps by more than {flap_growth_mib} MiB: {}",
                grew.join("; ")
            );
        }
    }
    Ok(())
}

/// How much the resident set grew from the first flap to the last (MiB),
/// if there were flaps.
fn flap_growth(rss_kib: &[u64]) -> Option<f64> {
    let (first, last) = (rss_kib.first()?, rss_kib.last()?);
    Some((*last as f64 - *first as f64) / 1024.0)
}

fn mib_list(kib: &[u64]) -> String {
    let mib: Vec<String> = kib
        .iter()
        .map(|k| format!("{:.1}", *k as f64 / 1024.0))
        .collect();
    mib.join(" ")
}

/// Peer `p` of `n`'s copy of `table`: its own AS first, then `(g + p)
/// mod n` more copies of it on the `g`-th prefix, then the table's path.
fn peer_stream(table: &Table, n: usize, p: usize) -> Vec<u8> {
    let asn = member_as(p);
    let mut sets = Vec::with_capacity(table.sets.len() * n);
    for attrs in &table.sets {
        let rest: Vec<u32> = attrs
            .as_path
            .iter()
            .flat_map(|path| path.segments.iter())
            .flat_map(|s| s.asns.iter().copied())
            .filter(|&a| a != 0)
            .collect();
        for extra in 0..n {
            let mut variant = attrs.clone();
            variant.as_path = Some(AsPath::from_sequence(
                std::iter::repeat_n(asn, 1 + extra).chain(rest.iter().copied()),
            ));
            sets.push(variant);
        }
    }
    let mut groups = vec![Vec::new(); sets.len()];
    for (g, (set, nlri)) in table.routes().enumerate() {
        groups[set * n + (g + p) % n].push(*nlri);
    }
    let ctx = Context {
        ebgp: true,
        peer_as: DUT_AS,
        ..Context::default()
    };
    Table { sets, groups }.encode(rr_client(p), &ctx)
}

/// The winner's path, as the daemon re-advertises it: the daemon's AS,
/// then the peer's once. A loser's repeats the peer's AS.
fn is_winner(path: Option<&AsPath>) -> bool {
    let mut asns = path
        .into_iter()
        .flat_map(|p| p.segments.iter())
        .flat_map(|s| s.asns.iter());
    let (_daemon, peer, next) = (asns.next(), asns.next(), asns.next());
    peer.is_some() && peer != next
}

async fn one_run(
    dut: Dut,
    streams: &[Vec<u8>],
    prefixes: usize,
    cpu: usize,
    flaps: usize,
) -> anyhow::Result<Sample> {
    let port = free_port()?;
    let daemon = start_dut(dut, port, cpu, streams.len(), Peers::Blasters)?;
    let pid = daemon.child.id();
    let target = SocketAddr::from((DUT, port));
    let mut sink = connect(SINK, target, SINK_AS).await?;
    let mut blasters = Vec::with_capacity(streams.len());
    for p in 0..streams.len() {
        blasters.push(connect(rr_client(p), target, member_as(p)).await?);
    }
    // Kept up to date for the whole run: the flaps watch it fall and rise.
    let winners = Arc::new(AtomicUsize::new(0));
    let announced = Arc::new(AtomicUsize::new(0));
    let all_won: Arc<OnceLock<Instant>> = Arc::default();
    let sink_task = {
        let (winners, announced, all_won) = (winners.clone(), announced.clone(), all_won.clone());
        tokio::spawn(async move {
            // Per prefix: whether the sink holds the winner's path.
            let mut held: HashMap<Prefix, bool> = HashMap::with_capacity(prefixes);
            let mut have = 0usize;
            sink.follow_decoded(|update: &Update| {
                for nlri in &update.withdrawn {
                    if held.remove(&nlri.prefix) == Some(true) {
                        have -= 1;
                    }
                }
                let win = is_winner(update.attributes.as_path.as_ref());
                for nlri in &update.nlri {
                    announced.fetch_add(1, Ordering::Relaxed);
                    match (held.insert(nlri.prefix, win), win) {
                        (Some(true), false) => have -= 1,
                        (Some(false) | None, true) => have += 1,
                        _ => {}
                    }
                }
                winners.store(have, Ordering::Relaxed);
                if have == prefixes {
                    let _ = all_won.set(Instant::now());
                }
                false
            })
            .await?;
            anyhow::Ok(())
        })
    };
    let t0 = Instant::now();
    let mut senders: Vec<_> = blasters
        .into_iter()
        .zip(streams.iter().cloned())
        .map(|(blaster, stream)| send(blaster, stream))
        .collect();
    let done = until(DEADLINE, || all_won.get().copied())
        .await
        .with_context(|| {
            format!(
                "the sink held {} of {prefixes} winners after {DEADLINE:?}",
                winners.load(Ordering::Relaxed)
            )
        })?;
    let announcements = announced.load(Ordering::Relaxed);
    let settled = status_kib(pid, "VmRSS:").unwrap_or(0);
    let peak = peak_rss_kib(pid).unwrap_or(0);

    // The leak test: the first peer wins every n-th prefix; while it is
    // gone, the sink holds another peer's path there.
    let mut flap_rss_kib = Vec::with_capacity(flaps);
    let without_first = prefixes - prefixes.div_ceil(streams.len());
    for flap in 1..=flaps {
        let first = senders.remove(0);
        first.abort();
        let _ = first.await;
        until(DEADLINE, || {
            (winners.load(Ordering::Relaxed) == without_first).then_some(())
        })
        .await
        .with_context(|| format!("flap {flap}: the first peer's wins never left the sink"))?;
        let blaster = reconnect(target).await?;
        senders.insert(0, send(blaster, streams[0].clone()));
        until(DEADLINE, || {
            (winners.load(Ordering::Relaxed) == prefixes).then_some(())
        })
        .await
        .with_context(|| format!("flap {flap}: the sink never held every winner again"))?;
        crate::fib::settle(pid)?;
        flap_rss_kib.push(status_kib(pid, "VmRSS:").unwrap_or(0));
    }
    for sender in &senders {
        sender.abort();
    }
    sink_task.abort();
    Ok(Sample {
        time: done - t0,
        announcements,
        peak_rss_kib: peak,
        settled_rss_kib: settled,
        flap_rss_kib,
    })
}

/// A blaster sends its table, then stays in the session (keepalives)
/// until aborted, which ends its session.
fn send(
    mut blaster: crate::peer::Peer,
    stream: Vec<u8>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        blaster.stream.write_all(&stream).await?;
        blaster.idle().await?;
        anyhow::Ok(())
    })
}

/// The first peer again, once the daemon takes it back (each daemon
/// waits a while after a session ends before it accepts the peer again).
async fn reconnect(target: SocketAddr) -> anyhow::Result<crate::peer::Peer> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match connect(rr_client(0), target, member_as(0)).await {
            Ok(peer) => return Ok(peer),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the daemon never took the first peer back"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Poll `ready` every 10 ms until it gives a value, for at most `limit`.
async fn until<T>(limit: Duration, mut ready: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = ready() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("not within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One row per daemon and peer count: time, announcements, memory; then
/// the bytes each path beyond the first peer's costs.
fn report(rows: &[(Dut, usize, Vec<Sample>)], prefixes: usize) {
    let median = |mut v: Vec<f64>| stats(&mut v);
    println!();
    println!(
        "| daemon | peers | time until the sink holds every winner (s), median (min–max) \
         | announcements to the sink per prefix | settled RSS (MiB) | peak RSS (MiB) \
         | bytes per extra path |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (dut, n, samples) in rows {
        let t = median(samples.iter().map(|s| s.time.as_secs_f64()).collect());
        let a = median(samples.iter().map(|s| s.announcements as f64).collect());
        let rss = median(
            samples
                .iter()
                .map(|s| s.settled_rss_kib as f64 * 1024.0)
                .collect(),
        );
        let peak = median(
            samples
                .iter()
                .map(|s| s.peak_rss_kib as f64 * 1024.0)
                .collect(),
        );
        // Against the same daemon's smallest peer count.
        let per_path = rows
            .iter()
            .filter(|(d, m, _)| d == dut && m < n)
            .min_by_key(|(_, m, _)| *m)
            .map(|(_, m, base)| {
                let base = median(
                    base.iter()
                        .map(|s| s.settled_rss_kib as f64 * 1024.0)
                        .collect(),
                );
                format!("{:.0}", (rss.0 - base.0) / ((n - m) * prefixes) as f64)
            })
            .unwrap_or_else(|| "–".into());
        println!(
            "| {dut:?} | {n} | {:.2} ({:.2}–{:.2}) | {:.2} | {:.0} | {:.0} | {per_path} |",
            t.0,
            t.1,
            t.2,
            a.0 / prefixes as f64,
            rss.0 / 1048576.0,
            peak.0 / 1048576.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_peer_wins_each_prefix() {
        let table = Table::generate(2_000, 50, 0, SEED);
        let n = 4;
        let ctx = Context::default();
        // Per prefix, the peers whose path is the shortest.
        let mut shortest: HashMap<Prefix, (usize, Vec<usize>)> = HashMap::new();
        for p in 0..n {
            let stream = peer_stream(&table, n, p);
            let mut at = 0;
            while let Some(h) = starling_wire::peek_header(&stream[at..], 65535).expect("header") {
                let message =
                    starling_wire::Message::decode(&stream[at..at + h.len], &ctx).expect("decode");
                at += h.len;
                let starling_wire::Message::Update(parsed) = message else {
                    continue;
                };
                let update = parsed.update;
                let len = update
                    .attributes
                    .as_path
                    .iter()
                    .flat_map(|a| a.segments.iter())
                    .map(|s| s.asns.len())
                    .sum::<usize>();
                for nlri in update.nlri {
                    let entry = shortest.entry(nlri.prefix).or_insert((usize::MAX, vec![]));
                    if len < entry.0 {
                        *entry = (len, vec![p]);
                    } else if len == entry.0 {
                        entry.1.push(p);
                    }
                }
            }
        }
        assert_eq!(shortest.len(), 2_000);
        assert!(shortest.values().all(|(_, peers)| peers.len() == 1));
        for p in 0..n {
            let won = shortest.values().filter(|(_, w)| w[0] == p).count();
            assert_eq!(won, 500, "peer {p} wins a quarter");
        }
    }

    #[test]
    fn the_winner_is_told_by_its_single_as() {
        let path = |asns: &[u32]| AsPath::from_sequence(asns.iter().copied());
        assert!(is_winner(Some(&path(&[64512, 65001, 7, 8]))));
        assert!(is_winner(Some(&path(&[64512, 65001]))));
        assert!(!is_winner(Some(&path(&[64512, 65001, 65001, 7]))));
        assert!(!is_winner(Some(&path(&[64512]))));
        assert!(!is_winner(None));
    }
}
