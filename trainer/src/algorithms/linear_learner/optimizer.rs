//! The optimizers of `optimizer` (`sgd` with momentum, `adam`, `adagrad`, `rmsprop`), each keeping its per-parameter
//! state for one parameter vector, and the learning-rate schedule of `use_lr_scheduler`.

/// `optimizer` (`auto` is `adam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adagrad,
    RmsProp,
}

impl OptimizerKind {
    /// SageMaker's spelling.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adagrad => "adagrad",
            OptimizerKind::RmsProp => "rmsprop",
        }
    }

    /// `learning_rate=auto` for this optimizer (the rate of model 0; the other models spread around it).
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.01,
            OptimizerKind::Adam => 0.001,
            OptimizerKind::Adagrad => 0.01,
            OptimizerKind::RmsProp => 0.001,
        }
    }
}

/// An optimizer with its constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerSettings {
    pub kind: OptimizerKind,
    /// `momentum` (sgd).
    pub momentum: f64,
    /// `beta_1` (adam).
    pub beta_1: f64,
    /// `beta_2` (adam).
    pub beta_2: f64,
}

const EPSILON: f32 = 1e-8;
/// The decay of rmsprop's squared-gradient average (SageMaker exposes no hyperparameter for it).
const RMSPROP_DECAY: f32 = 0.9;

/// One optimizer's state for a parameter vector of fixed length.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    settings: OptimizerSettings,
    /// sgd: velocity; adam: first moment.
    first: Vec<f32>,
    /// adam / rmsprop: second-moment average; adagrad: sum of squared gradients.
    second: Vec<f32>,
    steps: i32,
}

impl Optimizer {
    /// Fresh state for `len` parameters.
    pub fn new(settings: OptimizerSettings, len: usize) -> Self {
        Optimizer {
            settings,
            first: vec![0.0; len],
            second: vec![0.0; len],
            steps: 0,
        }
    }

    /// One update of `parameters` (length as given to [`Optimizer::new`]) against `gradient` at `learning_rate`.
    pub fn step(&mut self, parameters: &mut [f32], gradient: &[f32], learning_rate: f64) {
        self.steps = self.steps.saturating_add(1);
        let lr = learning_rate as f32;
        let OptimizerSettings {
            kind,
            momentum,
            beta_1,
            beta_2,
        } = self.settings;
        let state = self.first.iter_mut().zip(self.second.iter_mut());
        let updates = parameters.iter_mut().zip(gradient).zip(state);
        match kind {
            OptimizerKind::Sgd => {
                let momentum = momentum as f32;
                for ((p, &g), (velocity, _)) in updates {
                    *velocity = momentum * *velocity - lr * g;
                    *p += *velocity;
                }
            }
            OptimizerKind::Adam => {
                let (b1, b2) = (beta_1 as f32, beta_2 as f32);
                let correction1 = 1.0 - beta_1.powi(self.steps);
                let correction2 = 1.0 - beta_2.powi(self.steps);
                let step = (learning_rate * correction2.sqrt() / correction1) as f32;
                for ((p, &g), (m, v)) in updates {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= step * *m / (v.sqrt() + EPSILON);
                }
            }
            OptimizerKind::Adagrad => {
                for ((p, &g), (_, sum)) in updates {
                    *sum += g * g;
                    *p -= lr * g / (sum.sqrt() + EPSILON);
                }
            }
            OptimizerKind::RmsProp => {
                for ((p, &g), (_, v)) in updates {
                    *v = RMSPROP_DECAY * *v + (1.0 - RMSPROP_DECAY) * g * g;
                    *p -= lr * g / (v.sqrt() + EPSILON);
                }
            }
        }
    }
}

impl Optimizer {
    /// The proximal step of an L1 penalty `l1 · |w|` after an update at `learning_rate`: each parameter moves
    /// towards 0 by `l1` times the step size this optimizer gave it (its per-coordinate rate for the adaptive
    /// optimizers), stopping at exactly 0. A coordinate whose gradient stays below `l1` in size thus rests at 0.
    pub fn proximal_l1(&self, parameters: &mut [f32], learning_rate: f64, l1: f64) {
        let rate = learning_rate as f32;
        let l1 = l1 as f32;
        let OptimizerSettings { beta_1, beta_2, .. } = self.settings;
        let steps = self.steps.max(1);
        let adam_step =
            (learning_rate * (1.0 - beta_2.powi(steps)).sqrt() / (1.0 - beta_1.powi(steps))) as f32;
        let step_of = |second: f32| -> f32 {
            match self.settings.kind {
                OptimizerKind::Sgd => rate,
                OptimizerKind::Adam => adam_step / (second.sqrt() + EPSILON),
                OptimizerKind::Adagrad | OptimizerKind::RmsProp => rate / (second.sqrt() + EPSILON),
            }
        };
        for (p, &second) in parameters.iter_mut().zip(&self.second) {
            let shrink = l1 * step_of(second);
            *p = p.signum() * (p.abs() - shrink).max(0.0);
        }
    }
}

/// The step-decay schedule of `use_lr_scheduler`: after every `step` updates the rate is multiplied by `factor`,
/// never going below `minimum` (nor, when the base rate is already below `minimum`, below the base rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub base: f64,
    /// `None` when the scheduler is off.
    pub decay: Option<(usize, f64, f64)>,
}

impl Schedule {
    /// The learning rate for update number `update` (0-based).
    pub fn rate(&self, update: u64) -> f64 {
        match self.decay {
            None => self.base,
            Some((step, factor, minimum)) => {
                let decays = (update / step.max(1) as u64).min(i32::MAX as u64) as i32;
                (self.base * factor.powi(decays)).max(minimum.min(self.base))
            }
        }
    }
}
