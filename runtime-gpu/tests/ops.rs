//! Single ops on the GPU, and on runtime-core's CPU interpreter of the same plan, against values computed here from
//! the ONNX definitions: the forms of `CumSum` and `GatherElements` the packages do not exercise (k-NN IVF uses the
//! exclusive float CumSum and a GatherElements along axis 1): inclusive and reversed sums, integer sums, negative
//! indices.
//!
//! Needs a GPU adapter (lavapipe without a GPU, XDG_RUNTIME_DIR set); without one the test prints why and returns,
//! unless `TERN_REQUIRE_GPU=1` or `CI` is set, where it fails.

mod common;

use common::gpu;
use tern_gpu::GpuModel;
use tern_runtime::interpreter::Interpreter;
use tern_runtime::onnx::{data_type, AttributeProto, ModelProto, NodeProto, TensorProto};
use tern_runtime::{OutputValues, Outputs};

const COLUMNS: usize = 5;

/// x [N, 5] → sums (inclusive; exclusive reversed; integer reversed) and, with the row's ranking from TopK,
/// GatherElements (indices as TopK returns them, and the same indices minus 5: negative, counting from the end).
fn graph() -> ModelProto {
    let float = data_type::FLOAT;
    let int = data_type::INT64;
    let node = |op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>| {
        NodeProto::new(op, "", output, inputs, &[output], attributes)
    };
    let nodes = vec![
        node("CumSum", &["x", "axis"], "inclusive", vec![]),
        node(
            "CumSum",
            &["x", "axis"],
            "exclusive_reversed",
            vec![
                AttributeProto::int("exclusive", 1),
                AttributeProto::int("reverse", 1),
            ],
        ),
        node(
            "Cast",
            &["x"],
            "x_int",
            vec![AttributeProto::int("to", i64::from(int))],
        ),
        node(
            "CumSum",
            &["x_int", "axis"],
            "integer_reversed",
            vec![AttributeProto::int("reverse", 1)],
        ),
        NodeProto::new(
            "TopK",
            "",
            "ranking",
            &["x", "k"],
            &["top_values", "top_indices"],
            vec![AttributeProto::int("axis", 1)],
        ),
        node(
            "GatherElements",
            &["x", "top_indices"],
            "gathered",
            vec![AttributeProto::int("axis", 1)],
        ),
        // Sub is a float op on the GPU: indices go through float and back.
        node(
            "Cast",
            &["top_indices"],
            "top_indices_float",
            vec![AttributeProto::int("to", i64::from(float))],
        ),
        node(
            "Sub",
            &["top_indices_float", "five"],
            "negative_float",
            vec![],
        ),
        node(
            "Cast",
            &["negative_float"],
            "negative_indices",
            vec![AttributeProto::int("to", i64::from(int))],
        ),
        node(
            "GatherElements",
            &["x", "negative_indices"],
            "gathered_negative",
            vec![AttributeProto::int("axis", -1)],
        ),
    ];
    let outputs = [
        ("inclusive", float),
        ("exclusive_reversed", float),
        ("integer_reversed", int),
        ("top_values", float),
        ("gathered", float),
        ("gathered_negative", float),
    ];
    ModelProto::over_rows(
        "x",
        COLUMNS,
        nodes,
        vec![
            TensorProto::from_i64("axis", &[], &[1]),
            TensorProto::from_i64("k", &[1], &[3]),
            TensorProto::from_f32("five", &[], &[5.0]),
        ],
        &outputs,
    )
}

/// Small integers as floats: every sum is exact.
fn rows() -> (Vec<f32>, usize) {
    let rows = 4;
    let x = (0..rows * COLUMNS)
        .map(|i| ((i * 7 + 3) % 11) as f32 - 5.0)
        .collect();
    (x, rows)
}

#[test]
fn cum_sum_and_gather_elements_follow_the_onnx_definitions() {
    let Some(gpu) = gpu() else { return };
    let model = pollster::block_on(GpuModel::new(&gpu, &graph())).unwrap();
    let (x, rows) = rows();
    check(&x, &pollster::block_on(model.run(&x, rows)).unwrap());
}

#[test]
fn the_interpreter_follows_the_same_definitions() {
    let interpreter = Interpreter::new(&graph()).unwrap();
    let (x, rows) = rows();
    let outputs = interpreter.run(&x, rows).unwrap();
    check(&x, &Outputs { rows, outputs });
}

fn check(x: &[f32], outputs: &Outputs) {
    let floats = |name: &str| match &outputs.require(name).unwrap().values {
        OutputValues::F32(v) => v.clone(),
        OutputValues::I64(v) => v.iter().map(|&i| i as f32).collect(),
        OutputValues::Text(_) => panic!("{name} is text"),
    };
    for (r, row) in x.chunks(COLUMNS).enumerate() {
        let at = |name: &str| floats(name)[r * COLUMNS..(r + 1) * COLUMNS].to_vec();
        let mut inclusive = Vec::new();
        let mut total = 0.0;
        for &v in row {
            total += v;
            inclusive.push(total);
        }
        assert_eq!(at("inclusive"), inclusive, "row {r}: inclusive CumSum");
        let mut exclusive_reversed = vec![0.0; COLUMNS];
        let mut total = 0.0;
        for c in (0..COLUMNS).rev() {
            exclusive_reversed[c] = total;
            total += row[c];
        }
        assert_eq!(
            at("exclusive_reversed"),
            exclusive_reversed,
            "row {r}: exclusive reversed CumSum"
        );
        let mut integer_reversed = vec![0.0; COLUMNS];
        let mut total = 0i64;
        for c in (0..COLUMNS).rev() {
            total += row[c] as i64;
            integer_reversed[c] = total as f32;
        }
        assert_eq!(
            at("integer_reversed"),
            integer_reversed,
            "row {r}: integer CumSum"
        );
        let top = floats("top_values")[r * 3..(r + 1) * 3].to_vec();
        let mut sorted = row.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(
            top,
            sorted[..3],
            "row {r}: TopK's three largest, largest first"
        );
        assert_eq!(
            floats("gathered")[r * 3..(r + 1) * 3].to_vec(),
            top,
            "row {r}: GatherElements of TopK's indices gives TopK's values"
        );
        assert_eq!(
            floats("gathered_negative")[r * 3..(r + 1) * 3].to_vec(),
            top,
            "row {r}: negative indices count from the end"
        );
    }
}
