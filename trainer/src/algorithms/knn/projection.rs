//! Random projections for `dimension_reduction_type`, materialised as a `[feature_dim, target]` matrix `R` so that
//! a point maps to `x · R` (what the compiler lowers to one `MatMul`). Both preserve squared L2 norms and inner
//! products in expectation (`E‖xR‖² = ‖x‖²`).
//!
//! - `sign`: `R[j][i] = ±1/√target`, each sign an independent fair coin.
//! - `fjlt`: the subsampled randomised Hadamard transform `√(n/target) · S · H · D` on `x` zero-padded to
//!   `n = 2^⌈log₂ feature_dim⌉`, with `D` random ±1 signs, `H` the orthonormal Walsh–Hadamard matrix and `S` a
//!   uniform choice of `target` distinct rows; entry-wise `R[j][i] = D[j] · (−1)^popcount(s_i & j) / √target`.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::settings::Reduction;

/// The `[input_dim, target_dim]` projection matrix (row-major) of `reduction`, drawn from `seed`.
pub fn matrix(reduction: Reduction, input_dim: usize, target_dim: usize, seed: u64) -> Vec<f32> {
    // A stream of its own, so that the projection does not depend on how much sampling consumed.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b6e_6e5f_7072_6f6a);
    let scale = 1.0 / (target_dim as f64).sqrt();
    match reduction {
        Reduction::Sign => (0..input_dim * target_dim)
            .map(|_| if rng.gen::<bool>() { scale } else { -scale } as f32)
            .collect(),
        Reduction::Fjlt => {
            let padded = input_dim.next_power_of_two();
            let signs: Vec<f64> = (0..input_dim)
                .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
                .collect();
            let mut rows = sample(&mut rng, padded, target_dim).into_vec();
            rows.sort_unstable();
            let mut out = Vec::with_capacity(input_dim * target_dim);
            for (j, sign) in signs.iter().enumerate() {
                for &s in &rows {
                    let parity = if (s & j).count_ones() % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    };
                    out.push((sign * parity * scale) as f32);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(r: &[f32], x: &[f64], t: usize) -> Vec<f64> {
        (0..t)
            .map(|i| {
                x.iter()
                    .enumerate()
                    .map(|(j, v)| v * f64::from(r[j * t + i]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn fjlt_with_every_row_kept_is_an_isometry() {
        // target = padded dimension: S keeps every row, so √(n/n)·H·D is orthonormal and norms are exact.
        let r = matrix(Reduction::Fjlt, 8, 8, 5);
        let x = [1.0, -2.0, 0.5, 3.0, 0.0, 4.0, -1.0, 2.0];
        let norm: f64 = x.iter().map(|v| v * v).sum();
        let projected: f64 = project(&r, &x, 8).iter().map(|v| v * v).sum();
        assert!(
            (norm - projected).abs() < 1e-5 * norm,
            "{norm} vs {projected}"
        );
    }

    #[test]
    fn projections_preserve_norms_on_average_and_follow_the_seed() {
        for reduction in [Reduction::Sign, Reduction::Fjlt] {
            let (d, t) = (64, 16);
            let mut ratio = 0.0;
            let trials = 200;
            for seed in 0..trials {
                let r = matrix(reduction, d, t, seed);
                let x: Vec<f64> = (0..d).map(|j| ((j * 7 + 3) % 11) as f64 - 5.0).collect();
                let norm: f64 = x.iter().map(|v| v * v).sum();
                ratio += project(&r, &x, t).iter().map(|v| v * v).sum::<f64>() / norm;
            }
            let mean = ratio / trials as f64;
            assert!(
                (mean - 1.0).abs() < 0.1,
                "{reduction:?}: E‖xR‖²/‖x‖² = {mean}"
            );
            assert_eq!(matrix(reduction, d, t, 3), matrix(reduction, d, t, 3));
            assert_ne!(matrix(reduction, d, t, 3), matrix(reduction, d, t, 4));
        }
    }
}
