//! What the device loop reads: CSV rows (stdin or any reader), a folder of images, a YUV4MPEG2 (`.y4m`) video, a
//! V4L2 camera (feature `v4l`, [`super::camera`]), or a sensor on an I2C bus through embedded-hal's [`I2c`] trait
//! (`linux-embedded-hal`'s `I2cdev` on a device, `embedded-hal-mock` in tests).
//!
//! Every frame, whatever its source, becomes an input through [`frame_input`]; camera buffers are first made
//! grayscale by [`camera_frame`], which converts RGB and JPEG exactly as image files are converted.
//! Images and video frames become feature rows by [`ImagePreprocess`]: grayscale, resized (bilinear) to the
//! package's input size, pixel values scaled to `0..=pixel_scale` (optionally inverted). The tabular packages tern
//! compiles today state only `feature_dim` in their manifest; an image of `feature_dim` pixels is square unless a
//! size is given (scikit-learn's digits: 8×8, values 0–16, ink high).

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embedded_hal::i2c::I2c;
use image::{imageops::FilterType, DynamicImage, GrayImage, ImageFormat, RgbImage};

use super::{DeviceError, DeviceInput};

/// A stream of inputs.
pub trait Source {
    /// The next input, or `None` when the source is exhausted.
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError>;
}

fn source_error(source: &str, item: &str, message: impl Into<String>) -> DeviceError {
    DeviceError::Source {
        source_name: source.to_string(),
        item: item.to_string(),
        message: message.into(),
    }
}

/// CSV rows without a label, one input per line (blank lines skipped).
pub struct CsvSource<R> {
    reader: R,
    name: String,
    feature_dim: usize,
    line: u64,
}

impl<R: BufRead> CsvSource<R> {
    /// `name` names the reader in errors (e.g. `stdin`).
    pub fn new(reader: R, name: &str, feature_dim: usize) -> Self {
        CsvSource {
            reader,
            name: name.to_string(),
            feature_dim,
            line: 0,
        }
    }
}

impl<R: BufRead> Source for CsvSource<R> {
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError> {
        loop {
            let mut text = String::new();
            let read = self.reader.read_line(&mut text).map_err(|e| {
                source_error(
                    &self.name,
                    &format!("line {}", self.line + 1),
                    e.to_string(),
                )
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            let item = format!("line {}", self.line);
            if text.trim().is_empty() {
                continue;
            }
            let mut features = Vec::with_capacity(self.feature_dim);
            for (column, field) in text.trim_end_matches(['\n', '\r']).split(',').enumerate() {
                let value: f32 = field.trim().parse().map_err(|_| {
                    source_error(
                        &self.name,
                        &item,
                        format!("column {}: {field:?} is not a number", column + 1),
                    )
                })?;
                features.push(value);
            }
            if features.len() != self.feature_dim {
                return Err(source_error(
                    &self.name,
                    &item,
                    format!(
                        "expected {} features, found {}",
                        self.feature_dim,
                        features.len()
                    ),
                ));
            }
            return Ok(Some(DeviceInput {
                id: item,
                features,
                frame: None,
            }));
        }
    }
}

/// How a frame becomes a feature row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagePreprocess {
    pub width: u32,
    pub height: u32,
    /// A white pixel becomes this value (black 0), before inversion.
    pub pixel_scale: f32,
    /// Dark pixels high (ink on paper, as the digits set).
    pub invert: bool,
}

impl ImagePreprocess {
    /// A square grayscale input of `feature_dim` pixels, values 0–1.
    pub fn square(feature_dim: usize) -> Result<ImagePreprocess, DeviceError> {
        let side = (feature_dim as f64).sqrt().round() as u32;
        if (side as usize) * (side as usize) != feature_dim {
            return Err(DeviceError::Config {
                field: "image size".to_string(),
                message: format!(
                    "the package takes {feature_dim} features, not a square image; give the size (WxH)"
                ),
            });
        }
        Ok(ImagePreprocess {
            width: side,
            height: side,
            pixel_scale: 1.0,
            invert: false,
        })
    }

