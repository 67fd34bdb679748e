//! `ai.tern` `RandomCutForestScore` (version 1): the anomaly score of SageMaker's Random Cut Forest as tern's trainer
//! computes it, an op ONNX has no equivalent for. Documented for users in `docs/ai.tern.md`.
//!
//! **Input** `X`: `[N, feature_dim]`, any numeric type (read as float32).
//! **Output** `Y`: float32 `[N, 1]`, each row's score.
//!
//! **Attributes** (trees one after another; each tree's nodes numbered from 0 within the tree, node 0 its root):
//! - `feature_dim` (int ≥ 1): the number of features.
//! - `tree_node_counts` (ints, one per tree, each ≥ 1): how many of the node entries below each tree owns.
//! - `nodes_left`, `nodes_right` (ints, one per node): the children's numbers within the tree, `-1` for a leaf.
//! - `nodes_cut_dimension` (ints): the feature a branch cuts on, `-1` for a leaf.
//! - `nodes_cut_value` (floats): a branch sends `x[cut_dimension] <= cut_value` left, the rest right; a leaf's is
//!   not read (any value, NaN included, is accepted there).
//! - `nodes_mass` (ints, ≥ 1): sample points under the node, duplicates included; a branch's is its children's sum.
//! - `nodes_box_min`, `nodes_box_max` (floats, `nodes × feature_dim`, row-major): each node's bounding box, finite
//!   with min ≤ max; a leaf's box is its point (min = max).
//!
//! **Semantics.** Per tree, the expected collusive displacement (CoDisp, Guha et al. 2016) of `x` under random
//! insertion: descending from the root along the cuts, node `v_k` of mass `m_k` has separation probability
//! `p_k = Σ_j growth_j / Σ_j extent_j` of its box grown to hold `x` (0 when `x` is inside), and the insertion stops
//! there with probability `P_k = p_k Π_{i<k}(1 − p_i)` (at a leaf whose point differs from `x`, all the remaining
//! probability). Stopping beside `v_k` gives `CoDisp_k = max(m_k, max_{1≤i≤k} (m_{i−1} − m_i)/(m_i + 1))` (`m_0`
//! beside the root); reaching a leaf equal to `x` gives the ancestor maximum alone (0 for a one-leaf tree). The tree's
//! score is `Σ_k P_k · CoDisp_k`; `Y` is the trees' scores summed in order and divided by the number of trees. All
//! arithmetic is float64 in that order, rounded to float32 once, so the result equals
//! `tern_trainer::algorithms::rcf::RcfModel::score_point` bit for bit. A NaN feature compares false against every
//! cut and is ignored by the box arithmetic (the runtime refuses NaN requests before they reach the graph).
//!
//! **Load-time checks** (a malformed forest is refused with the tree and node named, never evaluated): attribute
//! lengths agree, children in range, every non-root node claimed by exactly one parent, every node reachable from its
//! root (so no cycles), leaves with no cut and a point box, masses ≥ 1 and adding up, cut dimensions in range, cut
//! values and boxes finite, box minimum ≤ maximum.

use anyhow::{bail, ensure, Context, Result};

use super::NodeAttributes;

/// The op's ONNX domain.
pub const DOMAIN: &str = "ai.tern";
/// The op's name.
pub const OP_TYPE: &str = "RandomCutForestScore";
/// The domain version this implementation reads.
pub const VERSION: i64 = 1;

/// The op's attributes as lists, before any check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForestAttributes {
    pub feature_dim: i64,
    pub tree_node_counts: Vec<i64>,
    pub nodes_left: Vec<i64>,
    pub nodes_right: Vec<i64>,
    pub nodes_cut_dimension: Vec<i64>,
    pub nodes_cut_value: Vec<f32>,
    pub nodes_mass: Vec<i64>,
    pub nodes_box_min: Vec<f32>,
    pub nodes_box_max: Vec<f32>,
}

/// No child.
const LEAF: u32 = u32::MAX;

