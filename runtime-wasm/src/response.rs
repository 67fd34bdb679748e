//! The SageMaker JSON response of a run, in columns, for building the JS result without JSON text.
//!
//! runtime-core's `application/json` encoder writes, per row, an object whose keys are sorted (serde_json's map),
//! each value either a number (float32 widened to float64, or an integer label; NaN and ±infinity as `null`) or a
//! list of them. [`response_columns`] gives the same records as columns of float64 values, which the bindings turn
//! into JS objects in one call; [`ResponseColumns::to_json`] turns them back into the `serde_json::Value` that
//! parsing runtime-core's response gives, which the tests compare for every response shape.

use serde_json::{Map, Number, Value};
use tern_runtime::{Output, OutputValues, Outputs, Package, ResponseShape, RuntimeError};

use crate::WasmError;

/// One key of every record: its values, `columns` per row.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseField {
    pub name: &'static str,
    /// `true`: the key holds a list of `columns` values; `false`: one number (`columns` is then 1).
    pub list: bool,
    /// The values are integers (a supervised model's `predicted_label`), written as JSON integers.
    pub integer: bool,
    pub columns: usize,
    /// Row-major, `rows × columns`.
    pub values: Vec<f64>,
}

/// A response `{key: [record, …]}` of `rows` records with `fields` (sorted by name) each.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseColumns {
    /// `predictions`, PCA's `projections` or RCF's `scores`.
    pub key: &'static str,
    pub rows: usize,
    pub fields: Vec<ResponseField>,
}

impl ResponseColumns {
    /// The response as runtime-core's JSON text parses: a record per row, a non-finite value as `null`.
    pub fn to_json(&self) -> Value {
        let number = |v: f64| Number::from_f64(v).map_or(Value::Null, Value::Number);
        let records = (0..self.rows)
            .map(|row| {
                let record: Map<String, Value> = self
                    .fields
                    .iter()
                    .map(|field| {
                        let values = &field.values[row * field.columns..(row + 1) * field.columns];
                        let value = if field.list {
                            Value::Array(values.iter().map(|&v| number(v)).collect())
                        } else if field.integer {
                            Value::from(values[0] as i64)
                        } else {
                            number(values[0])
                        };
                        (field.name.to_string(), value)
                    })
                    .collect();
                Value::Object(record)
            })
            .collect();
        let mut response = Map::new();
        response.insert(self.key.to_string(), Value::Array(records));
        Value::Object(response)
    }
}

/// The `application/json` response of every row of `outputs` (a run of `package`'s graph) in columns: the records
/// runtime-core's encoder writes for a plain `Accept: application/json` (k-NN without `verbose`). Errors: the
/// package does not produce `application/json`; an output the manifest's response shape names is missing or has no
/// values per row.
pub fn response_columns(
    package: &Package,
    outputs: &Outputs,
) -> Result<ResponseColumns, WasmError> {
    package.response_type("application/json")?;
    let rows = outputs.rows;
    let output = |name: &str| -> Result<&Output, WasmError> {
        let output = outputs.require(name)?;
        if output.columns() == 0 && rows > 0 {
            return Err(RuntimeError::Output {
                output: name.to_string(),
                message: "has no values per row".to_string(),
            }
            .into());
        }
        Ok(output)
    };
    // A value per row: the row's first (runtime-core's `Score::Value`, `first`).
    let first = |name: &'static str, output: &Output| ResponseField {
        name,
        list: false,
        integer: false,
        columns: 1,
        values: (0..rows).map(|row| first_f32(output, row) as f64).collect(),
    };
    let all = |name: &'static str, output: &Output| ResponseField {
        name,
        list: true,
        integer: false,
        columns: output.columns(),
        values: output.to_f32().into_iter().map(f64::from).collect(),
    };
    let labels = |name: &'static str, output: &Output, as_f32: bool| ResponseField {
        name,
        list: false,
        integer: !as_f32,
        columns: 1,
        values: (0..rows)
            .map(|row| {
                let label = output.row_label(row);
                if as_f32 {
                    label as f32 as f64
                } else {
                    label as f64
                }
            })
            .collect(),
    };
    let (key, mut fields) = match &package.manifest().response {
        ResponseShape::Supervised {
            task,
            score,
            predicted_label,
        } => {
            let scores = output(score)?;
            let mut fields = vec![if task == "multiclass_classifier" {
                all("score", scores)
            } else {
                first("score", scores)
            }];
            if let Some(label) = predicted_label {
                fields.push(labels("predicted_label", outputs.require(label)?, false));
            }
            ("predictions", fields)
        }
        ResponseShape::Xgboost { output: name, .. } => {
            let values = output(name)?;
            let field = if values.columns() == 1 {
                first("score", values)
            } else {
                all("score", values)
            };
            ("predictions", vec![field])
        }
        ResponseShape::Clustering {
            closest_cluster,
            distance_to_cluster,
        } => (
            "predictions",
            vec![
                labels("closest_cluster", outputs.require(closest_cluster)?, true),
                first("distance_to_cluster", output(distance_to_cluster)?),
            ],
        ),
        ResponseShape::Projection { projection } => (
            "projections",
            vec![all("projection", outputs.require(projection)?)],
        ),
        ResponseShape::AnomalyScore { score } => ("scores", vec![first("score", output(score)?)]),
        ResponseShape::NearestNeighbors {
            predicted_label, ..
        } => (
            "predictions",
            vec![first("predicted_label", output(predicted_label)?)],
        ),
        ResponseShape::Fields { .. } => {
            return Err(WasmError::Runtime(RuntimeError::Output {
                output: "response".to_string(),
                message:
                    "this package answers named fields (text among them): use invoke or predictJson"
                        .to_string(),
            }))
        }
    };
    fields.sort_by_key(|field| field.name);
    Ok(ResponseColumns { key, rows, fields })
}

