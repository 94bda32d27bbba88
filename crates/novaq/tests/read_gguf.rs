//! The GGUF reader on hand-built files (every value type, every block encoding, corruptions) and
//! on the stories260K fixture.

use half::{bf16, f16};
use novaq::SourceDType;
use novaq::read::{GgufFile, MetadataValue, ReadErrorKind};

/// Writes GGUF v3 files the way llama.cpp's writer lays them out.
struct GgufWriter {
    metadata: Vec<u8>,
    metadata_count: u64,
    infos: Vec<u8>,
    data: Vec<u8>,
    tensor_count: u64,
}

const ALIGN: usize = 32;

impl GgufWriter {
    fn new() -> Self {
        Self {
            metadata: Vec::new(),
            metadata_count: 0,
            infos: Vec::new(),
            data: Vec::new(),
            tensor_count: 0,
        }
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A metadata entry with an already-encoded value of GGUF type `value_type`.
    fn kv(&mut self, key: &str, value_type: u32, value: &[u8]) -> &mut Self {
        Self::string(&mut self.metadata, key);
        self.metadata.extend(value_type.to_le_bytes());
        self.metadata.extend(value);
        self.metadata_count += 1;
        self
    }

    fn kv_str(&mut self, key: &str, value: &str) -> &mut Self {
        let mut v = Vec::new();
        Self::string(&mut v, value);
        self.kv(key, 8, &v)
    }

    fn kv_u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.kv(key, 4, &value.to_le_bytes())
    }

    /// A tensor; `dims` in GGUF order (fastest-varying first).
    fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, bytes: &[u8]) -> &mut Self {
        let offset = self.data.len().next_multiple_of(ALIGN);
        self.data.resize(offset, 0);
        self.data.extend(bytes);
        Self::string(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ggml_type.to_le_bytes());
        self.infos.extend((offset as u64).to_le_bytes());
        self.tensor_count += 1;
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.tensor_count.to_le_bytes());
        out.extend(self.metadata_count.to_le_bytes());
        out.extend(&self.metadata);
        out.extend(&self.infos);
        out.resize(out.len().next_multiple_of(ALIGN), 0);
        out.extend(&self.data);
        out
    }
}

/// Deterministic test values.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
    /// A float in [-1, 1) that f16 represents exactly.
    fn half(&mut self) -> f16 {
        f16::from_f32((self.below(2048) as f32 - 1024.0) / 1024.0)
    }
}

fn h(x: f16) -> [u8; 2] {
    x.to_bits().to_le_bytes()
}

fn read(bytes: Vec<u8>) -> GgufFile {
    GgufFile::from_bytes("test.gguf", bytes).expect("valid file")
}

fn decode_one(ggml_type: u32, numel: usize, bytes: &[u8]) -> Vec<f32> {
    let file = read(
        GgufWriter::new()
            .tensor("t", &[numel as u64], ggml_type, bytes)
            .build(),
    );
    file.tensor("t").expect("decodes").data
}

fn assert_close(actual: &[f32], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a as f64 - e).abs() <= 1e-6 * e.abs().max(1.0),
            "element {i}: {a} vs {e}"
        );
    }
}

