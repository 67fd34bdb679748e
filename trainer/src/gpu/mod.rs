//! GPU kernels (feature `gpu`): squared Euclidean distances between a batch of rows and a set of points, on any
//! adapter wgpu finds (Vulkan, Metal, DX12; on a machine without a GPU, Mesa's lavapipe software Vulkan, which
//! `scripts/setup-gpu.sh` installs).
//!
//! - [`Gpu::assign_nearest`]: each row's nearest point and squared distance — the K-Means assignment step.
//! - [`Gpu::pairwise_sq_distances`] / [`Gpu::for_each_distance_block`]: the full `rows × points` matrix, or the same
//!   one block of rows at a time (bounded memory), ready for a top-k selection per row (k-NN);
//!   [`Gpu::for_each_score_block`] does the same for inner products ([`Score`]).
//!
//! Every distance (inner product) is summed in feature order in f32, `((0 + d₀²) + d₁²) + …`, as the CPU code in
//! `algorithms::kmeans` does, so results agree with it to rounding (a GPU compiler may fuse a multiply-add).
//! Inputs of any size are tiled so that no dispatch exceeds the 65,535-workgroup limit per dimension and no buffer
//! exceeds the adapter's binding limit. Every failure (no adapter, device refused, out of memory, a validation
//! error) is a [`GpuError`], never a panic.
//!
//! ```no_run
//! let gpu = tern_trainer::gpu::Gpu::new()?;
//! let rows = [0.0f32, 0.0, 3.0, 4.0];
//! let centres = [0.0f32, 0.0, 3.0, 3.0];
//! assert_eq!(gpu.assign_nearest(&rows, &centres, 2)?, vec![(0, 0.0), (1, 1.0)]);
//! # Ok::<(), tern_trainer::gpu::GpuError>(())
//! ```

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

/// The most workgroups a dispatch may have in one dimension (WebGPU's `maxComputeWorkgroupsPerDimension` default).
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65_535;
/// Rows and points per `pairwise` workgroup side.
const TILE: usize = 16;
/// Rows per `assign` workgroup.
const ASSIGN_GROUP: usize = 64;
/// The largest buffer this module creates, even where the adapter allows more.
const MAX_BUFFER_BYTES: u64 = 256 << 20;

/// Why a GPU computation could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter exists (no driver, or none wgpu supports).
    #[error(
        "no GPU adapter found ({reason}); install a Vulkan driver (scripts/setup-gpu.sh installs Mesa's software \
         lavapipe) or use --device cpu"
    )]
    NoAdapter { reason: String },
    /// The adapter exists but refused a device.
    #[error("GPU adapter {adapter:?} refused a device: {reason}")]
    Device { adapter: String, reason: String },
    /// Inputs of inconsistent sizes.
    #[error("{what}: {message}")]
    Input { what: &'static str, message: String },
    /// One row or point alone is larger than a GPU buffer may be.
    #[error("{what} needs {bytes} bytes in one GPU buffer, above the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
    /// The GPU reported an error (validation, out of memory, device lost) or a buffer could not be read back.
    #[error("GPU {operation} failed: {reason}")]
    Execution {
        operation: &'static str,
        reason: String,
    },
}

/// A GPU device with the distance kernels compiled. Create one and reuse it: creation takes milliseconds to
/// seconds (shader compilation).
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pairwise: wgpu::ComputePipeline,
    assign: wgpu::ComputePipeline,
    adapter: String,
    /// The largest buffer (and storage binding) the kernels use, in bytes.
    buffer_limit: u64,
    /// Errors the device raised outside an error scope (device loss, internal errors).
    uncaptured: Arc<Mutex<Option<String>>>,
}

/// What [`Gpu::for_each_score_block`] computes between a row `x` and a point `y`, summed in f32 in feature order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    /// `Σ (xᵢ − yᵢ)²`.
    SquaredEuclidean,
    /// `Σ xᵢ yᵢ`.
    InnerProduct,
}

/// The kernels' uniform block (`Params` in distances.wgsl; `score` only matters to `pairwise`).
#[derive(Clone, Copy)]
struct Params {
    rows: u32,
    points: u32,
    dim: u32,
    groups_x: u32,
    score: Score,
}

