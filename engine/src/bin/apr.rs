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
        Command::Inspect { model, json } => inspect(&model, json),
    }
}

/// `apr inspect`: the metadata and tensor table; errors name the file and the reason.
fn inspect(model: &std::path::Path, json: bool) -> std::process::ExitCode {
    use apr_engine::gguf::{inspect, GgufFile};
    let file = match GgufFile::open(model) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("apr inspect: error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&inspect::to_json(&file)) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!(
                    "apr inspect: error: {}: cannot encode JSON: {e}",
                    file.origin()
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", inspect::to_text(&file));
    }
    std::process::ExitCode::SUCCESS
}
