//! xgboost's JSON model format (`Booster.save_model("m.json")`, schema `doc/model.schema` of dmlc/xgboost), written
//! and read for the `gbtree` and `dart` boosters with numerical splits and the `gblinear` booster. A `dart` booster
//! wraps a `gbtree` one (`gradient_booster.gbtree`) and adds `weight_drop`, each tree's weight.
//!
//! Facts the format fixes: `learner_model_param.base_score` is in prediction space (a bracketed list of one value
//! per output group in xgboost 3, a bare number in older files) and is mapped to margin space by the objective's
//! link at load; a leaf's value (learning rate applied) sits in `split_conditions`; internal nodes send
//! `x < split_conditions[i]` left and a missing value to the left child when `default_left[i]` is 1;
//! `tree_info[t]` is the output group of tree `t`; `iteration_indptr` delimits the trees of each round.

use serde_json::{json, Map, Value};

use super::model::Model;
use super::objective::Objective;
use super::tree::{Tree, NO_PARENT};

/// The xgboost version the written files declare.
const WRITTEN_VERSION: [u32; 3] = [3, 2, 0];

fn float_text(v: f32) -> String {
    format!("{v:E}")
}

/// The model as xgboost JSON.
pub fn to_json(model: &Model) -> Value {
    let num_feature = model.num_feature;
    let trees: Vec<Value> = model
        .trees
        .iter()
        .enumerate()
        .map(|(id, tree)| {
            let n = tree.n_nodes();
            json!({
                "base_weights": tree.base_weight,
                "categories": [],
                "categories_nodes": [],
                "categories_segments": [],
                "categories_sizes": [],
                "default_left": tree.default_left.iter().map(|&d| d as u8).collect::<Vec<_>>(),
                "id": id,
                "left_children": tree.left,
                "loss_changes": tree.loss_change,
                "parents": tree.parent,
                "right_children": tree.right,
                "split_conditions": tree.split_condition,
                "split_indices": tree.split_index,
                "split_type": vec![0u8; n],
                "sum_hessian": tree.sum_hessian,
                "tree_param": {
                    "num_deleted": "0",
                    "num_feature": num_feature.to_string(),
                    "num_nodes": n.to_string(),
                    "size_leaf_vector": "1"
                }
            })
        })
        .collect();
    let g = model.num_group.max(1);
    let rounds = model.trees.len() / g;
    let indptr: Vec<usize> = (0..=rounds).map(|r| r * g).collect();
    let base_score = format!(
        "[{}]",
        model
            .base_score
            .iter()
            .map(|&b| float_text(b))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut objective = Map::new();
    objective.insert("name".into(), json!(model.objective.name()));
    match model.objective {
        Objective::SquaredError
        | Objective::RegLogistic
        | Objective::BinaryLogistic
        | Objective::BinaryLogitRaw
        | Objective::Gamma => {
            objective.insert(
                "reg_loss_param".into(),
                json!({"scale_pos_weight": model.scale_pos_weight.to_string()}),
            );
        }
        Objective::PseudoHuber { slope } => {
            objective.insert(
                "pseudo_huber_param".into(),
                json!({"huber_slope": slope.to_string()}),
            );
        }
        Objective::Poisson => {
            objective.insert(
                "poisson_regression_param".into(),
                json!({"max_delta_step": model.max_delta_step.to_string()}),
            );
        }
        Objective::Tweedie { rho } => {
            objective.insert(
                "tweedie_regression_param".into(),
                json!({"tweedie_variance_power": rho.to_string()}),
            );
        }
        Objective::MultiSoftmax | Objective::MultiSoftprob => {
            objective.insert(
                "softmax_multiclass_param".into(),
                json!({"num_class": model.num_group.to_string()}),
            );
        }
        Objective::RankPairwise | Objective::RankNdcg => {
            objective.insert(
                "lambdarank_param".into(),
                json!({
                    "lambdarank_bias_norm": "1",
                    "lambdarank_normalization": "1",
                    "lambdarank_num_pair_per_sample": "4294967295",
                    "lambdarank_pair_method": "topk",
                    "lambdarank_score_normalization": "1",
                    "lambdarank_unbiased": "0",
                    "ndcg_exp_gain": "1"
                }),
            );
        }
        Objective::SquaredLogError | Objective::AbsoluteError | Objective::BinaryHinge => {}
    }
    let mut attributes = Map::new();
    if let Some(best) = model.best_iteration {
        attributes.insert("best_iteration".into(), json!(best.to_string()));
    }
    if let Some(score) = model.best_score {
        attributes.insert("best_score".into(), json!(score.to_string()));
    }
    let gradient_booster = match &model.linear {
        Some(linear) => json!({
            "model": {"boosted_rounds": linear.rounds, "weights": linear.weights},
            "name": "gblinear"
        }),
        None => tree_booster(model, indptr, trees),
    };
    let gradient_booster = match &model.tree_weights {
        Some(weights) if model.linear.is_none() => json!({
            "gbtree": gradient_booster,
            "name": "dart",
            "weight_drop": weights,
        }),
        _ => gradient_booster,
    };
    json!({
        "learner": {
            "attributes": attributes,
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": gradient_booster,
            "learner_model_param": {
                "base_score": base_score,
                "boost_from_average": "1",
                "num_class": if model.objective.is_multiclass() { model.num_group.to_string() } else { "0".into() },
                "num_feature": num_feature.to_string(),
                "num_target": "1"
            },
            "objective": Value::Object(objective)
        },
        "version": WRITTEN_VERSION
    })
}

/// The `gbtree` booster object.
fn tree_booster(model: &Model, indptr: Vec<usize>, trees: Vec<Value>) -> Value {
    json!({
        "model": {
            "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
            "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": model.trees.len().to_string()},
            "iteration_indptr": indptr,
            "tree_info": model.tree_group,
            "trees": trees
        },
        "name": "gbtree"
    })
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Result<&'a Value, String> {
    let mut current = value;
    for (depth, key) in path.iter().enumerate() {
        current = current
            .get(key)
            .ok_or_else(|| format!("missing field {}", path[..=depth].join(".")))?;
    }
    Ok(current)
}

