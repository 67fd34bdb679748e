//! The device loop (`tern edge run`) with real packages: a multiclass Linear Learner on scikit-learn's digits (8×8
//! images, values 0–16) fed from a folder of PNG frames and from a YUV4MPEG2 video, a binary Linear Learner on
//! breast_cancer fed from CSV and from a mock I2C sensor; sinks: JSON lines, annotated frames, a real mosquitto
//! broker on loopback (Debian's, scripts/setup-edge.sh), and mock GPIO/PWM pins checked transaction by transaction.
//! Every prediction is compared with `Package::invoke` on features the test derives itself.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use embedded_hal_mock::eh1::digital::{
    Mock as PinMock, State as PinState, Transaction as PinTransaction,
};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTransaction};
use embedded_hal_mock::eh1::pwm::{Mock as PwmMock, Transaction as PwmTransaction};
use serde_json::Value;
use tern_edge::device::{
    self, camera_frame, frame_input, ActuatorSink, CsvSource, DeviceError, DeviceInput,
    DevicePrediction, DutyRule, FrameSink, I2cSensorSource, ImageFolderSource, ImagePreprocess,
    JsonLinesSink, LoopConfig, MqttSink, PixelFormat, QueuePolicy, SensorChannel, Sink, Source,
    Y4mSource,
};
use tern_runtime::Package;
use tern_trainer::algorithms::linear_learner::LinearLearner;
use tern_trainer::data::{Channel, TrainingInput};
use tern_trainer::{Algorithm, Hyperparameters, TrainingContext};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/generated")
        .join(name)
}

fn train_package(dataset: &str, pairs: &[(&str, &str)], dir: &Path) -> Package {
    let train = data(dataset).join("train.csv");
    assert!(
        train.exists(),
        "{} is missing: run tests/python/export_datasets.py",
        train.display()
    );
    let raw: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hyperparameters =
        Hyperparameters::parse(LinearLearner.name(), LinearLearner.hyperparameters(), &raw)
            .unwrap();
    let input = TrainingInput::new(Channel::from_path("train", &train, None).unwrap());
    let artifact = LinearLearner
        .train(&hyperparameters, &input, &mut TrainingContext::new(true))
        .unwrap();
    let options = tern_compiler::CompileOptions {
        held_out: Some(
            Channel::from_path("train", &train, None)
                .unwrap()
                .load(None)
                .unwrap(),
        ),
        ..Default::default()
    };
    tern_registry::compile(&artifact, &options)
        .unwrap()
        .write(dir)
        .unwrap();
    Package::load(dir).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    digits: Package,
    cancer: Package,
    /// Feature rows of the test splits (label dropped).
    digit_rows: Vec<Vec<f32>>,
    cancer_rows: Vec<Vec<f32>>,
}

fn rows(dataset: &str) -> Vec<Vec<f32>> {
    std::fs::read_to_string(data(dataset).join("test.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let digits = train_package(
            "digits",
            &[
                ("predictor_type", "multiclass_classifier"),
                ("num_classes", "10"),
                ("epochs", "5"),
            ],
            &dir.path().join("digits"),
        );
        let cancer = train_package(
            "breast_cancer",
            &[("predictor_type", "binary_classifier"), ("epochs", "5")],
            &dir.path().join("cancer"),
        );
        Fixture {
            _dir: dir,
            digits,
            cancer,
            digit_rows: rows("digits"),
            cancer_rows: rows("breast_cancer"),
        }
    })
}

/// The package's own answer for one feature row (one JSON Lines record).
fn expected(package: &Package, features: &[f32]) -> Value {
    let row = features
        .iter()
        .map(f32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let (body, _) = package
        .invoke(row.as_bytes(), "text/csv", "application/jsonlines")
        .unwrap();
    serde_json::from_slice(body.trim_ascii()).unwrap()
}

/// A digit row (0–16) as 8-bit gray levels, and the features those levels stand for (level / 255 × 16).
fn digit_pixels(row: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let levels: Vec<u8> = row
        .iter()
        .map(|&v| (v / 16.0 * 255.0).round() as u8)
        .collect();
    let features = levels.iter().map(|&l| l as f32 / 255.0 * 16.0).collect();
    (levels, features)
}

fn digits_preprocess() -> ImagePreprocess {
    ImagePreprocess {
        width: 8,
        height: 8,
        pixel_scale: 16.0,
        invert: false,
    }
}

/// A writer shared with the test, for the JSON lines sink.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn block(capacity: usize) -> LoopConfig {
    LoopConfig {
        queue_capacity: capacity,
        policy: QueuePolicy::Block,
    }
}

