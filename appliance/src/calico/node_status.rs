//! `starling node status`: what `calicoctl node status` prints, from the
//! local daemon over its admin socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum NodeCommand {
    /// Show this node's BGP sessions, as `calicoctl node status` does.
    Status(StatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StatusOutput {
    Table,
    Json,
}

/// Where the daemon is and how to print its answer (`node status`,
/// `routes`).
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The daemon's admin socket.
    #[arg(
        long,
        env = "STARLING_ADMIN_SOCKET",
        default_value_os_t = crate::daemon::config::admin_socket()
    )]
    socket: PathBuf,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: StatusOutput,
}

/// Longest INFO cell line before wrapping, as the released calicoctl's
/// table writer did.
const WRAP: usize = 30;

pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let answer = match ask_for(&args.socket, "status") {
        Ok(a) => a,
        Err(_) => {
            println!("Calico process is not running.");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.output == StatusOutput::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&answer, &TimeOfDay::now()));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ask_for(socket: &std::path::Path, request: &str) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// Today's date, for SINCE: a time today prints as `HH:MM:SS`, an older
/// one as its date, as BIRD prints it. Times are UTC.
pub(crate) struct TimeOfDay {
    today: u64,
}

impl TimeOfDay {
    fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        TimeOfDay {
            today: secs / 86_400,
        }
    }

    fn since(&self, secs: u64) -> String {
        if secs / 86_400 == self.today {
            let s = secs % 86_400;
            format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
        } else {
            starling_store::date_of(secs)
        }
    }
}

/// The whole output, per calico-model.md §4.1.
pub(crate) fn render(answer: &Value, clock: &TimeOfDay) -> String {
    let mut out = String::from("Calico process is running.\n");
    let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
    for (family, label) in [("ipv4", "IPv4"), ("ipv6", "IPv6")] {
        out.push_str(&format!("\n{label} BGP status\n"));
        let rows: Vec<Vec<String>> = sessions
            .iter()
            .filter(|s| s["family"] == family)
            .filter_map(|s| row(s, family == "ipv4", clock))
            .collect();
        if rows.is_empty() {
            out.push_str(&format!("No {label} peers found.\n"));
        } else {
            out.push_str(&table(&rows));
        }
    }
    out.push('\n');
    // Not in calicoctl's output (scripts parse the tables above): shown
    // only when the node is not following the datastore.
    if let Some(error) = answer["plan_error"]["error"].as_str() {
        let since = clock.since(answer["plan_error"]["since"].as_u64().unwrap_or_default());
        out.push_str(&format!(
            "Configuration not applied since {since}: {error}\n\
             The sessions above follow the last configuration the plugins accepted.\n\n"
        ));
    }
    if let Some(error) = answer["datastore_error"]["error"].as_str() {
        let since = clock.since(
            answer["datastore_error"]["since"]
                .as_u64()
                .unwrap_or_default(),
        );
        out.push_str(&format!(
            "Datastore trouble since {since}: {error}\n\
             The sessions above follow what was last read from it.\n\n"
        ));
    }
    if let Some(cluster) = answer["cluster_id"].as_str() {
        let clients: Vec<&str> = sessions
            .iter()
            .filter(|s| s["rr_client"] == true)
            .filter_map(|s| s["peer_ip"].as_str())
            .collect();
        out.push_str(&format!(
            "This node is a route reflector, cluster ID {cluster}; clients: {}.\n\n",
            if clients.is_empty() {
                "none".to_owned()
            } else {
                clients.join(", ")
            }
        ));
    }
    let warnings = answer["plan_warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !warnings.is_empty() {
        out.push_str("Configuration applied with warnings:\n");
        for w in warnings.iter().filter_map(Value::as_str) {
            out.push_str(&format!("  - {w}\n"));
        }
        out.push('\n');
    }
    out
}

fn calico_address(rest: &str, v4: bool) -> String {
    rest.replace('_', if v4 { "." } else { ":" })
}

