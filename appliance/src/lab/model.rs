//! What a lab's members run on: the ToR's BIRD configuration, each
//! node's `starling.toml`, and the resources applied to the lab's
//! datastore — Calico's guide resources, or the fabric model's.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::{
    FABRIC_IP, LabArgs, Model, State, TOR_AS, TOR_IP, TOR_IP6, namespace, node_ip, node_ip6,
};

pub(super) fn tor_config(model: Model, dual_stack: bool) -> String {
    // In the fabric model one session per node carries both families; the
    // session runs over IPv4, so the IPv6 next hop is given. With Calico's
    // model a dual-stack lab has one session per family, as Calico does.
    let kernel6 = "protocol kernel { ipv6 { export all; import none; }; merge paths on; }\n";
    let (kernel6, channel6, sessions6) = match (model, dual_stack) {
        (Model::Fabric, _) => (
            kernel6,
            "  ipv6 { import all; export all; next hop address 2001:db8::1; };\n",
            String::new(),
        ),
        (Model::Calico, true) => (
            kernel6,
            "",
            format!(
                "protocol bgp nodes6 {{\n  local {TOR_IP6} as {TOR_AS};\n\
                   neighbor range 2001:db8::/64 external;\n  dynamic name \"node6_\";\n\
                   error wait time 1, 5;\n  ipv6 {{ import all; export all; }};\n}}\n"
            ),
        ),
        (Model::Calico, false) => ("", "", String::new()),
    };
    format!(
        "router id {TOR_IP};\nprotocol device {{}}\n\
         # What the ToR learns goes into its kernel, so it forwards between nodes.\n\
         protocol kernel {{ ipv4 {{ export all; import none; }}; merge paths on; }}\n{kernel6}\
         protocol bgp nodes {{\n  local {TOR_IP} as {TOR_AS};\n  neighbor range 192.0.2.0/24 external;\n\
           dynamic name \"node\";\n\
           # A lab ToR takes a reconfigured node back in seconds, not BIRD's\n\
           # default minute.\n  error wait time 1, 5;\n  ipv4 {{ import all; export all; }};\n{channel6}}}\n\
         {sessions6}"
    )
}

pub(super) fn node_config(
    lab: &LabArgs,
    state: &State,
    node: &str,
    i: usize,
    plugins: &[(String, String)],
) -> String {
    let datastore = if state.etcd {
        format!("{{ type = \"etcdv3\", endpoints = [\"http://{FABRIC_IP}:2379\"] }}")
    } else {
        format!("\"{}\"", lab.dir.join("store").display())
    };
    let listen = if state.dual_stack {
        format!("\"{}\", \"{}\"", node_ip(i), node_ip6(i))
    } else {
        format!("\"{}\"", node_ip(i))
    };
    format!(
        "node_name = \"{node}\"\ndatastore = {datastore}\n\
         [bgp]\nlisten = [{listen}]\n\
         [admin]\nsocket = \"{}\"\n\
         [metrics]\nlisten = \"127.0.0.1:9179\"\n",
        lab.dir.join(node).join("admin.sock").display()
    ) + &plugin_section(plugins)
}

fn plugin_section(plugins: &[(String, String)]) -> String {
    if plugins.is_empty() {
        return String::new();
    }
    let mut out = String::from("[plugins]\n");
    for (role, plugin) in plugins {
        out.push_str(&format!("{role} = {plugin:?}\n"));
    }
    out
}

/// The guide's starting point: the default BGPConfiguration (mesh on, AS
/// 64512), one IP pool, a Node per node and its block; with `reflectors`,
/// the guide's route-reflector setup instead of the mesh.
pub(super) fn apply_resources(
    lab: &LabArgs,
    state: &State,
    reflectors: usize,
) -> anyhow::Result<()> {
    let mut yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n\
         spec: {{logSeverityScreen: Info, nodeToNodeMeshEnabled: {}, asNumber: 64512}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: default-ipv4-ippool}}\n\
         spec: {{cidr: 10.244.0.0/16, blockSize: 26}}\n",
        reflectors == 0
    );
    if state.dual_stack {
        yaml.push_str(
            "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default-ipv6-ippool}\n\
             spec: {cidr: '2001:db8:244::/48', blockSize: 122}\n",
        );
    }
    if reflectors > 0 {
        yaml.push_str(
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\n\
             metadata: {name: peer-with-route-reflectors}\n\
             spec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}\n",
        );
    }
    for (i, node) in state.nodes.iter().enumerate() {
        let i = i + 1;
        let (labels, cluster) = if i <= reflectors {
            (
                ", labels: {route-reflector: 'true'}",
                ", routeReflectorClusterID: 244.0.0.1",
            )
        } else {
            ("", "")
        };
        let ipv6 = if state.dual_stack {
            format!(", ipv6Address: '{}/64'", node_ip6(i))
        } else {
            String::new()
        };
        yaml.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {node}{labels}}}\n\
             spec: {{bgp: {{ipv4Address: {}/24{ipv6}{cluster}}}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {{name: {node}-10-244-{i}-0-26}}\n\
             spec: {{node: {node}, cidr: 10.244.{i}.0/26, state: confirmed, deleted: 'false'}}\n",
            node_ip(i)
        ));
        if state.dual_stack {
            yaml.push_str(&format!(
                "---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\n\
                 metadata: {{name: {node}-2001-db8-244-{i}--122}}\n\
                 spec: {{node: {node}, cidr: '2001:db8:244:{i}::/122', state: confirmed, deleted: 'false'}}\n"
            ));
        }
    }
    apply_file(lab, state, "lab.yaml", &yaml)
}

/// `starling apply` the resources in `yaml` (kept as `name` in the lab's
/// directory) to the lab's datastore.
fn apply_file(lab: &LabArgs, state: &State, name: &str, yaml: &str) -> anyhow::Result<()> {
    let file = lab.dir.join(name);
    std::fs::write(&file, yaml)?;
    let exe = std::env::current_exe()?;
    // In the fabric namespace: in etcd mode that is where etcd listens.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", &namespace(&lab.name, "fabric")])
            .arg(&exe)
            .args(["apply", "-f"])
            .arg(&file)
            .envs(lab.env(state, "fabric"))
            .output()?;
        if out.status.success() {
            return Ok(());
        }
        // etcd may still be starting.
        if !state.etcd || Instant::now() > deadline {
            bail!(
                "applying the lab's resources: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The fabric model's resources: a `FabricNode` per node (AS 65000 + i,
/// dual-stack, one session to the ToR carrying both families, its pod
/// blocks originated and blackholed). No Calico kind.
pub(super) fn apply_fabric(lab: &LabArgs, state: &State) -> anyhow::Result<()> {
    let mut yaml = String::new();
    for (i, node) in state.nodes.iter().enumerate() {
        let i = i + 1;
        yaml.push_str(&format!(
            "---\napiVersion: fabric.example/v1\nkind: FabricNode\nmetadata: {{name: {node}}}\n\
             spec:\n  asNumber: {asn}\n  addresses: [{v4}/24, \"{v6}/64\"]\n\
             \x20 peers:\n  - {{name: tor, address: {TOR_IP}, asNumber: {TOR_AS}, families: [ipv4, ipv6], errorWaitSeconds: 1}}\n\
             \x20 originate:\n  - {{cidr: 10.244.{i}.0/26, kernel: blackhole}}\n\
             \x20 - {{cidr: \"2001:db8:244:{i}::/64\", kernel: blackhole}}\n",
            asn = 65000 + i,
            v4 = node_ip(i),
            v6 = node_ip6(i),
        ));
    }
    apply_file(lab, state, "fabric.yaml", &yaml)
}
