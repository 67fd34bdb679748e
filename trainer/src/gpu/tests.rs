//! The GPU kernels against the CPU code (`algorithms::kmeans::assign`, k-NN's flat search and a naive loop), on
//! scikit-learn's digits and on seeded random data, including inputs large enough to need several dispatches.
//! Needs an adapter: on a machine without a GPU, Mesa's lavapipe (scripts/setup-gpu.sh) with XDG_RUNTIME_DIR set.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Gpu, GpuError, Score};
use crate::algorithm::{Algorithm, Device, TrainingContext};
use crate::algorithms::kmeans::{assign, KMeans};
use crate::algorithms::knn::{index, Knn, KnnModel, Metric, Scorer};
use crate::data::{Channel, FeatureMatrix, TrainingInput};
use crate::hyperparameters::Hyperparameters;

fn gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("{e} (run scripts/setup-gpu.sh; set XDG_RUNTIME_DIR)"))
}

fn digits_path(split: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/generated/digits")
        .join(format!("{split}.csv"))
}

fn digits(split: &str) -> FeatureMatrix {
    Channel::from_path(split, &digits_path(split), None)
        .unwrap()
        .load(Some(64))
        .unwrap()
        .features
}

fn uniform(rng: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
    (0..count).map(|_| rng.gen::<f32>()).collect()
}

/// Asserts the GPU's assignments equal the CPU's and its distances are within 1e-4 relative.
fn assert_assignments_match(gpu: &Gpu, rows: &[f32], centres: &[f32], d: usize) {
    let features = FeatureMatrix::Dense(
        ndarray::Array2::from_shape_vec((rows.len() / d, d), rows.to_vec()).unwrap(),
    );
    let centres_f64: Vec<f64> = centres.iter().map(|&v| f64::from(v)).collect();
    let cpu = assign(&features, &centres_f64, d);
    let on_gpu = gpu.assign_nearest(rows, centres, d).unwrap();
    assert_eq!(cpu.len(), on_gpu.len());
    for (row, (&(cpu_cluster, cpu_distance), &(gpu_cluster, gpu_distance))) in
        cpu.iter().zip(&on_gpu).enumerate()
    {
        assert_eq!(cpu_cluster, gpu_cluster, "row {row}: cluster");
        let difference = (cpu_distance - f64::from(gpu_distance)).abs();
        assert!(
            difference <= 1e-4 * cpu_distance.max(1e-12),
            "row {row}: distance {gpu_distance} on the GPU, {cpu_distance} on the CPU"
        );
    }
}

#[test]
fn assignment_on_digits_equals_the_cpu() {
    let gpu = gpu();
    let train = digits("train").to_dense();
    // Ten digits rows as centres: integer-valued, so many distances tie exactly (the lowest index must win).
    let centres: Vec<f32> = train
        .select(
            ndarray::Axis(0),
            &[0, 100, 200, 300, 400, 500, 600, 700, 800, 900],
        )
        .iter()
        .copied()
        .collect();
    let test = digits("test").to_dense();
    let rows: Vec<f32> = test.iter().copied().collect();
    assert_assignments_match(&gpu, &rows, &centres, 64);
    let rows: Vec<f32> = train.iter().copied().collect();
    assert_assignments_match(&gpu, &rows, &centres, 64);
}

#[test]
fn assignment_of_100k_random_rows_equals_the_cpu() {
    let gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, d, k) = (100_000, 64, 40);
    let rows = uniform(&mut rng, n * d);
    let centres = uniform(&mut rng, k * d);
    assert_assignments_match(&gpu, &rows, &centres, d);
}

#[test]
fn assignment_beyond_65535_workgroups_uses_a_second_grid_row() {
    // 65,535 groups of 64 rows hold 4,194,240 rows; more needs the grid's y dimension.
    let gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 65_535 * 64 + 1000;
    let rows = uniform(&mut rng, n);
    let centres = [0.1f32, 0.5, 0.9];
    assert_assignments_match(&gpu, &rows, &centres, 1);
}

