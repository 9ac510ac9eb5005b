//! `[bmp]`: one exporter per collector, on the running instance.

use std::time::Duration;

use starling_bmp::{Exporter, ExporterConfig, Speaker};
use starling_speaker::instance::Instance;
use starling_speaker::rib::RibConfig;

use super::config::Config;

/// Wait before reconnecting to a collector: 1 s, doubling to 60 s.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

pub(crate) fn start(config: &Config, instance: &Instance, rib: &RibConfig) -> Vec<Exporter> {
    config
        .bmp
        .collectors
        .iter()
        .map(|collector| {
            tracing::info!(%collector, "BMP: exporting to collector");
            Exporter::start(
                ExporterConfig {
                    collector: collector.clone(),
                    sys_name: config.node_name.clone(),
                    sys_descr: concat!("Starling ", env!("CARGO_PKG_VERSION")).to_owned(),
                    speaker: Speaker {
                        asn: rib.local_as,
                        router_id: rib.router_id,
                    },
                    stats_interval: Duration::from_secs(config.bmp.statistics_interval.max(1)),
                    backoff: BACKOFF,
                },
                instance.clone(),
            )
        })
        .collect()
}
