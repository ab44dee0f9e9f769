//! `apr run`: load a model, generate from a prompt, stream the text to stdout and a stats
//! line to stderr (or print one JSON object with `--json`). The binary only parses the
//! arguments into [`RunArgs`] and calls [`main`].

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::generator::{default_ctx, tokens_per_s};
use super::{chat, encode_prompt, generate, load_tokenizer, GenerateError, GenerateOptions};
use super::{Generation, SamplingParams};
use crate::model::{Backend, Model};

/// `apr run`'s arguments (flag names follow llama-cli where it has the same flag).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The model file (GGUF, or APR: both are read through ModelFile).
    pub model: PathBuf,
    /// The prompt; special-token text such as <|im_start|> is parsed into its token.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: String,
    /// Generate at most N tokens (fewer if the model ends its turn).
    #[arg(
        short = 'n',
        long = "n-predict",
        value_name = "N",
        default_value_t = 128
    )]
    pub n_predict: usize,
    /// Temperature; 0 is greedy (the default: deterministic, comparable with llama.cpp).
    #[arg(long = "temp", value_name = "T", default_value_t = 0.0)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0 keeps all; only with --temp > 0).
    #[arg(long, value_name = "K", default_value_t = 40)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P (1 keeps all).
    #[arg(long, value_name = "P", default_value_t = 0.95)]
    pub top_p: f32,
    /// Penalise the tokens of the last --repeat-last-n (1 is off).
    #[arg(long, value_name = "R", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens (prompt included) the repeat penalty looks at.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed for sampling (default: a random one, reported on stderr and in JSON).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Worker threads (default: every core).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Context size in tokens (default: the model's training context, at most 4096).
    #[arg(short = 'c', long, value_name = "N")]
    pub ctx: Option<usize>,
    /// Wrap the prompt in the model's chat template (tokenizer.chat_template) as a user turn.
    #[arg(long)]
    pub chat: bool,
    /// Print one JSON object (token ids, text, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Where matrix products run: cpu (fast) or cpu-ref (f64 oracle, one thread).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cpu-ref"])]
    pub backend: String,
}

/// Run `apr run` on the process's stdout and stderr; the exit status (0 or 1).
pub fn main(args: &RunArgs) -> u8 {
    let progress = std::io::stderr().is_terminal();
    match run(
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        progress,
    ) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("apr run: {e}");
            1
        }
    }
}

