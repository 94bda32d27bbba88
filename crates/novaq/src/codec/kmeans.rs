//! k-means with k-means++ seeding: the initial codebooks are fitted on residuals with it.

use super::rng::Rng;
use rayon::prelude::*;

/// Vectors handed to one rayon task: large enough to amortise scheduling.
const CHUNK: usize = 2048;
/// Partial sums per k-means update step.
const PARTS: usize = 16;

/// Fits `k` centers of dimension `dim` to `data` (`n × dim`, row-major). Returns the centers
/// (`k × dim`). With fewer distinct points than `k`, the spare centers duplicate existing ones.
pub fn kmeans(data: &[f32], dim: usize, k: usize, iterations: usize, rng: &mut Rng) -> Vec<f32> {
    let n = data.len() / dim;
    assert!(n > 0, "k-means needs at least one vector");
    let mut centers = seed_plus_plus(data, dim, k, rng);
    let mut assignment = vec![0u32; n];
    for _ in 0..iterations {
        assign(data, dim, &centers, &mut assignment);
        // A fixed number of parts summed in order keeps the result independent of scheduling.
        let part = n.div_ceil(PARTS).max(1);
        let partials: Vec<(Vec<f64>, Vec<u64>)> = data
            .par_chunks(part * dim)
            .zip(assignment.par_chunks(part))
            .map(|(vecs, labels)| {
                let mut sums = vec![0f64; k * dim];
                let mut counts = vec![0u64; k];
                for (v, &c) in vecs.chunks_exact(dim).zip(labels) {
                    let c = c as usize;
                    counts[c] += 1;
                    for (s, &x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(v) {
                        *s += x as f64;
                    }
                }
                (sums, counts)
            })
            .collect();
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0u64; k];
        for (s, c) in &partials {
            sums.iter_mut().zip(s).for_each(|(a, b)| *a += b);
            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
        for c in 0..k {
            if counts[c] > 0 {
                for t in 0..dim {
                    centers[c * dim + t] = (sums[c * dim + t] / counts[c] as f64) as f32;
                }
            } else {
                // An empty cluster restarts at a random data point rather than wasting a code.
                let p = rng.below(n);
                centers[c * dim..(c + 1) * dim].copy_from_slice(&data[p * dim..(p + 1) * dim]);
            }
        }
    }
    centers
}

/// Index of the nearest center for every vector.
pub fn assign(data: &[f32], dim: usize, centers: &[f32], out: &mut [u32]) {
    data.par_chunks(CHUNK * dim)
        .zip(out.par_chunks_mut(CHUNK))
        .for_each(|(vecs, labels)| {
            for (v, label) in vecs.chunks_exact(dim).zip(labels) {
                *label = nearest(v, centers, dim).0 as u32;
            }
        });
}

fn nearest(v: &[f32], centers: &[f32], dim: usize) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (c, center) in centers.chunks_exact(dim).enumerate() {
        let d = squared_distance(v, center);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k-means++: each new center is drawn with probability proportional to the squared distance
/// to the nearest center chosen so far.
fn seed_plus_plus(data: &[f32], dim: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = data.len() / dim;
    let mut centers = Vec::with_capacity(k * dim);
    let first = rng.below(n);
    centers.extend_from_slice(&data[first * dim..(first + 1) * dim]);
    let mut dist: Vec<f32> = data
        .par_chunks(dim)
        .map(|v| squared_distance(v, &centers[..dim]))
        .collect();
    for _ in 1..k {
        let total: f64 = dist.iter().map(|&d| d as f64).sum();
        let pick = if total > 0.0 {
            let mut target = rng.next_f64() * total;
            let mut chosen = n - 1;
            for (i, &d) in dist.iter().enumerate() {
                target -= d as f64;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.below(n)
        };
        let new = data[pick * dim..(pick + 1) * dim].to_vec();
        dist.par_iter_mut()
            .zip(data.par_chunks(dim))
            .for_each(|(d, v)| *d = d.min(squared_distance(v, &new)));
        centers.extend_from_slice(&new);
    }
    centers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        let mut rng = Rng::new(3);
        let mut data = Vec::new();
        for i in 0..400 {
            let base = if i % 2 == 0 { -10.0 } else { 10.0 };
            data.push(base + rng.normal() * 0.1);
            data.push(base + rng.normal() * 0.1);
        }
        let mut centers = kmeans(&data, 2, 2, 10, &mut rng);
        centers.sort_by(f32::total_cmp);
        assert!((centers[0] + 10.0).abs() < 0.1 && (centers[3] - 10.0).abs() < 0.1);
    }
}
