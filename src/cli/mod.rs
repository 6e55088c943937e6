//! The `aigate` command line, built from the same engine as the plugin.

mod check;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "aigate", version, about = "Validate and exercise aigate policies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy; print a summary, or every error with its JSON path.
    Check {
        /// Policy file (the plugin configuration JSON).
        policy: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { policy } => check::run(&policy),
    }
}

/// Reads a file, or says which one could not be read.
fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
