//! Linear Learner's losses: the value of one example's loss at its raw scores and the gradient with respect to them.
//!
//! Scores are the linear outputs `z = x·W + b` (one per class for `softmax_loss`, else one). Labels are 0/1 for the
//! binary losses, a class index for `softmax_loss`, and a real value for the regression losses.

/// One of SageMaker's `loss` values, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// `logistic`: `log(1 + e^z) - y z`, labels 0/1; the score is `sigmoid(z)`.
    Logistic,
    /// `hinge_loss`: `max(0, margin - t z)` with `t = 2y - 1`; the score is `z` itself.
    Hinge { margin: f64 },
    /// `squared_loss`: `(z - y)² / 2`.
    Squared,
    /// `absolute_loss`: `|z - y|`.
    Absolute,
    /// `eps_insensitive_squared_loss`: `max(0, |z - y| - ε)² / 2`.
    EpsilonInsensitiveSquared { epsilon: f64 },
    /// `eps_insensitive_absolute_loss`: `max(0, |z - y| - ε)`.
    EpsilonInsensitiveAbsolute { epsilon: f64 },
    /// `quantile_loss`: `q (y - z)` when `y ≥ z`, else `(1 - q)(z - y)`.
    Quantile { quantile: f64 },
    /// `huber_loss`: `r² / 2` when `|r| ≤ δ`, else `δ (|r| - δ / 2)`, with `r = z - y`.
    Huber { delta: f64 },
    /// `softmax_loss`: `-log softmax(z)[y]`, labels `0..num_classes`.
    Softmax,
}

impl Loss {
    /// SageMaker's name for the loss.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Logistic => "logistic",
            Loss::Hinge { .. } => "hinge_loss",
            Loss::Squared => "squared_loss",
            Loss::Absolute => "absolute_loss",
            Loss::EpsilonInsensitiveSquared { .. } => "eps_insensitive_squared_loss",
            Loss::EpsilonInsensitiveAbsolute { .. } => "eps_insensitive_absolute_loss",
            Loss::Quantile { .. } => "quantile_loss",
            Loss::Huber { .. } => "huber_loss",
            Loss::Softmax => "softmax_loss",
        }
    }

    /// Whether the loss is a regression loss (real-valued labels).
    pub fn is_regression(&self) -> bool {
        !matches!(self, Loss::Logistic | Loss::Hinge { .. } | Loss::Softmax)
    }

    /// The same loss for labels divided by `scale`: its distance parameters (ε, δ) are divided too, so a model
    /// trained on normalised labels minimises the loss the user asked for on the original labels.
    pub fn for_label_scale(&self, scale: f64) -> Loss {
        match *self {
            Loss::EpsilonInsensitiveSquared { epsilon } => Loss::EpsilonInsensitiveSquared {
                epsilon: epsilon / scale,
            },
            Loss::EpsilonInsensitiveAbsolute { epsilon } => Loss::EpsilonInsensitiveAbsolute {
                epsilon: epsilon / scale,
            },
            Loss::Huber { delta } => Loss::Huber {
                delta: delta / scale,
            },
            other => other,
        }
    }

    /// The loss of one example at `scores`.
    pub fn value(&self, scores: &[f64], label: f64) -> f64 {
        let mut unused = [0.0; 1];
        match self {
            Loss::Softmax => softmax_loss(scores, label, None),
            _ => self.value_and_gradient(scores, label, &mut unused),
        }
    }

    /// The loss of one example at `scores`, writing `∂loss/∂scores` into `gradient` (same length as `scores`).
    /// At a kink (hinge at the margin, absolute at 0) the gradient is a subgradient.
    pub fn value_and_gradient(&self, scores: &[f64], label: f64, gradient: &mut [f64]) -> f64 {
        if let Loss::Softmax = self {
            return softmax_loss(scores, label, Some(gradient));
        }
        let z = scores[0];
        let (value, slope) = match *self {
            Loss::Logistic => {
                // log(1 + e^z) computed without overflow for large |z|.
                let softplus = if z > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                };
                (softplus - label * z, sigmoid(z) - label)
            }
            Loss::Hinge { margin } => {
                let sign = 2.0 * label - 1.0;
                let slack = margin - sign * z;
                if slack > 0.0 {
                    (slack, -sign)
                } else {
                    (0.0, 0.0)
                }
            }
            Loss::Squared => {
                let r = z - label;
                (0.5 * r * r, r)
            }
            Loss::Absolute => {
                let r = z - label;
                (r.abs(), sign(r))
            }
            Loss::EpsilonInsensitiveSquared { epsilon } => {
                let r = z - label;
                let excess = r.abs() - epsilon;
                if excess > 0.0 {
                    (0.5 * excess * excess, excess * sign(r))
                } else {
                    (0.0, 0.0)
                }
            }
            Loss::EpsilonInsensitiveAbsolute { epsilon } => {
                let r = z - label;
                let excess = r.abs() - epsilon;
                if excess > 0.0 {
                    (excess, sign(r))
                } else {
                    (0.0, 0.0)
                }
            }
            Loss::Quantile { quantile } => {
                let r = label - z;
                if r >= 0.0 {
                    (quantile * r, -quantile)
                } else {
                    (-(1.0 - quantile) * r, 1.0 - quantile)
                }
            }
            Loss::Huber { delta } => {
                let r = z - label;
                if r.abs() <= delta {
                    (0.5 * r * r, r)
                } else {
                    (delta * (r.abs() - 0.5 * delta), delta * sign(r))
                }
            }
            Loss::Softmax => unreachable!("handled above"),
        };
        gradient[0] = slope;
        value
    }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `1 / (1 + e^-z)`, stable for large |z|.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `-log softmax(z)[label]`, and its gradient `softmax(z) - onehot(label)` when asked.
fn softmax_loss(scores: &[f64], label: f64, gradient: Option<&mut [f64]>) -> f64 {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = scores.iter().map(|&s| (s - max).exp()).sum();
    let log_sum = sum.ln() + max;
    let class = label as usize;
    if let Some(gradient) = gradient {
        for (c, (g, &s)) in gradient.iter_mut().zip(scores).enumerate() {
            *g = (s - log_sum).exp() - if c == class { 1.0 } else { 0.0 };
        }
    }
    log_sum - scores[class]
}
