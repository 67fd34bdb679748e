//! The manifest's preprocessing [`Step`]s, run per record: a request input (image bytes, text, token ids) in, the
//! graph's `feature_dim` float32 values out. The same code runs natively, on aarch64, in wasm and behind every
//! server, so a package preprocesses identically wherever it runs; a trainer that reads images or text uses the same
//! steps so training and serving see the same values.
//!
//! Images are decoded by the `image` crate (PNG, JPEG); resizing is `image`'s `resize` (nearest or triangle, i.e.
//! bilinear, filter). Text is split into runs of Unicode letters and digits; hashing is FNV-1a 32-bit, written here
//! because it is eight lines and its exact definition is part of the package contract.

use crate::manifest::{InputKind, PixelLayout, ResizeFilter, Step};

/// One request input's value, before preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub enum RawInput {
    /// An encoded image.
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
    /// Token ids.
    Ids(Vec<i64>),
}

/// A value between steps.
enum Value {
    Bytes(Vec<u8>),
    Text(String),
    /// `width × height × channels` pixels, row-major, channels last, 0..=255.
    Pixels {
        width: u32,
        height: u32,
        channels: u8,
        values: Vec<u8>,
    },
    Tokens(Vec<String>),
    Ids(Vec<i64>),
    Floats(Vec<f32>),
}

/// What a value is, for the load-time check of a step chain and for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Bytes,
    Text,
    Pixels,
    Tokens,
    Ids,
    Floats,
}

impl ValueKind {
    fn name(self) -> &'static str {
        match self {
            ValueKind::Bytes => "image bytes",
            ValueKind::Text => "text",
            ValueKind::Pixels => "pixels",
            ValueKind::Tokens => "tokens",
            ValueKind::Ids => "token ids",
            ValueKind::Floats => "float32 values",
        }
    }
}

impl Value {
    fn kind(&self) -> ValueKind {
        match self {
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Text(_) => ValueKind::Text,
            Value::Pixels { .. } => ValueKind::Pixels,
            Value::Tokens(_) => ValueKind::Tokens,
            Value::Ids(_) => ValueKind::Ids,
            Value::Floats(_) => ValueKind::Floats,
        }
    }
}

/// The value kind a request input of `kind` starts as; `None` for features, which take no steps.
fn start_kind(kind: InputKind) -> Option<ValueKind> {
    match kind {
        InputKind::DenseFloat | InputKind::SparseFloat => None,
        InputKind::String => Some(ValueKind::Text),
        InputKind::ImageBytes => Some(ValueKind::Bytes),
        InputKind::IntegerSequence => Some(ValueKind::Ids),
    }
}

/// What `step` takes and gives.
fn signature(step: &Step) -> (ValueKind, ValueKind) {
    match step {
        Step::DecodeImage { .. } => (ValueKind::Bytes, ValueKind::Pixels),
        Step::Resize { .. } | Step::CenterCrop { .. } => (ValueKind::Pixels, ValueKind::Pixels),
        Step::Normalize { .. } => (ValueKind::Pixels, ValueKind::Floats),
        Step::Tokenize { .. } => (ValueKind::Text, ValueKind::Tokens),
        Step::HashTokens { .. } => (ValueKind::Tokens, ValueKind::Floats),
        Step::Vocabulary { .. } => (ValueKind::Tokens, ValueKind::Ids),
        Step::CountIds { .. } => (ValueKind::Ids, ValueKind::Floats),
    }
}

