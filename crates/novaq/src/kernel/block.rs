//! Integer matrix-vector product for group-wise integer matrices (q8, q4, affine q4), with the
//! input quantized to 8 bits per block of 32 — the SIMD kernel of the agent canister.
//!
//! Weights are rearranged at load into tiles of 4 rows × 32 columns so that one
//! `i32x4.dot_i16x8_s` multiplies a pair of columns of all four rows and leaves each row's sum
//! in its own lane: no horizontal sums, and the 16 column pairs of a block are splatted once
//! and reused by every tile. Per block and row the integer sum is scaled back to floats:
//!
//! `out_r = Σ_b ((Σ_c q_rc · x̂_c) · d_rb · a_b + m_rb · a_b · Σ_c x̂_c)`
//!
//! with `q` the stored integers, `d`/`m` the group's step and origin, `a_b = max |x| / 127`
//! over the block and `x̂ = round(x · (127 / max |x|))` ([`BlockInput::new`]): exactly `W` times the quantized input, so the error
//! against `W x` is `Σ_c w_c (x_c − a_b x̂_c)`, at most half a step of the input per weight. Without `simd128` (native builds) the same sums run as
//! portable loops; the integer sums are exact and the float steps happen in the same order, so
//! both give bit-identical results.

use crate::format::blob::{AffineTensor, ScalarTensor, f16_value};
use alloc::vec;
use alloc::vec::Vec;

/// Columns per block: one activation scale, one step and origin per row.
pub const BLOCK: usize = 32;
/// `1.5 · 2²³`: see [`BlockInput::new`].
const ROUNDING: f32 = 12_582_912.0;
/// Rows per tile: the four lanes of an `i32x4`.
const TILE: usize = 4;

/// How the integers are stored within a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// Unsigned 4-bit values, two per byte: 64 bytes per tile and block. In 16-byte vector `k`,
    /// byte `8·h + 2·row + i` holds column `i` of pair `4k + h` in its low nibble and of pair
    /// `4k + 2 + h` in its high nibble.
    Nibbles,
    /// Signed bytes: 128 bytes per tile and block. In vector `k`, byte `8·h + 2·row + i` holds
    /// column `i` of pair `2k + h`.
    Bytes,
}

impl Width {
    const fn tile_bytes(self) -> usize {
        match self {
            Self::Nibbles => TILE * BLOCK / 2,
            Self::Bytes => TILE * BLOCK,
        }
    }
}

/// A weight matrix as the integer kernel reads it.
#[derive(Debug, Clone)]
pub struct BlockMatrix {
    rows: usize,
    cols: usize,
    tiles: usize,
    blocks: usize,
    width: Width,
    /// `[block][tile][tile_bytes]`.
    values: Vec<u8>,
    /// `[block][tile][row]`: the step `d` of each row's group.
    steps: Vec<f32>,
    /// `[block][tile][row]`: the origin `m`; empty when every origin is zero (symmetric q8).
    origins: Vec<f32>,
}

/// An input vector quantized for [`BlockMatrix::matvec_quantized`]: per block of 32 its scale
/// `a_b` and the sum of its quantized values, and the values themselves (as 16-bit integers:
/// each pair of columns is one 32-bit word, splatted as it is for the SIMD dot products).
#[derive(Debug, Clone, Default)]
pub struct BlockInput {
    cols: usize,
    scales: Vec<f32>,
    sums: Vec<f32>,
    values: Vec<i16>,
}

