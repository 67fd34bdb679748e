//! tern packages on a GPU: a graph executor over wgpu with WGSL compute kernels for the dense op subset the
//! compiler emits (Linear Learner, K-Means, PCA, k-NN Flat and IVF, at fp32, f16 and int8), natively (Vulkan, Metal, DX12;
//! Mesa's lavapipe without a GPU) and in browsers (WebGPU, with wgpu's `webgpu` feature on wasm32).
//!
//! [`GpuModel::new`] checks a package's graph against [`SUPPORTED_OPS`] and types it once; a graph holding any
//! other op (tree ensembles, `ai.tern` ops) is refused with [`GpuError::Unsupported`]
//! naming the node and op, so the caller runs that graph on tract instead. [`GpuModel::run`] is async because
//! reading results back from a browser's GPU is; native callers block on it (e.g. with `pollster`).
//!
//! Every tensor lives on the GPU as 32-bit words: float32, integers as i32 (ONNX int64 values here are indices and
//! labels), booleans as 0/1, float16 weights two per word and int8 weights four per word, widened by the `Cast` /
//! `DequantizeLinear` kernels on the GPU. Sums (MatMul, ReduceSum, Softmax) run in index order in float32, so results
//! equal tract's to rounding, not bit for bit.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bytes = std::fs::read("pkg/model.onnx")?;
//! let model = tern_runtime::onnx::ModelProto::from_bytes(&bytes)?;
//! let gpu = pollster::block_on(tern_gpu::Gpu::request())?;
//! let executor = pollster::block_on(tern_gpu::GpuModel::new(&gpu, &model))?; // Unsupported: run it on tract
//! let outputs = pollster::block_on(executor.run(&[1.5, 16.0, 14.0], 1))?;
//! println!("{:?}", outputs.outputs[0].values);
//! # Ok(()) }
//! ```

mod exec;

use tern_runtime::onnx::ModelProto;
use tern_runtime::plan::Plan;
pub use tern_runtime::plan::{Unsupported, SUPPORTED_OPS};
use tern_runtime::Outputs;

/// The rows one GPU run takes at most; [`GpuModel::run`] splits larger inputs (as tract's runtime does).
pub const BATCH_ROWS: usize = tern_runtime::BATCH_ROWS;

/// What the GPU backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The graph holds an op (or a type, shape or attribute) the GPU kernels do not implement.
    #[error("the GPU backend cannot run this graph: {0}")]
    Unsupported(Unsupported),
    /// No adapter exists (no driver, no WebGPU in this browser, or none wgpu supports).
    #[error(
        "no GPU adapter found ({reason}); natively, install a Vulkan driver (scripts/setup-gpu.sh installs Mesa's \
         software lavapipe)"
    )]
    NoAdapter { reason: String },
    /// The adapter exists but refused a device.
    #[error("GPU adapter {adapter:?} refused a device: {reason}")]
    Device { adapter: String, reason: String },
    /// An input row holds a value the model refuses, or the features are not whole rows.
    #[error("input: record {record}: {field}: {message}")]
    Record {
        record: u64,
        field: String,
        message: String,
    },
    /// The features are not `rows` whole rows of the graph's feature count.
    #[error("input: {message}")]
    Input { message: String },
    /// A value of this run needs a buffer larger than the device allows.
    #[error("{value} needs {bytes} bytes in one GPU buffer, above the device's limit of {limit} bytes; send fewer rows")]
    TooLarge {
        value: String,
        bytes: u64,
        limit: u64,
    },
    /// The GPU reported an error (validation, out of memory, device lost) or a result could not be read back.
    #[error("GPU {operation} failed: {reason}")]
    Execution {
        operation: &'static str,
        reason: String,
    },
}

impl From<Unsupported> for GpuError {
    fn from(value: Unsupported) -> Self {
        GpuError::Unsupported(value)
    }
}

/// Checks `model`'s graph against the GPU backend's op subset without a device: `Ok` when [`GpuModel::new`] would
/// accept it (a device can still refuse it, e.g. for its buffer limits).
pub fn check(model: &ModelProto) -> Result<(), Unsupported> {
    gpu_plan(model).map(|_| ())
}

/// `model`'s plan when every step has a GPU kernel.
fn gpu_plan(model: &ModelProto) -> Result<Plan, Unsupported> {
    let plan = Plan::new(model)?;
    match plan.gpu_unsupported() {
        Some(unsupported) => Err(unsupported),
        None => Ok(plan),
    }
}

/// A GPU device and its queue, from the first adapter wgpu finds.
#[derive(Debug, Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter: name, backend and device type (e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`).
    pub adapter: String,
}

impl Gpu {
    /// Opens the first adapter wgpu finds (high-performance preferred; natively `WGPU_BACKEND` /
    /// `WGPU_ADAPTER_NAME` narrow the choice) with the adapter's own limits.
    ///
    /// Errors: [`GpuError::NoAdapter`] when none exists, [`GpuError::Device`] when it refuses a device.
    pub async fn request() -> Result<Gpu, GpuError> {
        let instance = wgpu::Instance::new(&wgpu::InstanceDescriptor::from_env_or_default());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                force_fallback_adapter: false,
                compatible_surface: None,
            })
            .await
            .map_err(|e| GpuError::NoAdapter {
                reason: e.to_string(),
            })?;
        let info = adapter.get_info();
        let name = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tern-gpu"),
                required_features: wgpu::Features::empty(),
                required_limits: adapter.limits(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::Device {
                adapter: name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Gpu {
            device,
            queue,
            adapter: name,
        })
    }
}

/// A package's graph ready to run on a GPU: checked, typed, its constants uploaded and its kernels compiled.
#[derive(Debug)]
pub struct GpuModel {
    gpu: Gpu,
    plan: Plan,
    /// One per plan value: the uploaded constant, `None` for computed values.
    constants: Vec<Option<wgpu::Buffer>>,
    pipelines: exec::Pipelines,
    /// The largest buffer a run may bind, in bytes.
    buffer_limit: u64,
}

impl GpuModel {
    /// Prepares `model`'s graph on `gpu`'s device.
    ///
    /// Errors: [`GpuError::Unsupported`] naming the first node outside the op subset (or of an unsupported type,
    /// shape or attribute); [`GpuError::Execution`] when the device rejects the kernels or the constants.
    pub async fn new(gpu: &Gpu, model: &ModelProto) -> Result<GpuModel, GpuError> {
        let plan = gpu_plan(model)?;
        exec::prepare(gpu.clone(), plan).await
    }

    /// The number of features a row has (the graph input's second dimension).
    pub fn feature_dim(&self) -> usize {
        self.plan.feature_dim
    }

    /// The adapter the model runs on.
    pub fn adapter(&self) -> &str {
        &self.gpu.adapter
    }

    /// Runs the graph on `rows` rows of `features` (row-major, [`GpuModel::feature_dim`] per row), [`BATCH_ROWS`]
    /// rows per GPU submission, and returns every graph output over all rows, in graph order, as
    /// [`tern_runtime::Package::run`] does (integer and boolean outputs as int64).
    ///
    /// Errors: [`GpuError::Input`] when `features` is not `rows` whole rows; [`GpuError::Record`] for a NaN or
    /// infinite feature (no graph the GPU backend runs reads NaN as missing), naming the record and feature;
    /// [`GpuError::TooLarge`] / [`GpuError::Execution`] when the device cannot run the batch.
    pub async fn run(&self, features: &[f32], rows: usize) -> Result<Outputs, GpuError> {
        exec::run(self, features, rows).await
    }
}
