//! k-NN training: one pass over the train channel keeping a seeded reservoir sample of `sample_size` labelled points
//! (Vitter's algorithm R), the optional random projection, and the index; plus the test-channel score.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tern_formats::{Features, Record};

use super::index::{squared_norms, InvertedLists, Scorer};
use super::settings::{IndexType, KnnSettings, Metric, PredictorType};
use super::{projection, KnnModel};
use crate::algorithm::TrainingContext;
use crate::data::{record_error, Channel, FeatureMatrix};
use crate::TrainError;

/// The sampled training points, in the order of the records they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `points × feature_dim`.
    pub features: Array2<f32>,
    pub labels: Vec<f32>,
    /// Records the channel held.
    pub records_read: usize,
}

/// A record's features as a dense row of `feature_dim` finite values, and its label when `need_label`.
///
/// # Errors
/// [`TrainError::Data`] naming `channel`, the 1-based `index` and the field: wrong width, a feature index beyond
/// `feature_dim`, a NaN/infinite value, a missing or non-finite label.
pub(super) fn dense_row(
    record: Record,
    channel: &str,
    index: usize,
    feature_dim: usize,
    need_label: bool,
) -> Result<(Vec<f32>, Option<f32>), TrainError> {
    let row = match record.features {
        Features::Dense(values) => {
            if values.len() != feature_dim {
                return Err(record_error(
                    channel,
                    index,
                    "features",
                    format!(
                        "{} features, expected {feature_dim} (feature_dim)",
                        values.len()
                    ),
                ));
            }
            values
        }
        Features::Sparse {
            indices, values, ..
        } => {
            let mut row = vec![0.0; feature_dim];
            for (&j, &v) in indices.iter().zip(&values) {
                let slot = row.get_mut(j as usize).ok_or_else(|| {
                    record_error(
                        channel,
                        index,
                        "features",
                        format!("feature index {j}, beyond feature_dim {feature_dim}"),
                    )
                })?;
                *slot = v;
            }
            row
        }
    };
    if let Some(j) = row.iter().position(|v| !v.is_finite()) {
        return Err(record_error(
            channel,
            index,
            &format!("features[{j}]"),
            format!("{}, expected a finite number", row[j]),
        ));
    }
    let label = match (need_label, record.label) {
        (true, None) => return Err(record_error(
            channel,
            index,
            "label",
            "missing; k-NN needs a label on every record (text/csv: label_size=1, the label first)",
        )),
        (true, Some(l)) if !l.is_finite() => {
            return Err(record_error(
                channel,
                index,
                "label",
                format!("{l}, expected a finite number"),
            ))
        }
        (_, label) => label,
    };
    Ok((row, label))
}

/// Reads pass 0 of `channel`, keeping a uniform sample of `sample_size` records (all of them when the channel holds
/// no more), seeded by `seed`, returned in record order.
///
/// # Errors
/// Parse errors and bad records (see [`dense_row`]); an empty channel.
pub fn reservoir(
    channel: &Channel,
    feature_dim: usize,
    sample_size: usize,
    seed: u64,
) -> Result<Sample, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kept: Vec<(usize, Vec<f32>, f32)> = Vec::with_capacity(sample_size.min(1 << 16));
    let mut read = 0usize;
    let ensure_rows = |rows: u128, record: usize| {
        crate::memory::ensure_elements::<f32>(rows * 2 * feature_dim as u128, || {
            format!(
                "k-NN's sample of {rows} rows × {feature_dim} features (from hyperparameters \
                 feature_dim={feature_dim}, sample_size={sample_size}; channel {}, record {record})",
                channel.name
            )
        })
    };
    ensure_rows(2, 1)?;
    for record in channel.open(0)? {
        let (row, label) = dense_row(record?, &channel.name, read + 1, feature_dim, true)?;
        let label = label.unwrap_or_default();
        if kept.len() < sample_size {
            // Checked as the sample doubles: the rows kept and as many again, with the final copy.
            if kept.len() >= 2 && kept.len().is_power_of_two() {
                ensure_rows((kept.len() as u128 * 2).min(sample_size as u128), read + 1)?;
            }
            kept.push((read, row, label));
        } else {
            let slot = rng.gen_range(0..=read);
            if slot < sample_size {
                kept[slot] = (read, row, label);
            }
        }
        read += 1;
    }
    if read == 0 {
        return Err(TrainError::data(
            &channel.name,
            "the channel holds no records",
        ));
    }
    kept.sort_unstable_by_key(|(i, _, _)| *i);
    let labels = kept.iter().map(|(_, _, l)| *l).collect();
    let flat: Vec<f32> = kept.into_iter().flat_map(|(_, row, _)| row).collect();
    let features = Array2::from_shape_vec((flat.len() / feature_dim, feature_dim), flat)
        .map_err(|e| TrainError::data(&channel.name, e.to_string()))?;
    Ok(Sample {
        features,
        labels,
        records_read: read,
    })
}

