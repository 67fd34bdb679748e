//! `tern transform` and `tern edge run`: argument parsing over tern-edge's batch transform and device loop.

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tern_edge::device::{
    self, CsvSource, FrameSink, ImageFolderSource, ImagePreprocess, JsonLinesSink, LoopConfig,
    MqttSink, QueuePolicy, Sink, Source, Y4mSource,
};
use tern_edge::transform::{
    self, AssembleWith, BatchStrategy, DataProcessing, JsonPath, Location, SplitType,
    TransformConfig,
};
use tern_formats::observe::Progress;

use crate::progress::{BarStyle, Bars};

#[derive(Args)]
pub struct TransformArgs {
    /// The package folder (model.onnx + manifest.json).
    pub package: PathBuf,
    /// A file, a folder (every file under it), or s3://bucket/prefix.
    #[arg(long)]
    pub input: String,
    /// A folder or s3://bucket/prefix; each input gets <input name>.out here.
    #[arg(long)]
    pub output: String,
    /// TransformInput.ContentType.
    #[arg(long, default_value = "text/csv")]
    pub content_type: String,
    /// TransformOutput.Accept.
    #[arg(long, default_value = "application/jsonlines")]
    pub accept: String,
    /// None, Line or RecordIO.
    #[arg(long, default_value = "Line")]
    pub split_type: String,
    /// SingleRecord or MultiRecord.
    #[arg(long, default_value = "MultiRecord")]
    pub batch_strategy: String,
    /// Largest request, 1 to 100.
    #[arg(long, default_value_t = transform::DEFAULT_MAX_PAYLOAD_MB)]
    pub max_payload_in_mb: usize,
    /// Requests in flight at once (SageMaker's MaxConcurrentTransforms; 0 means 1). Outputs do not depend on it;
    /// times --max-payload-in-mb it may not exceed 100.
    #[arg(long, default_value_t = 1, env = "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")]
    pub max_concurrent_transforms: usize,
    /// None or Line.
    #[arg(long, default_value = "Line")]
    pub assemble_with: String,
    /// DataProcessing.InputFilter (JSONPath subset), e.g. '$[1:]'.
    #[arg(long, default_value = "$")]
    pub input_filter: String,
    /// DataProcessing.JoinSource: None or Input.
    #[arg(long, default_value = "None")]
    pub join_source: String,
    /// DataProcessing.OutputFilter (JSONPath subset), e.g. '$[0,-1]'.
    #[arg(long, default_value = "$")]
    pub output_filter: String,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn transform(args: TransformArgs) -> Result<()> {
    let join_input = match args.join_source.to_ascii_lowercase().as_str() {
        "none" => false,
        "input" => true,
        other => bail!("--join-source {other:?}: expected None or Input"),
    };
    let config = TransformConfig {
        content_type: args.content_type,
        accept: args.accept,
        split_type: SplitType::parse(&args.split_type)?,
        batch_strategy: BatchStrategy::parse(&args.batch_strategy)?,
        max_payload_mb: args.max_payload_in_mb,
        assemble_with: AssembleWith::parse(&args.assemble_with)?,
        data_processing: DataProcessing {
            input_filter: JsonPath::parse(&args.input_filter).context("--input-filter")?,
            join_input,
            output_filter: JsonPath::parse(&args.output_filter).context("--output-filter")?,
        },
        max_concurrent_transforms: args.max_concurrent_transforms,
    };
    config.validate()?;
    let package = tern_runtime::Package::load(&args.package)?;
    let input = Location::parse(&args.input)?;
    let output = Location::parse(&args.output)?;
    let progress = if args.quiet {
        Progress::hidden()
    } else {
        Progress::start(Arc::new(Bars::new(BarStyle::Bytes)), "transform", 0)
    };
    let summary = transform::transform(&package, &input, &output, &config, &progress)?;
    if !args.quiet {
        eprintln!(
            "transformed {} input(s) ({} records, {} requests); skipped {} already finished; removed {} partial output(s)",
            summary.transformed.len(),
            summary.records,
            summary.requests,
            summary.skipped.len(),
            summary.removed_partials
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum EdgeCommand {
    /// Run the device loop: read a source, predict, deliver to sinks, until the source ends.
    Run(EdgeRunArgs),
}

#[derive(Args)]
pub struct EdgeRunArgs {
    /// The package folder.
    pub package: PathBuf,
    /// csv:- (stdin) or csv:FILE, images:FOLDER (PNG/JPEG in name order), video:FILE.y4m, camera:/dev/videoN
    /// (V4L2, feature v4l), i2c:BUS:ADDRESS:REG[,REG…][:SCALE] (feature linux-device).
    #[arg(long)]
    pub source: String,
    /// stdout (JSON lines), mqtt://HOST:PORT/TOPIC, frames:FOLDER (annotated PNGs); repeatable, default stdout.
    #[arg(long = "sink")]
    pub sinks: Vec<String>,
    /// Frame size the model takes, WxH (default: a square of the package's feature count).
    #[arg(long)]
    pub image_size: Option<String>,
    /// A white pixel's feature value (e.g. 16 for scikit-learn's digits).
    #[arg(long, default_value_t = 1.0)]
    pub pixel_scale: f32,
    /// Dark pixels high (ink on paper).
    #[arg(long)]
    pub invert: bool,
    /// Capacity of every queue.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// What a full queue does: block or drop-oldest.
    #[arg(long, default_value = "drop-oldest")]
    pub policy: String,
    /// Print the loop report (JSON) to stderr at the end.
    #[arg(long)]
    pub report: bool,
    /// Samples to read from an i2c: source, or frames from a camera: source (default: until stopped).
    #[arg(long)]
    pub samples: Option<u64>,
}

#[cfg(not(feature = "linux-device"))]
fn i2c_source(
    spec: &str,
    _samples: Option<u64>,
    _feature_dim: usize,
) -> Result<Box<dyn Source + Send>> {
    bail!("--source i2c:{spec}: sensors need tern built with --features linux-device")
}

#[cfg(not(feature = "v4l"))]
fn camera_source(
    device: &str,
    _args: &EdgeRunArgs,
    _feature_dim: usize,
) -> Result<Box<dyn Source + Send>> {
    bail!("--source camera:{device}: V4L2 cameras need tern built with --features v4l")
}

/// `camera:/dev/videoN` at the camera's current size, frames preprocessed as image files are.
#[cfg(feature = "v4l")]
fn camera_source(
    device: &str,
    args: &EdgeRunArgs,
    feature_dim: usize,
) -> Result<Box<dyn Source + Send>> {
    let camera = device::camera::CameraSource::open(
        std::path::Path::new(device),
        None,
        args.samples,
        image_preprocess(args, feature_dim)?,
    )?;
    Ok(Box::new(camera))
}

#[cfg(not(feature = "linux-device"))]
fn actuator_sink(spec: &str) -> Result<Box<dyn Sink>> {
    bail!("--sink {spec}: GPIO/PWM need tern built with --features linux-device")
}

#[cfg(feature = "linux-device")]
fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|v| v.to_string().parse().ok()),
        None => text.parse().ok(),
    };
    parsed.with_context(|| format!("{what} {text:?} is not a valid number"))
}

/// `i2c:BUS:ADDRESS:REG[,REG…][:SCALE]`, e.g. `i2c:/dev/i2c-1:0x48:0x00,0x02:0.01`.
#[cfg(feature = "linux-device")]
fn i2c_source(
    spec: &str,
    samples: Option<u64>,
    feature_dim: usize,
) -> Result<Box<dyn Source + Send>> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (bus, address, registers, scale) = match parts.as_slice() {
        [bus, address, registers] => (*bus, *address, *registers, "1"),
        [bus, address, registers, scale] => (*bus, *address, *registers, *scale),
        _ => bail!("--source i2c:{spec}: expected i2c:BUS:ADDRESS:REG[,REG…][:SCALE]"),
    };
    let scale: f32 = parse_number(scale, "scale")?;
    let channels = registers
        .split(',')
        .map(|r| {
            Ok(device::SensorChannel {
                register: parse_number(r, "register")?,
                scale,
                offset: 0.0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if channels.len() != feature_dim {
        bail!(
            "--source i2c:{spec}: {} registers; the package takes {feature_dim} features",
            channels.len()
        );
    }
    let bus = device::linux::open_i2c(std::path::Path::new(bus))?;
    Ok(Box::new(device::I2cSensorSource::new(
        bus,
        parse_number(address, "address")?,
        channels,
        samples,
        std::time::Duration::ZERO,
    )))
}

/// `gpio:CHIP:LINE:LABEL` (high when the predicted label is LABEL) or
/// `pwm:CHIP:CHANNEL:PERIOD_NS:GAIN:OFFSET:MIN:MAX` (duty = GAIN × score + OFFSET clamped to MIN..=MAX).
#[cfg(feature = "linux-device")]
fn actuator_sink(spec: &str) -> Result<Box<dyn Sink>> {
    use tern_edge::device::linux::{open_output_pin, SysfsPwm};
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        ["gpio", chip, line, label] => {
            let pin = open_output_pin(std::path::Path::new(chip), parse_number(line, "line")?)?;
            Ok(Box::new(device::ActuatorSink::<_, SysfsPwm>::new(
                Some((pin, parse_number(label, "label")?)),
                None,
            )?))
        }
        ["pwm", chip, channel, period, gain, offset, min, max] => {
            let pwm = SysfsPwm::open(
                std::path::Path::new(chip),
                parse_number(channel, "channel")?,
                parse_number(period, "period")?,
            )?;
            let rule = device::DutyRule {
                score_index: 0,
                gain: gain.parse().with_context(|| format!("gain {gain:?}"))?,
                offset: offset.parse().with_context(|| format!("offset {offset:?}"))?,
                min: min.parse().with_context(|| format!("min {min:?}"))?,
                max: max.parse().with_context(|| format!("max {max:?}"))?,
            };
            Ok(Box::new(device::ActuatorSink::<tern_edge::device::linux::CdevPin, _>::new(
                None,
                Some((pwm, rule)),
            )?))
        }
        _ => bail!("--sink {spec}: expected gpio:CHIP:LINE:LABEL or pwm:CHIP:CHANNEL:PERIOD_NS:GAIN:OFFSET:MIN:MAX"),
    }
}

fn image_preprocess(args: &EdgeRunArgs, feature_dim: usize) -> Result<ImagePreprocess> {
    let mut preprocess = match &args.image_size {
        None => ImagePreprocess::square(feature_dim)?,
        Some(size) => {
            let (w, h) = size
                .split_once(['x', 'X'])
                .with_context(|| format!("--image-size {size:?}: expected WxH"))?;
            ImagePreprocess {
                width: w
                    .parse()
                    .with_context(|| format!("--image-size width {w:?}"))?,
                height: h
                    .parse()
                    .with_context(|| format!("--image-size height {h:?}"))?,
                pixel_scale: 1.0,
                invert: false,
            }
        }
    };
    preprocess.pixel_scale = args.pixel_scale;
    preprocess.invert = args.invert;
    preprocess.check(feature_dim)?;
    Ok(preprocess)
}

pub fn edge(command: EdgeCommand) -> Result<()> {
    let EdgeCommand::Run(args) = command;
    let package = tern_runtime::Package::load(&args.package)?;
    let feature_dim = package.manifest().feature_dim;
    let source: Box<dyn Source + Send> = match args.source.split_once(':') {
        Some(("csv", "-")) => Box::new(CsvSource::new(
            BufReader::new(std::io::stdin()),
            "stdin",
            feature_dim,
        )),
        Some(("csv", file)) => Box::new(CsvSource::new(
            BufReader::new(std::fs::File::open(file).with_context(|| format!("opening {file}"))?),
            file,
            feature_dim,
        )),
        Some(("images", dir)) => Box::new(ImageFolderSource::new(
            std::path::Path::new(dir),
            image_preprocess(&args, feature_dim)?,
        )?),
        Some(("video", file)) => Box::new(Y4mSource::new(
            BufReader::new(std::fs::File::open(file).with_context(|| format!("opening {file}"))?),
            file,
            image_preprocess(&args, feature_dim)?,
        )?),
        Some(("i2c", spec)) => i2c_source(spec, args.samples, feature_dim)?,
        Some(("camera", path)) => camera_source(path, &args, feature_dim)?,
        _ => bail!(
            "--source {:?}: expected csv:-, csv:FILE, images:FOLDER, video:FILE.y4m, \
             camera:/dev/videoN or i2c:BUS:ADDRESS:REG[,REG…][:SCALE]",
            args.source
        ),
    };
    let sink_specs = if args.sinks.is_empty() {
        vec!["stdout".to_string()]
    } else {
        args.sinks.clone()
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for spec in &sink_specs {
        if spec == "stdout" {
            sinks.push(Box::new(JsonLinesSink::new(std::io::stdout(), "stdout")));
        } else if let Some(rest) = spec.strip_prefix("mqtt://") {
            let (address, topic) = rest
                .split_once('/')
                .with_context(|| format!("--sink {spec:?}: expected mqtt://HOST:PORT/TOPIC"))?;
            let (host, port) = address.rsplit_once(':').unwrap_or((address, "1883"));
            let port: u16 = port
                .parse()
                .with_context(|| format!("--sink {spec:?}: port {port:?}"))?;
            let client_id = format!("tern-edge-{}", std::process::id());
            sinks.push(Box::new(MqttSink::connect(host, port, topic, &client_id)));
        } else if let Some(dir) = spec.strip_prefix("frames:") {
            sinks.push(Box::new(FrameSink::new(PathBuf::from(dir))?));
        } else if spec.starts_with("gpio:") || spec.starts_with("pwm:") {
            sinks.push(actuator_sink(spec)?);
        } else {
            bail!(
                "--sink {spec:?}: expected stdout, mqtt://HOST:PORT/TOPIC, frames:FOLDER, \
                 gpio:CHIP:LINE:LABEL or pwm:CHIP:CHANNEL:PERIOD_NS:GAIN:OFFSET:MIN:MAX"
            );
        }
    }
    let policy = QueuePolicy::parse(&args.policy)
        .with_context(|| format!("--policy {:?}: expected block or drop-oldest", args.policy))?;
    let report = device::run_loop(
        &package,
        source,
        sinks,
        LoopConfig {
            queue_capacity: args.queue,
            policy,
        },
    )?;
    if args.report {
        eprintln!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
