//! k-NN's hyperparameter table and its resolution into [`KnnSettings`], every cross-field rule checked before any
//! data is read.

use crate::hyperparameters::{
    HyperparameterError, HyperparameterSpec as Spec, Hyperparameters, Kind,
};

/// `faiss_index_pq_m`'s allowed values, as SageMaker lists them.
const PQ_M: Kind = Kind::Categorical(&[
    "1", "2", "3", "4", "8", "12", "16", "20", "24", "28", "32", "40", "48", "56", "64", "96",
]);

/// SageMaker's k-NN hyperparameters, plus two tern extensions: `seed` (sampling, projections and the IVF coarse
/// quantizer; SageMaker documents none) and `faiss_index_ivf_nprobe` (inverted lists searched per query; SageMaker
/// documents no way to set it, so `auto` is FAISS's default, `IndexIVF::nprobe = 1`).
pub(super) static HYPERPARAMETERS: &[Spec] = &[
    Spec::required("feature_dim", Kind::at_least(1)),
    Spec::required("k", Kind::at_least(1)),
    Spec::required(
        "predictor_type",
        Kind::Categorical(&["classifier", "regressor"]),
    ),
    Spec::required("sample_size", Kind::at_least(1)),
    Spec::unset("dimension_reduction_target", Kind::at_least(1)),
    Spec::unset(
        "dimension_reduction_type",
        Kind::Categorical(&["sign", "fjlt"]),
    ),
    Spec::optional("faiss_index_ivf_nlists", Kind::at_least(1), "auto").or_auto(),
    Spec::optional("faiss_index_ivf_nprobe", Kind::at_least(1), "auto").or_auto(),
    Spec::unset("faiss_index_pq_m", PQ_M),
    Spec::optional(
        "index_metric",
        Kind::Categorical(&["L2", "INNER_PRODUCT", "COSINE"]),
        "L2",
    ),
    Spec::optional(
        "index_type",
        Kind::Categorical(&["faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ"]),
        "faiss.Flat",
    ),
    Spec::optional("mini_batch_size", Kind::at_least(1), "5000"),
    Spec::optional("seed", Kind::at_least(0), "0"),
];

/// Whether the model votes or averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictorType {
    /// The most frequent label among the k neighbours (ties: the smallest label).
    Classifier,
    /// The mean of the k neighbours' labels.
    Regressor,
}

impl PredictorType {
    /// SageMaker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictorType::Classifier => "classifier",
            PredictorType::Regressor => "regressor",
        }
    }

    /// Parses SageMaker's word.
    pub fn parse(word: &str) -> Option<PredictorType> {
        match word.to_ascii_lowercase().as_str() {
            "classifier" => Some(PredictorType::Classifier),
            "regressor" => Some(PredictorType::Regressor),
            _ => None,
        }
    }
}

/// How closeness is measured, as FAISS measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance; nearest = smallest.
    L2,
    /// Inner product; nearest = largest.
    InnerProduct,
    /// Inner product of L2-normalised vectors (cosine similarity); nearest = largest.
    Cosine,
}

impl Metric {
    /// SageMaker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::InnerProduct => "INNER_PRODUCT",
            Metric::Cosine => "COSINE",
        }
    }

    /// Parses SageMaker's word (any case).
    pub fn parse(word: &str) -> Option<Metric> {
        match word.to_ascii_uppercase().as_str() {
            "L2" => Some(Metric::L2),
            "INNER_PRODUCT" => Some(Metric::InnerProduct),
            "COSINE" => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// Whether a larger value is nearer (inner product, cosine) rather than a smaller one (L2).
    pub fn larger_is_nearer(self) -> bool {
        !matches!(self, Metric::L2)
    }
}

/// The index layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexType {
    /// Exhaustive search over every stored point.
    Flat,
    /// Points grouped into `nlists` inverted lists by a k-means coarse quantizer; a query searches the `nprobe`
    /// lists whose centroids are nearest.
    IvfFlat,
}

impl IndexType {
    /// SageMaker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexType::Flat => "faiss.Flat",
            IndexType::IvfFlat => "faiss.IVFFlat",
        }
    }
}

/// A random projection applied to every point and query before indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Dense random ±1/√target matrix.
    Sign,
    /// Fast Johnson–Lindenstrauss transform (subsampled randomised Hadamard transform).
    Fjlt,
}

impl Reduction {
    /// SageMaker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::Sign => "sign",
            Reduction::Fjlt => "fjlt",
        }
    }
}

