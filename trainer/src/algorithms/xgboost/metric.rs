//! xgboost's evaluation metrics, with xgboost's definitions (its clipping, its `error@t`, its PR AUC, its
//! `ndcg@n`/`map@n` conventions for groups without relevant documents).

use std::cmp::Ordering;

use rayon::prelude::*;

/// Whether `name` is a metric tern evaluates.
pub fn is_known(name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name).trim_end_matches('-');
    let parameter_ok = match name.split_once('@') {
        None => true,
        Some((_, p)) => p.trim_end_matches('-').parse::<f64>().is_ok(),
    };
    parameter_ok
        && matches!(
            base,
            "rmse"
                | "rmsle"
                | "mae"
                | "mape"
                | "mphe"
                | "logloss"
                | "error"
                | "merror"
                | "mlogloss"
                | "auc"
                | "aucpr"
                | "ndcg"
                | "map"
                | "poisson-nloglik"
                | "gamma-nloglik"
                | "tweedie-nloglik"
        )
}

/// Whether a larger value of `name` is better.
pub fn maximize(name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name).trim_end_matches('-');
    matches!(base, "auc" | "aucpr" | "ndcg" | "map")
}

/// What a metric is computed from.
pub struct EvalInput<'a> {
    pub labels: &'a [f32],
    pub weights: &'a [f32],
    /// Transformed predictions, rows × `num_group` (probabilities for classifiers).
    pub predictions: &'a [f32],
    /// Raw margins, rows × `num_group`.
    pub margins: &'a [f32],
    pub num_group: usize,
    /// Query group boundaries (`groups[i]..groups[i+1]`), for ranking metrics; `None` means one group.
    pub groups: Option<&'a [usize]>,
}

/// Evaluates metric `name` (validated by [`is_known`]).
pub fn evaluate(name: &str, input: &EvalInput<'_>) -> f64 {
    let (base, parameter) = match name.split_once('@') {
        Some((b, p)) => (b, Some(p)),
        None => (name, None),
    };
    let minus = name.ends_with('-');
    let base = base.trim_end_matches('-');
    let at = parameter.and_then(|p| p.trim_end_matches('-').parse::<f64>().ok());
    let y = input.labels;
    let w = input.weights;
    let p = input.predictions;
    match base {
        "rmse" => mean(y, w, |i| sq((p[i] - y[i]) as f64)).sqrt(),
        "rmsle" => mean(y, w, |i| {
            sq(((p[i] as f64) + 1.0).ln() - ((y[i] as f64) + 1.0).ln())
        })
        .sqrt(),
        "mae" => mean(y, w, |i| ((p[i] - y[i]) as f64).abs()),
        "mape" => mean(y, w, |i| ((y[i] - p[i]) as f64 / y[i] as f64).abs()),
        "mphe" => mean(y, w, |i| {
            let z = (p[i] - y[i]) as f64;
            (1.0 + z * z).sqrt() - 1.0
        }),
        "logloss" => mean(y, w, |i| {
            let q = (p[i] as f64).clamp(1e-16, 1.0 - 1e-16);
            let t = y[i] as f64;
            -(t * q.ln() + (1.0 - t) * (1.0 - q).ln())
        }),
        "error" => {
            let threshold = at.unwrap_or(0.5);
            mean(y, w, |i| {
                let predicted = if (p[i] as f64) > threshold { 1.0 } else { 0.0 };
                if predicted != y[i] as f64 {
                    1.0
                } else {
                    0.0
                }
            })
        }
        "merror" => mean(y, w, |i| {
            if argmax(&p[i * input.num_group..(i + 1) * input.num_group]) != y[i] as usize {
                1.0
            } else {
                0.0
            }
        }),
        "mlogloss" => mean(y, w, |i| {
            let q = p[i * input.num_group + y[i] as usize] as f64;
            -q.clamp(1e-16, 1.0 - 1e-16).ln()
        }),
        "auc" => auc(input),
        "aucpr" => pr_auc(y, w, p),
        "ndcg" => ranking(input, |labels, scores| ndcg(labels, scores, at, minus)),
        "map" => ranking(input, |labels, scores| {
            average_precision_at(labels, scores, at, minus)
        }),
        "poisson-nloglik" => mean(y, w, |i| {
            let q = (p[i] as f64).max(1e-16);
            let t = y[i] as f64;
            q - t * q.ln() + ln_gamma(t + 1.0)
        }),
        "gamma-nloglik" => mean(y, w, |i| {
            let q = (p[i] as f64).max(1e-16);
            let t = y[i] as f64;
            // xgboost's gamma negative log-likelihood with dispersion 1.
            t / q + q.ln()
        }),
        "tweedie-nloglik" => {
            let rho = at.unwrap_or(1.5);
            mean(y, w, |i| {
                let q = p[i] as f64;
                let t = y[i] as f64;
                let a = t * (q.powf(1.0 - rho)) / (1.0 - rho);
                let b = q.powf(2.0 - rho) / (2.0 - rho);
                -a + b
            })
        }
        _ => f64::NAN,
    }
}

