//! Byte layouts of the blobs a manifest points at. All integers and floats are little-endian;
//! `f16` is IEEE binary16. Sections follow each other without padding.
//!
//! - **codebooks** (`books × 256 × dim` f16): entry `k` of book `m` starts at value
//!   `(m · 256 + k) · dim`.
//! - **AQ tensor** (`rows × cols`, vectors of `dim` along each row, the row padded with zeros to
//!   `cols_padded = ⌈cols / dim⌉ · dim`):
//!   `scales: rows × f16`, then (when the tensor has column scales) `column_scales: cols × f16`,
//!   `codes: rows × (cols_padded / dim) × books × u8` (for each row, for each
//!   vector, one code per book), `outlier_counts: rows × u8`, then for every outlier in row order
//!   `column: u16`, then for every outlier `correction: f16`. Weight `(r, c)` decodes to
//!   `scale_r · column_scale_c · Σ_m C_m[code_{r, c/dim, m}][c mod dim]` (column scale 1 when
//!   absent), plus the correction when `(r, c)` is an outlier. When the manifest gives the tensor
//!   a rotation seed, these are the weights of `W Tᵀ` ([`crate::rotation`]): row `r` of `W` is
//!   `Tᵀ` applied to decoded row `r`, and products take `T x` as input.
//! - **scalar tensor** (`rows × cols`, groups of `group` weights along each row, the row padded
//!   to `cols_padded = ⌈cols / group⌉ · group`): `scales: rows × groups × f16`, then values:
//!   8 bits → one `i8` per weight (`w = scale · q`); 4 bits → two weights per byte, low nibble
//!   first, `w = scale · (q − 8)`.
//! - **affine tensor** (`rows × cols`, 4-bit values in groups of `group` (32 or 64) weights
//!   along each row,
//!   the row padded to `cols_padded = ⌈cols / group⌉ · group`): `row_units: rows × f16`, then
//!   `steps: rows × groups × u8`, then `offsets: rows × groups × i8`, then values, two weights
//!   per byte, low nibble first. Weight `(r, c)` of group `g` decodes to `d · q + m` with
//!   `q ∈ [0, 15]`, `d = u_r · step_{r,g} / 255` and `m = u_r · offset_{r,g} / 16`: a 4-bit grid
//!   from the group's minimum to its maximum, its step in 255ths of the row's unit `u_r` (the
//!   row's largest step, or more when an origin needs it) and its origin in 16ths (an origin
//!   near −7.5 steps, a group centred on zero, is as fine as the step); 4 + 16 / group bits per
//!   weight plus 16 bits per row.
//! - **f32 tensor**: the values as f32.

use super::FormatError;
use alloc::vec::Vec;
use half::f16;

/// The nearest f16 value, as f32.
pub fn f16_round(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

pub fn f16_bits(v: f32) -> u16 {
    f16::from_f32(v).to_bits()
}

pub fn f16_value(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// An additively quantized matrix, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AqTensor {
    pub rows: usize,
    pub cols: usize,
    pub dim: usize,
    pub books: usize,
    /// f16 bits, one per row.
    pub scales: Vec<u16>,
    /// f16 bits, one per column, or empty. Columns carrying large activations are scaled up
    /// before coding so their weights are coded more finely; this undoes it.
    pub column_scales: Vec<u16>,
    pub codes: Vec<u8>,
    pub outliers: Outliers,
    /// Seed of the [`Rotation`](crate::rotation::Rotation) the rows were coded in, or `None`
    /// when they were coded as they are. Kept in the manifest, not in the blob.
    pub rotation: Option<u64>,
}

/// Weights stored as an exact correction on top of their quantized value, row by row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outliers {
    /// Outliers per row.
    pub counts: Vec<u8>,
    /// Column of each outlier, rows in order.
    pub columns: Vec<u16>,
    /// f16 bits of each correction.
    pub corrections: Vec<u16>,
}