/// Resolved k-NN hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnSettings {
    pub feature_dim: usize,
    pub k: usize,
    pub predictor_type: PredictorType,
    pub sample_size: usize,
    /// The projection and its target dimension, when dimension reduction is on.
    pub reduction: Option<(Reduction, usize)>,
    pub index_type: IndexType,
    pub metric: Metric,
    /// Inverted lists requested; `None` = `auto` (√ of the points indexed).
    pub nlists: Option<usize>,
    /// Lists probed per query; `None` = `auto` (1, FAISS's default).
    pub nprobe: Option<usize>,
    pub mini_batch_size: usize,
    pub seed: u64,
}

fn conflict(names: &str, message: impl Into<String>) -> HyperparameterError {
    HyperparameterError::Conflict {
        names: names.to_string(),
        message: message.into(),
    }
}

impl KnnSettings {
    /// Resolves table-checked hyperparameters. Errors: `k > sample_size`; `dimension_reduction_type` without
    /// `dimension_reduction_target` (or the reverse); `dimension_reduction_target >= feature_dim`; `faiss.IVFPQ`
    /// (not implemented by tern) and `faiss_index_pq_m` without it.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self, HyperparameterError> {
        let missing = |name: &str| HyperparameterError::Missing {
            name: name.to_string(),
            expected: "a positive integer".into(),
        };
        let feature_dim = hp
            .usize("feature_dim")
            .ok_or_else(|| missing("feature_dim"))?;
        let k = hp.usize("k").ok_or_else(|| missing("k"))?;
        let sample_size = hp
            .usize("sample_size")
            .ok_or_else(|| missing("sample_size"))?;
        let predictor_type = hp
            .word("predictor_type")
            .as_deref()
            .and_then(PredictorType::parse)
            .ok_or_else(|| missing("predictor_type"))?;
        if k > sample_size {
            return Err(conflict(
                "k, sample_size",
                format!("k={k} neighbours cannot be found among sample_size={sample_size} points; k must be at most sample_size"),
            ));
        }
        let reduction = match (
            hp.word("dimension_reduction_type"),
            hp.usize("dimension_reduction_target"),
        ) {
            (None, None) => None,
            (Some(kind), None) => {
                return Err(conflict(
                    "dimension_reduction_type, dimension_reduction_target",
                    format!("dimension_reduction_type={kind} needs dimension_reduction_target (an integer in [1, feature_dim))"),
                ))
            }
            (None, Some(_)) => {
                return Err(conflict(
                    "dimension_reduction_type, dimension_reduction_target",
                    "dimension_reduction_target is set but dimension_reduction_type is not (sign or fjlt)",
                ))
            }
            (Some(kind), Some(target)) => {
                if target >= feature_dim {
                    return Err(conflict(
                        "dimension_reduction_target, feature_dim",
                        format!("dimension_reduction_target={target} must be less than feature_dim={feature_dim}"),
                    ));
                }
                let reduction = if kind == "fjlt" {
                    Reduction::Fjlt
                } else {
                    Reduction::Sign
                };
                Some((reduction, target))
            }
        };
        if hp.get::<String>("index_type")? == "faiss.ivfpq" {
            return Err(HyperparameterError::Invalid {
                name: "index_type".into(),
                value: "faiss.IVFPQ".into(),
                expected: "faiss.Flat or faiss.IVFFlat: tern does not implement product quantization (faiss.IVFPQ)".into(),
            });
        }
        let index_type = hp.choice(
            "index_type",
            &[
                ("faiss.Flat", IndexType::Flat),
                ("faiss.IVFFlat", IndexType::IvfFlat),
            ],
        )?;
        if hp.text("faiss_index_pq_m").is_some() {
            return Err(conflict(
                "faiss_index_pq_m, index_type",
                "faiss_index_pq_m applies to index_type=faiss.IVFPQ only, which tern does not implement",
            ));
        }
        let metric = hp
            .text("index_metric")
            .and_then(Metric::parse)
            .unwrap_or(Metric::L2);
        Ok(KnnSettings {
            feature_dim,
            k,
            predictor_type,
            sample_size,
            reduction,
            index_type,
            metric,
            nlists: hp.usize("faiss_index_ivf_nlists"),
            nprobe: hp.usize("faiss_index_ivf_nprobe"),
            mini_batch_size: hp.get::<usize>("mini_batch_size")?,
            seed: hp.get::<i64>("seed")? as u64,
        })
    }

    /// The dimension points are indexed in: the reduction's target, else `feature_dim`.
    pub fn index_dim(&self) -> usize {
        self.reduction.map_or(self.feature_dim, |(_, t)| t)
    }
}