#[test]
fn folder_of_frames_to_json_lines_and_annotated_frames() {
    let f = fixture();
    let work = tempfile::tempdir().unwrap();
    let frames = work.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let mut wanted = Vec::new();
    for (i, row) in f.digit_rows.iter().take(12).enumerate() {
        let (levels, features) = digit_pixels(row);
        image::GrayImage::from_raw(8, 8, levels)
            .unwrap()
            .save(frames.join(format!("digit-{i:02}.png")))
            .unwrap();
        wanted.push((format!("digit-{i:02}.png"), expected(&f.digits, &features)));
    }
    let out = Shared::default();
    let annotated = work.path().join("annotated");
    let report = device::run_loop(
        &f.digits,
        Box::new(ImageFolderSource::new(&frames, digits_preprocess()).unwrap()),
        vec![
            Box::new(JsonLinesSink::new(out.clone(), "memory")),
            Box::new(FrameSink::new(annotated.clone()).unwrap()),
        ],
        block(4),
    )
    .unwrap();
    assert_eq!((report.read, report.predicted), (12, 12));
    let lines = out.lines();
    assert_eq!(lines.len(), 12);
    for (i, (line, (id, prediction))) in lines.iter().zip(&wanted).enumerate() {
        assert_eq!(line["sequence"], Value::from(i as u64 + 1));
        assert_eq!(line["id"], Value::from(id.as_str()));
        assert_eq!(&line["prediction"], prediction, "{id}");
    }
    // Annotated frames: one per input, the border coloured by the predicted label.
    let mut written: Vec<PathBuf> = std::fs::read_dir(&annotated)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written.len(), 12);
    for (path, (_, prediction)) in written.iter().zip(&wanted) {
        let image = image::open(path).unwrap().to_rgb8();
        let corner = image.get_pixel(0, 0).0;
        let expected_corner =
            tern_edge::device::sink::annotate(&image::GrayImage::new(8, 8), prediction)
                .get_pixel(0, 0)
                .0;
        assert_eq!(corner, expected_corner, "{}", path.display());
        assert!(path.extension().unwrap() == "png");
    }
}

/// Every input a source gives, to its end.
fn drain(mut source: impl Source) -> Vec<DeviceInput> {
    let mut inputs = Vec::new();
    while let Some(input) = source.next_input().unwrap() {
        inputs.push(input);
    }
    inputs
}

