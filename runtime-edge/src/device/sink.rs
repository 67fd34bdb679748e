//! Where the device loop's predictions go: JSON lines on a writer (stdout), an MQTT topic (rumqttc), actuators
//! through embedded-hal ([`OutputPin`] switched by the predicted label, [`SetDutyCycle`] driven by the score and
//! clamped to a safe range), and annotated frames written to a folder.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use embedded_hal::digital::OutputPin;
use embedded_hal::pwm::SetDutyCycle;
use image::{Rgb, RgbImage};
use serde_json::{json, Value};

use super::{DeviceError, DevicePrediction};

/// A consumer of predictions.
pub trait Sink: Send {
    /// A short name for reports and errors.
    fn name(&self) -> String;
    /// Delivers one prediction.
    fn send(&mut self, prediction: &DevicePrediction) -> Result<(), DeviceError>;
    /// Called once after the last prediction: flush, wait for acknowledgements, disconnect.
    fn finish(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

fn sink_error(sink: &str, message: impl Into<String>) -> DeviceError {
    DeviceError::Sink {
        sink: sink.to_string(),
        message: message.into(),
    }
}

/// The JSON document a prediction is published as: `{"sequence","id","prediction"}`.
pub fn prediction_json(prediction: &DevicePrediction) -> Value {
    json!({
        "sequence": prediction.sequence,
        "id": prediction.id,
        "prediction": prediction.output,
    })
}

/// One JSON line per prediction on a writer.
pub struct JsonLinesSink<W> {
    writer: W,
    name: String,
}

impl<W: Write + Send> JsonLinesSink<W> {
    pub fn new(writer: W, name: &str) -> Self {
        JsonLinesSink {
            writer,
            name: name.to_string(),
        }
    }

    pub fn into_inner(self) -> W {
        self.writer
    }
}

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn send(&mut self, prediction: &DevicePrediction) -> Result<(), DeviceError> {
        let mut line = prediction_json(prediction).to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| sink_error(&self.name, e.to_string()))
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        self.writer
            .flush()
            .map_err(|e| sink_error(&self.name, e.to_string()))
    }
}

/// Publishes each prediction's JSON to an MQTT topic at QoS 1; [`Sink::finish`] waits until the broker has
/// acknowledged every message, then disconnects.
pub struct MqttSink {
    client: rumqttc::Client,
    topic: String,
    name: String,
    published: u64,
    acknowledged: Arc<(Mutex<AckState>, Condvar)>,
    connection: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct AckState {
    acks: u64,
    error: Option<String>,
    closed: bool,
}

impl MqttSink {
    /// Connects to `host:port` as `client_id` (the connection is made by a background thread; a broker that cannot
    /// be reached surfaces as an error from `send` or `finish`).
    pub fn connect(host: &str, port: u16, topic: &str, client_id: &str) -> MqttSink {
        let mut options = rumqttc::MqttOptions::new(client_id, host, port);
        options.set_keep_alive(std::time::Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(options, 64);
        let acknowledged: Arc<(Mutex<AckState>, Condvar)> = Arc::default();
        let state = acknowledged.clone();
        let handle = std::thread::spawn(move || {
            for event in connection.iter() {
                let (lock, changed) = &*state;
                let mut ack = lock.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => ack.acks += 1,
                    Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                        ack.closed = true;
                        changed.notify_all();
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        ack.error = Some(error.to_string());
                        ack.closed = true;
                        changed.notify_all();
                        break;
                    }
                }
                changed.notify_all();
            }
        });
        MqttSink {
            client,
            topic: topic.to_string(),
            name: format!("mqtt://{host}:{port}/{topic}"),
            published: 0,
            acknowledged,
            connection: Some(handle),
        }
    }
}

