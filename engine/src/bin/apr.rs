//! `apr`: inspect, run, trace and compare GGUF / APR models.

use clap::{Parser, Subcommand};

/// Write to stdout; when stdout is closed (e.g. `apr … | head`) stop quietly with status 1
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(1);
        }
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(1);
        }
    }};
}

/// Inspect, run, trace and compare LLM inference on GGUF and APR model files.
#[derive(Debug, Parser)]
#[command(name = "apr", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate text from a prompt (streams to stdout; stats on stderr).
    Run(apr_engine::generate::run_cli::RunArgs),
    /// Print a model file's metadata and tensor table.
    Inspect {
        /// The model file (GGUF or APR).
        model: std::path::PathBuf,
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
    },
    /// Run a prompt once and report per-stage statistics and/or save stage tensors (APRT).
    Trace {
        /// The model (GGUF or APR).
        model: std::path::PathBuf,
        /// The prompt (special tokens such as <|im_start|> are parsed).
        #[arg(short, long)]
        prompt: String,
        /// Print per-stage statistics (last position and all positions) for every layer.
        #[arg(long)]
        payload: bool,
        /// Print JSON: the statistics with --payload, otherwise a summary of the run
        /// (backend, threads, SIMD tier, tokens, files written).
        #[arg(long)]
        json: bool,
        /// Save these stages as APRT files: a comma list of stage names, or `all`.
        #[arg(long, value_name = "STAGES")]
        save_tensor: Option<String>,
        /// Only these layers (comma list), with --save-tensor.
        #[arg(long, value_name = "N[,M...]", requires = "save_tensor")]
        layer: Option<String>,
        /// Directory for --save-tensor files (layer-<N>/<stage>.bin, <stage>.bin).
        #[arg(short, long, value_name = "DIR")]
        output: Option<std::path::PathBuf>,
        /// Backend: cpu (fast) or cpu-ref (f64 oracle).
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Threads (default: RAYON_NUM_THREADS or all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Run two runs on the same tokens and name the first (layer, stage) where they diverge.
    Bisect {
        /// Run A: `MODEL[,backend=cpu|cpu-ref][,threads=N]`, or a directory of APRT dumps.
        #[arg(long)]
        a: String,
        /// Run B, as run A.
        #[arg(long)]
        b: String,
        /// The prompt (tokenized by the first model side).
        #[arg(short, long, required_unless_present = "tokens")]
        prompt: Option<String>,
        /// Token ids instead of a prompt (comma list).
        #[arg(long, value_delimiter = ',')]
        tokens: Option<Vec<u32>>,
        /// Largest NMSE per stage that is not a divergence (default 2e-3, ggml's whole-model threshold).
        #[arg(long, conflicts_with = "exact")]
        tolerance: Option<f64>,
        /// Any differing bit is a divergence.
        #[arg(long)]
        exact: bool,
        /// Rows shown around the first divergence (default: all rows).
        #[arg(long)]
        context: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure prompt processing (pp) and generation (tg) throughput, like llama-bench.
    Bench {
        /// The model (GGUF or APR).
        model: std::path::PathBuf,
        /// Prompt tokens for the pp test (0 skips it).
        #[arg(short = 'p', long, default_value_t = 512)]
        n_prompt: usize,
        /// Generated tokens for the tg test (0 skips it).
        #[arg(short = 'n', long, default_value_t = 128)]
        n_gen: usize,
        /// Repetitions of each test (after one warm-up run).
        #[arg(short, long, default_value_t = 3)]
        repetitions: usize,
        /// Threads (default: RAYON_NUM_THREADS or all cores).
        #[arg(short, long)]
        threads: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Tokenize text with the model's own tokenizer and print the token ids.
    Tokenize {
        /// The model (GGUF or APR); only its vocabulary is read.
        model: std::path::PathBuf,
        /// The text.
        #[arg(short, long)]
        text: String,
        /// Add BOS/EOS as the vocabulary asks (`tokenizer.ggml.add_bos_token`).
        #[arg(long)]
        add_special: bool,
        /// Turn control-token text (e.g. `<|im_start|>`) into those tokens.
        #[arg(long)]
        parse_special: bool,
        /// Print JSON: ids, and each token's text as stored.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            std::process::ExitCode::from(apr_engine::generate::run_cli::main(&args))
        }
        Command::Inspect {
            model,
            verify: true,
            ..
        } => verify(&model),
        Command::Inspect { model, json, .. } => inspect(&model, json),
        Command::Convert { input, output, to } => convert(&input, &output, to.as_deref()),
        Command::Trace {
            model,
            prompt,
            payload,
            json,
            save_tensor,
            layer,
            output,
            backend,
            threads,
        } => {
            let Some(backend) = apr_engine::model::Backend::from_name(&backend) else {
                eprintln!("apr trace: error: unknown backend '{backend}' (cpu, cpu-ref)");
                return std::process::ExitCode::FAILURE;
            };
            let opts = apr_engine::probe::trace_cmd::TraceOptions {
                model,
                prompt,
                backend,
                threads,
                payload,
                json,
                save: save_tensor.map(|s| (s, layer)),
                output,
            };
            match apr_engine::probe::trace_cmd::run(&opts, &mut std::io::stdout().lock()) {
                Ok(_) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("apr trace: error: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Bisect {
            a,
            b,
            prompt,
            tokens,
            tolerance,
            exact,
            context,
            json,
        } => bisect(&a, &b, prompt, tokens, tolerance, exact, context, json),
        Command::Bench {
            model,
            n_prompt,
            n_gen,
            repetitions,
            threads,
            json,
        } => bench(&model, n_prompt, n_gen, repetitions.max(1), threads, json),
        Command::Tokenize {
            model,
            text,
            add_special,
            parse_special,
            json,
        } => tokenize(&model, &text, add_special, parse_special, json),
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
    use apr_engine::gguf::inspect;
    let file = match apr_engine::model_file::ModelFile::open(model) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("apr inspect: error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(apr) = file.as_apr() {
        if !json {
            outln!(
                "container: APR (tensor data aligned to {} bytes; `apr inspect --verify` checks its checksums); the content below is the GGUF it holds",
                apr.header().alignment
            );
        }
    }
    let file = file.as_gguf();
    if json {
        match serde_json::to_string_pretty(&inspect::to_json(file)) {
            Ok(s) => outln!("{s}"),
            Err(e) => {
                eprintln!(
                    "apr inspect: error: {}: cannot encode JSON: {e}",
                    file.origin()
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        out!("{}", inspect::to_text(file));
    }
    std::process::ExitCode::SUCCESS
}

/// `apr inspect --verify`: recompute an APR file's checksums; mismatches are named by tensor.
fn verify(model: &std::path::Path) -> std::process::ExitCode {
    match apr_engine::apr::verify_file(model) {
        Ok(report) => {
            out!("{}", report.to_text());
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
            outln!(
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

/// `apr bisect`: exit 0 when no stage diverges, 1 at a divergence, 2 on errors.
#[allow(clippy::too_many_arguments)]
fn bisect(
    a: &str,
    b: &str,
    prompt: Option<String>,
    tokens: Option<Vec<u32>>,
    tolerance: Option<f64>,
    exact: bool,
    context: Option<usize>,
    json: bool,
) -> std::process::ExitCode {
    use apr_engine::probe::{bisect::Criterion, bisect::DEFAULT_NMSE, bisect_cmd, RunSpec};
    let run = || -> Result<bisect_cmd::BisectOutcome, apr_engine::probe::ProbeError> {
        let opts = bisect_cmd::BisectOptions {
            a: RunSpec::parse(a)?,
            b: RunSpec::parse(b)?,
            prompt,
            tokens,
            criterion: if exact {
                Criterion::Exact
            } else {
                Criterion::Nmse(tolerance.unwrap_or(DEFAULT_NMSE))
            },
            context,
        };
        bisect_cmd::run(&opts)
    };
    match run() {
        Ok(outcome) => {
            if json {
                match serde_json::to_string_pretty(&outcome) {
                    Ok(s) => outln!("{s}"),
                    Err(e) => {
                        eprintln!("apr bisect: error: cannot encode JSON: {e}");
                        return std::process::ExitCode::from(2);
                    }
                }
            } else {
                out!("{}", bisect_cmd::render(&outcome, context));
            }
            if outcome.first_divergence_name.is_some() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("apr bisect: error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `apr bench`: a llama-bench-style table of pp and tg throughput.
fn bench(
    path: &std::path::Path,
    n_prompt: usize,
    n_gen: usize,
    reps: usize,
    threads: Option<usize>,
    json: bool,
) -> std::process::ExitCode {
    use apr_engine::bench::{generation, prompt_processing, BenchResult};
    use apr_engine::model::{Backend, Model};
    let run = || -> Result<(Model, Vec<BenchResult>), String> {
        let model = Model::open(path, Backend::Cpu).map_err(|e| e.to_string())?;
        let mut results = Vec::new();
        if n_prompt > 0 {
            results.push(prompt_processing(&model, n_prompt, reps).map_err(|e| e.to_string())?);
        }
        if n_gen > 0 {
            results.push(generation(&model, n_gen, reps).map_err(|e| e.to_string())?);
        }
        Ok((model, results))
    };
    let outcome = match threads {
        Some(n) => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            Ok(pool) => pool.install(run),
            Err(e) => Err(format!("cannot build a pool of {n} threads: {e}")),
        },
        None => run(),
    };
    let (model, results) = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apr bench: error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let threads = threads.unwrap_or_else(rayon::current_num_threads);
    if json {
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "arch": model.arch(),
            "threads": threads,
            "simd": apr_engine::kernels::active_isa().name(),
            "results": results,
        });
        outln!("{v:#}");
    } else {
        let size_mb = std::fs::metadata(path)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0);
        outln!("| model | size | backend | threads | simd | test | t/s |");
        outln!("|---|---:|---|---:|---|---:|---:|");
        for r in &results {
            outln!(
                "| {} | {size_mb:.0} MB | cpu | {threads} | {} | {} | {:.2} ± {:.2} |",
                model.arch(),
                apr_engine::kernels::active_isa().name(),
                r.test,
                r.mean_tokens_per_s,
                r.std_tokens_per_s
            );
        }
    }
    std::process::ExitCode::SUCCESS
}

/// `apr tokenize`: the ids the model's tokenizer gives `text` (as llama.cpp's tokenize).
fn tokenize(
    path: &std::path::Path,
    text: &str,
    add_special: bool,
    parse_special: bool,
    json: bool,
) -> std::process::ExitCode {
    use apr_engine::tokenizer::Tokenizer;
    let tok = apr_engine::model_file::ModelFile::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| Tokenizer::from_gguf(f.as_gguf()).map_err(|e| e.to_string()));
    let tok = match tok {
        Ok(t) => t,
        Err(e) => {
            eprintln!("apr tokenize: error: {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    let ids = tok.encode(text, add_special, parse_special);
    if json {
        let pieces: Vec<&str> = ids
            .iter()
            .map(|&i| tok.token_text(i).unwrap_or(""))
            .collect();
        outln!("{}", serde_json::json!({ "tokens": ids, "pieces": pieces }));
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        outln!("{}", list.join(" "));
    }
    std::process::ExitCode::SUCCESS
}