/// `apr run` on any writers; `progress` shows a loading indicator on stderr.
pub fn run(
    args: &RunArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    progress: bool,
) -> Result<(), GenerateError> {
    // Everything that needs no model is checked before the (possibly long) load.
    if args.prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt);
    }
    if args.ctx == Some(0) {
        return Err(GenerateError::ZeroContext);
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed,
    };
    sampling.validate()?;
    let backend = Backend::from_name(&args.backend).unwrap_or(Backend::Cpu);
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 {
        return Err(GenerateError::Threads {
            threads,
            message: "give at least 1".to_owned(),
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| GenerateError::Threads {
            threads,
            message: e.to_string(),
        })?;
    pool.install(|| {
        let load_start = Instant::now();
        let model = with_progress(progress, &args.model, || Model::open(&args.model, backend))?;
        let (tokenizer, notice) = load_tokenizer(&model)?;
        let load_time = load_start.elapsed();
        let note = |err: &mut (dyn Write + Send), msg: &str| {
            writeln!(err, "apr run: note: {msg}").map_err(GenerateError::Output)
        };
        if let Some(notice) = notice {
            note(err, &notice)?;
        }
        let prompt_text = if args.chat {
            chat::user_prompt(model.file(), &tokenizer, &args.prompt)?
        } else {
            args.prompt.clone()
        };
        let prompt = encode_prompt(&tokenizer, &prompt_text)?;
        let n_ctx_train = model.hparams().n_ctx_train;
        let n_ctx = args.ctx.unwrap_or_else(|| default_ctx(&model));
        if n_ctx > n_ctx_train {
            note(
                err,
                &format!("--ctx {n_ctx} exceeds the model's training context of {n_ctx_train}"),
            )?;
        }
        let opts = GenerateOptions {
            n_predict: args.n_predict,
            n_ctx,
            sampling,
        };
        let gen = if args.json {
            generate(&model, &tokenizer, &prompt, &opts, &mut |_| {
                ControlFlow::Continue(())
            })?
        } else {
            let mut write_err = None;
            let gen = generate(&model, &tokenizer, &prompt, &opts, &mut |piece| {
                // A closed stdout (e.g. `| head`) ends the generation at once.
                match out.write_all(piece.as_bytes()).and_then(|_| out.flush()) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        write_err = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
            if let Some(e) = write_err {
                return Err(GenerateError::Output(e));
            }
            // End the streamed text with a newline so the stats line starts on its own.
            if !gen.text.is_empty() && !gen.text.ends_with('\n') {
                writeln!(out).map_err(GenerateError::Output)?;
            }
            gen
        };
        let report = Report {
            args,
            model: &model,
            prompt_text: &prompt_text,
            gen: &gen,
            load_time,
            threads,
            n_ctx,
            seed,
        };
        if args.json {
            writeln!(out, "{}", report.json()).map_err(GenerateError::Output)?;
        }
        writeln!(err, "{}", report.stats_line()).map_err(GenerateError::Output)?;
        out.flush().map_err(GenerateError::Output)
    })
}

/// What a run reports, on stderr and in JSON.
struct Report<'a> {
    args: &'a RunArgs,
    model: &'a Model,
    prompt_text: &'a str,
    gen: &'a Generation,
    load_time: Duration,
    threads: usize,
    n_ctx: usize,
    seed: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Report<'_> {
    fn prompt_rate(&self) -> Option<f64> {
        tokens_per_s(self.gen.prompt_tokens.len(), self.gen.timings.prompt)
    }

    /// Decode speed: one-token forward passes (plus sampling) per second. The first
    /// generated token comes out of the prefill, so it is not counted here.
    fn gen_rate(&self) -> Option<f64> {
        tokens_per_s(self.gen.timings.decode_evals, self.gen.timings.decode)
    }

    fn stats_line(&self) -> String {
        let rate = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.1} tok/s"));
        let t = &self.gen.timings;
        format!(
            "apr run: load {:.1} ms | prompt {} tokens in {:.1} ms, {} | generated {} tokens, \
             {} decode steps in {:.1} ms, {} | stop: {} | sampling: {} | threads {}",
            ms(self.load_time),
            self.gen.prompt_tokens.len(),
            ms(t.prompt),
            rate(self.prompt_rate()),
            self.gen.tokens.len(),
            t.decode_evals,
            ms(t.decode),
            rate(self.gen_rate()),
            match self.gen.stop {
                super::StopReason::Eog => "end of generation",
                super::StopReason::Length => "-n reached",
                super::StopReason::Stopped => "output closed",
            },
            if self.args.temperature <= 0.0 {
                "greedy".to_owned()
            } else {
                format!("seed {}", self.seed)
            },
            self.threads,
        )
    }

    fn json(&self) -> serde_json::Value {
        let t = &self.gen.timings;
        serde_json::json!({
            "model": self.args.model.display().to_string(),
            "arch": self.model.arch().name(),
            "backend": self.model.backend().name(),
            "threads": self.threads,
            // The tier the cpu backend's kernels dispatch to in this process (APR_SIMD or
            // the best the CPU has); cpu-ref runs no dispatched kernel.
            "simd": crate::kernels::active_isa().name(),
            "n_ctx": self.n_ctx,
            "chat": self.args.chat,
            "prompt": self.prompt_text,
            "prompt_tokens": self.gen.prompt_tokens,
            "generated_tokens": self.gen.tokens,
            "eog_token": self.gen.eog_token,
            "stop": self.gen.stop,
            "text": self.gen.text,
            "sampling": {
                "greedy": self.args.temperature <= 0.0,
                "temperature": shortest(self.args.temperature),
                "top_k": self.args.top_k,
                "top_p": shortest(self.args.top_p),
                "repeat_penalty": shortest(self.args.repeat_penalty),
                "repeat_last_n": self.args.repeat_last_n,
                "seed": self.seed,
            },
            "timings": {
                "load_ms": ms(self.load_time),
                "prompt_ms": ms(t.prompt),
                "prompt_tokens_per_s": self.prompt_rate(),
                "decode_ms": ms(t.decode),
                "decode_steps": t.decode_evals,
                "decode_tokens_per_s": self.gen_rate(),
            },
        })
    }
}

/// An f32 flag value as the f64 with the same shortest decimal form (0.95, not
/// 0.949999988079071).
fn shortest(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// A seed from the clock and the process id, for runs that give none.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    super::rng::splitmix64(&mut x)
}

/// Run `load`, showing a spinner with the elapsed time on stderr if `enabled` and the
/// load takes more than a moment; the line is cleared when it ends.
fn with_progress<T>(enabled: bool, path: &Path, load: impl FnOnce() -> T) -> T {
    if !enabled {
        return load();
    }
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let size = std::fs::metadata(path)
        .map(|m| format!(" ({:.2} GB)", m.len() as f64 / 1e9))
        .unwrap_or_default();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let mut drawn = false;
            for frame in ['|', '/', '-', '\\'].iter().cycle() {
                std::thread::sleep(Duration::from_millis(100));
                if done.load(Ordering::Relaxed) {
                    break;
                }
                if start.elapsed() >= Duration::from_millis(300) {
                    eprint!(
                        "\rapr run: loading {name}{size} {frame} {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                    drawn = true;
                }
            }
            if drawn {
                eprint!("\r\x1b[2K");
            }
        });
        let value = load();
        done.store(true, Ordering::Relaxed);
        value
    })
}
