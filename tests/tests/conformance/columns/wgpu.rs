//! The `native-wgpu` column: the package's graph on tern-gpu's kernels, natively (lavapipe without a GPU). Graphs
//! outside the kernels' op subset print as `fallback`, the op named, since the runtimes then run them on tract; no
//! adapter skips the column with a note ([`Cell::not_run`]).

use std::path::Path;
use std::sync::OnceLock;

use super::native::predictions;
use super::{Column, Job};
use crate::compare::{Cell, RuntimePredictions};

/// The native-wgpu column, with the adapter it opens on its first cell.
#[derive(Default)]
pub struct NativeWgpu {
    gpu: OnceLock<Result<tern_gpu::Gpu, String>>,
}

impl Column for NativeWgpu {
    fn name(&self) -> &'static str {
        "native-wgpu"
    }

    fn ignored_as(&self) -> &'static str {
        "x86_64"
    }

    fn run(&self, job: &Job) -> Cell {
        let gpu = self.gpu.get_or_init(|| {
            pollster::block_on(tern_gpu::Gpu::request()).map_err(|e| e.to_string())
        });
        let gpu = match gpu {
            Ok(gpu) => gpu,
            Err(why) => return Cell::not_run(why),
        };
        match run_wgpu(gpu, job) {
            Ok(Err(refused)) => Cell::fallback("CPU (tract)", &refused),
            Ok(Ok(predictions)) => job.check(Ok(predictions)),
            Err(error) => job.check(Err(error)),
        }
    }
}

/// Runs the job's graph on tern-gpu's kernels. `Ok(Err(reason))`: the GPU backend refuses the graph (its op named),
/// so runtimes fall back to the CPU for it.
fn run_wgpu(gpu: &tern_gpu::Gpu, job: &Job) -> Result<Result<RuntimePredictions, String>, String> {
    let bytes = std::fs::read(job.package.join("model.onnx")).map_err(|e| e.to_string())?;
    let proto = tern_runtime::onnx::ModelProto::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let model = match pollster::block_on(tern_gpu::GpuModel::new(gpu, &proto)) {
        Ok(model) => model,
        Err(tern_gpu::GpuError::Unsupported(refused)) => return Ok(Err(refused.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    let outputs =
        pollster::block_on(model.run(job.features, job.rows)).map_err(|e| e.to_string())?;
    predictions(&outputs, job.manifest, job.rows).map(Ok)
}

/// Whether tern-gpu's op check accepts the package's graph (what every WebGPU build must then run).
pub fn gpu_accepts(package: &Path) -> bool {
    std::fs::read(package.join("model.onnx"))
        .ok()
        .and_then(|bytes| tern_runtime::onnx::ModelProto::from_bytes(&bytes).ok())
        .is_some_and(|proto| tern_gpu::check(&proto).is_ok())
}
