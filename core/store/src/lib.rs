//! Starling's datastore: reading resources from documents the way
//! calicoctl does (multi-document YAML, JSON, `*List` kinds), checking
//! their envelope (`apiVersion`, `kind`, `metadata`, `spec`), JSON merge
//! patch, resolving secret references, and the embedded backend. The
//! envelope types themselves live in `starling-resources`.
//!
//! The store only checks the envelope. What a spec means, and whether it
//! is valid, is for the plugins that own the kind.

mod embedded;
#[doc(hidden)]
pub mod fuzzing;
pub mod meta;
mod patch;

use std::collections::BTreeMap;

use base64::Engine as _;
pub use embedded::Embedded;
pub use patch::merge_patch;
use serde_json::{Map, Value};
use starling_resources::SecretRef;
pub use starling_resources::{Object, Problem, kinds, to_object};

/// The API group and version of Calico's resources.
pub const CALICO_API: &str = "projectcalico.org/v3";

/// Kinds that belong to Calico's model: their envelope is checked the way
/// calicoctl checks it.
pub const CALICO_KINDS: &[&str] = &[
    "Node",
    "BGPConfiguration",
    "BGPPeer",
    "BGPFilter",
    "CalicoNodeStatus",
    "IPPool",
    "BlockAffinity",
];

/// Why a datastore operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("resource does not exist: {kind}({name})")]
    NotFound { kind: String, name: String },
    #[error("resource already exists: {kind}({name})")]
    AlreadyExists { kind: String, name: String },
    #[error("resource version '{given}' is out of date (latest: {latest})")]
    Conflict { given: String, latest: String },
    #[error("{0}")]
    Invalid(String),
    #[error("datastore: {0}")]
    Io(String),
}

/// One change in the datastore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub revision: u64,
    pub event: EventKind,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// What a datastore watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These changes, oldest first.
    Events(Vec<Event>),
    /// The watch could not resume where it stopped (the history it needed
    /// was compacted away, or a damaged journal lost part of it): re-read
    /// everything; `revision` is current.
    Resync { revision: u64 },
    /// The watch lost the datastore (unreachable, not answering, not
    /// readable) and keeps trying; changes made meanwhile come once it is
    /// back. Said once per outage.
    Lost { reason: String },
    /// The watch has the datastore again, after [`Change::Lost`].
    Restored,
}

/// The current time as RFC 3339 UTC (`2026-11-25T22:40:00Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = civil(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn date_of(secs: u64) -> String {
    let (year, month, day) = civil(secs / 86_400);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Year, month, day of a count of days since 1970-01-01.
