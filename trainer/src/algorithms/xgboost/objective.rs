//! xgboost's learning objectives: gradients and hessians of the loss in margin space, the transform from margin to
//! prediction, the link that maps `base_score` into margin space, and the intercept xgboost 3 estimates when
//! `base_score` is not given.

/// One gradient pair per row (and per class for multi-class objectives, class-major within a row).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GradientPair {
    pub grad: f32,
    pub hess: f32,
}

/// A supported objective, by xgboost's name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    SquaredError,
    SquaredLogError,
    /// `reg:logistic`: logistic loss, labels in [0, 1], predicts probabilities.
    RegLogistic,
    PseudoHuber {
        slope: f64,
    },
    AbsoluteError,
    BinaryLogistic,
    BinaryLogitRaw,
    BinaryHinge,
    Poisson,
    Gamma,
    Tweedie {
        rho: f64,
    },
    MultiSoftmax,
    MultiSoftprob,
    RankPairwise,
    RankNdcg,
}

impl Objective {
    /// The objective called `name`; `None` for names tern does not implement.
    pub fn from_name(name: &str, tweedie_rho: f64, huber_slope: f64) -> Option<Objective> {
        Some(match name {
            "reg:squarederror" | "reg:linear" => Objective::SquaredError,
            "reg:squaredlogerror" => Objective::SquaredLogError,
            "reg:logistic" => Objective::RegLogistic,
            "reg:pseudohubererror" => Objective::PseudoHuber { slope: huber_slope },
            "reg:absoluteerror" => Objective::AbsoluteError,
            "binary:logistic" => Objective::BinaryLogistic,
            "binary:logitraw" => Objective::BinaryLogitRaw,
            "binary:hinge" => Objective::BinaryHinge,
            "count:poisson" => Objective::Poisson,
            "reg:gamma" => Objective::Gamma,
            "reg:tweedie" => Objective::Tweedie { rho: tweedie_rho },
            "multi:softmax" => Objective::MultiSoftmax,
            "multi:softprob" => Objective::MultiSoftprob,
            "rank:pairwise" => Objective::RankPairwise,
            "rank:ndcg" => Objective::RankNdcg,
            _ => return None,
        })
    }

