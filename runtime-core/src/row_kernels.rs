//! Row kernels shared by both engines: tract's graphs run them as the ops of `package/row_ops.rs` (which replace
//! tract's Softmax, ArgMax / ArgMin over the last axis and its broadcasting arithmetic by a constant row), the
//! interpreter for the same ops. tern's classifier heads reduce short rows (a class per column, often fewer than 16),
//! where per-row setup dwarfs the arithmetic; these kernels run over the whole `[rows, columns]` buffer instead. Each
//! output row is a function of its input row alone, computed with the same operations in the same order whatever the
//! number of rows, so batching never changes a row's bits.
//!
//! Softmax: `y = e / Σe` with `e = exp(x − max(x))`, `exp` a branch-free Cephes-style polynomial (error within 2
//! ulp of the true value on the reduced arguments, exactly 0 below float32's smallest normal) that compilers
//! vectorize. ArgMax / ArgMin: the first (or with `select_last_index`, the last) extreme index, NaN never chosen,
//! exactly as tract's reducer.

/// The arithmetic of an elementwise op by a constant row.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// `values ∘ row` row by row, in place.
pub fn constant_row(values: &mut [f32], row: &[f32], arithmetic: Arithmetic) {
    if row.is_empty() {
        return;
    }
    for chunk in values.chunks_mut(row.len()) {
        let pairs = chunk.iter_mut().zip(row);
        // IEEE addition and multiplication are commutative: `c + x` and `c * x` are `x + c` and `x * c`.
        match arithmetic {
            Arithmetic::Add => pairs.for_each(|(x, &c)| *x += c),
            Arithmetic::Sub => pairs.for_each(|(x, &c)| *x -= c),
            Arithmetic::Mul => pairs.for_each(|(x, &c)| *x *= c),
            Arithmetic::Div => pairs.for_each(|(x, &c)| *x /= c),
        }
    }
}

/// Which extreme ArgMax / ArgMin finds.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Extreme {
    Max,
    Min,
}

/// Softmax of every `columns`-long row of `values`, in place (`columns == 0`: nothing to do).
pub fn softmax_rows(values: &mut [f32], columns: usize) {
    if columns == 0 {
        return;
    }
    for row in values.chunks_mut(columns) {
        let max = row
            .iter()
            .copied()
            .fold(row[0], |max, v| if v > max { v } else { max });
        row.iter_mut().for_each(|v| *v -= max);
    }
    exp_nonpositive_in_place(values);
    for row in values.chunks_mut(columns) {
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// [`exp_nonpositive`] of every value, four lanes at a time where the target has wasm SIMD (the same operations,
/// so the same bits, as the scalar function).
fn exp_nonpositive_in_place(values: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let mut chunks = values.chunks_exact_mut(4);
        for chunk in &mut chunks {
            let lanes = [chunk[0], chunk[1], chunk[2], chunk[3]];
            chunk.copy_from_slice(&simd128::exp_nonpositive(lanes));
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = exp_nonpositive(*v));
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    values.iter_mut().for_each(|v| *v = exp_nonpositive(*v));
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    /// Four lanes of [`super::exp_nonpositive`], operation for operation.
    #[inline]
    pub fn exp_nonpositive(x: [f32; 4]) -> [f32; 4] {
        let splat = f32x4_splat;
        let x = f32x4(x[0], x[1], x[2], x[3]);
        let below = f32x4_lt(x, splat(super::LOWEST));
        let clamped = v128_bitselect(splat(super::LOWEST), x, below);
        let n = f32x4_sub(
            f32x4_add(
                f32x4_mul(clamped, splat(super::LOG2_E)),
                splat(super::ROUND),
            ),
            splat(super::ROUND),
        );
        let r = f32x4_sub(
            f32x4_sub(clamped, f32x4_mul(n, splat(super::LN2_HIGH))),
            f32x4_mul(n, splat(super::LN2_LOW)),
        );
        let mut p = splat(super::POLYNOMIAL[0]);
        for &c in &super::POLYNOMIAL[1..] {
            p = f32x4_add(f32x4_mul(p, r), splat(c));
        }
        let p = f32x4_add(f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r), splat(1.0));
        let scale = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
        let y = v128_bitselect(f32x4_splat(0.0), f32x4_mul(p, scale), below);
        [
            f32x4_extract_lane::<0>(y),
            f32x4_extract_lane::<1>(y),
            f32x4_extract_lane::<2>(y),
            f32x4_extract_lane::<3>(y),
        ]
    }
}

/// ln(f32::MIN_POSITIVE): below it, `e^x` is under float32's smallest normal.
const LOWEST: f32 = -87.336_55;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split for Cody–Waite reduction: 0.693359375 is exact in 9 bits.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 · 2^23 rounds to the nearest integer without a rounding instruction.
const ROUND: f32 = 12_582_912.0;
/// Cephes `expf`'s polynomial, highest degree first.
const POLYNOMIAL: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5, // Cephes' 5.0000001201e-1, rounded to float32
];

