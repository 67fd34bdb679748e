//! One random cut tree (Guha et al. 2016): built in batch from a sample, or grown and shrunk point by point, and the
//! expected collusive displacement (CoDisp) of a query point, the quantity every score in this module is made of.
//!
//! Nodes live in an arena. A branch cuts its bounding box on `cut_dimension` at `cut_value`: points with
//! `x[cut_dimension] <= cut_value` go left, the others right. Every node stores its bounding box (for a leaf, the
//! point itself) and its mass (the number of sample points under it, duplicates included).

use std::collections::HashMap;

use rand::Rng;

/// The index a node has in its tree's arena; [`NONE`] for no node.
pub type NodeId = u32;

/// "No node": the parent of a root, the children of a leaf.
pub const NONE: NodeId = u32::MAX;

/// One node of a random cut tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    pub parent: NodeId,
    /// [`NONE`] for a leaf.
    pub left: NodeId,
    /// [`NONE`] for a leaf.
    pub right: NodeId,
    /// Meaningless for a leaf.
    pub cut_dimension: u32,
    /// Meaningless for a leaf.
    pub cut_value: f32,
    /// Sample points under this node, duplicates included; at least 1.
    pub mass: u32,
}

impl Node {
    /// Whether the node is a leaf (holds one distinct point, `mass` copies of it).
    pub fn is_leaf(&self) -> bool {
        self.left == NONE
    }
}

/// A random cut tree over points of `dimension` features.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    dimension: usize,
    nodes: Vec<Node>,
    /// Node `i`'s box: `boxes[2di .. 2di + d]` is its minimum corner, `boxes[2di + d .. 2d(i + 1)]` its maximum.
    boxes: Vec<f32>,
    root: NodeId,
    free: Vec<NodeId>,
    /// The keys of the points each leaf holds (streaming and batch sample indices).
    keys: HashMap<NodeId, Vec<u64>>,
    leaf_of: HashMap<u64, NodeId>,
}

/// The largest `f32` strictly below `value` (`value` finite).
fn float_below(value: f32) -> f32 {
    if value == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = value.to_bits();
    if value > 0.0 {
        f32::from_bits(bits - 1)
    } else {
        f32::from_bits(bits + 1)
    }
}

/// Draws a cut of the box `[low, high]` as the RCF papers do: a dimension with probability proportional to its
/// extent, then a position uniform along it. Returns the dimension and the position in `[low_j, high_j)`, in f64.
/// `None` when the box has no extent.
fn draw_cut(
    low: impl Fn(usize) -> f64,
    high: impl Fn(usize) -> f64,
    dimension: usize,
    rng: &mut impl Rng,
) -> Option<(usize, f64)> {
    let total: f64 = (0..dimension).map(|j| high(j) - low(j)).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let r = rng.gen::<f64>() * total;
    let mut before = 0.0;
    let mut last = None;
    for j in 0..dimension {
        let span = high(j) - low(j);
        if span <= 0.0 {
            continue;
        }
        last = Some(j);
        if before + span > r {
            return Some((j, (low(j) + (r - before)).min(high(j))));
        }
        before += span;
    }
    // Rounding left r at or beyond the accumulated total: the last dimension with extent takes it.
    last.map(|j| (j, low(j) + 0.5 * (high(j) - low(j))))
}

impl Tree {
    /// An empty tree over points of `dimension` features.
    pub fn new(dimension: usize) -> Tree {
        Tree {
            dimension,
            nodes: Vec::new(),
            boxes: Vec::new(),
            root: NONE,
            free: Vec::new(),
            keys: HashMap::new(),
            leaf_of: HashMap::new(),
        }
    }

