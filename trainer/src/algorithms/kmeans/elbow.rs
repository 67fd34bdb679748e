//! The elbow method: within-cluster sum of squared errors against `k`, for choosing `k` (`tern tune --elbow`).

use std::fmt::Write as _;
use std::path::Path;

use super::train::{fit, score_channel, KMeansSettings};
use super::KMeansModel;
use crate::algorithm::TrainingContext;
use crate::artifact::write_atomically;
use crate::data::Channel;
use crate::hyperparameters::Hyperparameters;
use crate::TrainError;

/// Trains K-Means on `channel` once per `k` in `ks` (every other hyperparameter as in `hyperparameters`, whose `k` is
/// overridden) and returns `(k, within-cluster SSE on channel)` in the order of `ks`. Reads the channel
/// `epochs + 1` times per `k`, so it needs a File-mode or in-memory channel.
///
/// # Errors
/// What training returns (bad records, `k` above the number of records), and [`TrainError::Config`] for an empty
/// `ks` or a `k` of 0.
pub fn elbow(
    channel: &Channel,
    ks: &[usize],
    hyperparameters: &Hyperparameters,
) -> Result<Vec<(usize, f64)>, TrainError> {
    if ks.is_empty() || ks.contains(&0) {
        return Err(TrainError::Config(
            "elbow: give one or more k, each at least 1".into(),
        ));
    }
    let base = KMeansSettings::from_hyperparameters(hyperparameters)?;
    let mut out = Vec::with_capacity(ks.len());
    for &k in ks {
        let settings = KMeansSettings { k, ..base.clone() };
        let centroids = fit(&settings, channel, &mut TrainingContext::new(true))?;
        let model = KMeansModel {
            centroids,
            feature_dim: settings.feature_dim,
        };
        let (_, sse) = score_channel(&model, channel, settings.epochs)?;
        out.push((k, sse));
    }
    Ok(out)
}

/// Writes the elbow curve (k on the x axis, within-cluster SSE on the y axis) as an SVG file, atomically.
///
/// # Errors
/// [`TrainError::Config`] when `path` does not end in `.svg` or `points` is empty; [`TrainError::Io`] when the file
/// cannot be written.
pub fn plot_elbow(points: &[(usize, f64)], path: &Path) -> Result<(), TrainError> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        return Err(TrainError::Config(format!(
            "elbow plot {}: the name must end in .svg",
            path.display()
        )));
    }
    let finite: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, sse)| sse.is_finite())
        .map(|&(k, sse)| (k as f64, sse))
        .collect();
    if finite.is_empty() {
        return Err(TrainError::Config("elbow plot: no finite points".into()));
    }
    let (width, height, margin) = (900.0, 640.0, 90.0);
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
        finite.iter().map(pick).fold(init, f)
    };
    let (x_min, x_max) = (
        fold(f64::min, f64::INFINITY, |p| p.0),
        fold(f64::max, f64::NEG_INFINITY, |p| p.0),
    );
    let (y_min, y_max) = (
        fold(f64::min, f64::INFINITY, |p| p.1),
        fold(f64::max, f64::NEG_INFINITY, |p| p.1),
    );
    let x_span = (x_max - x_min).max(1.0);
    let y_span = (y_max - y_min).max(y_max.abs().max(1.0) * 0.05);
    let sx = |x: f64| margin + (x - x_min) / x_span * (width - 2.0 * margin);
    let sy = |y: f64| height - margin - (y - y_min) / y_span * (height - 2.0 * margin);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"DejaVu Sans, sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"40\" font-size=\"28\" text-anchor=\"middle\">K-Means elbow: within-cluster SSE by k</text>\n\
         <line x1=\"{margin}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" font-size=\"20\" text-anchor=\"middle\">k</text>\n\
         <text x=\"25\" y=\"{}\" font-size=\"20\" text-anchor=\"middle\" transform=\"rotate(-90 25 {})\">within-cluster SSE</text>\n",
        width / 2.0,
        height - margin,
        width - margin,
        height - margin,
        height - margin,
        width / 2.0,
        height - 30.0,
        height / 2.0,
        height / 2.0,
    );
    let polyline: Vec<String> = finite
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"3\"/>",
        polyline.join(" ")
    );
    for &(x, y) in &finite {
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"#1f77b4\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"16\" text-anchor=\"middle\">{x}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"14\" text-anchor=\"start\">{y:.4e}</text>",
            sx(x),
            sy(y),
            sx(x),
            height - margin + 22.0,
            sx(x) + 8.0,
            sy(y) - 8.0,
        );
    }
    svg.push_str("</svg>\n");
    write_atomically(path, svg.as_bytes())
}