/// A checked forest: evaluation cannot index out of bounds or loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    feature_dim: usize,
    /// Each tree's first node (its root) in the node arrays.
    roots: Vec<usize>,
    /// Children as indices into the node arrays; [`LEAF`] for none.
    left: Vec<u32>,
    right: Vec<u32>,
    cut_dimension: Vec<u32>,
    cut_value: Vec<f32>,
    mass: Vec<u32>,
    box_min: Vec<f32>,
    box_max: Vec<f32>,
}

impl Forest {
    /// Reads and checks a `RandomCutForestScore` node's attributes.
    pub fn from_node(node: &impl NodeAttributes) -> Result<Forest> {
        let ints = |name: &str| -> Result<Vec<i64>> {
            node.ints(name)?
                .with_context(|| format!("attribute {name} is missing"))
        };
        let floats = |name: &str| -> Result<Vec<f32>> {
            node.floats(name)?
                .with_context(|| format!("attribute {name} is missing"))
        };
        Forest::from_attributes(ForestAttributes {
            feature_dim: node
                .int("feature_dim")?
                .context("attribute feature_dim is missing")?,
            tree_node_counts: ints("tree_node_counts")?,
            nodes_left: ints("nodes_left")?,
            nodes_right: ints("nodes_right")?,
            nodes_cut_dimension: ints("nodes_cut_dimension")?,
            nodes_cut_value: floats("nodes_cut_value")?,
            nodes_mass: ints("nodes_mass")?,
            nodes_box_min: floats("nodes_box_min")?,
            nodes_box_max: floats("nodes_box_max")?,
        })
    }