#[test]
fn metadata_of_every_value_type_round_trips() {
    let mut array = Vec::new();
    array.extend(5u32.to_le_bytes()); // i32 elements
    array.extend(3u64.to_le_bytes());
    for v in [-1i32, 0, 7] {
        array.extend(v.to_le_bytes());
    }
    let mut strings = Vec::new();
    strings.extend(8u32.to_le_bytes());
    strings.extend(2u64.to_le_bytes());
    GgufWriter::string(&mut strings, "a b");
    GgufWriter::string(&mut strings, "ĠΩ");
    let mut nested = Vec::new();
    nested.extend(9u32.to_le_bytes());
    nested.extend(1u64.to_le_bytes());
    nested.extend(0u32.to_le_bytes());
    nested.extend(2u64.to_le_bytes());
    nested.extend([4u8, 5]);

    let mut w = GgufWriter::new();
    w.kv("u8", 0, &[200])
        .kv("i8", 1, &(-3i8).to_le_bytes())
        .kv("u16", 2, &60000u16.to_le_bytes())
        .kv("i16", 3, &(-300i16).to_le_bytes())
        .kv_u32("u32", 4_000_000_000)
        .kv("i32", 5, &(-5i32).to_le_bytes())
        .kv("f32", 6, &1.5f32.to_le_bytes())
        .kv("bool", 7, &[1])
        .kv_str("string", "llama")
        .kv("array", 9, &array)
        .kv("strings", 9, &strings)
        .kv("nested", 9, &nested)
        .kv("u64", 10, &u64::MAX.to_le_bytes())
        .kv("i64", 11, &i64::MIN.to_le_bytes())
        .kv("f64", 12, &0.25f64.to_le_bytes());
    let file = read(w.build());
    let m = &file.metadata;
    assert_eq!(m.len(), 15);
    assert_eq!(m.get("u8"), Some(&MetadataValue::U8(200)));
    assert_eq!(m.get("i8"), Some(&MetadataValue::I8(-3)));
    assert_eq!(m.get_u64("u16"), Some(60000));
    assert_eq!(m.get("i16"), Some(&MetadataValue::I16(-300)));
    assert_eq!(m.get_u64("u32"), Some(4_000_000_000));
    assert_eq!(m.get_u64("i32"), None, "negative is not unsigned");
    assert_eq!(m.get_f64("f32"), Some(1.5));
    assert_eq!(m.get_bool("bool"), Some(true));
    assert_eq!(m.get_str("string"), Some("llama"));
    assert_eq!(m.get_i64_array("array"), Some(vec![-1, 0, 7]));
    assert_eq!(m.get_str_array("strings"), Some(vec!["a b", "ĠΩ"]));
    assert_eq!(
        m.get("nested"),
        Some(&MetadataValue::Array(vec![MetadataValue::Array(vec![
            MetadataValue::U8(4),
            MetadataValue::U8(5)
        ])]))
    );
    assert_eq!(m.get_u64("u64"), Some(u64::MAX));
    assert_eq!(m.get("i64"), Some(&MetadataValue::I64(i64::MIN)));
    assert_eq!(m.get_f64("f64"), Some(0.25));
}

#[test]
fn shapes_are_reversed_into_row_major_order() {
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let file = read(GgufWriter::new().tensor("w", &[3, 2], 0, &data).build());
    let t = file.tensor("w").unwrap();
    assert_eq!(t.shape, vec![2, 3]);
    assert_eq!((t.rows(), t.cols()), (2, 3));
    assert_eq!(t.row(1), &[3.0, 4.0, 5.0]);
    assert_eq!(t.source_dtype, SourceDType::F32);
}

#[test]
fn f16_and_bf16_decode_exactly() {
    let values = [0.5f32, -2.0, 65504.0, 1.0e-3];
    let f16_bytes: Vec<u8> = values.iter().flat_map(|&v| h(f16::from_f32(v))).collect();
    let expected: Vec<f64> = values.iter().map(|&v| f16::from_f32(v).to_f64()).collect();
    assert_close(&decode_one(1, 4, &f16_bytes), &expected);
    let bf_bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let expected: Vec<f64> = values.iter().map(|&v| bf16::from_f32(v).to_f64()).collect();
    assert_close(&decode_one(30, 4, &bf_bytes), &expected);
}

#[test]
fn q8_0_blocks_decode_to_scale_times_quant() {
    let mut rng = Lcg(1);
    let (mut bytes, mut expected) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let d = rng.half();
        bytes.extend(h(d));
        for _ in 0..32 {
            let q = rng.below(256) as u8 as i8;
            bytes.push(q as u8);
            expected.push(d.to_f64() * q as f64);
        }
    }
    assert_close(&decode_one(8, 96, &bytes), &expected);
}

/// Packs 32 four-bit values as ggml's Q4_0/Q4_1 do: element j in the low nibble of byte j,
/// element j + 16 in its high nibble.
fn pack_q4_32(q: &[u8; 32]) -> Vec<u8> {
    (0..16).map(|j| q[j] | (q[j + 16] << 4)).collect()
}

