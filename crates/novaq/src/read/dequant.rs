//! Decoding of ggml's block encodings to f32, exactly as ggml's `dequantize_row_*` does.
//!
//! Each block stores its scales beside its quants; the layouts are those of ggml-common.h.

use crate::tensor::SourceDType;
use half::{bf16, f16};

/// The encoded bytes do not match the number of values asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    pub expected_bytes: u64,
    pub actual_bytes: u64,
}

/// Decodes `bytes`, encoded as `dtype`, into `out`. `out.len()` must be a whole number of blocks
/// and `bytes` exactly their encoding.
pub fn dequantize(dtype: SourceDType, bytes: &[u8], out: &mut [f32]) -> Result<(), LengthMismatch> {
    let block = dtype.block_elements() as usize;
    let expected_bytes = dtype.encoded_bytes(out.len() as u64);
    if !out.len().is_multiple_of(block) || bytes.len() as u64 != expected_bytes {
        return Err(LengthMismatch {
            expected_bytes,
            actual_bytes: bytes.len() as u64,
        });
    }
    let block_bytes = dtype.block_bytes() as usize;
    let blocks = bytes
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(block));
    match dtype {
        SourceDType::F32 => {
            blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        SourceDType::F16 => blocks.for_each(|(b, y)| y[0] = f16_at(b, 0)),
        SourceDType::BF16 => {
            blocks.for_each(|(b, y)| y[0] = bf16::from_bits(u16_at(b, 0)).to_f32())
        }
        SourceDType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        SourceDType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        SourceDType::Q4_1 => blocks.for_each(|(b, y)| q4_1(b, y)),
        SourceDType::Q4_K => blocks.for_each(|(b, y)| q4_k(b, y)),
        SourceDType::Q6_K => blocks.for_each(|(b, y)| q6_k(b, y)),
    }
    Ok(())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16_at(b, at)).to_f32()
}

/// `{ d: f16, qs: [i8; 32] }`: value = d · q.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = d * f32::from(q as i8);
    }
}

/// `{ d: f16, qs: [u8; 16] }`: low nibbles are values 0..16, high nibbles 16..32;
/// value = d · (q − 8).
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[2..18].iter().enumerate() {
        lo[j] = d * (f32::from(q & 0x0f) - 8.0);
        hi[j] = d * (f32::from(q >> 4) - 8.0);
    }
}

/// `{ d: f16, m: f16, qs: [u8; 16] }`: nibbles as in Q4_0; value = d · q + m.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[4..20].iter().enumerate() {
        lo[j] = d * f32::from(q & 0x0f) + m;
        hi[j] = d * f32::from(q >> 4) + m;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K block, packed in 12 bytes:
/// sub-blocks 0..4 use the low 6 bits of bytes `j` and `j+4`; sub-blocks 4..8 take their low
/// 4 bits from the nibbles of byte `j+4` and their top 2 bits from the spare bits of the first
/// eight bytes (ggml's `get_scale_min_k4`).
fn q4_k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// `{ d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128] }`: eight sub-blocks of 32 with 6-bit
/// scale and min; each 32 bytes of `qs` hold two sub-blocks (low nibbles, then high nibbles);
/// value = d · scale · q − dmin · min.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc_lo, m_lo) = q4_k_scale_min(2 * chunk, scales);
        let (sc_hi, m_hi) = q4_k_scale_min(2 * chunk + 1, scales);
        let (d_lo, min_lo) = (d * f32::from(sc_lo), dmin * f32::from(m_lo));
        let (d_hi, min_hi) = (d * f32::from(sc_hi), dmin * f32::from(m_hi));
        let (lo, hi) = y.split_at_mut(32);
        for l in 0..32 {
            lo[l] = d_lo * f32::from(q[l] & 0x0f) - min_lo;
            hi[l] = d_hi * f32::from(q[l] >> 4) - min_hi;
        }
    }
}

/// `{ ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16 }`: 6-bit quants split into a low
/// nibble (`ql`) and two high bits (`qh`), sixteen sub-blocks of 16 with i8 scales;
/// value = d · scale · (q − 32). Each half of 128 values interleaves four groups of 32.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            let scale = |k: usize| d * f32::from(sc[is + k] as i8);
            y[l] = scale(0) * q1 as f32;
            y[l + 32] = scale(2) * q2 as f32;
            y[l + 64] = scale(4) * q3 as f32;
            y[l + 96] = scale(6) * q4 as f32;
        }
    }
}
