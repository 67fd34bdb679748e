//! `ai.onnx.ml` `TreeEnsembleRegressor` (opset 1–3 attribute set), which the locked tract-onnx does not
//! register. Semantics follow the ONNX-ML operator specification and onnxruntime's reading of it:
//!
//! - Each tree starts at its root, the node no branch of the tree points to. A branch node compares
//!   `x[nodes_featureids]` with `nodes_values` per `nodes_modes` (`BRANCH_LEQ`, `BRANCH_LT`, `BRANCH_GTE`,
//!   `BRANCH_GT`, `BRANCH_EQ`, `BRANCH_NEQ`); a NaN feature follows the true branch where
//!   `nodes_missing_value_tracks_true` is 1, otherwise the comparison's IEEE result (false, except for `NEQ`).
//! - A leaf adds each `(target_ids, target_weights)` entry listed for it to the row's score of that target.
//! - `aggregate_function` combines the trees per target: `SUM`, `AVERAGE` (sum / number of trees), `MIN`, `MAX`
//!   (a target no reached leaf mentions keeps 0); then `base_values` is added.
//! - `post_transform`: `NONE`, `LOGISTIC`, `SOFTMAX`, `SOFTMAX_ZERO` (`PROBIT` is refused when the graph loads).
//!
//! Input `X` is `[N, F]` (any numeric type, read as float32); output `Y` is float32 `[N, n_targets]`. Leaf sums are
//! accumulated in float64 and rounded once.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};

use super::NodeAttributes;

/// How trees' leaf values combine per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// What is applied to the aggregated scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

/// A branch comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        Some(match text {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            _ => return None,
        })
    }
}

/// One node, children as indices into [`TreeEnsemble::nodes`].
#[derive(Debug, Clone, PartialEq)]
struct Node {
    mode: Mode,
    feature: usize,
    threshold: f32,
    true_child: usize,
    false_child: usize,
    missing_tracks_true: bool,
    /// The node's `(target, weight)` entries, a range of [`TreeEnsemble::leaf_weights`].
    leaf: std::ops::Range<usize>,
}

/// A parsed, validated tree ensemble: evaluation cannot index out of bounds or loop.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    nodes: Vec<Node>,
    /// Root node index and node count of each tree, in order of first appearance.
    trees: Vec<(usize, usize)>,
    leaf_weights: Vec<(usize, f32)>,
    n_targets: usize,
    base_values: Vec<f32>,
    aggregate: Aggregate,
    post_transform: PostTransform,
    /// One past the largest feature index a branch reads.
    feature_span: usize,
}

impl TreeEnsemble {
    /// Parses and validates a `TreeEnsembleRegressor` node's attributes.
    pub fn from_node(node: &impl NodeAttributes) -> Result<TreeEnsemble> {
        for unsupported in [
            "nodes_values_as_tensor",
            "target_weights_as_tensor",
            "base_values_as_tensor",
        ] {
            if node.has(unsupported) {
                bail!("attribute {unsupported} (double-precision tensors) is not supported; use the float lists");
            }
        }
        let n_targets: i64 = node.int("n_targets")?.unwrap_or(1);
        ensure!(
            n_targets >= 1,
            "n_targets must be at least 1, got {n_targets}"
        );
        let n_targets = n_targets as usize;
        let ints = |name: &str| -> Result<Vec<i64>> { Ok(node.ints(name)?.unwrap_or_default()) };
        let floats =
            |name: &str| -> Result<Vec<f32>> { Ok(node.floats(name)?.unwrap_or_default()) };
        let tree_ids = ints("nodes_treeids")?;
        let node_ids = ints("nodes_nodeids")?;
        let feature_ids = ints("nodes_featureids")?;
        let values = floats("nodes_values")?;
        let true_ids = ints("nodes_truenodeids")?;
        let false_ids = ints("nodes_falsenodeids")?;
        let modes: Vec<String> = node.strings("nodes_modes")?.unwrap_or_default();
        let missing = ints("nodes_missing_value_tracks_true")?;
        let n = tree_ids.len();
        ensure!(
            n > 0,
            "nodes_treeids is empty: an ensemble needs at least one node"
        );
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", feature_ids.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
            ("nodes_modes", modes.len()),
        ] {
            ensure!(len == n, "{name} has {len} entries, nodes_treeids has {n}");
        }
        ensure!(
            missing.is_empty() || missing.len() == n,
            "nodes_missing_value_tracks_true has {} entries, nodes_treeids has {n}",
            missing.len()
        );

