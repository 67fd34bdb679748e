//! Shared pieces of the line-oriented formats (CSV, libsvm, JSON lines): a line reader that holds one line at a
//! time, number formatting that reads back exactly, and quoting of offending text in error messages.

use std::io::{BufRead, BufReader, Read, Write};

use crate::{FormatError, Location};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `\n`-terminated lines (a trailing `\r` is dropped, a UTF-8 byte order mark before the first line is
/// skipped), keeping only the current line in memory.
pub(crate) struct LineReader<R> {
    input: BufReader<R>,
    buffer: Vec<u8>,
    line: u64,
    source: String,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(input: R, source: &str) -> Self {
        LineReader {
            input: BufReader::new(input),
            buffer: Vec::new(),
            line: 0,
            source: source.to_string(),
        }
    }

    /// The name errors carry.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The next line and its 1-based number, or `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, FormatError> {
        self.buffer.clear();
        let read = self
            .input
            .read_until(b'\n', &mut self.buffer)
            .map_err(|error| FormatError::Io {
                source_name: self.source.clone(),
                location: Location::Line(self.line + 1),
                error,
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut line = self.buffer.as_slice();
        if self.line == 1 {
            line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
        }
        line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(Some((self.line, line)))
    }
}

/// True when a line holds nothing but spaces and tabs.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t'))
}

/// Strips ASCII spaces and tabs from both ends.
pub(crate) fn trim(field: &[u8]) -> &[u8] {
    let start = field
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |p| p + 1);
    &field[start..end]
}

/// The text of `bytes` for an error message, quoted, lossily decoded and shortened to 64 characters.
pub(crate) fn quote(bytes: &[u8]) -> String {
    const LIMIT: usize = 64;
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() > LIMIT {
        let short: String = text.chars().take(LIMIT).collect();
        format!("{short:?}…")
    } else {
        format!("{text:?}")
    }
}

/// Parses a decimal number (Rust's `f32` grammar: `1`, `-2.5e-3`, `inf`, `nan`), or `None`; a finite number beyond
/// float32's range (`1e308`) is `None` too, never silently infinity ([`number_problem`] says which).
pub(crate) fn parse_f32(bytes: &[u8]) -> Option<f32> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value: f32 = text.parse().ok()?;
    if value.is_infinite() && text.parse::<f64>().is_ok_and(f64::is_finite) {
        return None;
    }
    Some(value)
}

/// Why [`parse_f32`] refused `bytes`, for error messages.
pub(crate) fn number_problem(bytes: &[u8]) -> &'static str {
    let finite_f64 = std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .is_some_and(f64::is_finite);
    if finite_f64 {
        "a number beyond float32's range (|x| <= 3.4028235e38)"
    } else {
        "not a number"
    }
}

/// Writes `value` in the shortest form that parses back to the same `f32`: plain decimals for ordinary magnitudes,
/// an exponent for very large or small ones, `NaN`, `inf`, `-inf`.
pub(crate) fn write_f32<W: Write + ?Sized>(out: &mut W, value: f32) -> std::io::Result<()> {
    let magnitude = value.abs();
    if value.is_finite() && magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        write!(out, "{value:e}")
    } else {
        write!(out, "{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_float32_are_refused_not_infinite() {
        assert_eq!(parse_f32(b"1e308"), None);
        assert_eq!(parse_f32(b"-4e38"), None);
        assert_eq!(
            number_problem(b"1e308"),
            "a number beyond float32's range (|x| <= 3.4028235e38)"
        );
        assert_eq!(number_problem(b"abc"), "not a number");
        assert_eq!(parse_f32(b"inf"), Some(f32::INFINITY));
        assert_eq!(parse_f32(b"3.4028235e38"), Some(f32::MAX));
        assert_eq!(parse_f32(b"1e-50"), Some(0.0));
    }

    #[test]
    fn lines_drop_terminators_and_the_byte_order_mark() {
        let input = b"\xEF\xBB\xBFa,b\r\n\r\nc\nlast";
        let mut reader = LineReader::new(&input[..], "x");
        let mut lines = Vec::new();
        while let Some((number, line)) = reader.next_line().unwrap() {
            lines.push((number, line.to_vec()));
        }
        assert_eq!(
            lines,
            vec![
                (1, b"a,b".to_vec()),
                (2, b"".to_vec()),
                (3, b"c".to_vec()),
                (4, b"last".to_vec())
            ]
        );
    }

    #[test]
    fn numbers_read_back_exactly() {
        for value in [
            0.0f32,
            -0.0,
            1.0,
            0.1,
            -3.25,
            1e-30,
            3.4028235e38,
            f32::MIN_POSITIVE,
            1e-45,
            123456.79,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            let mut text = Vec::new();
            write_f32(&mut text, value).unwrap();
            let back = parse_f32(&text).unwrap();
            assert_eq!(back.to_bits(), value.to_bits(), "{value} -> {text:?}");
        }
        let mut text = Vec::new();
        write_f32(&mut text, f32::NAN).unwrap();
        assert!(parse_f32(&text).unwrap().is_nan());
    }

    #[test]
    fn trims_and_quotes() {
        assert_eq!(trim(b"  1.5\t"), b"1.5");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(quote(b"abc"), "\"abc\"");
        assert!(quote(&[b'x'; 100]).ends_with('…'));
    }
}

/// The iterator step every reader shares: passes records on and, at the first error or the end, marks the reader
/// `done` so that it yields nothing more.
pub(crate) fn fuse(
    read: Result<Option<crate::Record>, crate::FormatError>,
    done: &mut bool,
) -> Option<Result<crate::Record, crate::FormatError>> {
    let item = read.transpose();
    if !matches!(item, Some(Ok(_))) {
        *done = true;
    }
    item
}
