//! The resource file reader under the fuzzer (`tests/fuzz`, target
//! `documents`) and the corpus replay test.

// A panic is how a fuzzer (and the corpus replay test) sees a failure.
#![allow(clippy::panic)]

use serde_json::Value;

use crate::{ResourceSet, to_object};

/// Bytes as a resource file (YAML, JSON or a `*List`), as the CLI reads
/// it. No panic; what is read has a kind and a name, and reads back the
/// same from its own JSON.
pub fn documents(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(set) = ResourceSet::parse("fuzz", &text) else {
        return;
    };
    for doc in &set.documents {
        let object = to_object(doc);
        assert!(!object.kind.is_empty() && !object.name.is_empty(), "{doc}");
    }
    let all: Vec<Value> = set
        .documents
        .iter()
        .chain(&set.secret_documents)
        .cloned()
        .collect();
    let again = ResourceSet::parse("fuzz", &Value::Array(all).to_string())
        .unwrap_or_else(|e| panic!("what was read does not read back: {e:?}"));
    assert_eq!(again.documents, set.documents);
    assert_eq!(again.secret_documents, set.secret_documents);
}
