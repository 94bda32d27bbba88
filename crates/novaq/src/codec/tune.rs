//! Tuning after coding: the codes stay, the continuous parameters move.
//!
//! Coding chooses every weight's codes against a layer-wise objective; what the model loses
//! shows only end to end. With the codes fixed, each additively coded matrix is a
//! differentiable function of its row scales and of its codebook set's entries
//! ([`AqMatrix::parameter_gradients`] is the adjoint of its decoding), so a caller that can
//! differentiate the model's loss with respect to each decoded matrix (the Llama forward pass
//! of `ohms-llm`, distilling the source model's predictions) moves them by [`Adam`] steps here.
//! [`Tuner::finish`] rounds them to their stored precision (f16) and writes them back: the
//! format, the decoder and the kernel do not change.

use super::{Compressed, Encoding, finished};
use crate::format::blob::f16_bits;
use crate::kernel::AqMatrix;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;

/// Adam (Kingma & Ba), bias-corrected, over one parameter array.
#[derive(Debug, Clone)]
pub struct Adam {
    first: Vec<f32>,
    second: Vec<f32>,
    steps: i32,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-12;

impl Adam {
    pub fn new(len: usize) -> Self {
        Self {
            first: vec![0.0; len],
            second: vec![0.0; len],
            steps: 0,
        }
    }

    /// Moves `params` against `grads` by about `step_size` each (Adam's steps are scale-free:
    /// `step_size` is in the parameters' own units).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], step_size: f32) {
        assert_eq!(params.len(), self.first.len(), "one moment per parameter");
        assert_eq!(grads.len(), params.len(), "one gradient per parameter");
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps);
        let correction2 = 1.0 - BETA2.powi(self.steps);
        let moments = self.first.iter_mut().zip(self.second.iter_mut());
        for ((p, &g), (m, v)) in params.iter_mut().zip(grads).zip(moments) {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= step_size * (*m / correction1) / ((*v / correction2).sqrt() + EPSILON);
        }
    }
}

/// Mean absolute value: the unit a parameter array's step sizes are given in.
fn magnitude(values: &[f32]) -> f32 {
    let sum: f64 = values.iter().map(|v| v.abs() as f64).sum();
    (sum / values.len().max(1) as f64) as f32
}

/// One additively coded matrix being tuned.
struct TunedMatrix {
    /// Index into [`Compressed::tensors`].
    tensor: usize,
    set: usize,
    matrix: AqMatrix,
    scales: Vec<f32>,
    scale_unit: f32,
    adam: Adam,
}

/// One codebook set being tuned (shared by the matrices coded against it).
struct TunedSet {
    entries: Vec<f32>,
    unit: f32,
    adam: Adam,
}

/// A tensor kept in f32 (a norm's gains) being tuned as it is.
struct TunedVector {
    tensor: usize,
    values: Vec<f32>,
    unit: f32,
    adam: Adam,
}

/// The row scales and codebook entries of every additively coded tensor of a
/// [`Compressed`] model, and optionally its f32 vectors, as f32 parameters.
pub struct Tuner {
    matrices: Vec<TunedMatrix>,
    sets: Vec<TunedSet>,
    vectors: Vec<TunedVector>,
}

impl Tuner {
    /// `vectors`: tune the one-dimensional f32 tensors too (in a Llama model, the norms' gains).
    pub fn new(compressed: &Compressed, vectors: bool) -> Self {
        let sets: Vec<TunedSet> = compressed
            .codebooks
            .iter()
            .map(|set| TunedSet {
                unit: magnitude(&set.entries),
                adam: Adam::new(set.entries.len()),
                entries: set.entries.clone(),
            })
            .collect();
        let matrices = compressed
            .tensors
            .iter()
            .enumerate()
            .filter_map(|(index, t)| match &t.encoding {
                Encoding::Additive { tensor, codebook } => {
                    let matrix =
                        AqMatrix::new(tensor.clone(), Arc::new(sets[*codebook].entries.clone()));
                    let scales: Vec<f32> = matrix.scales().to_vec();
                    Some(TunedMatrix {
                        tensor: index,
                        set: *codebook,
                        scale_unit: magnitude(&scales),
                        adam: Adam::new(scales.len()),
                        scales,
                        matrix,
                    })
                }
                _ => None,
            })
            .collect();
        let vectors = compressed
            .tensors
            .iter()
            .enumerate()
            .filter(|_| vectors)
            .filter_map(|(index, t)| match &t.encoding {
                Encoding::F32(values) if t.shape.len() == 1 => Some(TunedVector {
                    tensor: index,
                    unit: magnitude(values),
                    adam: Adam::new(values.len()),
                    values: values.clone(),
                }),
                _ => None,
            })
            .collect();
        Self {
            matrices,
            sets,
            vectors,
        }
    }

