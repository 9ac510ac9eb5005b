//! `starling`: the BGP router appliance's command line.
//!
//! calicoctl's resource verbs over the datastore (`create`, `apply`,
//! `replace`, `get`, `delete`, `patch`, `label`, `validate`), the daemon
//! (`run`) and what talks to it (`node status`, `routes`), `plan` (the
//! sessions the plugins give each node, offline) and `decode` (what a BGP
//! message says and what RFC 7606 would make a receiver do).

mod calico;
mod daemon;
mod datastore;
mod decode;
mod lab;
mod plan;
mod resources;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use datastore::Datastore;

#[derive(Debug, Parser)]
#[command(name = "starling", version, about = "Starling BGP router appliance")]
struct Cli {
    /// The embedded datastore's directory.
    #[arg(
        long,
        global = true,
        env = "STARLING_DATASTORE",
        default_value = datastore::DEFAULT_PATH
    )]
    datastore: PathBuf,
    /// Which datastore: the embedded directory, or etcd v3 (as calicoctl's
    /// `DATASTORE_TYPE`).
    #[arg(
        long,
        global = true,
        env = "DATASTORE_TYPE",
        value_enum,
        default_value = "embedded"
    )]
    datastore_type: datastore::Kind,
    /// etcd client URLs, comma-separated (as calicoctl's `ETCD_ENDPOINTS`).
    #[arg(long, global = true, env = "ETCD_ENDPOINTS")]
    etcd_endpoints: Option<String>,
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
    Node(calico::node_status::NodeCommand),
    /// Show every path in the RIB, best ones marked (from the running daemon).
    Routes(calico::node_status::StatusArgs),
    /// Show the BGP sessions the plugins plan for each node, offline.
    Plan(plan::PlanArgs),
    /// Decode BGP messages given as hex (a file, or `-` for standard input).
    Decode(decode::DecodeArgs),
    /// A lab on this machine: nodes in network namespaces, a ToR, traffic.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Plugin authors' tools: `starling plugin test`.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print a shell completion script (`starling completions bash >
    /// /etc/bash_completion.d/starling`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), `starling(1)`.
    Man,
}

/// What plugins log (and print) while `plan` or `plugin test` runs them,
/// on standard error: warnings and errors, or what `RUST_LOG` says
/// (`RUST_LOG=info` shows a plugin's `print`s).
fn plugin_log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run(args) => return daemon::run(args),
        Command::Node(calico::node_status::NodeCommand::Status(args)) => {
            return calico::node_status::run(args);
        }
        Command::Routes(args) => return calico::node_status::routes(args),
        Command::Plan(args) => {
            plugin_log_to_stderr();
            return plan::run(args);
        }
        Command::Decode(args) => return decode::run(args),
        Command::Lab(command) => return lab::run(command),
        Command::Plugin(PluginCommand::New(args)) => return plan::new::run(args),
        Command::Plugin(PluginCommand::Build(args)) => {
            plugin_log_to_stderr();
            return plan::build::run(args);
        }
        Command::Plugin(PluginCommand::Test(args)) => {
            plugin_log_to_stderr();
            return plan::kit::run(args);
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "starling",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    // The resource verbs: one datastore round trip or a few.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(resource_verb(&cli))
}

async fn resource_verb(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Command::Validate(files) = &cli.command {
        return resources::validate_files(files).await;
    }
    let location = datastore::Location::from_flags(
        cli.datastore_type,
        &cli.datastore,
        cli.etcd_endpoints.as_deref(),
    )?;
    let store = Datastore::open(&location).await?;
    match &cli.command {
        Command::Create(files) => resources::write(&store, files, resources::Write::Create).await,
        Command::Apply(files) => resources::write(&store, files, resources::Write::Apply).await,
        Command::Replace(files) => resources::write(&store, files, resources::Write::Replace).await,
        Command::Get(args) => resources::get(&store, args).await,
        Command::Delete(args) => resources::delete(&store, args).await,
        Command::Patch(args) => resources::patch(&store, args).await,
        Command::Label(args) => resources::label(&store, args).await,
        Command::Validate(_)
        | Command::Run(_)
        | Command::Node(_)
        | Command::Routes(_)
        | Command::Plan(_)
        | Command::Decode(_)
        | Command::Lab(_)
        | Command::Plugin(_)
        | Command::Completions { .. }
        | Command::Man => unreachable!("handled in run()"),
    }
}

/// A CLI piped into `head` should stop quietly when the reader goes, as
/// other Unix tools do, not panic on the failed write. The daemon keeps
/// Rust's default (EPIPE as an error), so a closed log pipe cannot kill it.
#[allow(unsafe_code)]
fn stop_quietly_on_closed_stdout() {
    // SAFETY: called from main before any other thread exists; SIG_DFL is
    // a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[derive(Debug, clap::Subcommand)]
enum PluginCommand {
    /// Test a plugin: the contract's self-test, then fixtures (resources
    /// in; sessions, a refusal or route-policy verdicts out). Exits 1 when
    /// any fails.
    Test(plan::kit::TestArgs),
    /// Build the plugin project in a directory (Rust, Python or
    /// JavaScript) into a component, and check that Starling loads it.
    Build(plan::build::BuildArgs),
    /// Start a plugin project (Rust, Python or JavaScript) that builds and
    /// passes its own fixture as it comes.
    New(plan::new::NewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        stop_quietly_on_closed_stdout();
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
