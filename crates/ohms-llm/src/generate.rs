//! Text generation: feed a prompt, then sample until a stop token or a length limit.
//!
//! [`Generation`] does it one forward pass at a time, so a canister can stop when a message's
//! instruction budget runs out and continue in the next message, even after an upgrade.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::linear::Linear;
use crate::model::{ForwardError, Model};
use crate::sample::Sampler;

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model chose a stop token (not included in the output).
    StopToken,
    /// `max_new_tokens` tokens were generated, or none can be (an empty prompt).
    MaxTokens,
    /// The next token would not fit in the model's context.
    ContextFull,
}

/// What one [`Generation::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Fed a token whose successor is already known (prompt, or re-feeding after a lost cache).
    Prefilled,
    /// Produced a new token.
    Token(u32),
    Finished(StopReason),
}

/// A generation in progress. Serializable without the KV cache: a deserialized one rebuilds the
/// cache by re-feeding its tokens, then continues with the same tokens an uninterrupted one
/// would produce (the sampler's random state is part of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    prompt: Vec<u32>,
    generated: Vec<u32>,
    max_new_tokens: u32,
    stop: Vec<u32>,
    sampler: Sampler,
    outcome: Option<StopReason>,
    /// How many positions of this sequence the model's KV cache holds.
    #[serde(skip)]
    fed: usize,
}

impl Generation {
    /// A generation continuing `prompt`, stopping before any token in `stop` (end of turn, EOS).
    /// An empty prompt gives the model nothing to continue: it is finished at once, with
    /// [`StopReason::MaxTokens`].
    pub fn new(prompt: Vec<u32>, max_new_tokens: u32, stop: Vec<u32>, sampler: Sampler) -> Self {
        let outcome = (prompt.is_empty() || max_new_tokens == 0).then_some(StopReason::MaxTokens);
        Self {
            prompt,
            generated: Vec::new(),
            max_new_tokens,
            stop,
            sampler,
            outcome,
            fed: 0,
        }
    }

    /// One forward pass: feeds the next token whose logits are not needed (the prompt, or the
    /// whole sequence again from position 0 after deserialization or [`Self::invalidate`]), or
    /// samples one new token. Once finished, returns [`Step::Finished`] without touching
    /// `model`.
    pub fn step<W: Linear>(&mut self, model: &mut Model<W>) -> Result<Step, ForwardError> {
        if let Some(reason) = self.outcome {
            return Ok(Step::Finished(reason));
        }
        // A cache shorter than what we fed was reset or rewound by someone else.
        if self.fed > model.cached_len() {
            self.fed = 0;
        }
        let context_length = model.config().context_length;
        let len = self.prompt.len() + self.generated.len();
        if len == 0 {
            // Only a deserialized value can get here: `new` finishes empty prompts.
            return Ok(self.finish(StopReason::MaxTokens));
        }
        let pos = self.fed;
        if pos >= context_length {
            return Ok(self.finish(StopReason::ContextFull));
        }
        let token = self.token_at(pos);
        if pos + 1 < len {
            // The next token is known (prompt, or a re-fed one): no logits needed.
            model.feed(token, pos)?;
            self.fed = pos + 1;
            return Ok(Step::Prefilled);
        }
        let logits = model.forward(token, pos)?;
        self.fed = pos + 1;
        let next = self.sampler.sample(logits);
        if self.stop.contains(&next) {
            return Ok(self.finish(StopReason::StopToken));
        }
        self.generated.push(next);
        if self.generated.len() >= self.max_new_tokens as usize {
            self.outcome = Some(StopReason::MaxTokens);
        } else if self.fed >= context_length {
            // The new token would be fed at position `fed`, past the context.
            self.outcome = Some(StopReason::ContextFull);
        }
        Ok(Step::Token(next))
    }