fn row(s: &Value, v4: bool, clock: &TimeOfDay) -> Option<Vec<String>> {
    let name = s["name"].as_str()?;
    let (kind, rest) = name.split_once('_').unwrap_or((name, ""));
    let (peer_type, address) = match kind {
        // Calico decodes the address from the session name, port suffix
        // and all (`10.0.0.1.port.1790`): scripts parse this, so do the
        // same.
        "Mesh" => ("node-to-node mesh".to_owned(), calico_address(rest, v4)),
        "Global" => ("global".to_owned(), calico_address(rest, v4)),
        "Node" => ("node specific".to_owned(), calico_address(rest, v4)),
        // What calicoctl hides: BIRD's local protocols, not BGP peers.
        "Local" => return None,
        // Sessions of another model (Calico's are the three above): their
        // name's first word as the type, and the peer's address.
        other => (
            other.to_lowercase(),
            s["peer_ip"].as_str().unwrap_or(rest).to_owned(),
        ),
    };
    let fsm = s["state"].as_str().unwrap_or("Idle");
    let state = if fsm == "Established" { "up" } else { "start" };
    let mut info = fsm.to_owned();
    if let Some(detail) = s["info"].as_str().filter(|_| fsm != "Established") {
        info.push(' ');
        info.push_str(detail);
    }
    Some(vec![
        address,
        peer_type.to_owned(),
        state.to_owned(),
        clock.since(s["since"].as_u64().unwrap_or(0)),
        info,
    ])
}

/// Word-wrap a cell to lines of at most `WRAP` characters.
fn wrap(cell: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in cell.split(' ') {
        if !current.is_empty() && current.len() + 1 + word.len() > WRAP {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    lines
}

fn table(rows: &[Vec<String>]) -> String {
    let header = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
    let wrapped: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| wrap(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &wrapped {
        for (w, cell) in widths.iter_mut().zip(r) {
            for line in cell {
                *w = (*w).max(line.len());
            }
            // A column that needed wrapping is as wide as the wrap limit,
            // as the released table writer made it.
            if cell.len() > 1 {
                *w = (*w).max(WRAP);
            }
        }
    }
    let border = {
        let mut b = String::from("+");
        for w in &widths {
            b.push_str(&"-".repeat(w + 2));
            b.push('+');
        }
        b.push('\n');
        b
    };
    let mut out = border.clone();
    out.push('|');
    for (h, w) in header.iter().zip(&widths) {
        let pad = w - h.len();
        let left = pad / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(pad - left)
        ));
    }
    out.push('\n');
    out.push_str(&border);
    for r in &wrapped {
        let height = r.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            out.push('|');
            for (cell, w) in r.iter().zip(&widths) {
                let text = cell.get(line).map_or("", String::as_str);
                out.push_str(&format!(" {text:<w$} |"));
            }
            out.push('\n');
        }
    }
    out.push_str(&border);
    out
}