fn sq(x: f64) -> f64 {
    x * x
}

/// The weighted mean of `f(i)`: partial sums over fixed chunks in parallel, added in chunk order (deterministic).
fn mean(y: &[f32], w: &[f32], f: impl Fn(usize) -> f64 + Sync) -> f64 {
    const CHUNK: usize = 1 << 16;
    let partials: Vec<(f64, f64)> = (0..y.len().div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut sum = 0.0;
            let mut total = 0.0;
            let start = c * CHUNK;
            for (i, &weight) in w
                .iter()
                .enumerate()
                .take(((c + 1) * CHUNK).min(y.len()))
                .skip(start)
            {
                sum += weight as f64 * f(i);
                total += weight as f64;
            }
            (sum, total)
        })
        .collect();
    let (sum, total) = partials
        .iter()
        .fold((0.0, 0.0), |(s, t), (a, b)| (s + a, t + b));
    if total == 0.0 {
        0.0
    } else {
        sum / total
    }
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (k, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = k;
        }
    }
    best
}

/// Weighted ROC AUC with ties counted half; binary labels, or one-vs-rest weighted by class weight for multi-class.
fn auc(input: &EvalInput<'_>) -> f64 {
    if input.num_group > 1 {
        let k = input.num_group;
        let mut total = 0.0;
        let mut weight_sum = 0.0;
        for class in 0..k {
            let labels: Vec<f32> = input
                .labels
                .iter()
                .map(|&y| if y as usize == class { 1.0 } else { 0.0 })
                .collect();
            let scores: Vec<f32> = (0..input.labels.len())
                .map(|i| input.predictions[i * k + class])
                .collect();
            let class_weight: f64 = input
                .labels
                .iter()
                .zip(input.weights)
                .filter(|(&y, _)| y as usize == class)
                .map(|(_, &w)| w as f64)
                .sum();
            total += binary_auc(&labels, input.weights, &scores) * class_weight;
            weight_sum += class_weight;
        }
        return total / weight_sum;
    }
    if input.groups.is_some() {
        return ranking(input, |labels, scores| {
            binary_auc(labels, &vec![1.0; labels.len()], scores)
        });
    }
    binary_auc(input.labels, input.weights, input.predictions)
}

/// Weighted ROC AUC of scores against labels in [0, 1], ties counted half; NaN when only one class is present.
pub fn binary_auc(labels: &[f32], weights: &[f32], scores: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(Ordering::Equal));
    let (mut tp, mut fp, mut area) = (0.0f64, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        let (tp_before, fp_before) = (tp, fp);
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            let row = order[i];
            let w = weights[row] as f64;
            tp += labels[row] as f64 * w;
            fp += (1.0 - labels[row] as f64) * w;
            i += 1;
        }
        area += (fp - fp_before) * (tp + tp_before) / 2.0;
    }
    if tp == 0.0 || fp == 0.0 {
        return f64::NAN;
    }
    area / (tp * fp)
}

/// xgboost's area under the precision-recall curve: between thresholds, precision is interpolated along the line
/// of true positives against false positives (Davis & Goadrich), not stepped.
fn pr_auc(labels: &[f32], weights: &[f32], scores: &[f32]) -> f64 {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(Ordering::Equal));
    let total_pos: f64 = labels
        .iter()
        .zip(weights)
        .map(|(&y, &w)| y as f64 * w as f64)
        .sum();
    if total_pos <= 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut area) = (0.0f64, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < order.len() {
        let (tp_prev, fp_prev) = (tp, fp);
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            let row = order[i];
            tp += labels[row] as f64 * weights[row] as f64;
            fp += (1.0 - labels[row] as f64) * weights[row] as f64;
            i += 1;
        }
        if tp == tp_prev {
            continue;
        }
        let h = (fp - fp_prev) / (tp - tp_prev);
        let b = fp_prev - h * tp_prev;
        let (a_start, a_end) = (tp_prev, tp);
        let segment = if b != 0.0 && h + 1.0 != 0.0 && a_start + b / (h + 1.0) > 0.0 {
            ((a_end - a_start)
                - b / (h + 1.0) * ((a_end + b / (h + 1.0)) / (a_start + b / (h + 1.0))).ln())
                / (h + 1.0)
        } else {
            (a_end - a_start) / (1.0 + h)
        };
        area += segment;
    }
    area / total_pos
}