/// Camera buffers (what a V4L2 camera hands over in GREY, YUYV, UYVY, RGB3 and MJPG) of the same pictures as PNG
/// and JPEG files become exactly the inputs the image-folder source makes of those files: the frame-to-tensor path
/// of the `v4l` camera source is the image folder's.
#[test]
fn camera_buffers_become_the_inputs_the_image_folder_source_makes() {
    let f = fixture();
    let work = tempfile::tempdir().unwrap();
    let (gray_dir, rgb_dir, jpeg_dir) = (
        work.path().join("gray"),
        work.path().join("rgb"),
        work.path().join("jpeg"),
    );
    for dir in [&gray_dir, &rgb_dir, &jpeg_dir] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let (width, height) = (16u32, 12u32);
    let mut buffers: Vec<BTreeMap<&str, Vec<u8>>> = Vec::new();
    for (i, row) in f.digit_rows.iter().take(6).enumerate() {
        let (levels, _) = digit_pixels(row);
        let digit = image::GrayImage::from_raw(8, 8, levels).unwrap();
        // Larger than the model's 8×8 and not square, so the resize is exercised too.
        let gray =
            image::imageops::resize(&digit, width, height, image::imageops::FilterType::Nearest);
        let rgb = image::RgbImage::from_fn(width, height, |x, y| {
            let level = gray.get_pixel(x, y).0[0];
            image::Rgb([level, level / 2, 255 - level])
        });
        let name = format!("frame-{i}");
        gray.save(gray_dir.join(format!("{name}.png"))).unwrap();
        rgb.save(rgb_dir.join(format!("{name}.png"))).unwrap();
        rgb.save(jpeg_dir.join(format!("{name}.jpg"))).unwrap();
        let luma = gray.as_raw();
        let yuyv: Vec<u8> = luma
            .chunks(2)
            .flat_map(|y| [y[0], 128, y[1], 128])
            .collect();
        let uyvy: Vec<u8> = luma.chunks(2).flat_map(|y| [90, y[0], 160, y[1]]).collect();
        let mut padded_rgb = rgb.as_raw().clone();
        padded_rgb.extend_from_slice(&[0; 64]);
        buffers.push(BTreeMap::from([
            ("GREY", luma.clone()),
            ("YUYV", yuyv),
            ("UYVY", uyvy),
            ("RGB3", padded_rgb),
            (
                "MJPG",
                std::fs::read(jpeg_dir.join(format!("{name}.jpg"))).unwrap(),
            ),
        ]));
    }
    let preprocess = digits_preprocess();
    let from_files = [
        ("GREY", &gray_dir),
        ("YUYV", &gray_dir),
        ("UYVY", &gray_dir),
        ("RGB3", &rgb_dir),
        ("MJPG", &jpeg_dir),
    ];
    for (fourcc, dir) in from_files {
        let format = PixelFormat::from_fourcc(fourcc.as_bytes().try_into().unwrap()).unwrap();
        assert_eq!(&format.fourcc(), fourcc.as_bytes());
        let files = drain(ImageFolderSource::new(dir, preprocess).unwrap());
        assert_eq!(files.len(), buffers.len());
        for (file, frame_buffers) in files.iter().zip(&buffers) {
            let frame = camera_frame(format, width, height, &frame_buffers[fourcc]).unwrap();
            let input = frame_input(file.id.clone(), frame, &preprocess);
            assert_eq!(input.features, file.features, "{fourcc} {}", file.id);
            assert_eq!(input.frame, file.frame, "{fourcc} {}", file.id);
        }
    }
    // The RGB and JPEG inputs are the colour pictures' luma, not one of their channels.
    let gray_inputs = drain(ImageFolderSource::new(&gray_dir, preprocess).unwrap());
    let rgb_inputs = drain(ImageFolderSource::new(&rgb_dir, preprocess).unwrap());
    assert_ne!(gray_inputs[0].features, rgb_inputs[0].features);

    // Malformed buffers are refused with the reason.
    let yuyv = &buffers[0]["YUYV"];
    let short = camera_frame(PixelFormat::Yuyv, width, height, &yuyv[..100]).unwrap_err();
    assert!(
        short.contains("needs 384 bytes, the buffer holds 100"),
        "{short}"
    );
    let odd = camera_frame(PixelFormat::Uyvy, 15, 12, yuyv).unwrap_err();
    assert!(odd.contains("even width"), "{odd}");
    let not_jpeg = camera_frame(PixelFormat::Mjpeg, width, height, yuyv).unwrap_err();
    assert!(not_jpeg.contains("not a JPEG frame"), "{not_jpeg}");
    let wrong_size = camera_frame(PixelFormat::Mjpeg, 8, 8, &buffers[0]["MJPG"]).unwrap_err();
    assert!(
        wrong_size.contains("is 16x12, the camera announced 8x8"),
        "{wrong_size}"
    );
    assert_eq!(PixelFormat::from_fourcc(b"H264"), None);
}