    /// Checks `attributes` (see the module documentation) and builds the forest.
    ///
    /// # Errors
    /// A message naming the attribute, tree and node at fault.
    pub fn from_attributes(attributes: ForestAttributes) -> Result<Forest> {
        let ForestAttributes {
            feature_dim,
            tree_node_counts,
            nodes_left,
            nodes_right,
            nodes_cut_dimension,
            nodes_cut_value,
            nodes_mass,
            nodes_box_min,
            nodes_box_max,
        } = attributes;
        ensure!(
            (1..=i64::from(u32::MAX)).contains(&feature_dim),
            "feature_dim = {feature_dim}, expected at least 1"
        );
        let d = feature_dim as usize;
        ensure!(
            !tree_node_counts.is_empty(),
            "tree_node_counts is empty: a forest needs a tree"
        );
        let n = nodes_left.len();
        ensure!(n < LEAF as usize, "{n} nodes is more than this op indexes");
        for (name, len) in [
            ("nodes_right", nodes_right.len()),
            ("nodes_cut_dimension", nodes_cut_dimension.len()),
            ("nodes_cut_value", nodes_cut_value.len()),
            ("nodes_mass", nodes_mass.len()),
        ] {
            ensure!(len == n, "{name} has {len} entries, nodes_left has {n}");
        }
        let box_len = n
            .checked_mul(d)
            .with_context(|| format!("{n} nodes × feature_dim {d} overflows"))?;
        for (name, len) in [
            ("nodes_box_min", nodes_box_min.len()),
            ("nodes_box_max", nodes_box_max.len()),
        ] {
            ensure!(
                len == box_len,
                "{name} has {len} entries, expected nodes × feature_dim = {n} × {d}"
            );
        }
        let mut roots = Vec::with_capacity(tree_node_counts.len());
        let mut left = vec![LEAF; n];
        let mut right = vec![LEAF; n];
        let mut cut_dimension = vec![0u32; n];
        let mut mass = vec![0u32; n];
        let mut has_parent = vec![false; n];
        let mut start = 0usize;
        for (t, &count) in tree_node_counts.iter().enumerate() {
            ensure!(
                count >= 1 && (count as u64) <= (n - start) as u64,
                "tree_node_counts[{t}] = {count}: tree {t} would need nodes {start}..{start}+{count} of {n}"
            );
            let count = count as usize;
            roots.push(start);
            for local in 0..count {
                let i = start + local;
                let at = || format!("tree {t}, node {local}");
                ensure!(
                    (1..=i64::from(u32::MAX)).contains(&nodes_mass[i]),
                    "{}: nodes_mass = {}, expected at least 1",
                    at(),
                    nodes_mass[i]
                );
                mass[i] = nodes_mass[i] as u32;
                let (low, high) = (
                    &nodes_box_min[i * d..(i + 1) * d],
                    &nodes_box_max[i * d..(i + 1) * d],
                );
                if let Some(j) = (0..d).find(|&j| !low[j].is_finite() || !high[j].is_finite()) {
                    bail!("{}: bounding box value {j} is not finite", at());
                }
                if let Some(j) = (0..d).find(|&j| low[j] > high[j]) {
                    bail!(
                        "{}: nodes_box_min[{j}] = {} exceeds nodes_box_max[{j}] = {}",
                        at(),
                        low[j],
                        high[j]
                    );
                }
                match (nodes_left[i], nodes_right[i]) {
                    (-1, -1) => {
                        ensure!(
                            nodes_cut_dimension[i] == -1,
                            "{}: a leaf has nodes_cut_dimension {}, expected -1",
                            at(),
                            nodes_cut_dimension[i]
                        );
                        ensure!(low == high, "{}: a leaf's box is not a point", at());
                    }
                    (l, r) => {
                        for (name, child) in [("nodes_left", l), ("nodes_right", r)] {
                            ensure!(
                                (1..count as i64).contains(&child),
                                "{}: {name} = {child}, expected a node 1..{count} of the tree",
                                at()
                            );
                            let c = start + child as usize;
                            ensure!(
                                !std::mem::replace(&mut has_parent[c], true),
                                "tree {t}, node {child} has two parents"
                            );
                        }
                        left[i] = (start + l as usize) as u32;
                        right[i] = (start + r as usize) as u32;
                        ensure!(
                            (0..feature_dim).contains(&nodes_cut_dimension[i]),
                            "{}: nodes_cut_dimension = {}, expected 0..{d}",
                            at(),
                            nodes_cut_dimension[i]
                        );
                        cut_dimension[i] = nodes_cut_dimension[i] as u32;
                        ensure!(
                            nodes_cut_value[i].is_finite(),
                            "{}: nodes_cut_value = {} is not finite",
                            at(),
                            nodes_cut_value[i]
                        );
                    }
                }
            }
            // Every node of the tree reachable from its root exactly once: with one parent per node this rules out
            // cycles and nodes hanging off nothing.
            let mut reached = vec![false; count];
            let mut pending = vec![start];
            while let Some(i) = pending.pop() {
                ensure!(
                    !std::mem::replace(&mut reached[i - start], true),
                    "tree {t}, node {} is reached twice",
                    i - start
                );
                if left[i] != LEAF {
                    let (l, r) = (left[i] as usize, right[i] as usize);
                    ensure!(
                        u64::from(mass[l]) + u64::from(mass[r]) == u64::from(mass[i]),
                        "tree {t}, node {}: nodes_mass = {} is not its children's {} + {}",
                        i - start,
                        mass[i],
                        mass[l],
                        mass[r]
                    );
                    pending.push(l);
                    pending.push(r);
                }
            }
            if let Some(local) = reached.iter().position(|&r| !r) {
                bail!("tree {t}, node {local} is not reachable from the tree's root");
            }
            start += count;
        }
        ensure!(
            start == n,
            "tree_node_counts add up to {start} nodes, the node attributes hold {n}"
        );
        // A leaf's cut value is never read; storing 0 keeps equal forests equal (`Eq`), whatever a leaf held.
        let mut cut_value = nodes_cut_value;
        for (value, &child) in cut_value.iter_mut().zip(&left) {
            if child == LEAF {
                *value = 0.0;
            }
        }
        Ok(Forest {
            feature_dim: d,
            roots,
            left,
            right,
            cut_dimension,
            cut_value,
            mass,
            box_min: nodes_box_min,
            box_max: nodes_box_max,
        })
    }

    /// The number of features a row has.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// The number of trees.
    pub fn num_trees(&self) -> usize {
        self.roots.len()
    }