/// `starling routes`: every path in the RIB, as `birdc show route`
/// lists them.
pub(crate) fn routes(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let Ok(answer) = ask_for(&args.socket, "routes") else {
        eprintln!(
            "error: starling is not running (no answer on {})",
            args.socket.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    if args.output == StatusOutput::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    // As `birdc show route`: every path, `*` on the selected ones.
    let rows: Vec<[String; 5]> = answer["routes"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                    [
                        text("prefix"),
                        if r["best"] == false { " " } else { "*" }.to_owned(),
                        text("next_hop"),
                        text("from"),
                        text("as_path"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let header = ["PREFIX", " ", "NEXT HOP", "FROM", "AS PATH"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                text.push_str(c);
            } else {
                text.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", text.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_released_calicoctl_format() {
        // 2026-11-25 is day 20782 since the epoch.
        let clock = TimeOfDay { today: 20782 };
        let at = |h: u64, m: u64, s: u64| 20782 * 86_400 + h * 3600 + m * 60 + s;
        let answer = json!({"sessions": [
            {"name": "Mesh_172_17_8_102", "family": "ipv4", "state": "Established", "since": at(23, 30, 4), "info": null},
            {"name": "Global_10_20_30_40", "family": "ipv4", "state": "Active", "since": at(16, 28, 38), "info": "Socket: Connection refused"},
            {"name": "Node_192_10_0_1", "family": "ipv4", "state": "Established", "since": at(16, 28, 57), "info": null},
            {"name": "Local_Workload_10_0_0_9", "family": "ipv4", "state": "Established", "since": at(1, 0, 0), "info": null},
        ]});
        let want = "\
Calico process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+--------------------------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |              INFO              |
+--------------+-------------------+-------+----------+--------------------------------+
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established                    |
| 10.20.30.40  | global            | start | 16:28:38 | Active Socket: Connection      |
|              |                   |       |          | refused                        |
| 192.10.0.1   | node specific     | up    | 16:28:57 | Established                    |
+--------------+-------------------+-------+----------+--------------------------------+

IPv6 BGP status
No IPv6 peers found.

";
        assert_eq!(render(&answer, &clock), want);
    }

    #[test]
    fn a_refused_configuration_is_shown_after_the_tables() {
        let clock = TimeOfDay { today: 20782 };
        let answer = json!({
            "sessions": [],
            "plan_error": {"error": "plugin as_assignment trapped", "since": 20782 * 86_400 + 3600},
        });
        let text = render(&answer, &clock);
        assert!(
            text.ends_with(
                "No IPv6 peers found.\n\n\
                 Configuration not applied since 01:00:00: plugin as_assignment trapped\n\
                 The sessions above follow the last configuration the plugins accepted.\n\n"
            ),
            "{text}"
        );
        // Without one, the released format is untouched.
        assert!(!render(&json!({"sessions": []}), &clock).contains("Configuration"));
    }

    #[test]
    fn datastore_trouble_is_shown_after_the_tables() {
        let clock = TimeOfDay { today: 20782 };
        let answer = json!({
            "sessions": [],
            "datastore_error": {
                "error": "etcd http://127.0.0.1:2379: transport error",
                "since": 20782 * 86_400 + 7200,
            },
        });
        let text = render(&answer, &clock);
        assert!(
            text.ends_with(
                "No IPv6 peers found.\n\n\
                 Datastore trouble since 02:00:00: etcd http://127.0.0.1:2379: transport error\n\
                 The sessions above follow what was last read from it.\n\n"
            ),
            "{text}"
        );
        assert!(!render(&json!({"sessions": []}), &clock).contains("Datastore"));
    }

    #[test]
    fn a_reflector_says_so_and_names_its_clients() {
        let clock = TimeOfDay { today: 20782 };
        let answer = json!({
            "sessions": [
                {"name": "Node_192_0_2_12", "family": "ipv4", "peer_ip": "192.0.2.12", "state": "Established", "since": 20782 * 86_400, "info": null, "rr_client": true},
                {"name": "Node_192_0_2_15", "family": "ipv4", "peer_ip": "192.0.2.15", "state": "Established", "since": 20782 * 86_400, "info": null, "rr_client": false},
                {"name": "Node_2001_db8__12", "family": "ipv6", "peer_ip": "2001:db8::12", "state": "Established", "since": 20782 * 86_400, "info": null, "rr_client": true},
            ],
            "cluster_id": "244.0.0.1",
        });
        let text = render(&answer, &clock);
        assert!(
            text.ends_with(
                "This node is a route reflector, cluster ID 244.0.0.1; clients: 192.0.2.12, 2001:db8::12.\n\n"
            ),
            "{text}"
        );
        assert!(!render(&json!({"sessions": []}), &clock).contains("reflector"));
    }

    #[test]
    fn plan_warnings_are_listed_after_the_tables() {
        let clock = TimeOfDay { today: 20782 };
        let answer = json!({
            "sessions": [],
            "plan_warnings": [
                "left out of the plan: BGPConfiguration 'default', field spec.serviceClusterIPs[0].cidr: '' is not a CIDR (element skipped)",
            ],
        });
        assert!(
            render(&answer, &clock).ends_with(
                "No IPv6 peers found.\n\n\
                 Configuration applied with warnings:\n  \
                 - left out of the plan: BGPConfiguration 'default', field spec.serviceClusterIPs[0].cidr: '' is not a CIDR (element skipped)\n\n"
            ),
            "{}",
            render(&answer, &clock)
        );
        assert!(
            !render(&json!({"sessions": [], "plan_warnings": []}), &clock).contains("warnings")
        );
    }

    #[test]
    fn ports_ipv6_and_older_dates() {
        let clock = TimeOfDay { today: 20782 };
        let answer = json!({"sessions": [
            {"name": "Global_10_0_0_1_port_1790", "family": "ipv4", "state": "Established", "since": 20781 * 86_400, "info": null},
            {"name": "Mesh_2001_db8__2", "family": "ipv6", "state": "Established", "since": 20782 * 86_400 + 1, "info": null},
        ]});
        let text = render(&answer, &clock);
        assert!(
            text.contains("| 10.0.0.1.port.1790 | global    | up    | 2026-11-24 | Established |"),
            "{text}"
        );
        assert!(
            text.contains("| 2001:db8::2  | node-to-node mesh | up    | 00:00:01 | Established |"),
            "{text}"
        );
    }
}
