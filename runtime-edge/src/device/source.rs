//! What the device loop reads: CSV rows (stdin or any reader), a folder of images, a YUV4MPEG2 (`.y4m`) video, or
//! a sensor on an I2C bus through embedded-hal's [`I2c`] trait (`linux-embedded-hal`'s `I2cdev` on a device,
//! `embedded-hal-mock` in tests).
//!
//! Images and video frames become feature rows by [`ImagePreprocess`]: grayscale, resized (bilinear) to the
//! package's input size, pixel values scaled to `0..=pixel_scale` (optionally inverted). The tabular packages tern
//! compiles today state only `feature_dim` in their manifest; an image of `feature_dim` pixels is square unless a
//! size is given (scikit-learn's digits: 8×8, values 0–16, ink high).

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embedded_hal::i2c::I2c;
use image::{imageops::FilterType, GrayImage};

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
        Ok(Some(DeviceInput {
            id,
            features: self.preprocess.features(&frame),
            frame: Some(Arc::new(frame)),
        }))
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
        Ok(Some(DeviceInput {
            id: item,
            features: self.preprocess.features(&frame),
            frame: Some(Arc::new(frame)),
        }))
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