    fn tree_score(&self, root: usize, x: &[f32]) -> f64 {
        let d = self.feature_dim;
        let mut expected = 0.0f64;
        let mut remaining = 1.0f64;
        let mut ancestor_ratio = 0.0f64;
        let mut parent_mass: Option<f64> = None;
        let mut at = root;
        loop {
            let m = f64::from(self.mass[at]);
            if let Some(above) = parent_mass {
                ancestor_ratio = ancestor_ratio.max((above - m) / (m + 1.0));
            }
            let codisp_beside = if parent_mass.is_some() {
                m.max(ancestor_ratio)
            } else {
                m
            };
            let low = &self.box_min[at * d..(at + 1) * d];
            let high = &self.box_max[at * d..(at + 1) * d];
            if self.left[at] == LEAF {
                if low == x {
                    expected += remaining * ancestor_ratio;
                } else {
                    expected += remaining * codisp_beside;
                }
                return expected;
            }
            let p = separation_probability(low, high, x);
            if p > 0.0 {
                expected += remaining * p * codisp_beside;
                remaining *= 1.0 - p;
            }
            at = if x[self.cut_dimension[at] as usize] <= self.cut_value[at] {
                self.left[at] as usize
            } else {
                self.right[at] as usize
            };
            parent_mass = Some(m);
        }
    }

    /// The score of one row of `feature_dim` values.
    pub fn score(&self, x: &[f32]) -> f32 {
        let total: f64 = self
            .roots
            .iter()
            .map(|&root| self.tree_score(root, x))
            .sum();
        (total / self.roots.len() as f64) as f32
    }

    /// Checks that rows of `columns` features are what the forest reads.
    pub fn check_columns(&self, columns: usize) -> Result<()> {
        ensure!(
            columns == self.feature_dim,
            "the input has {columns} features, the forest reads {}",
            self.feature_dim
        );
        Ok(())
    }

    /// Scores `rows` rows of `features` (row-major, `columns` per row).
    pub fn evaluate(&self, features: &[f32], rows: usize, columns: usize) -> Result<Vec<f32>> {
        self.check_columns(columns)?;
        ensure!(
            Some(features.len()) == rows.checked_mul(columns),
            "input holds {} values, expected {rows} × {columns}",
            features.len()
        );
        Ok(features
            .chunks_exact(columns)
            .map(|row| self.score(row))
            .collect())
    }
}

/// The growth of the box `[low, high]` needed to hold `x`, over the grown box's extent, summed over dimensions in
/// order in f64; 0 when `x` is inside.
fn separation_probability(low: &[f32], high: &[f32], x: &[f32]) -> f64 {
    let mut extent = 0.0f64;
    let mut growth = 0.0f64;
    for ((&a, &b), &v) in low.iter().zip(high).zip(x) {
        let (a, b, v) = (f64::from(a), f64::from(b), f64::from(v));
        let grown_low = a.min(v);
        let grown_high = b.max(v);
        extent += grown_high - grown_low;
        growth += (grown_high - b) + (a - grown_low);
    }
    if growth > 0.0 {
        growth / extent
    } else {
        0.0
    }
}

#[cfg(feature = "tract")]
pub use tract_op::{register, RandomCutForestScoreOp};

/// The op in tract's graphs (the native runtime's engine).
#[cfg(feature = "tract")]
mod tract_op {
    use tract_onnx::model::{OnnxOpRegister, ParsingContext};
    use tract_onnx::pb::NodeProto;
    use tract_onnx::tract_hir::internal::*;

    use super::{Forest, DOMAIN, OP_TYPE};

    /// Registers `RandomCutForestScore` (tract's register is keyed by op type alone).
    pub fn register(register: &mut OnnxOpRegister) {
        register.insert(OP_TYPE, parse);
    }

