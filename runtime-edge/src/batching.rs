//! Micro-batching: concurrent requests to one production variant merged into one run of its packages.
//!
//! Each request is decoded on its own ([`Pipeline::decode`]: content type, accept and every record checked, so a
//! malformed request fails alone with its own error), then queued. A collector takes the first queued request, adds
//! requests while the batch stays within [`BatchConfig::max_batch_rows`] rows and [`BatchConfig::max_wait`] has not
//! passed since the first arrived, runs the merged rows once ([`Pipeline::run`]) on a blocking thread, and encodes
//! each request's row range back into its own response ([`Pipeline::encode`]). A row's prediction does not depend on
//! the other rows of its run, so every response equals, byte for byte, the one the request gets alone.
//!
//! At most as many batches as the endpoint has workers run at once; while they all run, requests queue up, which is
//! when merging pays off: with `max_wait` zero a lone request never waits.

use std::sync::Arc;

use tern_runtime::{DecodedRequest, Outputs, ResponseType, RuntimeError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::config::BatchConfig;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// A response body and its content type, or the error that answered the request (shared by every request of a
/// batch whose run failed).
pub type BatchReply = Result<(Vec<u8>, String), Arc<RuntimeError>>;

/// Requests queued per variant before [`Batcher::submit`] waits for room.
const QUEUE_CAPACITY: usize = 4096;

/// One decoded request waiting for its batch.
struct Job {
    request: DecodedRequest,
    reply: oneshot::Sender<BatchReply>,
}

/// The queue of one variant's micro-batcher; cloning shares it. The collector task ends when every clone is dropped,
/// after answering what was queued.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the collector task for `variant`'s `pipeline` on the current tokio runtime (panics outside one, a
    /// programmer error), running at most `workers` batches at once (at least one); executed batches are counted in
    /// `metrics`.
    pub fn start(
        variant: String,
        pipeline: Arc<Pipeline>,
        config: BatchConfig,
        workers: usize,
        metrics: Arc<Metrics>,
    ) -> Batcher {
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let workers = workers.max(1);
        tokio::spawn(collect(
            jobs,
            Collector {
                variant,
                pipeline,
                config,
                metrics,
                workers: Arc::new(Semaphore::new(workers)),
            },
        ));
        Batcher { queue }
    }

    /// Queues a decoded request and waits for its response. A request with no rows is answered at once; one with
    /// more rows than a batch holds runs alone.
    pub async fn submit(&self, request: DecodedRequest, pipeline: &Pipeline) -> BatchReply {
        if request.rows == 0 {
            let none = Outputs {
                rows: 0,
                outputs: Vec::new(),
            };
            return pipeline
                .encode(&none, 0..0, request.response_type)
                .map_err(Arc::new);
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            Arc::new(RuntimeError::Run {
                message: "the micro-batcher stopped before answering".to_string(),
            })
        };
        if self.queue.send(Job { request, reply }).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

struct Collector {
    variant: String,
    pipeline: Arc<Pipeline>,
    config: BatchConfig,
    metrics: Arc<Metrics>,
    workers: Arc<Semaphore>,
}

async fn collect(mut jobs: mpsc::Receiver<Job>, collector: Collector) {
    let max_rows = collector.config.max_batch_rows;
    let mut carried: Option<Job> = None;
    loop {
        let Ok(worker) = collector.workers.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let deadline = Instant::now() + collector.config.max_wait;
        let mut rows = first.request.rows;
        let mut batch = vec![first];
        while rows < max_rows {
            let next = match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if collector.config.max_wait.is_zero() {
                        None
                    } else {
                        tokio::time::timeout_at(deadline, jobs.recv())
                            .await
                            .ok()
                            .flatten()
                    }
                }
            };
            let Some(job) = next else { break };
            if rows + job.request.rows > max_rows {
                carried = Some(job);
                break;
            }
            rows += job.request.rows;
            batch.push(job);
        }
        collector
            .metrics
            .record_batch(&collector.variant, batch.len(), rows);
        let pipeline = collector.pipeline.clone();
        tokio::task::spawn_blocking(move || {
            execute(&pipeline, batch, rows);
            drop(worker);
        });
    }
}

/// Runs `batch`'s `rows` merged rows once and answers every request with its own rows' response.
fn execute(pipeline: &Pipeline, batch: Vec<Job>, rows: usize) {
    let outputs = if batch.len() == 1 {
        pipeline.run(&batch[0].request.features, rows)
    } else {
        let mut features = Vec::with_capacity(batch.iter().map(|j| j.request.features.len()).sum());
        for job in &batch {
            features.extend_from_slice(&job.request.features);
        }
        pipeline.run(&features, rows)
    };
    let outputs = match outputs {
        Ok(outputs) => outputs,
        Err(error) => {
            let error = Arc::new(error);
            for job in batch {
                let _ = job.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    let mut start = 0;
    for job in batch {
        let end = start + job.request.rows;
        let response_type: ResponseType = job.request.response_type;
        let reply = pipeline
            .encode(&outputs, start..end, response_type)
            .map_err(Arc::new);
        // The requester may have gone (client disconnected): nothing to answer then.
        let _ = job.reply.send(reply);
        start = end;
    }
}