impl BlockInput {
    /// Quantizes `x`: per block of 32, `x̂ = round(x · (127 / max |x|))` (ties to even; zero
    /// blocks, blocks holding an infinity or NaN, and blocks too small for the inverse stay
    /// zero), with scale `a_b = max |x| / 127`. Written so the compiler vectorises it: the
    /// largest magnitude is found on the bit patterns, and `|x · (127 / max)|` rounds to at
    /// most 127, so nothing is clamped.
    pub fn new(x: &[f32]) -> Self {
        let blocks = x.len().div_ceil(BLOCK);
        let mut input = Self {
            cols: x.len(),
            scales: Vec::with_capacity(blocks),
            sums: Vec::with_capacity(blocks),
            values: vec![0; blocks * BLOCK],
        };
        for (chunk, values) in x.chunks(BLOCK).zip(input.values.chunks_exact_mut(BLOCK)) {
            // Non-negative floats order like their bit patterns.
            let max_bits = chunk.iter().map(|v| v.to_bits() & 0x7fff_ffff).max();
            let max = f32::from_bits(max_bits.unwrap_or(0));
            let inverse = 127.0 / max;
            // Zero, infinite or NaN maxima, and maxima so small that the inverse overflows,
            // leave the block zero.
            let (scale, inverse) = if max > 0.0 && max.is_finite() && inverse.is_finite() {
                (max / 127.0, inverse)
            } else {
                (0.0, 0.0)
            };
            for (q, &v) in values.iter_mut().zip(chunk) {
                // Adding and removing 1.5 · 2²³ rounds to the nearest integer, ties to even,
                // for |v · inverse| ≤ 127: two adds, where `round` is a library call in no_std.
                *q = ((v * inverse + ROUNDING) - ROUNDING) as i32 as i16;
            }
            let total: i32 = values.iter().map(|&q| i32::from(q)).sum();
            input.scales.push(scale);
            input.sums.push(total as f32 * scale);
        }
        input
    }

    /// The input as the kernel sees it: `x̂ · a` per block.
    pub fn dequantize(&self) -> Vec<f32> {
        self.values[..self.cols]
            .iter()
            .enumerate()
            .map(|(c, &q)| f32::from(q) * self.scales[c / BLOCK])
            .collect()
    }

    /// The largest rounding error of each column: half its block's scale.
    pub fn half_step(&self, col: usize) -> f32 {
        self.scales[col / BLOCK] / 2.0
    }
}

impl BlockMatrix {
    fn empty(rows: usize, cols: usize, width: Width, with_origins: bool) -> Self {
        let (tiles, blocks) = (rows.div_ceil(TILE), cols.div_ceil(BLOCK));
        let slots = tiles * blocks * TILE;
        Self {
            rows,
            cols,
            tiles,
            blocks,
            width,
            values: vec![0; tiles * blocks * width.tile_bytes()],
            steps: vec![0.0; slots],
            origins: if with_origins {
                vec![0.0; slots]
            } else {
                Vec::new()
            },
        }
    }

    /// Index into `steps`/`origins` of row `r`'s group in block `b`.
    fn slot(&self, r: usize, b: usize) -> usize {
        (b * self.tiles + r / TILE) * TILE + r % TILE
    }

    /// Byte of weight `(r, c)` and, for nibbles, whether it is the high one.
    fn position(&self, r: usize, c: usize) -> (usize, bool) {
        let (b, pair, i) = (c / BLOCK, (c % BLOCK) / 2, c % 2);
        let tile_start = (b * self.tiles + r / TILE) * self.width.tile_bytes();
        let lane = 2 * (r % TILE) + i;
        match self.width {
            Width::Nibbles => {
                let (k, within) = (pair / 4, pair % 4);
                (tile_start + 16 * k + 8 * (within % 2) + lane, within >= 2)
            }
            Width::Bytes => (tile_start + 16 * (pair / 2) + 8 * (pair % 2) + lane, false),
        }
    }

    /// The stored integer of weight `(r, c)` (signed for bytes, 0–15 for nibbles).
    fn get(&self, r: usize, c: usize) -> i32 {
        let (byte, high) = self.position(r, c);
        let v = self.values[byte];
        match (self.width, high) {
            (Width::Nibbles, false) => i32::from(v & 15),
            (Width::Nibbles, true) => i32::from(v >> 4),
            (Width::Bytes, _) => i32::from(v as i8),
        }
    }

