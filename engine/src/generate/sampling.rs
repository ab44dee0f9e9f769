//! Choosing the next token from the logits.
//!
//! The chain runs in one fixed order, the order of llama.cpp's default sampler chain
//! (`common_params_sampling::samplers` in common/common.h: penalties, dry, top_n_sigma,
//! top_k, typical_p, top_p, min_p, xtc, temperature, then `dist`), keeping the stages we
//! implement:
//!
//! 1. **repeat penalty** over the last `repeat_last_n` tokens (prompt included, as
//!    llama-cli feeds the prompt to its sampler): each distinct such token's logit is
//!    divided by the penalty when positive and multiplied by it when not
//!    (llama.cpp `llama_sampler_penalties_apply`);
//! 2. **greedy** if `temperature <= 0`: the highest penalised logit, lowest id on ties
//!    (llama.cpp's temperature sampler keeps only the maximum then);
//! 3. **top-k**: the `k` highest logits (`k = 0` disables);
//! 4. **top-p**: softmax of the survivors, then the smallest prefix (by descending
//!    probability) whose mass is ≥ `p` (`p >= 1` disables; at least one token is kept);
//! 5. **temperature**: logits divided by `T`;
//! 6. **draw**: softmax, then the first candidate whose cumulative probability exceeds a
//!    uniform `u ∈ [0, 1)` from the seeded [`Rng`].
//!
//! Note that, as in llama.cpp, top-p sees the probabilities at temperature 1: the
//! temperature changes how the kept tokens are weighted, not which are kept.
//! Ties in the sort are broken by the lower token id, so the whole chain is a pure
//! function of (logits, history, parameters, random stream).

use serde::Serialize;

use super::rng::Rng;

/// Sampling parameters (defaults: see [`SamplingParams::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SamplingParams {
    /// `<= 0` is greedy.
    pub temperature: f32,
    /// `0` disables.
    pub top_k: usize,
    /// `>= 1` disables.
    pub top_p: f32,
    /// `1` disables.
    pub repeat_penalty: f32,
    /// How many of the latest tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    /// Greedy (temperature 0) so that `apr run` without flags is deterministic and is the
    /// decoding the contracts and llama.cpp's greedy references describe; when a
    /// temperature is given, llama.cpp's defaults for the rest: top-k 40, top-p 0.95,
    /// repeat penalty 1.0 (off) over the last 64 tokens.
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// A parameter outside its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} = {value} is invalid: {reason}")]
pub struct BadParam {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl SamplingParams {
    /// Reject values the chain cannot give a meaning to.
    pub fn validate(&self) -> Result<(), BadParam> {
        let bad = |name, value: f32, reason| BadParam {
            name,
            value: value.to_string(),
            reason,
        };
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(bad(
                "temperature",
                self.temperature,
                "must be a finite number >= 0 (0 is greedy)",
            ));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(bad("top-p", self.top_p, "must be in [0, 1] (1 disables)"));
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return Err(bad(
                "repeat-penalty",
                self.repeat_penalty,
                "must be a finite number > 0 (1 disables)",
            ));
        }
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// A token that survived the filters, with its probability after the whole chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub p: f64,
}

/// The sampler: parameters plus the random stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        Sampler {
            params,
            rng: Rng::seed_from_u64(params.seed),
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Choose the next token; `history` is every token so far (prompt and generated).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut logits = logits.to_vec();
        apply_repeat_penalty(
            &mut logits,
            history,
            self.params.repeat_penalty,
            self.params.repeat_last_n,
        );
        if self.params.is_greedy() {
            return argmax(&logits);
        }
        let candidates = distribution(&logits, &self.params);
        pick(&candidates, self.rng.next_f64())
    }
}

/// Step 1: llama.cpp's repeat penalty on each distinct token of the last `last_n`.
pub fn apply_repeat_penalty(logits: &mut [f32], history: &[u32], penalty: f32, last_n: usize) {
    if penalty == 1.0 || last_n == 0 {
        return;
    }
    let window = &history[history.len().saturating_sub(last_n)..];
    let mut seen = std::collections::HashSet::with_capacity(window.len());
    for &id in window {
        if !seen.insert(id) {
            continue;
        }
        if let Some(l) = logits.get_mut(id as usize) {
            if *l > 0.0 {
                *l /= penalty;
            } else {
                *l *= penalty;
            }
        }
    }
}

