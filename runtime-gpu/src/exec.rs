//! Running a [`Plan`] on a device: constants uploaded once, then per batch one compute pass holding every node's
//! dispatch, and the graph outputs copied back.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tern_runtime::{Output, OutputValues, Outputs};
use wgpu::util::DeviceExt;

use crate::{Gpu, GpuError, GpuModel, BATCH_ROWS};
use tern_runtime::plan::{around, axis_index, DType, Kernel, Plan, Step};

/// The most workgroups a dispatch may have in one dimension (WebGPU's default `maxComputeWorkgroupsPerDimension`).
const MAX_WORKGROUPS_PER_DIMENSION: usize = 65_535;
/// Invocations per workgroup (every kernel's `@workgroup_size`).
const WORKGROUP: usize = 64;
/// Words in a kernel's uniform block (`Params` in kernels.wgsl).
const PARAM_WORDS: usize = 32;

/// A kernel entry point: its name and how many inputs (bindings 1…) and outputs (bindings 4…) it binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Entry {
    name: &'static str,
    inputs: usize,
    outputs: usize,
}

const UNARY: Entry = Entry {
    name: "unary",
    inputs: 1,
    outputs: 1,
};
const BINARY: Entry = Entry {
    name: "binary",
    inputs: 2,
    outputs: 1,
};
const WHERE: Entry = Entry {
    name: "where_select",
    inputs: 3,
    outputs: 1,
};
const MATMUL: Entry = Entry {
    name: "matmul",
    inputs: 3,
    outputs: 1,
};
const REDUCE: Entry = Entry {
    name: "reduce",
    inputs: 1,
    outputs: 1,
};
const ARG_REDUCE: Entry = Entry {
    name: "arg_reduce",
    inputs: 1,
    outputs: 1,
};
const SOFTMAX: Entry = Entry {
    name: "softmax",
    inputs: 1,
    outputs: 1,
};
const TOP_K: Entry = Entry {
    name: "top_k",
    inputs: 1,
    outputs: 2,
};
const GATHER: Entry = Entry {
    name: "gather",
    inputs: 2,
    outputs: 1,
};
const GATHER_ELEMENTS: Entry = Entry {
    name: "gather_elements",
    inputs: 2,
    outputs: 1,
};
const CUM_SUM: Entry = Entry {
    name: "cum_sum",
    inputs: 1,
    outputs: 1,
};
const DEQUANTIZE: Entry = Entry {
    name: "dequantize",
    inputs: 3,
    outputs: 1,
};
const CAST_F16: Entry = Entry {
    name: "cast_f16",
    inputs: 1,
    outputs: 1,
};

fn entry_of(kernel: &Kernel) -> Option<Entry> {
    Some(match kernel {
        Kernel::Unary(_) => UNARY,
        Kernel::Binary(_) => BINARY,
        Kernel::Where => WHERE,
        Kernel::MatMul { .. } => MATMUL,
        Kernel::Reduce { .. } => REDUCE,
        Kernel::ArgReduce { .. } => ARG_REDUCE,
        Kernel::Softmax { .. } => SOFTMAX,
        Kernel::TopK { .. } => TOP_K,
        Kernel::Gather { .. } => GATHER,
        Kernel::GatherElements { .. } => GATHER_ELEMENTS,
        Kernel::CumSum { .. } => CUM_SUM,
        Kernel::Dequantize { .. } => DEQUANTIZE,
        Kernel::CastF16 => CAST_F16,
        Kernel::View(_) | Kernel::TreeEnsemble(_) | Kernel::RandomCutForest(_) => return None,
    })
}

/// The compiled kernels a plan uses.
#[derive(Debug)]
pub(crate) struct Pipelines {
    by_entry: HashMap<&'static str, wgpu::ComputePipeline>,
    /// Bound where a kernel's optional input is absent.
    placeholder: wgpu::Buffer,
}

fn execution(operation: &'static str) -> impl Fn(String) -> GpuError {
    move |reason| GpuError::Execution { operation, reason }
}