/// Samples, projects and indexes `channel`; the IVF coarse quantizer's distances are computed by `scorer`.
///
/// # Errors
/// Those of [`reservoir`], [`TrainError::Data`] when the channel holds fewer than `k` records, and
/// [`TrainError::Algorithm`] when the GPU fails.
pub fn fit(
    settings: &KnnSettings,
    channel: &Channel,
    scorer: &Scorer,
    context: &mut TrainingContext,
) -> Result<(KnnModel, usize), TrainError> {
    let sample = reservoir(
        channel,
        settings.feature_dim,
        settings.sample_size,
        settings.seed,
    )?;
    let points = sample.features.nrows();
    if points < settings.k {
        return Err(TrainError::data(
            &channel.name,
            format!(
                "k={} neighbours need at least {} records, the channel holds {}",
                settings.k, settings.k, points
            ),
        ));
    }
    context.log(&format!(
        "knn: sampled {points} of {} records",
        sample.records_read
    ));
    let projection = settings.reduction.map(|(reduction, target)| {
        let r = projection::matrix(reduction, settings.feature_dim, target, settings.seed);
        Array2::from_shape_vec((settings.feature_dim, target), r)
            .expect("the projection has feature_dim × target entries")
    });
    let mut model = KnnModel {
        feature_dim: settings.feature_dim,
        k: settings.k,
        predictor_type: settings.predictor_type,
        metric: settings.metric,
        class_values: super::class_values(&sample.labels),
        labels: sample.labels,
        projection,
        points: Array2::zeros((0, settings.index_dim())),
        norms: Vec::new(),
        ivf: None,
    };
    model.points = model.embed(sample.features.view());
    model.norms = squared_norms(model.points.view());
    if settings.index_type == IndexType::IvfFlat {
        let nlists = settings
            .nlists
            .unwrap_or_else(|| ((points as f64).sqrt().round() as usize).max(1))
            .min(points);
        let nprobe = settings.nprobe.unwrap_or(1).min(nlists);
        context.log(&format!(
            "knn: training the IVF coarse quantizer ({nlists} lists, nprobe {nprobe})"
        ));
        model.ivf = Some(InvertedLists::train(
            scorer,
            model.points.view(),
            settings.metric,
            nlists,
            nprobe,
            settings.seed,
        )?);
    }
    Ok((model, sample.records_read))
}

/// Scores `model` on pass 0 of the test `channel`, `mini_batch_size` records at a time, logging each batch's score
/// as SageMaker does (`#test_score (algo-1) : ('accuracy', 0.98)`): accuracy for classifiers, mean squared error for
/// regressors, the neighbours searched by `scorer`. Returns the metric's name (`test:accuracy` / `test:mse`) and
/// its value over the whole channel.
pub fn score_channel(
    model: &KnnModel,
    channel: &Channel,
    mini_batch_size: usize,
    scorer: &Scorer,
    context: &mut TrainingContext,
) -> Result<(&'static str, f64), TrainError> {
    let (short, name) = match model.predictor_type {
        PredictorType::Classifier => ("accuracy", "test:accuracy"),
        PredictorType::Regressor => ("mse", "test:mse"),
    };
    let mut stream = channel.open(0)?;
    let (mut total, mut count) = (0.0f64, 0usize);
    loop {
        let mut flat = Vec::new();
        let mut labels = Vec::new();
        for record in stream.by_ref().take(mini_batch_size) {
            let (row, label) = dense_row(
                record?,
                &channel.name,
                count + labels.len() + 1,
                model.feature_dim,
                true,
            )?;
            flat.extend(row);
            labels.push(label.unwrap_or_default());
        }
        if labels.is_empty() {
            break;
        }
        let batch = FeatureMatrix::Dense(
            Array2::from_shape_vec((labels.len(), model.feature_dim), flat)
                .map_err(|e| TrainError::data(&channel.name, e.to_string()))?,
        );
        let neighbours = model.neighbours_on(scorer, &batch, &channel.name)?;
        let predicted = model.predicted_values(&neighbours);
        let batch_total: f64 = predicted
            .iter()
            .zip(&labels)
            .map(|(&p, &l)| match model.predictor_type {
                PredictorType::Classifier => f64::from(u8::from(p == l)),
                PredictorType::Regressor => (f64::from(p) - f64::from(l)).powi(2),
            })
            .sum();
        context.log(&format!(
            "#test_score (algo-1) : ('{short}', {})",
            batch_total / labels.len() as f64
        ));
        total += batch_total;
        count += labels.len();
    }
    if count == 0 {
        return Err(TrainError::data(
            &channel.name,
            "the channel holds no records",
        ));
    }
    Ok((name, total / count as f64))
}

/// Whether `metric` stores L2-normalised points.
pub(super) fn normalises(metric: Metric) -> bool {
    metric == Metric::Cosine
}