    /// Lays a row-major matrix out in tiles. `row(r)` is row `r` as stored, padded to at least
    /// the blocks' width (two 4-bit values per byte, low nibble first, or one signed byte per
    /// value); `grid(r, b)` is the step and origin of row `r`'s group in block `b`. One pass
    /// over the stored bytes: decoding a model happens at every canister upgrade.
    fn build<'a>(
        rows: usize,
        cols: usize,
        width: Width,
        grid: impl Fn(usize, usize) -> (f32, f32),
        row: impl Fn(usize) -> &'a [u8],
    ) -> Self {
        let mut m = Self::empty(rows, cols, width, width == Width::Nibbles);
        let tile_bytes = width.tile_bytes();
        for r in 0..rows {
            let lane = 2 * (r % TILE);
            let stored = row(r);
            for b in 0..m.blocks {
                let slot = m.slot(r, b);
                let (step, origin) = grid(r, b);
                m.steps[slot] = step;
                if let Some(o) = m.origins.get_mut(slot) {
                    *o = origin;
                }
                let tile = &mut m.values[(b * m.tiles + r / TILE) * tile_bytes..][..tile_bytes];
                match width {
                    Width::Nibbles => {
                        // Stored byte p of the block: columns 2p (low) and 2p + 1 (high).
                        for (pair, &byte) in stored[b * BLOCK / 2..][..BLOCK / 2].iter().enumerate()
                        {
                            let at = 16 * (pair / 4) + 8 * (pair % 2) + lane;
                            let shift = if pair % 4 >= 2 { 4 } else { 0 };
                            tile[at] |= (byte & 15) << shift;
                            tile[at + 1] |= (byte >> 4) << shift;
                        }
                    }
                    Width::Bytes => {
                        for (pair, two) in stored[b * BLOCK..][..BLOCK].chunks_exact(2).enumerate()
                        {
                            let at = 16 * (pair / 2) + 8 * (pair % 2) + lane;
                            tile[at] = two[0];
                            tile[at + 1] = two[1];
                        }
                    }
                }
            }
        }
        m
    }

    /// A group-wise symmetric q8 or q4 matrix. q4's `q − 8` becomes the unsigned nibble `q`
    /// with origin `−8 d`. Groups must be whole blocks (32 or 64 weights: what the codec
    /// writes; [`super::ModelReader`] refuses others).
    pub fn from_scalar(tensor: &ScalarTensor) -> Self {
        let (cols, group) = (tensor.cols, tensor.group);
        assert!(
            group.is_multiple_of(BLOCK),
            "scalar groups are whole blocks"
        );
        let nibbles = tensor.bits == 4;
        let groups = tensor.groups_per_row();
        let row_bytes = groups * group * tensor.bits as usize / 8;
        let width = if nibbles {
            Width::Nibbles
        } else {
            Width::Bytes
        };
        let grid = |r: usize, b: usize| {
            let d = f16_value(tensor.scales[r * groups + b * BLOCK / group]);
            (d, if nibbles { -8.0 * d } else { 0.0 })
        };
        Self::build(tensor.rows, cols, width, grid, |r| {
            &tensor.values[r * row_bytes..][..row_bytes]
        })
    }

    /// A group-wise affine 4-bit matrix.
    pub fn from_affine(tensor: &AffineTensor) -> Self {
        let group = tensor.group;
        assert!(
            group.is_multiple_of(BLOCK),
            "affine groups are whole blocks"
        );
        let row_bytes = tensor.groups_per_row() * group / 2;
        let grid = |r: usize, b: usize| tensor.grid(r, b * BLOCK / group);
        Self::build(tensor.rows, tensor.cols, Width::Nibbles, grid, |r| {
            &tensor.values[r * row_bytes..][..row_bytes]
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out = W x`, the input quantized first ([`BlockInput::new`]).
    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        self.matvec_quantized(&BlockInput::new(x), out);
    }

    /// `out = W x̂` for an input already quantized.
    pub fn matvec_quantized(&self, input: &BlockInput, out: &mut [f32]) {
        assert_eq!(input.cols, self.cols, "input length must equal cols");
        assert_eq!(out.len(), self.rows, "output length must equal rows");
        let mut sums = vec![0f32; self.tiles * TILE];
        self.accumulate(input, &mut sums);
        out.copy_from_slice(&sums[..self.rows]);
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn accumulate(&self, input: &BlockInput, sums: &mut [f32]) {
        let tile_bytes = self.width.tile_bytes();
        let mut q = [[0i8; BLOCK]; TILE];
        for b in 0..self.blocks {
            let x = &input.values[b * BLOCK..][..BLOCK];
            let (scale, sum) = (input.scales[b], input.sums[b]);
            for t in 0..self.tiles {
                let tile = &self.values[(b * self.tiles + t) * tile_bytes..][..tile_bytes];
                unpack(self.width, tile, &mut q);
                for (row, q) in q.iter().enumerate() {
                    let dot: i32 = q
                        .iter()
                        .zip(x)
                        .map(|(&w, &v)| i32::from(w) * i32::from(v))
                        .sum();
                    let slot = (b * self.tiles + t) * TILE + row;
                    let mut term = dot as f32 * self.steps[slot] * scale;
                    if !self.origins.is_empty() {
                        term += self.origins[slot] * sum;
                    }
                    sums[t * TILE + row] += term;
                }
            }
        }
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn accumulate(&self, input: &BlockInput, sums: &mut [f32]) {
        // 4-bit values always have an origin (affine, or −8 d for symmetric q4); bytes never.
        match self.width {
            Width::Nibbles => simd::accumulate::<true, true>(self, input, sums),
            Width::Bytes => simd::accumulate::<false, false>(self, input, sums),
        }
    }

    /// All weights, row-major: `d · q + m`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            for c in 0..self.cols {
                let slot = self.slot(r, c / BLOCK);
                let origin = self.origins.get(slot).copied().unwrap_or(0.0);
                out.push(self.get(r, c) as f32 * self.steps[slot] + origin);
            }
        }
        out
    }

    /// Bytes the weights occupy in memory while loaded.
    pub fn resident_bytes(&self) -> usize {
        self.values.len() + 4 * (self.steps.len() + self.origins.len())
    }
}

/// The integers of one tile and block, row by row (portable path).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn unpack(width: Width, tile: &[u8], q: &mut [[i8; BLOCK]; TILE]) {
    for (k, vector) in tile.chunks_exact(16).enumerate() {
        for (byte, &v) in vector.iter().enumerate() {
            let (half, lane) = (byte / 8, byte % 8);
            let (row, i) = (lane / 2, lane % 2);
            match width {
                Width::Nibbles => {
                    q[row][2 * (4 * k + half) + i] = (v & 15) as i8;
                    q[row][2 * (4 * k + 2 + half) + i] = (v >> 4) as i8;
                }
                Width::Bytes => q[row][2 * (2 * k + half) + i] = v as i8,
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{BLOCK, BlockInput, BlockMatrix, TILE};
    use core::arch::wasm32::*;

    /// Column pairs per block (one `i32x4.dot_i16x8_s` each).
    const PAIRS: usize = BLOCK / 2;

    /// Lane `row` += the products of one 16-byte vector of nibbles: its low nibbles are
    /// pairs `x[0]`, `x[1]` (bytes 0–7, 8–15), its high nibbles pairs `x[2]`, `x[3]`.
    #[inline(always)]
    fn nibble_vector(sum: v128, v: v128, x: [v128; 4]) -> v128 {
        let low = v128_and(v, u8x16_splat(15));
        let high = u8x16_shr(v, 4);
        let sum = i32x4_add(sum, i32x4_dot_i16x8(u16x8_extend_low_u8x16(low), x[0]));
        let sum = i32x4_add(sum, i32x4_dot_i16x8(u16x8_extend_high_u8x16(low), x[1]));
        let sum = i32x4_add(sum, i32x4_dot_i16x8(u16x8_extend_low_u8x16(high), x[2]));
        i32x4_add(sum, i32x4_dot_i16x8(u16x8_extend_high_u8x16(high), x[3]))
    }

    /// Lane `row` += the products of one 16-byte vector of signed bytes: pairs `x[0]`, `x[1]`.
    #[inline(always)]
    fn byte_vector(sum: v128, v: v128, x: [v128; 2]) -> v128 {
        let sum = i32x4_add(sum, i32x4_dot_i16x8(i16x8_extend_low_i8x16(v), x[0]));
        i32x4_add(sum, i32x4_dot_i16x8(i16x8_extend_high_i8x16(v), x[1]))
    }

    /// The integer dot products of one tile and block: lane `row` = `Σ_c q[row][c] · x̂[c]`.
    /// Written out vector by vector (constant indices keep the 16 splatted pairs in locals).
    ///
    /// # Safety
    /// `tile` points at the tile's 64 (nibbles) or 128 (bytes) readable bytes.
    #[inline(always)]
    unsafe fn tile_dot<const NIBBLES: bool>(tile: *const v128, x: &[v128; PAIRS]) -> v128 {
        // SAFETY: the caller's contract: 4 (nibbles) or 8 (bytes) vectors are readable.
        let load = |k: usize| unsafe { v128_load(tile.add(k)) };
        let sum = i32x4_splat(0);
        if NIBBLES {
            let sum = nibble_vector(sum, load(0), [x[0], x[1], x[2], x[3]]);
            let sum = nibble_vector(sum, load(1), [x[4], x[5], x[6], x[7]]);
            let sum = nibble_vector(sum, load(2), [x[8], x[9], x[10], x[11]]);
            nibble_vector(sum, load(3), [x[12], x[13], x[14], x[15]])
        } else {
            let sum = byte_vector(sum, load(0), [x[0], x[1]]);
            let sum = byte_vector(sum, load(1), [x[2], x[3]]);
            let sum = byte_vector(sum, load(2), [x[4], x[5]]);
            let sum = byte_vector(sum, load(3), [x[6], x[7]]);
            let sum = byte_vector(sum, load(4), [x[8], x[9]]);
            let sum = byte_vector(sum, load(5), [x[10], x[11]]);
            let sum = byte_vector(sum, load(6), [x[12], x[13]]);
            byte_vector(sum, load(7), [x[14], x[15]])
        }
    }

    /// Adds `W x̂` into `sums` (`tiles × 4` values), block by block: the block's 16 column
    /// pairs are splatted once, then every tile of the block is read in storage order.
    pub(super) fn accumulate<const NIBBLES: bool, const ORIGINS: bool>(
        m: &BlockMatrix,
        input: &BlockInput,
        sums: &mut [f32],
    ) {
        let tile_vectors = if NIBBLES { 4 } else { 8 };
        assert_eq!(sums.len(), m.tiles * TILE);
        assert_eq!(m.values.len(), m.blocks * m.tiles * tile_vectors * 16);
        assert_eq!(m.steps.len(), m.blocks * m.tiles * TILE);
        assert!(!ORIGINS || m.origins.len() == m.steps.len());
        assert!(input.values.len() >= m.blocks * BLOCK && input.scales.len() >= m.blocks);
        let values = m.values.as_ptr() as *const v128;
        let steps = m.steps.as_ptr() as *const v128;
        let origins = m.origins.as_ptr() as *const v128;
        let out = sums.as_mut_ptr() as *mut v128;
        for b in 0..m.blocks {
            let pairs = &input.values[b * BLOCK..][..BLOCK];
            let x: [v128; PAIRS] = core::array::from_fn(|p| {
                let pair =
                    u32::from(pairs[2 * p] as u16) | u32::from(pairs[2 * p + 1] as u16) << 16;
                u32x4_splat(pair)
            });
            let scale = f32x4_splat(input.scales[b]);
            let sum = f32x4_splat(input.sums[b]);
            let first = b * m.tiles;
            for t in 0..m.tiles {
                // SAFETY: the lengths asserted above: tile `first + t` has `tile_vectors`
                // vectors of values and one vector of steps (and of origins), and `sums` has
                // vector `t`. Vec<u8>/Vec<f32> allocations may be unaligned for v128, which
                // wasm loads and stores allow.
                unsafe {
                    let dot = tile_dot::<NIBBLES>(values.add((first + t) * tile_vectors), &x);
                    let d = v128_load(steps.add(first + t));
                    let mut term = f32x4_mul(f32x4_mul(f32x4_convert_i32x4(dot), d), scale);
                    if ORIGINS {
                        term = f32x4_add(term, f32x4_mul(v128_load(origins.add(first + t)), sum));
                    }
                    let acc = out.add(t);
                    v128_store(acc, f32x4_add(v128_load(acc), term));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::f16_bits;

    fn scalar(rows: usize, cols: usize, bits: u32, seed: u32) -> ScalarTensor {
        let group = if bits == 8 { 64 } else { 32 };
        let groups = cols.div_ceil(group);
        let padded = groups * group;
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 8) as u8
        };
        let values = (0..rows * padded * bits as usize / 8)
            .map(|_| next())
            .collect();
        let scales = (0..rows * groups)
            .map(|i| f16_bits(0.001 + (i % 7) as f32 * 0.0005))
            .collect();
        ScalarTensor {
            rows,
            cols,
            bits,
            group,
            scales,
            values,
        }
    }

    fn reference(w: &[f32], x: &[f32]) -> Vec<f32> {
        w.chunks_exact(x.len())
            .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    }

    #[test]
    fn matches_dequantize_then_multiply_on_ragged_shapes() {
        for (rows, cols) in [
            (1, 1),
            (3, 31),
            (4, 32),
            (5, 33),
            (13, 101),
            (48, 96),
            (7, 172),
        ] {
            for bits in [4, 8] {
                let m = BlockMatrix::from_scalar(&scalar(rows, cols, bits, rows as u32 * 31));
                let x: Vec<f32> = (0..cols)
                    .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                    .collect();
                let input = BlockInput::new(&x);
                let mut out = vec![0f32; rows];
                m.matvec_quantized(&input, &mut out);
                let w = m.dequantize();
                // Against the quantized input: float rounding only.
                for (r, (&o, e)) in out
                    .iter()
                    .zip(reference(&w, &input.dequantize()))
                    .enumerate()
                {
                    let scale: f32 = w[r * cols..][..cols]
                        .iter()
                        .zip(&x)
                        .map(|(a, b)| (a * b).abs())
                        .sum();
                    assert!(
                        (o - e).abs() <= 1e-5 * scale.max(1e-6),
                        "{rows}x{cols} q{bits} row {r}: {o} vs {e}"
                    );
                }
                // Against the exact input: within the input's rounding.
                for (r, (&o, e)) in out.iter().zip(reference(&w, &x)).enumerate() {
                    let bound: f32 = (0..cols)
                        .map(|c| w[r * cols + c].abs() * input.half_step(c))
                        .sum();
                    assert!(
                        (o - e).abs() <= bound * 1.001 + 1e-6,
                        "{rows}x{cols} q{bits} row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn symmetric_q4_and_q8_decode_like_their_definitions() {
        let stored = scalar(5, 70, 4, 3);
        let m = BlockMatrix::from_scalar(&stored);
        let groups = stored.groups_per_row();
        for (i, &w) in m.dequantize().iter().enumerate() {
            let (r, c) = (i / 70, i % 70);
            let v = r * groups * 32 + c;
            let q = i32::from((stored.values[v / 2] >> (4 * (v % 2))) & 15) - 8;
            let d = f16_value(stored.scales[r * groups + c / 32]);
            assert!((w - d * q as f32).abs() <= 1e-6 * d.abs().max(1e-3));
        }
        let stored = scalar(3, 130, 8, 5);
        let m = BlockMatrix::from_scalar(&stored);
        for (i, &w) in m.dequantize().iter().enumerate() {
            let (r, c) = (i / 130, i % 130);
            let q = stored.values[r * 192 + c] as i8;
            assert_eq!(w, f16_value(stored.scales[r * 3 + c / 64]) * f32::from(q));
        }
    }

    #[test]
    fn zero_input_blocks_and_extreme_values() {
        let m = BlockMatrix::from_scalar(&scalar(4, 64, 8, 9));
        let mut x = vec![0f32; 64];
        x[40] = 1e30;
        x[41] = -1e30;
        x[42] = 0.5e30;
        let input = BlockInput::new(&x);
        assert_eq!(input.scales[0], 0.0);
        assert_eq!(input.values[40], 127);
        assert_eq!(input.values[41], -127);
        assert_eq!(input.values[42], 64);
        // A block holding an infinity is treated as zero rather than poisoning the sums.
        let infinite = BlockInput::new(&[f32::INFINITY, 1.0]);
        assert_eq!((infinite.scales[0], infinite.values[1]), (0.0, 0));
        let mut out = vec![0f32; 4];
        m.matvec(&x, &mut out);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