    /// xgboost's name for the objective.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::SquaredError => "reg:squarederror",
            Objective::SquaredLogError => "reg:squaredlogerror",
            Objective::RegLogistic => "reg:logistic",
            Objective::PseudoHuber { .. } => "reg:pseudohubererror",
            Objective::AbsoluteError => "reg:absoluteerror",
            Objective::BinaryLogistic => "binary:logistic",
            Objective::BinaryLogitRaw => "binary:logitraw",
            Objective::BinaryHinge => "binary:hinge",
            Objective::Poisson => "count:poisson",
            Objective::Gamma => "reg:gamma",
            Objective::Tweedie { .. } => "reg:tweedie",
            Objective::MultiSoftmax => "multi:softmax",
            Objective::MultiSoftprob => "multi:softprob",
            Objective::RankPairwise => "rank:pairwise",
            Objective::RankNdcg => "rank:ndcg",
        }
    }

    pub fn is_multiclass(&self) -> bool {
        matches!(self, Objective::MultiSoftmax | Objective::MultiSoftprob)
    }

    pub fn is_ranking(&self) -> bool {
        matches!(self, Objective::RankPairwise | Objective::RankNdcg)
    }

    /// Whether `base_score` is a probability mapped to margin by the logit.
    pub fn is_logistic(&self) -> bool {
        matches!(
            self,
            Objective::RegLogistic | Objective::BinaryLogistic | Objective::BinaryLogitRaw
        )
    }

    /// Whether `base_score` is a mean mapped to margin by the log.
    pub fn log_link(&self) -> bool {
        matches!(
            self,
            Objective::Poisson | Objective::Gamma | Objective::Tweedie { .. }
        )
    }

    /// Whether the model is a binary classifier (labels 0/1).
    pub fn is_binary(&self) -> bool {
        matches!(
            self,
            Objective::BinaryLogistic | Objective::BinaryLogitRaw | Objective::BinaryHinge
        )
    }

    /// xgboost's default `eval_metric` for the objective.
    pub fn default_metric(&self) -> &'static str {
        match self {
            Objective::BinaryLogistic | Objective::BinaryLogitRaw | Objective::RegLogistic => {
                "logloss"
            }
            Objective::BinaryHinge => "error",
            Objective::MultiSoftmax => "merror",
            Objective::MultiSoftprob => "mlogloss",
            Objective::Poisson => "poisson-nloglik",
            Objective::Gamma => "gamma-nloglik",
            Objective::Tweedie { .. } => "tweedie-nloglik@1.5",
            Objective::RankPairwise | Objective::RankNdcg => "ndcg",
            Objective::SquaredLogError => "rmsle",
            Objective::AbsoluteError => "mae",
            Objective::PseudoHuber { .. } => "mphe",
            Objective::SquaredError => "rmse",
        }
    }

    /// Maps `base_score` (prediction space) into margin space in f32, as xgboost does when it loads a model: logit
    /// for `binary:logistic` and `reg:logistic`, log for log-link objectives, identity otherwise (`binary:logitraw`
    /// included, as xgboost 3 treats it).
    pub fn base_score_to_margin(&self, base_score: f32) -> f32 {
        if matches!(self, Objective::RegLogistic | Objective::BinaryLogistic) {
            -(1.0f32 / base_score - 1.0).ln()
        } else if self.log_link() {
            base_score.ln()
        } else {
            base_score
        }
    }

    /// Checks one label; `Err` says what was expected.
    pub fn check_label(&self, label: f32, num_class: usize) -> Result<(), String> {
        let ok = match self {
            Objective::RegLogistic | Objective::BinaryLogistic | Objective::BinaryLogitRaw => {
                (0.0..=1.0).contains(&label)
            }
            Objective::BinaryHinge => label == 0.0 || label == 1.0,
            Objective::MultiSoftmax | Objective::MultiSoftprob => {
                label >= 0.0 && label.fract() == 0.0 && (label as usize) < num_class
            }
            Objective::SquaredLogError => label > -1.0,
            Objective::Poisson
            | Objective::Tweedie { .. }
            | Objective::RankPairwise
            | Objective::RankNdcg => label >= 0.0,
            Objective::Gamma => label > 0.0,
            _ => true,
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Objective::RegLogistic | Objective::BinaryLogistic | Objective::BinaryLogitRaw => {
                format!("a label in [0, 1] for {}", self.name())
            }
            Objective::BinaryHinge => "a label 0 or 1 for binary:hinge".into(),
            Objective::MultiSoftmax | Objective::MultiSoftprob => {
                format!("an integer label in [0, {num_class}) (num_class={num_class})")
            }
            Objective::SquaredLogError => "a label > -1 for reg:squaredlogerror".into(),
            Objective::Gamma => "a label > 0 for reg:gamma".into(),
            _ => format!("a label >= 0 for {}", self.name()),
        })
    }

    /// Gradients of row losses at `margins` (rows × groups), weighted by `weights`, written into `out`.
    /// Ranking objectives use [`super::rank::lambda_gradients`] instead.
    #[allow(clippy::too_many_arguments)]
    pub fn gradients(
        &self,
        margins: &[f32],
        labels: &[f32],
        weights: &[f32],
        scale_pos_weight: f32,
        max_delta_step: f32,
        num_group: usize,
        out: &mut [GradientPair],
    ) {
        use rayon::prelude::*;
        let this = *self;
        out.par_chunks_mut(num_group * 1024)
            .zip(margins.par_chunks(num_group * 1024))
            .enumerate()
            .for_each(|(chunk, (out, margins))| {
                let start = chunk * 1024;
                for (i, (out, margin)) in out
                    .chunks_mut(num_group)
                    .zip(margins.chunks(num_group))
                    .enumerate()
                {
                    let row = start + i;
                    let y = labels[row];
                    let mut w = weights[row];
                    if this.is_logistic() && y == 1.0 {
                        w *= scale_pos_weight;
                    }
                    this.row_gradient(margin, y, w, max_delta_step, out);
                }
            });
    }

    fn row_gradient(
        &self,
        margin: &[f32],
        y: f32,
        w: f32,
        max_delta_step: f32,
        out: &mut [GradientPair],
    ) {
        let pair = |g: f32, h: f32| GradientPair {
            grad: g * w,
            hess: h * w,
        };
        let m = margin[0];
        out[0] = match *self {
            Objective::SquaredError | Objective::RankPairwise | Objective::RankNdcg => {
                pair(m - y, 1.0)
            }
            Objective::SquaredLogError => {
                let p = m.max(-1.0 + 1e-6);
                let r = (p + 1.0).ln() - (y + 1.0).ln();
                let h = ((-r + 1.0) / ((p + 1.0) * (p + 1.0))).max(1e-6);
                pair(r / (p + 1.0), h)
            }
            Objective::RegLogistic | Objective::BinaryLogistic | Objective::BinaryLogitRaw => {
                let p = sigmoid(m);
                pair(p - y, (p * (1.0 - p)).max(1e-16))
            }
            Objective::PseudoHuber { slope } => {
                let slope = slope as f32;
                let z = m - y;
                let s = 1.0 + (z / slope) * (z / slope);
                let root = s.sqrt();
                pair(z / root, 1.0 / (s * root))
            }
            Objective::AbsoluteError => {
                let d = m - y;
                pair(
                    if d > 0.0 {
                        1.0
                    } else if d < 0.0 {
                        -1.0
                    } else {
                        0.0
                    },
                    1.0,
                )
            }
            Objective::BinaryHinge => {
                let sign = 2.0 * y - 1.0;
                if m * sign < 1.0 {
                    pair(-sign, 1.0)
                } else {
                    GradientPair {
                        grad: 0.0,
                        hess: f32::MIN_POSITIVE,
                    }
                }
            }
            Objective::Poisson => {
                let p = m.exp();
                pair(p - y, (m + max_delta_step).exp())
            }
            Objective::Gamma => {
                let e = (-m).exp();
                pair(1.0 - y * e, y * e)
            }
            Objective::Tweedie { rho } => {
                let rho = rho as f32;
                let a = ((1.0 - rho) * m).exp();
                let b = ((2.0 - rho) * m).exp();
                pair(-y * a + b, -y * (1.0 - rho) * a + (2.0 - rho) * b)
            }
            Objective::MultiSoftmax | Objective::MultiSoftprob => {
                let max = margin.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = margin.iter().map(|&v| (v - max).exp()).sum();
                for (k, slot) in out.iter_mut().enumerate() {
                    let p = (margin[k] - max).exp() / sum;
                    let target = if y as usize == k { 1.0 } else { 0.0 };
                    *slot = pair(p - target, (2.0 * p * (1.0 - p)).max(1e-16));
                }
                return;
            }
        };
    }

    /// Transforms one row's margins into predictions in place (probabilities, exponentials, or class labels for
    /// `binary:hinge`); `multi:softmax` is transformed to probabilities, its label is the arg max.
    pub fn transform(&self, margins: &mut [f32]) {
        match self {
            Objective::RegLogistic | Objective::BinaryLogistic => margins[0] = sigmoid(margins[0]),
            Objective::BinaryHinge => margins[0] = if margins[0] > 0.0 { 1.0 } else { 0.0 },
            Objective::Poisson | Objective::Gamma | Objective::Tweedie { .. } => {
                margins[0] = margins[0].exp()
            }
            Objective::MultiSoftmax | Objective::MultiSoftprob => softmax(margins),
            _ => {}
        }
    }

    /// The `base_score` (prediction space, one per group) xgboost 3 estimates when none is given; multi-class
    /// objectives take centred log class frequencies, which are margins (their link is the identity).
    pub fn estimate_intercept(
        &self,
        labels: &[f32],
        weights: &[f32],
        num_class: usize,
    ) -> Vec<f32> {
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        let mean = labels
            .iter()
            .zip(weights)
            .map(|(&y, &w)| y as f64 * w as f64)
            .sum::<f64>()
            / total.max(1e-300);
        match self {
            Objective::MultiSoftmax | Objective::MultiSoftprob => {
                let mut counts = vec![0.0f64; num_class];
                for (&y, &w) in labels.iter().zip(weights) {
                    counts[y as usize] += w as f64;
                }
                let logs: Vec<f64> = counts
                    .iter()
                    .map(|&c| (c / total).max(1e-16).ln())
                    .collect();
                let centre = logs.iter().sum::<f64>() / num_class as f64;
                logs.iter().map(|l| (l - centre) as f32).collect()
            }
            Objective::RegLogistic | Objective::BinaryLogistic | Objective::BinaryLogitRaw => {
                vec![mean.clamp(1e-6, 1.0 - 1e-6) as f32]
            }
            Objective::Poisson | Objective::Gamma | Objective::Tweedie { .. } => {
                vec![mean.max(1e-6) as f32]
            }
            Objective::SquaredError => vec![mean as f32],
            Objective::AbsoluteError => vec![weighted_quantile(labels, weights, 0.5) as f32],
            Objective::RankPairwise | Objective::RankNdcg => vec![0.0],
            Objective::BinaryHinge => {
                // xgboost 3: one Newton step from a zero margin, mapped through the hinge's output transform.
                let signed: f64 = labels
                    .iter()
                    .zip(weights)
                    .map(|(&y, &w)| (2.0 * y as f64 - 1.0) * w as f64)
                    .sum();
                vec![if signed > 0.0 { 1.0 } else { 0.0 }]
            }
            Objective::SquaredLogError | Objective::PseudoHuber { .. } => {
                let zeros = vec![0.0f32; labels.len()];
                let mut grads = vec![GradientPair::default(); labels.len()];
                self.gradients(&zeros, labels, weights, 1.0, 0.0, 1, &mut grads);
                let g: f64 = grads.iter().map(|p| p.grad as f64).sum();
                let h: f64 = grads.iter().map(|p| p.hess as f64).sum();
                vec![(-g / h.max(1e-16)) as f32]
            }
        }
    }
}

/// The logistic function in f32, as xgboost computes it.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Softmax in place, shifted by the maximum.
pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// The `alpha` quantile of `values` as xgboost computes it: with unit weights, linear interpolation between order
/// statistics at position `alpha · (n + 1)` (so the median of an even count is the mean of the middle two); with
/// weights, the smallest value whose cumulative weight reaches `alpha` of the total.
pub fn weighted_quantile(values: &[f32], weights: &[f32], alpha: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let n = values.len();
    if weights.iter().all(|&w| w == 1.0) {
        let sorted = |k: usize| values[order[k]] as f64;
        if alpha <= 1.0 / (n as f64 + 1.0) {
            return sorted(0);
        }
        if alpha >= n as f64 / (n as f64 + 1.0) {
            return sorted(n - 1);
        }
        let x = alpha * (n as f64 + 1.0);
        let k = x.floor() as usize - 1;
        let d = (x - 1.0) - k as f64;
        return sorted(k) + d * (sorted(k + 1) - sorted(k));
    }
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let mut acc = 0.0;
    for &i in &order {
        acc += weights[i] as f64;
        if acc >= alpha * total {
            return values[i] as f64;
        }
    }
    values[order[n - 1]] as f64
}