/// Checks, at load, that `steps` take a request input of `kind` to float32 values: each step's input is what the one
/// before gives, and each step's parameters are usable. Errors name the step (`preprocess[2]`) and say why.
pub fn check(kind: InputKind, steps: &[Step]) -> Result<(), (String, String)> {
    let Some(mut value) = start_kind(kind) else {
        return match steps.is_empty() {
            true => Ok(()),
            false => Err((
                "preprocess".to_string(),
                format!("{kind:?} features take no preprocessing steps"),
            )),
        };
    };
    for (index, step) in steps.iter().enumerate() {
        let field = format!("preprocess[{index}]");
        let (takes, gives) = signature(step);
        if takes != value {
            return Err((
                field,
                format!("takes {}, but is given {}", takes.name(), value.name()),
            ));
        }
        let bad = |message: String| Err((format!("preprocess[{index}]"), message));
        match step {
            Step::DecodeImage { channels } if !matches!(channels, 1 | 3) => {
                return bad(format!("channels must be 1 or 3, not {channels}"))
            }
            Step::Resize { width, height, .. } | Step::CenterCrop { width, height }
                if *width == 0 || *height == 0 =>
            {
                return bad(format!("a {width}×{height} image is empty"))
            }
            Step::Normalize { mean, std, .. } if mean.len() != std.len() || mean.is_empty() => {
                return bad(format!(
                    "mean has {} values and std {}; both need one per channel",
                    mean.len(),
                    std.len()
                ))
            }
            Step::Normalize { std, .. } if std.iter().any(|s| !s.is_finite() || *s == 0.0) => {
                return bad("every std must be finite and non-zero".to_string())
            }
            Step::HashTokens { buckets, ngrams } if *buckets == 0 || !matches!(ngrams, 1 | 2) => {
                return bad(format!(
                    "buckets must be at least 1 and ngrams 1 or 2 (found {buckets} and {ngrams})"
                ))
            }
            Step::Vocabulary { tokens, unknown } => {
                if let Some(unknown) = unknown.filter(|&u| u as usize >= tokens.len().max(1)) {
                    return bad(format!(
                        "unknown id {unknown} is not below the vocabulary's {} tokens",
                        tokens.len()
                    ));
                }
            }
            Step::CountIds { size: 0 } => return bad("size must be at least 1".to_string()),
            _ => {}
        }
        value = gives;
    }
    if value != ValueKind::Floats {
        return Err((
            "preprocess".to_string(),
            format!("the steps end with {}, not float32 values", value.name()),
        ));
    }
    Ok(())
}

/// Runs `steps` on one record's input, leaving exactly `feature_dim` values; the error says what went wrong (the
/// caller names the record and input).
pub fn preprocess(input: RawInput, steps: &[Step], feature_dim: usize) -> Result<Vec<f32>, String> {
    let mut value = match input {
        RawInput::Bytes(bytes) => Value::Bytes(bytes),
        RawInput::Text(text) => Value::Text(text),
        RawInput::Ids(ids) => Value::Ids(ids),
    };
    for (index, step) in steps.iter().enumerate() {
        value = apply(step, value).map_err(|message| format!("preprocess[{index}]: {message}"))?;
    }
    match value {
        Value::Floats(values) if values.len() == feature_dim => Ok(values),
        Value::Floats(values) => Err(format!(
            "the preprocessing steps made {} values; the graph takes {feature_dim}",
            values.len()
        )),
        other => Err(format!(
            "the preprocessing steps end with {}, not float32 values",
            other.kind().name()
        )),
    }
}

fn apply(step: &Step, value: Value) -> Result<Value, String> {
    match (step, value) {
        (Step::DecodeImage { channels }, Value::Bytes(bytes)) => decode_image(&bytes, *channels),
        (
            Step::Resize {
                width,
                height,
                filter,
            },
            Value::Pixels {
                width: w,
                height: h,
                channels,
                values,
            },
        ) => Ok(resize(
            &values,
            (w, h),
            channels,
            (*width, *height),
            *filter,
        )),
        (
            Step::CenterCrop { width, height },
            Value::Pixels {
                width: w,
                height: h,
                channels,
                values,
            },
        ) => center_crop(&values, (w, h), channels, (*width, *height)),
        (
            Step::Normalize {
                scale,
                mean,
                std,
                layout,
            },
            Value::Pixels {
                width,
                height,
                channels,
                values,
            },
        ) => normalize(
            &values,
            (width, height, channels),
            *scale,
            mean,
            std,
            *layout,
        ),
        (Step::Tokenize { lowercase }, Value::Text(text)) => {
            Ok(Value::Tokens(tokenize(&text, *lowercase)))
        }
        (Step::HashTokens { buckets, ngrams }, Value::Tokens(tokens)) => {
            Ok(Value::Floats(hash_counts(&tokens, *buckets, *ngrams)))
        }
        (Step::Vocabulary { tokens, unknown }, Value::Tokens(words)) => {
            Ok(Value::Ids(vocabulary_ids(&words, tokens, *unknown)))
        }
        (Step::CountIds { size }, Value::Ids(ids)) => count_ids(&ids, *size).map(Value::Floats),
        (step, value) => Err(format!(
            "{} cannot take {} (the manifest's steps were checked at load; this is a bug)",
            step_name(step),
            value.kind().name()
        )),
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::DecodeImage { .. } => "decode_image",
        Step::Resize { .. } => "resize",
        Step::CenterCrop { .. } => "center_crop",
        Step::Normalize { .. } => "normalize",
        Step::Tokenize { .. } => "tokenize",
        Step::HashTokens { .. } => "hash_tokens",
        Step::Vocabulary { .. } => "vocabulary",
        Step::CountIds { .. } => "count_ids",
    }
}