    fn parse(
        _context: &ParsingContext,
        node: &NodeProto,
    ) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
        if !node.domain.is_empty() && node.domain != DOMAIN {
            bail!(
                "{OP_TYPE} node {:?} is in domain {:?}, expected {DOMAIN}",
                node.name,
                node.domain
            );
        }
        let forest =
            Forest::from_node(node).with_context(|| format!("{OP_TYPE} node {:?}", node.name))?;
        Ok((expand(RandomCutForestScore { forest }), vec![]))
    }

    /// The inference-time (shape-solving) face of the op; wires [`RandomCutForestScoreOp`].
    #[derive(Debug, Clone)]
    struct RandomCutForestScore {
        forest: Forest,
    }

    impl Expansion for RandomCutForestScore {
        fn name(&self) -> StaticName {
            OP_TYPE.into()
        }

        fn rules<'r, 'p: 'r, 's: 'r>(
            &'s self,
            s: &mut Solver<'r>,
            inputs: &'p [TensorProxy],
            outputs: &'p [TensorProxy],
        ) -> InferenceResult {
            check_input_arity(inputs, 1)?;
            check_output_arity(outputs, 1)?;
            s.equals(&inputs[0].rank, 2)?;
            s.equals(&inputs[0].shape[1], self.forest.feature_dim.to_dim())?;
            s.equals(&outputs[0].datum_type, DatumType::F32)?;
            s.equals(&outputs[0].rank, 2)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
            s.equals(&outputs[0].shape[1], 1.to_dim())?;
            Ok(())
        }

        fn wire(
            &self,
            prefix: &str,
            model: &mut TypedModel,
            inputs: &[OutletId],
        ) -> TractResult<TVec<OutletId>> {
            super::super::wire_on_f32(
                model,
                prefix,
                inputs[0],
                RandomCutForestScoreOp {
                    forest: self.forest.clone(),
                },
            )
        }
    }

    /// The typed, runnable op: float32 `[N, feature_dim]` → float32 `[N, 1]`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct RandomCutForestScoreOp {
        pub forest: Forest,
    }

    // Equality of checked attributes, all finite: a total equivalence.
    impl Eq for RandomCutForestScoreOp {}

    impl Op for RandomCutForestScoreOp {
        fn name(&self) -> StaticName {
            OP_TYPE.into()
        }

        op_as_typed_op!();
    }

    impl EvalOp for RandomCutForestScoreOp {
        op_out_of_plan!();

        fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
            super::super::eval_on_rows(OP_TYPE, inputs, 1, |values, rows, columns| {
                self.forest.evaluate(values, rows, columns)
            })
        }
    }

    impl TypedOp for RandomCutForestScoreOp {
        fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
            let rows = inputs[0].shape[0].clone();
            Ok(tvec!(f32::fact(&[rows, 1.to_dim()])))
        }

        as_op!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tree over 1-D points {0, 1, 3}: root cuts at 2 (left: {0, 1} cut at 0.5), and a one-leaf tree at 1
    /// holding two copies.
    fn attributes() -> ForestAttributes {
        ForestAttributes {
            feature_dim: 1,
            tree_node_counts: vec![5, 1],
            nodes_left: vec![1, 3, -1, -1, -1, -1],
            nodes_right: vec![2, 4, -1, -1, -1, -1],
            nodes_cut_dimension: vec![0, 0, -1, -1, -1, -1],
            nodes_cut_value: vec![2.0, 0.5, 0.0, 0.0, 0.0, 0.0],
            nodes_mass: vec![3, 2, 1, 1, 1, 2],
            nodes_box_min: vec![0.0, 0.0, 3.0, 0.0, 1.0, 1.0],
            nodes_box_max: vec![3.0, 1.0, 3.0, 0.0, 1.0, 1.0],
        }
    }

    /// Worked by hand from the definition.
    #[test]
    fn scores_follow_the_expected_codisp_definition() {
        let forest = Forest::from_attributes(attributes()).unwrap();
        // x = 5: root box [0,3] grows to [0,5], p = 2/5, CoDisp beside the root = 3. Then the leaf {3} (mass 1,
        // ancestor ratio (3−1)/2 = 1): CoDisp = max(1, 1) = 1 with the remaining 3/5. Tree 1: leaf {1}×2 ≠ 5,
        // CoDisp = 2. Mean of (2/5·3 + 3/5·1) = 1.8 and 2.
        assert_eq!(
            forest.score(&[5.0]),
            ((0.4 * 3.0 + 0.6 * 1.0 + 2.0) / 2.0) as f32
        );
        // x = 1, inside every box, equal to the leaf {1}: ancestor ratios (3−2)/3 and (2−1)/2 → 0.5. Tree 1: equal to
        // its only leaf, 0.
        assert_eq!(forest.score(&[1.0]), 0.25);
        // x = 0.75: inside the root's box and {0, 1}'s; goes right to leaf {1}, which differs: max(1, 1/3, 1/2) = 1.
        assert_eq!(forest.score(&[0.75]), ((1.0 + 2.0) / 2.0) as f32);
        assert_eq!(
            forest.evaluate(&[5.0, 1.0], 2, 1).unwrap(),
            vec![forest.score(&[5.0]), 0.25]
        );
        assert!(forest.evaluate(&[5.0, 1.0], 1, 2).is_err());
    }

    #[test]
    fn malformed_forests_are_refused_with_the_node_named() {
        let cases: Vec<(Box<dyn Fn(&mut ForestAttributes)>, &str)> = vec![
            (
                Box::new(|a| a.nodes_left[1] = 9),
                "tree 0, node 1: nodes_left = 9",
            ),
            (Box::new(|a| a.nodes_left[1] = 0), "nodes_left = 0"),
            (Box::new(|a| a.nodes_right[1] = 2), "node 2 has two parents"),
            (
                Box::new(|a| a.nodes_cut_value[0] = f32::NAN),
                "nodes_cut_value = NaN",
            ),
            (
                Box::new(|a| a.nodes_cut_dimension[0] = 1),
                "nodes_cut_dimension = 1",
            ),
            (Box::new(|a| a.nodes_mass[0] = 4), "nodes_mass = 4 is not"),
            (Box::new(|a| a.nodes_mass[3] = 0), "nodes_mass = 0"),
            (Box::new(|a| a.nodes_box_min[2] = 4.0), "exceeds"),
            (Box::new(|a| a.nodes_box_max[4] = 1.5), "not a point"),
            (
                Box::new(|a| a.nodes_box_max[0] = f32::INFINITY),
                "not finite",
            ),
            (
                Box::new(|a| a.tree_node_counts = vec![5, 2]),
                "tree_node_counts[1] = 2",
            ),
            (Box::new(|a| a.tree_node_counts = vec![5]), "add up to 5"),
            (
                Box::new(|a| a.nodes_mass.pop().map(drop).unwrap_or(())),
                "nodes_mass has 5",
            ),
            (Box::new(|a| a.feature_dim = 0), "feature_dim = 0"),
            (
                Box::new(|a| a.nodes_box_min.push(0.0)),
                "nodes_box_min has 7",
            ),
        ];
        for (breaks, wanted) in cases {
            let mut attributes = attributes();
            breaks(&mut attributes);
            let error = Forest::from_attributes(attributes).unwrap_err().to_string();
            assert!(error.contains(wanted), "wanted {wanted:?} in {error:?}");
        }
    }

    /// A leaf's cut value is not read: NaN there loads, scores the same, and leaves the op equal to itself.
    #[test]
    fn a_leafs_cut_value_is_ignored() {
        let mut with_nan = attributes();
        with_nan.nodes_cut_value[2] = f32::NAN;
        let forest = Forest::from_attributes(with_nan).unwrap();
        assert_eq!(forest, Forest::from_attributes(attributes()).unwrap());
        #[cfg(feature = "tract")]
        {
            let op = RandomCutForestScoreOp { forest };
            assert_eq!(op, op.clone());
        }
    }

    /// Node 1 and node 2 point at each other: a cycle no parent reaches.
    #[test]
    fn a_cycle_is_refused_at_load() {
        let attributes = ForestAttributes {
            feature_dim: 1,
            tree_node_counts: vec![5],
            nodes_left: vec![3, 2, 1, -1, -1],
            nodes_right: vec![4, 4, 4, -1, -1],
            nodes_cut_dimension: vec![0, 0, 0, -1, -1],
            nodes_cut_value: vec![0.5; 5],
            nodes_mass: vec![2, 2, 2, 1, 1],
            nodes_box_min: vec![0.0, 0.0, 0.0, 0.0, 1.0],
            nodes_box_max: vec![1.0, 1.0, 1.0, 0.0, 1.0],
        };
        let error = Forest::from_attributes(attributes).unwrap_err().to_string();
        assert!(
            error.contains("two parents") || error.contains("not reachable"),
            "{error}"
        );
    }
}