    /// Builds a tree over `points` (row-major, `dimension` values each, all finite), point `i` under key `keys[i]`:
    /// each node's box is cut as [`draw_cut`] draws until every leaf holds one distinct point (equal points share a
    /// leaf).
    ///
    /// # Panics
    /// If `points.len() != keys.len() * dimension` (a programmer error).
    pub fn build(points: &[f32], keys: &[u64], dimension: usize, rng: &mut impl Rng) -> Tree {
        assert_eq!(points.len(), keys.len() * dimension, "points × dimension");
        let mut tree = Tree::new(dimension);
        if keys.is_empty() {
            return tree;
        }
        let point = |i: usize| &points[i * dimension..(i + 1) * dimension];
        tree.root = tree.allocate(NONE);
        let mut pending: Vec<(NodeId, Vec<usize>)> = vec![(tree.root, (0..keys.len()).collect())];
        while let Some((node, members)) = pending.pop() {
            let d = dimension;
            let base = node as usize * 2 * d;
            tree.boxes[base..base + d].copy_from_slice(point(members[0]));
            tree.boxes[base + d..base + 2 * d].copy_from_slice(point(members[0]));
            for &i in &members[1..] {
                for (j, &v) in point(i).iter().enumerate() {
                    let (low, high) = (base + j, base + d + j);
                    tree.boxes[low] = tree.boxes[low].min(v);
                    tree.boxes[high] = tree.boxes[high].max(v);
                }
            }
            tree.nodes[node as usize].mass = members.len() as u32;
            let corner = tree.boxes[base..base + 2 * d].to_vec();
            let cut = draw_cut(
                |j| f64::from(corner[j]),
                |j| f64::from(corner[d + j]),
                d,
                rng,
            );
            let Some((j, position)) = cut else {
                let leaf_keys: Vec<u64> = members.iter().map(|&i| keys[i]).collect();
                for &key in &leaf_keys {
                    tree.leaf_of.insert(key, node);
                }
                tree.keys.insert(node, leaf_keys);
                continue;
            };
            let cut_value = (position as f32).clamp(corner[j], float_below(corner[d + j]));
            let (left, right): (Vec<usize>, Vec<usize>) =
                members.into_iter().partition(|&i| point(i)[j] <= cut_value);
            let left_node = tree.allocate(node);
            let right_node = tree.allocate(node);
            let branch = &mut tree.nodes[node as usize];
            branch.left = left_node;
            branch.right = right_node;
            branch.cut_dimension = j as u32;
            branch.cut_value = cut_value;
            pending.push((right_node, right));
            pending.push((left_node, left));
        }
        tree
    }