/// The highest logit, lowest id on ties (llama.cpp `llama_sampler_greedy_apply`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Steps 3–5 on already penalised logits: the candidates and their probabilities, by
/// descending probability (lower id first on ties). Meaningful for `temperature > 0`.
pub fn distribution(logits: &[f32], params: &SamplingParams) -> Vec<Candidate> {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    // A total order: descending logit, then ascending id; NaN logits last.
    let rank = |&a: &u32, &b: &u32| {
        let (la, lb) = (logits[a as usize], logits[b as usize]);
        lb.partial_cmp(&la)
            .unwrap_or_else(|| la.is_nan().cmp(&lb.is_nan()))
            .then(a.cmp(&b))
    };
    // top-k: select the k best in O(n), then sort only those (a full sort of a
    // 150k-token vocabulary every step would cost more than the selection).
    if params.top_k > 0 && params.top_k < order.len() {
        order.select_nth_unstable_by(params.top_k - 1, rank);
        order.truncate(params.top_k);
    }
    order.sort_by(rank);
    // top-p on the softmax at temperature 1
    if params.top_p < 1.0 {
        let probs = softmax(order.iter().map(|&i| logits[i as usize]), 1.0);
        let mut mass = 0.0;
        let mut keep = order.len();
        for (i, p) in probs.iter().enumerate() {
            mass += p;
            if mass >= f64::from(params.top_p) {
                keep = i + 1;
                break;
            }
        }
        order.truncate(keep.max(1));
    }
    // temperature, then the final softmax
    let probs = softmax(
        order.iter().map(|&i| logits[i as usize]),
        params.temperature,
    );
    order
        .into_iter()
        .zip(probs)
        .map(|(id, p)| Candidate { id, p })
        .collect()
}