    /// The model's cache was used for another sequence: re-feed this one from position 0.
    pub fn invalidate(&mut self) {
        self.fed = 0;
    }

    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// The new tokens so far, without the prompt.
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    pub fn outcome(&self) -> Option<StopReason> {
        self.outcome
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    fn token_at(&self, pos: usize) -> u32 {
        match pos.checked_sub(self.prompt.len()) {
            None => self.prompt[pos],
            Some(i) => self.generated[i],
        }
    }

    fn finish(&mut self, reason: StopReason) -> Step {
        self.outcome = Some(reason);
        Step::Finished(reason)
    }
}

/// Continues `prompt` with up to `max_new_tokens` tokens; see [`Generation`]. Stops before
/// emitting any token in `stop` and when the context is full. Returns only the new tokens and
/// leaves `sampler` advanced past its draws.
pub fn generate<W: Linear>(
    model: &mut Model<W>,
    prompt: &[u32],
    sampler: &mut Sampler,
    max_new_tokens: usize,
    stop: &[u32],
) -> Result<Vec<u32>, ForwardError> {
    let max_new_tokens = u32::try_from(max_new_tokens).unwrap_or(u32::MAX);
    let mut generation = Generation::new(
        prompt.to_vec(),
        max_new_tokens,
        stop.to_vec(),
        sampler.clone(),
    );
    while !generation.is_finished() {
        generation.step(model)?;
    }
    *sampler = generation.sampler;
    Ok(generation.generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::linear::DenseMatrix;
    use crate::model::{Layer, Weights};
    use crate::sample::Rng;
    use alloc::vec;

    const CONTEXT: usize = 12;

    /// A small model with random weights: enough to make every position's logits differ.
    fn model() -> Model<DenseMatrix> {
        let config = Config {
            dim: 8,
            hidden_dim: 16,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 1,
            vocab_size: 16,
            context_length: CONTEXT,
            rope_dim: 4,
            rope_theta: 10_000.0,
            norm_eps: 1e-5,
            tied_embeddings: false,
        };
        let mut rng = Rng::new(5);
        let mut matrix = |rows: usize, cols: usize| {
            let data = (0..rows * cols)
                .map(|_| rng.next_f32() * 2.0 - 1.0)
                .collect();
            DenseMatrix::new(rows, cols, data).unwrap()
        };
        let layers = (0..2)
            .map(|_| Layer {
                attn_norm: vec![1.0; 8],
                wq: matrix(8, 8),
                wk: matrix(4, 8),
                wv: matrix(4, 8),
                wo: matrix(8, 8),
                ffn_norm: vec![1.0; 8],
                w_gate: matrix(16, 8),
                w_up: matrix(16, 8),
                w_down: matrix(8, 16),
            })
            .collect();
        let weights = Weights {
            token_embedding: matrix(16, 8),
            layers,
            output_norm: vec![1.0; 8],
            output: matrix(16, 8),
        };
        Model::new(config, weights).unwrap()
    }

    /// Generation as a plain loop over `Model::forward`, for comparison.
    fn plain_loop(
        model: &mut Model<DenseMatrix>,
        prompt: &[u32],
        sampler: &mut Sampler,
        max: usize,
        stop: &[u32],
    ) -> Vec<u32> {
        model.reset();
        let mut sequence = prompt.to_vec();
        for (pos, &t) in prompt[..prompt.len() - 1].iter().enumerate() {
            model.forward(t, pos).unwrap();
        }
        let mut out = Vec::new();
        while out.len() < max && sequence.len() <= CONTEXT {
            let pos = sequence.len() - 1;
            let next = sampler.sample(model.forward(sequence[pos], pos).unwrap());
            if stop.contains(&next) {
                break;
            }
            out.push(next);
            sequence.push(next);
        }
        out
    }

    fn samplers() -> [Sampler; 2] {
        [Sampler::Greedy, Sampler::top_p(0.9, 0.95, 11)]
    }

    fn run(generation: &mut Generation, model: &mut Model<DenseMatrix>) {
        while !generation.is_finished() {
            generation.step(model).unwrap();
        }
    }

    #[test]
    fn generate_equals_a_plain_loop_and_stops_at_the_context() {
        let mut m = model();
        for sampler in samplers() {
            for (prompt, max) in [(&[1u32, 5, 7][..], 4), (&[3], 6), (&[2, 4, 6, 8, 10], 100)] {
                let expected = plain_loop(&mut m, prompt, &mut sampler.clone(), max, &[]);
                let mut s = sampler.clone();
                let got = generate(&mut m, prompt, &mut s, max, &[]).unwrap();
                assert_eq!(got, expected);
                assert!(got.len() == max || prompt.len() + got.len() == CONTEXT + 1);
                // The caller's sampler advanced exactly as the loop's did.
                let mut after = sampler.clone();
                plain_loop(&mut m, prompt, &mut after, max, &[]);
                assert_eq!(s, after);
            }
        }
        // A stop token ends the generation without being emitted.
        let free = generate(&mut m, &[1, 2], &mut Sampler::Greedy, 5, &[]).unwrap();
        let stopped = generate(&mut m, &[1, 2], &mut Sampler::Greedy, 5, &[free[2]]).unwrap();
        assert_eq!(
            stopped[..],
            free[..free.iter().position(|&t| t == free[2]).unwrap()]
        );
    }

    #[test]
    fn outcomes_say_why_generation_ended() {
        let mut m = model();
        let outcome = |prompt: Vec<u32>, max: u32, stop: Vec<u32>, m: &mut Model<DenseMatrix>| {
            let mut g = Generation::new(prompt, max, stop, Sampler::Greedy);
            run(&mut g, m);
            (g.generated().len(), g.outcome().unwrap())
        };
        assert_eq!(
            outcome(vec![1, 2], 3, vec![], &mut m),
            (3, StopReason::MaxTokens)
        );
        // Positions 4..=11 each yield a token; the last one would be fed at position 12.
        assert_eq!(
            outcome(vec![1; 5], 100, vec![], &mut m),
            (8, StopReason::ContextFull)
        );
        assert_eq!(
            outcome(vec![1; CONTEXT], 100, vec![], &mut m),
            (1, StopReason::ContextFull)
        );
        assert_eq!(
            outcome(vec![1; CONTEXT + 1], 100, vec![], &mut m),
            (0, StopReason::ContextFull)
        );
        let all: Vec<u32> = (0..16).collect();
        assert_eq!(
            outcome(vec![1, 2], 3, all, &mut m),
            (0, StopReason::StopToken)
        );

        // Nothing to continue, or nothing to produce: finished before touching the model.
        m.forward(3, 0).unwrap();
        for (prompt, max) in [(vec![], 10), (vec![1, 2], 0)] {
            let mut g = Generation::new(prompt, max, vec![], Sampler::Greedy);
            assert_eq!(g.outcome(), Some(StopReason::MaxTokens));
            assert_eq!(g.step(&mut m), Ok(Step::Finished(StopReason::MaxTokens)));
            assert_eq!(m.cached_len(), 1);
        }
    }

    #[test]
    fn a_serialized_or_invalidated_generation_continues_with_the_same_tokens() {
        let mut m = model();
        for sampler in samplers() {
            let new = || Generation::new(vec![1, 5, 7], 8, vec![], sampler.clone());
            let mut whole = new();
            run(&mut whole, &mut m);
            assert_eq!(whole.generated().len(), 8);

            let mut first = new();
            for _ in 0..5 {
                first.step(&mut m).unwrap();
            }
            assert_eq!(first.generated().len(), 3, "2 prefill steps, then tokens");
            let mut bytes = Vec::new();
            ciborium::into_writer(&first, &mut bytes).unwrap();
            let mut resumed: Generation = ciborium::from_reader(bytes.as_slice()).unwrap();
            assert_eq!(
                (resumed.prompt(), resumed.generated()),
                (first.prompt(), first.generated())
            );
            // Another sequence uses the model meanwhile.
            generate(&mut m, &[9, 9, 9, 9], &mut Sampler::Greedy, 3, &[]).unwrap();
            let steps: Vec<Step> = (0..6).map(|_| resumed.step(&mut m).unwrap()).collect();
            assert_eq!(
                steps[..5],
                [Step::Prefilled; 5],
                "re-feeds 3 prompt + 2 generated"
            );
            run(&mut resumed, &mut m);
            assert_eq!(resumed.generated(), whole.generated());

            first.invalidate();
            generate(&mut m, &[9, 9], &mut Sampler::Greedy, 2, &[]).unwrap();
            run(&mut first, &mut m);
            assert_eq!(first.generated(), whole.generated());

            // A cache reset behind the generation's back is noticed.
            let mut reset = new();
            for _ in 0..4 {
                reset.step(&mut m).unwrap();
            }
            m.reset();
            run(&mut reset, &mut m);
            assert_eq!(reset.generated(), whole.generated());
        }
    }
}
