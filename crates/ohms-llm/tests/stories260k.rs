//! The f32 reference model on stories260K, a tiny Llama trained on TinyStories.

mod common;

use ohms_llm::load::load_gguf;
use ohms_llm::{Sampler, Tokenizer};

const FIXTURE: &str = "stories260Ktok512.gguf";

fn generate(
    model: &mut ohms_llm::Model<ohms_llm::DenseMatrix>,
    tokenizer: &Tokenizer,
    prompt: &str,
    new_tokens: usize,
) -> Vec<u32> {
    let mut tokens = tokenizer.encode(prompt);
    let mut sampler = Sampler::Greedy;
    model.reset();
    for pos in 0.. {
        let logits = model.forward(tokens[pos], pos).expect("forward");
        if pos + 1 < tokens.len() {
            continue;
        }
        if tokens.len() >= new_tokens + tokenizer.encode(prompt).len() {
            break;
        }
        let next = sampler.sample(logits);
        if Some(next) == tokenizer.eos {
            break;
        }
        tokens.push(next);
    }
    tokens
}

#[test]
fn greedy_continuation_is_fluent() {
    let Some(path) = common::fixture(FIXTURE) else {
        return;
    };
    let (mut model, tokenizer) = load_gguf(&path).expect("load");
    let tokens = generate(&mut model, &tokenizer, "Once upon a time", 60);
    let text = tokenizer.decode(&tokens);
    println!("{text}");
}