/// Uploads `plan`'s constants and compiles the kernels it uses.
pub(crate) async fn prepare(gpu: Gpu, plan: Plan) -> Result<GpuModel, GpuError> {
    let device = &gpu.device;
    let limits = device.limits();
    let buffer_limit =
        u64::from(limits.max_storage_buffer_binding_size).min(limits.max_buffer_size);
    device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("tern-gpu kernels.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("kernels.wgsl").into()),
    });
    let mut by_entry = HashMap::new();
    for step in &plan.steps {
        if let Some(entry) = entry_of(&step.kernel) {
            by_entry.entry(entry.name).or_insert_with(|| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry.name),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry.name),
                    compilation_options: Default::default(),
                    cache: None,
                })
            });
        }
    }
    let mut constants = Vec::with_capacity(plan.values.len());
    for value in &plan.values {
        constants.push(match &value.constant {
            Some(constant) => {
                let bytes = words_to_bytes(&constant.words);
                if bytes.len() as u64 > buffer_limit {
                    return Err(GpuError::TooLarge {
                        value: format!("initializer {:?}", value.name),
                        bytes: bytes.len() as u64,
                        limit: buffer_limit,
                    });
                }
                Some(storage_init(device, &value.name, &bytes))
            }
            None => None,
        });
    }
    let placeholder = storage_init(device, "absent input", &[0; 4]);
    let validation = device.pop_error_scope().await;
    let memory = device.pop_error_scope().await;
    if let Some(error) = validation.or(memory) {
        return Err(execution("kernel compilation / constant upload")(
            error.to_string(),
        ));
    }
    Ok(GpuModel {
        gpu,
        plan,
        constants,
        pipelines: Pipelines {
            by_entry,
            placeholder,
        },
        buffer_limit,
    })
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    if words.is_empty() {
        return vec![0; 4];
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn storage_init(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// See [`GpuModel::run`].
pub(crate) async fn run(
    model: &GpuModel,
    features: &[f32],
    rows: usize,
) -> Result<Outputs, GpuError> {
    let dim = model.plan.feature_dim;
    if rows.checked_mul(dim) != Some(features.len()) {
        return Err(GpuError::Input {
            message: format!(
                "{} feature values given for {rows} rows of {dim} features",
                features.len()
            ),
        });
    }
    if let Some(index) = features.iter().position(|v| !v.is_finite()) {
        let value = features[index];
        return Err(GpuError::Record {
            record: (index / dim.max(1)) as u64 + 1,
            field: format!("features[{}]", index % dim.max(1)),
            message: if value.is_nan() {
                "NaN (a missing value) is not allowed: this model has no missing-value handling"
                    .into()
            } else {
                format!("{value} is not allowed: features must be finite")
            },
        });
    }
    let mut outputs: Vec<Output> = model
        .plan
        .outputs
        .iter()
        .map(|o| Output {
            name: o.name.clone(),
            shape: vec![0],
            values: if o.integer {
                OutputValues::I64(Vec::new())
            } else {
                OutputValues::F32(Vec::new())
            },
        })
        .collect();
    if rows == 0 || dim == 0 {
        let shapes = model.plan.shapes(rows).map_err(|(step, reason)| {
            execution("shape inference")(format!("{}: {reason}", model.plan.steps[step].node))
        })?;
        for (output, spec) in outputs.iter_mut().zip(&model.plan.outputs) {
            output.shape = shapes[spec.value].clone();
        }
        if rows == 0 {
            return Ok(Outputs { rows, outputs });
        }
    }
    let mut done = 0;
    while done < rows {
        let batch_rows = (rows - done).min(BATCH_ROWS);
        let batch = &features[done * dim..(done + batch_rows) * dim];
        let results = run_batch(model, batch, batch_rows).await?;
        for (output, (shape, words)) in outputs.iter_mut().zip(results) {
            if done == 0 {
                output.shape = shape;
            } else if let Some(first) = output.shape.first_mut() {
                *first += shape.first().copied().unwrap_or(0);
            }
            match &mut output.values {
                OutputValues::F32(values) => {
                    values.extend(words.iter().map(|&w| f32::from_bits(w)))
                }
                OutputValues::I64(values) => {
                    values.extend(words.iter().map(|&w| i64::from(w as i32)))
                }
                OutputValues::Text(_) => {
                    return Err(execution("outputs")(format!(
                        "{} is a text output; graphs make numbers",
                        output.name
                    )))
                }
            }
        }
        done += batch_rows;
    }
    Ok(Outputs { rows, outputs })
}

/// Grid (x, y) of 64-invocation workgroups covering `count` invocations; kernels rebuild the flat index.
fn grid(count: usize) -> Result<(u32, u32), GpuError> {
    let groups = count.div_ceil(WORKGROUP).max(1);
    let x = groups.min(MAX_WORKGROUPS_PER_DIMENSION);
    let y = groups.div_ceil(x);
    if y > MAX_WORKGROUPS_PER_DIMENSION {
        return Err(GpuError::Execution {
            operation: "dispatch",
            reason: format!("{count} invocations exceed 65,535 × 65,535 workgroups"),
        });
    }
    Ok((x as u32, y as u32))
}

/// Rank-4 strides of an operand of shape `shape` broadcast to `out` (rank ≤ 4): 0 along broadcast dimensions.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> [u32; 4] {
    let mut strides = [0u32; 4];
    let mut stride = 1usize;
    for i in (0..shape.len()).rev() {
        let position = 4 - (shape.len() - i);
        let out_dim = out[out.len() - (shape.len() - i)];
        strides[position] = if shape[i] == 1 && out_dim != 1 {
            0
        } else {
            stride as u32
        };
        stride *= shape[i];
    }
    strides
}

/// Rank-4 output dimensions, left-padded with 1.
fn padded_dims(out: &[usize]) -> [u32; 4] {
    let mut dims = [1u32; 4];
    for (i, &d) in out.iter().enumerate() {
        dims[4 - out.len() + i] = d as u32;
    }
    dims
}

/// The uniform words and invocation count of one step's dispatch.
fn params_of(plan: &Plan, step: &Step, shapes: &[Vec<usize>]) -> Result<(Vec<u32>, usize), String> {
    let in_shape = |i: usize| -> &[usize] {
        step.inputs
            .get(i)
            .copied()
            .flatten()
            .map(|v| shapes[v].as_slice())
            .unwrap_or(&[])
    };
    let out = &shapes[step.outputs[0]];
    let out_count: usize = out.iter().product();
    let a = in_shape(0);
    let words: Vec<u32> = match &step.kernel {
        Kernel::Unary(op) => vec![out_count as u32, *op as u32],
        Kernel::CastF16 => vec![out_count as u32],
        Kernel::Binary(op) => {
            let mut w = vec![out_count as u32, *op as u32];
            w.extend(padded_dims(out));
            w.extend(broadcast_strides(a, out));
            w.extend(broadcast_strides(in_shape(1), out));
            w
        }
        Kernel::Where => {
            let mut w = vec![out_count as u32, 0];
            w.extend(padded_dims(out));
            for i in 0..3 {
                w.extend(broadcast_strides(in_shape(i), out));
            }
            w
        }
        Kernel::MatMul {
            transpose_b,
            alpha,
            beta,
        } => {
            let (m, k, n) = (a[0], a[1], out[1]);
            let c = step.inputs.get(2).copied().flatten().map(|v| &shapes[v]);
            let (row_stride, column_stride) = match c {
                Some(c) => {
                    let s = broadcast_strides(c, out);
                    (s[2], s[3])
                }
                None => (0, 0),
            };
            let w = vec![
                m as u32,
                k as u32,
                n as u32,
                u32::from(*transpose_b),
                alpha.to_bits(),
                beta.to_bits(),
                u32::from(c.is_some()),
                row_stride,
                column_stride,
            ];
            return Ok((w, m * n));
        }
        Kernel::Reduce { op, axes, .. } => {
            let reduced: Vec<usize> = match axes {
                None => (0..a.len()).collect(),
                Some(axes) => axes
                    .iter()
                    .map(|&x| axis_index(x, a.len()))
                    .collect::<Result<_, _>>()?,
            };
            let first = reduced.iter().copied().min().unwrap_or(0);
            let last = reduced.iter().copied().max().unwrap_or(0);
            let (infinity, minus_infinity) = (f32::INFINITY.to_bits(), f32::NEG_INFINITY.to_bits());
            if a.is_empty() {
                return Ok((vec![1, 1, 1, *op as u32, infinity, minus_infinity], 1));
            }
            let outer: usize = a[..first].iter().product();
            let r: usize = a[first..=last].iter().product();
            let inner: usize = a[last + 1..].iter().product();
            return Ok((
                vec![
                    outer as u32,
                    r as u32,
                    inner as u32,
                    *op as u32,
                    infinity,
                    minus_infinity,
                ],
                outer * inner,
            ));
        }
        Kernel::ArgReduce {
            max, axis, last, ..
        } => {
            let (outer, r, inner) = around(a, axis_index(*axis, a.len())?);
            return Ok((
                vec![
                    outer as u32,
                    r as u32,
                    inner as u32,
                    u32::from(*max),
                    u32::from(*last),
                ],
                outer * inner,
            ));
        }
        Kernel::Softmax { axis, log } => {
            let (outer, r, inner) = around(a, axis_index(*axis, a.len())?);
            return Ok((
                vec![outer as u32, r as u32, inner as u32, u32::from(*log)],
                outer * inner,
            ));
        }
        Kernel::TopK { axis, k, largest } => {
            let (outer, r, inner) = around(a, axis_index(*axis, a.len())?);
            return Ok((
                vec![
                    outer as u32,
                    r as u32,
                    inner as u32,
                    *k as u32,
                    u32::from(*largest),
                ],
                outer * inner,
            ));
        }
        Kernel::Gather { axis } => {
            let (outer, axis_size, inner) = around(a, axis_index(*axis, a.len())?);
            let indices: usize = in_shape(1).iter().product();
            vec![
                out_count as u32,
                outer as u32,
                axis_size as u32,
                inner as u32,
                indices as u32,
            ]
        }
        Kernel::GatherElements { axis } => {
            let (_, axis_size, inner) = around(a, axis_index(*axis, a.len())?);
            let indices_axis = in_shape(1)[axis_index(*axis, a.len())?];
            vec![
                out_count as u32,
                axis_size as u32,
                inner as u32,
                indices_axis as u32,
            ]
        }
        Kernel::CumSum {
            axis,
            exclusive,
            reverse,
        } => {
            let (outer, r, inner) = around(a, axis_index(*axis, a.len())?);
            let integer = step
                .inputs
                .first()
                .copied()
                .flatten()
                .is_some_and(|v| plan.values[v].dtype == DType::Int);
            return Ok((
                vec![
                    outer as u32,
                    r as u32,
                    inner as u32,
                    u32::from(*exclusive),
                    u32::from(*reverse),
                    u32::from(integer),
                ],
                outer * inner,
            ));
        }
        Kernel::Dequantize { axis } => {
            let scale_count: usize = in_shape(1).iter().product();
            let per_axis = scale_count != 1;
            let (axis_size, inner) = if per_axis {
                let (_, size, inner) = around(a, axis_index(*axis, a.len())?);
                (size, inner)
            } else {
                (1, 1)
            };
            let signed = step
                .inputs
                .first()
                .copied()
                .flatten()
                .is_some_and(|v| plan.values[v].dtype == DType::I8);
            vec![
                out_count as u32,
                axis_size as u32,
                inner as u32,
                u32::from(signed),
                u32::from(per_axis),
                u32::from(step.inputs.get(2).copied().flatten().is_some()),
            ]
        }
        Kernel::View(_) => return Err("a view has no dispatch".into()),
        Kernel::TreeEnsemble(_) | Kernel::RandomCutForest(_) => {
            return Err("a tree walk has no GPU kernel".into())
        }
    };
    Ok((words, out_count))
}

async fn run_batch(
    model: &GpuModel,
    features: &[f32],
    rows: usize,
) -> Result<Vec<(Vec<usize>, Vec<u32>)>, GpuError> {
    let plan = &model.plan;
    let device = &model.gpu.device;
    let shapes = plan.shapes(rows).map_err(|(step, reason)| {
        execution("shape inference")(format!("node {:?}: {reason}", plan.steps[step].node))
    })?;
    // Everything that can fail on sizes is checked before the GPU sees any work.
    let mut dispatches: Vec<Option<(Vec<u32>, usize)>> = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        if entry_of(&step.kernel).is_none() {
            dispatches.push(None);
            continue;
        }
        for &out in &step.outputs {
            let count: usize = shapes[out].iter().product();
            let bytes = (plan.values[out].dtype.words(count) * 4).max(4) as u64;
            if bytes > model.buffer_limit {
                return Err(GpuError::TooLarge {
                    value: format!("value {:?}", plan.values[out].name),
                    bytes,
                    limit: model.buffer_limit,
                });
            }
        }
        let (mut words, count) = params_of(plan, step, &shapes).map_err(|reason| {
            execution("shape inference")(format!("node {:?}: {reason}", step.node))
        })?;
        grid(count)?;
        words.resize(PARAM_WORDS, 0);
        dispatches.push(Some((words, count)));
    }
    let input_bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    if input_bytes.len() as u64 > model.buffer_limit {
        return Err(GpuError::TooLarge {
            value: "the input".into(),
            bytes: input_bytes.len() as u64,
            limit: model.buffer_limit,
        });
    }

    let mut buffers = model.constants.clone();
    device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    device.push_error_scope(wgpu::ErrorFilter::Validation);
    buffers[plan.input] = Some(storage_init(device, "input", &input_bytes));
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("tern-gpu run"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("tern-gpu graph"),
            timestamp_writes: None,
        });
        for (step, dispatch) in plan.steps.iter().zip(&dispatches) {
            let (Some(entry), Some((words, count))) = (entry_of(&step.kernel), dispatch) else {
                let source = step.inputs[0].expect("views have their input");
                buffers[step.outputs[0]] = buffers[source].clone();
                continue;
            };
            for &out in &step.outputs {
                let count: usize = shapes[out].iter().product();
                let bytes = (plan.values[out].dtype.words(count) * 4).max(4) as u64;
                buffers[out] = Some(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&plan.values[out].name),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }));
            }
            if *count == 0 {
                continue;
            }
            let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &words_to_bytes(words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let pipeline = &model.pipelines.by_entry[entry.name];
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }];
            for i in 0..entry.inputs {
                let buffer = step
                    .inputs
                    .get(i)
                    .copied()
                    .flatten()
                    .and_then(|v| buffers[v].as_ref())
                    .unwrap_or(&model.pipelines.placeholder);
                entries.push(wgpu::BindGroupEntry {
                    binding: 1 + i as u32,
                    resource: buffer.as_entire_binding(),
                });
            }
            for (i, &out) in step.outputs.iter().enumerate().take(entry.outputs) {
                let buffer = buffers[out].as_ref().expect("outputs were just created");
                entries.push(wgpu::BindGroupEntry {
                    binding: 4 + i as u32,
                    resource: buffer.as_entire_binding(),
                });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&step.node),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let (x, y) = grid(*count)?;
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
    }
    let mut staging = Vec::with_capacity(plan.outputs.len());
    for output in &plan.outputs {
        let count: usize = shapes[output.value].iter().product();
        let bytes = (count * 4) as u64;
        let source = buffers[output.value]
            .as_ref()
            .expect("every value has a buffer once the pass is encoded");
        let target = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(source, 0, &target, 0, bytes);
        }
        staging.push((target, count));
    }
    model.gpu.queue.submit([encoder.finish()]);
    let mapped: Vec<MapFuture> = staging
        .iter()
        .map(|(buffer, _)| MapFuture::new(buffer))
        .collect();
    // Native: waits for the GPU and runs the map callbacks. In a browser it returns at once; the callbacks come from
    // the event loop and wake the futures below.
    device
        .poll(wgpu::PollType::Wait)
        .map_err(|e| execution("graph run")(e.to_string()))?;
    let validation = device.pop_error_scope().await;
    let memory = device.pop_error_scope().await;
    if let Some(error) = validation.or(memory) {
        return Err(execution("graph run")(error.to_string()));
    }
    for future in mapped {
        future
            .await
            .map_err(|e| execution("read back")(format!("mapping a result buffer: {e}")))?;
    }
    let mut results = Vec::with_capacity(staging.len());
    for ((buffer, count), output) in staging.iter().zip(&plan.outputs) {
        let words: Vec<u32> = {
            let view = buffer.slice(..).get_mapped_range();
            view.chunks_exact(4)
                .take(*count)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect()
        };
        buffer.unmap();
        debug_assert!(plan.values[output.value].dtype != DType::F16);
        results.push((shapes[output.value].clone(), words));
    }
    Ok(results)
}

#[derive(Default)]
struct MapState {
    result: Option<Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

/// Resolves when a buffer's `map_async` callback has run.
struct MapFuture {
    state: Arc<Mutex<MapState>>,
}

impl MapFuture {
    fn new(buffer: &wgpu::Buffer) -> MapFuture {
        let state = Arc::new(Mutex::new(MapState::default()));
        let sink = Arc::clone(&state);
        buffer
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                let waker = match sink.lock() {
                    Ok(mut state) => {
                        state.result = Some(result);
                        state.waker.take()
                    }
                    Err(_) => None,
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
        MapFuture { state }
    }
}

impl Future for MapFuture {
    type Output = Result<(), wgpu::BufferAsyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut state) = self.state.lock() else {
            return Poll::Ready(Err(wgpu::BufferAsyncError));
        };
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
