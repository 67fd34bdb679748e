//! The `ai.tern` `RandomCutForestScore` op never panics: arbitrary attributes are refused with an error or accepted,
//! and an accepted forest scores arbitrary rows (or refuses a wrong width) without panicking or looping.
//!
//! Bytes decode as: feature_dim (0..4), tree count (0..4) and that many node counts, node count (0..16) and per node
//! left, right, cut dimension (small signed ints, so valid indices are common), cut value, mass, then the boxes, then
//! the input rows. Floats come from one byte (small multiples of 1/4) or, by a tag, NaN, ±infinity or 4 raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_runtime::ops::rcf::{Forest, ForestAttributes};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn int(&mut self) -> i64 {
        i64::from(self.byte() as i8 % 8)
    }

    fn float(&mut self) -> f32 {
        match self.byte() % 8 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => f32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]),
            _ => f32::from(self.byte() as i8) / 4.0,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let feature_dim = i64::from(bytes.byte() % 4);
    let trees = bytes.byte() % 4;
    let tree_node_counts = (0..trees).map(|_| bytes.int()).collect();
    let nodes = usize::from(bytes.byte() % 16);
    let mut attributes = ForestAttributes {
        feature_dim,
        tree_node_counts,
        ..Default::default()
    };
    for _ in 0..nodes {
        attributes.nodes_left.push(bytes.int());
        attributes.nodes_right.push(bytes.int());
        attributes.nodes_cut_dimension.push(bytes.int());
        attributes.nodes_cut_value.push(bytes.float());
        attributes.nodes_mass.push(bytes.int());
    }
    let box_values = nodes * feature_dim.max(0) as usize;
    for _ in 0..box_values {
        attributes.nodes_box_min.push(bytes.float());
        attributes.nodes_box_max.push(bytes.float());
    }
    match Forest::from_attributes(attributes) {
        Ok(forest) => {
            let rows = usize::from(bytes.byte() % 4);
            let columns = usize::from(bytes.byte() % 4);
            let values: Vec<f32> = (0..rows * columns).map(|_| bytes.float()).collect();
            match forest.evaluate(&values, rows, columns) {
                Ok(scores) => assert_eq!(scores.len(), rows),
                Err(error) => {
                    let _ = error.to_string();
                }
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