impl Outliers {
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl AqTensor {
    pub fn vectors_per_row(&self) -> usize {
        self.cols.div_ceil(self.dim)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        put_u16s(&mut out, &self.scales);
        put_u16s(&mut out, &self.column_scales);
        out.extend_from_slice(&self.codes);
        out.extend_from_slice(&self.outliers.counts);
        put_u16s(&mut out, &self.outliers.columns);
        put_u16s(&mut out, &self.outliers.corrections);
        out
    }

    pub fn byte_len(&self) -> usize {
        2 * self.rows
            + 2 * self.column_scales.len()
            + self.codes.len()
            + self.rows
            + 4 * self.outliers.len()
    }

    /// Parses and validates a blob for a `rows × cols` matrix coded with `books` books of
    /// `dim`-vectors carrying `outliers` outliers, with or without column scales.
    pub fn from_bytes(
        bytes: &[u8],
        (rows, cols): (usize, usize),
        dim: usize,
        books: usize,
        outliers: usize,
        has_column_scales: bool,
    ) -> Result<Self, FormatError> {
        if dim == 0 || books == 0 {
            return Err(FormatError::Invalid("AQ tensor with zero dim or books"));
        }
        let code_len = rows * cols.div_ceil(dim) * books;
        let column_count = if has_column_scales { cols } else { 0 };
        let expected = 2 * rows + 2 * column_count + code_len + rows + 4 * outliers;
        if bytes.len() != expected {
            return Err(FormatError::Length {
                expected: expected as u64,
                found: bytes.len() as u64,
            });
        }
        let mut r = Reader(bytes);
        let scales = r.u16s(rows);
        let column_scales = r.u16s(column_count);
        let codes = r.take(code_len).to_vec();
        let counts = r.take(rows).to_vec();
        let columns = r.u16s(outliers);
        let corrections = r.u16s(outliers);
        if counts.iter().map(|&c| c as usize).sum::<usize>() != outliers {
            return Err(FormatError::Invalid(
                "outlier counts disagree with the manifest",
            ));
        }
        if columns.iter().any(|&c| c as usize >= cols) {
            return Err(FormatError::Invalid("outlier column out of range"));
        }
        Ok(Self {
            rows,
            cols,
            dim,
            books,
            scales,
            column_scales,
            codes,
            outliers: Outliers {
                counts,
                columns,
                corrections,
            },
            rotation: None,
        })
    }
}

/// A group-wise scalar-quantized matrix, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarTensor {
    pub rows: usize,
    pub cols: usize,
    /// 4 or 8.
    pub bits: u32,
    pub group: usize,
    /// f16 bits, `rows × groups`.
    pub scales: Vec<u16>,
    /// Packed values, see the module docs.
    pub values: Vec<u8>,
}

impl ScalarTensor {
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(self.group)
    }

    pub fn value_bytes(rows: usize, cols: usize, bits: u32, group: usize) -> usize {
        rows * cols.div_ceil(group) * group * bits as usize / 8
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * self.scales.len() + self.values.len());
        put_u16s(&mut out, &self.scales);
        out.extend_from_slice(&self.values);
        out
    }

    pub fn from_bytes(
        bytes: &[u8],
        rows: usize,
        cols: usize,
        bits: u32,
        group: usize,
    ) -> Result<Self, FormatError> {
        if !(bits == 4 || bits == 8) || group == 0 || !group.is_multiple_of(2) {
            return Err(FormatError::Invalid(
                "scalar tensor needs 4 or 8 bits and an even group",
            ));
        }
        let scale_count = rows * cols.div_ceil(group);
        let value_len = Self::value_bytes(rows, cols, bits, group);
        let expected = 2 * scale_count + value_len;
        if bytes.len() != expected {
            return Err(FormatError::Length {
                expected: expected as u64,
                found: bytes.len() as u64,
            });
        }
        let mut r = Reader(bytes);
        let scales = r.u16s(scale_count);
        let values = r.take(value_len).to_vec();
        Ok(Self {
            rows,
            cols,
            bits,
            group,
            scales,
            values,
        })
    }
}