        let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        let mut trees: Vec<(i64, usize, usize)> = Vec::new();
        let mut tree_of: HashMap<i64, usize> = HashMap::new();
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
                bail!(
                    "node (tree {}, id {}) is listed twice",
                    tree_ids[i],
                    node_ids[i]
                );
            }
            match tree_of.get(&tree_ids[i]) {
                Some(&t) => trees[t].2 += 1,
                None => {
                    tree_of.insert(tree_ids[i], trees.len());
                    trees.push((tree_ids[i], i, 1));
                }
            }
        }

        let mut nodes = Vec::with_capacity(n);
        let mut feature_span = 0;
        for i in 0..n {
            let mode = Mode::parse(&modes[i]).with_context(|| {
                format!("nodes_modes[{i}] = {:?} is not a known mode", modes[i])
            })?;
            let child = |ids: &[i64], name: &str| -> Result<usize> {
                if mode == Mode::Leaf {
                    return Ok(i);
                }
                index.get(&(tree_ids[i], ids[i])).copied().with_context(|| {
                    format!(
                        "{name}[{i}] = {} names no node of tree {}",
                        ids[i], tree_ids[i]
                    )
                })
            };
            let feature = if mode == Mode::Leaf {
                0
            } else {
                ensure!(feature_ids[i] >= 0, "nodes_featureids[{i}] is negative");
                feature_span = feature_span.max(feature_ids[i] as usize + 1);
                feature_ids[i] as usize
            };
            nodes.push(Node {
                mode,
                feature,
                threshold: values[i],
                true_child: child(&true_ids, "nodes_truenodeids")?,
                false_child: child(&false_ids, "nodes_falsenodeids")?,
                missing_tracks_true: missing.get(i).is_some_and(|&m| m != 0),
                leaf: 0..0,
            });
        }

        let target_tree_ids = ints("target_treeids")?;
        let target_node_ids = ints("target_nodeids")?;
        let target_ids = ints("target_ids")?;
        let target_weights = floats("target_weights")?;
        let m = target_ids.len();
        for (name, len) in [
            ("target_treeids", target_tree_ids.len()),
            ("target_nodeids", target_node_ids.len()),
            ("target_weights", target_weights.len()),
        ] {
            ensure!(len == m, "{name} has {len} entries, target_ids has {m}");
        }
        let mut per_node: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
        for j in 0..m {
            let at = index
                .get(&(target_tree_ids[j], target_node_ids[j]))
                .copied()
                .with_context(|| {
                    format!(
                        "target {j} names node (tree {}, id {}), which does not exist",
                        target_tree_ids[j], target_node_ids[j]
                    )
                })?;
            ensure!(
                nodes[at].mode == Mode::Leaf,
                "target {j} names node (tree {}, id {}), which is not a LEAF",
                target_tree_ids[j],
                target_node_ids[j]
            );
            ensure!(
                (0..n_targets as i64).contains(&target_ids[j]),
                "target_ids[{j}] = {} is outside 0..{n_targets}",
                target_ids[j]
            );
            per_node[at].push((target_ids[j] as usize, target_weights[j]));
        }
        let mut leaf_weights = Vec::with_capacity(m);
        for (node, weights) in nodes.iter_mut().zip(per_node) {
            let start = leaf_weights.len();
            leaf_weights.extend(weights);
            node.leaf = start..leaf_weights.len();
        }

        let base_values = floats("base_values")?;
        ensure!(
            base_values.is_empty() || base_values.len() == n_targets,
            "base_values has {} entries, n_targets is {n_targets}",
            base_values.len()
        );
        let aggregate = match node
            .string("aggregate_function")?
            .as_deref()
            .unwrap_or("SUM")
        {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("aggregate_function {other:?}; expected SUM, AVERAGE, MIN or MAX"),
        };
        let post_transform = match node
            .string("post_transform")?
            .as_deref()
            .unwrap_or("NONE")
        {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            other => bail!(
                "post_transform {other:?} is not supported; expected NONE, LOGISTIC, SOFTMAX or SOFTMAX_ZERO"
            ),
        };
        // A tree's root is the node none of its branches points to (the smallest id if several are unreachable).
        let mut is_child = vec![false; n];
        for node in nodes.iter().filter(|node| node.mode != Mode::Leaf) {
            is_child[node.true_child] = true;
            is_child[node.false_child] = true;
        }
        let trees = trees
            .into_iter()
            .map(|(tree, _, count)| {
                (0..n)
                    .filter(|&i| tree_ids[i] == tree && !is_child[i])
                    .min_by_key(|&i| node_ids[i])
                    .map(|root| (root, count))
                    .with_context(|| {
                        format!("tree {tree} has no root: every node is some branch's child")
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TreeEnsemble {
            nodes,
            trees,
            leaf_weights,
            n_targets,
            base_values,
            aggregate,
            post_transform,
            feature_span,
        })
    }

    /// The number of outputs per row.
    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    fn leaf(&self, tree: (usize, usize), row: &[f32]) -> Result<&Node> {
        let (mut at, count) = tree;
        for _ in 0..=count {
            let node = &self.nodes[at];
            let goes_true = match node.mode {
                Mode::Leaf => return Ok(node),
                mode => {
                    // `feature < feature_span <= row.len()`, checked by `evaluate`.
                    let x = row[node.feature];
                    let t = node.threshold;
                    match mode {
                        _ if x.is_nan() && node.missing_tracks_true => true,
                        Mode::Leq => x <= t,
                        Mode::Lt => x < t,
                        Mode::Gte => x >= t,
                        Mode::Gt => x > t,
                        Mode::Eq => x == t,
                        Mode::Neq | Mode::Leaf => x != t,
                    }
                }
            };
            at = if goes_true {
                node.true_child
            } else {
                node.false_child
            };
        }
        bail!("a tree's branches form a cycle (more steps than the tree has nodes)")
    }

    /// Checks that rows of `columns` features hold every feature a branch reads.
    pub fn check_columns(&self, columns: usize) -> Result<()> {
        ensure!(
            columns >= self.feature_span,
            "the input has {columns} features, the trees read feature {}",
            self.feature_span.saturating_sub(1)
        );
        Ok(())
    }

    /// Scores `rows` rows of `features` (row-major, `columns` per row) into `[rows × n_targets]`.
    pub fn evaluate(&self, features: &[f32], rows: usize, columns: usize) -> Result<Vec<f32>> {
        self.check_columns(columns)?;
        ensure!(
            features.len() == rows * columns,
            "input holds {} values, expected {rows} × {columns}",
            features.len()
        );
        let k = self.n_targets;
        let mut out = vec![0f32; rows * k];
        let mut scores = vec![0f64; k];
        let mut reached = vec![false; k];
        for (row, out_row) in features
            .chunks_exact(columns.max(1))
            .zip(out.chunks_exact_mut(k))
        {
            scores.fill(0.0);
            reached.fill(false);
            for &tree in &self.trees {
                let leaf = self.leaf(tree, row)?;
                for &(target, weight) in &self.leaf_weights[leaf.leaf.clone()] {
                    let weight = weight as f64;
                    let score = &mut scores[target];
                    *score = match (self.aggregate, reached[target]) {
                        (Aggregate::Sum | Aggregate::Average, _) | (_, false) => {
                            if reached[target] {
                                *score + weight
                            } else {
                                weight
                            }
                        }
                        (Aggregate::Min, true) => score.min(weight),
                        (Aggregate::Max, true) => score.max(weight),
                    };
                    reached[target] = true;
                }
            }
            for (t, out) in out_row.iter_mut().enumerate() {
                let mut score = scores[t];
                if self.aggregate == Aggregate::Average {
                    score /= self.trees.len() as f64;
                }
                score += self.base_values.get(t).copied().unwrap_or(0.0) as f64;
                *out = score as f32;
            }
            post_transform(self.post_transform, out_row);
        }
        Ok(out)
    }
}

fn post_transform(transform: PostTransform, scores: &mut [f32]) {
    match transform {
        PostTransform::None => {}
        PostTransform::Logistic => {
            for s in scores.iter_mut() {
                *s = 1.0 / (1.0 + (-*s).exp());
            }
        }
        PostTransform::Softmax | PostTransform::SoftmaxZero => {
            let keep = |s: f32| transform == PostTransform::Softmax || s != 0.0;
            let max = scores
                .iter()
                .copied()
                .filter(|&s| keep(s))
                .fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0f32;
            for s in scores.iter_mut() {
                if keep(*s) {
                    *s = (*s - max).exp();
                    total += *s;
                }
            }
            for s in scores.iter_mut() {
                if keep(*s) {
                    *s /= total;
                }
            }
        }
    }
}

#[cfg(feature = "tract")]
pub use tract_op::{register, TreeEnsembleRegressorOp};

/// The op in tract's graphs (the native runtime's engine).
#[cfg(feature = "tract")]
mod tract_op {
    use tract_onnx::model::{OnnxOpRegister, ParsingContext};
    use tract_onnx::pb::NodeProto;
    use tract_onnx::tract_hir::internal::*;

    use super::TreeEnsemble;

    /// Registers `TreeEnsembleRegressor` under its standard name.
    pub fn register(register: &mut OnnxOpRegister) {
        register.insert("TreeEnsembleRegressor", parse);
    }

    fn parse(
        _context: &ParsingContext,
        node: &NodeProto,
    ) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
        let ensemble = TreeEnsemble::from_node(node)
            .with_context(|| format!("TreeEnsembleRegressor node {:?}", node.name))?;
        Ok((expand(TreeEnsembleRegressor { ensemble }), vec![]))
    }

    /// The inference-time (shape-solving) face of the op; wires [`TreeEnsembleRegressorOp`].
    #[derive(Debug, Clone)]
    struct TreeEnsembleRegressor {
        ensemble: TreeEnsemble,
    }

    impl Expansion for TreeEnsembleRegressor {
        fn name(&self) -> StaticName {
            "TreeEnsembleRegressor".into()
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
            s.equals(&outputs[0].datum_type, DatumType::F32)?;
            s.equals(&outputs[0].rank, 2)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
            s.equals(&outputs[0].shape[1], self.ensemble.n_targets.to_dim())?;
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
                TreeEnsembleRegressorOp {
                    ensemble: self.ensemble.clone(),
                },
            )
        }
    }

    /// The typed, runnable op: float32 `[N, F]` → float32 `[N, n_targets]`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TreeEnsembleRegressorOp {
        pub ensemble: TreeEnsemble,
    }

    // Equality of parsed attributes; no NaN threshold survives a meaningful comparison, which only costs tract a
    // missed deduplication.
    impl Eq for TreeEnsembleRegressorOp {}

    impl Op for TreeEnsembleRegressorOp {
        fn name(&self) -> StaticName {
            "TreeEnsembleRegressor".into()
        }

        op_as_typed_op!();
    }

    impl EvalOp for TreeEnsembleRegressorOp {
        op_out_of_plan!();

        fn eval(&self, _context: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
            super::super::eval_on_rows(
                "TreeEnsembleRegressor",
                inputs,
                self.ensemble.n_targets,
                |values, rows, columns| self.ensemble.evaluate(values, rows, columns),
            )
        }
    }

    impl TypedOp for TreeEnsembleRegressorOp {
        fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
            let rows = inputs[0].shape[0].clone();
            Ok(tvec!(f32::fact(&[rows, self.ensemble.n_targets.to_dim()])))
        }

        as_op!();
    }
}