#[test]
fn assignment_in_several_dispatches_equals_one() {
    let mut gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, d, k) = (5000, 33, 17);
    let rows = uniform(&mut rng, n * d);
    let centres = uniform(&mut rng, k * d);
    let whole = gpu.assign_nearest(&rows, &centres, d).unwrap();
    gpu.buffer_limit = 4096;
    assert_eq!(gpu.assign_nearest(&rows, &centres, d).unwrap(), whole);
    assert_assignments_match(&gpu, &rows, &centres, d);
}

fn naive_distances(rows: &[f32], points: &[f32], d: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for row in rows.chunks_exact(d) {
        for point in points.chunks_exact(d) {
            out.push(row.iter().zip(point).map(|(a, b)| (a - b) * (a - b)).sum());
        }
    }
    out
}

fn assert_close(have: &[f32], want: &[f32]) {
    assert_eq!(have.len(), want.len());
    for (i, (&h, &w)) in have.iter().zip(want).enumerate() {
        assert!(
            (h - w).abs() <= 1e-4 * w.abs().max(1e-6),
            "distance {i}: {h} on the GPU, {w} on the CPU"
        );
    }
}

#[test]
fn pairwise_distances_equal_the_cpu_with_ragged_tiles() {
    let mut gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Sizes that are not multiples of the 16 × 16 tile, and a feature count spanning three tiles.
    let (n, m, d) = (1003, 301, 37);
    let rows = uniform(&mut rng, n * d);
    let points = uniform(&mut rng, m * d);
    let want = naive_distances(&rows, &points, d);
    assert_close(
        &gpu.pairwise_sq_distances(&rows, &points, d).unwrap(),
        &want,
    );
    // A small buffer limit splits both rows and points into several dispatches.
    gpu.buffer_limit = 16 * 1024;
    assert_close(
        &gpu.pairwise_sq_distances(&rows, &points, d).unwrap(),
        &want,
    );
    let mut starts = Vec::new();
    gpu.for_each_distance_block(&rows, &points, d, |start, block| {
        assert_eq!(block.len() % m, 0);
        assert_close(block, &want[start * m..start * m + block.len()]);
        starts.push(start);
    })
    .unwrap();
    assert!(starts.len() > 1, "expected several blocks, got {starts:?}");
}

#[test]
fn pairwise_distances_on_digits_equal_the_cpu() {
    let gpu = gpu();
    let test: Vec<f32> = digits("test").to_dense().iter().copied().collect();
    let train: Vec<f32> = digits("train").to_dense().iter().copied().collect();
    let want = naive_distances(&test, &train, 64);
    assert_close(
        &gpu.pairwise_sq_distances(&test, &train, 64).unwrap(),
        &want,
    );
}

#[test]
fn pairwise_beyond_65535_workgroup_rows_splits_the_rows() {
    // 65,535 groups of 16 rows hold 1,048,560 rows.
    let gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let n = 65_535 * 16 + 100;
    let rows = uniform(&mut rng, n);
    let points = [0.25f32, 0.75];
    let want = naive_distances(&rows, &points, 1);
    assert_close(
        &gpu.pairwise_sq_distances(&rows, &points, 1).unwrap(),
        &want,
    );
}

#[test]
fn bad_shapes_are_errors() {
    let gpu = gpu();
    assert!(matches!(
        gpu.assign_nearest(&[1.0, 2.0, 3.0], &[0.0, 0.0], 2),
        Err(GpuError::Input { what: "rows", .. })
    ));
    assert!(matches!(
        gpu.assign_nearest(&[1.0, 2.0], &[], 2),
        Err(GpuError::Input { what: "points", .. })
    ));
    assert!(matches!(
        gpu.pairwise_sq_distances(&[1.0], &[1.0], 0),
        Err(GpuError::Input { what: "dim", .. })
    ));
    assert_eq!(gpu.assign_nearest(&[], &[0.0, 0.0], 2).unwrap(), vec![]);
}

