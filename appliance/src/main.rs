//! `starling`: the BGP router appliance's command line.
//!
//! Today: calicoctl's resource verbs over the embedded datastore (`create`,
//! `apply`, `replace`, `get`, `delete`, `patch`, `label`, `validate`),
//! `plan` (the sessions the plugins give each node, offline) and `decode`
//! (what a BGP message says and what RFC 7606 would make a receiver do).
//! The daemon is still to come (see README.md, "Status").

mod daemon;
mod decode;
mod node_status;
mod plan;
mod resources;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use starling_store::Embedded;

#[derive(Debug, Parser)]
#[command(name = "starling", version, about = "Starling BGP router appliance")]
struct Cli {
    /// The embedded datastore's directory.
    #[arg(
        long,
        global = true,
        env = "STARLING_DATASTORE",
        default_value = resources::DEFAULT_DATASTORE
    )]
    datastore: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create resources; fails for any that exist.
    Create(resources::Files),
    /// Create resources, or replace those that exist.
    Apply(resources::Files),
    /// Replace resources; fails for any that do not exist.
    Replace(resources::Files),
    /// Show resources.
    Get(resources::GetArgs),
    /// Delete resources.
    Delete(resources::DeleteArgs),
    /// Change one resource with a JSON merge patch.
    Patch(resources::PatchArgs),
    /// Set or remove a label on one resource.
    Label(resources::LabelArgs),
    /// Check resource files without a datastore.
    Validate(resources::Files),
    /// Run the appliance daemon.
    Run(daemon::RunArgs),
    /// Node commands: `starling node status`.
    #[command(subcommand)]
    Node(node_status::NodeCommand),
    /// Show the best path of every prefix (from the running daemon).
    Routes(node_status::RoutesArgs),
    /// Show the BGP sessions the plugins plan for each node, offline.
    Plan(plan::PlanArgs),
    /// Decode BGP messages given as hex (a file, or `-` for standard input).
    Decode(decode::DecodeArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = || Embedded::open(&cli.datastore);
    match &cli.command {
        Command::Create(files) => resources::write(&store()?, files, resources::Write::Create),
        Command::Apply(files) => resources::write(&store()?, files, resources::Write::Apply),
        Command::Replace(files) => resources::write(&store()?, files, resources::Write::Replace),
        Command::Get(args) => resources::get(&store()?, args),
        Command::Delete(args) => resources::delete(&store()?, args),
        Command::Patch(args) => resources::patch(&store()?, args),
        Command::Label(args) => resources::label(&store()?, args),
        Command::Validate(files) => resources::validate_files(files),
        Command::Run(args) => daemon::run(args),
        Command::Node(node_status::NodeCommand::Status(args)) => node_status::run(args),
        Command::Routes(args) => node_status::routes(args),
        Command::Plan(args) => plan::run(args),
        Command::Decode(args) => decode::run(args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
