//! Planning a datastore that another writer left partly invalid.
//!
//! `starling apply` refuses what a plugin refuses, as calicoctl does; but
//! a shared datastore also holds what other writers put there (in etcd
//! mode, Calico's own components), and one bad element must not cost a
//! node every session. Calico's confd renders everything else and skips
//! the bad element; so does this, from the plugin's own problem reports:
//!
//! - a problem inside a list element (`spec.serviceClusterIPs[1].cidr`,
//!   `spec.prefixAdvertisements[0].communities[1]`) drops that element;
//! - an unknown field (`spec.bogus`) is dropped, as a reader that does not
//!   know it would ignore it;
//! - anything else (a bad `spec.peerIP`, a whole resource) replaces the
//!   resource with its last version that planned, or leaves it out if it
//!   never did.
//!
//! The plugin is then asked again, until it accepts the snapshot or
//! nothing more can be left out. Element removal depends on the data only,
//! so every node given the same snapshot plans the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;
use starling_contract::{Object, Problem};

/// What was done about one problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Remedy {
    /// The element (or unknown field) was left out.
    Element,
    /// The resource's last version that planned was used instead.
    LastGood,
    /// The resource was left out.
    Resource,
}

impl Remedy {
    pub fn as_str(self) -> &'static str {
        match self {
            Remedy::Element => "element skipped",
            Remedy::LastGood => "last good version used",
            Remedy::Resource => "resource skipped",
        }
    }
}

/// A problem in the datastore that planning went around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub problem: Problem,
    pub remedy: Remedy,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.problem, self.remedy.as_str())
    }
}

/// Resources by kind and name, as they were in the last snapshot that
/// planned.
pub type LastGood = BTreeMap<(String, String), Object>;

