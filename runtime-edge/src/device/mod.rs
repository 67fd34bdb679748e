//! `tern edge run`: the device loop of a camera or robot (DeepLens / DeepRacer style).
//!
//! ```text
//! source ──[input queue]──> preprocess + model ──[one queue per sink]──> sink (stdout, MQTT, GPIO/PWM, frames)
//! ```
//!
//! The source, the model and every sink run on their own threads joined by [`BoundedQueue`]s of one capacity and
//! [`QueuePolicy`]: `Block` back-pressures the stage before a slow one, `DropOldest` discards the oldest waiting
//! item so the freshest data is served. Either way no queue holds more than its capacity, so memory stays bounded
//! whatever a sink does; the [`LoopReport`] says how many items each queue dropped and the longest it grew.
//!
//! Each input's features are predicted through [`tern_runtime::Package::invoke`] as one CSV row answered as a
//! JSON Lines record, so a prediction is the algorithm's SageMaker record (`{"score":…,"predicted_label":…}`).
//! The first error (a malformed input, a refused row, a failing sink) stops the loop and is returned.

#[cfg(feature = "v4l")]
pub mod camera;
#[cfg(feature = "linux-device")]
pub mod linux;
pub mod queue;
pub mod sink;
pub mod source;

use std::sync::{Arc, Mutex};

use image::GrayImage;
use serde_json::Value;
use tern_runtime::{Package, RuntimeError};

pub use queue::{BoundedQueue, QueuePolicy, QueueStats};
pub use sink::{ActuatorSink, DutyRule, FrameSink, JsonLinesSink, MqttSink, Sink};
pub use source::{
    camera_frame, frame_input, CsvSource, I2cSensorSource, ImageFolderSource, ImagePreprocess,
    PixelFormat, SensorChannel, Source, Y4mSource,
};

/// One input: an id (file name, `frame 3`, `line 7`, `sample 2`), its feature row, and the frame it came from.
#[derive(Debug, Clone)]
pub struct DeviceInput {
    pub id: String,
    pub features: Vec<f32>,
    pub frame: Option<Arc<GrayImage>>,
}

/// One prediction: the input's sequence number (1-based, in source order) and id, the SageMaker record, the frame.
#[derive(Debug, Clone)]
pub struct DevicePrediction {
    pub sequence: u64,
    pub id: String,
    pub output: Value,
    pub frame: Option<Arc<GrayImage>>,
}

/// The device loop failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{field}: {message}")]
    Config { field: String, message: String },
    /// A source could not be read or an input is malformed.
    #[error("{source_name}: {item}: {message}")]
    Source {
        source_name: String,
        item: String,
        message: String,
    },
    /// The model refused or failed an input.
    #[error("{id}: {error}")]
    Predict {
        id: String,
        #[source]
        error: RuntimeError,
    },
    /// A sink failed to deliver.
    #[error("sink {sink}: {message}")]
    Sink { sink: String, message: String },
}

/// Queue sizes and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopConfig {
    /// Capacity of every queue.
    pub queue_capacity: usize,
    pub policy: QueuePolicy,
}

impl Default for LoopConfig {
    /// 16 items, drop-oldest.
    fn default() -> Self {
        LoopConfig {
            queue_capacity: 16,
            policy: QueuePolicy::DropOldest,
        }
    }
}

/// What a sink did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkReport {
    pub name: String,
    pub delivered: u64,
    pub queue: QueueStats,
}

/// What the loop did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoopReport {
    /// Inputs read from the source.
    pub read: u64,
    /// Inputs predicted.
    pub predicted: u64,
    pub input_queue: QueueStats,
    pub sinks: Vec<SinkReport>,
}

