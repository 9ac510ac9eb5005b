//! Plugins and configuration that change while the daemon runs: a plugin
//! file rewritten on disk, or SIGHUP.

use std::sync::Mutex;

use starling_plugin_host::Plugin;

use super::config::Config;
use super::planner::Planner;
use super::plugins::PluginSet;

/// Give the policy the plugin set's current plugins.
pub(super) fn swap(set: &PluginSet, planner: &mut Planner, list: &Mutex<Vec<Plugin>>) -> bool {
    match set.roles() {
        Ok(roles) => {
            planner.set_roles(roles);
            if let Ok(mut l) = list.lock() {
                *l = set.all();
            }
            true
        }
        Err(e) => {
            tracing::error!("{e}");
            false
        }
    }
}

/// SIGHUP: read the configuration again. A file that does not load
/// changes nothing; plugin changes apply at once; other changes need a
/// restart and say so. Returns whether to re-plan.
pub(super) fn reload(
    config: &mut Config,
    set: &mut PluginSet,
    planner: &mut Planner,
    list: &Mutex<Vec<Plugin>>,
) -> bool {
    let Some(path) = config.path.clone() else {
        return false;
    };
    let fresh = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("SIGHUP: configuration not reloaded, nothing changed: {e:#}");
            return false;
        }
    };
    let new_set = match PluginSet::load(set.host(), &fresh.plugins) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("SIGHUP: plugins not reloaded, nothing changed: {e:#}");
            return false;
        }
    };
    let mut restart_needed = Vec::new();
    if fresh.node_name != config.node_name {
        restart_needed.push("node_name");
    }
    if fresh.datastore != config.datastore {
        restart_needed.push("datastore");
    }
    if fresh.router_id != config.router_id {
        restart_needed.push("router_id");
    }
    if fresh.bgp.listen != config.bgp.listen {
        restart_needed.push("bgp.listen");
    }
    if fresh.fib.mode != config.fib.mode
        || fresh.fib.table != config.fib.table
        || fresh.fib.protocol != config.fib.protocol
    {
        restart_needed.push("fib");
    }
    if fresh.admin.socket != config.admin.socket {
        restart_needed.push("admin.socket");
    }
    if fresh.metrics.listen != config.metrics.listen
        || fresh.metrics.enabled != config.metrics.enabled
    {
        restart_needed.push("metrics");
    }
    if fresh.bmp != config.bmp {
        restart_needed.push("bmp");
    }
    if !restart_needed.is_empty() {
        tracing::warn!(keys = ?restart_needed, "SIGHUP: these settings apply at the next restart");
    }
    *set = new_set;
    tracing::info!(roles = %set.describe(), "SIGHUP: plugins serving their roles");
    config.plugins = fresh.plugins.clone();
    config.fib.clean_on_exit = fresh.fib.clean_on_exit;
    tracing::info!("SIGHUP: configuration reloaded");
    swap(set, planner, list)
}
