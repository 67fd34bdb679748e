//! Training and evaluation plots: learning curves, ROC and precision-recall curves, point lines (K-Means' elbow), as
//! SVG or PNG files.
//!
//! Text is drawn with DejaVu Sans, compiled into the binary (`trainer/assets/fonts/`), so plots render the same on a
//! machine without fonts or fontconfig. The file format follows the path's extension, `.svg` or `.png`; files are
//! written to a temporary file beside the target and renamed into place, so a failed plot leaves nothing behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

use crate::metrics::{PrPoint, RocPoint};
use crate::{MetricRecord, TrainError};

/// DejaVu Sans 2.37 from Debian's `fonts-dejavu-core`, under the Bitstream Vera license (DejaVu changes are public
/// domain); the license text is `trainer/assets/fonts/LICENSE-DejaVu.txt`.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

const SIZE: (u32, u32) = (900, 640);

/// Registers the bundled font as plotters' `sans-serif` family, once per process.
fn register_font() -> Result<(), TrainError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if registered {
        Ok(())
    } else {
        Err(TrainError::Config(
            "plots: the bundled DejaVu Sans font could not be parsed".to_string(),
        ))
    }
}

#[derive(Clone, Copy)]
enum ImageFormat {
    Svg,
    Png,
}

fn image_format(path: &Path) -> Result<ImageFormat, TrainError> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("svg") => Ok(ImageFormat::Svg),
        Some("png") => Ok(ImageFormat::Png),
        _ => Err(TrainError::Config(format!(
            "plot file {}: the name must end in .svg or .png",
            path.display()
        ))),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A plot that can draw itself on any plotters backend.
trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

fn drawing_error<E: std::error::Error + Send + Sync>(
    path: &Path,
    error: DrawingAreaErrorKind<E>,
) -> TrainError {
    match error {
        DrawingAreaErrorKind::BackendError(error) => TrainError::io(
            path,
            std::io::Error::other(format!("drawing the plot: {error}")),
        ),
        other => TrainError::Config(format!("plot file {}: {other}", path.display())),
    }
}

/// Draws `chart` into `path` atomically, in the format its extension names.
fn render(chart: &impl Chart, path: &Path) -> Result<(), TrainError> {
    let format = image_format(path)?;
    register_font()?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let suffix = match format {
        ImageFormat::Svg => ".svg",
        ImageFormat::Png => ".png",
    };
    let temporary = tempfile::Builder::new()
        .prefix(".plot-")
        .suffix(suffix)
        .tempfile_in(directory)
        .map_err(|error| TrainError::io(path, error))?;
    match format {
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                chart
                    .draw(&root)
                    .map_err(|error| drawing_error(path, error))?;
                root.present().map_err(|error| drawing_error(path, error))?;
            }
            std::fs::write(temporary.path(), svg).map_err(|error| TrainError::io(path, error))?;
        }
        ImageFormat::Png => {
            let root = BitMapBackend::new(temporary.path(), SIZE).into_drawing_area();
            chart
                .draw(&root)
                .map_err(|error| drawing_error(path, error))?;
            root.present().map_err(|error| drawing_error(path, error))?;
        }
    }
    // Temporary files are created owner-only; a plot is an ordinary readable file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|error| TrainError::io(path, error))?;
    }
    temporary
        .persist(path)
        .map_err(|error| TrainError::io(path, error.error))?;
    Ok(())
}

fn caption_font() -> FontDesc<'static> {
    ("sans-serif", 28).into_font()
}

fn label_font() -> FontDesc<'static> {
    ("sans-serif", 20).into_font()
}

/// A value range covering `values` with a margin, never empty; `legend_rows` leaves room above the data for a
/// legend of that many lines.
fn padded_range(values: impl Iterator<Item = f64>, legend_rows: usize) -> std::ops::Range<f64> {
    let (low, high) = values
        .filter(|value| value.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
            (low.min(value), high.max(value))
        });
    if low > high {
        return 0.0..1.0;
    }
    let margin = if high > low {
        (high - low) * 0.05
    } else {
        low.abs().max(1.0) * 0.05
    };
    let legend_room = (high - low).max(margin) * 0.07 * legend_rows as f64;
    (low - margin)..(high + margin + legend_room)
}

struct LearningCurve<'a> {
    series: Vec<(&'a str, Vec<(usize, f64)>)>,
    title: &'a str,
}

impl Chart for LearningCurve<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let last_epoch = self
            .series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|&(epoch, _)| epoch))
            .max()
            .unwrap_or(0);
        let values = self
            .series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|&(_, value)| value));
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, caption_font())
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(
                0f64..(last_epoch.max(1) as f64),
                padded_range(values, self.series.len() + 1),
            )?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|epoch| format!("{epoch:.0}"))
            .y_desc("value")
            .axis_desc_style(label_font())
            .label_style(("sans-serif", 16))
            .draw()?;
        for (index, (name, points)) in self.series.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            let finite: Vec<(f64, f64)> = points
                .iter()
                .filter(|(_, value)| value.is_finite())
                .map(|&(epoch, value)| (epoch as f64, value))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    finite.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                finite
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 18))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    }
}

