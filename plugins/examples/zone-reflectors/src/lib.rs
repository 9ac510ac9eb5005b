//! The plugin docs/plugins.md walks through: nodes labelled
//! `reflector: "true"` reflect routes for their `zone`, one cluster id per
//! zone. (Kept in sync with the guide: this file is its code.)

use starling_plugin_sdk::*;
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct ZoneReflectors {
    zones: BTreeMap<String, String>, // node -> zone
}

impl Snapshot for ZoneReflectors {
    fn load(objects: Vec<Object>) -> Result<Self, Vec<Problem>> {
        let zones = objects
            .iter()
            .filter(|o| o.kind == "Node" && o.labels.get("reflector") == Some(&"true".into()))
            .filter_map(|o| Some((o.name.clone(), o.labels.get("zone")?.clone())))
            .collect();
        Ok(ZoneReflectors { zones })
    }
    fn nodes(&self) -> Vec<String> {
        self.zones.keys().cloned().collect()
    }
    fn roles() -> Vec<Role> {
        vec![Role::RouteReflection]
    }
}

impl RouteReflection for ZoneReflectors {
    fn reflectors(&self) -> Vec<(String, String)> {
        // One cluster id per zone: 244.0.<zone index>.1.
        let mut ids = BTreeMap::new();
        self.zones
            .iter()
            .map(|(node, zone)| {
                let n = ids.len();
                let id = ids.entry(zone.clone()).or_insert(n);
                (node.clone(), format!("244.0.{id}.1"))
            })
            .collect()
    }
}

impl AsAssignment for ZoneReflectors {}
impl PeerSelection for ZoneReflectors {}
impl RoutePolicy for ZoneReflectors {}
impl NodeIdentity for ZoneReflectors {}
impl Origination for ZoneReflectors {}

export_plugin!(ZoneReflectors);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> Object {
        Object {
            kind: "Node".to_owned(),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Object::default()
        }
    }

    #[test]
    fn one_cluster_per_zone() {
        let plugin = ZoneReflectors::load(vec![
            node("a", &[("reflector", "true"), ("zone", "east")]),
            node("b", &[("reflector", "true"), ("zone", "west")]),
            node("c", &[("reflector", "true"), ("zone", "east")]),
            node("d", &[("zone", "east")]),
        ])
        .expect("load");
        assert_eq!(
            plugin.reflectors(),
            [
                ("a".to_owned(), "244.0.0.1".to_owned()),
                ("b".to_owned(), "244.0.1.1".to_owned()),
                ("c".to_owned(), "244.0.0.1".to_owned()),
            ]
        );
    }
}
