//! `apr`: inspect, run, trace and compare GGUF / APR models.

use clap::{Parser, Subcommand};

/// Inspect, run, trace and compare LLM inference on GGUF and APR model files.
#[derive(Debug, Parser)]
#[command(name = "apr", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a model file's metadata and tensor table.
    Inspect {
        /// The GGUF model file.
        model: std::path::PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { .. } => {
            eprintln!("apr inspect: not implemented yet");
            std::process::ExitCode::FAILURE
        }
    }
}