#[test]
fn no_adapter_is_a_clear_error() {
    // This build compiles no OpenGL backend, so asking for GL alone finds no adapter.
    let error = match Gpu::with_backends(wgpu::Backends::GL) {
        Ok(gpu) => panic!("expected no adapter, got {}", gpu.adapter()),
        Err(error) => error,
    };
    assert!(matches!(error, GpuError::NoAdapter { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("no GPU adapter") && message.contains("scripts/setup-gpu.sh"),
        "{message}"
    );
}

#[test]
fn kmeans_trained_on_the_gpu_equals_the_cpu() {
    let raw: BTreeMap<String, String> = [
        ("feature_dim", "64"),
        ("k", "10"),
        ("mini_batch_size", "200"),
        ("epochs", "3"),
        ("init_method", "kmeans++"),
        ("seed", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let hyperparameters = Hyperparameters::parse("kmeans", KMeans.hyperparameters(), &raw).unwrap();
    let input =
        TrainingInput::new(Channel::from_path("train", &digits_path("train"), None).unwrap())
            .with(Channel::from_path("test", &digits_path("test"), None).unwrap());
    let mut on_cpu = TrainingContext::new(true);
    let mut on_gpu = TrainingContext::new(true).with_device(Device::Gpu);
    let cpu = KMeans.train(&hyperparameters, &input, &mut on_cpu).unwrap();
    let gpu = KMeans.train(&hyperparameters, &input, &mut on_gpu).unwrap();
    assert_eq!(
        cpu.tensors["centroids"], gpu.tensors["centroids"],
        "the same assignments give the same centres"
    );
    let msd = |context: &TrainingContext| -> Vec<f64> {
        context
            .metrics()
            .iter()
            .filter(|m| m.name == "train:msd")
            .map(|m| m.value)
            .collect()
    };
    for (c, g) in msd(&on_cpu).iter().zip(msd(&on_gpu)) {
        assert!(
            (c - g).abs() <= 1e-4 * c,
            "train:msd {g} on the GPU, {c} on the CPU"
        );
    }
}

fn naive_inner_products(rows: &[f32], points: &[f32], d: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for row in rows.chunks_exact(d) {
        for point in points.chunks_exact(d) {
            out.push(row.iter().zip(point).map(|(a, b)| a * b).sum());
        }
    }
    out
}

#[test]
fn inner_products_equal_the_cpu_in_several_blocks() {
    let mut gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (n, m, d) = (517, 203, 41);
    let rows = uniform(&mut rng, n * d);
    let points = uniform(&mut rng, m * d);
    let want = naive_inner_products(&rows, &points, d);
    gpu.buffer_limit = 16 * 1024;
    let mut have = Vec::new();
    gpu.for_each_score_block(&rows, &points, d, Score::InnerProduct, |start, block| {
        assert_eq!(start * m, have.len());
        have.extend_from_slice(block);
    })
    .unwrap();
    assert_close(&have, &want);
}

/// Trains k-NN on digits with `extra` hyperparameters on the CPU and on the GPU.
fn knn_on_both(extra: &[(&str, &str)]) -> [(crate::Artifact, TrainingContext); 2] {
    let mut raw: BTreeMap<String, String> = [
        ("feature_dim", "64"),
        ("k", "5"),
        ("predictor_type", "classifier"),
        ("sample_size", "100000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    raw.insert("mini_batch_size".into(), "100".into());
    let hyperparameters = Hyperparameters::parse("knn", Knn.hyperparameters(), &raw).unwrap();
    let input =
        TrainingInput::new(Channel::from_path("train", &digits_path("train"), None).unwrap())
            .with(Channel::from_path("test", &digits_path("test"), None).unwrap());
    [Device::Cpu, Device::Gpu].map(|device| {
        let mut context = TrainingContext::new(true).with_device(device);
        let artifact = Knn.train(&hyperparameters, &input, &mut context).unwrap();
        (artifact, context)
    })
}

#[test]
fn knn_on_the_gpu_finds_the_cpu_neighbours_on_digits() {
    let scorer = Scorer::Gpu(gpu());
    let test = digits("test");
    for metric in ["L2", "INNER_PRODUCT", "COSINE"] {
        for index_type in ["faiss.Flat", "faiss.IVFFlat"] {
            let extra = [
                ("index_metric", metric),
                ("index_type", index_type),
                ("faiss_index_ivf_nlists", "12"),
                ("faiss_index_ivf_nprobe", "3"),
            ];
            let [(cpu, on_cpu), (gpu, on_gpu)] = knn_on_both(&extra);
            // Training: the IVF coarse quantizer's assignments (GPU) give the same centroids and lists.
            assert_eq!(cpu.tensors, gpu.tensors, "{metric} {index_type}: tensors");
            // Test channel: every mini-batch's accuracy, as logged.
            let accuracy = |context: &TrainingContext| -> Vec<(String, f64)> {
                context
                    .metrics()
                    .iter()
                    .map(|m| (m.name.clone(), m.value))
                    .collect()
            };
            assert_eq!(
                accuracy(&on_cpu),
                accuracy(&on_gpu),
                "{metric} {index_type}"
            );
            assert!(
                !accuracy(&on_cpu).is_empty()
                    || cpu.meta.training_metrics.contains_key("test:accuracy")
            );
            assert_eq!(
                cpu.meta.training_metrics, gpu.meta.training_metrics,
                "{metric} {index_type}"
            );
            // Predictions: identical neighbours, scores and labels.
            let model = KnnModel::from_artifact(&cpu).unwrap();
            let want = model.neighbours_of(&test, "test").unwrap();
            let have = model.neighbours_on(&scorer, &test, "test").unwrap();
            assert_eq!(have, want, "{metric} {index_type}: neighbours");
            assert_eq!(
                model.predicted_values(&have),
                model.predicted_values(&want),
                "{metric} {index_type}: labels"
            );
            let accuracy = cpu.meta.training_metrics["test:accuracy"];
            eprintln!(
                "digits k=5 {metric} {index_type}: test:accuracy {accuracy:.4} on both devices"
            );
            // Inner products of unnormalised rows favour long rows over near ones: a weaker classifier.
            let floor = if metric == "INNER_PRODUCT" { 0.7 } else { 0.9 };
            assert!(
                accuracy > floor,
                "{metric} {index_type}: accuracy {accuracy}"
            );
        }
    }
}

#[test]
fn knn_flat_search_on_the_gpu_keeps_ties_and_blocks_like_the_cpu() {
    let mut gpu = gpu();
    // Integer data in [0, 4) over 3 dimensions: many exact ties; a small buffer limit splits rows and points.
    gpu.buffer_limit = 32 * 1024;
    let scorer = Scorer::Gpu(gpu);
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let integers = |rng: &mut ChaCha8Rng, count: usize| -> Vec<f32> {
        (0..count).map(|_| rng.gen_range(0..4) as f32).collect()
    };
    for d in [3, 19] {
        let points =
            ndarray::Array2::from_shape_vec((3000, d), integers(&mut rng, 3000 * d)).unwrap();
        let queries =
            ndarray::Array2::from_shape_vec((257, d), integers(&mut rng, 257 * d)).unwrap();
        let norms = index::squared_norms(points.view());
        for metric in [Metric::L2, Metric::InnerProduct] {
            let want = index::flat_search(queries.view(), points.view(), &norms, metric, 7);
            let have =
                index::flat_search_on(&scorer, queries.view(), points.view(), &norms, metric, 7)
                    .unwrap();
            assert_eq!(have, want, "d={d} {metric:?}");
        }
    }
}