/// A number xgboost may write as a JSON number or a string.
fn number(value: &Value, what: &str) -> Result<f64, String> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{what} is not a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{what} is {s:?}, expected a number")),
        _ => Err(format!("{what} is {value}, expected a number")),
    }
}

fn array<'a>(tree: &'a Value, key: &str, index: usize) -> Result<&'a Vec<Value>, String> {
    tree.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("trees[{index}].{key} is missing or not an array"))
}

fn numbers<T>(
    tree: &Value,
    key: &str,
    index: usize,
    cast: impl Fn(f64) -> T,
) -> Result<Vec<T>, String> {
    array(tree, key, index)?
        .iter()
        .enumerate()
        .map(|(i, v)| number(v, &format!("trees[{index}].{key}[{i}]")).map(&cast))
        .collect()
}

/// Parses `learner_model_param.base_score`: `"[5E-1]"`, `"[a,b,c]"` or `"5E-1"`.
fn parse_base_score(text: &str, groups: usize) -> Result<Vec<f32>, String> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let values: Vec<f32> = inner
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| format!("base_score {text:?} is not a number or list of numbers"))
        })
        .collect::<Result<_, _>>()?;
    match values.len() {
        1 => Ok(vec![values[0]; groups]),
        n if n == groups => Ok(values),
        n => Err(format!(
            "base_score has {n} values, expected 1 or {groups} (one per output group)"
        )),
    }
}