/// The largest image decoded, in pixels (a 4096 × 4096 image); larger ones are refused before their pixels are
/// allocated.
pub const MAX_IMAGE_PIXELS: u64 = 4096 * 4096;

fn decode_image(bytes: &[u8], channels: u8) -> Result<Value, String> {
    let reader = image::io::Reader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("decode_image: {e}"))?;
    let format = reader
        .format()
        .ok_or_else(|| "decode_image: not a PNG or JPEG image".to_string())?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("decode_image: not a readable {format:?} image: {e}"))?;
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(format!(
            "decode_image: a {width}×{height} image is larger than the {MAX_IMAGE_PIXELS} pixels tern decodes"
        ));
    }
    let decoded = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("decode_image: not a readable {format:?} image: {e}"))?;
    let values = match channels {
        1 => decoded.to_luma8().into_raw(),
        _ => decoded.to_rgb8().into_raw(),
    };
    Ok(Value::Pixels {
        width,
        height,
        channels,
        values,
    })
}

fn resize(
    values: &[u8],
    (width, height): (u32, u32),
    channels: u8,
    (to_width, to_height): (u32, u32),
    filter: ResizeFilter,
) -> Value {
    let filter = match filter {
        ResizeFilter::Nearest => image::imageops::FilterType::Nearest,
        ResizeFilter::Bilinear => image::imageops::FilterType::Triangle,
    };
    let values = if channels == 1 {
        let buffer = image::GrayImage::from_raw(width, height, values.to_vec())
            .expect("decode_image made width × height grey pixels");
        image::imageops::resize(&buffer, to_width, to_height, filter).into_raw()
    } else {
        let buffer = image::RgbImage::from_raw(width, height, values.to_vec())
            .expect("decode_image made width × height RGB pixels");
        image::imageops::resize(&buffer, to_width, to_height, filter).into_raw()
    };
    Value::Pixels {
        width: to_width,
        height: to_height,
        channels,
        values,
    }
}

fn center_crop(
    values: &[u8],
    (width, height): (u32, u32),
    channels: u8,
    (to_width, to_height): (u32, u32),
) -> Result<Value, String> {
    if to_width > width || to_height > height {
        return Err(format!(
            "center_crop: a {to_width}×{to_height} window does not fit a {width}×{height} image"
        ));
    }
    let (left, top) = ((width - to_width) / 2, (height - to_height) / 2);
    let c = usize::from(channels);
    let mut out = Vec::with_capacity(to_width as usize * to_height as usize * c);
    for y in top..top + to_height {
        let start = (y as usize * width as usize + left as usize) * c;
        out.extend_from_slice(&values[start..start + to_width as usize * c]);
    }
    Ok(Value::Pixels {
        width: to_width,
        height: to_height,
        channels,
        values: out,
    })
}

fn normalize(
    values: &[u8],
    (width, height, channels): (u32, u32, u8),
    scale: f32,
    mean: &[f32],
    std: &[f32],
    layout: PixelLayout,
) -> Result<Value, String> {
    let c = usize::from(channels);
    if mean.len() != c {
        return Err(format!(
            "normalize: {} means for an image of {c} channels",
            mean.len()
        ));
    }
    let pixels = width as usize * height as usize;
    let at = |pixel: usize, channel: usize| {
        (f32::from(values[pixel * c + channel]) * scale - mean[channel]) / std[channel]
    };
    let out = match layout {
        PixelLayout::Hwc => (0..pixels)
            .flat_map(|p| (0..c).map(move |ch| (p, ch)))
            .map(|(p, ch)| at(p, ch))
            .collect(),
        PixelLayout::Chw => (0..c)
            .flat_map(|ch| (0..pixels).map(move |p| (p, ch)))
            .map(|(p, ch)| at(p, ch))
            .collect(),
    };
    Ok(Value::Floats(out))
}

