//! A plugin that misbehaves on request, so the host's sandbox can be tested
//! against the real thing. A `Hostile` resource's `spec.mode` picks the
//! misbehaviour, which happens in `load` (`spec.when: "load"`) or in the
//! role calls (the default):
//! `loop`, `memory`, `trap`, `stack`, `huge` (an enormous answer),
//! `log-flood`, and reaching for what the sandbox withholds: `env`,
//! `file`, `clock`, `sleep`, `net`, `stdout` (each answers with what it
//! got, which should be nothing). A Node labelled `hostile-mode: <mode>`
//! asks for the same in the role calls, so a misbehaviour can be switched
//! on in any datastore (`starling label node n hostile-mode=trap`).
//! Without either it behaves: AS 65000 for every node and no sessions.

use starling_plugin_sdk::{
    AsAssignment, Family, LogLevel, NodeFacts, NodeIdentity, NodePlan, Object, Origination,
    PeerSelection, Problem, Role, RoutePolicy, RouteReflection, Snapshot,
};

#[derive(Debug)]
pub struct Hostile {
    mode: String,
    nodes: Vec<String>,
}

fn misbehave(mode: &str) -> Vec<(String, u32)> {
    match mode {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("hostile plugin asked to trap"),
        "stack" => vec![(String::new(), recurse(0))],
        "huge" => (0..2_000_000)
            .map(|i| (format!("node-{i:08}"), i))
            .collect(),
        // Ambient capabilities: each must come back empty-handed.
        "env" => vec![(
            std::env::vars()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            1,
        )],
        "file" => vec![(
            std::fs::read_to_string("/etc/hostname").unwrap_or_default(),
            1,
        )],
        "clock" => {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            vec![(format!("{}", since_epoch.as_nanos()), 1)]
        }
        "sleep" => {
            let started = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_secs(3600));
            vec![(format!("{}", started.elapsed().as_secs()), 1)]
        }
        "net" => {
            let connected = std::net::TcpStream::connect("127.0.0.1:179").is_ok();
            vec![(String::new(), u32::from(connected))]
        }
        "stdout" => {
            for i in 0..2_000 {
                println!("hello from the sandbox {i}");
                eprintln!("and from its stderr {i}");
            }
            vec![(String::new(), 1)]
        }
        "log-flood" => {
            for i in 0..20_000 {
                starling_plugin_sdk::log(LogLevel::Info, &format!("flood {i}"));
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

#[allow(unconditional_recursion)] // the point: exhaust the stack
fn recurse(depth: u32) -> u32 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1).wrapping_add(frame[3])
}

impl Snapshot for Hostile {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let mut mode = String::new();
        let mut at_load = false;
        for o in objects.iter().filter(|o| o.kind == "Hostile") {
            let spec: serde_json::Value = serde_json::from_str(&o.spec).unwrap_or_default();
            mode = spec["mode"].as_str().unwrap_or_default().to_owned();
            at_load = spec["when"] == "load";
        }
        if at_load {
            misbehave(&mode);
        }
        if let Some(labelled) = objects
            .iter()
            .filter(|o| o.kind == "Node")
            .find_map(|o| o.labels.get("hostile-mode"))
        {
            mode = labelled.clone();
        }
        let nodes = objects
            .iter()
            .filter(|o| o.kind == "Node")
            .map(|o| o.name.clone())
            .collect();
        Ok(Hostile { mode, nodes })
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }

    fn roles() -> Vec<Role> {
        vec![Role::AsAssignment, Role::PeerSelection]
    }
}

impl AsAssignment for Hostile {
    fn assign(&self) -> Vec<(String, u32)> {
        let answer = misbehave(&self.mode);
        if self.mode.is_empty() {
            return self.nodes.iter().map(|n| (n.clone(), 65000)).collect();
        }
        answer
    }
}

impl PeerSelection for Hostile {
    fn plan(
        &self,
        _facts: &[NodeFacts],
        nodes: &[String],
        _family: Family,
    ) -> Result<Vec<NodePlan>, String> {
        misbehave(&self.mode);
        Ok(nodes
            .iter()
            .map(|n| NodePlan {
                node: n.clone(),
                router_id: None,
                listen_port: None,
                listen_addresses: Vec::new(),
                sessions: Vec::new(),
                warnings: Vec::new(),
            })
            .collect())
    }
}

impl RouteReflection for Hostile {}
impl RoutePolicy for Hostile {}
impl NodeIdentity for Hostile {}
impl Origination for Hostile {}

starling_plugin_sdk::export_plugin!(Hostile);