/// Predicts one input: its features as a CSV row, answered as one JSON Lines record.
pub fn predict(package: &Package, input: &DeviceInput) -> Result<Value, DeviceError> {
    let dim = package.manifest().feature_dim;
    if input.features.len() != dim {
        return Err(DeviceError::Source {
            source_name: "preprocess".to_string(),
            item: input.id.clone(),
            message: format!("{} features; the package takes {dim}", input.features.len()),
        });
    }
    let row = input
        .features
        .iter()
        .map(f32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let (body, _) = package
        .invoke(row.as_bytes(), "text/csv", "application/jsonlines")
        .map_err(|error| DeviceError::Predict {
            id: input.id.clone(),
            error,
        })?;
    serde_json::from_slice(body.trim_ascii()).map_err(|e| DeviceError::Predict {
        id: input.id.clone(),
        error: RuntimeError::Output {
            output: "response".to_string(),
            message: format!("not one JSON record: {e}"),
        },
    })
}

/// Runs the loop until `source` is exhausted (or the first error), then lets every sink drain and finish.
///
/// Errors: the first [`DeviceError`] of any stage; the other stages are stopped (their queues abandoned).
pub fn run_loop(
    package: &Package,
    mut source: Box<dyn Source + Send>,
    sinks: Vec<Box<dyn Sink>>,
    config: LoopConfig,
) -> Result<LoopReport, DeviceError> {
    let input_queue: BoundedQueue<DeviceInput> =
        BoundedQueue::new(config.queue_capacity, config.policy);
    let sink_queues: Vec<BoundedQueue<Arc<DevicePrediction>>> = sinks
        .iter()
        .map(|_| BoundedQueue::new(config.queue_capacity, config.policy))
        .collect();
    let failure: Mutex<Option<DeviceError>> = Mutex::new(None);
    let fail = |error: DeviceError, queues: &[&dyn Fn()]| {
        let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        for abandon in queues {
            abandon();
        }
    };
    let abandon_all = || {
        input_queue.abandon();
        for queue in &sink_queues {
            queue.abandon();
        }
    };
    let mut read = 0u64;
    let mut predicted = 0u64;
    let mut delivered = vec![0u64; sinks.len()];
    let mut names = Vec::with_capacity(sinks.len());

    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let mut count = 0u64;
            loop {
                match source.next_input() {
                    Ok(Some(input)) => {
                        count += 1;
                        if !input_queue.push(input) {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        fail(error, &[&abandon_all]);
                        break;
                    }
                }
            }
            input_queue.close();
            count
        });

        let mut consumers = Vec::with_capacity(sinks.len());
        for (mut sink, queue) in sinks.into_iter().zip(&sink_queues) {
            names.push(sink.name());
            let fail = &fail;
            let abandon_all = &abandon_all;
            consumers.push(scope.spawn(move || {
                let mut count = 0u64;
                while let Some(prediction) = queue.pop() {
                    if let Err(error) = sink.send(&prediction) {
                        fail(error, &[abandon_all]);
                        return count;
                    }
                    count += 1;
                }
                if let Err(error) = sink.finish() {
                    fail(error, &[abandon_all]);
                }
                count
            }));
        }

        let mut sequence = 0u64;
        while let Some(input) = input_queue.pop() {
            sequence += 1;
            match predict(package, &input) {
                Ok(output) => {
                    predicted += 1;
                    let prediction = Arc::new(DevicePrediction {
                        sequence,
                        id: input.id,
                        output,
                        frame: input.frame,
                    });
                    for queue in &sink_queues {
                        queue.push(prediction.clone());
                    }
                }
                Err(error) => {
                    fail(error, &[&abandon_all]);
                    break;
                }
            }
        }
        for queue in &sink_queues {
            queue.close();
        }
        read = producer.join().unwrap_or(0);
        for (slot, consumer) in delivered.iter_mut().zip(consumers) {
            *slot = consumer.join().unwrap_or(0);
        }
    });

    if let Some(error) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    Ok(LoopReport {
        read,
        predicted,
        input_queue: input_queue.stats(),
        sinks: names
            .into_iter()
            .zip(delivered)
            .zip(&sink_queues)
            .map(|((name, delivered), queue)| SinkReport {
                name,
                delivered,
                queue: queue.stats(),
            })
            .collect(),
    })
}