    /// Indices (into [`Compressed::tensors`]) of the tensors being tuned.
    pub fn tensors(&self) -> Vec<usize> {
        let matrices = self.matrices.iter().map(|m| m.tensor);
        matrices
            .chain(self.vectors.iter().map(|v| v.tensor))
            .collect()
    }

    /// The current decoded weights of tensor `tensor`, or `None` when it is not tuned.
    pub fn decoded(&self, tensor: usize) -> Option<Vec<f32>> {
        match self.matrices.iter().find(|m| m.tensor == tensor) {
            Some(m) => Some(m.matrix.dequantize()),
            None => self
                .vectors
                .iter()
                .find(|v| v.tensor == tensor)
                .map(|v| v.values.clone()),
        }
    }

    /// One Adam step of every parameter, from `gradient(tensor)` = `∂L/∂W` of each tuned
    /// tensor's decoded weights (`None`: that tensor does not move the loss). `step_size` is
    /// relative: each array moves by about that share of its mean absolute value.
    pub fn step<'g>(
        &mut self,
        gradient: impl Fn(usize) -> Option<&'g [f32]> + Sync,
        step_size: f32,
    ) {
        let set_lens: Vec<usize> = self.sets.iter().map(|s| s.entries.len()).collect();
        let per_matrix: Vec<Option<(Vec<f32>, Vec<f32>)>> = self
            .matrices
            .par_iter()
            .map(|m| {
                let grad = gradient(m.tensor)?;
                let mut scale_grad = vec![0f32; m.scales.len()];
                let mut book_grad = vec![0f32; set_lens[m.set]];
                m.matrix
                    .parameter_gradients(grad, &mut scale_grad, &mut book_grad);
                Some((scale_grad, book_grad))
            })
            .collect();
        let mut set_grads: Vec<Vec<f32>> = set_lens.iter().map(|&n| vec![0f32; n]).collect();
        for (m, grads) in self.matrices.iter_mut().zip(per_matrix) {
            let Some((scale_grad, book_grad)) = grads else {
                continue;
            };
            m.adam
                .step(&mut m.scales, &scale_grad, step_size * m.scale_unit);
            for (total, g) in set_grads[m.set].iter_mut().zip(&book_grad) {
                *total += g;
            }
        }
        for (set, grad) in self.sets.iter_mut().zip(&set_grads) {
            set.adam.step(&mut set.entries, grad, step_size * set.unit);
        }
        let shared: Vec<Arc<Vec<f32>>> = self
            .sets
            .iter()
            .map(|s| Arc::new(s.entries.clone()))
            .collect();
        for m in &mut self.matrices {
            m.matrix.set_parameters(&m.scales, shared[m.set].clone());
        }
        for v in &mut self.vectors {
            if let Some(grad) = gradient(v.tensor) {
                v.adam.step(&mut v.values, grad, step_size * v.unit);
            }
        }
    }

    /// Writes the tuned parameters, rounded to f16 as stored, back into `compressed` and
    /// measures each tuned tensor's error against its `sources` (the input tensors, in order).
    pub fn finish(self, compressed: &mut Compressed, sources: &[Tensor]) {
        for (set, tuned) in compressed.codebooks.iter_mut().zip(&self.sets) {
            set.entries.copy_from_slice(&tuned.entries);
            set.round_to_stored_precision();
        }
        let updated: Vec<(usize, Encoding)> = self
            .matrices
            .iter()
            .map(|m| {
                let Encoding::Additive { tensor, codebook } =
                    &compressed.tensors[m.tensor].encoding
                else {
                    unreachable!("tuned tensors are additively coded");
                };
                let mut tensor = tensor.clone();
                tensor.scales = m.scales.iter().map(|&s| f16_bits(s)).collect();
                (
                    m.tensor,
                    Encoding::Additive {
                        tensor,
                        codebook: *codebook,
                    },
                )
            })
            .collect();
        let vectors = self
            .vectors
            .into_iter()
            .map(|v| (v.tensor, Encoding::F32(v.values)));
        let finished_tensors: Vec<_> = updated
            .into_iter()
            .chain(vectors)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(index, encoding)| {
                let decoded = match &encoding {
                    Encoding::Additive { tensor, codebook } => {
                        let books = Arc::new(compressed.codebooks[*codebook].entries.clone());
                        AqMatrix::new(tensor.clone(), books).dequantize()
                    }
                    Encoding::F32(values) => values.clone(),
                    Encoding::Scalar(_) | Encoding::Affine(_) => {
                        unreachable!("integer-coded tensors are not tuned")
                    }
                };
                (index, finished(&sources[index], encoding, &decoded))
            })
            .collect();
        for (index, tensor) in finished_tensors {
            compressed.tensors[index] = tensor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::rng::Rng;
    use crate::codec::{Mode, Options, compress};

    fn source(rows: usize, cols: usize, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let data = (0..rows * cols).map(|_| rng.normal()).collect();
        Tensor::new("blk.0.ffn_up.weight", vec![rows, cols], data)
    }

    fn compressed(sources: &[Tensor]) -> Compressed {
        let mut options = Options::new(Mode::Additive { books: 2, dim: 4 });
        options.train_vectors = 2048;
        options.rounds = 1;
        options.kmeans_iterations = 4;
        compress(sources, &options)
    }

    /// `L(W) = Σ target ⊙ W`: its gradient in `W` is `target` everywhere.
    fn linear_loss(w: &[f32], target: &[f32]) -> f64 {
        w.iter().zip(target).map(|(a, b)| (a * b) as f64).sum()
    }

    #[test]
    fn parameter_gradients_match_finite_differences() {
        let sources = [source(24, 40, 1)];
        let packed = compressed(&sources);
        let tuner = Tuner::new(&packed, false);
        let m = &tuner.matrices[0];
        let target: Vec<f32> = source(24, 40, 2).data;
        let mut scale_grad = vec![0f32; m.scales.len()];
        let mut book_grad = vec![0f32; tuner.sets[m.set].entries.len()];
        m.matrix
            .parameter_gradients(&target, &mut scale_grad, &mut book_grad);
        // Moves one parameter by ±h and compares the loss's central difference with
        // the analytic gradient.
        let check = |what: &str, analytic: f32, with: &dyn Fn(f32) -> (Vec<f32>, Vec<f32>)| {
            let h = 1e-2f32;
            let loss = |delta: f32| {
                let (scales, entries) = with(delta);
                let mut probe = m.matrix.clone();
                probe.set_parameters(&scales, Arc::new(entries));
                linear_loss(&probe.dequantize(), &target)
            };
            let numeric = (loss(h) - loss(-h)) / (2.0 * h as f64);
            assert!(
                (numeric - analytic as f64).abs() < 1e-2 * (1.0 + numeric.abs()),
                "{what}: {numeric} vs {analytic}"
            );
        };
        let entries = &tuner.sets[m.set].entries;
        for row in [0, 7, 23] {
            check(&format!("row {row}"), scale_grad[row], &|delta| {
                let mut scales = m.scales.clone();
                scales[row] += delta;
                (scales, entries.clone())
            });
        }
        let used: Vec<usize> = (0..book_grad.len())
            .filter(|&i| book_grad[i] != 0.0)
            .collect();
        assert!(
            used.len() > 100,
            "most entries are used by a 24 × 40 matrix"
        );
        for &i in used.iter().step_by(used.len() / 7) {
            check(&format!("entry {i}"), book_grad[i], &|delta| {
                let mut moved = entries.clone();
                moved[i] += delta;
                (m.scales.clone(), moved)
            });
        }
    }

    #[test]
    fn steps_toward_the_source_lower_the_error_and_finish_writes_it_back() {
        let gains = Tensor::new("blk.0.attn_norm.weight", vec![64], vec![1.0; 64]);
        let sources = [source(64, 64, 3), gains];
        let mut packed = compressed(&sources);
        let before = packed.tensors[0].relative_mse;
        assert!(Tuner::new(&packed, false).decoded(1).is_none());
        let mut tuner = Tuner::new(&packed, true);
        for _ in 0..30 {
            // ∂/∂W of ½‖W − W_source‖², and of ½‖g − 2‖² for the gains.
            let decoded = tuner.decoded(0).expect("tensor 0 is tuned");
            let grad: Vec<f32> = decoded
                .iter()
                .zip(&sources[0].data)
                .map(|(w, s)| w - s)
                .collect();
            let gains = tuner.decoded(1).expect("vectors are tuned when asked");
            let gains_grad: Vec<f32> = gains.iter().map(|g| g - 2.0).collect();
            tuner.step(|t| [&grad[..], &gains_grad[..]].get(t).copied(), 0.01);
        }
        assert_eq!(tuner.tensors(), vec![0, 1]);
        tuner.finish(&mut packed, &sources);
        let Encoding::F32(gains) = &packed.tensors[1].encoding else {
            panic!("gains stay f32");
        };
        assert!(
            gains.iter().all(|&g| g > 1.2),
            "gains moved toward 2: {gains:?}"
        );
        assert!(packed.tensors[1].relative_mse > 0.04);
        let after = packed.tensors[0].relative_mse;
        assert!(after < 0.97 * before, "{before} -> {after}");
        // Written back as stored: decoding the stored tensor gives the error reported.
        let Encoding::Additive { tensor, codebook } = &packed.tensors[0].encoding else {
            panic!("still additively coded");
        };
        let books = Arc::new(packed.codebooks[*codebook].entries.clone());
        let decoded = AqMatrix::new(tensor.clone(), books).dequantize();
        let redone = finished(&sources[0], packed.tensors[0].encoding.clone(), &decoded);
        assert_eq!(redone.relative_mse, after);
        assert!(
            packed.codebooks[*codebook]
                .entries
                .iter()
                .all(|&v| crate::format::blob::f16_round(v) == v)
        );
    }
}