/// A YUV4MPEG2 stream of 8×8 frames: the header line, then `FRAME\n` + Y plane (+ chroma planes for 4:2:0).
fn y4m(frames: &[Vec<u8>], colour: &str) -> Vec<u8> {
    let mut out = format!("YUV4MPEG2 W8 H8 F25:1 Ip A1:1 C{colour}\n").into_bytes();
    for luma in frames {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(luma);
        if colour.starts_with("420") {
            out.extend(std::iter::repeat_n(128u8, 2 * 4 * 4));
        }
    }
    out
}

#[test]
fn video_frames_are_predicted_in_order() {
    let f = fixture();
    let (frames, features): (Vec<Vec<u8>>, Vec<Vec<f32>>) = f
        .digit_rows
        .iter()
        .skip(20)
        .take(9)
        .map(|row| digit_pixels(row))
        .unzip();
    for colour in ["420jpeg", "mono"] {
        let out = Shared::default();
        let source = Y4mSource::new(
            Cursor::new(y4m(&frames, colour)),
            "clip.y4m",
            digits_preprocess(),
        )
        .unwrap();
        device::run_loop(
            &f.digits,
            Box::new(source),
            vec![Box::new(JsonLinesSink::new(out.clone(), "memory"))],
            block(2),
        )
        .unwrap();
        let lines = out.lines();
        assert_eq!(lines.len(), 9, "{colour}");
        for (i, (line, features)) in lines.iter().zip(&features).enumerate() {
            assert_eq!(line["id"], Value::from(format!("frame {}", i + 1)));
            assert_eq!(
                line["prediction"],
                expected(&f.digits, features),
                "{colour} frame {}",
                i + 1
            );
        }
    }
    // A truncated stream names the frame.
    let mut clip = y4m(&frames[..2], "mono");
    clip.truncate(clip.len() - 5);
    let source = Y4mSource::new(Cursor::new(clip), "clip.y4m", digits_preprocess()).unwrap();
    let error = device::run_loop(&f.digits, Box::new(source), vec![], block(2)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("clip.y4m: frame 2: truncated frame"),
        "{error}"
    );
}

