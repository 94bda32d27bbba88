//! stories260K compressed by NOVAQ, as an agent canister receives it: a CBOR manifest carrying the
//! architecture and tokenizer, plus shards. Loading, tokenizing and resumable generation.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use novaq::Tensor;
use novaq::codec::{Mode, Options, compress};
use novaq::format::write::{ModelInfo, package};
use novaq::format::{Codec, Manifest};
use novaq::kernel::{ModelReader, QuantizedMatrix};
use novaq::read::{GgufFile, Metadata, MetadataValue};
use ohms_llm::load::{load_model, load_model_with};
use ohms_llm::tokenizer::spec_from_gguf;
use ohms_llm::{
    ChatMessage, Config, DenseMatrix, Generation, LoadError, Model, Sampler, Step, StopReason,
    Tokenizer, generate, load_novaq,
};

const FIXTURE: &str = "stories260Ktok512.gguf";

struct Compressed {
    file: GgufFile,
    tensors: Vec<Tensor>,
    manifest_bytes: Vec<u8>,
    shards: Vec<Vec<u8>>,
}

impl Compressed {
    fn manifest(&self) -> Manifest {
        Manifest::from_cbor(&self.manifest_bytes).expect("manifest parses")
    }

    fn shards(&self) -> Vec<&[u8]> {
        self.shards.iter().map(Vec::as_slice).collect()
    }

    fn model(&self) -> Model<QuantizedMatrix> {
        load_novaq(&self.manifest(), self.shards()).expect("compressed model loads")
    }

    fn reference(&self) -> Model<DenseMatrix> {
        load_model(&self.file.metadata, self.tensors.clone()).expect("reference loads")
    }

    fn tokenizer(&self) -> Tokenizer {
        let spec = self
            .manifest()
            .tokenizer
            .expect("the manifest has the tokenizer");
        Tokenizer::from_spec(&spec).expect("tokenizer builds")
    }
}

/// The fixture compressed in "4bit" mode, once per test binary (compression takes a while).
fn compressed() -> Option<&'static Compressed> {
    static COMPRESSED: OnceLock<Option<Compressed>> = OnceLock::new();
    COMPRESSED
        .get_or_init(|| {
            let path = common::fixture(FIXTURE)?;
            let file = GgufFile::open(path).expect("fixture reads");
            let tensors = file.read_tensors().expect("tensors decode");
            let has_output = tensors.iter().any(|t| t.name == "output.weight");
            let config = Config::from_gguf(&file.metadata, has_output).unwrap();
            let options = Options::new(Mode::parse("4bit", None).unwrap());
            let info = ModelInfo {
                name: "stories260K".into(),
                architecture: Some(config.to_architecture()),
                tokenizer: Some(spec_from_gguf(&file.metadata).unwrap()),
            };
            // Small shards, so tensors straddle shard boundaries.
            let (manifest, shards) = package(&compress(&tensors, &options), info, 16 << 10);
            assert!(shards.len() > 4);
            Some(Compressed {
                manifest_bytes: manifest.to_cbor(),
                file,
                tensors,
                shards,
            })
        })
        .as_ref()
}

/// How the CLI's `ohms novaq eval` built the compressed model before `load_novaq` existed.
fn previous_cli_construction(c: &Compressed) -> Model<QuantizedMatrix> {
    let manifest = c.manifest();
    let a = manifest.architecture.as_ref().unwrap();
    let config = Config {
        dim: a.hidden_size as usize,
        hidden_dim: a.intermediate_size as usize,
        n_layers: a.layers as usize,
        n_heads: a.heads as usize,
        n_kv_heads: a.kv_heads as usize,
        vocab_size: a.vocab_size as usize,
        context_length: a.context_length as usize,
        rope_dim: a.rope_dim as usize,
        rope_theta: a.rope_theta,
        norm_eps: a.norm_eps,
        tied_embeddings: a.tied_embeddings,
    };
    let mut reader = ModelReader::new(&manifest, c.shards()).unwrap();
    let mut matrices = BTreeMap::new();
    let mut tensors = Vec::new();
    for entry in &manifest.tensors {
        let shape: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
        let is_matrix = shape.len() == 2 && entry.name != "token_embd.weight";
        let data = if is_matrix && entry.codec != Codec::F32 {
            matrices.insert(entry.name.clone(), reader.matrix(&entry.name).unwrap());
            Vec::new()
        } else {
            if is_matrix {
                matrices.insert(entry.name.clone(), reader.matrix(&entry.name).unwrap());
            }
            reader.values(&entry.name).unwrap()
        };
        tensors.push(Tensor::new(entry.name.clone(), shape, data));
    }
    if config.tied_embeddings {
        matrices.insert(
            "output.weight".into(),
            reader.matrix("token_embd.weight").unwrap(),
        );
    }
    load_model_with(config, tensors, |t| matrices.remove(&t.name).unwrap()).unwrap()
}