/// `e^x` for `x ≤ 0` (Cephes `expf`: Cody–Waite reduction by ln 2, a degree-7 polynomial, the power of two put in
/// the exponent bits). Below ln(f32::MIN_POSITIVE) it returns 0; NaN stays NaN.
#[inline]
fn exp_nonpositive(x: f32) -> f32 {
    let clamped = if x < LOWEST { LOWEST } else { x };
    let n = (clamped * LOG2_E + ROUND) - ROUND;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let p = POLYNOMIAL[1..]
        .iter()
        .fold(POLYNOMIAL[0], |p, &c| p * r + c);
    let p = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < LOWEST {
        0.0
    } else {
        p * scale
    }
}

/// The index of each `columns`-long row's maximum (or minimum): tract's reducer, which starts from the type's
/// most extreme finite value at index 0 and moves only on a strictly better value (or an equal one with
/// `select_last`), so NaN is never chosen.
pub fn arg_extreme_rows(
    values: &[f32],
    columns: usize,
    extreme: Extreme,
    select_last: bool,
) -> Vec<i64> {
    if columns == 0 {
        return Vec::new();
    }
    values
        .chunks(columns)
        .map(|row| {
            let (mut best_index, mut best) = match extreme {
                Extreme::Max => (0, f32::MIN),
                Extreme::Min => (0, f32::MAX),
            };
            for (i, &v) in row.iter().enumerate() {
                let better = match extreme {
                    Extreme::Max => v > best,
                    Extreme::Min => v < best,
                };
                if better || (select_last && v == best) {
                    best_index = i;
                    best = v;
                }
            }
            best_index as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_true_value_on_nonpositive_arguments() {
        let mut x = 0.0f32;
        while x > -87.3 {
            let want = (x as f64).exp();
            let have = exp_nonpositive(x) as f64;
            let ulp = f32::EPSILON as f64 * want;
            assert!(
                (have - want).abs() <= 2.0 * ulp,
                "exp({x}) = {have}, want {want}"
            );
            x -= 0.001_37;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        let columns = 7;
        let values: Vec<f32> = (0..columns * 9)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 3.0)
            .collect();
        let mut have = values.clone();
        softmax_rows(&mut have, columns);
        for (row, out) in values.chunks(columns).zip(have.chunks(columns)) {
            // The shift by the maximum is rounded to float32 as the kernel rounds it; the rest is exact here.
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let exp = |v: f32| ((v - max) as f64).exp();
            let sum: f64 = row.iter().map(|&v| exp(v)).sum();
            for (&v, &y) in row.iter().zip(out) {
                let want = exp(v) / sum;
                assert!(
                    (y as f64 - want).abs() <= 1e-6 * want,
                    "softmax {y}, want {want}"
                );
            }
            let total: f32 = out.iter().sum();
            assert!((total - 1.0).abs() <= 1e-6);
        }
    }

    #[test]
    fn a_rows_softmax_does_not_depend_on_the_other_rows() {
        let columns = 10;
        let values: Vec<f32> = (0..columns * 33)
            .map(|i| ((i * 7919 % 1000) as f32) / 61.0 - 8.0)
            .collect();
        let mut batch = values.clone();
        softmax_rows(&mut batch, columns);
        for (row, out) in values.chunks(columns).zip(batch.chunks(columns)) {
            let mut alone = row.to_vec();
            softmax_rows(&mut alone, columns);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone), bits(out));
        }
    }

    #[test]
    fn arg_extremes_follow_tracts_reducer() {
        let rows = [
            1.0,
            3.0,
            3.0,
            -2.0, //
            f32::NAN,
            0.5,
            f32::NAN,
            0.5, //
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY, //
            f32::NAN,
            f32::NAN,
            f32::NAN,
            f32::NAN,
        ];
        assert_eq!(
            arg_extreme_rows(&rows, 4, Extreme::Max, false),
            [1, 1, 0, 0]
        );
        assert_eq!(arg_extreme_rows(&rows, 4, Extreme::Max, true), [2, 3, 0, 0]);
        assert_eq!(
            arg_extreme_rows(&rows, 4, Extreme::Min, false),
            [3, 1, 0, 0]
        );
        assert_eq!(arg_extreme_rows(&rows, 4, Extreme::Min, true), [3, 3, 3, 0]);
        assert!(arg_extreme_rows(&[], 0, Extreme::Max, false).is_empty());
    }
}
