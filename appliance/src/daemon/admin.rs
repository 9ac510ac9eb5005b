//! The admin socket: a root-only Unix socket the CLI asks for status.
//!
//! Protocol: the client writes one line (`status`), the daemon answers
//! with one JSON document and closes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use starling_plugin_host::contract::Family;
use starling_speaker::DownReason;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::Shared;

/// Listen on `path` (0600, parent directory 0700) until dropped.
pub(crate) fn serve(
    path: &Path,
    shared: Arc<Mutex<Shared>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    // A socket left by a crashed run would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = match line.trim() {
                    "status" => status(&shared).await,
                    "routes" => {
                        // Streamed: a full table's answer is hundreds of
                        // megabytes as one document.
                        let _ = write_routes(&shared, &mut write).await;
                        let _ = write.shutdown().await;
                        return;
                    }
                    other => json!({"error": format!("unknown request '{other}'")}),
                };
                let _ = write.write_all(answer.to_string().as_bytes()).await;
                let _ = write.shutdown().await;
            });
        }
    }))
}

async fn status(shared: &Arc<Mutex<Shared>>) -> Value {
    let (instance, sessions, plan_error, datastore_error, plan_warnings, cluster_id, clients) =
        match shared.lock() {
            Ok(s) => (
                s.instance.clone(),
                s.sessions.clone(),
                s.plan_error.clone(),
                s.datastore_error.clone(),
                s.plan_warnings.clone(),
                s.cluster_id,
                s.reflector_clients.clone(),
            ),
            Err(_) => return json!({"error": "status unavailable"}),
        };
    let peers = match &instance {
        Some(i) => i.peers().await,
        None => Vec::new(),
    };
    let now = Instant::now();
    let wall = super::unix_now();
    let rows: Vec<Value> = sessions
        .iter()
        .map(|(name, (family, address))| {
            let peer = peers.iter().find(|p| p.remote.ip() == *address);
            let (state, since, info) = match peer {
                Some(p) => {
                    let ago = now.saturating_duration_since(p.since).as_secs();
                    let detail = p.last_error.as_ref().map(|e| match e {
                        DownReason::Sent(n) => format!("BGP Error: {n}"),
                        DownReason::Received(n) => format!("Received: {n}"),
                        DownReason::ConnectionLost => "Socket: Connection closed".to_owned(),
                    });
                    (p.state.name(), wall.saturating_sub(ago), detail)
                }
                None => ("Idle", wall, None),
            };
            json!({
                "name": name,
                "family": match family { Family::Ipv4 => "ipv4", Family::Ipv6 => "ipv6" },
                "peer_ip": address.to_string(),
                "state": state,
                "since": since,
                "info": info,
                "peer_as": peer.and_then(|p| p.negotiated.as_ref()).map(|n| n.peer_as),
                "ebgp": peer.and_then(|p| p.negotiated.as_ref()).map(|n| n.codec.ebgp),
                "rr_client": clients.contains(name),
            })
        })
        .collect();
    json!({
        "sessions": rows,
        "plan_error": plan_error.map(|(error, since)| json!({"error": error, "since": since})),
        "datastore_error": datastore_error.map(|(error, since)| json!({"error": error, "since": since})),
        "plan_warnings": plan_warnings,
        "cluster_id": cluster_id.map(|c| c.to_string()),
    })
}

/// One row of the `routes` answer.
#[derive(serde::Serialize)]
struct RouteRow<'a> {
    prefix: String,
    best: bool,
    next_hop: String,
    from: &'a str,
    as_path: String,
    local_pref: Option<u32>,
    med: Option<u32>,
}

/// Every path in the RIB (selected ones marked), with the session each
/// came from: `{"routes": [row, …]}`, written a few dozen kilobytes at a
/// time so that dumping a full table never holds more than the RIB's
/// pointers and one buffer (a document built whole costs a kilobyte per
/// path before the first byte leaves).
async fn write_routes(
    shared: &Arc<Mutex<Shared>>,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    const FLUSH_AT: usize = 64 * 1024;
    let state = shared
        .lock()
        .ok()
        .map(|s| (s.instance.clone(), s.sessions.clone()));
    let Some((instance, sessions)) = state else {
        let error = json!({"error": "status unavailable"}).to_string();
        return out.write_all(error.as_bytes()).await;
    };
    let paths = match instance {
        Some(instance) => instance.paths().await,
        None => Vec::new(),
    };
    let names: std::collections::HashMap<std::net::IpAddr, &str> = sessions
        .iter()
        .map(|(name, (_, address))| (*address, name.as_str()))
        .collect();
    let mut buffer = Vec::with_capacity(FLUSH_AT + 1024);
    buffer.extend_from_slice(br#"{"routes":["#);
    for (i, path) in paths.iter().enumerate() {
        let peer_address;
        let from = match path.source {
            starling_speaker::rib::Source::Local => "local",
            starling_speaker::rib::Source::Peer(ip) => {
                if let Some(name) = names.get(&ip) {
                    name
                } else {
                    peer_address = ip.to_string();
                    peer_address.as_str()
                }
            }
        };
        let next_hop = match path.route.next_hop {
            starling_wire::NextHop::V4(a) => a.to_string(),
            starling_wire::NextHop::V6 { global, .. } => global.to_string(),
        };
        let attrs = &path.route.attrs;
        let row = RouteRow {
            prefix: path.prefix.to_string(),
            best: path.best,
            next_hop,
            from,
            as_path: attrs
                .as_path
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            local_pref: attrs.local_pref,
            med: attrs.med,
        };
        if i > 0 {
            buffer.push(b',');
        }
        serde_json::to_writer(&mut buffer, &row)?;
        if buffer.len() >= FLUSH_AT {
            out.write_all(&buffer).await?;
            buffer.clear();
        }
    }
    buffer.extend_from_slice(b"]}");
    out.write_all(&buffer).await
}
