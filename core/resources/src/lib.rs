//! Starling's resource envelope, shared by the datastore, the plugin host,
//! the guest SDK and the appliance: a resource as plugins see it
//! ([`Object`]), a reference to a secret ([`SecretRef`]), what is wrong
//! with a resource ([`Problem`]), and the kinds with the names calicoctl
//! accepts for them ([`kinds`]).
//!
//! No I/O and no knowledge of what a spec means: that is for the plugin
//! that owns the kind.

pub mod kinds;

use std::collections::BTreeMap;

use serde_json::Value;

/// A datastore resource in its typed envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The `spec` as JSON text.
    pub spec: String,
}

impl Object {
    /// A resource of `kind` named `name`, in Calico's API group
    /// (`projectcalico.org/v3`), with `spec` as JSON text.
    pub fn new(kind: &str, name: &str, spec: impl Into<String>) -> Self {
        Object {
            api_version: "projectcalico.org/v3".to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            labels: BTreeMap::new(),
            spec: spec.into(),
        }
    }

    /// The same resource with these labels.
    pub fn with_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }
}

/// What is wrong with one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: String,
    pub name: String,
    /// Dotted field path, e.g. `spec.peerIP`; empty for the whole resource.
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} '{}'", self.kind, self.name)?;
        if !self.field.is_empty() {
            write!(f, ", field {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A password held in a secret; the host resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

/// The plugins' view of a stored document: its envelope, and the `spec`
/// as JSON text (`{}` when absent).
pub fn to_object(doc: &Value) -> Object {
    let labels = doc["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Object {
        api_version: doc["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: doc["kind"].as_str().unwrap_or_default().to_owned(),
        name: doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        labels,
        spec: match &doc["spec"] {
            Value::Null => "{}".to_owned(),
            spec => spec.to_string(),
        },
    }
}
