//! The model format: written, read back, verified; any flipped byte is caught and named; the
//! bit accounting matches the bytes; the same seed gives the same bytes.

use novaq::Tensor;
use novaq::codec::rng::Rng;
use novaq::codec::{Mode, Options, compress};
use novaq::format::dir::{self, MANIFEST_FILE, ROOT_HASH_FILE};
use novaq::format::write::{ModelInfo, package};
use novaq::format::{Architecture, FormatError, Manifest, TokenizerSpec};
use novaq::report::CompressionReport;
use std::path::PathBuf;

fn model() -> Vec<Tensor> {
    let mut rng = Rng::new(3);
    let mut t = |name: &str, shape: Vec<usize>| {
        let n = shape.iter().product();
        Tensor::new(name, shape, (0..n).map(|_| rng.normal() * 0.05).collect())
    };
    vec![
        t("token_embd.weight", vec![64, 32]),
        t("blk.0.attn_norm.weight", vec![32]),
        t("blk.0.attn_q.weight", vec![32, 32]),
        t("blk.0.ffn_down.weight", vec![32, 96]),
    ]
}

fn info() -> ModelInfo {
    ModelInfo {
        name: "tiny".into(),
        architecture: Some(Architecture {
            family: "llama".into(),
            hidden_size: 32,
            intermediate_size: 96,
            layers: 1,
            heads: 4,
            kv_heads: 4,
            vocab_size: 64,
            context_length: 128,
            rope_dim: 8,
            rope_theta: 10000.0,
            norm_eps: 1e-5,
            tied_embeddings: true,
        }),
        tokenizer: Some(TokenizerSpec {
            model: "llama".into(),
            tokens: (0..64).map(|i| format!("t{i}")).collect(),
            scores: vec![0.0; 64],
            bos: Some(1),
            ..TokenizerSpec::default()
        }),
    }
}

fn options(seed: u64) -> Options {
    let mut o = Options::new(Mode::Additive { books: 2, dim: 8 });
    o.seed = seed;
    o.train_vectors = 2048;
    o.rounds = 1;
    o.kmeans_iterations = 3;
    o
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("novaq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn written_model_reads_back_and_every_flipped_byte_is_caught() {
    let compressed = compress(&model(), &options(1));
    let (manifest, shards) = package(&compressed, info(), 700);
    assert!(shards.len() >= 3, "small shard size splits the stream");
    assert!(shards.iter().all(|s| s.len() <= 700));
    let dir = temp_dir("flip");
    let root = dir::write(&dir, &manifest, &shards).unwrap();
    let files = dir::read_verified(&dir).unwrap();
    assert_eq!(files.manifest, manifest);
    assert_eq!(files.root_hash, root);

    for (i, shard) in shards.iter().enumerate() {
        let path = dir.join(format!("shard-{i:05}.bin"));
        for at in [0, shard.len() / 2, shard.len() - 1] {
            let mut bad = shard.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let err = dir::read_verified(&dir).unwrap_err();
            assert_eq!(err, FormatError::ShardHash { shard: i });
            assert!(err.to_string().contains(&format!("shard-{i:05}.bin")));
        }
        std::fs::write(&path, &shard[..shard.len() - 1]).unwrap();
        assert!(matches!(
            dir::read_verified(&dir).unwrap_err(),
            FormatError::ShardSize { shard, .. } if shard == i
        ));
        std::fs::write(&path, shard).unwrap();
    }
    // A manifest edit breaks the root hash.
    let mut bytes = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(dir.join(MANIFEST_FILE), &bytes).unwrap();
    assert!(matches!(
        dir::read_verified(&dir).unwrap_err(),
        FormatError::RootHash { .. }
    ));
    std::fs::remove_file(dir.join(ROOT_HASH_FILE)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bits_per_weight_counts_every_stored_byte() {
    let compressed = compress(&model(), &options(1));
    let (manifest, shards) = package(&compressed, info(), 1 << 20);
    let manifest_bytes = manifest.to_cbor();
    let report = CompressionReport::new(
        &compressed,
        &manifest,
        manifest_bytes.len() as u64,
        Manifest::root_hash(&manifest_bytes),
        1.0,
    );
    let total: usize = shards.iter().map(Vec::len).sum::<usize>() + manifest_bytes.len();
    let weights: usize = model().iter().map(Tensor::numel).sum();
    assert_eq!(report.stored_bytes as usize, total);
    assert!((report.bits_per_weight - total as f64 * 8.0 / weights as f64).abs() < 1e-12);
    let tensor_bytes: u64 = manifest
        .tensors
        .iter()
        .map(|t| t.location.length)
        .sum::<u64>()
        + manifest
            .codebooks
            .iter()
            .map(|c| c.location.length)
            .sum::<u64>();
    assert_eq!(tensor_bytes, manifest.stored_bytes());
}

#[test]
fn same_seed_same_bytes_other_seed_other_codes() {
    let a = package(&compress(&model(), &options(7)), info(), 1 << 20);
    let b = package(&compress(&model(), &options(7)), info(), 1 << 20);
    let c = package(&compress(&model(), &options(8)), info(), 1 << 20);
    assert_eq!(a.0.to_cbor(), b.0.to_cbor());
    assert_eq!(a.1, b.1);
    assert_ne!(a.1, c.1);
}

#[test]
fn garbage_manifest_is_a_clear_error() {
    assert!(matches!(
        Manifest::from_cbor(b"not cbor at all"),
        Err(FormatError::Cbor(_))
    ));
}