fn logits_bits<W: ohms_llm::Linear>(model: &mut Model<W>, tokens: &[u32]) -> Vec<u32> {
    model.reset();
    let mut bits = Vec::new();
    for (pos, &t) in tokens.iter().enumerate() {
        bits.extend(model.forward(t, pos).unwrap().iter().map(|x| x.to_bits()));
    }
    bits
}

const TEXTS: [&str; 6] = [
    "Once upon a time",
    "Lily said, \"Hi!\"\nThey played.",
    "  two leading spaces",
    "héllo wörld 🌍 — ok",
    "The cat sat on the mat. 123",
    "",
];

fn same_tokenizer(a: &Tokenizer, b: &Tokenizer) {
    assert_eq!(a.vocab_size(), b.vocab_size());
    assert_eq!(
        (a.bos, a.eos, a.unk, a.pad, a.add_bos),
        (b.bos, b.eos, b.unk, b.pad, b.add_bos)
    );
    for text in TEXTS {
        let ids = a.encode(text);
        assert_eq!(ids, b.encode(text), "{text:?}");
        assert_eq!(a.decode(&ids), b.decode(&ids), "{text:?}");
        assert_eq!(
            a.decode(&ids[ids.len().min(1)..]),
            b.decode(&ids[ids.len().min(1)..])
        );
    }
    let chat = [
        ChatMessage {
            role: "system",
            content: "Tell stories.",
        },
        ChatMessage {
            role: "user",
            content: "A story about a cat, please.",
        },
    ];
    assert_eq!(a.encode_chat(&chat), b.encode_chat(&chat));
    assert_eq!(a.end_of_turn(), b.end_of_turn());
}

fn set(m: &mut Metadata, key: &str, value: MetadataValue) {
    m.insert(key.into(), value);
}

/// The fixture's metadata with ChatML markers in place of its last two tokens and a ChatML
/// template, so chat encoding has something to compare.
fn with_chatml(metadata: &Metadata) -> Metadata {
    let mut m = metadata.clone();
    let mut tokens: Vec<MetadataValue> = m.get_array("tokenizer.ggml.tokens").unwrap().to_vec();
    let n = tokens.len();
    tokens[n - 2] = MetadataValue::String("<|im_start|>".into());
    tokens[n - 1] = MetadataValue::String("<|im_end|>".into());
    set(
        &mut m,
        "tokenizer.ggml.tokens",
        MetadataValue::Array(tokens),
    );
    let mut types: Vec<MetadataValue> = m.get_array("tokenizer.ggml.token_type").unwrap().to_vec();
    types[n - 2] = MetadataValue::I32(3);
    types[n - 1] = MetadataValue::I32(3);
    set(
        &mut m,
        "tokenizer.ggml.token_type",
        MetadataValue::Array(types),
    );
    set(
        &mut m,
        "tokenizer.chat_template",
        MetadataValue::String(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
             {% endfor %}"
                .into(),
        ),
    );
    m
}