    /// Checks that the size gives `feature_dim` features.
    pub fn check(&self, feature_dim: usize) -> Result<(), DeviceError> {
        if (self.width as usize) * (self.height as usize) != feature_dim {
            return Err(DeviceError::Config {
                field: "image size".to_string(),
                message: format!(
                    "{}x{} is {} pixels; the package takes {feature_dim} features",
                    self.width,
                    self.height,
                    self.width * self.height
                ),
            });
        }
        Ok(())
    }

    /// The feature row of `frame`.
    pub fn features(&self, frame: &GrayImage) -> Vec<f32> {
        let resized;
        let sized = if frame.dimensions() == (self.width, self.height) {
            frame
        } else {
            resized = image::imageops::resize(frame, self.width, self.height, FilterType::Triangle);
            &resized
        };
        sized
            .pixels()
            .map(|p| {
                let level = p.0[0] as f32 / 255.0;
                let level = if self.invert { 1.0 - level } else { level };
                level * self.pixel_scale
            })
            .collect()
    }
}

/// A grayscale frame as a device input: its features by `preprocess`, the frame kept for frame sinks. Image files,
/// video frames and camera frames all become inputs here.
pub fn frame_input(id: String, frame: GrayImage, preprocess: &ImagePreprocess) -> DeviceInput {
    DeviceInput {
        id,
        features: preprocess.features(&frame),
        frame: Some(Arc::new(frame)),
    }
}

/// How a camera lays out a frame's pixels: the V4L2 pixel formats tern reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// `GREY`: one luma byte per pixel.
    Grey,
    /// `YUYV`: YUV 4:2:2, bytes Y0 U Y1 V per two pixels.
    Yuyv,
    /// `UYVY`: YUV 4:2:2, bytes U Y0 V Y1 per two pixels.
    Uyvy,
    /// `RGB3`: R, G, B bytes per pixel.
    Rgb24,
    /// `MJPG` (or `JPEG`): every frame a JPEG image.
    Mjpeg,
}

impl PixelFormat {
    /// Every format, in the order a camera is asked for them (cheapest to read first).
    pub const ALL: [PixelFormat; 5] = [
        PixelFormat::Grey,
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Rgb24,
        PixelFormat::Mjpeg,
    ];

    /// The format a V4L2 FourCC names, or `None` for one tern does not read.
    pub fn from_fourcc(fourcc: &[u8; 4]) -> Option<PixelFormat> {
        match fourcc {
            b"GREY" => Some(PixelFormat::Grey),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"UYVY" => Some(PixelFormat::Uyvy),
            b"RGB3" => Some(PixelFormat::Rgb24),
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            _ => None,
        }
    }

    /// The V4L2 FourCC.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Uyvy => *b"UYVY",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }
}

/// A camera buffer holding one `width`×`height` frame in `format`, as a grayscale image: the luma of the YUV
/// formats; RGB and JPEG converted by the same code as PNG/JPEG files ([`ImageFolderSource`]). A buffer may be
/// longer than the frame (drivers pad); a shorter one, an odd width for 4:2:2, or an undecodable JPEG is an error
/// saying so.
pub fn camera_frame(
    format: PixelFormat,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<GrayImage, String> {
    let pixels = width as usize * height as usize;
    let needed = match format {
        PixelFormat::Grey => pixels,
        PixelFormat::Yuyv | PixelFormat::Uyvy => 2 * pixels,
        PixelFormat::Rgb24 => 3 * pixels,
        PixelFormat::Mjpeg => 0,
    };
    if bytes.len() < needed {
        return Err(format!(
            "{}x{width}x{height} needs {needed} bytes, the buffer holds {}",
            String::from_utf8_lossy(&format.fourcc()),
            bytes.len()
        ));
    }
    let size_error = || format!("{width}x{height} is not a valid frame size");
    match format {
        PixelFormat::Grey => {
            GrayImage::from_raw(width, height, bytes[..needed].to_vec()).ok_or_else(size_error)
        }
        PixelFormat::Yuyv | PixelFormat::Uyvy => {
            if width % 2 != 0 {
                return Err(format!("4:2:2 frames have an even width, not {width}"));
            }
            let first_luma = usize::from(format == PixelFormat::Uyvy);
            let luma = bytes[..needed]
                .iter()
                .skip(first_luma)
                .step_by(2)
                .copied()
                .collect();
            GrayImage::from_raw(width, height, luma).ok_or_else(size_error)
        }
        PixelFormat::Rgb24 => {
            let rgb = RgbImage::from_raw(width, height, bytes[..needed].to_vec())
                .ok_or_else(size_error)?;
            Ok(DynamicImage::ImageRgb8(rgb).to_luma8())
        }
        PixelFormat::Mjpeg => {
            let image = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg)
                .map_err(|e| format!("not a JPEG frame: {e}"))?;
            if image.width() != width || image.height() != height {
                return Err(format!(
                    "the JPEG frame is {}x{}, the camera announced {width}x{height}",
                    image.width(),
                    image.height()
                ));
            }
            Ok(image.to_luma8())
        }
    }
}