    fn allocate(&mut self, parent: NodeId) -> NodeId {
        let node = Node {
            parent,
            left: NONE,
            right: NONE,
            cut_dimension: 0,
            cut_value: 0.0,
            mass: 1,
        };
        let d2 = 2 * self.dimension;
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.boxes.resize(self.boxes.len() + d2, 0.0);
                (self.nodes.len() - 1) as NodeId
            }
        }
    }

    /// The number of features of the tree's points.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The root, [`NONE`] when the tree is empty.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// Node `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// Node `id`'s bounding box: (minimum corner, maximum corner).
    pub fn bounding_box(&self, id: NodeId) -> (&[f32], &[f32]) {
        let d = self.dimension;
        let base = id as usize * 2 * d;
        (
            &self.boxes[base..base + d],
            &self.boxes[base + d..base + 2 * d],
        )
    }

    /// The number of points the tree holds, duplicates included.
    pub fn mass(&self) -> u32 {
        if self.root == NONE {
            0
        } else {
            self.nodes[self.root as usize].mass
        }
    }

    /// Whether the tree holds the point inserted under `key`.
    pub fn contains(&self, key: u64) -> bool {
        self.leaf_of.contains_key(&key)
    }

    /// Inserts `point` (`dimension` finite values) under `key` as the RCF papers' insertion does: from the root, a cut
    /// is drawn on the node's box grown to hold the point; if it separates the point from the box, the point becomes
    /// the box's sibling there, otherwise it descends along the node's own cut. A point equal to a leaf's joins it.
    ///
    /// # Panics
    /// If `point.len() != dimension` or `key` is already in the tree (programmer errors; [`super::StreamingForest`]
    /// checks both).
    pub fn insert(&mut self, point: &[f32], key: u64, rng: &mut impl Rng) {
        assert_eq!(point.len(), self.dimension, "point dimension");
        assert!(!self.contains(key), "key {key} is already in the tree");
        let d = self.dimension;
        if self.root == NONE {
            self.root = self.allocate(NONE);
            let base = self.root as usize * 2 * d;
            self.boxes[base..base + d].copy_from_slice(point);
            self.boxes[base + d..base + 2 * d].copy_from_slice(point);
            self.keys.insert(self.root, vec![key]);
            self.leaf_of.insert(key, self.root);
            return;
        }
        let mut at = self.root;
        loop {
            let (low, high) = self.bounding_box(at);
            let node = self.nodes[at as usize];
            if node.is_leaf() && low == point {
                self.keys.entry(at).or_default().push(key);
                self.leaf_of.insert(key, at);
                self.add_mass_upwards(at, point);
                return;
            }
            let cut = draw_cut(
                |j| f64::from(low[j].min(point[j])),
                |j| f64::from(high[j].max(point[j])),
                d,
                rng,
            );
            if let Some((j, position)) = cut {
                let (box_low, box_high) = (low[j], high[j]);
                // A leaf's box is its point, which differs from `point` along `j` (the drawn dimension has extent):
                // every cut separates them, whatever rounding did to the position.
                let (below, above) = if node.is_leaf() {
                    (point[j] < box_low, point[j] > box_high)
                } else {
                    (
                        point[j] < box_low && position < f64::from(box_low),
                        point[j] > box_high && position >= f64::from(box_high),
                    )
                };
                if below || above {
                    let cut_value = if below {
                        (position as f32).clamp(point[j], float_below(box_low))
                    } else {
                        (position as f32).clamp(box_high, float_below(point[j]))
                    };
                    self.separate(at, point, key, j, cut_value, below);
                    return;
                }
            }
            // The point lies inside this box along the drawn dimension (or the box is a point equal to it, which
            // the leaf test above handled): descend.
            at = if point[node.cut_dimension as usize] <= node.cut_value {
                node.left
            } else {
                node.right
            };
        }
    }

    /// Makes a new branch above `sibling` cutting on `dimension` at `cut_value`, with a new leaf for `point` on the
    /// left when `point_below`, else on the right.
    fn separate(
        &mut self,
        sibling: NodeId,
        point: &[f32],
        key: u64,
        dimension: usize,
        cut_value: f32,
        point_below: bool,
    ) {
        let d = self.dimension;
        let parent = self.nodes[sibling as usize].parent;
        let branch = self.allocate(parent);
        let leaf = self.allocate(branch);
        let leaf_base = leaf as usize * 2 * d;
        self.boxes[leaf_base..leaf_base + d].copy_from_slice(point);
        self.boxes[leaf_base + d..leaf_base + 2 * d].copy_from_slice(point);
        self.keys.insert(leaf, vec![key]);
        self.leaf_of.insert(key, leaf);
        let (left, right) = if point_below {
            (leaf, sibling)
        } else {
            (sibling, leaf)
        };
        let sibling_mass = self.nodes[sibling as usize].mass;
        self.nodes[branch as usize] = Node {
            parent,
            left,
            right,
            cut_dimension: dimension as u32,
            cut_value,
            mass: sibling_mass,
        };
        self.nodes[sibling as usize].parent = branch;
        if parent == NONE {
            self.root = branch;
        } else {
            let above = &mut self.nodes[parent as usize];
            if above.left == sibling {
                above.left = branch;
            } else {
                above.right = branch;
            }
        }
        let sibling_base = sibling as usize * 2 * d;
        let branch_base = branch as usize * 2 * d;
        self.boxes
            .copy_within(sibling_base..sibling_base + 2 * d, branch_base);
        self.add_mass_upwards(branch, point);
    }

    /// Adds one to the mass of `from` and each ancestor, growing their boxes to hold `point`.
    fn add_mass_upwards(&mut self, from: NodeId, point: &[f32]) {
        let d = self.dimension;
        let mut at = from;
        while at != NONE {
            let node = &mut self.nodes[at as usize];
            node.mass += 1;
            let parent = node.parent;
            let base = at as usize * 2 * d;
            for (j, &v) in point.iter().enumerate() {
                self.boxes[base + j] = self.boxes[base + j].min(v);
                self.boxes[base + d + j] = self.boxes[base + d + j].max(v);
            }
            at = parent;
        }
    }

    /// Removes the point inserted under `key`; returns whether the tree held it. A leaf left empty goes, its sibling
    /// takes its parent's place, and the ancestors' masses and boxes shrink to what remains.
    pub fn delete(&mut self, key: u64) -> bool {
        let Some(leaf) = self.leaf_of.remove(&key) else {
            return false;
        };
        let keys = self.keys.entry(leaf).or_default();
        keys.retain(|&k| k != key);
        if !keys.is_empty() {
            let mut at = leaf;
            while at != NONE {
                self.nodes[at as usize].mass -= 1;
                at = self.nodes[at as usize].parent;
            }
            return true;
        }
        self.keys.remove(&leaf);
        let parent = self.nodes[leaf as usize].parent;
        self.free.push(leaf);
        if parent == NONE {
            self.root = NONE;
            return true;
        }
        let above = self.nodes[parent as usize];
        let sibling = if above.left == leaf {
            above.right
        } else {
            above.left
        };
        let grandparent = above.parent;
        self.free.push(parent);
        self.nodes[sibling as usize].parent = grandparent;
        if grandparent == NONE {
            self.root = sibling;
            return true;
        }
        let g = &mut self.nodes[grandparent as usize];
        if g.left == parent {
            g.left = sibling;
        } else {
            g.right = sibling;
        }
        let d = self.dimension;
        let mut at = grandparent;
        while at != NONE {
            let node = self.nodes[at as usize];
            self.nodes[at as usize].mass -= 1;
            let (base, l, r) = (
                at as usize * 2 * d,
                node.left as usize * 2 * d,
                node.right as usize * 2 * d,
            );
            for j in 0..d {
                self.boxes[base + j] = self.boxes[l + j].min(self.boxes[r + j]);
                self.boxes[base + d + j] = self.boxes[l + d + j].max(self.boxes[r + d + j]);
            }
            at = node.parent;
        }
        true
    }

    /// The expected collusive displacement of `point` were it inserted into this tree: see
    /// [`expected_codisp`]. 0 for an empty tree.
    pub fn expected_codisp(&self, point: &[f32]) -> f64 {
        if self.root == NONE {
            return 0.0;
        }
        expected_codisp(
            self.root as usize,
            |i| {
                let node = &self.nodes[i];
                (!node.is_leaf()).then_some((
                    node.cut_dimension as usize,
                    node.cut_value,
                    node.left as usize,
                    node.right as usize,
                ))
            },
            |i| self.nodes[i].mass,
            |i| self.bounding_box(i as NodeId),
            point,
        )
    }

    /// The tree's nodes reachable from the root, renumbered in preorder (root 0): what an artifact stores. Each entry
    /// is (node, box minimum, box maximum) with `parent`, `left` and `right` in the new numbering.
    pub fn preorder(&self) -> Vec<(Node, &[f32], &[f32])> {
        let mut out = Vec::new();
        if self.root == NONE {
            return out;
        }
        let mut pending = vec![(self.root, NONE)];
        while let Some((id, parent)) = pending.pop() {
            let index = out.len() as NodeId;
            let node = self.nodes[id as usize];
            let (low, high) = self.bounding_box(id);
            out.push((
                Node {
                    parent,
                    left: NONE,
                    right: NONE,
                    ..node
                },
                low,
                high,
            ));
            if parent != NONE {
                let parent_node = &mut out[parent as usize].0;
                if parent_node.left == NONE {
                    parent_node.left = index;
                } else {
                    parent_node.right = index;
                }
            }
            if !node.is_leaf() {
                pending.push((node.right, index));
                pending.push((node.left, index));
            }
        }
        out
    }

    /// Rebuilds a tree from nodes in the numbering of [`Tree::preorder`] (root 0), each with its box, checking that
    /// they form one tree: children in range and claimed by one parent each, every node reachable, leaves with a
    /// point box and branches with children, masses adding up, cuts finite and on an existing dimension, boxes
    /// finite with minimum ≤ maximum. The points of the leaves are keyed `first_key`, `first_key + 1`, … in node
    /// order, one key per unit of mass.
    ///
    /// # Errors
    /// A message naming the node and what is wrong.
    pub fn from_nodes(
        dimension: usize,
        nodes: Vec<Node>,
        boxes: Vec<f32>,
        first_key: u64,
    ) -> Result<Tree, String> {
        let n = nodes.len();
        if n == 0 {
            return Ok(Tree::new(dimension));
        }
        if boxes.len() != n * 2 * dimension {
            return Err(format!(
                "{} box values for {n} nodes of dimension {dimension}, expected {}",
                boxes.len(),
                n * 2 * dimension
            ));
        }
        if let Some(i) = boxes.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "node {} has a non-finite bounding box value",
                i / (2 * dimension)
            ));
        }
        let mut parent = vec![NONE; n];
        for (i, node) in nodes.iter().enumerate() {
            let base = i * 2 * dimension;
            let (low, high) = (
                &boxes[base..base + dimension],
                &boxes[base + dimension..base + 2 * dimension],
            );
            if low.iter().zip(high).any(|(a, b)| a > b) {
                return Err(format!("node {i}: box minimum exceeds its maximum"));
            }
            if node.mass == 0 {
                return Err(format!("node {i}: mass 0"));
            }
            if node.is_leaf() != (node.right == NONE) {
                return Err(format!("node {i}: one child only"));
            }
            if node.is_leaf() {
                if low != high {
                    return Err(format!("leaf {i}: its box is not a point"));
                }
                continue;
            }
            if node.cut_dimension as usize >= dimension || !node.cut_value.is_finite() {
                return Err(format!(
                    "node {i}: cut on dimension {} at {} (dimension must be < {dimension}, value finite)",
                    node.cut_dimension, node.cut_value
                ));
            }
            for child in [node.left, node.right] {
                if child as usize >= n || child == 0 {
                    return Err(format!(
                        "node {i}: child {child} is not a node (0 < child < {n})"
                    ));
                }
                if parent[child as usize] != NONE {
                    return Err(format!("node {child} has two parents"));
                }
                parent[child as usize] = i as NodeId;
            }
            let (l, r) = (&nodes[node.left as usize], &nodes[node.right as usize]);
            if u64::from(l.mass) + u64::from(r.mass) != u64::from(node.mass) {
                return Err(format!(
                    "node {i}: mass {} is not its children's {} + {}",
                    node.mass, l.mass, r.mass
                ));
            }
        }
        // One parent each and n − 1 parent links from node 0 make a tree only if every node is reachable from 0
        // (a cycle would leave its members unreachable).
        let mut reached = vec![false; n];
        let mut pending = vec![0usize];
        while let Some(i) = pending.pop() {
            if std::mem::replace(&mut reached[i], true) {
                return Err(format!("node {i} is reached twice"));
            }
            if !nodes[i].is_leaf() {
                pending.push(nodes[i].left as usize);
                pending.push(nodes[i].right as usize);
            }
        }
        if let Some(i) = reached.iter().position(|&r| !r) {
            return Err(format!("node {i} is not reachable from the root"));
        }
        let mut tree = Tree::new(dimension);
        tree.root = 0;
        let mut key = first_key;
        for (i, node) in nodes.into_iter().enumerate() {
            if node.is_leaf() {
                let keys: Vec<u64> = (0..u64::from(node.mass)).map(|k| key + k).collect();
                key += u64::from(node.mass);
                for &k in &keys {
                    tree.leaf_of.insert(k, i as NodeId);
                }
                tree.keys.insert(i as NodeId, keys);
            }
            tree.nodes.push(Node {
                parent: parent[i],
                ..node
            });
        }
        tree.boxes = boxes;
        Ok(tree)
    }
}

