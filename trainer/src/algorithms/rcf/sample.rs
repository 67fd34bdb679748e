//! Reservoir sampling without replacement over one pass of a stream (Li's Algorithm L: after the reservoir fills, a
//! geometric skip to the next record taken, so the cost grows with the log of the stream length, not the length).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A uniform sample of up to `size` records of a stream, each record `dimension` values, seeded.
#[derive(Debug, Clone)]
pub struct Reservoir {
    size: usize,
    dimension: usize,
    /// Row-major, `len() × dimension`.
    points: Vec<f32>,
    /// The stream position of each sampled record.
    keys: Vec<u64>,
    /// The position of the next record to take once full.
    next: u64,
    weight: f64,
    rng: ChaCha8Rng,
}

impl Reservoir {
    /// An empty reservoir of `size` (≥ 1) records of `dimension` values drawing from `rng`.
    pub fn new(size: usize, dimension: usize, rng: ChaCha8Rng) -> Reservoir {
        Reservoir {
            size,
            dimension,
            points: Vec::with_capacity(size.min(1 << 16) * dimension),
            keys: Vec::with_capacity(size.min(1 << 16)),
            next: 0,
            weight: 1.0,
            rng,
        }
    }

    /// A uniform draw in (0, 1].
    fn unit(&mut self) -> f64 {
        1.0 - self.rng.gen::<f64>()
    }

    /// Schedules the next record taken after position `after`.
    fn schedule(&mut self, after: u64) {
        self.weight *= (self.unit().ln() / self.size as f64).exp();
        let denominator = (1.0 - self.weight).ln();
        let skip = if denominator >= 0.0 {
            // The weight underflowed to 0: no later record is ever taken.
            f64::INFINITY
        } else {
            (self.unit().ln() / denominator).floor()
        };
        self.next = if skip.is_finite() && skip < 1e18 {
            after.saturating_add(skip as u64 + 1)
        } else {
            u64::MAX
        };
    }

    /// Offers the record at stream position `key` (positions must be offered in increasing order, from 0).
    /// `point` is only read when the record is taken.
    pub fn offer(&mut self, key: u64, point: impl FnOnce() -> Vec<f32>) {
        if self.keys.len() < self.size {
            self.points.extend(point());
            self.keys.push(key);
            if self.keys.len() == self.size {
                self.weight = 1.0;
                self.schedule(key);
            }
        } else if key == self.next {
            let slot = self.rng.gen_range(0..self.size);
            let values = point();
            self.points[slot * self.dimension..(slot + 1) * self.dimension]
                .copy_from_slice(&values);
            self.keys[slot] = key;
            self.schedule(key);
        }
    }

    /// Whether `offer` would read the record at position `key`.
    pub fn wants(&self, key: u64) -> bool {
        self.keys.len() < self.size || key == self.next
    }

    /// The sampled records (row-major) and their stream positions.
    pub fn into_parts(self) -> (Vec<f32>, Vec<u64>) {
        (self.points, self.keys)
    }

    /// The number of records sampled.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no record has been sampled.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Each of 40 positions should be sampled with probability 10/40 = 0.25.
    #[test]
    fn every_record_is_equally_likely_to_be_kept() {
        let (n, size, trials) = (40u64, 10, 20_000);
        let mut counts = vec![0u32; n as usize];
        for trial in 0..trials {
            let mut reservoir = Reservoir::new(size, 1, ChaCha8Rng::seed_from_u64(trial as u64));
            for key in 0..n {
                reservoir.offer(key, || vec![key as f32]);
            }
            let (points, keys) = reservoir.into_parts();
            assert_eq!(keys.len(), size);
            for (p, k) in points.iter().zip(&keys) {
                assert_eq!(*p, *k as f32);
                counts[*k as usize] += 1;
            }
        }
        for (key, &count) in counts.iter().enumerate() {
            let rate = f64::from(count) / trials as f64;
            assert!((rate - 0.25).abs() < 0.02, "position {key}: kept {rate}");
        }
    }

    #[test]
    fn a_short_stream_is_kept_whole() {
        let mut reservoir = Reservoir::new(8, 2, ChaCha8Rng::seed_from_u64(0));
        for key in 0..5 {
            reservoir.offer(key, || vec![key as f32, 1.0]);
        }
        assert_eq!(reservoir.len(), 5);
        assert_eq!(reservoir.into_parts().1, vec![0, 1, 2, 3, 4]);
    }
}
