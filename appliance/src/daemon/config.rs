//! `starling.toml`: the daemon's configuration.
//!
//! Unknown keys are errors (a misspelt key must not be silently ignored),
//! and every error names the key. Everything but `node_name` has a default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::datastore::Location;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// This node's name: the Node resource whose sessions this daemon runs.
    pub(crate) node_name: String,
    /// A directory (the embedded store), or a table
    /// `{ type = "etcdv3", endpoints = ["http://host:port", ...] }`.
    #[serde(default = "default_datastore", deserialize_with = "datastore")]
    pub(crate) datastore: Location,
    /// BGP router id; default: the node's IPv4 address.
    pub(crate) router_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub(crate) bgp: Bgp,
    #[serde(default)]
    pub(crate) plugins: Plugins,
    #[serde(default)]
    pub(crate) fib: Fib,
    #[serde(default)]
    pub(crate) admin: Admin,
    #[serde(default)]
    pub(crate) metrics: Metrics,
    #[serde(default)]
    pub(crate) log: Log,
    #[serde(default)]
    pub(crate) bmp: Bmp,
    /// The file this configuration came from (for SIGHUP).
    #[serde(skip)]
    pub(crate) path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metrics {
    /// Where Prometheus scrapes `/metrics`; loopback unless opened up.
    #[serde(default = "metrics_listen")]
    pub(crate) listen: String,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            listen: metrics_listen(),
            enabled: true,
        }
    }
}

fn metrics_listen() -> String {
    "127.0.0.1:9179".to_owned()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bgp {
    /// Addresses to listen on; default: every address, on the node's
    /// listen port (the plan's, else 179).
    pub(crate) listen: Option<Vec<String>>,
    /// Prefixes this node originates besides its blocks and the service
    /// CIDRs; exported where the export policy accepts them.
    #[serde(default)]
    pub(crate) originate: Vec<String>,
    /// Seconds before a session that failed is tried again, `[min, max]`
    /// as BIRD's `error wait time`: the first wait, doubled with each
    /// failure in a row up to the second. A session's own `error_wait`
    /// from the plan replaces the first. Default `[1, 120]`.
    pub(crate) error_wait: Option<Vec<u64>>,
}

/// The error wait's bounds when `bgp.error_wait` does not say.
const ERROR_WAIT: (u64, u64) = (1, 120);

impl Bgp {
    /// The first and the longest wait before a failed session is tried
    /// again.
    pub(crate) fn error_wait(&self) -> (std::time::Duration, std::time::Duration) {
        let (min, max) = match self.error_wait.as_deref() {
            Some(&[min, max]) => (min, max),
            _ => ERROR_WAIT,
        };
        (
            std::time::Duration::from_secs(min),
            std::time::Duration::from_secs(max),
        )
    }
}

/// The plugin for each role: a built-in name (`calico`, `as-per-rack`,
/// `prefix-guard`) or a `.wasm` file, reloaded when it changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plugins {
    #[serde(default = "calico")]
    pub(crate) as_assignment: String,
    #[serde(default = "calico")]
    pub(crate) route_reflection: String,
    #[serde(default = "calico")]
    pub(crate) node_identity: String,
    #[serde(default = "calico")]
    pub(crate) peer_selection: String,
    #[serde(default = "calico")]
    pub(crate) origination: String,
    #[serde(default = "calico")]
    pub(crate) route_policy: String,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            as_assignment: calico(),
            route_reflection: calico(),
            node_identity: calico(),
            peer_selection: calico(),
            origination: calico(),
            route_policy: calico(),
        }
    }
}

/// `[bmp]`: BMP collectors (RFC 7854) shown every session and route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bmp {
    /// `host:port` of each collector; none: BMP is off.
    #[serde(default)]
    pub(crate) collectors: Vec<String>,
    /// Seconds between Statistics Reports.
    #[serde(default = "bmp_statistics_interval")]
    pub(crate) statistics_interval: u64,
}

impl Default for Bmp {
    fn default() -> Self {
        Bmp {
            collectors: Vec::new(),
            statistics_interval: bmp_statistics_interval(),
        }
    }
}

fn bmp_statistics_interval() -> u64 {
    60
}

