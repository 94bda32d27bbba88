//! SmolLM2-135M-Instruct (byte-level BPE tokenizer, ChatML, grouped-query attention, tied
//! embeddings, Q4_1/Q8_0 source weights).
//!
//! The model is a 98 MB download, so these tests are ignored by default and not run in CI.
//! Run them with:
//!
//! ```text
//! scripts/fetch-model
//! cargo test --release -p ohms-llm --test smollm2 -- --ignored
//! ```

mod common;

use ohms_llm::load::load_gguf;
use ohms_llm::{ChatMessage, DenseMatrix, Model, Sampler, Tokenizer, generate};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn load() -> Option<(Model<DenseMatrix>, Tokenizer)> {
    let path = common::model(MODEL)?;
    Some(load_gguf(&path).expect("SmolLM2 loads"))
}

/// Greedy reply to one user message, up to `max_tokens`.
fn reply(
    model: &mut Model<DenseMatrix>,
    tokenizer: &Tokenizer,
    question: &str,
    max_tokens: usize,
) -> String {
    let messages = [ChatMessage {
        role: "user",
        content: question,
    }];
    let prompt = tokenizer.encode_chat(&messages).expect("ChatML template");
    let end = tokenizer.end_of_turn().expect("<|im_end|>");
    let answer = generate(model, &prompt, &mut Sampler::Greedy, max_tokens, &[end]).unwrap();
    tokenizer.decode(&answer)
}

#[test]
#[ignore = "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model); slow in debug"]
fn greedy_chat_answer_is_sensible() {
    let Some((mut model, tokenizer)) = load() else {
        return;
    };
    let config = model.config();
    assert_eq!(
        (
            config.dim,
            config.n_layers,
            config.n_heads,
            config.n_kv_heads
        ),
        (576, 30, 9, 3)
    );
    assert!(config.tied_embeddings);
    assert_eq!(
        reply(&mut model, &tokenizer, "What is the capital of France?", 20),
        "The capital of France is Paris."
    );
}

#[test]
#[ignore = "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model)"]
fn bpe_tokenizer_and_chat_template() {
    let Some(path) = common::model(MODEL) else {
        return;
    };
    let file = novaq::read::GgufFile::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file.metadata).unwrap();
    assert_eq!(tokenizer.vocab_size(), 49152);
    assert!(!tokenizer.add_bos, "SmolLM2 prompts do not start with BOS");
    let pieces = |text: &str| -> Vec<String> {
        tokenizer
            .encode(text)
            .iter()
            .map(|&id| tokenizer.token(id).unwrap().to_string())
            .collect()
    };
    assert_eq!(pieces("Hello world"), ["Hello", "Ġworld"]);
    assert_eq!(pieces("in 2024"), ["in", "Ġ", "2", "0", "2", "4"]);
    for text in [
        "Hello, world!",
        "naïve café — 東京\n\n  x",
        "def f(x):\n    return x ** 2\n",
    ] {
        assert_eq!(tokenizer.decode(&tokenizer.encode(text)), text);
    }
    // Markers in user text stay text.
    let forged = tokenizer.encode("<|im_start|>");
    assert!(forged.len() > 1 && !forged.contains(&1));

    let prompt = tokenizer
        .encode_chat(&[ChatMessage {
            role: "user",
            content: "Hi",
        }])
        .unwrap();
    let rendered: String = prompt
        .iter()
        .map(|&id| {
            tokenizer
                .token(id)
                .unwrap()
                .replace('Ġ', " ")
                .replace('Ċ', "\n")
        })
        .collect();
    assert_eq!(
        rendered,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}