#[test]
fn the_manifest_tokenizer_is_the_gguf_tokenizer() {
    let Some(c) = compressed() else { return };
    let metadata = &c.file.metadata;
    let spec = spec_from_gguf(metadata).unwrap();
    assert_eq!(
        c.manifest().tokenizer.as_ref(),
        Some(&spec),
        "survives CBOR"
    );
    let from_gguf = Tokenizer::from_gguf(metadata).unwrap();
    same_tokenizer(&c.tokenizer(), &from_gguf);
    assert_eq!(
        from_gguf.encode("Once upon a time")[0],
        1,
        "starts with BOS"
    );

    let chatml = with_chatml(metadata);
    let from_gguf = Tokenizer::from_gguf(&chatml).unwrap();
    let from_spec = Tokenizer::from_spec(&spec_from_gguf(&chatml).unwrap()).unwrap();
    assert!(from_gguf.encode_chat(&[]).is_some());
    assert_eq!(from_gguf.end_of_turn(), Some(511));
    same_tokenizer(&from_spec, &from_gguf);

    // add_space_prefix is recorded: without it the text's first word has no `▁`.
    let mut no_prefix = metadata.clone();
    set(
        &mut no_prefix,
        "tokenizer.ggml.add_space_prefix",
        MetadataValue::Bool(false),
    );
    let spec = spec_from_gguf(&no_prefix).unwrap();
    assert_eq!(spec.add_space_prefix, Some(false));
    let from_gguf = Tokenizer::from_gguf(&no_prefix).unwrap();
    same_tokenizer(&Tokenizer::from_spec(&spec).unwrap(), &from_gguf);
    assert_ne!(from_gguf.encode("Once"), c.tokenizer().encode("Once"));
}

#[test]
fn load_novaq_builds_the_model_the_cli_built_and_it_tracks_the_reference() {
    let Some(c) = compressed() else { return };
    let tokenizer = c.tokenizer();
    let prompt = tokenizer.encode("Once upon a time, a little dog");
    let mut model = c.model();
    let mut previous = previous_cli_construction(c);
    assert_eq!(
        logits_bits(&mut model, &prompt),
        logits_bits(&mut previous, &prompt)
    );
    let stop = [tokenizer.eos.unwrap()];
    let generated = generate(&mut model, &prompt, &mut Sampler::Greedy, 40, &stop).unwrap();
    assert_eq!(
        generated,
        generate(&mut previous, &prompt, &mut Sampler::Greedy, 40, &stop).unwrap()
    );
    assert!(!generated.is_empty());
    println!(
        "4bit: {}",
        tokenizer.decode(&[prompt.clone(), generated].concat())
    );

    // 4 bits per weight keeps the most likely next token on most positions of a story.
    let text = tokenizer.encode(
        "Once upon a time, there was a little girl named Lily. She loved to play outside in \
         the park. One day, she saw a big, red ball. She wanted to play with it.",
    );
    let mut reference = c.reference();
    let (mut agree, vocab) = (0, model.config().vocab_size);
    let (ours, theirs) = (
        logits_bits(&mut model, &text),
        logits_bits(&mut reference, &text),
    );
    for (a, b) in ours.chunks(vocab).zip(theirs.chunks(vocab)) {
        let argmax = |bits: &[u32]| {
            let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            ohms_llm::sample::argmax(&values)
        };
        agree += usize::from(argmax(a) == argmax(b));
    }
    let agreement = agree as f64 / text.len() as f64;
    println!(
        "4bit top-1 agreement with the f32 reference: {agreement:.3} over {}",
        text.len()
    );
    assert!(agreement >= 0.8, "top-1 agreement {agreement}");
}

#[test]
fn a_tied_output_projection_reuses_the_embedding_codes() {
    let Some(c) = compressed() else { return };
    let mut tensors = c.tensors.clone();
    tensors.retain(|t| t.name != "output.weight");
    let mut config = c.reference().config().clone();
    config.tied_embeddings = true;
    let info = ModelInfo {
        name: "stories260K-tied".into(),
        architecture: Some(config.to_architecture()),
        tokenizer: None,
    };
    let options = Options::new(Mode::parse("4bit", None).unwrap());
    let (manifest, shards) = package(&compress(&tensors, &options), info, 16 << 10);
    let tied = Compressed {
        file: GgufFile::open(common::fixture(FIXTURE).unwrap()).unwrap(),
        tensors,
        manifest_bytes: manifest.to_cbor(),
        shards,
    };
    let mut model = tied.model();
    assert!(model.config().tied_embeddings);
    let embedding = model.weights().token_embedding.data().to_vec();
    let output = model.weights().output.dequantize();
    assert_eq!(
        output, embedding,
        "the output decodes to the embedding table"
    );
    let prompt = c.tokenizer().encode("Once upon a time");
    let mut previous = previous_cli_construction(&tied);
    assert_eq!(
        logits_bits(&mut model, &prompt),
        logits_bits(&mut previous, &prompt)
    );
}

