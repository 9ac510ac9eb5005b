//! One collector's connection: connect (again, with backoff), introduce
//! the speaker, subscribe to the instance's monitor and stream what it
//! shows; statistics on a timer; a Termination when Starling stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use starling_speaker::instance::{Instance, MonitorEvent, MonitoredPeer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::message::{self, Stat};
use crate::translate::{self, Speaker};

/// What one exporter needs to know.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// `host:port` of the collector.
    pub collector: String,
    /// Initiation's sysName (the node's name) and sysDescr.
    pub sys_name: String,
    pub sys_descr: String,
    pub speaker: Speaker,
    /// Between Statistics Reports.
    pub stats_interval: Duration,
    /// The first and the longest wait before connecting again.
    pub backoff: (Duration, Duration),
}

/// Monitor events a collector may be behind by before it is dropped and
/// resynchronised with a fresh snapshot.
const MONITOR_CAPACITY: usize = 16_384;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collector that takes no bytes for this long is reconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running exporter.
#[derive(Debug)]
pub struct Exporter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Start exporting `instance` to the configured collector.
    pub fn start(config: ExporterConfig, instance: Instance) -> Self {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(run(config, instance, stopping));
        Self { stop, task }
    }

    /// Send a Termination to a connected collector and stop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn run(config: ExporterConfig, instance: Instance, mut stopping: watch::Receiver<bool>) {
    let mut wait = config.backoff.0;
    loop {
        let mut connected = false;
        let outcome = stream(&config, &instance, &mut stopping, &mut connected).await;
        if connected {
            // A collector that was reached backs off from the start again;
            // never reconnect at once (a snapshot that cannot fit would
            // loop).
            wait = config.backoff.0;
        }
        match outcome {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Resync) => {}
            Err(e) => {
                tracing::warn!(collector = %config.collector, "BMP: {e}; reconnecting in {wait:?}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => return,
        }
        wait = (wait * 2).min(config.backoff.1);
    }
}

enum Ended {
    Stopped,
    /// The collector fell behind the instance; reconnect for a snapshot.
    Resync,
}

async fn stream(
    config: &ExporterConfig,
    instance: &Instance,
    stopping: &mut watch::Receiver<bool>,
    connected: &mut bool,
) -> std::io::Result<Ended> {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&config.collector));
    let mut socket = tokio::select! {
        connected = connect => connected.map_err(|_| std::io::Error::other("connect timed out"))??,
        _ = stopping.changed() => return Ok(Ended::Stopped),
    };
    *connected = true;
    let _ = socket.set_nodelay(true);
    tracing::info!(collector = %config.collector, "BMP: connected");
    let now = SystemTime::now();
    send(
        &mut socket,
        &[
            message::initiation(&config.sys_name, &config.sys_descr),
            translate::loc_rib_peer_up(config.speaker, now),
        ],
    )
    .await?;
    let mut events = instance.monitor(MONITOR_CAPACITY);
    let mut peers: HashMap<IpAddr, MonitoredPeer> = HashMap::new();
    let mut stats = tokio::time::interval(config.stats_interval);
    stats.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    tracing::warn!(collector = %config.collector, "BMP: the collector fell behind; resynchronising");
                    return Ok(Ended::Resync);
                };
                track(&mut peers, &event);
                let messages = translate::messages(&event, config.speaker, SystemTime::now());
                send(&mut socket, &messages).await?;
            }
            _ = stats.tick() => {
                let messages = statistics(instance, &peers, config.speaker).await;
                send(&mut socket, &messages).await?;
            }
            _ = stopping.changed() => {
                let _ = send(&mut socket, &[message::termination("Starling is stopping")]).await;
                let _ = socket.shutdown().await;
                return Ok(Ended::Stopped);
            }
        }
    }
}

/// The peers that are up, for their Statistics Reports.
fn track(peers: &mut HashMap<IpAddr, MonitoredPeer>, event: &MonitorEvent) {
    match event {
        MonitorEvent::PeerUp { peer, .. } => {
            peers.insert(peer.address, *peer);
        }
        MonitorEvent::PeerDown { peer, .. } => {
            peers.remove(&peer.address);
        }
        _ => {}
    }
}

async fn statistics(
    instance: &Instance,
    peers: &HashMap<IpAddr, MonitoredPeer>,
    speaker: Speaker,
) -> Vec<Vec<u8>> {
    let counts = instance.counts().await;
    let now = SystemTime::now();
    let mut messages: Vec<Vec<u8>> = peers
        .values()
        .filter_map(|peer| {
            let c = counts.peers.get(&peer.address)?;
            Some(message::statistics(
                &translate::peer_header(peer, false, now),
                &[
                    Stat::RejectedPrefixes(u32::try_from(c.rejected).unwrap_or(u32::MAX)),
                    Stat::AdjRibInRoutes((c.accepted + c.rejected) as u64),
                ],
            ))
        })
        .collect();
    messages.push(message::statistics(
        &translate::loc_rib_header(speaker, now),
        &[Stat::LocRibRoutes(counts.loc_rib as u64)],
    ));
    messages
}

async fn send(socket: &mut TcpStream, messages: &[Vec<u8>]) -> std::io::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let bytes = messages.concat();
    tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::other("the collector took nothing for 30 s"))?
}
