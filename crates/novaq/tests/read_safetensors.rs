//! The safetensors reader on hand-built files.

use half::{bf16, f16};
use novaq::SourceDType;
use novaq::read::{ReadErrorKind, SafetensorsFile};

fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn sample() -> Vec<u8> {
    let mut data = Vec::new();
    data.extend([1.0f32, -2.0, 3.5].iter().flat_map(|v| v.to_le_bytes()));
    data.extend(
        [0.5f32, 8.0]
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes()),
    );
    data.extend(
        [-1.25f32, 3.0e9]
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_bits().to_le_bytes()),
    );
    let header = r#"{
        "__metadata__": {"format": "pt"},
        "bf": {"dtype": "BF16", "shape": [2, 1], "data_offsets": [16, 20]},
        "a": {"dtype": "F32", "shape": [1, 3], "data_offsets": [0, 12]},
        "h": {"dtype": "F16", "shape": [2], "data_offsets": [12, 16]}
    }"#;
    file(header, &data)
}

fn kind_of(bytes: Vec<u8>) -> ReadErrorKind {
    SafetensorsFile::from_bytes("bad.safetensors", bytes)
        .expect_err("must be rejected")
        .kind
}

#[test]
fn reads_f32_f16_bf16_and_metadata() {
    let f = SafetensorsFile::from_bytes("m.safetensors", sample()).unwrap();
    assert_eq!(f.metadata.get_str("format"), Some("pt"));
    let names: Vec<&str> = f.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "h", "bf"], "data order");
    let t = f.read_tensors();
    assert_eq!(
        (t[0].shape.clone(), t[0].data.clone()),
        (vec![1, 3], vec![1.0, -2.0, 3.5])
    );
    assert_eq!(t[1].data, vec![0.5, 8.0]);
    assert_eq!(t[1].source_dtype, SourceDType::F16);
    assert_eq!(t[2].data, vec![-1.25, bf16::from_f32(3.0e9).to_f32()]);
    assert_eq!(t[2].source_bytes(), 4);
    assert_eq!(f.tensor("h").unwrap().shape, vec![2]);
    assert!(matches!(
        f.tensor("zz").unwrap_err().kind,
        ReadErrorKind::MissingTensor(_)
    ));
}

#[test]
fn truncation_at_every_position_is_an_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        assert!(
            SafetensorsFile::from_bytes("cut.safetensors", bytes[..len].to_vec()).is_err(),
            "cut to {len} bytes"
        );
    }
}

#[test]
fn any_corrupted_byte_is_an_error_or_a_valid_read_never_a_panic() {
    let bytes = sample();
    for at in 0..bytes.len() {
        for flip in [0x01, 0x20, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            if let Ok(file) = SafetensorsFile::from_bytes("flipped.safetensors", bad) {
                let _ = file.read_tensors();
            }
        }
    }
}

#[test]
fn malformed_headers_give_typed_errors() {
    let four = [0u8; 4];
    type Expectation = fn(&ReadErrorKind) -> bool;
    let cases: [(&str, Expectation); 7] = [
        ("not json", |k| matches!(k, ReadErrorKind::InvalidHeader(_))),
        ("[1, 2]", |k| matches!(k, ReadErrorKind::InvalidHeader(_))),
        (
            r#"{"t": {"dtype": "I64", "shape": [1], "data_offsets": [0, 4]}}"#,
            |k| matches!(k, ReadErrorKind::UnsupportedDType(d) if d == "I64"),
        ),
        (
            r#"{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#,
            |k| matches!(k, ReadErrorKind::BadShape { .. }),
        ),
        (
            r#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}"#,
            |k| matches!(k, ReadErrorKind::OffsetOutOfRange { .. }),
        ),
        (
            r#"{"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}}"#,
            |k| matches!(k, ReadErrorKind::BadShape { .. }),
        ),
        (r#"{"t": {"dtype": "F32", "shape": [1]}}"#, |k| {
            matches!(k, ReadErrorKind::InvalidHeader(_))
        }),
    ];
    for (header, expected) in cases {
        let kind = kind_of(file(header, &four));
        assert!(expected(&kind), "{header}: {kind}");
    }
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"{}");
    assert!(matches!(kind_of(huge), ReadErrorKind::Truncated { .. }));
}

#[test]
fn errors_name_the_file_and_tensor() {
    let err = SafetensorsFile::from_bytes(
        "w.safetensors",
        file(
            r#"{"layer": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}"#,
            &[0; 4],
        ),
    )
    .unwrap_err();
    assert_eq!(err.tensor.as_deref(), Some("layer"));
    assert!(
        err.to_string()
            .starts_with("w.safetensors: tensor \"layer\": "),
        "{err}"
    );
}
