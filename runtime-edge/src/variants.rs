//! Production variants behind one endpoint: weighted traffic split with a seeded generator, and routing by name.

use std::sync::Mutex;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::pipeline::Pipeline;

/// One loaded production variant.
#[derive(Debug)]
pub struct Variant {
    pub name: String,
    pub weight: f64,
    pub pipeline: std::sync::Arc<Pipeline>,
}

/// The loaded variants and the generator that splits untargeted traffic between them.
#[derive(Debug)]
pub struct Variants {
    variants: Vec<Variant>,
    total_weight: f64,
    rng: Mutex<ChaCha8Rng>,
}

impl Variants {
    /// `variants` as validated by [`crate::ServeConfig::validate`] (weights non-negative, positive sum); `seed`
    /// makes the sequence of weighted choices reproducible.
    pub fn new(variants: Vec<Variant>, seed: u64) -> Variants {
        let total_weight = variants.iter().map(|v| v.weight).sum();
        Variants {
            variants,
            total_weight,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// Every variant, in configuration order.
    pub fn all(&self) -> &[Variant] {
        &self.variants
    }

    /// The variant named `name`, if any.
    pub fn named(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// A variant drawn with probability weight / total weight; a weight-0 variant is never drawn.
    pub fn choose(&self) -> &Variant {
        let draw: f64 = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            rng.gen::<f64>() * self.total_weight
        };
        pick(&self.variants, draw)
    }
}

/// The variant whose cumulative weight interval contains `draw` (in `[0, total)`), skipping weight-0 variants.
fn pick(variants: &[Variant], draw: f64) -> &Variant {
    let mut cumulative = 0.0;
    let mut last_positive = None;
    for variant in variants.iter().filter(|v| v.weight > 0.0) {
        cumulative += variant.weight;
        last_positive = Some(variant);
        if draw < cumulative {
            return variant;
        }
    }
    // Rounding can leave `draw` a hair above the float sum: the last weighted variant takes it.
    last_positive.unwrap_or(&variants[0])
}
