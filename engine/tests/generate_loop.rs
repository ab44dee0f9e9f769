//! The generation loop's contract, on a fixture model: what is streamed is the text, a
//! callback can stop it, and the context check is exact at its boundary.

use std::ops::ControlFlow;
use std::path::Path;

use apr_engine::generate::{
    encode_prompt, generate, load_tokenizer, GenerateError, GenerateOptions, SamplingParams,
    StopReason,
};
use apr_engine::model::{Backend, Model};

fn qwen2() -> Model {
    Model::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/qwen2-Q8_0.gguf"),
        Backend::Cpu,
    )
    .unwrap()
}

fn opts(n_predict: usize, n_ctx: usize) -> GenerateOptions {
    GenerateOptions {
        n_predict,
        n_ctx,
        sampling: SamplingParams::default(),
    }
}

#[test]
fn the_streamed_pieces_are_the_text_and_decode_the_tokens() {
    let model = qwen2();
    let (tok, _) = load_tokenizer(&model).unwrap();
    let prompt = encode_prompt(&tok, "def fibonacci(n):").unwrap();
    let mut pieces = Vec::new();
    let gen = generate(&model, &tok, &prompt, &opts(12, 64), &mut |p| {
        pieces.push(p.to_owned());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(gen.stop, StopReason::Length);
    assert_eq!(gen.tokens.len(), 12);
    assert_eq!(gen.timings.decode_evals, 11);
    assert_eq!(pieces.concat(), gen.text);
    assert_eq!(
        gen.text,
        String::from_utf8_lossy(&tok.decode(&gen.tokens, false))
    );
    assert!(pieces.iter().all(|p| !p.is_empty()));
}

#[test]
fn a_callback_can_stop_the_generation() {
    let model = qwen2();
    let (tok, _) = load_tokenizer(&model).unwrap();
    let prompt = encode_prompt(&tok, "The quick brown fox").unwrap();
    let mut calls = 0;
    let gen = generate(&model, &tok, &prompt, &opts(16, 64), &mut |_| {
        calls += 1;
        if calls == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(gen.stop, StopReason::Stopped);
    assert_eq!(calls, 3);
    assert!(gen.tokens.len() >= 3 && gen.tokens.len() < 16, "{gen:?}");
}

#[test]
fn the_context_must_hold_prompt_and_budget_exactly() {
    let model = qwen2();
    let (tok, _) = load_tokenizer(&model).unwrap();
    let prompt = encode_prompt(&tok, "Hello, world!").unwrap();
    let n = prompt.len();
    let mut ignore = |_: &str| ControlFlow::Continue(());
    // prompt + 4 == n_ctx fits.
    let gen = generate(&model, &tok, &prompt, &opts(4, n + 4), &mut ignore).unwrap();
    assert_eq!(gen.tokens.len(), 4);
    // One more does not, and the error says by how much.
    let err = generate(&model, &tok, &prompt, &opts(5, n + 4), &mut ignore).unwrap_err();
    match err {
        GenerateError::ContextOverflow {
            prompt,
            n_predict,
            n_ctx,
            n_ctx_train,
        } => assert_eq!((prompt, n_predict, n_ctx, n_ctx_train), (n, 5, n + 4, 512)),
        other => panic!("{other}"),
    }
    // An empty prompt and a zero context are errors, not panics.
    assert!(matches!(
        generate(&model, &tok, &[], &opts(4, 64), &mut ignore),
        Err(GenerateError::EmptyPrompt)
    ));
    assert!(matches!(
        generate(&model, &tok, &prompt, &opts(0, 0), &mut ignore),
        Err(GenerateError::ZeroContext)
    ));
    // -n 0 runs the prefill only.
    let gen = generate(&model, &tok, &prompt, &opts(0, n), &mut ignore).unwrap();
    assert!(gen.tokens.is_empty() && gen.text.is_empty());
}
