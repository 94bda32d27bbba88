//! Dense f32 tensors as read from a model file, before compression.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A named dense tensor in row-major order.
///
/// A weight matrix has shape `[rows, cols] = [out_features, in_features]`: row `r` holds the
/// weights of output `r`, so a matrix-vector product walks memory contiguously. GGUF lists
/// dimensions fastest-varying first; the readers reverse them into this order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// The encoding the values had in the source file, so compression can be measured against
    /// what the source actually spent rather than against f32.
    pub source_dtype: SourceDType,
}

impl Tensor {
    /// A tensor whose source encoding was f32.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            shape,
            data,
            source_dtype: SourceDType::F32,
        }
    }

    /// Number of elements: the product of the dimensions (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rows of the tensor seen as a matrix: every dimension but the last, multiplied together.
    /// A vector `[n]` is one row.
    pub fn rows(&self) -> usize {
        match self.shape.split_last() {
            Some((_, outer)) => outer.iter().product(),
            None => 1,
        }
    }

    /// Columns of the tensor seen as a matrix: the last (contiguous) dimension.
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Row `r` of the tensor seen as a `[rows, cols]` matrix.
    pub fn row(&self, r: usize) -> &[f32] {
        let cols = self.cols();
        &self.data[r * cols..(r + 1) * cols]
    }

    /// Bytes the source file used for this tensor's values.
    pub fn source_bytes(&self) -> u64 {
        self.source_dtype.encoded_bytes(self.numel() as u64)
    }
}

/// How a tensor's values were encoded in the source model file.
// Variant names spell ggml's type names so they read the same in reports and logs.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceDType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q6_K,
}

impl SourceDType {
    /// Elements per encoded block (1 for plain floats).
    pub const fn block_elements(self) -> u64 {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q8_0 | Self::Q4_0 | Self::Q4_1 => 32,
            Self::Q4_K | Self::Q6_K => 256,
        }
    }

    /// Bytes of one encoded block, scales included (ggml's block layouts).
    pub const fn block_bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            // f16 scale + 32 × i8
            Self::Q8_0 => 34,
            // f16 scale + 32 × 4 bits
            Self::Q4_0 => 18,
            // f16 scale + f16 min + 32 × 4 bits
            Self::Q4_1 => 20,
            // f16 d + f16 dmin + 12 bytes of 6-bit scales/mins + 256 × 4 bits
            Self::Q4_K => 144,
            // 256 × 4 low bits + 256 × 2 high bits + 16 × i8 scales + f16 d
            Self::Q6_K => 210,
        }
    }

    /// Bytes needed to encode `numel` elements, counting a partial trailing block as whole.
    pub const fn encoded_bytes(self, numel: u64) -> u64 {
        numel.div_ceil(self.block_elements()) * self.block_bytes()
    }

    /// Bits per weight of the encoding, scales included.
    pub fn bits_per_weight(self) -> f64 {
        (self.block_bytes() * 8) as f64 / self.block_elements() as f64
    }

    /// The name ggml and safetensors use for this encoding.
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q8_0 => "Q8_0",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q4_K => "Q4_K",
            Self::Q6_K => "Q6_K",
        }
    }
}

impl core::fmt::Display for SourceDType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn matrix_view_follows_the_last_dimension() {
        let t = Tensor::new("w", vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((t.rows(), t.cols(), t.numel()), (2, 3, 6));
        assert_eq!(t.row(1), &[4.0, 5.0, 6.0]);
        let v = Tensor::new("v", vec![4], vec![0.0; 4]);
        assert_eq!((v.rows(), v.cols()), (1, 4));
    }

    #[test]
    fn source_bytes_match_ggml_block_sizes() {
        assert_eq!(SourceDType::Q4_K.encoded_bytes(512), 288);
        assert_eq!(SourceDType::Q6_K.bits_per_weight(), 6.5625);
        assert_eq!(SourceDType::Q8_0.bits_per_weight(), 8.5);
        assert_eq!(SourceDType::BF16.encoded_bytes(3), 6);
    }
}