/// `softmax(x / t)` in f64, max-subtracted.
fn softmax(x: impl Iterator<Item = f32> + Clone, t: f32) -> Vec<f64> {
    let t = f64::from(t);
    let max = x.clone().map(f64::from).fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.map(|v| ((f64::from(v) - max) / t).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Step 6: the first candidate whose cumulative probability exceeds `u ∈ [0, 1)`; the
/// last one if rounding leaves the total just under `u`.
pub fn pick(candidates: &[Candidate], u: f64) -> u32 {
    let mut acc = 0.0;
    for c in candidates {
        acc += c.p;
        if u < acc {
            return c.id;
        }
    }
    candidates.last().map_or(0, |c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            ..SamplingParams::default()
        }
    }

    fn ids(c: &[Candidate]) -> Vec<u32> {
        c.iter().map(|c| c.id).collect()
    }

    /// ln of the probabilities 0.5, 0.3, 0.2 (softmax gives them back exactly, up to rounding).
    fn three() -> Vec<f32> {
        vec![0.2f32.ln(), 0.5f32.ln(), 0.3f32.ln()]
    }

    #[test]
    fn greedy_is_the_argmax_lowest_id_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        let mut s = Sampler::new(params(0.0, 40, 0.95));
        assert_eq!(s.sample(&[0.5, -2.0, 4.0, 3.9], &[]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_seed() {
        let logits = [0.1, 2.0, 1.9, -3.0, 2.0 - 1e-3];
        for seed in 0..50 {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(1.5, 1, 1.0)
            });
            assert_eq!(s.sample(&logits, &[]), 1);
        }
    }

    #[test]
    fn top_k_keeps_the_k_highest_in_order() {
        let d = distribution(&[0.0, 5.0, 1.0, 4.0, 3.0], &params(1.0, 3, 1.0));
        assert_eq!(ids(&d), [1, 3, 4]);
        // Ties go to the lower id, at the cut too.
        let d = distribution(&[1.0, 3.0, 3.0, 2.0, 3.0, 0.0], &params(1.0, 2, 1.0));
        assert_eq!(ids(&d), [1, 2]);
        let d = distribution(&[1.0, 3.0, 3.0, 2.0, 3.0, 0.0], &params(1.0, 4, 1.0));
        assert_eq!(ids(&d), [1, 2, 4, 3]);
        // k beyond the vocabulary keeps everything.
        let d = distribution(&[1.0, 3.0], &params(1.0, 10, 1.0));
        assert_eq!(ids(&d), [1, 0]);
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        // Sorted probabilities: 0.5 (id 1), 0.3 (id 2), 0.2 (id 0).
        assert_eq!(ids(&distribution(&three(), &params(1.0, 0, 0.45))), [1]);
        assert_eq!(ids(&distribution(&three(), &params(1.0, 0, 0.6))), [1, 2]);
        assert_eq!(ids(&distribution(&three(), &params(1.0, 0, 0.79))), [1, 2]);
        assert_eq!(
            ids(&distribution(&three(), &params(1.0, 0, 0.81))),
            [1, 2, 0]
        );
        assert_eq!(
            ids(&distribution(&three(), &params(1.0, 0, 1.0))),
            [1, 2, 0]
        );
        // Mass exactly p is enough: two equal logits have probability 1/2 each, exactly.
        assert_eq!(ids(&distribution(&[0.0, 0.0], &params(1.0, 0, 0.5))), [0]);
        assert_eq!(
            ids(&distribution(&[0.0, 0.0], &params(1.0, 0, 0.51))),
            [0, 1]
        );
        // p = 0 still keeps one token.
        assert_eq!(ids(&distribution(&three(), &params(1.0, 0, 0.0))), [1]);
        // Kept probabilities are renormalised: 0.5/0.8 and 0.3/0.8.
        let d = distribution(&three(), &params(1.0, 0, 0.7));
        assert!((d[0].p - 0.625).abs() < 1e-6, "{d:?}");
        assert!((d[1].p - 0.375).abs() < 1e-6, "{d:?}");
    }

    #[test]
    fn top_p_sees_temperature_one_probabilities() {
        // At T = 1 the top token has 0.5 < 0.6, so two are kept even though at T = 0.1
        // the top token alone would carry almost all the mass.
        assert_eq!(ids(&distribution(&three(), &params(0.1, 0, 0.6))), [1, 2]);
    }

    #[test]
    fn temperature_scales_the_logits() {
        // logits ln 3 and 0: p = 3/4, 1/4 at T = 1; 9/10, 1/10 at T = 1/2; 1/2 each at T → ∞.
        let l = [3f32.ln(), 0.0];
        let d = distribution(&l, &params(1.0, 0, 1.0));
        assert!((d[0].p - 0.75).abs() < 1e-6 && (d[1].p - 0.25).abs() < 1e-6);
        let d = distribution(&l, &params(0.5, 0, 1.0));
        assert!((d[0].p - 0.9).abs() < 1e-6 && (d[1].p - 0.1).abs() < 1e-6);
        let d = distribution(&l, &params(1e6, 0, 1.0));
        assert!((d[0].p - 0.5).abs() < 1e-5);
    }

    #[test]
    fn temperature_towards_zero_is_greedy() {
        let logits = [1.0, 1.5, 1.4, 0.0];
        for seed in 0..50 {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(1e-4, 0, 1.0)
            });
            assert_eq!(s.sample(&logits, &[]), 1);
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(0.0, 0, 1.0)
            });
            assert_eq!(s.sample(&logits, &[]), 1);
        }
    }

    #[test]
    fn pick_walks_the_cumulative_distribution() {
        let c = [Candidate { id: 7, p: 0.625 }, Candidate { id: 3, p: 0.375 }];
        assert_eq!(pick(&c, 0.0), 7);
        assert_eq!(pick(&c, 0.624), 7);
        assert_eq!(pick(&c, 0.625), 3);
        assert_eq!(pick(&c, 0.999_999), 3);
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut l = vec![2.0, -2.0, 3.0, 0.0, 1.0];
        // Token 0 twice (penalised once), token 1 once; token 4 is outside the last 3.
        apply_repeat_penalty(&mut l, &[4, 0, 1, 0], 2.0, 3);
        assert_eq!(l, [1.0, -4.0, 3.0, 0.0, 1.0]);
        // Penalty 1 or an empty window changes nothing.
        let mut l = vec![2.0, -2.0];
        apply_repeat_penalty(&mut l, &[0, 1], 1.0, 64);
        apply_repeat_penalty(&mut l, &[0, 1], 2.0, 0);
        assert_eq!(l, [2.0, -2.0]);
    }

    #[test]
    fn repeat_penalty_changes_the_greedy_choice() {
        // 3.0 / 2 = 1.5 < 2.0: the repeated token loses.
        let mut s = Sampler::new(SamplingParams {
            repeat_penalty: 2.0,
            ..params(0.0, 0, 1.0)
        });
        assert_eq!(s.sample(&[3.0, 2.0], &[0]), 1);
        assert_eq!(s.sample(&[3.0, 2.0], &[1]), 0);
    }

    fn run(seed: u64, n: usize) -> Vec<u32> {
        // A flat distribution over 16 tokens, so every draw matters.
        let logits = vec![0.0f32; 16];
        let mut s = Sampler::new(SamplingParams {
            seed,
            ..params(1.0, 0, 1.0)
        });
        (0..n).map(|_| s.sample(&logits, &[])).collect()
    }

    #[test]
    fn same_seed_same_tokens_different_seed_different_tokens() {
        assert_eq!(run(42, 32), run(42, 32));
        // 32 draws from 16 equally likely tokens coincide with probability 16^-32.
        assert_ne!(run(42, 32), run(43, 32));
        // And the draws are spread: a flat distribution over 16 tokens visits most of them.
        let mut seen = run(1, 256);
        seen.sort();
        seen.dedup();
        assert!(seen.len() >= 12, "{seen:?}");
    }

    #[test]
    fn validation_names_the_parameter() {
        assert_eq!(SamplingParams::default().validate(), Ok(()));
        let e = params(-1.0, 0, 1.0).validate().unwrap_err();
        assert_eq!(e.name, "temperature");
        let e = params(1.0, 0, 1.5).validate().unwrap_err();
        assert_eq!(e.name, "top-p");
        let e = SamplingParams {
            repeat_penalty: 0.0,
            ..SamplingParams::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.name, "repeat-penalty");
    }
}
