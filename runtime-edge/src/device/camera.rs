//! Camera frames from a V4L2 device (`/dev/videoN`) through the `v4l` crate (feature `v4l`): memory-mapped
//! streaming, one input per frame. A frame becomes an input exactly as an image file does: [`camera_frame`] makes it
//! grayscale (RGB and JPEG by the image files' own conversion), [`frame_input`] preprocesses it.

use std::path::Path;

use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use super::source::{camera_frame, frame_input, ImagePreprocess, PixelFormat, Source};
use super::{DeviceError, DeviceInput};

/// Buffers the driver fills while the loop works on a frame.
const BUFFERS: u32 = 4;

/// A V4L2 capture device streaming frames.
pub struct CameraSource {
    stream: Stream<'static>,
    name: String,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// Bytes per line in the driver's buffers (rows may be padded).
    stride: usize,
    frames: Option<u64>,
    taken: u64,
    preprocess: ImagePreprocess,
}

fn camera_error(name: &str, item: &str, error: impl std::fmt::Display) -> DeviceError {
    DeviceError::Source {
        source_name: name.to_string(),
        item: item.to_string(),
        message: error.to_string(),
    }
}

impl CameraSource {
    /// Opens `path` and starts streaming `frames` frames (forever when `None`). The camera keeps its current
    /// pixel format and size when tern reads that format and no `size` is asked for; otherwise it is asked for each
    /// of [`PixelFormat::ALL`] in turn at `size` (or its current size), and the first it grants is used.
    ///
    /// Errors: the device cannot be opened or queried, or grants none of the formats (the message lists what it
    /// offered).
    pub fn open(
        path: &Path,
        size: Option<(u32, u32)>,
        frames: Option<u64>,
        preprocess: ImagePreprocess,
    ) -> Result<CameraSource, DeviceError> {
        let name = path.display().to_string();
        let device = Device::with_path(path).map_err(|e| camera_error(&name, "open", e))?;
        let current = device
            .format()
            .map_err(|e| camera_error(&name, "format", e))?;
        let (width, height) = size.unwrap_or((current.width, current.height));
        let mut chosen = None;
        if size.is_none() {
            chosen = PixelFormat::from_fourcc(&current.fourcc.repr).map(|f| (f, current.clone()));
        }
        for wanted in PixelFormat::ALL {
            if chosen.is_some() {
                break;
            }
            let request = Format::new(width, height, FourCC::new(&wanted.fourcc()));
            if let Ok(granted) = device.set_format(&request) {
                if let Some(format) = PixelFormat::from_fourcc(&granted.fourcc.repr) {
                    chosen = Some((format, granted));
                }
            }
        }
        let Some((format, granted)) = chosen else {
            let offered: Vec<String> = device
                .enum_formats()
                .map(|list| list.iter().map(|d| d.fourcc.to_string()).collect())
                .unwrap_or_default();
            return Err(camera_error(
                &name,
                "format",
                format!(
                    "the camera offers {offered:?}; tern reads GREY, YUYV, UYVY, RGB3 and MJPG"
                ),
            ));
        };
        let stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(|e| camera_error(&name, "stream", e))?;
        Ok(CameraSource {
            stream,
            name,
            format,
            width: granted.width,
            height: granted.height,
            stride: granted.stride as usize,
            frames,
            taken: 0,
            preprocess,
        })
    }

    /// The pixel format and size the camera granted.
    pub fn format(&self) -> (PixelFormat, u32, u32) {
        (self.format, self.width, self.height)
    }
}

/// Bytes per pixel of the packed formats (JPEG frames are not row-addressable).
fn bytes_per_pixel(format: PixelFormat) -> Option<usize> {
    match format {
        PixelFormat::Grey => Some(1),
        PixelFormat::Yuyv | PixelFormat::Uyvy => Some(2),
        PixelFormat::Rgb24 => Some(3),
        PixelFormat::Mjpeg => None,
    }
}

impl Source for CameraSource {
    fn next_input(&mut self) -> Result<Option<DeviceInput>, DeviceError> {
        if self.frames.is_some_and(|n| self.taken >= n) {
            return Ok(None);
        }
        self.taken += 1;
        let item = format!("frame {}", self.taken);
        let (buffer, meta) = self
            .stream
            .next()
            .map_err(|e| camera_error(&self.name, &item, e))?;
        let used = match meta.bytesused as usize {
            0 => buffer.len(),
            used => used.min(buffer.len()),
        };
        let bytes = &buffer[..used];
        let row = bytes_per_pixel(self.format).map(|b| b * self.width as usize);
        let frame = match row {
            Some(row) if self.stride > row => {
                let packed: Vec<u8> = bytes
                    .chunks(self.stride)
                    .take(self.height as usize)
                    .flat_map(|line| &line[..row.min(line.len())])
                    .copied()
                    .collect();
                camera_frame(self.format, self.width, self.height, &packed)
            }
            _ => camera_frame(self.format, self.width, self.height, bytes),
        }
        .map_err(|message| camera_error(&self.name, &item, message))?;
        Ok(Some(frame_input(item, frame, &self.preprocess)))
    }
}