/// One step of a field path.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.a[0].b[1]` → Key(spec) Key(a) Index(0) Key(b) Index(1); `None`
/// for a path this cannot follow.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => part.split_at(i),
            None => (part, ""),
        };
        if key.is_empty() {
            return None;
        }
        out.push(Step::Key(key));
        while let Some(tail) = rest.strip_prefix('[') {
            let (index, after) = tail.split_once(']')?;
            out.push(Step::Index(index.parse().ok()?));
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Marks what is to be left out; removed once every problem is marked,
/// so the indices of one round's problems all refer to the same list.
const LEFT_OUT: &str = "\u{0}starling: left out";

/// Mark the element or unknown field that `steps` (under `spec`) points
/// into; false when the path leads nowhere or names neither.
fn mark(spec: &mut Value, steps: &[Step<'_>], unknown_field: bool) -> bool {
    let Some(Step::Key("spec")) = steps.first() else {
        return false;
    };
    let steps = &steps[1..];
    // The innermost list element on the path, else the unknown field.
    let cut = match steps.iter().rposition(|s| matches!(s, Step::Index(_))) {
        Some(i) => i + 1,
        None if unknown_field && !steps.is_empty() => steps.len(),
        None => return false,
    };
    let mut at = spec;
    for step in &steps[..cut - 1] {
        at = match (step, at) {
            (Step::Key(k), Value::Object(map)) => match map.get_mut(*k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Array(list)) => match list.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&steps[cut - 1], at) {
        (Step::Index(i), Value::Array(list)) if *i < list.len() => {
            list[*i] = Value::from(LEFT_OUT);
            true
        }
        (Step::Key(k), Value::Object(map)) if map.contains_key(*k) => {
            map.remove(*k);
            true
        }
        _ => false,
    }
}

fn sweep(value: &mut Value) {
    match value {
        Value::Array(list) => {
            list.retain(|v| v.as_str() != Some(LEFT_OUT));
            list.iter_mut().for_each(sweep);
        }
        Value::Object(map) => map.values_mut().for_each(sweep),
        _ => {}
    }
}

/// Goes around a snapshot's problems, one round per plugin refusal.
#[derive(Debug)]
pub(crate) struct Mender<'a> {
    last_good: &'a LastGood,
    /// Resources already replaced by their last good version.
    replaced: BTreeSet<(String, String)>,
    pub(crate) skipped: Vec<Skipped>,
}

impl<'a> Mender<'a> {
    pub(crate) fn new(last_good: &'a LastGood) -> Self {
        Mender {
            last_good,
            replaced: BTreeSet::new(),
            skipped: Vec::new(),
        }
    }

    /// Put the last good version of each resource that could not be read
    /// in its place (it is not in `objects`), or note it as left out.
    pub(crate) fn stand_in(&mut self, objects: &mut Vec<Object>, unreadable: &[Problem]) {
        for problem in unreadable {
            let key = (problem.kind.clone(), problem.name.clone());
            let remedy = match self.last_good.get(&key) {
                Some(good) => {
                    objects.push(good.clone());
                    self.replaced.insert(key);
                    Remedy::LastGood
                }
                None => Remedy::Resource,
            };
            self.skipped.push(Skipped {
                problem: problem.clone(),
                remedy,
            });
        }
    }

    /// Leave out or replace what `problems` name; false when none of them
    /// names something that can be (the refusal stands).
    pub(crate) fn mend(&mut self, objects: &mut Vec<Object>, problems: &[Problem]) -> bool {
        let mut specs: BTreeMap<usize, Value> = BTreeMap::new();
        let mut whole: BTreeMap<usize, Remedy> = BTreeMap::new();
        let mut progress = false;
        for problem in problems {
            let Some(index) = objects
                .iter()
                .position(|o| o.kind == problem.kind && o.name == problem.name)
            else {
                continue;
            };
            let element = steps(&problem.field).is_some_and(|steps| {
                let spec = specs.entry(index).or_insert_with(|| {
                    serde_json::from_str(&objects[index].spec).unwrap_or(Value::Null)
                });
                mark(spec, &steps, problem.reason == "unknown field")
            });
            let remedy = if element {
                Remedy::Element
            } else {
                let key = (problem.kind.clone(), problem.name.clone());
                let fallback = self
                    .last_good
                    .get(&key)
                    .filter(|good| **good != objects[index] && !self.replaced.contains(&key));
                let remedy = match fallback {
                    Some(_) => Remedy::LastGood,
                    None => Remedy::Resource,
                };
                let entry = whole.entry(index).or_insert(remedy);
                *entry = (*entry).max(remedy);
                remedy
            };
            self.skipped.push(Skipped {
                problem: problem.clone(),
                remedy,
            });
            progress = true;
        }
        for (index, mut spec) in specs {
            if whole.contains_key(&index) {
                continue;
            }
            sweep(&mut spec);
            objects[index].spec = spec.to_string();
        }
        // Replace or drop whole resources last, highest index first.
        for (index, remedy) in whole.into_iter().rev() {
            let key = (objects[index].kind.clone(), objects[index].name.clone());
            match (remedy, self.last_good.get(&key)) {
                (Remedy::LastGood, Some(good)) => {
                    objects[index] = good.clone();
                    self.replaced.insert(key);
                }
                _ => {
                    objects.remove(index);
                }
            }
        }
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, name: &str, field: &str, reason: &str) -> Problem {
        Problem {
            kind: kind.to_owned(),
            name: name.to_owned(),
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn config(spec: &str) -> Object {
        Object::new("BGPConfiguration", "default", spec)
    }

    #[test]
    fn paths_parse_into_keys_and_indices() {
        assert_eq!(
            steps("spec.a[0].b[12]"),
            Some(vec![
                Step::Key("spec"),
                Step::Key("a"),
                Step::Index(0),
                Step::Key("b"),
                Step::Index(12)
            ])
        );
        assert_eq!(steps(""), None);
        assert_eq!(steps("spec.a[x]"), None);
        assert_eq!(steps("spec.a[1]b"), None);
    }

    #[test]
    fn list_elements_and_unknown_fields_are_left_out() {
        let last_good = LastGood::new();
        let mut mender = Mender::new(&last_good);
        let mut objects = vec![config(
            r#"{"serviceClusterIPs":[{"cidr":"10.96.0.0/12"},{"cidr":""},{"cidr":"x"}],
                "prefixAdvertisements":[{"cidr":"192.168.0.0/16","communities":["a",5,"b"]}],
                "bogus":1,"asNumber":65000}"#,
        )];
        assert!(mender.mend(
            &mut objects,
            &[
                problem(
                    "BGPConfiguration",
                    "default",
                    "spec.serviceClusterIPs[1].cidr",
                    "bad"
                ),
                problem(
                    "BGPConfiguration",
                    "default",
                    "spec.serviceClusterIPs[2].cidr",
                    "bad"
                ),
                problem(
                    "BGPConfiguration",
                    "default",
                    "spec.prefixAdvertisements[0].communities[1]",
                    "must be a string"
                ),
                problem("BGPConfiguration", "default", "spec.bogus", "unknown field"),
            ],
        ));
        let spec: Value = serde_json::from_str(&objects[0].spec).expect("json");
        assert_eq!(
            spec,
            serde_json::json!({
                "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                "prefixAdvertisements": [{"cidr": "192.168.0.0/16", "communities": ["a", "b"]}],
                "asNumber": 65000,
            })
        );
        assert_eq!(mender.skipped.len(), 4);
        assert!(mender.skipped.iter().all(|s| s.remedy == Remedy::Element));
    }

    #[test]
    fn a_bad_field_uses_the_last_good_version_then_leaves_the_resource_out() {
        let good = Object::new(
            "BGPPeer",
            "tor",
            r#"{"peerIP":"192.0.2.1","asNumber":65000}"#,
        );
        let last_good: LastGood = [(("BGPPeer".to_owned(), "tor".to_owned()), good.clone())].into();
        let mut mender = Mender::new(&last_good);
        let bad = Object::new(
            "BGPPeer",
            "tor",
            r#"{"peerIP":"192.0.2.300","asNumber":65000}"#,
        );
        let other = Object::new("BGPPeer", "new", r#"{"peerIP":"x"}"#);
        let mut objects = vec![bad, other];
        let problems = [
            problem("BGPPeer", "tor", "spec.peerIP", "not an IP address"),
            problem("BGPPeer", "new", "spec.peerIP", "not an IP address"),
        ];
        assert!(mender.mend(&mut objects, &problems));
        assert_eq!(objects, vec![good]);
        let remedies: Vec<Remedy> = mender.skipped.iter().map(|s| s.remedy).collect();
        assert_eq!(remedies, [Remedy::LastGood, Remedy::Resource]);
        // Refused again (say, for what another resource now says): it goes.
        assert!(mender.mend(&mut objects, &problems[..1]));
        assert!(objects.is_empty());
    }

    #[test]
    fn problems_naming_nothing_present_make_no_progress() {
        let last_good = LastGood::new();
        let mut mender = Mender::new(&last_good);
        let mut objects = vec![config("{}")];
        assert!(!mender.mend(
            &mut objects,
            &[problem("", "", "", "two default BGPConfigurations")]
        ));
        assert_eq!(objects.len(), 1);
    }
}