#[test]
fn q4_0_and_q4_1_blocks_decode_with_their_offsets() {
    let mut rng = Lcg(2);
    let (mut q4_0, mut q4_0_expected) = (Vec::new(), Vec::new());
    let (mut q4_1, mut q4_1_expected) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (d, m) = (rng.half(), rng.half());
        let q: [u8; 32] = std::array::from_fn(|_| rng.below(16) as u8);
        q4_0.extend(h(d));
        q4_0.extend(pack_q4_32(&q));
        q4_1.extend(h(d));
        q4_1.extend(h(m));
        q4_1.extend(pack_q4_32(&q));
        for &qi in &q {
            q4_0_expected.push(d.to_f64() * (qi as f64 - 8.0));
            q4_1_expected.push(d.to_f64() * qi as f64 + m.to_f64());
        }
    }
    assert_close(&decode_one(2, 64, &q4_0), &q4_0_expected);
    assert_close(&decode_one(3, 64, &q4_1), &q4_1_expected);
}

/// Builds one Q4_K block from its logical content: eight sub-blocks of 32 values, each with a
/// 6-bit scale and min. Returns the bytes and the values ggml defines them to mean.
fn q4_k_block(rng: &mut Lcg) -> (Vec<u8>, Vec<f64>) {
    let (d, dmin) = (rng.half(), rng.half());
    let sc: [u8; 8] = std::array::from_fn(|_| rng.below(64) as u8);
    let mn: [u8; 8] = std::array::from_fn(|_| rng.below(64) as u8);
    let q: [u8; 256] = std::array::from_fn(|_| rng.below(16) as u8);
    // Scales: sub-blocks 0..4 in the low 6 bits of bytes 0..4 (scale) and 4..8 (min);
    // sub-blocks 4..8 split into low nibbles in bytes 8..12 and top two bits in the spare
    // bits 6..8 of bytes 0..8.
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    // Quants: element e sits in byte 32·(e / 64) + e % 32, low nibble for the first 32 of
    // each 64.
    let mut qs = [0u8; 128];
    for (e, &qe) in q.iter().enumerate() {
        let byte = 32 * (e / 64) + e % 32;
        qs[byte] |= if e % 64 < 32 { qe } else { qe << 4 };
    }
    let mut bytes = Vec::new();
    bytes.extend(h(d));
    bytes.extend(h(dmin));
    bytes.extend(scales);
    bytes.extend(qs);
    let values = (0..256)
        .map(|e| d.to_f64() * sc[e / 32] as f64 * q[e] as f64 - dmin.to_f64() * mn[e / 32] as f64)
        .collect();
    (bytes, values)
}

/// Builds one Q6_K block from its logical content: sixteen sub-blocks of 16 values with i8
/// scales, 6-bit quants offset by 32.
fn q6_k_block(rng: &mut Lcg) -> (Vec<u8>, Vec<f64>) {
    let d = rng.half();
    let sc: [i8; 16] = std::array::from_fn(|_| rng.below(256) as u8 as i8);
    let q: [u8; 256] = std::array::from_fn(|_| rng.below(64) as u8);
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    let mut scale_of = [0usize; 256];
    // Each half of 128 values is four groups of 32; group g of position l takes the low nibble
    // of ql[l + 32·(g % 2)] (high nibble for g ≥ 2), bits 2g..2g+2 of qh[l], scale l/16 + 2g.
    for (e, &qe) in q.iter().enumerate() {
        let (half, group, l) = (e / 128, (e % 128) / 32, e % 32);
        let low = &mut ql[64 * half + l + 32 * (group % 2)];
        *low |= if group < 2 { qe & 15 } else { (qe & 15) << 4 };
        qh[32 * half + l] |= (qe >> 4) << (2 * group);
        scale_of[e] = 8 * half + l / 16 + 2 * group;
    }
    let mut bytes = Vec::new();
    bytes.extend(ql);
    bytes.extend(qh);
    bytes.extend(sc.map(|s| s as u8));
    bytes.extend(h(d));
    let values = (0..256)
        .map(|e| d.to_f64() * sc[scale_of[e]] as f64 * (q[e] as f64 - 32.0))
        .collect();
    (bytes, values)
}

