//! Generates text from a GGUF model with the f32 reference forward pass and reports speed.
//!
//! cargo run --release -p ohms-llm --example generate -- MODEL.gguf "prompt" [tokens] [--chat]

use std::time::Instant;

use ohms_llm::load::load_gguf;
use ohms_llm::{ChatMessage, Sampler, generate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chat = args.iter().any(|a| a == "--chat");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [path, prompt, rest @ ..] = positional.as_slice() else {
        return Err("usage: generate MODEL.gguf PROMPT [TOKENS] [--chat]".into());
    };
    let new_tokens: usize = rest.first().map_or(Ok(64), |n| n.parse())?;

    let started = Instant::now();
    let (mut model, tokenizer) = load_gguf(path)?;
    eprintln!("loaded in {:.2?}: {:?}", started.elapsed(), model.config());

    let prompt_tokens = if chat {
        let messages = [ChatMessage {
            role: "user",
            content: prompt,
        }];
        tokenizer
            .encode_chat(&messages)
            .ok_or("the model has no ChatML chat template")?
    } else {
        tokenizer.encode(prompt)
    };
    let stop = if chat {
        tokenizer.end_of_turn()
    } else {
        tokenizer.eos
    };
    let started = Instant::now();
    let new = generate(
        &mut model,
        &prompt_tokens,
        &mut Sampler::Greedy,
        new_tokens,
        stop.as_slice(),
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    println!("{}", tokenizer.decode(&new));
    // One forward pass per position now in the KV cache.
    let passes = model.cached_len();
    eprintln!(
        "{passes} forward passes in {elapsed:.2} s: {:.1} tokens/s",
        passes as f64 / elapsed
    );
    Ok(())
}