#[cfg(all(test, feature = "tract"))]
mod tests {
    use super::*;
    use tract_onnx::pb::{AttributeProto, NodeProto};

    fn ints(name: &str, values: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 7,
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    fn floats(name: &str, values: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 6,
            floats: values.to_vec(),
            ..Default::default()
        }
    }

    fn strings(name: &str, values: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 8,
            strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    fn string(name: &str, value: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 3,
            s: value.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// Two targets, three trees with NaN routing both ways, an unordered node list, a leaf with two entries for one
    /// target, and a leaf that mentions only target 1.
    fn ensemble_node(aggregate: &str, post: &str, base: &[f32]) -> NodeProto {
        // tree 0: n0 x0 <= 0.5 (NaN → true) ? n1 : n2 ; n2 x1 < 2 (NaN → false) ? n3 : n4
        // tree 1: n0 x2 >= -1 ? n1 : n2 (NaN → false), listed leaves first
        // tree 5: n0 x1 == 3 ? n1 : n2 ; n7 unused is absent, ids need not be dense
        let tree = [0, 0, 0, 0, 0, 1, 1, 1, 5, 5, 5];
        let ids = [0, 1, 2, 3, 4, 1, 2, 0, 0, 1, 9];
        let feature = [0, 0, 1, 0, 0, 0, 0, 2, 1, 0, 0];
        let value = [0.5, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, -1.0, 3.0, 0.0, 0.0];
        let modes = [
            "BRANCH_LEQ",
            "LEAF",
            "BRANCH_LT",
            "LEAF",
            "LEAF",
            "LEAF",
            "LEAF",
            "BRANCH_GTE",
            "BRANCH_EQ",
            "LEAF",
            "LEAF",
        ];
        let true_ids = [1, 0, 3, 0, 0, 0, 0, 1, 1, 0, 0];
        let false_ids = [2, 0, 4, 0, 0, 0, 0, 2, 9, 0, 0];
        let missing = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let target_tree = [0, 0, 0, 0, 0, 1, 1, 1, 5, 5];
        let target_node = [1, 1, 3, 4, 4, 1, 2, 2, 1, 9];
        let target_id = [0, 1, 0, 0, 0, 0, 1, 1, 1, 0];
        let target_weight = [1.0, -1.0, 2.0, 0.25, 0.5, 10.0, 20.0, 5.0, 7.0, -3.0];
        let mut attribute = vec![
            ints("nodes_treeids", &tree),
            ints("nodes_nodeids", &ids),
            ints("nodes_featureids", &feature),
            floats("nodes_values", &value),
            strings("nodes_modes", &modes),
            ints("nodes_truenodeids", &true_ids),
            ints("nodes_falsenodeids", &false_ids),
            ints("nodes_missing_value_tracks_true", &missing),
            ints("target_treeids", &target_tree),
            ints("target_nodeids", &target_node),
            ints("target_ids", &target_id),
            floats("target_weights", &target_weight),
            AttributeProto {
                name: "n_targets".into(),
                r#type: 2,
                i: 2,
                ..Default::default()
            },
            string("aggregate_function", aggregate),
            string("post_transform", post),
        ];
        if !base.is_empty() {
            attribute.push(floats("base_values", base));
        }
        NodeProto {
            op_type: "TreeEnsembleRegressor".into(),
            domain: "ai.onnx.ml".into(),
            input: vec!["X".into()],
            output: vec!["Y".into()],
            attribute,
            ..Default::default()
        }
    }

    /// The spec read literally from the attribute arrays, one row at a time, without any preprocessing.
    fn naive(node: &NodeProto, row: &[f32]) -> Vec<f32> {
        let attr = |name: &str| {
            node.attribute
                .iter()
                .find(|a| a.name == name)
                .unwrap()
                .clone()
        };
        let tree = attr("nodes_treeids").ints;
        let ids = attr("nodes_nodeids").ints;
        let feature = attr("nodes_featureids").ints;
        let value = attr("nodes_values").floats;
        let modes: Vec<String> = attr("nodes_modes")
            .strings
            .iter()
            .map(|s| String::from_utf8(s.clone()).unwrap())
            .collect();
        let true_ids = attr("nodes_truenodeids").ints;
        let false_ids = attr("nodes_falsenodeids").ints;
        let missing = attr("nodes_missing_value_tracks_true").ints;
        let (tt, tn, ti, tw) = (
            attr("target_treeids").ints,
            attr("target_nodeids").ints,
            attr("target_ids").ints,
            attr("target_weights").floats,
        );
        let aggregate = String::from_utf8(attr("aggregate_function").s).unwrap();
        let post = String::from_utf8(attr("post_transform").s).unwrap();
        let base = node
            .attribute
            .iter()
            .find(|a| a.name == "base_values")
            .map(|a| a.floats.clone())
            .unwrap_or(vec![0.0, 0.0]);
        let mut roots = vec![];
        for (i, &t) in tree.iter().enumerate() {
            let pointed_to = (0..tree.len()).any(|j| {
                tree[j] == t
                    && modes[j] != "LEAF"
                    && (true_ids[j] == ids[i] || false_ids[j] == ids[i])
            });
            if !pointed_to {
                roots.push((t, i));
            }
        }
        let mut per_target: Vec<Vec<f64>> = vec![vec![], vec![]];
        for &(t, root) in &roots {
            let mut at = root;
            while modes[at] != "LEAF" {
                let x = row[feature[at] as usize];
                let v = value[at];
                let go = if x.is_nan() && missing[at] == 1 {
                    true
                } else {
                    match modes[at].as_str() {
                        "BRANCH_LEQ" => x <= v,
                        "BRANCH_LT" => x < v,
                        "BRANCH_GTE" => x >= v,
                        "BRANCH_GT" => x > v,
                        "BRANCH_EQ" => x == v,
                        _ => x != v,
                    }
                };
                let next = if go { true_ids[at] } else { false_ids[at] };
                at = (0..tree.len())
                    .find(|&j| tree[j] == t && ids[j] == next)
                    .unwrap();
            }
            for j in 0..tt.len() {
                if tt[j] == t && tn[j] == ids[at] {
                    per_target[ti[j] as usize].push(tw[j] as f64);
                }
            }
        }
        let mut out: Vec<f32> = (0..2)
            .map(|k| {
                let v = &per_target[k];
                let agg = match aggregate.as_str() {
                    "SUM" => v.iter().sum::<f64>(),
                    "AVERAGE" => v.iter().sum::<f64>() / roots.len() as f64,
                    "MIN" => v.iter().copied().reduce(f64::min).unwrap_or(0.0),
                    _ => v.iter().copied().reduce(f64::max).unwrap_or(0.0),
                };
                (agg + base[k] as f64) as f32
            })
            .collect();
        match post.as_str() {
            "LOGISTIC" => out.iter_mut().for_each(|s| *s = 1.0 / (1.0 + (-*s).exp())),
            "SOFTMAX" => {
                let m = out[0].max(out[1]);
                let e: Vec<f32> = out.iter().map(|s| (s - m).exp()).collect();
                let total: f32 = e.iter().sum();
                out = e.iter().map(|s| s / total).collect();
            }
            _ => {}
        }
        out
    }

    fn rows() -> Vec<[f32; 3]> {
        let mut rows = vec![];
        let values = [f32::NAN, -2.0, 0.5, 1.0, 2.0, 3.0];
        for &a in &values {
            for &b in &values {
                for &c in &[f32::NAN, -1.0, 0.0, -5.0] {
                    rows.push([a, b, c]);
                }
            }
        }
        rows
    }

    /// A leaf holding two entries for one target adds both under SUM/AVERAGE; MIN/MAX compare entry by entry, as
    /// onnxruntime does.
    #[test]
    fn matches_the_naive_reference_for_every_aggregate_and_transform() {
        for (aggregate, post, base) in [
            ("SUM", "NONE", vec![]),
            ("SUM", "NONE", vec![0.5, -1.5]),
            ("AVERAGE", "NONE", vec![1.0, 2.0]),
            ("MIN", "NONE", vec![]),
            ("MAX", "NONE", vec![0.25, 0.0]),
            ("SUM", "LOGISTIC", vec![]),
            ("SUM", "SOFTMAX", vec![0.1, 0.2]),
        ] {
            let node = ensemble_node(aggregate, post, &base);
            let ensemble = TreeEnsemble::from_node(&node).unwrap();
            let rows = rows();
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            let got = ensemble.evaluate(&flat, rows.len(), 3).unwrap();
            for (r, row) in rows.iter().enumerate() {
                let want = naive(&node, row);
                let have = &got[r * 2..r * 2 + 2];
                for k in 0..2 {
                    assert!(
                        (have[k] - want[k]).abs() <= 1e-6 * want[k].abs().max(1.0),
                        "{aggregate}/{post} row {row:?} target {k}: {} vs naive {}",
                        have[k],
                        want[k]
                    );
                }
            }
        }
    }

    #[test]
    fn nan_follows_the_missing_direction() {
        let node = ensemble_node("SUM", "NONE", &[]);
        let ensemble = TreeEnsemble::from_node(&node).unwrap();
        // x0 NaN tracks true at tree 0's root → leaf n1: target 0 += 1, target 1 += -1.
        // x2 NaN (GTE, no missing flag) → false → tree 1 leaf n2: target 1 += 20 + 5.
        // x1 = 0 != 3 → tree 5 leaf n9: target 0 += -3.
        let got = ensemble.evaluate(&[f32::NAN, 0.0, f32::NAN], 1, 3).unwrap();
        assert_eq!(got, vec![1.0 - 3.0, -1.0 + 25.0]);
        // x0 = 1 → false → n2: x1 NaN, LT without missing flag → false → n4: target 0 += 0.75.
        let got = ensemble.evaluate(&[1.0, f32::NAN, 0.0], 1, 3).unwrap();
        assert_eq!(got, vec![0.75 + 10.0 - 3.0, 0.0]);
    }

    #[test]
    fn refuses_malformed_attributes_with_the_attribute_named() {
        let mut node = ensemble_node("SUM", "NONE", &[]);
        node.attribute[5] = ints("nodes_truenodeids", &[1, 0, 3, 0, 0, 0, 0, 42, 1, 0, 0]);
        let error = TreeEnsemble::from_node(&node).unwrap_err().to_string();
        assert!(error.contains("nodes_truenodeids[7] = 42"), "{error}");

        let mut node = ensemble_node("SUM", "NONE", &[]);
        node.attribute[10] = ints("target_ids", &[0, 1, 0, 0, 0, 0, 1, 1, 2, 0]);
        let error = TreeEnsemble::from_node(&node).unwrap_err().to_string();
        assert!(error.contains("target_ids[8] = 2"), "{error}");

        let node = ensemble_node("SUM", "PROBIT", &[]);
        let error = TreeEnsemble::from_node(&node).unwrap_err().to_string();
        assert!(error.contains("PROBIT"), "{error}");

        let ensemble = TreeEnsemble::from_node(&ensemble_node("SUM", "NONE", &[])).unwrap();
        let error = ensemble
            .evaluate(&[0.0, 1.0], 1, 2)
            .unwrap_err()
            .to_string();
        assert!(error.contains("read feature 2"), "{error}");
    }

    #[test]
    fn a_cycle_is_an_error_not_a_hang() {
        let mut node = ensemble_node("SUM", "NONE", &[]);
        // tree 0's n2 sends x1 >= 2 back to itself.
        node.attribute[6] = ints("nodes_falsenodeids", &[2, 0, 2, 0, 0, 0, 0, 2, 9, 0, 0]);
        let ensemble = TreeEnsemble::from_node(&node).unwrap();
        let error = ensemble
            .evaluate(&[1.0, 5.0, 0.0], 1, 3)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cycle"), "{error}");
    }
}
