//! calicoctl's resource verbs over Starling's datastore: `create`,
//! `apply`, `replace`, `get`, `delete`, `patch`, `label`, `validate`.
//!
//! Every write is validated first, as a whole, through the policy plugins
//! (the Calico plugin): the stored resources plus the new ones must load
//! cleanly, and any problem in a resource being written refuses the whole
//! command before anything is stored.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use starling_plugin_host::{Host, Limits, PluginError};
use starling_store::meta::identity;
use starling_store::{ResourceSet, StoreError, kinds, merge_patch, to_object};

use crate::datastore::Datastore;

#[derive(Debug, clap::Args)]
pub(crate) struct Files {
    /// Resource files (YAML, JSON or a *List); `-` is standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GetOutput {
    Ps,
    Wide,
    Yaml,
    Yml,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// Kind: node, bgpconfiguration, bgppeer, bgpfilter, ippool,
    /// caliconodestatus (and calicoctl's aliases), or a plugin's kind.
    kind: String,
    /// Names; all resources of the kind when none.
    names: Vec<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "ps")]
    output: GetOutput,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    kind: Option<String>,
    names: Vec<String>,
    /// Delete the resources in these files instead.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// A resource that does not exist is not an error.
    #[arg(short = 's', long)]
    skip_not_exists: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PatchType {
    Strategic,
    Merge,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PatchArgs {
    kind: String,
    name: String,
    /// The patch, as JSON.
    #[arg(short = 'p', long = "patch")]
    patch: String,
    /// Calico's types have no merge keys, so `strategic` is a JSON merge
    /// patch (RFC 7386), as `merge` is; `json` (RFC 6902) is not supported.
    #[arg(short = 't', long = "type", value_enum, default_value = "strategic")]
    patch_type: PatchType,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LabelArgs {
    kind: String,
    name: String,
    /// `key=value` to set, or `key` with --remove.
    label: String,
    /// Change a label that already has a different value.
    #[arg(long)]
    overwrite: bool,
    /// Remove the label.
    #[arg(long)]
    remove: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Create,
    Apply,
    Replace,
}

pub(crate) fn read_files(files: &[PathBuf]) -> anyhow::Result<Result<ResourceSet, Vec<String>>> {
    let mut set = ResourceSet::default();
    for file in files {
        let (name, text) = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading standard input")?;
            ("-".to_owned(), text)
        } else {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            (file.display().to_string(), text)
        };
        if let Err(errors) = set.add(&name, &text) {
            return Ok(Err(errors.iter().map(ToString::to_string).collect()));
        }
    }
    Ok(Ok(set))
}

fn fail(messages: impl IntoIterator<Item = String>) -> ExitCode {
    for m in messages {
        eprintln!("error: {m}");
    }
    ExitCode::FAILURE
}

/// Validate the datastore's resources with `new` in place of what they
/// replace (and without `removed`), through the Calico plugin. Problems in
/// resources not being written are not this command's business.
async fn validate(
    store: Option<&Datastore>,
    new: &[Value],
    removed: &[(String, String)],
) -> anyhow::Result<Vec<String>> {
    let mut writing: BTreeSet<(String, String)> = BTreeSet::new();
    for doc in new {
        writing.insert(identity(doc));
    }
    let mut docs: Vec<Value> = match store {
        Some(s) => s
            .everything()
            .await?
            .into_iter()
            .filter(|d| {
                let id = identity(d);
                !writing.contains(&id) && !removed.contains(&id)
            })
            .collect(),
        None => Vec::new(),
    };
    docs.extend(new.iter().cloned());
    let objects: Vec<_> = docs
        .iter()
        .filter(|d| d["kind"] != "Secret")
        .map(to_object)
        .collect();
    let host = Host::new(Limits::default())?.with_cache(crate::plan::cache_dir());
    let calico = host.load("calico", starling_plugins::CALICO)?;
    match calico.evaluate(&objects) {
        Ok(_) => Ok(Vec::new()),
        Err(PluginError::Invalid { problems, .. }) => Ok(problems
            .into_iter()
            .filter(|p| writing.contains(&(p.kind.clone(), p.name.clone())))
            .map(|p| p.to_string())
            .collect()),
        Err(e) => Err(e.into()),
    }
}

/// Read the documents of a command's files, secrets included.
fn documents(set: ResourceSet) -> Vec<Value> {
    let mut docs = set.documents;
    for doc in &mut docs {
        normalize_as_numbers(doc);
    }
    docs.extend(set.secret_documents);
    docs
}

/// Calico accepts AS numbers as numbers, decimal strings or asdot
/// (`"64512.100"`), and stores and prints them as integers; so does
/// Starling. Values that do not parse are left for validation to report.
fn normalize_as_numbers(doc: &mut Value) {
    let paths: &[&str] = match doc["kind"].as_str() {
        Some("BGPConfiguration") => &["/spec/asNumber"],
        Some("Node") => &["/spec/bgp/asNumber"],
        Some("BGPPeer") => &["/spec/asNumber", "/spec/localASNumber"],
        _ => &[],
    };
    for path in paths {
        if let Some(v) = doc.pointer_mut(path)
            && v.is_string()
            && let Ok(n) = starling_calico::values::parse_asn(v)
        {
            *v = json!(n);
        }
    }
}

/// calicoctl's success line: `Successfully created 2 'BGPPeer' resource(s)`.
fn success(verb: &str, docs: &[Value]) {
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    let kind = kinds.into_iter().collect::<Vec<_>>().join(", ");
    println!("Successfully {verb} {} '{kind}' resource(s)", docs.len());
}

pub(crate) async fn write(
    store: &Datastore,
    files: &Files,
    mode: Write,
) -> anyhow::Result<ExitCode> {
    let set = match read_files(&files.files)? {
        Ok(set) => set,
        Err(errors) => return Ok(fail(errors)),
    };
    let docs = documents(set);
    let problems = validate(Some(store), &docs, &[]).await?;
    if !problems.is_empty() {
        return Ok(fail(problems));
    }
    for (i, doc) in docs.iter().enumerate() {
        let result = match mode {
            Write::Create => store.create(doc.clone()).await,
            Write::Replace => store.update(doc.clone()).await,
            Write::Apply => match store.create(doc.clone()).await {
                Err(StoreError::AlreadyExists { .. }) => store.update(doc.clone()).await,
                other => other,
            },
        };
        if let Err(e) = result {
            if i > 0 {
                eprintln!(
                    "Partial success: {} the first {i} out of {} resources:",
                    verb(mode),
                    docs.len()
                );
            }
            return Ok(fail([e.to_string()]));
        }
    }
    success(verb(mode), &docs);
    Ok(ExitCode::SUCCESS)
}

fn verb(mode: Write) -> &'static str {
    match mode {
        Write::Create => "created",
        Write::Apply => "applied",
        Write::Replace => "replaced",
    }
}

