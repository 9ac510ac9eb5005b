//! `starling`: the BGP router appliance's command line.
//!
//! The daemon, datastore and calicoctl-compatible verbs are still to come
//! (see README.md, "Status"). Today the binary offers `decode`, which shows
//! what a BGP message says and what RFC 7606 would make a receiver do, and
//! `plan`, which shows the sessions the plugins would give each node.

mod decode;
mod plan;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "starling", version, about = "Starling BGP router appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode BGP messages given as hex (a file, or `-` for standard input).
    Decode(decode::DecodeArgs),
    /// Show the BGP sessions the plugins plan for each node, offline.
    Plan(plan::PlanArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Plan(args) => plan::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