/// The probability that a cut drawn as the RCF papers draw it, on the box `[low, high]` grown to hold `point`,
/// separates `point` from the box: the growth summed over dimensions over the grown box's summed extent; 0 when the
/// point lies inside. Accumulated in f64 in dimension order.
pub fn separation_probability(low: &[f32], high: &[f32], point: &[f32]) -> f64 {
    let mut extent = 0.0f64;
    let mut growth = 0.0f64;
    for ((&a, &b), &x) in low.iter().zip(high).zip(point) {
        let (a, b, x) = (f64::from(a), f64::from(b), f64::from(x));
        let grown_low = a.min(x);
        let grown_high = b.max(x);
        extent += grown_high - grown_low;
        growth += (grown_high - b) + (a - grown_low);
    }
    if growth > 0.0 {
        growth / extent
    } else {
        0.0
    }
}

/// The expected collusive displacement (CoDisp, Guha et al. 2016) of `point` were it inserted into a tree by the
/// papers' random insertion, computed exactly instead of sampled.
///
/// Descending from the root along the tree's cuts, node `v_k` (mass `m_k`) is where the insertion stops with
/// probability `P_k = p_k · Π_{i<k} (1 − p_i)`, `p_k` being [`separation_probability`] of `v_k`'s box (at a leaf not
/// equal to the point, all the remaining probability). Inserted beside `v_k`, the point's displacement ratios are
/// `m_k / 1` and, for each ancestor edge `i = k … 1`, `(m_{i−1} − m_i) / (m_i + 1)` (sibling mass over the mass it
/// would take with it), and CoDisp is their maximum (beside the root: `m_0`). A point equal to a leaf's point joins
/// it, and its CoDisp is the maximum of the ancestor ratios alone (0 in a one-leaf tree). The result is
/// `Σ_k P_k · CoDisp_k`, accumulated in f64 in root-to-leaf order.
///
/// The tree is given by accessors over node indices: `branch(i)` is `Some((cut dimension, cut value, left, right))`
/// for a branch and `None` for a leaf; `mass(i)`; `bounds(i)` its box. The caller guarantees a well-formed tree (as
/// [`Tree::from_nodes`] checks).
pub fn expected_codisp<'a>(
    root: usize,
    branch: impl Fn(usize) -> Option<(usize, f32, usize, usize)>,
    mass: impl Fn(usize) -> u32,
    bounds: impl Fn(usize) -> (&'a [f32], &'a [f32]),
    point: &[f32],
) -> f64 {
    let mut expected = 0.0f64;
    let mut remaining = 1.0f64;
    let mut ancestor_ratio = 0.0f64;
    let mut parent_mass: Option<f64> = None;
    let mut at = root;
    loop {
        let m = f64::from(mass(at));
        if let Some(above) = parent_mass {
            ancestor_ratio = ancestor_ratio.max((above - m) / (m + 1.0));
        }
        let codisp_beside = if parent_mass.is_some() {
            m.max(ancestor_ratio)
        } else {
            m
        };
        let (low, high) = bounds(at);
        match branch(at) {
            None => {
                if low == point {
                    expected += remaining * ancestor_ratio;
                } else {
                    expected += remaining * codisp_beside;
                }
                return expected;
            }
            Some((dimension, cut, left, right)) => {
                let p = separation_probability(low, high, point);
                if p > 0.0 {
                    expected += remaining * p * codisp_beside;
                    remaining *= 1.0 - p;
                }
                at = if point[dimension] <= cut { left } else { right };
                parent_mass = Some(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check(tree: &Tree) {
        let nodes: Vec<(Node, Vec<f32>)> = tree
            .preorder()
            .into_iter()
            .map(|(n, l, h)| (n, [l, h].concat()))
            .collect();
        let boxes: Vec<f32> = nodes.iter().flat_map(|(_, b)| b.clone()).collect();
        let rebuilt = Tree::from_nodes(
            tree.dimension,
            nodes.iter().map(|(n, _)| *n).collect(),
            boxes,
            0,
        )
        .expect("a built tree is well formed");
        assert_eq!(rebuilt.mass(), tree.mass());
        // Every box is exactly the union of its children's.
        for (i, (node, b)) in nodes.iter().enumerate() {
            if node.is_leaf() {
                continue;
            }
            let d = tree.dimension;
            let (l, r) = (&nodes[node.left as usize].1, &nodes[node.right as usize].1);
            for j in 0..d {
                assert_eq!(b[j], l[j].min(r[j]), "node {i} min {j}");
                assert_eq!(b[d + j], l[d + j].max(r[d + j]), "node {i} max {j}");
            }
        }
    }

    fn grid() -> (Vec<f32>, Vec<u64>) {
        let mut points = Vec::new();
        for a in 0..6 {
            for b in 0..5 {
                points.extend([a as f32, (b * b) as f32 * 0.5]);
            }
        }
        // (2, 2) is on the grid already: it ends up three times.
        points.extend([2.0, 2.0, 2.0, 2.0]);
        let keys = (0..points.len() as u64 / 2).collect();
        (points, keys)
    }

    #[test]
    fn batch_build_separates_every_distinct_point_and_merges_duplicates() {
        let (points, keys) = grid();
        let tree = Tree::build(&points, &keys, 2, &mut ChaCha8Rng::seed_from_u64(1));
        check(&tree);
        assert_eq!(tree.mass(), 32);
        let leaves: Vec<(u32, Vec<f32>)> = tree
            .preorder()
            .iter()
            .filter(|(n, _, _)| n.is_leaf())
            .map(|(n, low, _)| (n.mass, low.to_vec()))
            .collect();
        assert_eq!(leaves.len(), 30, "30 distinct grid points");
        for (mass, point) in leaves {
            let copies = if point == [2.0, 2.0] { 3 } else { 1 };
            assert_eq!(mass, copies, "leaf {point:?}");
        }
    }

    #[test]
    fn insert_and_delete_keep_boxes_and_masses_exact() {
        let (points, keys) = grid();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut tree = Tree::new(2);
        for (k, p) in keys.iter().zip(points.chunks(2)) {
            tree.insert(p, *k, &mut rng);
            check(&tree);
        }
        assert_eq!(tree.mass(), 32);
        for k in (0..32).step_by(3) {
            assert!(tree.delete(k));
            check(&tree);
        }
        assert!(!tree.delete(0));
        assert_eq!(tree.mass(), 32 - 11);
        for k in 0..32 {
            tree.delete(k);
        }
        assert_eq!(tree.root(), NONE);
    }

    /// The expectation against the average CoDisp of many random insertions, measured as rrcf measures it.
    #[test]
    fn expected_codisp_is_the_mean_of_sampled_insertions() {
        let (points, keys) = grid();
        let tree = Tree::build(&points, &keys, 2, &mut ChaCha8Rng::seed_from_u64(3));
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for query in [
            [2.5f32, 3.0],
            [9.0, -4.0],
            [0.0, 0.0],
            [2.0, 2.0],
            [5.0, 8.0],
        ] {
            let expected = tree.expected_codisp(&query);
            let trials = 20_000;
            let mut total = 0.0;
            for _ in 0..trials {
                let mut copy = tree.clone();
                copy.insert(&query, u64::MAX, &mut rng);
                total += sampled_codisp(&copy, u64::MAX);
            }
            let mean = total / trials as f64;
            assert!(
                (mean - expected).abs() <= 0.03 * expected.max(1.0),
                "query {query:?}: sampled mean {mean}, expected {expected}"
            );
        }
    }

    /// rrcf's `codisp(leaf)`: the largest sibling mass over own mass along the path to the root.
    fn sampled_codisp(tree: &Tree, key: u64) -> f64 {
        let mut at = tree.leaf_of[&key];
        let mut best = 0.0f64;
        loop {
            let node = tree.node(at);
            if node.parent == NONE {
                return best;
            }
            let parent = tree.node(node.parent);
            let sibling = if parent.left == at {
                parent.right
            } else {
                parent.left
            };
            best = best.max(f64::from(tree.node(sibling).mass) / f64::from(node.mass));
            at = node.parent;
        }
    }

    #[test]
    fn malformed_node_lists_are_refused() {
        let leaf = |mass| Node {
            parent: NONE,
            left: NONE,
            right: NONE,
            cut_dimension: 0,
            cut_value: 0.0,
            mass,
        };
        let branch = |left, right, mass| Node {
            left,
            right,
            mass,
            cut_value: 0.5,
            ..leaf(0)
        };
        let boxes = vec![0.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        assert!(
            Tree::from_nodes(1, vec![branch(1, 2, 2), leaf(1), leaf(1)], boxes.clone(), 0).is_ok()
        );
        let cases = [
            (vec![branch(1, 5, 2), leaf(1), leaf(1)], "not a node"),
            (vec![branch(1, 1, 2), leaf(1), leaf(1)], "two parents"),
            (vec![branch(1, 2, 3), leaf(1), leaf(1)], "mass 3"),
            (
                vec![branch(1, 2, 2), branch(0, 2, 1), leaf(1)],
                "not a node",
            ),
        ];
        for (nodes, wanted) in cases {
            let error = Tree::from_nodes(1, nodes, boxes.clone(), 0).unwrap_err();
            assert!(error.contains(wanted), "{error}");
        }
        let mut nan = boxes.clone();
        nan[1] = f32::NAN;
        assert!(
            Tree::from_nodes(1, vec![branch(1, 2, 2), leaf(1), leaf(1)], nan, 0)
                .unwrap_err()
                .contains("non-finite")
        );
        let mut cut = branch(1, 2, 2);
        cut.cut_value = f32::NAN;
        assert!(Tree::from_nodes(1, vec![cut, leaf(1), leaf(1)], boxes, 0)
            .unwrap_err()
            .contains("cut"));
    }
}