/// Runs of Unicode letters and digits, lower-cased when asked.
pub fn tokenize(text: &str, lowercase: bool) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(|token| {
            if lowercase {
                token.to_lowercase()
            } else {
                token.to_string()
            }
        })
        .collect()
}

/// FNV-1a, 32 bits, over the token's UTF-8 bytes.
pub fn fnv1a(token: &str) -> u32 {
    token.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

fn hash_counts(tokens: &[String], buckets: u32, ngrams: u8) -> Vec<f32> {
    let mut counts = vec![0.0f32; buckets as usize];
    let mut add = |token: &str| counts[(fnv1a(token) % buckets) as usize] += 1.0;
    for token in tokens {
        add(token);
    }
    if ngrams == 2 {
        for pair in tokens.windows(2) {
            add(&format!("{} {}", pair[0], pair[1]));
        }
    }
    counts
}

fn vocabulary_ids(words: &[String], tokens: &[String], unknown: Option<u32>) -> Vec<i64> {
    words
        .iter()
        .filter_map(|word| {
            tokens
                .iter()
                .position(|token| token == word)
                .map(|id| id as i64)
                .or(unknown.map(i64::from))
        })
        .collect()
}

fn count_ids(ids: &[i64], size: u32) -> Result<Vec<f32>, String> {
    let mut counts = vec![0.0f32; size as usize];
    for (position, &id) in ids.iter().enumerate() {
        let slot = usize::try_from(id)
            .ok()
            .and_then(|id| counts.get_mut(id))
            .ok_or_else(|| format!("count_ids: token {position} is id {id}, outside 0..{size}"))?;
        *slot += 1.0;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of the FNV reference (draft-eastlake-fnv): "" and "a" and "foobar".
        assert_eq!(fnv1a(""), 0x811c9dc5);
        assert_eq!(fnv1a("a"), 0xe40c292c);
        assert_eq!(fnv1a("foobar"), 0xbf9cf968);
    }

    #[test]
    fn text_is_split_on_anything_but_letters_and_digits() {
        assert_eq!(
            tokenize("Hello, World! Ünïcode 42x", true),
            ["hello", "world", "ünïcode", "42x"]
        );
    }

    #[test]
    fn a_chain_that_does_not_end_in_floats_is_refused_naming_the_step() {
        let steps = [
            Step::Tokenize { lowercase: true },
            Step::CountIds { size: 4 },
        ];
        let (field, message) = check(InputKind::String, &steps).unwrap_err();
        assert_eq!(field, "preprocess[1]");
        assert!(
            message.contains("takes token ids") && message.contains("tokens"),
            "{message}"
        );
        let (field, _) =
            check(InputKind::String, &[Step::Tokenize { lowercase: true }]).unwrap_err();
        assert_eq!(field, "preprocess");
        assert!(check(InputKind::DenseFloat, &steps).is_err());
        assert!(check(InputKind::DenseFloat, &[]).is_ok());
    }

    #[test]
    fn vocabulary_ids_count_into_a_bag_of_words() {
        let steps = [
            Step::Tokenize { lowercase: true },
            Step::Vocabulary {
                tokens: vec!["spam".into(), "ham".into(), "<unk>".into()],
                unknown: Some(2),
            },
            Step::CountIds { size: 3 },
        ];
        check(InputKind::String, &steps).unwrap();
        let values = preprocess(RawInput::Text("Spam spam eggs HAM".into()), &steps, 3).unwrap();
        assert_eq!(values, [2.0, 1.0, 1.0]);
        let error = preprocess(RawInput::Text("spam".into()), &steps, 4).unwrap_err();
        assert!(
            error.contains("made 3 values") && error.contains("takes 4"),
            "{error}"
        );
    }

    #[test]
    fn bigrams_hash_beside_their_words() {
        let tokens: Vec<String> = ["a", "b"].iter().map(|t| t.to_string()).collect();
        let counts = hash_counts(&tokens, 1 << 16, 2);
        for token in ["a", "b", "a b"] {
            assert_eq!(counts[(fnv1a(token) % (1 << 16)) as usize], 1.0, "{token}");
        }
        assert_eq!(counts.iter().sum::<f32>(), 3.0);
    }
}