impl Params {
    fn bytes(self) -> [u8; 32] {
        let score = match self.score {
            Score::SquaredEuclidean => 0,
            Score::InnerProduct => 1,
        };
        let mut out = [0u8; 32];
        for (chunk, value) in
            out.chunks_exact_mut(4)
                .zip([self.rows, self.points, self.dim, self.groups_x, score])
        {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        out
    }
}

impl Gpu {
    /// Opens the first adapter wgpu finds (high-performance preferred; `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`
    /// narrow the choice) and compiles the kernels.
    ///
    /// Errors: [`GpuError::NoAdapter`] when no adapter exists, [`GpuError::Device`] when it refuses a device or the
    /// kernels.
    pub fn new() -> Result<Gpu, GpuError> {
        Gpu::open(wgpu::InstanceDescriptor::from_env_or_default())
    }

    /// As [`Gpu::new`], looking only at `backends` (e.g. `wgpu::Backends::VULKAN`); backends this build lacks
    /// (only Vulkan, Metal and DX12 are compiled in) find no adapter.
    pub fn with_backends(backends: wgpu::Backends) -> Result<Gpu, GpuError> {
        Gpu::open(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::from_env_or_default()
        })
    }

    fn open(descriptor: wgpu::InstanceDescriptor) -> Result<Gpu, GpuError> {
        let instance = wgpu::Instance::new(&descriptor);
        let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(
            &instance, None,
        ))
        .map_err(|e| GpuError::NoAdapter {
            reason: e.to_string(),
        })?;
        let info = adapter.get_info();
        let adapter_name = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        let device_error = |reason: String| GpuError::Device {
            adapter: adapter_name.clone(),
            reason,
        };
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("tern distances"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| device_error(e.to_string()))?;
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Box::new(move |error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| error.to_string());
            }
        }));
        device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("distances.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("distances.wgsl").into()),
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let pairwise = pipeline("pairwise");
        let assign = pipeline("assign");
        if let Some(error) = pollster::block_on(device.pop_error_scope()) {
            return Err(device_error(format!("the distance kernels: {error}")));
        }
        let buffer_limit = u64::from(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size)
            .min(MAX_BUFFER_BYTES);
        Ok(Gpu {
            device,
            queue,
            pairwise,
            assign,
            adapter: adapter_name,
            buffer_limit,
            uncaptured,
        })
    }

    /// The adapter in use: name, backend and device type (e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// For each row of `rows` (row-major, `dim` values per row), the index of the nearest of `points` (row-major,
    /// `dim` values per point; the lowest index on ties) and the squared Euclidean distance to it.
    ///
    /// Errors: [`GpuError::Input`] when `dim` is 0, a slice is not a whole number of rows or `points` is empty;
    /// [`GpuError::TooLarge`] when `points` does not fit one buffer; [`GpuError::Execution`] on a GPU failure.
    pub fn assign_nearest(
        &self,
        rows: &[f32],
        points: &[f32],
        dim: usize,
    ) -> Result<Vec<(u32, f32)>, GpuError> {
        let (n, m) = shapes(rows, points, dim)?;
        let points_bytes = bytes_of(points.len());
        if points_bytes > self.buffer_limit {
            return Err(GpuError::TooLarge {
                what: "the points of assign_nearest",
                bytes: points_bytes,
                limit: self.buffer_limit,
            });
        }
        if m > u32::MAX as usize {
            return Err(GpuError::Input {
                what: "points",
                message: format!("{m} points, more than {} the kernel indexes", u32::MAX),
            });
        }
        let points_buffer = self.upload("points", points);
        let row_bytes = bytes_of(dim);
        let max_groups = MAX_WORKGROUPS_PER_DIMENSION as usize;
        // Rows per dispatch: the rows buffer within the limit, the grid within 65,535 × 65,535 groups.
        let chunk_rows = ((self.buffer_limit / row_bytes) as usize)
            .min(max_groups * max_groups * ASSIGN_GROUP)
            .min((self.buffer_limit / 4) as usize);
        if chunk_rows == 0 {
            return Err(GpuError::TooLarge {
                what: "one row",
                bytes: row_bytes,
                limit: self.buffer_limit,
            });
        }
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(chunk_rows) {
            let count = chunk_rows.min(n - start);
            let groups = count.div_ceil(ASSIGN_GROUP);
            let groups_x = groups.min(max_groups);
            let groups_y = groups.div_ceil(groups_x);
            let params = Params {
                rows: count as u32,
                points: m as u32,
                dim: dim as u32,
                groups_x: groups_x as u32,
                score: Score::SquaredEuclidean,
            };
            let rows_buffer = self.upload("rows", &rows[start * dim..(start + count) * dim]);
            let distances = self.output("distances", bytes_of(count));
            let nearest = self.output("nearest", bytes_of(count));
            let mut results = self.run(
                &self.assign,
                params,
                &[&rows_buffer, &points_buffer, &distances, &nearest],
                (groups_x as u32, groups_y as u32),
                &[&distances, &nearest],
            )?;
            let nearest = results.pop().unwrap_or_default();
            let distances = results.pop().unwrap_or_default();
            out.extend(
                words(&nearest)
                    .zip(words(&distances).map(f32::from_bits))
                    .take(count),
            );
        }
        Ok(out)
    }

    /// The `rows × points` matrix of squared Euclidean distances, row-major (`out[i * m + j]` between row `i` and
    /// point `j`). Holds the whole matrix in memory: for many rows and points use
    /// [`Gpu::for_each_distance_block`]. Errors as [`Gpu::for_each_distance_block`].
    pub fn pairwise_sq_distances(
        &self,
        rows: &[f32],
        points: &[f32],
        dim: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let (n, m) = shapes(rows, points, dim)?;
        let mut out = Vec::with_capacity(n * m);
        self.for_each_distance_block(rows, points, dim, |_, block| out.extend_from_slice(block))?;
        Ok(out)
    }

    /// Computes the squared Euclidean distances of every row to every point one block of consecutive rows at a
    /// time, calling `block(first_row, distances)` in row order with `distances` row-major `rows_in_block × m`
    /// (m = the number of points). A block holds at most [`MAX_BUFFER_BYTES`]-worth of distances (256 MiB), so a
    /// k-NN search can keep only each row's top k.
    ///
    /// Errors: [`GpuError::Input`] when `dim` is 0, a slice is not a whole number of rows or `points` is empty;
    /// [`GpuError::TooLarge`] when one row of distances or one row / point alone exceeds a buffer;
    /// [`GpuError::Execution`] on a GPU failure (blocks before it have been delivered).
    pub fn for_each_distance_block(
        &self,
        rows: &[f32],
        points: &[f32],
        dim: usize,
        block: impl FnMut(usize, &[f32]),
    ) -> Result<(), GpuError> {
        self.for_each_score_block(rows, points, dim, Score::SquaredEuclidean, block)
    }

    /// As [`Gpu::for_each_distance_block`], computing `score` (squared Euclidean distances or inner products) of
    /// every row against every point. Errors as [`Gpu::for_each_distance_block`].
    pub fn for_each_score_block(
        &self,
        rows: &[f32],
        points: &[f32],
        dim: usize,
        score: Score,
        mut block: impl FnMut(usize, &[f32]),
    ) -> Result<(), GpuError> {
        let (n, m) = shapes(rows, points, dim)?;
        let limit = self.buffer_limit;
        let row_bytes = bytes_of(dim);
        let tile_limit = MAX_WORKGROUPS_PER_DIMENSION as usize * TILE;
        // Points per dispatch: their buffer within the limit, the grid's x within 65,535 groups.
        let point_chunk = ((limit / row_bytes) as usize).min(tile_limit);
        // Rows per block: the rows buffer and the host-side block of distances within the limit, y within 65,535.
        let block_rows = ((limit / row_bytes) as usize)
            .min((limit / bytes_of(m)) as usize)
            .min(tile_limit);
        if point_chunk == 0 || block_rows == 0 {
            return Err(GpuError::TooLarge {
                what: if point_chunk == 0 {
                    "one row"
                } else {
                    "one row of distances"
                },
                bytes: row_bytes.max(bytes_of(m)),
                limit,
            });
        }
        let point_buffers: Vec<(usize, usize, wgpu::Buffer)> = (0..m)
            .step_by(point_chunk)
            .map(|start| {
                let count = point_chunk.min(m - start);
                let buffer = self.upload("points", &points[start * dim..(start + count) * dim]);
                (start, count, buffer)
            })
            .collect();
        let mut distances = vec![0.0f32; block_rows.min(n) * m];
        for row_start in (0..n).step_by(block_rows) {
            let rows_here = block_rows.min(n - row_start);
            let rows_buffer = self.upload(
                "rows",
                &rows[row_start * dim..(row_start + rows_here) * dim],
            );
            for (point_start, points_here, point_buffer) in &point_buffers {
                let (rows_here_u32, points_here_u32) = (rows_here as u32, *points_here as u32);
                let output = self.output("distances", bytes_of(rows_here * points_here));
                let params = Params {
                    rows: rows_here_u32,
                    points: points_here_u32,
                    dim: dim as u32,
                    groups_x: points_here.div_ceil(TILE) as u32,
                    score,
                };
                let grid = (
                    points_here.div_ceil(TILE) as u32,
                    rows_here.div_ceil(TILE) as u32,
                );
                let result = self
                    .run(
                        &self.pairwise,
                        params,
                        &[&rows_buffer, point_buffer, &output],
                        grid,
                        &[&output],
                    )?
                    .pop()
                    .unwrap_or_default();
                for (i, chunk) in result
                    .chunks_exact(points_here * 4)
                    .take(rows_here)
                    .enumerate()
                {
                    let target =
                        &mut distances[i * m + point_start..i * m + point_start + points_here];
                    for (value, word) in target.iter_mut().zip(chunk.chunks_exact(4)) {
                        *value = f32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                    }
                }
            }
            block(row_start, &distances[..rows_here * m]);
        }
        Ok(())
    }

    fn upload(&self, label: &str, values: &[f32]) -> wgpu::Buffer {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                // A zero-sized binding is invalid; an empty slice never reaches here but keep the buffer non-empty.
                contents: if bytes.is_empty() { &[0; 4] } else { &bytes },
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    fn output(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Runs `pipeline` over a `grid` of workgroups with `params` at binding 0 and `buffers` at bindings 1…, then
    /// reads `read_back` into host memory (one byte vector each, in order).
    fn run(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: Params,
        buffers: &[&wgpu::Buffer],
        grid: (u32, u32),
        read_back: &[&wgpu::Buffer],
    ) -> Result<Vec<Vec<u8>>, GpuError> {
        let execution = |reason: String| GpuError::Execution {
            operation: "distance kernel",
            reason,
        };
        self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &params.bytes(),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, buffer)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: buffer.as_entire_binding(),
                }),
        );
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let staging: Vec<wgpu::Buffer> = read_back
            .iter()
            .map(|buffer| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read back"),
                    size: buffer.size(),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        for (source, target) in read_back.iter().zip(&staging) {
            encoder.copy_buffer_to_buffer(source, 0, target, 0, source.size());
        }
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = std::sync::mpsc::channel();
        for buffer in &staging {
            let sender = sender.clone();
            buffer
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |result| {
                    let _ = sender.send(result);
                });
        }
        drop(sender);
        self.device
            .poll(wgpu::PollType::Wait)
            .map_err(|e| execution(e.to_string()))?;
        for error in [
            pollster::block_on(self.device.pop_error_scope()),
            pollster::block_on(self.device.pop_error_scope()),
        ]
        .into_iter()
        .flatten()
        {
            return Err(execution(error.to_string()));
        }
        if let Some(error) = self.uncaptured.lock().ok().and_then(|mut e| e.take()) {
            return Err(execution(error));
        }
        for _ in &staging {
            match receiver.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(execution(format!("mapping a result buffer: {e}"))),
                Err(_) => return Err(execution("a result buffer was never mapped".into())),
            }
        }
        let results = staging
            .iter()
            .map(|buffer| {
                let bytes = buffer.slice(..).get_mapped_range().to_vec();
                buffer.unmap();
                bytes
            })
            .collect();
        Ok(results)
    }
}

/// (rows, points) of row-major `rows` and `points` with `dim` values each.
fn shapes(rows: &[f32], points: &[f32], dim: usize) -> Result<(usize, usize), GpuError> {
    if dim == 0 {
        return Err(GpuError::Input {
            what: "dim",
            message: "must be at least 1".into(),
        });
    }
    if dim > u32::MAX as usize {
        return Err(GpuError::Input {
            what: "dim",
            message: format!("{dim} is more than the kernels index"),
        });
    }
    for (what, values) in [("rows", rows), ("points", points)] {
        if values.len() % dim != 0 {
            return Err(GpuError::Input {
                what,
                message: format!(
                    "{} values are not a whole number of {dim}-value rows",
                    values.len()
                ),
            });
        }
    }
    if points.is_empty() {
        return Err(GpuError::Input {
            what: "points",
            message: "at least one point is needed".into(),
        });
    }
    Ok((rows.len() / dim, points.len() / dim))
}

#[cfg(test)]
mod tests;

fn bytes_of(values: usize) -> u64 {
    values as u64 * 4
}

/// Little-endian u32 words of `bytes`.
fn words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}
