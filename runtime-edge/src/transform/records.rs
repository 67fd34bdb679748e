//! Splitting an input into records (`SplitType`) and CSV rows into fields, with bounded memory: a record is read
//! only up to the payload limit, and one record at a time.

use std::io::{BufRead, Read};

use super::{SplitType, TransformError};

/// RecordIO's frame magic (little-endian on the wire).
pub const RECORDIO_MAGIC: u32 = 0xCED7_230A;

/// One record as read from the input.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The bytes a request carries for it: a line without its terminator, a whole RecordIO frame (header, payload,
    /// padding), or the whole input.
    pub bytes: Vec<u8>,
    /// 1-based line (SplitType Line) or record (RecordIO, None) number where it starts.
    pub number: u64,
}

/// Reads records from an input one at a time.
pub struct RecordReader<R> {
    reader: R,
    split: SplitType,
    limit: usize,
    source: String,
    number: u64,
    line: u64,
    done: bool,
    /// Bytes consumed so far (progress).
    pub consumed: u64,
}

impl<R: BufRead> RecordReader<R> {
    /// `limit` is the largest record accepted (MaxPayloadInMB): a longer one is an error, read no further.
    pub fn new(reader: R, split: SplitType, limit: usize, source: &str) -> Self {
        RecordReader {
            reader,
            split,
            limit,
            source: source.to_string(),
            number: 0,
            line: 0,
            done: false,
            consumed: 0,
        }
    }

    fn io(&self, error: std::io::Error) -> TransformError {
        TransformError::Read {
            source_name: self.source.clone(),
            error,
        }
    }

    fn too_large(&self, record: u64, size: usize) -> TransformError {
        TransformError::PayloadTooLarge {
            source_name: self.source.clone(),
            record,
            size,
            limit: self.limit,
        }
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<RawRecord>, TransformError> {
        if self.done {
            return Ok(None);
        }
        match self.split {
            SplitType::Line => self.next_line(),
            SplitType::RecordIo => self.next_frame(),
            SplitType::None => {
                self.done = true;
                let mut bytes = Vec::new();
                let read = (&mut self.reader)
                    .take(self.limit as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| self.io(e))?;
                self.consumed += read as u64;
                if bytes.len() > self.limit {
                    return Err(self.too_large(1, bytes.len()));
                }
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                Ok(Some(RawRecord { bytes, number: 1 }))
            }
        }
    }

    fn next_line(&mut self) -> Result<Option<RawRecord>, TransformError> {
        loop {
            let mut bytes = Vec::new();
            let read = (&mut self.reader)
                .take(self.limit as u64 + 2)
                .read_until(b'\n', &mut bytes)
                .map_err(|e| self.io(e))?;
            if read == 0 {
                self.done = true;
                return Ok(None);
            }
            self.consumed += read as u64;
            self.line += 1;
            let terminated = bytes.last() == Some(&b'\n');
            if terminated {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            if bytes.len() > self.limit || (!terminated && read > self.limit) {
                return Err(self.too_large(self.line, bytes.len()));
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(RawRecord {
                bytes,
                number: self.line,
            }));
        }
    }

    fn next_frame(&mut self) -> Result<Option<RawRecord>, TransformError> {
        let mut header = [0u8; 8];
        let mut filled = 0;
        while filled < header.len() {
            let n = self
                .reader
                .read(&mut header[filled..])
                .map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            self.done = true;
            return Ok(None);
        }
        self.number += 1;
        let record = self.number;
        let frame_error = |message: String| TransformError::Record {
            source_name: self.source.clone(),
            record,
            field: "RecordIO frame".to_string(),
            message,
        };
        if filled < header.len() {
            return Err(frame_error(format!(
                "the input ends inside a frame header ({filled} of 8 bytes)"
            )));
        }
        let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if magic != RECORDIO_MAGIC {
            return Err(frame_error(format!(
                "magic 0x{magic:08X}, expected 0x{RECORDIO_MAGIC:08X}"
            )));
        }
        let word = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if word >> 29 != 0 {
            return Err(frame_error(
                "multi-part records (continuation flag set) are not supported".to_string(),
            ));
        }
        let length = (word & 0x1FFF_FFFF) as usize;
        let padded = length.div_ceil(4) * 4;
        let size = 8 + padded;
        if size > self.limit {
            return Err(self.too_large(record, size));
        }
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(&header);
        bytes.resize(size, 0);
        self.reader.read_exact(&mut bytes[8..]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                frame_error(format!(
                    "the input ends inside a frame (payload of {length} bytes declared)"
                ))
            } else {
                self.io(e)
            }
        })?;
        self.consumed += size as u64;
        Ok(Some(RawRecord {
            bytes,
            number: record,
        }))
    }
}