#[test]
fn q4_k_blocks_decode_to_scaled_quants_minus_scaled_mins() {
    let mut rng = Lcg(3);
    let (a, a_values) = q4_k_block(&mut rng);
    let (b, b_values) = q4_k_block(&mut rng);
    let expected: Vec<f64> = a_values.into_iter().chain(b_values).collect();
    let decoded = decode_one(12, 512, &[a, b].concat());
    assert_close(&decoded, &expected);
}

#[test]
fn q6_k_blocks_decode_to_scaled_centred_quants() {
    let mut rng = Lcg(4);
    let (a, a_values) = q6_k_block(&mut rng);
    let (b, b_values) = q6_k_block(&mut rng);
    let expected: Vec<f64> = a_values.into_iter().chain(b_values).collect();
    assert_close(&decode_one(14, 512, &[a, b].concat()), &expected);
}

/// A small valid file with metadata, a quantized and a float tensor.
fn small_file() -> Vec<u8> {
    let mut rng = Lcg(5);
    let (q4k, _) = q4_k_block(&mut rng);
    let floats: Vec<u8> = (0..4).flat_map(|i| (i as f32).to_le_bytes()).collect();
    GgufWriter::new()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 1)
        .tensor("a", &[256], 12, &q4k)
        .tensor("b", &[2, 2], 0, &floats)
        .build()
}

#[test]
fn truncation_at_every_position_is_an_error() {
    let bytes = small_file();
    read(bytes.clone())
        .read_tensors()
        .expect("the whole file is valid");
    for len in 0..bytes.len() {
        let result = GgufFile::from_bytes("cut.gguf", bytes[..len].to_vec());
        let err = result.expect_err(&format!("a file cut to {len} bytes must be rejected"));
        assert!(err.to_string().starts_with("cut.gguf: "), "{err}");
    }
}

#[test]
fn any_corrupted_byte_is_an_error_or_a_valid_read_never_a_panic() {
    let bytes = small_file();
    for at in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            // Data bytes may change values without making the file invalid; header bytes must
            // give an error. Either way decoding every tensor must not panic.
            if let Ok(file) = GgufFile::from_bytes("flipped.gguf", bad) {
                let _ = file.read_tensors();
            }
        }
    }
}