/// Reads an xgboost JSON model (gbtree booster, numerical splits).
pub fn from_json(bytes: &[u8]) -> Result<Model, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let learner = get(&root, &["learner"])?;
    let booster_name = get(learner, &["gradient_booster", "name"])?
        .as_str()
        .unwrap_or("");
    if !matches!(booster_name, "gbtree" | "gblinear" | "dart") {
        return Err(format!(
            "gradient_booster.name is {booster_name:?}; tern imports gbtree, dart and gblinear models"
        ));
    }
    let objective_value = get(learner, &["objective"])?;
    let objective_name = get(objective_value, &["name"])?.as_str().unwrap_or("");
    let param = |section: &str, key: &str, default: f64| -> Result<f64, String> {
        match objective_value.get(section).and_then(|s| s.get(key)) {
            Some(v) => number(v, &format!("objective.{section}.{key}")),
            None => Ok(default),
        }
    };
    let tweedie = param("tweedie_regression_param", "tweedie_variance_power", 1.5)?;
    let huber = param("pseudo_huber_param", "huber_slope", 1.0)?;
    let objective = Objective::from_name(objective_name, tweedie, huber)
        .ok_or_else(|| format!("objective {objective_name:?} is not supported by tern"))?;
    let model_param = get(learner, &["learner_model_param"])?;
    let num_feature = number(
        get(model_param, &["num_feature"])?,
        "learner_model_param.num_feature",
    )? as usize;
    let num_class = number(
        get(model_param, &["num_class"])?,
        "learner_model_param.num_class",
    )? as usize;
    if let Some(targets) = model_param.get("num_target") {
        let targets = number(targets, "learner_model_param.num_target")?;
        if targets > 1.0 {
            return Err(format!(
                "num_target is {targets}; tern imports single-target models"
            ));
        }
    }
    let num_group = if objective.is_multiclass() {
        num_class.max(1)
    } else {
        1
    };
    let base_text = match get(model_param, &["base_score"])? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let base_score = parse_base_score(&base_text, num_group)?;
    let scale_pos_weight = param("reg_loss_param", "scale_pos_weight", 1.0)?;
    let max_delta_step = param("poisson_regression_param", "max_delta_step", 0.0)?;
    if booster_name == "gblinear" {
        let booster = get(learner, &["gradient_booster", "model"])?;
        let weights: Vec<f32> = get(booster, &["weights"])?
            .as_array()
            .ok_or("gradient_booster.model.weights is not an array")?
            .iter()
            .enumerate()
            .map(|(i, v)| number(v, &format!("weights[{i}]")).map(|v| v as f32))
            .collect::<Result<_, _>>()?;
        if weights.len() != (num_feature + 1) * num_group {
            return Err(format!(
                "gblinear has {} weights, expected (num_feature + 1) × groups = {}",
                weights.len(),
                (num_feature + 1) * num_group
            ));
        }
        let rounds = match booster.get("boosted_rounds") {
            Some(v) => number(v, "boosted_rounds")? as usize,
            None => 0,
        };
        return Ok(Model {
            objective,
            num_group,
            num_feature,
            base_score,
            trees: Vec::new(),
            tree_group: Vec::new(),
            best_iteration: None,
            best_score: None,
            scale_pos_weight,
            max_delta_step,
            linear: Some(super::linear::LinearWeights { weights, rounds }),
            tree_weights: None,
        });
    }
    let (gbtree, tree_weights) = if booster_name == "dart" {
        let weights = get(learner, &["gradient_booster", "weight_drop"])?
            .as_array()
            .ok_or("gradient_booster.weight_drop is not an array")?
            .iter()
            .enumerate()
            .map(|(i, v)| number(v, &format!("weight_drop[{i}]")).map(|w| w as f32))
            .collect::<Result<Vec<f32>, String>>()?;
        (
            get(learner, &["gradient_booster", "gbtree", "model"])?,
            Some(weights),
        )
    } else {
        (get(learner, &["gradient_booster", "model"])?, None)
    };
    let tree_values = get(gbtree, &["trees"])?
        .as_array()
        .ok_or("gradient_booster.model.trees is not an array")?;
    let tree_info = get(gbtree, &["tree_info"])?
        .as_array()
        .ok_or("tree_info is not an array")?;
    if tree_info.len() != tree_values.len() {
        return Err(format!(
            "tree_info has {} entries for {} trees",
            tree_info.len(),
            tree_values.len()
        ));
    }
    if let Some(parallel) = gbtree
        .get("gbtree_model_param")
        .and_then(|p| p.get("num_parallel_tree"))
    {
        if number(parallel, "num_parallel_tree")? != 1.0 {
            return Err("num_parallel_tree > 1 (random forests) is not supported by tern".into());
        }
    }
    let mut trees = Vec::with_capacity(tree_values.len());
    let mut tree_group = Vec::with_capacity(tree_values.len());
    for (index, value) in tree_values.iter().enumerate() {
        let group = number(&tree_info[index], &format!("tree_info[{index}]"))? as usize;
        if group >= num_group {
            return Err(format!(
                "tree_info[{index}] is {group}, but the model has {num_group} output groups"
            ));
        }
        if let Some(types) = value.get("split_type").and_then(Value::as_array) {
            if types.iter().any(|t| t.as_u64() != Some(0)) {
                return Err(format!(
                    "trees[{index}] has categorical splits, which tern does not support"
                ));
            }
        }
        if let Some(size) = value
            .get("tree_param")
            .and_then(|p| p.get("size_leaf_vector"))
        {
            if number(size, "size_leaf_vector")? > 1.0 {
                return Err(format!(
                    "trees[{index}] has vector leaves, which tern does not support"
                ));
            }
        }
        let left = numbers(value, "left_children", index, |v| v as i32)?;
        let n = left.len();
        let tree = Tree {
            right: numbers(value, "right_children", index, |v| v as i32)?,
            parent: match value.get("parents") {
                Some(_) => numbers(value, "parents", index, |v| v as i64 as i32)?,
                None => vec![NO_PARENT; n],
            },
            split_index: numbers(value, "split_indices", index, |v| v as u32)?,
            split_condition: numbers(value, "split_conditions", index, |v| v as f32)?,
            default_left: numbers(value, "default_left", index, |v| v != 0.0)?,
            loss_change: numbers(value, "loss_changes", index, |v| v as f32)
                .unwrap_or_else(|_| vec![0.0; n]),
            sum_hessian: numbers(value, "sum_hessian", index, |v| v as f32)
                .unwrap_or_else(|_| vec![0.0; n]),
            base_weight: numbers(value, "base_weights", index, |v| v as f32)
                .unwrap_or_else(|_| vec![0.0; n]),
            left,
        };
        tree.check(num_feature)
            .map_err(|e| format!("trees[{index}]: {e}"))?;
        trees.push(tree);
        tree_group.push(group);
    }
    if let Some(weights) = &tree_weights {
        if weights.len() != trees.len() {
            return Err(format!(
                "weight_drop has {} entries for {} trees",
                weights.len(),
                trees.len()
            ));
        }
    }
    let attributes = learner.get("attributes");
    let best_iteration = attributes
        .and_then(|a| a.get("best_iteration"))
        .and_then(|v| number(v, "best_iteration").ok())
        .map(|v| v as usize);
    let best_score = attributes
        .and_then(|a| a.get("best_score"))
        .and_then(|v| number(v, "best_score").ok());
    Ok(Model {
        objective,
        num_group,
        num_feature,
        base_score,
        trees,
        tree_group,
        best_iteration,
        best_score,
        linear: None,
        tree_weights,
        scale_pos_weight,
        max_delta_step,
    })
}