/// Splits one CSV line into fields (RFC 4180 quoting: `"a,b"`, `""` for a quote).
pub fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err(format!(
                            "field {} has text after its closing quote",
                            fields.len() + 1
                        ));
                    }
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
                continue;
            }
            '"' if at_field_start => quoted = true,
            _ => field.push(c),
        }
        at_field_start = false;
    }
    if quoted {
        return Err(format!("field {} has no closing quote", fields.len() + 1));
    }
    fields.push(field);
    Ok(fields)
}

/// Writes `field` as one CSV field, quoted when it holds a comma, quote or line break.
pub fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(
        input: &[u8],
        split: SplitType,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>, TransformError> {
        let mut reader = RecordReader::new(input, split, limit, "in.csv");
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            out.push((record.bytes, record.number));
        }
        Ok(out)
    }

    #[test]
    fn lines_skip_blanks_and_keep_line_numbers() {
        let got = records(b"1,2\r\n\n3,4\n5,6", SplitType::Line, 100).unwrap();
        assert_eq!(
            got,
            vec![
                (b"1,2".to_vec(), 1),
                (b"3,4".to_vec(), 3),
                (b"5,6".to_vec(), 4)
            ]
        );
    }

    #[test]
    fn a_line_over_the_limit_names_its_line() {
        match records(b"1,2\n123456789\n", SplitType::Line, 5) {
            Err(TransformError::PayloadTooLarge { record, limit, .. }) => {
                assert_eq!((record, limit), (2, 5))
            }
            other => panic!("{other:?}"),
        }
        // Exactly at the limit is fine, with or without a terminator.
        assert_eq!(records(b"12345", SplitType::Line, 5).unwrap().len(), 1);
        assert_eq!(records(b"12345\r\n", SplitType::Line, 5).unwrap().len(), 1);
    }

    #[test]
    fn recordio_frames_are_read_whole_and_checked() {
        let mut input = Vec::new();
        for payload in [&b"abcde"[..], &b"wxyz"[..]] {
            input.extend_from_slice(&RECORDIO_MAGIC.to_le_bytes());
            input.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            input.extend_from_slice(payload);
            input.resize(input.len().div_ceil(4) * 4, 0);
        }
        let got = records(&input, SplitType::RecordIo, 100).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 16);
        assert_eq!(got[1].0.len(), 12);
        let mut truncated = input.clone();
        truncated.truncate(input.len() - 2);
        let error = records(&truncated, SplitType::RecordIo, 100)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("record 2") && error.contains("ends inside a frame"),
            "{error}"
        );
        let mut bad = input.clone();
        bad[0] = 0;
        let error = records(&bad, SplitType::RecordIo, 100)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("record 1") && error.contains("magic"),
            "{error}"
        );
    }

    #[test]
    fn split_none_reads_the_whole_input_up_to_the_limit() {
        assert_eq!(records(b"a\nb\n", SplitType::None, 4).unwrap().len(), 1);
        assert!(matches!(
            records(b"a\nb\nc", SplitType::None, 4),
            Err(TransformError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn csv_fields_round_trip_with_quotes() {
        assert_eq!(
            split_csv("1,\"a,b\",\"x\"\"y\",").unwrap(),
            vec!["1", "a,b", "x\"y", ""]
        );
        assert!(split_csv("\"open").is_err());
        assert!(split_csv("\"a\"b,1").is_err());
        let mut line = String::new();
        push_csv_field(&mut line, "a,b");
        line.push(',');
        push_csv_field(&mut line, "{\"s\":1}");
        assert_eq!(line, "\"a,b\",\"{\"\"s\"\":1}\"");
        assert_eq!(split_csv(&line).unwrap(), vec!["a,b", "{\"s\":1}"]);
    }
}