/// Offset of the first tensor info (after the two metadata entries of `small_file`).
fn first_info_offset(bytes: &[u8]) -> usize {
    let needle = b"\x01\x00\x00\x00\x00\x00\x00\x00a";
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

fn corrupt(at: usize, value: &[u8]) -> ReadErrorKind {
    let mut bytes = small_file();
    bytes[at..at + value.len()].copy_from_slice(value);
    GgufFile::from_bytes("bad.gguf", bytes)
        .expect_err("corrupted file must be rejected")
        .kind
}

#[test]
fn corrupted_header_fields_give_typed_errors() {
    let bytes = small_file();
    let info = first_info_offset(&bytes);
    // Tensor info: name length (8) + "a" + n_dims (4) + dim (8) + type (4) + offset (8).
    let (n_dims_at, dim_at, type_at, offset_at) = (info + 9, info + 13, info + 21, info + 25);

    assert!(matches!(
        corrupt(0, b"GGML"),
        ReadErrorKind::BadMagic { .. }
    ));
    assert!(matches!(
        corrupt(4, &7u32.to_le_bytes()),
        ReadErrorKind::UnsupportedVersion { version: 7, .. }
    ));
    assert!(matches!(
        corrupt(8, &u64::MAX.to_le_bytes()),
        ReadErrorKind::AbsurdCount { .. }
    ));
    assert!(matches!(
        corrupt(16, &(1u64 << 40).to_le_bytes()),
        ReadErrorKind::AbsurdCount { .. }
    ));
    // The first metadata key's length.
    assert!(matches!(
        corrupt(24, &u64::MAX.to_le_bytes()),
        ReadErrorKind::Truncated { .. }
    ));
    // The first metadata value type (after the 20-byte key).
    let key_len = "general.architecture".len();
    assert!(matches!(
        corrupt(32 + key_len, &99u32.to_le_bytes()),
        ReadErrorKind::UnknownValueType(99)
    ));
    assert!(matches!(
        corrupt(n_dims_at, &9u32.to_le_bytes()),
        ReadErrorKind::AbsurdCount { .. }
    ));
    assert!(matches!(
        corrupt(dim_at, &255u64.to_le_bytes()),
        ReadErrorKind::BadShape { .. }
    ));
    assert!(matches!(
        corrupt(dim_at, &(1u64 << 62).to_le_bytes()),
        ReadErrorKind::BadShape { .. }
    ));
    assert!(matches!(
        corrupt(type_at, &13u32.to_le_bytes()),
        ReadErrorKind::UnsupportedDType(_)
    ));
    assert!(matches!(
        corrupt(offset_at, &(1u64 << 20).to_le_bytes()),
        ReadErrorKind::OffsetOutOfRange { .. }
    ));
    assert!(matches!(
        corrupt(offset_at, &4u64.to_le_bytes()),
        ReadErrorKind::InvalidHeader(_)
    ));
    // Renaming tensor "a" to "b" duplicates the second tensor's name.
    assert!(matches!(
        corrupt(info + 8, b"b"),
        ReadErrorKind::Duplicate { .. }
    ));
}

#[test]
fn errors_name_the_file_and_tensor() {
    let bytes = small_file();
    let info = first_info_offset(&bytes);
    let mut bad = bytes.clone();
    bad[info + 21..info + 25].copy_from_slice(&13u32.to_le_bytes());
    let err = GgufFile::from_bytes("model.gguf", bad).unwrap_err();
    assert_eq!(err.tensor.as_deref(), Some("a"));
    assert_eq!(
        err.to_string(),
        "model.gguf: tensor \"a\": unsupported tensor type ggml type 13"
    );
    let missing = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(matches!(missing.kind, ReadErrorKind::Io(_)));
    assert!(missing.to_string().starts_with("/nonexistent/model.gguf: "));
}

/// The fixture at `$OHMS_FIXTURES` or `<repo>/../shared/fixtures`; missing fails under CI and
/// skips with a notice elsewhere.
fn fixture(name: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("OHMS_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    let path = dir.join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "required fixture {} is missing",
        path.display()
    );
    eprintln!("skipping: {} is not present", path.display());
    None
}

#[test]
fn stories260k_header_tensors_and_metadata() {
    let Some(path) = fixture("stories260Ktok512.gguf") else {
        return;
    };
    let file = GgufFile::open(&path).expect("fixture reads");
    assert_eq!(file.version, 3);
    assert_eq!(file.tensors.len(), 48);
    let m = &file.metadata;
    assert_eq!(m.get_str("general.architecture"), Some("llama"));
    assert_eq!(m.get_u64("llama.embedding_length"), Some(64));
    assert_eq!(m.get_u64("llama.block_count"), Some(5));
    assert_eq!(m.get_u64("llama.attention.head_count"), Some(8));
    assert_eq!(m.get_u64("llama.attention.head_count_kv"), Some(4));
    assert_eq!(m.get_u64("llama.feed_forward_length"), Some(172));
    assert_eq!(m.get_str("tokenizer.ggml.model"), Some("llama"));
    assert_eq!(
        m.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()),
        Some(512)
    );
    let shape = |name: &str| file.tensor_info(name).map(|t| t.shape.clone());
    assert_eq!(shape("token_embd.weight"), Some(vec![512, 64]));
    assert_eq!(shape("blk.0.attn_k.weight"), Some(vec![32, 64]));
    assert_eq!(shape("blk.4.ffn_down.weight"), Some(vec![64, 172]));
    assert_eq!(shape("output_norm.weight"), Some(vec![64]));
    let tensors = file.read_tensors().expect("tensors decode");
    let params: usize = tensors.iter().map(|t| t.numel()).sum();
    // 2 × 512·64 (embedding, output) + 64 + 5 × (2·64·64 + 2·32·64 + 3·172·64 + 2·64)
    assert_eq!(params, 292_800);
    assert!(tensors.iter().all(|t| t.source_dtype == SourceDType::F32));
    assert!(tensors.iter().all(|t| t.data.iter().all(|x| x.is_finite())));
}