/// `[log]`: how the daemon writes its log to standard error.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Log {
    #[serde(default)]
    pub(crate) format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Lines for people (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers: `timestamp`, `level`,
    /// `target`, `fields` (`message` and the event's own fields).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FibMode {
    /// Install best paths into the kernel.
    #[default]
    Program,
    /// Leave the kernel alone (route-reflector-only appliances).
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fib {
    #[serde(default)]
    pub(crate) mode: FibMode,
    #[serde(default = "main_table")]
    pub(crate) table: u32,
    #[serde(default = "protocol")]
    pub(crate) protocol: u8,
    /// On shutdown, delete Starling's routes (default: keep them, so
    /// forwarding survives a restart and the next run adopts them).
    #[serde(default)]
    pub(crate) clean_on_exit: bool,
}

impl Default for Fib {
    fn default() -> Self {
        Fib {
            mode: FibMode::Program,
            table: main_table(),
            protocol: protocol(),
            clean_on_exit: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Admin {
    /// The root-only Unix socket `starling node status` talks to.
    #[serde(default = "admin_socket")]
    pub(crate) socket: PathBuf,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            socket: admin_socket(),
        }
    }
}

fn default_datastore() -> Location {
    Location::Embedded(PathBuf::from(crate::datastore::DEFAULT_PATH))
}

/// `datastore = "/dir"` or `datastore = { type = "etcdv3", endpoints = [...] }`.
fn datastore<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Location, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Path(PathBuf),
        Table(toml::Table),
    }
    let table = match Raw::deserialize(d)
        .map_err(|_| D::Error::custom("expected a directory or a table with `type`"))?
    {
        Raw::Path(path) => return Ok(Location::Embedded(path)),
        Raw::Table(table) => table,
    };
    let kind = table.get("type").and_then(toml::Value::as_str);
    match kind {
        Some("embedded") => {
            if let Some(key) = table
                .keys()
                .find(|k| !matches!(k.as_str(), "type" | "path"))
            {
                return Err(D::Error::custom(format!(
                    "unknown key `{key}` for embedded"
                )));
            }
            let path = table.get("path").map_or_else(
                || Ok(PathBuf::from(crate::datastore::DEFAULT_PATH)),
                |p| {
                    p.as_str()
                        .map(PathBuf::from)
                        .ok_or_else(|| D::Error::custom("path: expected a string"))
                },
            )?;
            Ok(Location::Embedded(path))
        }
        Some("etcdv3") => {
            if let Some(key) = table
                .keys()
                .find(|k| !matches!(k.as_str(), "type" | "endpoints"))
            {
                return Err(D::Error::custom(format!("unknown key `{key}` for etcdv3")));
            }
            let endpoints: Vec<String> = table
                .get("endpoints")
                .and_then(toml::Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|e| e.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| D::Error::custom("endpoints: required for etcdv3, a list of URLs"))?
                .ok_or_else(|| D::Error::custom("endpoints: expected strings"))?;
            if endpoints.is_empty() {
                return Err(D::Error::custom("endpoints: must not be empty"));
            }
            crate::datastore::check_endpoints(&endpoints)
                .map_err(|e| D::Error::custom(format!("endpoints: {e}")))?;
            Ok(Location::Etcd(endpoints))
        }
        Some(other) => Err(D::Error::custom(format!(
            "type: unknown datastore type '{other}' (embedded, etcdv3)"
        ))),
        None => Err(D::Error::custom("type: required (embedded, etcdv3)")),
    }
}

fn calico() -> String {
    "calico".to_owned()
}

fn main_table() -> u32 {
    254
}

fn protocol() -> u8 {
    starling_fib::DEFAULT_PROTOCOL
}

pub(crate) fn admin_socket() -> PathBuf {
    PathBuf::from("/run/starling/admin.sock")
}

