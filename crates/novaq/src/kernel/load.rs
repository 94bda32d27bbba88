//! Building kernel matrices from a manifest and its shards.

use super::{AqMatrix, BLOCK, BlockMatrix, QuantizedMatrix};
use crate::format::blob::{
    AffineTensor, AqTensor, ScalarTensor, codebooks_from_bytes, f32s_from_bytes,
};
use crate::format::{Codec, FormatError, Manifest, ShardSet, TensorEntry};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Reads tensors of one model, decoding each shared codebook set once.
pub struct ModelReader<'a> {
    manifest: &'a Manifest,
    shards: ShardSet<'a>,
    codebooks: Vec<Option<Arc<Vec<f32>>>>,
}

impl<'a> ModelReader<'a> {
    pub fn new(manifest: &'a Manifest, shards: Vec<&'a [u8]>) -> Result<Self, FormatError> {
        Ok(Self {
            manifest,
            shards: ShardSet::new(manifest, shards)?,
            codebooks: alloc::vec![None; manifest.codebooks.len()],
        })
    }

    pub fn manifest(&self) -> &Manifest {
        self.manifest
    }

    /// The tensor as a matrix over its last dimension, in its stored encoding.
    pub fn matrix(&mut self, name: &str) -> Result<QuantizedMatrix, FormatError> {
        let entry = self.manifest.tensor(name)?;
        self.matrix_of(entry)
    }

    /// All values of the tensor, decoded to f32.
    pub fn values(&mut self, name: &str) -> Result<Vec<f32>, FormatError> {
        let entry = self.manifest.tensor(name)?;
        match entry.codec {
            Codec::F32 => self.f32s(entry),
            _ => Ok(self.matrix_of(entry)?.dequantize()),
        }
    }

    fn f32s(&self, entry: &TensorEntry) -> Result<Vec<f32>, FormatError> {
        f32s_from_bytes(&self.shards.read(&entry.location)?, entry.numel() as usize)
    }

    fn matrix_of(&mut self, entry: &TensorEntry) -> Result<QuantizedMatrix, FormatError> {
        let (rows, cols) = entry.matrix_shape();
        let bytes = self.shards.read(&entry.location)?;
        match entry.codec {
            Codec::F32 => Ok(QuantizedMatrix::dense(
                rows,
                cols,
                f32s_from_bytes(&bytes, rows * cols)?,
            )),
            Codec::Aq {
                books,
                dim,
                codebook,
                outliers,
                column_scales,
                rotation,
            } => {
                let mut tensor = AqTensor::from_bytes(
                    &bytes,
                    (rows, cols),
                    dim as usize,
                    books as usize,
                    outliers as usize,
                    column_scales,
                )?;
                tensor.rotation = rotation;
                let books = self.codebook_set(codebook as usize)?;
                Ok(AqMatrix::new(tensor, books).into())
            }
            Codec::Scalar { bits, group } => {
                if !(group as usize).is_multiple_of(BLOCK) {
                    return Err(FormatError::Invalid(
                        "scalar tensor groups must be multiples of 32 weights",
                    ));
                }
                let tensor = ScalarTensor::from_bytes(&bytes, rows, cols, bits, group as usize)?;
                Ok(BlockMatrix::from_scalar(&tensor).into())
            }
            Codec::Affine { group } => {
                let tensor = AffineTensor::from_bytes(&bytes, rows, cols, group as usize)?;
                Ok(BlockMatrix::from_affine(&tensor).into())
            }
        }
    }

    fn codebook_set(&mut self, index: usize) -> Result<Arc<Vec<f32>>, FormatError> {
        if let Some(Some(set)) = self.codebooks.get(index) {
            return Ok(set.clone());
        }
        let entry = self
            .manifest
            .codebooks
            .get(index)
            .ok_or(FormatError::Invalid("tensor names a missing codebook set"))?;
        let values = (entry.books * entry.dim) as usize * 256;
        let set = Arc::new(codebooks_from_bytes(
            &self.shards.read(&entry.location)?,
            values,
        )?);
        self.codebooks[index] = Some(set.clone());
        Ok(set)
    }
}
