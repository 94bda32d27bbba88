//! A T-MAC-style look-up-table product over q4a's 4-bit values, measured beside the integer
//! dot-product kernel the agents run (`novaq::kernel::BlockMatrix`): per block of 32 columns
//! and per column `c` a 16-entry int8 table `T_c[k] = round(k · x_c / (15 a))` (`a` the block's
//! input scale), and `i8x16.swizzle` looks up 16 rows' products at once. Only the counts
//! matter here (the benchmark keeps the faster kernel in the product): the result is checked
//! against the dense product to the tables' rounding.

use core::arch::wasm32::*;
use novaq::format::blob::AffineTensor;

const BLOCK: usize = 32;
/// Rows per tile: the 16 lanes of one swizzle.
const TILE: usize = 16;

pub struct LutMatrix {
    rows: usize,
    cols: usize,
    tiles: usize,
    blocks: usize,
    /// `[block][tile][pair][row]`: byte = column 2·pair (low nibble) and 2·pair + 1 (high).
    codes: Vec<u8>,
    /// `[block][tile · 16 + row]`.
    steps: Vec<f32>,
    origins: Vec<f32>,
}

impl LutMatrix {
    pub fn new(tensor: &AffineTensor) -> Self {
        let (rows, cols, group) = (tensor.rows, tensor.cols, tensor.group);
        let (tiles, blocks) = (rows.div_ceil(TILE), cols.div_ceil(BLOCK));
        let row_bytes = tensor.groups_per_row() * group / 2;
        let mut m = Self {
            rows,
            cols,
            tiles,
            blocks,
            codes: vec![0; blocks * tiles * TILE * BLOCK / 2],
            steps: vec![0.0; blocks * tiles * TILE],
            origins: vec![0.0; blocks * tiles * TILE],
        };
        for r in 0..rows {
            let stored = &tensor.values[r * row_bytes..][..row_bytes];
            for b in 0..blocks {
                let (step, origin) = tensor.grid(r, b * BLOCK / group);
                let slot = b * tiles * TILE + r;
                m.steps[slot] = step;
                m.origins[slot] = origin;
                let tile = (b * tiles + r / TILE) * TILE * BLOCK / 2;
                for (pair, &byte) in stored[b * BLOCK / 2..][..BLOCK / 2].iter().enumerate() {
                    m.codes[tile + pair * TILE + r % TILE] = byte;
                }
            }
        }
        m
    }

    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.cols);
        assert_eq!(out.len(), self.rows);
        let mut sums = vec![0f32; self.tiles * TILE];
        let mut padded = x.to_vec();
        padded.resize(self.blocks * BLOCK, 0.0);
        let levels = [
            f32x4(0.0, 1.0, 2.0, 3.0),
            f32x4(4.0, 5.0, 6.0, 7.0),
            f32x4(8.0, 9.0, 10.0, 11.0),
            f32x4(12.0, 13.0, 14.0, 15.0),
        ];
        for b in 0..self.blocks {
            let xs = &padded[b * BLOCK..][..BLOCK];
            let max = xs
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m { v.abs() } else { m });
            let (scale, inverse) = if max > 0.0 {
                (max / 127.0, 127.0 / (15.0 * max))
            } else {
                (0.0, 0.0)
            };
            let sum: f32 = xs.iter().sum();
            // The 32 tables of the block, one v128 each.
            let tables: [v128; BLOCK] = core::array::from_fn(|c| {
                let v = f32x4_splat(xs[c] * inverse);
                let q = levels.map(|l| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v, l))));
                i8x16_narrow_i16x8(
                    i16x8_narrow_i32x4(q[0], q[1]),
                    i16x8_narrow_i32x4(q[2], q[3]),
                )
            });
            let unit = f32x4_splat(15.0 * scale);
            let total = f32x4_splat(sum);
            for t in 0..self.tiles {
                let codes = self.codes[(b * self.tiles + t) * TILE * BLOCK / 2..].as_ptr();
                let (mut low, mut high) = (i16x8_splat(0), i16x8_splat(0));
                // Written out pair by pair: constant indices keep the 32 tables in locals.
                macro_rules! pair {
                    ($p:literal) => {
                        // SAFETY: 16 pairs of 16 bytes per tile and block (the layout above).
                        let v = unsafe { v128_load(codes.add(16 * $p) as *const v128) };
                        let a = i8x16_swizzle(tables[2 * $p], v128_and(v, u8x16_splat(15)));
                        let c = i8x16_swizzle(tables[2 * $p + 1], u8x16_shr(v, 4));
                        low = i16x8_add(
                            low,
                            i16x8_add(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(c)),
                        );
                        high = i16x8_add(
                            high,
                            i16x8_add(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(c)),
                        );
                    };
                }
                pair!(0);
                pair!(1);
                pair!(2);
                pair!(3);
                pair!(4);
                pair!(5);
                pair!(6);
                pair!(7);
                pair!(8);
                pair!(9);
                pair!(10);
                pair!(11);
                pair!(12);
                pair!(13);
                pair!(14);
                pair!(15);
                let row0 = b * self.tiles * TILE + t * TILE;
                let parts = [
                    i32x4_extend_low_i16x8(low),
                    i32x4_extend_high_i16x8(low),
                    i32x4_extend_low_i16x8(high),
                    i32x4_extend_high_i16x8(high),
                ];
                for (k, part) in parts.into_iter().enumerate() {
                    // SAFETY: rows row0 + 4k .. + 4 of the padded steps, origins and sums.
                    unsafe {
                        let d = v128_load(self.steps.as_ptr().add(row0 + 4 * k) as *const v128);
                        let m = v128_load(self.origins.as_ptr().add(row0 + 4 * k) as *const v128);
                        let term = f32x4_add(
                            f32x4_mul(f32x4_mul(f32x4_convert_i32x4(part), unit), d),
                            f32x4_mul(m, total),
                        );
                        let acc = sums.as_mut_ptr().add(t * TILE + 4 * k) as *mut v128;
                        v128_store(acc, f32x4_add(v128_load(acc), term));
                    }
                }
            }
        }
        out.copy_from_slice(&sums[..self.rows]);
    }
}