impl Sink for MqttSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn send(&mut self, prediction: &DevicePrediction) -> Result<(), DeviceError> {
        if let Some(error) = &self
            .acknowledged
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
        {
            return Err(sink_error(&self.name, error.clone()));
        }
        self.client
            .publish(
                &self.topic,
                rumqttc::QoS::AtLeastOnce,
                false,
                prediction_json(prediction).to_string(),
            )
            .map_err(|e| sink_error(&self.name, e.to_string()))?;
        self.published += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        let (lock, changed) = &*self.acknowledged;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        while state.acks < self.published && !state.closed {
            state = changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let failure = state.error.clone();
        let acks = state.acks;
        drop(state);
        let _ = self.client.disconnect();
        if let Some(handle) = self.connection.take() {
            let _ = handle.join();
        }
        match failure {
            Some(error) if acks < self.published => Err(sink_error(
                &self.name,
                format!(
                    "{acks} of {} messages acknowledged: {error}",
                    self.published
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// A linear map from a prediction's score to a PWM duty cycle, clamped to a safe range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DutyRule {
    /// Which score when the score is a list (multiclass); 0 for a single score.
    pub score_index: usize,
    /// duty fraction = gain × score + offset, then clamped to `min..=max` (fractions of the full cycle).
    pub gain: f32,
    pub offset: f32,
    pub min: f32,
    pub max: f32,
}

impl DutyRule {
    /// The clamped duty fraction for `score` (a NaN score gives the safe minimum).
    pub fn fraction(&self, score: f32) -> f32 {
        let wanted = self.gain * score + self.offset;
        if wanted.is_nan() {
            return self.min;
        }
        wanted.clamp(self.min, self.max)
    }
}

/// Actuators: a GPIO pin set high when the predicted label is `on_label` (low otherwise), and a PWM channel whose
/// duty follows the score by a [`DutyRule`].
pub struct ActuatorSink<P, W> {
    pin: Option<(P, i64)>,
    pwm: Option<(W, DutyRule, u16)>,
}

impl<P: OutputPin + Send, W: SetDutyCycle + Send> ActuatorSink<P, W> {
    /// Errors: a rule whose safe range is not within 0..=1 or is empty, or a PWM that reports no duty range.
    pub fn new(pin: Option<(P, i64)>, pwm: Option<(W, DutyRule)>) -> Result<Self, DeviceError> {
        let pwm = match pwm {
            Some((channel, rule)) => {
                if !(0.0..=1.0).contains(&rule.min)
                    || !(0.0..=1.0).contains(&rule.max)
                    || rule.min > rule.max
                {
                    return Err(DeviceError::Config {
                        field: "pwm range".to_string(),
                        message: format!(
                            "{}..={} must lie within 0..=1 with min <= max",
                            rule.min, rule.max
                        ),
                    });
                }
                let max_duty = channel.max_duty_cycle();
                if max_duty == 0 {
                    return Err(sink_error(
                        "pwm",
                        "the channel reports a maximum duty cycle of 0",
                    ));
                }
                Some((channel, rule, max_duty))
            }
            None => None,
        };
        Ok(ActuatorSink { pin, pwm })
    }

    /// Gives the pin and channel back (tests check a mock's expectations on them).
    pub fn into_parts(self) -> (Option<P>, Option<W>) {
        (self.pin.map(|(p, _)| p), self.pwm.map(|(w, _, _)| w))
    }
}

fn score_at(output: &Value, index: usize) -> Option<f32> {
    match output.get("score")? {
        Value::Array(values) => values.get(index)?.as_f64().map(|v| v as f32),
        value => value.as_f64().map(|v| v as f32),
    }
}

impl<P: OutputPin + Send, W: SetDutyCycle + Send> Sink for ActuatorSink<P, W> {
    fn name(&self) -> String {
        "actuators".to_string()
    }

    fn send(&mut self, prediction: &DevicePrediction) -> Result<(), DeviceError> {
        if let Some((pin, on_label)) = &mut self.pin {
            let label = prediction
                .output
                .get("predicted_label")
                .and_then(Value::as_i64);
            let result = if label == Some(*on_label) {
                pin.set_high()
            } else {
                pin.set_low()
            };
            result.map_err(|e| sink_error("gpio", format!("{e:?}")))?;
        }
        if let Some((channel, rule, max_duty)) = &mut self.pwm {
            let score = score_at(&prediction.output, rule.score_index).unwrap_or(f32::NAN);
            let duty = (rule.fraction(score) * *max_duty as f32).round() as u16;
            channel
                .set_duty_cycle(duty.min(*max_duty))
                .map_err(|e| sink_error("pwm", format!("{e:?}")))?;
        }
        Ok(())
    }
}

/// Writes each frame (sources that have frames) as a PNG with the prediction drawn on it: a border coloured by the
/// predicted label and a bar along the bottom as long as the score (clamped to 0..=1), named
/// `<sequence>-<input id>.png`.
pub struct FrameSink {
    dir: PathBuf,
    written: u64,
}

/// Border colours by label (label modulo the palette).
const PALETTE: [[u8; 3]; 6] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [255, 225, 25],
];

impl FrameSink {
    pub fn new(dir: PathBuf) -> Result<Self, DeviceError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| sink_error(&dir.display().to_string(), e.to_string()))?;
        Ok(FrameSink { dir, written: 0 })
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// `frame` in colour with the prediction drawn on it (see [`FrameSink`]).
pub fn annotate(frame: &image::GrayImage, output: &Value) -> RgbImage {
    let (width, height) = frame.dimensions();
    let mut out = RgbImage::from_fn(width, height, |x, y| {
        let level = frame.get_pixel(x, y).0[0];
        Rgb([level, level, level])
    });
    let label = output
        .get("predicted_label")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let colour = Rgb(PALETTE[label.rem_euclid(PALETTE.len() as i64) as usize]);
    let border = (width.min(height) / 16).max(1);
    for y in 0..height {
        for x in 0..width {
            if x < border || y < border || x >= width - border || y >= height - border {
                out.put_pixel(x, y, colour);
            }
        }
    }
    let score = score_at(output, 0).unwrap_or(0.0);
    let score = if score.is_nan() {
        0.0
    } else {
        score.clamp(0.0, 1.0)
    };
    let bar = (score * width as f32).round() as u32;
    let bar_top = height.saturating_sub(border * 3);
    for y in bar_top..height.saturating_sub(border) {
        for x in 0..bar.min(width) {
            out.put_pixel(x, y, Rgb([255, 255, 255]));
        }
    }
    out
}

impl Sink for FrameSink {
    fn name(&self) -> String {
        format!("frames:{}", self.dir.display())
    }

    fn send(&mut self, prediction: &DevicePrediction) -> Result<(), DeviceError> {
        let Some(frame) = &prediction.frame else {
            return Ok(());
        };
        let safe_id: String = prediction
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self
            .dir
            .join(format!("{:06}-{safe_id}.png", prediction.sequence));
        let partial = path.with_extension("png.tern-partial");
        annotate(frame, &prediction.output)
            .save_with_format(&partial, image::ImageFormat::Png)
            .and_then(|_| std::fs::rename(&partial, &path).map_err(image::ImageError::IoError))
            .map_err(|e| sink_error(&path.display().to_string(), e.to_string()))?;
        self.written += 1;
        Ok(())
    }
}
