//! Metadata rules every backend shares: identity, optimistic concurrency
//! on `resourceVersion`, and what a write keeps from the stored object.

use serde_json::{Value, json};

use crate::StoreError;

/// `(kind, name)` of a document the envelope check has accepted.
pub fn identity(doc: &Value) -> (String, String) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (kind, name)
}

/// The document's `resourceVersion`, `""` when it has none.
pub fn resource_version(doc: &Value) -> &str {
    doc["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
}

/// A write that names a `resourceVersion` must name the stored one; a
/// write that names none is unconditional (calicoctl's `apply`).
pub fn check_version(doc: &Value, stored: &Value) -> Result<(), StoreError> {
    check_given(Some(resource_version(doc)), stored)
}

/// As [`check_version`], for a version given on its own (`delete`).
pub fn check_given(given: Option<&str>, stored: &Value) -> Result<(), StoreError> {
    match given.filter(|v| !v.is_empty()) {
        Some(given) if given != resource_version(stored) => Err(StoreError::Conflict {
            given: given.to_owned(),
            latest: resource_version(stored).to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Prepare `doc`'s metadata for storing over `stored` (or as a new
/// resource): server-set fields not given are kept from the stored object;
/// labels and annotations come from the document; a new resource gets its
/// `creationTimestamp` and `uid`. `seed` makes the uid unique (the
/// backend's revision or a clock). `resourceVersion` is the backend's to
/// set.
pub fn stamp(doc: &mut Value, stored: Option<&Value>, seed: u64) -> Result<(), StoreError> {
    let (kind, name) = identity(doc);
    let meta = doc
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| StoreError::Invalid(format!("{kind} '{name}': metadata is required")))?;
    match stored
        .and_then(|s| s.get("metadata"))
        .and_then(Value::as_object)
    {
        Some(old) => {
            for (k, v) in old {
                if !matches!(k.as_str(), "labels" | "annotations") {
                    meta.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        None => {
            meta.insert("creationTimestamp".to_owned(), json!(crate::now_rfc3339()));
            meta.insert("uid".to_owned(), json!(uid(&kind, &name, seed)));
        }
    }
    Ok(())
}

/// A stable unique id from kind, name and a seed.
fn uid(kind: &str, name: &str, seed: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain(name.bytes()).chain(seed.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        seed & 0xffff,
        seed & 0xffff_ffff_ffff
    )
}
