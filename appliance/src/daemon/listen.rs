//! Where the speaker accepts BGP connections: `bgp.listen`, else the
//! plan's listen addresses (Calico's `bindMode: NodeIP`), else the
//! wildcard; and moving there when a plan changes it.

use std::net::{IpAddr, SocketAddr};

use super::config::Config;
use super::{Running, planner};

/// Where the speaker accepts connections: `bgp.listen` when set, else
/// the addresses the plan names (Calico's `bindMode: NodeIP`), else
/// `wildcard` (the one that could be bound at start); on the plan's port
/// unless `bgp.listen` gives one.
pub(super) fn listen_addresses(
    config: &Config,
    asked: &planner::Listen,
    wildcard: IpAddr,
) -> Vec<SocketAddr> {
    if config.bgp.listen.is_some() {
        return config.listen(asked.port);
    }
    if asked.addresses.is_empty() {
        return vec![SocketAddr::new(wildcard, asked.port)];
    }
    asked
        .addresses
        .iter()
        .map(|ip| SocketAddr::new(*ip, asked.port))
        .collect()
}

/// Listen where the plan now asks (a new port or addresses); sessions are
/// not touched. What cannot be bound leaves the old sockets in place, and
/// the next plan tries again.
pub(super) async fn relisten(running: &mut Running, addresses: Vec<SocketAddr>) {
    match running.instance.listen(&addresses).await {
        Ok(()) => {
            tracing::info!(?addresses, "listening for BGP on new addresses");
            running.listening = addresses;
        }
        Err(e) => tracing::error!(
            ?addresses,
            listening = ?running.listening,
            "cannot listen for BGP there, keeping what was listened on: {e}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn config(text: &str) -> Config {
        toml::from_str(text).expect("config")
    }

    #[test]
    fn listen_on_the_configuration_else_the_plan_else_the_wildcard() {
        let wildcard = IpAddr::from(Ipv6Addr::UNSPECIFIED);
        let plain = config("node_name = \"n1\"");
        let everywhere = planner::Listen {
            port: 1790,
            addresses: Vec::new(),
        };
        let node_ip = planner::Listen {
            port: 1790,
            addresses: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        };
        let show = |a: Vec<SocketAddr>| a.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            show(listen_addresses(&plain, &everywhere, wildcard)),
            ["[::]:1790"]
        );
        assert_eq!(
            show(listen_addresses(
                &plain,
                &everywhere,
                Ipv4Addr::UNSPECIFIED.into()
            )),
            ["0.0.0.0:1790"]
        );
        assert_eq!(
            show(listen_addresses(&plain, &node_ip, wildcard)),
            ["192.0.2.1:1790", "[2001:db8::1]:1790"]
        );
        // bgp.listen wins; its addresses take the plan's port unless they
        // name one.
        let configured =
            config("node_name = \"n1\"\n[bgp]\nlisten = [\"198.51.100.1\", \"198.51.100.2:179\"]");
        assert_eq!(
            show(listen_addresses(&configured, &node_ip, wildcard)),
            ["198.51.100.1:1790", "198.51.100.2:179"]
        );
    }
}