#[test]
fn load_novaq_explains_what_is_wrong() {
    let Some(c) = compressed() else { return };
    let mut manifest = c.manifest();
    assert!(matches!(
        load_novaq(&manifest, c.shards()[1..].to_vec()),
        Err(LoadError::Format(_))
    ));
    manifest.architecture.as_mut().unwrap().family = "gpt2".into();
    assert!(matches!(
        load_novaq(&manifest, c.shards()),
        Err(LoadError::Config(_))
    ));
    manifest.architecture = None;
    let err = load_novaq(&manifest, c.shards()).err().unwrap();
    assert_eq!(err, LoadError::NoArchitecture);
    assert!(err.to_string().contains("no architecture"), "{err}");
}

/// Runs `generation` to the end, returning every step.
fn finish<W: ohms_llm::Linear>(generation: &mut Generation, model: &mut Model<W>) -> Vec<Step> {
    let mut steps = Vec::new();
    while !generation.is_finished() {
        steps.push(generation.step(model).unwrap());
    }
    steps
}

fn cbor_round_trip(generation: &Generation) -> Generation {
    let mut bytes = Vec::new();
    ciborium::into_writer(generation, &mut bytes).unwrap();
    ciborium::from_reader(bytes.as_slice()).unwrap()
}

#[test]
fn a_paused_generation_resumes_with_the_uninterrupted_tokens() {
    let Some(c) = compressed() else { return };
    let tokenizer = c.tokenizer();
    let mut model = c.model();
    let prompt = tokenizer.encode("Tom had a red dog");
    let stop = vec![tokenizer.eos.unwrap()];
    for sampler in [Sampler::Greedy, Sampler::top_p(0.8, 0.9, 2024)] {
        let new = || Generation::new(prompt.clone(), 30, stop.clone(), sampler.clone());
        let mut uninterrupted = new();
        finish(&mut uninterrupted, &mut model);
        let expected = uninterrupted.generated().to_vec();
        assert_eq!(
            expected,
            generate(&mut model, &prompt, &mut sampler.clone(), 30, &stop).unwrap()
        );
        assert!(expected.len() > 10, "{expected:?}");

        // Pause after every step count from mid-prompt to mid-answer.
        for pause_after in [2, prompt.len() + 3, prompt.len() + 12] {
            let mut first = new();
            for _ in 0..pause_after {
                first.step(&mut model).unwrap();
            }
            let mut resumed = cbor_round_trip(&first);
            assert_eq!(
                (resumed.prompt(), resumed.generated()),
                (first.prompt(), first.generated())
            );
            // The canister answers another request in between.
            generate(
                &mut model,
                &tokenizer.encode("Sue"),
                &mut Sampler::Greedy,
                5,
                &[],
            )
            .unwrap();
            let steps = finish(&mut resumed, &mut model);
            if !first.is_finished() {
                let refed = prompt.len() + first.generated().len() - 1;
                assert!(steps[..refed].iter().all(|s| *s == Step::Prefilled));
                assert!(matches!(steps[refed], Step::Token(_)));
            }
            assert_eq!(resumed.generated(), expected, "paused after {pause_after}");
            assert_eq!(resumed.outcome(), uninterrupted.outcome());
        }

        // Invalidated in the middle: re-feeds from position 0 and carries on.
        let mut interrupted = new();
        for _ in 0..prompt.len() + 6 {
            interrupted.step(&mut model).unwrap();
        }
        generate(&mut model, &prompt[..3], &mut Sampler::Greedy, 4, &[]).unwrap();
        interrupted.invalidate();
        finish(&mut interrupted, &mut model);
        assert_eq!(interrupted.generated(), expected);
        assert_eq!(interrupted, uninterrupted);
    }
}

#[test]
fn generation_stops_at_the_context_length_without_an_error() {
    let Some(c) = compressed() else { return };
    let mut model = c.model();
    let context = model.config().context_length;
    let prompt = c.tokenizer().encode("Once upon a time");
    let mut g = Generation::new(prompt.clone(), 1000, vec![], Sampler::top_p(1.0, 0.95, 7));
    finish(&mut g, &mut model);
    assert_eq!(g.outcome(), Some(StopReason::ContextFull));
    assert_eq!(prompt.len() + g.generated().len(), context + 1);
    assert_eq!(
        g.step(&mut model),
        Ok(Step::Finished(StopReason::ContextFull))
    );
}