/// Plots each metric's per-epoch values (records with `Some(epoch)`), one line per metric name, epochs on the x
/// axis, under `title`. Writes nothing and returns `Ok` when no record has an epoch.
///
/// # Errors
/// [`TrainError::Config`] when `path` does not end in `.svg` or `.png`; [`TrainError::Io`] when the file cannot be
/// written.
pub fn plot_learning_curve(
    metrics: &[MetricRecord],
    title: &str,
    path: &Path,
) -> Result<(), TrainError> {
    image_format(path)?;
    let mut order: Vec<&str> = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<(usize, f64)>> = BTreeMap::new();
    for record in metrics {
        if let Some(epoch) = record.epoch {
            let points = by_name.entry(record.name.as_str()).or_insert_with(|| {
                order.push(record.name.as_str());
                Vec::new()
            });
            points.push((epoch, record.value));
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let series = order
        .into_iter()
        .map(|name| {
            let mut points = by_name.remove(name).unwrap_or_default();
            points.sort_by_key(|&(epoch, _)| epoch);
            (name, points)
        })
        .collect();
    render(&LearningCurve { series, title }, path)
}

struct UnitSquareCurve<'a> {
    caption: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    curve_label: String,
    points: Vec<(f64, f64)>,
    diagonal: bool,
    legend_position: SeriesLabelPosition,
}

impl Chart for UnitSquareCurve<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.caption, caption_font())
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.01f64..1.01f64, -0.01f64..1.01f64)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(label_font())
            .label_style(("sans-serif", 16))
            .draw()?;
        if self.diagonal {
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    8,
                    6,
                    BLACK.mix(0.5).stroke_width(1),
                ))?
                .label("chance")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5).stroke_width(1))
                });
        }
        let color = BLUE.to_rgba();
        chart
            .draw_series(LineSeries::new(
                self.points.iter().copied(),
                color.stroke_width(3),
            ))?
            .label(self.curve_label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 18))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(self.legend_position.clone())
            .draw()?;
        Ok(())
    }
}

/// Plots a ROC curve (false positive rate against true positive rate) with the chance diagonal, its legend giving
/// `auc`. Points with a NaN rate are left out.
///
/// # Errors
/// [`TrainError::Config`] when `path` does not end in `.svg` or `.png`; [`TrainError::Io`] when the file cannot be
/// written.
pub fn plot_roc_curve(points: &[RocPoint], auc: f64, path: &Path) -> Result<(), TrainError> {
    let chart = UnitSquareCurve {
        caption: "ROC curve",
        x_label: "False positive rate",
        y_label: "True positive rate",
        curve_label: format!("ROC (AUC = {auc:.4})"),
        points: points
            .iter()
            .map(|point| (point.false_positive_rate, point.true_positive_rate))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect(),
        diagonal: true,
        legend_position: SeriesLabelPosition::LowerRight,
    };
    render(&chart, path)
}

/// Plots a precision-recall curve (recall against precision) as the step function average precision integrates,
/// its legend giving `average_precision`. Points are taken in [`crate::metrics::precision_recall_curve`]'s order.
///
/// # Errors
/// [`TrainError::Config`] when `path` does not end in `.svg` or `.png`; [`TrainError::Io`] when the file cannot be
/// written.
pub fn plot_pr_curve(
    points: &[PrPoint],
    average_precision: f64,
    path: &Path,
) -> Result<(), TrainError> {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .map(|point| (point.recall, point.precision))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    // Steps as average precision counts them: precision Pₙ holds from recall Rₙ down to the next point's recall.
    let mut steps = Vec::with_capacity(finite.len() * 2);
    for (index, &(recall, precision)) in finite.iter().enumerate() {
        steps.push((recall, precision));
        if let Some(&(next_recall, _)) = finite.get(index + 1) {
            steps.push((next_recall, precision));
        }
    }
    let chart = UnitSquareCurve {
        caption: "Precision-recall curve",
        x_label: "Recall",
        y_label: "Precision",
        curve_label: format!("precision-recall (AP = {average_precision:.4})"),
        points: steps,
        diagonal: false,
        legend_position: SeriesLabelPosition::LowerLeft,
    };
    render(&chart, path)
}

struct PointLine<'a> {
    caption: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    points: Vec<(f64, f64)>,
}

impl Chart for PointLine<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.caption, caption_font())
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(110)
            .build_cartesian_2d(
                padded_range(self.points.iter().map(|&(x, _)| x), 0),
                padded_range(self.points.iter().map(|&(_, y)| y), 0),
            )?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .y_label_formatter(&|y| format!("{y:.3e}"))
            .axis_desc_style(label_font())
            .label_style(("sans-serif", 16))
            .draw()?;
        let color = BLUE.to_rgba();
        chart.draw_series(LineSeries::new(
            self.points.iter().copied(),
            color.stroke_width(3),
        ))?;
        chart.draw_series(
            self.points
                .iter()
                .map(|&point| Circle::new(point, 5, color.filled())),
        )?;
        Ok(())
    }
}

