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
    /// Compare captured tensors (APRT files, or directories of them) value by value.
    Diff {
        /// Compare values (the only comparison implemented).
        #[arg(long)]
        values: bool,
        /// An APRT file or a capture directory.
        a: std::path::PathBuf,
        /// An APRT file or a capture directory (the same kind as A).
        b: std::path::PathBuf,
        /// List the N largest differences per pair.
        #[arg(long, value_name = "N", default_value_t = 5)]
        top: usize,
        /// Largest acceptable NMSE = Σ(a−b)²/Σa²; beyond it the exit status is 1.
        #[arg(long, value_name = "NMSE")]
        tolerance: Option<f64>,
        /// Largest acceptable max |a−b|; beyond it the exit status is 1.
        #[arg(long, value_name = "ABS")]
        max_abs: Option<f64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Recompute an APR file's header and tensor checksums instead; exit 1 on any mismatch.
        #[arg(long, conflicts_with = "json")]
        verify: bool,
    },
    /// Convert a model between GGUF and APR (atomic; never overwrites the input).
    Convert {
        /// The input model (GGUF or APR, detected by its magic).
        input: std::path::PathBuf,
        /// The output file.
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// Output format (default: from the output's extension, .apr or .gguf).
        #[arg(long, value_parser = ["apr", "gguf"])]
        to: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect {
            model,
            verify: true,
            ..
        } => verify(&model),
        Command::Inspect { model, json, .. } => inspect(&model, json),
        Command::Convert { input, output, to } => convert(&input, &output, to.as_deref()),
        Command::Diff {
            values,
            a,
            b,
            top,
            tolerance,
            max_abs,
            json,
        } => {
            use apr_engine::trace::{diff::Tolerance, diff_cli};
            if !values {
                eprintln!("apr diff: error: give --values (the only comparison implemented)");
                return std::process::ExitCode::from(diff_cli::EXIT_ERROR);
            }
            let opts = diff_cli::DiffOptions {
                top,
                tolerance: Tolerance {
                    nmse: tolerance,
                    max_abs,
                },
                json,
            };
            let code = diff_cli::run(
                &a,
                &b,
                &opts,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            std::process::ExitCode::from(code)
        }
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

/// `apr inspect --verify`: recompute an APR file's checksums; mismatches are named by tensor.
fn verify(model: &std::path::Path) -> std::process::ExitCode {
    match apr_engine::apr::verify_file(model) {
        Ok(report) => {
            print!("{}", report.to_text());
            if report.is_ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("apr inspect --verify: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `apr convert`: GGUF <-> APR through a temporary file renamed into place.
fn convert(
    input: &std::path::Path,
    output: &std::path::Path,
    to: Option<&str>,
) -> std::process::ExitCode {
    use apr_engine::model_file::ModelFormat;
    let to = to.and_then(ModelFormat::from_name);
    match apr_engine::apr::convert::convert(input, output, to) {
        Ok(report) => {
            println!(
                "apr convert: {} -> {}: {report}",
                input.display(),
                output.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("apr convert: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
