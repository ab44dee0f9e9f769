//! `pv`: validate contracts, run their falsification tests, and report the evidence.

use clap::{Parser, Subcommand};

/// Validate falsification contracts, run them, and report their evidence.
#[derive(Debug, Parser)]
#[command(name = "pv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check contract files (a file or a directory of them) against the schema and rules.
    Validate {
        /// A contract file or a directory of contracts.
        path: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { .. } => {
            eprintln!("pv validate: not implemented yet");
            std::process::ExitCode::FAILURE
        }
    }
}