fn civil(days: u64) -> (i64, i64, i64) {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A document that is not a resource, or a resource with a broken
/// envelope. Says which document and what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}: document {document}{}: {reason}", resource.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
pub struct DocumentError {
    /// The file (or `-`) the document came from.
    pub source_name: String,
    /// 1-based position of the document in the file.
    pub document: usize,
    /// `Kind 'name'` when known.
    pub resource: Option<String>,
    pub reason: String,
}

/// Resources read from documents, with the secrets kept apart: secrets are
/// never handed to plugins, only resolved by the core.
#[derive(Debug, Default, Clone)]
pub struct ResourceSet {
    pub objects: Vec<Object>,
    /// The documents behind `objects`, whole (annotations and all), in the
    /// same order.
    pub documents: Vec<Value>,
    /// `Secret` documents, whole.
    pub secret_documents: Vec<Value>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl ResourceSet {
    /// Read every resource in `text`: multi-document YAML, JSON, or a
    /// `*List` kind with `items`, as calicoctl accepts them.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, Vec<DocumentError>> {
        let mut set = ResourceSet::default();
        set.add(source_name, text)?;
        Ok(set)
    }

    /// Add the resources of another file.
    pub fn add(&mut self, source_name: &str, text: &str) -> Result<(), Vec<DocumentError>> {
        let mut errors = Vec::new();
        let error = |document: usize, resource: Option<String>, reason: String| DocumentError {
            source_name: source_name.to_owned(),
            document,
            resource,
            reason,
        };
        let documents: Vec<Value> = if text.trim_start().starts_with(['{', '[']) {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => items,
                Ok(v) => vec![v],
                Err(e) => return Err(vec![error(1, None, format!("invalid JSON: {e}"))]),
            }
        } else {
            let mut docs = Vec::new();
            for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
                match yaml_document(doc) {
                    Ok(Value::Null) => {}
                    Ok(v) => docs.push(v),
                    Err(reason) => {
                        errors.push(error(i + 1, None, reason));
                        break;
                    }
                }
            }
            docs
        };
        let mut seen = BTreeMap::new();
        for o in &self.objects {
            seen.insert((o.kind.clone(), o.name.clone()), ());
        }
        for (i, doc) in documents.into_iter().enumerate() {
            let items = match list_items(&doc) {
                Some(Ok(items)) => items,
                Some(Err(reason)) => {
                    errors.push(error(i + 1, None, reason));
                    continue;
                }
                None => vec![doc],
            };
            for item in items {
                match self.take(item.clone()) {
                    Ok(Some(o)) => {
                        self.documents.push(item);
                        let key = (o.kind.clone(), o.name.clone());
                        if seen.insert(key, ()).is_some() {
                            errors.push(error(
                                i + 1,
                                Some(format!("{} '{}'", o.kind, o.name)),
                                "defined more than once".to_owned(),
                            ));
                        }
                        self.objects.push(o);
                    }
                    Ok(None) => {}
                    Err((resource, reason)) => errors.push(error(i + 1, resource, reason)),
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// One resource document: an object, or a secret (kept apart).
    fn take(&mut self, doc: Value) -> Result<Option<Object>, (Option<String>, String)> {
        let Value::Object(map) = doc else {
            return Err((None, "a resource must be a mapping".to_owned()));
        };
        let text =
            |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let kind = text(&map, "kind").ok_or((None, "kind is required".to_owned()))?;
        let api_version =
            text(&map, "apiVersion").ok_or((None, "apiVersion is required".to_owned()))?;
        let metadata = match map.get("metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => return Err((None, format!("{kind}: metadata is required"))),
        };
        let name = text(&metadata, "name")
            .filter(|n| !n.is_empty())
            .ok_or((None, format!("{kind}: metadata.name is required")))?;
        let what = Some(format!("{kind} '{name}'"));
        if kind == "Secret" {
            if api_version != "v1" {
                return Err((what, format!("apiVersion '{api_version}': Secrets are v1")));
            }
            self.secrets
                .insert(name, secret_data(&map).map_err(|r| (what, r))?);
            self.secret_documents.push(Value::Object(map));
            return Ok(None);
        }
        if CALICO_KINDS.contains(&kind.as_str()) {
            if api_version != CALICO_API {
                return Err((
                    what,
                    format!("apiVersion '{api_version}' is not {CALICO_API}"),
                ));
            }
            if metadata.contains_key("namespace") {
                return Err((
                    what,
                    "metadata.namespace: this kind is cluster-scoped".to_owned(),
                ));
            }
        }
        let mut labels = BTreeMap::new();
        match metadata.get("labels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(l)) => {
                for (k, v) in l {
                    let Some(v) = v.as_str() else {
                        return Err((what, format!("metadata.labels.{k}: must be a string")));
                    };
                    labels.insert(k.clone(), v.to_owned());
                }
            }
            Some(_) => return Err((what, "metadata.labels: must be a mapping".to_owned())),
        }
        let spec = match map.get("spec") {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(v @ Value::Object(_)) => v.to_string(),
            Some(_) => return Err((what, "spec: must be a mapping".to_owned())),
        };
        Ok(Some(Object {
            api_version,
            kind,
            name,
            labels,
            spec,
        }))
    }

    /// Add a secret document (as read back from a datastore).
    pub fn add_secret(&mut self, doc: &Value) -> Result<(), String> {
        let Value::Object(map) = doc else {
            return Err("a Secret must be a mapping".to_owned());
        };
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.secrets.insert(name, secret_data(map)?);
        Ok(())
    }

    /// Resolve a secret reference, as Calico resolves one against a
    /// Kubernetes Secret: `Err` says why there is no password.
    pub fn secret(&self, r: &SecretRef) -> Result<&str, String> {
        let secret = self
            .secrets
            .get(&r.name)
            .ok_or_else(|| format!("no Secret named '{}'", r.name))?;
        secret
            .get(&r.key)
            .map(String::as_str)
            .ok_or_else(|| format!("Secret '{}' has no key '{}'", r.name, r.key))
    }
}

/// One YAML document as JSON, with merge keys (`<<: *anchor`) applied
/// as calicoctl's YAML reader applies them.
fn yaml_document(doc: serde_yaml_ng::Deserializer<'_>) -> Result<Value, String> {
    let mut yaml: serde_yaml_ng::Value =
        serde::Deserialize::deserialize(doc).map_err(|e| format!("invalid YAML: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("invalid YAML merge key: {e}"))?;
    serde_json::to_value(yaml).map_err(|e| format!("YAML that JSON cannot hold: {e}"))
}

/// `items` of a `*List` document.
fn list_items(doc: &Value) -> Option<Result<Vec<Value>, String>> {
    let kind = doc.get("kind")?.as_str()?;
    if !kind.ends_with("List") {
        return None;
    }
    Some(match doc.get("items") {
        Some(Value::Array(items)) => {
            let want = &kind[..kind.len() - 4];
            let mut out = Vec::new();
            for item in items {
                let mut item = item.clone();
                if let Value::Object(m) = &mut item {
                    // Items of a typed list may leave out kind and apiVersion.
                    if !want.is_empty() {
                        m.entry("kind").or_insert_with(|| Value::from(want));
                    }
                    if let Some(api) = doc.get("apiVersion") {
                        m.entry("apiVersion").or_insert_with(|| api.clone());
                    }
                }
                out.push(item);
            }
            Ok(out)
        }
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err(format!("{kind}: items must be a list")),
    })
}

/// A Secret's keys: `data` is base64, `stringData` plain and wins.
fn secret_data(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(data)) = map.get("data") {
        for (k, v) in data {
            let text = v.as_str().ok_or(format!("data.{k}: must be a string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("data.{k}: not base64: {e}"))?;
            let value = String::from_utf8(bytes).map_err(|_| format!("data.{k}: not UTF-8"))?;
            out.insert(k.clone(), value);
        }
    }
    if let Some(Value::Object(data)) = map.get("stringData") {
        for (k, v) in data {
            let text = v
                .as_str()
                .ok_or(format!("stringData.{k}: must be a string"))?;
            out.insert(k.clone(), text.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_lists_and_json() {
        let yaml = r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: a, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 192.0.2.1/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeerList
items:
- metadata: {name: p1}
  spec: {peerIP: 192.0.2.9, asNumber: 65000}
- kind: BGPPeer
  metadata: {name: p2}
---
"#;
        let set = ResourceSet::parse("r.yaml", yaml).expect("parse");
        let names: Vec<_> = set
            .objects
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(names, [("Node", "a"), ("BGPPeer", "p1"), ("BGPPeer", "p2")]);
        assert_eq!(set.objects[0].labels["rack"], "r1");
        assert_eq!(set.objects[2].spec, "{}");
        let json = r#"[{"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "b"}}]"#;
        let set = ResourceSet::parse("r.json", json).expect("json");
        assert_eq!(set.objects[0].name, "b");
    }

    /// Anchors and merge keys are how people share a peer's settings
    /// between documents; an error names the document and line.
    #[test]
    fn yaml_anchors_merge_keys_and_errors() {
        let yaml = r#"
apiVersion: projectcalico.org/v3
kind: BGPPeerList
items:
- metadata: {name: p1}
  spec: &tor {asNumber: 65000, keepOriginalNextHop: true, peerIP: 192.0.2.9}
- metadata: {name: p2}
  spec:
    <<: *tor
    peerIP: 192.0.2.10
"#;
        let set = ResourceSet::parse("r.yaml", yaml).expect("parse");
        let p2: Value = serde_json::from_str(&set.objects[1].spec).expect("json");
        assert_eq!(p2["asNumber"], 65000);
        assert_eq!(p2["keepOriginalNextHop"], true);
        assert_eq!(p2["peerIP"], "192.0.2.10");

        let bad = "apiVersion: projectcalico.org/v3\nkind: Node\n---\nkind: [unclosed\n";
        let errors = ResourceSet::parse("bad.yaml", bad).unwrap_err();
        let text = errors[0].to_string();
        assert!(
            text.contains("bad.yaml") && text.contains("line 4"),
            "{text}"
        );
    }

    #[test]
    fn secrets_are_kept_apart_and_resolved() {
        let yaml = r#"
apiVersion: v1
kind: Secret
metadata: {name: bgp, namespace: calico-system}
data: {tor: c2VjcmV0}
stringData: {mesh: plain}
"#;
        let set = ResourceSet::parse("s.yaml", yaml).expect("parse");
        assert!(set.objects.is_empty());
        let r = |name: &str, key: &str| SecretRef {
            name: name.into(),
            key: key.into(),
        };
        assert_eq!(set.secret(&r("bgp", "tor")), Ok("secret"));
        assert_eq!(set.secret(&r("bgp", "mesh")), Ok("plain"));
        assert!(
            set.secret(&r("bgp", "nope"))
                .unwrap_err()
                .contains("no key 'nope'")
        );
        assert!(
            set.secret(&r("other", "k"))
                .unwrap_err()
                .contains("no Secret")
        );
    }

    #[test]
    fn broken_envelopes_name_the_document_and_the_problem() {
        let cases = [
            (
                "kind: Node\nmetadata: {name: a}\n",
                "document 1: apiVersion is required",
            ),
            (
                "apiVersion: projectcalico.org/v3\nkind: Node\n",
                "Node: metadata is required",
            ),
            (
                "apiVersion: projectcalico.org/v1\nkind: Node\nmetadata: {name: a}\n",
                "(Node 'a'): apiVersion",
            ),
            (
                "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: a, namespace: x}\n",
                "cluster-scoped",
            ),
            (
                "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\nspec: [1]\n",
                "spec: must be a mapping",
            ),
            ("a: [\n", "invalid YAML"),
            ("{\"kind\": ", "invalid JSON"),
            (
                "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\n",
                "document 2 (Node 'a'): defined more than once",
            ),
        ];
        for (text, want) in cases {
            let errors = ResourceSet::parse("f.yaml", text).expect_err(text);
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert!(all.iter().any(|e| e.contains(want)), "{text:?}: {all:?}");
        }
    }
}