pub(crate) async fn validate_files(files: &Files) -> anyhow::Result<ExitCode> {
    let set = match read_files(&files.files)? {
        Ok(set) => set,
        Err(errors) => return Ok(fail(errors)),
    };
    let docs = documents(set);
    let problems = validate(None, &docs, &[]).await?;
    if !problems.is_empty() {
        return Ok(fail(problems));
    }
    success("validated", &docs);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn delete(store: &Datastore, args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let mut targets: Vec<(String, String)> = Vec::new();
    if !args.files.is_empty() {
        let set = match read_files(&args.files)? {
            Ok(set) => set,
            Err(errors) => return Ok(fail(errors)),
        };
        targets.extend(documents(set).iter().map(identity));
    } else {
        let Some(kind) = &args.kind else {
            bail!("delete needs KIND NAME... or -f FILE");
        };
        if args.names.is_empty() {
            bail!("delete needs at least one name");
        }
        let kind = kinds::resolve(kind);
        targets.extend(args.names.iter().map(|n| (kind.clone(), n.clone())));
    }
    if let Some((_, _)) = targets
        .iter()
        .find(|(k, n)| k == "BGPConfiguration" && n == "default")
    {
        return Ok(fail([
            "the default BGPConfiguration cannot be deleted".to_owned()
        ]));
    }
    let problems = validate(Some(store), &[], &targets).await?;
    if !problems.is_empty() {
        return Ok(fail(problems));
    }
    let mut deleted = Vec::new();
    for (kind, name) in &targets {
        match store.delete(kind, name, None).await {
            Ok(doc) => deleted.push(doc),
            Err(StoreError::NotFound { .. }) if args.skip_not_exists => {}
            Err(e) => return Ok(fail([e.to_string()])),
        }
    }
    success("deleted", &deleted);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn patch(store: &Datastore, args: &PatchArgs) -> anyhow::Result<ExitCode> {
    if args.patch_type == PatchType::Json {
        return Ok(fail([
            "patch type json (RFC 6902) is not supported; use strategic or merge".to_owned(),
        ]));
    }
    let patch: Value = match serde_json::from_str(&args.patch) {
        Ok(p @ Value::Object(_)) => p,
        Ok(_) => return Ok(fail(["the patch must be a JSON object".to_owned()])),
        Err(e) => return Ok(fail([format!("the patch is not JSON: {e}")])),
    };
    let kind = kinds::resolve(&args.kind);
    let stored = match store.get(&kind, &args.name).await? {
        Some(doc) => doc,
        // Calico's built-in defaults stand in for a missing `default`
        // BGPConfiguration, so patching it creates it: the guide's
        // `patch bgpconfiguration default` works on a fresh install.
        None if kind == "BGPConfiguration" && args.name == "default" => json!({
            "apiVersion": starling_store::CALICO_API,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {},
        }),
        None => {
            return Ok(fail([StoreError::NotFound {
                kind,
                name: args.name.clone(),
            }
            .to_string()]));
        }
    };
    let mut doc = stored.clone();
    merge_patch(&mut doc, &patch);
    normalize_as_numbers(&mut doc);
    if identity(&doc) != identity(&stored) {
        return Ok(fail([
            "a patch cannot change kind or metadata.name".to_owned()
        ]));
    }
    let problems = validate(Some(store), std::slice::from_ref(&doc), &[]).await?;
    if !problems.is_empty() {
        return Ok(fail(problems));
    }
    let result = if stored["metadata"]["resourceVersion"].is_null() {
        store.create(doc).await
    } else {
        store.update(doc).await
    };
    match result {
        Ok(_) => {
            println!("Successfully patched 1 '{kind}' resource");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail([e.to_string()])),
    }
}

pub(crate) async fn label(store: &Datastore, args: &LabelArgs) -> anyhow::Result<ExitCode> {
    let kind = kinds::resolve(&args.kind);
    let Some(mut doc) = store.get(&kind, &args.name).await? else {
        return Ok(fail([StoreError::NotFound {
            kind,
            name: args.name.clone(),
        }
        .to_string()]));
    };
    let labels = doc["metadata"]
        .as_object_mut()
        .map(|m| m.entry("labels").or_insert_with(|| json!({})));
    let Some(Value::Object(labels)) = labels else {
        return Ok(fail([format!(
            "{kind} '{}': metadata.labels is not a mapping",
            args.name
        )]));
    };
    let message = if args.remove {
        if labels.remove(&args.label).is_none() {
            return Ok(fail([format!(
                "{kind} '{}' has no label '{}'",
                args.name, args.label
            )]));
        }
        format!(
            "Successfully removed label {} from {kind} {}",
            args.label, args.name
        )
    } else {
        let Some((key, value)) = args.label.split_once('=') else {
            return Ok(fail([format!("label '{}' is not key=value", args.label)]));
        };
        match labels.get(key).and_then(Value::as_str) {
            Some(old) if old != value && !args.overwrite => {
                return Ok(fail([format!(
                    "{kind} '{}' already has label {key}={old}; use --overwrite to change it",
                    args.name
                )]));
            }
            _ => {}
        }
        labels.insert(key.to_owned(), json!(value));
        format!("Successfully set label {key} on {kind} {}", args.name)
    };
    let problems = validate(Some(store), std::slice::from_ref(&doc), &[]).await?;
    if !problems.is_empty() {
        return Ok(fail(problems));
    }
    match store.update(doc).await {
        Ok(_) => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail([e.to_string()])),
    }
}

pub(crate) async fn get(store: &Datastore, args: &GetArgs) -> anyhow::Result<ExitCode> {
    let kind = kinds::resolve(&args.kind);
    let mut docs = Vec::new();
    if args.names.is_empty() {
        docs = store.list(&kind).await?;
    } else {
        for name in &args.names {
            match store.get(&kind, name).await? {
                Some(doc) => docs.push(doc),
                None => {
                    return Ok(fail([StoreError::NotFound {
                        kind,
                        name: name.clone(),
                    }
                    .to_string()]));
                }
            }
        }
    }
    let single = args.names.len() == 1;
    let out = match args.output {
        GetOutput::Ps | GetOutput::Wide => {
            let default_as = store
                .get("BGPConfiguration", "default")
                .await?
                .and_then(|d| d["spec"]["asNumber"].as_u64())
                .unwrap_or(64512);
            table(&kind, &docs, args.output == GetOutput::Wide, default_as)
        }
        GetOutput::Json | GetOutput::Yaml | GetOutput::Yml => {
            let value = if single {
                docs.remove(0)
            } else {
                json!({
                    "apiVersion": starling_store::CALICO_API,
                    "kind": format!("{kind}List"),
                    "metadata": {"resourceVersion": store.revision().await?.to_string()},
                    "items": docs,
                })
            };
            if args.output == GetOutput::Json {
                serde_json::to_string_pretty(&value)? + "\n"
            } else {
                serde_yaml_ng::to_string(&value)?
            }
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// calicoctl's `-o ps` / `-o wide` tables: the kind's columns, cells
/// padded to three spaces past the widest, a blank line after.
fn table(kind: &str, docs: &[Value], wide: bool, default_as: u64) -> String {
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let or_dash = |v: &Value| if v.is_null() { "-".to_owned() } else { text(v) };
    let address = |v: &Value| text(v);
    let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
        "Node" if wide => (
            vec!["NAME", "ASN", "IPV4", "IPV6"],
            docs.iter()
                .map(|d| {
                    let bgp = &d["spec"]["bgp"];
                    let asn = match &bgp["asNumber"] {
                        Value::Null => format!("({default_as})"),
                        v => text(v),
                    };
                    vec![
                        text(&d["metadata"]["name"]),
                        asn,
                        address(&bgp["ipv4Address"]),
                        address(&bgp["ipv6Address"]),
                    ]
                })
                .collect(),
        ),
        "BGPConfiguration" => (
            vec!["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
            docs.iter()
                .map(|d| {
                    let s = &d["spec"];
                    vec![
                        text(&d["metadata"]["name"]),
                        or_dash(&s["logSeverityScreen"]),
                        or_dash(&s["nodeToNodeMeshEnabled"]),
                        or_dash(&s["asNumber"]),
                    ]
                })
                .collect(),
        ),
        "BGPPeer" => (
            vec!["NAME", "PEERIP", "NODE", "ASN"],
            docs.iter()
                .map(|d| {
                    let s = &d["spec"];
                    let peer = if s["peerIP"].is_string() {
                        text(&s["peerIP"])
                    } else {
                        text(&s["peerSelector"])
                    };
                    let node = if s["node"].is_string() {
                        text(&s["node"])
                    } else if s["nodeSelector"].is_string() {
                        text(&s["nodeSelector"])
                    } else {
                        "(global)".to_owned()
                    };
                    let asn = match &s["asNumber"] {
                        Value::Null => "0".to_owned(),
                        v => text(v),
                    };
                    vec![text(&d["metadata"]["name"]), peer, node, asn]
                })
                .collect(),
        ),
        "BGPFilter" => (
            vec![
                "NAME",
                "NUMEXPORTV4",
                "NUMIMPORTV4",
                "NUMEXPORTV6",
                "NUMIMPORTV6",
            ],
            docs.iter()
                .map(|d| {
                    let n = |k: &str| d["spec"][k].as_array().map_or(0, Vec::len).to_string();
                    vec![
                        text(&d["metadata"]["name"]),
                        n("exportV4"),
                        n("importV4"),
                        n("exportV6"),
                        n("importV6"),
                    ]
                })
                .collect(),
        ),
        "CalicoNodeStatus" => {
            let mut header = vec!["NAME", "NODE"];
            if wide {
                header.push("CLASSES");
            }
            let rows = docs
                .iter()
                .map(|d| {
                    let mut row = vec![text(&d["metadata"]["name"]), text(&d["spec"]["node"])];
                    if wide {
                        let classes: Vec<String> = d["spec"]["classes"]
                            .as_array()
                            .map(|c| c.iter().map(text).collect())
                            .unwrap_or_default();
                        row.push(classes.join(","));
                    }
                    row
                })
                .collect();
            (header, rows)
        }
        "IPPool" => (
            vec!["NAME", "CIDR", "SELECTOR"],
            docs.iter()
                .map(|d| {
                    let selector = match &d["spec"]["nodeSelector"] {
                        Value::Null => "all()".to_owned(),
                        v => text(v),
                    };
                    vec![
                        text(&d["metadata"]["name"]),
                        text(&d["spec"]["cidr"]),
                        selector,
                    ]
                })
                .collect(),
        ),
        _ => (
            vec!["NAME"],
            docs.iter()
                .map(|d| vec![text(&d["metadata"]["name"])])
                .collect(),
        ),
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}", width = widths[i] + 3);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out.push('\n');
    out
}