/// Every PNG or JPEG file in a folder, in name order.
pub struct ImageFolderSource {
    files: std::vec::IntoIter<PathBuf>,
    preprocess: ImagePreprocess,
}

impl ImageFolderSource {
    pub fn new(dir: &Path, preprocess: ImagePreprocess) -> Result<Self, DeviceError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| source_error(&dir.display().to_string(), "folder", e.to_string()))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| source_error(&dir.display().to_string(), "folder", e.to_string()))?
                .path();
            let extension = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if path.is_file() && matches!(extension.as_str(), "png" | "jpg" | "jpeg") {
                files.push(path);
            }
        }
        files.sort();
        Ok(ImageFolderSource {
            files: files.into_iter(),
            preprocess,
        })
    }
}

impl Source for ImageFolderSource {
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError> {
        let Some(path) = self.files.next() else {
            return Ok(None);
        };
        let name = path.display().to_string();
        let frame = image::open(&path)
            .map_err(|e| source_error(&name, "image", e.to_string()))?
            .to_luma8();
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(name);
        Ok(Some(frame_input(id, frame, &self.preprocess)))
    }
}

/// The frames of a YUV4MPEG2 video (`ffmpeg -i in.mp4 -pix_fmt gray out.y4m`, or any 4:2:0 / 4:2:2 / 4:4:4 /
/// mono colour space); the luma plane is the grayscale frame.
pub struct Y4mSource<R> {
    reader: R,
    name: String,
    width: u32,
    height: u32,
    chroma_bytes: usize,
    frame: u64,
    preprocess: ImagePreprocess,
}

impl<R: BufRead> Y4mSource<R> {
    /// Reads the stream header. Errors name the header field that is missing or unsupported.
    pub fn new(
        mut reader: R,
        name: &str,
        preprocess: ImagePreprocess,
    ) -> Result<Self, DeviceError> {
        let mut header = Vec::new();
        reader
            .read_until(b'\n', &mut header)
            .map_err(|e| source_error(name, "header", e.to_string()))?;
        let header = String::from_utf8_lossy(&header);
        let mut fields = header.trim_end().split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(source_error(
                name,
                "header",
                "does not start with YUV4MPEG2",
            ));
        }
        let (mut width, mut height, mut colour) = (0u32, 0u32, "420jpeg".to_string());
        for field in fields {
            let (tag, value) = field.split_at(field.len().min(1));
            match tag {
                "W" => {
                    width = value
                        .parse()
                        .map_err(|_| source_error(name, "header W", value))?
                }
                "H" => {
                    height = value
                        .parse()
                        .map_err(|_| source_error(name, "header H", value))?
                }
                "C" => colour = value.to_string(),
                _ => {}
            }
        }
        if width == 0 || height == 0 {
            return Err(source_error(name, "header", "W and H are required"));
        }
        let (w, h) = (width as usize, height as usize);
        let chroma_bytes = match colour.as_str() {
            c if c.starts_with("420") => 2 * w.div_ceil(2) * h.div_ceil(2),
            c if c.starts_with("422") => 2 * w.div_ceil(2) * h,
            c if c.starts_with("444") && !c.contains("alpha") => 2 * w * h,
            c if c.starts_with("mono") => 0,
            other => {
                return Err(source_error(
                    name,
                    "header C",
                    format!("colour space {other:?} is not supported (420*, 422, 444, mono)"),
                ))
            }
        };
        Ok(Y4mSource {
            reader,
            name: name.to_string(),
            width,
            height,
            chroma_bytes,
            frame: 0,
            preprocess,
        })
    }
}