fn mosquitto_binary() -> PathBuf {
    for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("mosquitto is missing: run scripts/setup-edge.sh");
}

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn csv_rows_published_to_a_real_mosquitto_broker() {
    let f = fixture();
    let broker = Broker::start();
    // A subscriber, connected and subscribed before the loop publishes.
    let mut options = rumqttc::MqttOptions::new("tern-test-subscriber", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (subscriber, mut connection) = rumqttc::Client::new(options, 64);
    subscriber
        .subscribe("robot/predictions", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    let (sender, received) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    let listener = std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    sender.send(None).unwrap()
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    sender.send(Some(p.payload.to_vec())).unwrap()
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    assert_eq!(
        received.recv_timeout(Duration::from_secs(30)).unwrap(),
        None,
        "subscribed"
    );

    let rows = &f.cancer_rows[..40];
    let csv: String = rows
        .iter()
        .map(|r| r.iter().map(f32::to_string).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let report = device::run_loop(
        &f.cancer,
        Box::new(CsvSource::new(Cursor::new(csv), "stdin", 30)),
        vec![Box::new(MqttSink::connect(
            "127.0.0.1",
            broker.port,
            "robot/predictions",
            "tern-test-loop",
        ))],
        block(8),
    )
    .unwrap();
    assert_eq!(report.sinks[0].delivered, 40);
    let mut messages = Vec::new();
    while messages.len() < 40 {
        match received
            .recv_timeout(Duration::from_secs(30))
            .expect("a message")
        {
            Some(payload) => messages.push(serde_json::from_slice::<Value>(&payload).unwrap()),
            None => {}
        }
    }
    messages.sort_by_key(|m| m["sequence"].as_u64());
    for (i, (message, row)) in messages.iter().zip(rows).enumerate() {
        assert_eq!(message["sequence"], Value::from(i as u64 + 1));
        assert_eq!(message["id"], Value::from(format!("line {}", i + 1)));
        assert_eq!(message["prediction"], expected(&f.cancer, row));
    }
    subscriber.disconnect().unwrap();
    listener.join().unwrap();
}

#[test]
fn mock_i2c_sensor_drives_clamped_gpio_and_pwm() {
    let f = fixture();
    let address = 0x48;
    let rows = &f.cancer_rows[..6];
    // Each feature is stored in a 16-bit register as round(value * 100), read back as raw * 0.01.
    let channels: Vec<SensorChannel> = (0..30)
        .map(|i| SensorChannel {
            register: i as u8,
            scale: 0.01,
            offset: 0.0,
        })
        .collect();
    let mut bus_transactions = Vec::new();
    let mut read_features = Vec::new();
    for row in rows {
        let mut features = Vec::new();
        for (i, value) in row.iter().enumerate() {
            let raw = (value * 100.0)
                .round()
                .clamp(i16::MIN as f32, i16::MAX as f32) as i16;
            bus_transactions.push(I2cTransaction::write_read(
                address,
                vec![i as u8],
                raw.to_be_bytes().to_vec(),
            ));
            features.push(raw as f32 * 0.01);
        }
        read_features.push(features);
    }
    let predictions: Vec<Value> = read_features
        .iter()
        .map(|x| expected(&f.cancer, x))
        .collect();
    // The pin is high for label 1; the duty is 2 × score − 0.5, clamped to 10 %..90 % of a 1000-step cycle.
    let rule = DutyRule {
        score_index: 0,
        gain: 2.0,
        offset: -0.5,
        min: 0.1,
        max: 0.9,
    };
    let mut pin_transactions = Vec::new();
    let mut pwm_transactions = vec![PwmTransaction::max_duty_cycle(1000)];
    let mut clamped = 0;
    for prediction in &predictions {
        let high = prediction["predicted_label"].as_i64() == Some(1);
        pin_transactions.push(PinTransaction::set(if high {
            PinState::High
        } else {
            PinState::Low
        }));
        let score = prediction["score"].as_f64().unwrap() as f32;
        let wanted = 2.0 * score - 0.5;
        if !(0.1..=0.9).contains(&wanted) {
            clamped += 1;
        }
        let duty = (wanted.clamp(0.1, 0.9) * 1000.0).round() as u16;
        assert!((100..=900).contains(&duty));
        pwm_transactions.push(PwmTransaction::set_duty_cycle(duty));
    }
    assert!(
        clamped > 0,
        "some scores fall outside the safe range, so clamping is exercised"
    );

    let bus = I2cMock::new(&bus_transactions);
    let pin = PinMock::new(&pin_transactions);
    let pwm = PwmMock::new(&pwm_transactions);
    let source = I2cSensorSource::new(
        bus.clone(),
        address,
        channels,
        Some(rows.len() as u64),
        Duration::ZERO,
    );
    let actuators = ActuatorSink::new(Some((pin.clone(), 1)), Some((pwm.clone(), rule))).unwrap();
    let out = Shared::default();
    device::run_loop(
        &f.cancer,
        Box::new(source),
        vec![
            Box::new(actuators),
            Box::new(JsonLinesSink::new(out.clone(), "memory")),
        ],
        block(2),
    )
    .unwrap();
    let got: Vec<Value> = out
        .lines()
        .into_iter()
        .map(|l| l["prediction"].clone())
        .collect();
    assert_eq!(got, predictions);
    // Every expected bus read, pin level and duty cycle happened, in order, and nothing else.
    let (mut bus, mut pin, mut pwm) = (bus, pin, pwm);
    bus.done();
    pin.done();
    pwm.done();
}

#[test]
fn unsafe_pwm_ranges_are_refused() {
    let pwm = PwmMock::new(&[]);
    let rule = DutyRule {
        score_index: 0,
        gain: 1.0,
        offset: 0.0,
        min: 0.5,
        max: 1.5,
    };
    let error = ActuatorSink::<PinMock, PwmMock>::new(None, Some((pwm.clone(), rule)))
        .err()
        .unwrap();
    assert!(matches!(error, DeviceError::Config { .. }), "{error}");
    let mut pwm = pwm;
    pwm.done();
}

/// A source of `count` rows that raises `finished` once all were produced.
struct Rows {
    rows: Vec<Vec<f32>>,
    next: usize,
    finished: Arc<AtomicBool>,
}

impl Source for Rows {
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError> {
        if self.next == self.rows.len() {
            self.finished.store(true, Ordering::SeqCst);
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(DeviceInput {
            id: format!("row {}", self.next),
            features: self.rows[self.next - 1].clone(),
            frame: None,
        }))
    }
}

/// A sink that takes nothing until `open` is raised (as slow as it gets), then `pause` per prediction.
struct Stalled {
    open: Arc<AtomicBool>,
    pause: Duration,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Sink for Stalled {
    fn name(&self) -> String {
        "stalled".to_string()
    }
    fn send(&mut self, prediction: &DevicePrediction) -> Result<(), DeviceError> {
        while !self.open.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(self.pause);
        self.seen.lock().unwrap().push(prediction.sequence);
        Ok(())
    }
}

#[test]
fn a_stalled_sink_keeps_every_queue_within_its_bound() {
    let f = fixture();
    let rows: Vec<Vec<f32>> = f.cancer_rows.iter().cycle().take(200).cloned().collect();
    for (policy, capacity) in [(QueuePolicy::DropOldest, 4), (QueuePolicy::Block, 4)] {
        let finished = Arc::new(AtomicBool::new(false));
        let seen = Arc::default();
        // Drop-oldest: the sink waits for the source to finish. Block: that would deadlock by design (the source
        // waits for room the sink never makes), so the sink is slow instead.
        let (open, pause) = match policy {
            QueuePolicy::DropOldest => (finished.clone(), Duration::ZERO),
            QueuePolicy::Block => (Arc::new(AtomicBool::new(true)), Duration::from_millis(1)),
        };
        let source = Rows {
            rows: rows.clone(),
            next: 0,
            finished: finished.clone(),
        };
        let report = device::run_loop(
            &f.cancer,
            Box::new(source),
            vec![Box::new(Stalled {
                open,
                pause,
                seen: Arc::clone(&seen),
            })],
            LoopConfig {
                queue_capacity: capacity,
                policy,
            },
        )
        .unwrap();
        let sink = &report.sinks[0];
        assert!(report.input_queue.max_len <= capacity, "{report:?}");
        assert!(sink.queue.max_len <= capacity, "{report:?}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len() as u64, sink.delivered);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "delivered in order");
        match policy {
            QueuePolicy::DropOldest => {
                // The sink took nothing until all 200 rows were read; by then at most the input queue, the row in
                // prediction, the sink's queue and the one it holds were not yet dropped.
                let total = report.input_queue.dropped + sink.queue.dropped;
                assert!(total >= 200 - (2 * capacity as u64 + 2), "{report:?}");
                assert_eq!(
                    report.predicted + report.input_queue.dropped,
                    200,
                    "{report:?}"
                );
                assert_eq!(
                    sink.delivered + sink.queue.dropped,
                    report.predicted,
                    "{report:?}"
                );
                assert_eq!(
                    *seen.last().unwrap(),
                    report.predicted,
                    "the newest prediction is kept"
                );
            }
            QueuePolicy::Block => {
                assert_eq!((report.predicted, sink.delivered), (200, 200), "{report:?}");
                assert_eq!(report.input_queue.dropped + sink.queue.dropped, 0);
            }
        }
    }
}

#[test]
fn malformed_csv_names_the_line_and_column() {
    let f = fixture();
    let mut row: Vec<String> = f.cancer_rows[0].iter().map(f32::to_string).collect();
    let good = row.join(",");
    row[4] = "abc".to_string();
    let csv = format!("{good}\n\n{}\n", row.join(","));
    let error = device::run_loop(
        &f.cancer,
        Box::new(CsvSource::new(Cursor::new(csv), "stdin", 30)),
        vec![],
        block(2),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "stdin: line 3: column 5: \"abc\" is not a number"
    );
    let error = ImagePreprocess {
        width: 4,
        height: 4,
        pixel_scale: 1.0,
        invert: false,
    }
    .check(64)
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("4x4 is 16 pixels; the package takes 64"),
        "{error}"
    );
}
