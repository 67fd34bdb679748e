//! tern's kernel for the product of a float32 batch `x` `[rows, k]` by a constant matrix `w` `[k, m]` of at most
//! [`MAX_COLUMNS`] columns (a multiclass Linear Learner's weights, K-Means' centroids, PCA's components), shared by
//! both engines: tract's graphs run it as `SmallMatMul` (`package/small_matmul.rs`), the interpreter for every such
//! `MatMul`. `m` is padded to a multiple of 4 (one wasm SIMD vector; natively the compiler vectorizes the scalar
//! form) and four rows' accumulators stay in registers. Every output is `Σₖ x[r, k] · w[k, j]` summed in order of
//! `k` from 0.0, one rounded multiply and one rounded add per term (no fused multiply-add), so the SIMD and scalar
//! paths give the same bits and a row's bits never depend on its batch.

/// The widest constant matrix the kernel takes: beyond it tract's kernels waste little to padding.
pub const MAX_COLUMNS: usize = 16;

/// `w` `[k, m]` row-major (as `T`: floats or their bits) with each row padded by zeros to a multiple of 4 columns.
pub fn pad_columns<T: Copy + Default>(w: &[T], k: usize, m: usize) -> Vec<T> {
    let width = m.div_ceil(4) * 4;
    let mut padded = vec![T::default(); k * width];
    for (row, values) in padded.chunks_exact_mut(width).zip(w.chunks_exact(m.max(1))) {
        row[..m].copy_from_slice(values);
    }
    padded
}

/// `out[r, j] = Σₖ x[r, k] · w[k, j]` for `x` `[rows, k]`, `w` `[k, width]` (`width` = `m` padded to a multiple of 4,
/// the padding zero) and `out` `[rows, m]`; terms added in order of `k` from 0.0, unfused.
pub fn matmul_rows(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    let width = m.div_ceil(4) * 4;
    debug_assert_eq!(w.len(), k * width);
    if k == 0 {
        out.fill(0.0);
        return;
    }
    match width / 4 {
        1 => rows_of::<1>(x, w, k, m, out),
        2 => rows_of::<2>(x, w, k, m, out),
        3 => rows_of::<3>(x, w, k, m, out),
        _ => rows_of::<4>(x, w, k, m, out),
    }
}

/// [`matmul_rows`] for `w` `V` vectors of 4 columns wide: four rows at a time, then the rest one by one.
fn rows_of<const V: usize>(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    let mut x_blocks = x.chunks_exact(4 * k);
    let mut out_blocks = out.chunks_exact_mut(4 * m);
    for (xs, outs) in (&mut x_blocks).zip(&mut out_blocks) {
        block::<V, 4>(xs, w, k, m, outs);
    }
    for (xs, outs) in x_blocks
        .remainder()
        .chunks_exact(k)
        .zip(out_blocks.into_remainder().chunks_exact_mut(m))
    {
        block::<V, 1>(xs, w, k, m, outs);
    }
}

/// `R` rows of `x` times `w` (`V` vectors wide) into `R` rows of `out`, with wasm SIMD.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn block<const V: usize, const R: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    m: usize,
    out: &mut [f32],
) {
    use core::arch::wasm32::*;
    let mut acc = [[f32x4_splat(0.0); V]; R];
    for (kk, w_row) in w.chunks_exact(4 * V).enumerate().take(k) {
        // SAFETY: `w_row` holds 4·V floats, so each of the V 16-byte loads is in bounds (v128_load is unaligned).
        let wv: [v128; V] =
            core::array::from_fn(|v| unsafe { v128_load(w_row.as_ptr().add(4 * v).cast()) });
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let xv = f32x4_splat(x[r * k + kk]);
            for (a, &wj) in acc_row.iter_mut().zip(&wv) {
                *a = f32x4_add(*a, f32x4_mul(xv, wj));
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        let mut lanes = [0f32; 16];
        for (v, a) in acc_row.iter().enumerate() {
            lanes[4 * v..4 * v + 4].copy_from_slice(&[
                f32x4_extract_lane::<0>(*a),
                f32x4_extract_lane::<1>(*a),
                f32x4_extract_lane::<2>(*a),
                f32x4_extract_lane::<3>(*a),
            ]);
        }
        out[r * m..(r + 1) * m].copy_from_slice(&lanes[..m]);
    }
}

/// `R` rows of `x` times `w` (`V` vectors wide) into `R` rows of `out`: the scalar form of the SIMD block, the same
/// operations in the same order.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn block<const V: usize, const R: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    m: usize,
    out: &mut [f32],
) {
    let mut acc = [[[0f32; 4]; V]; R];
    for (kk, w_row) in w.chunks_exact(4 * V).enumerate().take(k) {
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let xv = x[r * k + kk];
            for (v, lanes) in acc_row.iter_mut().enumerate() {
                for (lane, a) in lanes.iter_mut().enumerate() {
                    *a += xv * w_row[4 * v + lane];
                }
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        out[r * m..(r + 1) * m].copy_from_slice(&acc_row.as_flattened()[..m]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The definition, term by term in order of k.
    pub(crate) fn naive(x: &[f32], w: &[f32], k: usize, m: usize) -> Vec<f32> {
        let rows = x.len() / k;
        let mut out = vec![0f32; rows * m];
        for r in 0..rows {
            for j in 0..m {
                let mut sum = 0f32;
                for kk in 0..k {
                    sum += x[r * k + kk] * w[kk * m + j];
                }
                out[r * m + j] = sum;
            }
        }
        out
    }

    #[test]
    fn equals_the_definition_bit_for_bit_for_every_width_and_row_count() {
        for m in 1..=MAX_COLUMNS {
            for rows in [0, 1, 3, 4, 5, 9] {
                let k = 7;
                let x: Vec<f32> = (0..rows * k)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                    .collect();
                let w: Vec<f32> = (0..k * m)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 11.0)
                    .collect();
                let padded = pad_columns(&w, k, m);
                let mut have = vec![f32::NAN; rows * m];
                matmul_rows(&x, &padded, k, m, &mut have);
                let want = naive(&x, &w, k, m);
                assert_eq!(
                    have.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "m {m}, {rows} rows"
                );
            }
        }
    }
}