impl<R: BufRead> Source for Y4mSource<R> {
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError> {
        let mut marker = Vec::new();
        let read = self.reader.read_until(b'\n', &mut marker).map_err(|e| {
            source_error(
                &self.name,
                &format!("frame {}", self.frame + 1),
                e.to_string(),
            )
        })?;
        if read == 0 {
            return Ok(None);
        }
        self.frame += 1;
        let item = format!("frame {}", self.frame);
        if !marker.starts_with(b"FRAME") {
            return Err(source_error(&self.name, &item, "expected a FRAME marker"));
        }
        let mut luma = vec![0u8; self.width as usize * self.height as usize];
        self.reader
            .read_exact(&mut luma)
            .map_err(|e| source_error(&self.name, &item, format!("truncated frame: {e}")))?;
        let mut chroma = (&mut self.reader).take(self.chroma_bytes as u64);
        let skipped = std::io::copy(&mut chroma, &mut std::io::sink())
            .map_err(|e| source_error(&self.name, &item, e.to_string()))?;
        if skipped != self.chroma_bytes as u64 {
            return Err(source_error(
                &self.name,
                &item,
                "truncated frame (chroma planes)",
            ));
        }
        let frame = GrayImage::from_raw(self.width, self.height, luma)
            .ok_or_else(|| source_error(&self.name, &item, "frame size mismatch"))?;
        Ok(Some(frame_input(item, frame, &self.preprocess)))
    }
}

/// One sensor channel: a 16-bit big-endian two's-complement register, `value = raw * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorChannel {
    pub register: u8,
    pub scale: f32,
    pub offset: f32,
}

/// A sensor on an I2C bus, read register by register into one feature row per sample.
pub struct I2cSensorSource<I> {
    bus: I,
    address: u8,
    channels: Vec<SensorChannel>,
    samples: Option<u64>,
    interval: std::time::Duration,
    taken: u64,
}

impl<I: I2c> I2cSensorSource<I> {
    /// Reads `channels` from the device at `address`, `samples` times (forever when `None`), `interval` apart.
    pub fn new(
        bus: I,
        address: u8,
        channels: Vec<SensorChannel>,
        samples: Option<u64>,
        interval: std::time::Duration,
    ) -> Self {
        I2cSensorSource {
            bus,
            address,
            channels,
            samples,
            interval,
            taken: 0,
        }
    }

    /// Gives the bus back (tests check a mock's expectations on it).
    pub fn into_bus(self) -> I {
        self.bus
    }
}

impl<I: I2c> Source for I2cSensorSource<I> {
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError> {
        if self.samples.is_some_and(|n| self.taken >= n) {
            return Ok(None);
        }
        if self.taken > 0 && !self.interval.is_zero() {
            std::thread::sleep(self.interval);
        }
        self.taken += 1;
        let item = format!("sample {}", self.taken);
        let name = format!("i2c device 0x{:02x}", self.address);
        let mut features = Vec::with_capacity(self.channels.len());
        for channel in &self.channels {
            let mut raw = [0u8; 2];
            self.bus
                .write_read(self.address, &[channel.register], &mut raw)
                .map_err(|e| {
                    source_error(
                        &name,
                        &item,
                        format!("register 0x{:02x}: {e:?}", channel.register),
                    )
                })?;
            features.push(i16::from_be_bytes(raw) as f32 * channel.scale + channel.offset);
        }
        Ok(Some(DeviceInput {
            id: item,
            features,
            frame: None,
        }))
    }
}
