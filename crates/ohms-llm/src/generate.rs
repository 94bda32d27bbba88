//! Text generation: feed a prompt, then sample until a stop token or a length limit.

use alloc::vec::Vec;

use crate::linear::Linear;
use crate::model::{ForwardError, Model};
use crate::sample::Sampler;

/// Continues `prompt` with up to `max_new_tokens` tokens, starting from an empty KV cache.
/// Stops before emitting any token in `stop` (end of turn, EOS). Returns only the new tokens.
pub fn generate<W: Linear>(
    model: &mut Model<W>,
    prompt: &[u32],
    sampler: &mut Sampler,
    max_new_tokens: usize,
    stop: &[u32],
) -> Result<Vec<u32>, ForwardError> {
    model.reset();
    let mut generated = Vec::new();
    let Some((&last, context)) = prompt.split_last() else {
        return Ok(generated);
    };
    for (pos, &token) in context.iter().enumerate() {
        model.forward(token, pos)?;
    }
    let mut token = last;
    let mut pos = context.len();
    while generated.len() < max_new_tokens {
        let next = sampler.sample(model.forward(token, pos)?);
        if stop.contains(&next) {
            break;
        }
        generated.push(next);
        token = next;
        pos += 1;
    }
    Ok(generated)
}
