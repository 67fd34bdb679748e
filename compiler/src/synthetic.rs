//! Deterministic synthetic verification rows, for a compile given no data: one shared draw order so that every
//! lowering's rows are reproducible run to run and machine to machine.

/// A small deterministic generator (64-bit LCG): uniform floats in [0, 1) with 24 random bits.
pub struct Lcg(u64);

impl Lcg {
    /// The generator every synthetic row set starts from.
    pub fn new() -> Self {
        Lcg(0x7465726e)
    }

    /// The next uniform value in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / ((1u64 << 24) as f32)
    }
}

impl Default for Lcg {
    fn default() -> Self {
        Lcg::new()
    }
}

/// `rows` rows of `feature_dim` values, row-major. For each value in turn `u` is drawn uniformly from [-3, 3] and
/// `value(feature, u, generator)` gives the value (it may draw more from the generator).
pub fn rows(
    feature_dim: usize,
    rows: usize,
    mut value: impl FnMut(usize, f32, &mut Lcg) -> f32,
) -> Vec<f32> {
    let mut rng = Lcg::new();
    let mut out = Vec::with_capacity(rows * feature_dim);
    for _ in 0..rows {
        for j in 0..feature_dim {
            let u = rng.uniform() * 6.0 - 3.0;
            out.push(value(j, u, &mut rng));
        }
    }
    out
}