/// The mean over query groups of `per_group(labels, scores)`.
fn ranking(input: &EvalInput<'_>, per_group: impl Fn(&[f32], &[f32]) -> f64) -> f64 {
    let n = input.labels.len();
    let single = [0, n];
    let groups = input.groups.unwrap_or(&single);
    let mut sum = 0.0;
    let mut count = 0usize;
    for window in groups.windows(2) {
        let (b, e) = (window[0], window[1]);
        let value = per_group(&input.labels[b..e], &input.margins[b..e]);
        if value.is_finite() {
            sum += value;
            count += 1;
        }
    }
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

fn ranked(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(Ordering::Equal));
    order
}

/// NDCG@n with exponential gain (2^rel − 1); a group with no relevant document scores 1 (0 with the `-` suffix).
pub fn ndcg(labels: &[f32], scores: &[f32], at: Option<f64>, minus: bool) -> f64 {
    let n = at
        .map(|a| a as usize)
        .filter(|&a| a > 0)
        .unwrap_or(labels.len());
    let dcg = |order: &[usize]| -> f64 {
        order
            .iter()
            .take(n)
            .enumerate()
            .map(|(rank, &i)| (2f64.powf(labels[i] as f64) - 1.0) / ((rank as f64 + 2.0).log2()))
            .sum()
    };
    let mut ideal: Vec<usize> = (0..labels.len()).collect();
    ideal.sort_by(|&a, &b| labels[b].partial_cmp(&labels[a]).unwrap_or(Ordering::Equal));
    let idcg = dcg(&ideal);
    if idcg == 0.0 {
        return if minus { 0.0 } else { 1.0 };
    }
    dcg(&ranked(scores)) / idcg
}

/// MAP@n over relevant (label > 0) documents; a group with none scores 1 (0 with the `-` suffix).
pub fn average_precision_at(labels: &[f32], scores: &[f32], at: Option<f64>, minus: bool) -> f64 {
    let n = at
        .map(|a| a as usize)
        .filter(|&a| a > 0)
        .unwrap_or(labels.len());
    let order = ranked(scores);
    let mut hits = 0.0;
    let mut sum = 0.0;
    for (rank, &i) in order.iter().take(n).enumerate() {
        if labels[i] > 0.0 {
            hits += 1.0;
            sum += hits / (rank as f64 + 1.0);
        }
    }
    let relevant = labels.iter().filter(|&&l| l > 0.0).count() as f64;
    if relevant == 0.0 {
        return if minus { 0.0 } else { 1.0 };
    }
    sum / relevant.min(n as f64)
}

/// ln Γ(x) for x > 0 (Lanczos approximation).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, &g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half_and_matches_a_hand_count() {
        // Pairs (pos, neg): (0.9 vs 0.1) win, (0.9 vs 0.5) win, (0.5 vs 0.1) win, (0.5 vs 0.5) tie → 3.5 / 4.
        let auc = binary_auc(&[1.0, 1.0, 0.0, 0.0], &[1.0; 4], &[0.9, 0.5, 0.5, 0.1]);
        assert!((auc - 0.875).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn ndcg_and_map_of_perfect_and_reversed_rankings() {
        assert!((ndcg(&[2.0, 1.0, 0.0], &[3.0, 2.0, 1.0], None, false) - 1.0).abs() < 1e-12);
        assert!(ndcg(&[2.0, 1.0, 0.0], &[1.0, 2.0, 3.0], None, false) < 0.7);
        assert_eq!(ndcg(&[0.0, 0.0], &[1.0, 2.0], None, false), 1.0);
        assert_eq!(ndcg(&[0.0, 0.0], &[1.0, 2.0], None, true), 0.0);
        // Relevant at ranks 1 and 3: (1/1 + 2/3) / 2.
        let map = average_precision_at(&[1.0, 0.0, 1.0], &[3.0, 2.0, 1.0], None, false);
        assert!((map - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-10);
        assert!(ln_gamma(1.0).abs() < 1e-10);
    }
}