fn first_f32(output: &Output, row: usize) -> f32 {
    let at = row * output.columns();
    match &output.values {
        OutputValues::F32(values) => values[at],
        OutputValues::I64(values) => values[at] as f32,
        OutputValues::Text(_) => f32::NAN,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::path::Path;

    use tern_compiler::CompileOptions;
    use tern_registry::compile;
    use tern_runtime::Precision;
    use tern_trainer::data::{Channel, TrainingInput};
    use tern_trainer::{algorithms, TrainingContext};

    use super::*;

    fn breast_cancer() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/breast_cancer")
    }

    /// `algorithm` trained on `train` (label-first CSV) and compiled fp32.
    fn package(algorithm: &str, train: &Path, hyperparameters: &[(&str, &str)]) -> Package {
        let algorithm = algorithms::find(algorithm).unwrap();
        let raw: BTreeMap<String, String> = hyperparameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let hyperparameters = algorithm.parse_hyperparameters(&raw).unwrap();
        let dataset = Channel::from_path("train", train, None)
            .unwrap()
            .load(None)
            .unwrap();
        let input = TrainingInput::new(Channel::from_dataset("train", dataset));
        let artifact = algorithm
            .train(&hyperparameters, &input, &mut TrainingContext::new(true))
            .unwrap();
        let options = CompileOptions {
            precision: Precision::Fp32,
            targets: vec!["wasm32".into()],
            calibration: None,
            held_out: None,
            force: false,
        };
        let dir = tempfile::tempdir().unwrap();
        compile(&artifact, &options)
            .unwrap()
            .write(dir.path())
            .unwrap();
        Package::load(dir.path()).unwrap()
    }

    /// Every response shape's columns equal the parsed JSON response runtime-core writes for the same rows.
    #[test]
    fn columns_equal_the_json_response_for_every_response_shape() {
        let train = breast_cancer().join("train.csv");
        let text = std::fs::read_to_string(&train).unwrap();
        // Three classes from the breast-cancer rows: the label and the row's parity.
        let work = tempfile::tempdir().unwrap();
        let three_classes = work.path().join("three_classes.csv");
        let mut file = std::fs::File::create(&three_classes).unwrap();
        for (i, line) in text.lines().enumerate() {
            let (label, features) = line.split_once(',').unwrap();
            let class = if label.starts_with('1') { 2 } else { i % 2 };
            writeln!(file, "{class},{features}").unwrap();
        }
        drop(file);
        let d = text.lines().next().unwrap().split(',').count() - 1;
        let dim = d.to_string();
        let packages = [
            package(
                "linear-learner",
                &train,
                &[("predictor_type", "binary_classifier"), ("epochs", "3")],
            ),
            package(
                "linear-learner",
                &train,
                &[("predictor_type", "regressor"), ("epochs", "3")],
            ),
            package(
                "linear-learner",
                &three_classes,
                &[
                    ("predictor_type", "multiclass_classifier"),
                    ("num_classes", "3"),
                    ("epochs", "3"),
                ],
            ),
            package(
                "xgboost",
                &train,
                &[("objective", "binary:logistic"), ("num_round", "5")],
            ),
            package(
                "xgboost",
                &three_classes,
                &[
                    ("objective", "multi:softprob"),
                    ("num_class", "3"),
                    ("num_round", "5"),
                ],
            ),
            package("kmeans", &train, &[("k", "3"), ("feature_dim", &dim)]),
            package(
                "pca",
                &train,
                &[
                    ("num_components", "3"),
                    ("feature_dim", &dim),
                    ("mini_batch_size", "100"),
                ],
            ),
        ];
        let rows = 37;
        let features: Vec<f32> = text
            .lines()
            .take(rows)
            .flat_map(|line| line.split(',').skip(1).map(|v| v.parse::<f32>().unwrap()))
            .collect();
        for package in &packages {
            let outputs = package.run(&features, rows).unwrap();
            let json = crate::respond_json(package, &outputs).unwrap();
            let columns = response_columns(package, &outputs).unwrap();
            assert_eq!(columns.to_json(), json, "{}", package.manifest().algorithm);
            assert_eq!(columns.rows, rows);
        }
    }
}