/// Plots `points` (x, y) as one line with a marker per point, in the order given, under `caption`; points with a
/// non-finite coordinate are left out.
///
/// # Errors
/// [`TrainError::Config`] when `path` does not end in `.svg` or `.png` or no point is finite; [`TrainError::Io`]
/// when the file cannot be written.
pub fn plot_points(
    points: &[(f64, f64)],
    caption: &str,
    x_label: &str,
    y_label: &str,
    path: &Path,
) -> Result<(), TrainError> {
    image_format(path)?;
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(TrainError::Config(format!(
            "plot {}: no finite points",
            path.display()
        )));
    }
    let chart = PointLine {
        caption,
        x_label,
        y_label,
        points: finite,
    };
    render(&chart, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics;

    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    fn example_scores() -> (Vec<f32>, Vec<f32>) {
        let y_true: Vec<f32> = (0..200)
            .map(|row| f32::from(u8::from(row % 3 == 0)))
            .collect();
        let score: Vec<f32> = (0..200)
            .map(|row| ((row * 37 % 101) as f32 / 101.0 + y_true[row] * 0.6) / 1.6)
            .collect();
        (y_true, score)
    }

    fn history() -> Vec<MetricRecord> {
        let record = |name: &str, epoch: Option<usize>, value: f64| MetricRecord {
            name: name.to_string(),
            epoch,
            value,
        };
        let mut records: Vec<MetricRecord> = (0..12)
            .flat_map(|epoch| {
                let t = epoch as f64;
                [
                    record(
                        "train:objective_loss",
                        Some(epoch),
                        0.7 * (-t / 4.0).exp() + 0.1,
                    ),
                    record(
                        "validation:objective_loss",
                        Some(epoch),
                        0.7 * (-t / 5.0).exp() + 0.15,
                    ),
                ]
            })
            .collect();
        records.push(record("test:objective_loss", None, 0.2));
        records
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(PNG_SIGNATURE),
            "{} is not a PNG",
            path.display()
        );
        assert!(
            bytes.len() > 10_000,
            "{} is only {} bytes",
            path.display(),
            bytes.len()
        );
    }

    fn svg_text(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(80)]);
        text
    }

    #[test]
    fn every_plot_renders_as_svg_and_png() {
        let directory = tempfile::tempdir().unwrap();
        let (y_true, score) = example_scores();
        let auc = metrics::roc_auc(&y_true, &score, None);
        let average_precision = metrics::average_precision(&y_true, &score, None);
        let roc = metrics::roc_curve(&y_true, &score, None);
        let pr = metrics::precision_recall_curve(&y_true, &score, None);
        for extension in ["svg", "png"] {
            let path = |name: &str| directory.path().join(format!("{name}.{extension}"));
            plot_roc_curve(&roc, auc, &path("roc")).unwrap();
            plot_pr_curve(&pr, average_precision, &path("pr")).unwrap();
            plot_learning_curve(
                &history(),
                "linear-learner learning curve",
                &path("learning"),
            )
            .unwrap();
        }
        for name in ["roc", "pr", "learning"] {
            assert_png(&directory.path().join(format!("{name}.png")));
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let metadata =
                    std::fs::metadata(directory.path().join(format!("{name}.svg"))).unwrap();
                assert_eq!(metadata.permissions().mode() & 0o777, 0o644);
            }
        }
        let roc_svg = svg_text(&directory.path().join("roc.svg"));
        for text in [
            "ROC curve",
            "False positive rate",
            "True positive rate",
            &format!("AUC = {auc:.4}"),
            "chance",
        ] {
            assert!(roc_svg.contains(text), "roc.svg lacks {text:?}");
        }
        let pr_svg = svg_text(&directory.path().join("pr.svg"));
        for text in [
            "Recall",
            "Precision",
            &format!("AP = {average_precision:.4}"),
        ] {
            assert!(pr_svg.contains(text), "pr.svg lacks {text:?}");
        }
        let learning_svg = svg_text(&directory.path().join("learning.svg"));
        for text in [
            "linear-learner learning curve",
            "epoch",
            "train:objective_loss",
            "validation:objective_loss",
        ] {
            assert!(learning_svg.contains(text), "learning.svg lacks {text:?}");
        }
        assert!(
            !learning_svg.contains("test:objective_loss"),
            "records without an epoch are not plotted"
        );
        let leftovers: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".plot-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn learning_curve_without_epochs_writes_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("learning.png");
        let final_only = [MetricRecord {
            name: "test:rmse".to_string(),
            epoch: None,
            value: 1.0,
        }];
        plot_learning_curve(&final_only, "no epochs", &path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn bad_paths_are_typed_errors() {
        let directory = tempfile::tempdir().unwrap();
        let roc = [RocPoint {
            threshold: 0.5,
            false_positive_rate: 0.0,
            true_positive_rate: 1.0,
        }];
        match plot_roc_curve(&roc, 1.0, &directory.path().join("roc.jpeg")) {
            Err(TrainError::Config(message)) => {
                assert!(message.contains(".svg or .png"), "{message}")
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
        let missing = directory.path().join("no/such/folder/roc.png");
        match plot_roc_curve(&roc, 1.0, &missing) {
            Err(TrainError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