/// A group-wise affine 4-bit matrix, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineTensor {
    pub rows: usize,
    pub cols: usize,
    pub group: usize,
    /// f16 bits, one per row: the row's unit `u` (see the module docs).
    pub row_units: Vec<u16>,
    /// `rows × groups`: each group's step in 255ths of its row's unit.
    pub steps: Vec<u8>,
    /// `rows × groups`: each group's origin in 16ths of its row's unit.
    pub offsets: Vec<i8>,
    /// Packed 4-bit values, see the module docs.
    pub values: Vec<u8>,
}

impl AffineTensor {
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(self.group)
    }

    /// Groups a row may be cut into: whole blocks of the integer kernel.
    pub const GROUPS: [usize; 2] = [32, 64];

    /// `(groups, value bytes, blob bytes)` of a `rows × cols` tensor; `None` when they do not
    /// fit a `usize` (a hostile manifest).
    fn lengths(rows: usize, cols: usize, group: usize) -> Option<(usize, usize, usize)> {
        let groups = rows.checked_mul(cols.div_ceil(group))?;
        let values = groups.checked_mul(group / 2)?;
        let total = rows.checked_mul(2)?.checked_add(groups.checked_mul(2)?)?;
        Some((groups, values, total.checked_add(values)?))
    }

    /// Step `d` and origin `m` of group `g` of row `r`: weight = `d · q + m`.
    pub fn grid(&self, r: usize, g: usize) -> (f32, f32) {
        let i = r * self.groups_per_row() + g;
        Self::grid_of(f16_value(self.row_units[r]), self.steps[i], self.offsets[i])
    }

    /// Step and origin of a group from its row's (decoded) unit and its own 8-bit parts.
    pub fn grid_of(unit: f32, step: u8, offset: i8) -> (f32, f32) {
        (
            unit * f32::from(step) / 255.0,
            unit * f32::from(offset) / 16.0,
        )
    }

    pub fn byte_len(&self) -> usize {
        Self::lengths(self.rows, self.cols, self.group)
            .expect("a tensor in memory has a representable size")
            .2
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        put_u16s(&mut out, &self.row_units);
        out.extend_from_slice(&self.steps);
        out.extend(self.offsets.iter().map(|&o| o as u8));
        out.extend_from_slice(&self.values);
        out
    }

    pub fn from_bytes(
        bytes: &[u8],
        rows: usize,
        cols: usize,
        group: usize,
    ) -> Result<Self, FormatError> {
        if !Self::GROUPS.contains(&group) {
            return Err(FormatError::Invalid(
                "affine tensor groups must be 32 or 64 weights",
            ));
        }
        let (groups, value_len, expected) = Self::lengths(rows, cols, group)
            .ok_or(FormatError::Invalid("affine tensor too large"))?;
        if bytes.len() != expected {
            return Err(FormatError::Length {
                expected: expected as u64,
                found: bytes.len() as u64,
            });
        }
        let mut r = Reader(bytes);
        Ok(Self {
            rows,
            cols,
            group,
            row_units: r.u16s(rows),
            steps: r.take(groups).to_vec(),
            offsets: r.take(groups).iter().map(|&o| o as i8).collect(),
            values: r.take(value_len).to_vec(),
        })
    }
}

pub fn codebooks_to_bytes(entries: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 2);
    for &v in entries {
        out.extend_from_slice(&f16_bits(v).to_le_bytes());
    }
    out
}

pub fn codebooks_from_bytes(bytes: &[u8], values: usize) -> Result<Vec<f32>, FormatError> {
    if bytes.len() != values * 2 {
        return Err(FormatError::Length {
            expected: values as u64 * 2,
            found: bytes.len() as u64,
        });
    }
    Ok(Reader(bytes)
        .u16s(values)
        .into_iter()
        .map(f16_value)
        .collect())
}

pub fn f32s_to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f32s_from_bytes(bytes: &[u8], values: usize) -> Result<Vec<f32>, FormatError> {
    if bytes.len() != values * 4 {
        return Err(FormatError::Length {
            expected: values as u64 * 4,
            found: bytes.len() as u64,
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn put_u16s(out: &mut Vec<u8>, values: &[u16]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Sequential reads from a slice whose total length was checked beforehand.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn u16s(&mut self, n: usize) -> Vec<u16> {
        self.take(2 * n)
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}