impl Config {
    /// Read and check a configuration file. The error names the file, the
    /// key and the problem.
    pub(crate) fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.path = Some(path.to_owned());
        config
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.node_name.is_empty() {
            bail!("node_name: must not be empty");
        }
        if let Some(listen) = &self.bgp.listen {
            for (i, a) in listen.iter().enumerate() {
                a.parse::<SocketAddr>()
                    .or_else(|_| a.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 179)))
                    .map_err(|_| {
                        anyhow::anyhow!("bgp.listen[{i}]: '{a}' is not an address or address:port")
                    })?;
            }
        }
        if let Some(wait) = &self.bgp.error_wait {
            match wait.as_slice() {
                &[min, max] if (1..=86_400).contains(&min) && (min..=86_400).contains(&max) => {}
                _ => bail!(
                    "bgp.error_wait: {wait:?} is not [min, max] seconds with 1 ≤ min ≤ max ≤ 86400 \
                     (BIRD's `error wait time`; default [1, 120])"
                ),
            }
        }
        for (i, text) in self.bgp.originate.iter().enumerate() {
            let prefix: starling_wire::Prefix = text.parse().map_err(|_| {
                anyhow::anyhow!("bgp.originate[{i}]: '{text}' is not a prefix (address/length)")
            })?;
            let given: IpAddr = text
                .split_once('/')
                .and_then(|(a, _)| a.parse().ok())
                .unwrap_or(prefix.addr());
            if given != prefix.addr() {
                bail!("bgp.originate[{i}]: '{text}' has host bits set; did you mean {prefix}?");
            }
        }
        if self.metrics.enabled && self.metrics.listen.parse::<SocketAddr>().is_err() {
            bail!(
                "metrics.listen: '{}' is not an address:port",
                self.metrics.listen
            );
        }
        if self.fib.table == 0 || self.fib.table == 255 {
            bail!(
                "fib.table: {} is reserved (0 unspecified, 255 local)",
                self.fib.table
            );
        }
        if self.fib.protocol <= 4 {
            bail!(
                "fib.protocol: {} is reserved by the kernel (use 5-255; Starling's default is {})",
                self.fib.protocol,
                starling_fib::DEFAULT_PROTOCOL
            );
        }
        for (key, source) in [
            ("plugins.as_assignment", &self.plugins.as_assignment),
            ("plugins.route_reflection", &self.plugins.route_reflection),
            ("plugins.peer_selection", &self.plugins.peer_selection),
            ("plugins.route_policy", &self.plugins.route_policy),
        ] {
            let builtin = starling_plugins::builtin(source).is_some();
            if !builtin && !std::path::Path::new(source).exists() {
                bail!("{key}: '{source}' is neither a built-in plugin nor a file");
            }
        }
        Ok(())
    }

    /// `bgp.originate`, parsed (checked at load).
    pub(crate) fn originate(&self) -> Vec<starling_wire::Prefix> {
        self.bgp
            .originate
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect()
    }

    /// The listen addresses, given the node's listen port.
    pub(crate) fn listen(&self, port: u16) -> Vec<SocketAddr> {
        match &self.bgp.listen {
            Some(list) => list
                .iter()
                .filter_map(|a| {
                    a.parse::<SocketAddr>()
                        .ok()
                        .or_else(|| a.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port)))
                })
                .collect(),
            // One dual-stack socket: with Linux's default bindv6only=0, a
            // second socket on 0.0.0.0 would collide with it.
            None => vec![SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port))],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn defaults_and_errors_that_name_the_key() {
        let c = parse("node_name = \"n1\"").expect("minimal");
        assert_eq!(c.fib.table, 254);
        assert_eq!(c.plugins.peer_selection, "calico");
        assert_eq!(c.listen(179), ["[::]:179".parse().expect("addr")]);
        let etcd = parse(
            "node_name = \"n1\"\ndatastore = { type = \"etcdv3\", endpoints = [\"http://127.0.0.1:2379\"] }",
        )
        .expect("etcd");
        assert_eq!(
            etcd.datastore,
            Location::Etcd(vec!["http://127.0.0.1:2379".into()])
        );
        let dir = parse("node_name = \"n1\"\ndatastore = \"/tmp/s\"").expect("dir");
        assert_eq!(dir.datastore, Location::Embedded("/tmp/s".into()));
        let cases = [
            ("nod_name = \"n1\"", "unknown field `nod_name`"),
            (
                "node_name = \"n1\"\n[fib]\nmode = \"maybe\"",
                "unknown variant `maybe`",
            ),
            ("node_name = \"n1\"\n[fib]\ntable = 255", "fib.table"),
            ("node_name = \"n1\"\n[fib]\nprotocol = 2", "fib.protocol"),
            (
                "node_name = \"n1\"\n[bgp]\nlisten = [\"nowhere\"]",
                "bgp.listen[0]",
            ),
            (
                "node_name = \"n1\"\n[plugins]\npeer_selection = \"/no/such.wasm\"",
                "plugins.peer_selection",
            ),
            ("node_name = \"n1\"\nrouter_id = \"x\"", "router_id"),
            (
                "node_name = \"n1\"\n[bgp]\noriginate = [\"192.0.2.1/24\"]",
                "bgp.originate[0]: '192.0.2.1/24' has host bits set; did you mean 192.0.2.0/24?",
            ),
            (
                "node_name = \"n1\"\n[bgp]\noriginate = [\"192.0.2.0/24\", \"nowhere\"]",
                "bgp.originate[1]",
            ),
            (
                "node_name = \"n1\"\n[bgp]\nerror_wait = [30, 10]",
                "bgp.error_wait: [30, 10] is not [min, max]",
            ),
            (
                "node_name = \"n1\"\n[bgp]\nerror_wait = [0, 10]",
                "bgp.error_wait",
            ),
            (
                "node_name = \"n1\"\n[bgp]\nerror_wait = [5]",
                "bgp.error_wait",
            ),
            (
                "node_name = \"n1\"\n[datastore]\ntype = \"etcd\"",
                "unknown datastore type 'etcd'",
            ),
            (
                "node_name = \"n1\"\n[datastore]\ntype = \"etcdv3\"",
                "endpoints: required",
            ),
            (
                "node_name = \"n1\"\n[datastore]\ntype = \"etcdv3\"\nendpoints = [\"https://e:2379\"]",
                "no TLS",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn error_wait_defaults_to_one_and_two_minutes_and_can_be_set() {
        use std::time::Duration;
        let default = parse("node_name = \"n1\"").expect("config");
        assert_eq!(
            default.bgp.error_wait(),
            (Duration::from_secs(1), Duration::from_secs(120))
        );
        let set = parse("node_name = \"n1\"\n[bgp]\nerror_wait = [5, 600]").expect("config");
        assert_eq!(
            set.bgp.error_wait(),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
    }
}
