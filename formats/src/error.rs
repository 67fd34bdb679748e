//! The one error type of every reader and writer: where (source, line or record, field) and what was expected.

use std::fmt;

/// Where in an input a problem sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A 1-based line of a text format (CSV, libsvm, JSON lines).
    Line(u64),
    /// A 1-based record of a binary format (RecordIO), with the byte offset its frame starts at.
    Record { index: u64, byte_offset: u64 },
    /// A 1-based row of a table format (Parquet).
    Row(u64),
    /// The input as a whole (an empty channel, a JSON document).
    Whole,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Record { index, byte_offset } => {
                write!(f, "record {index} (byte {byte_offset})")
            }
            Location::Row(row) => write!(f, "row {row}"),
            Location::Whole => write!(f, "input"),
        }
    }
}

/// A malformed or unreadable input.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are there but do not follow the format.
    #[error("{source_name}: {location}{}: {message}", field.as_deref().map(|f| format!(", field {f}")).unwrap_or_default())]
    Malformed {
        /// The file, channel or request the input came from.
        source_name: String,
        location: Location,
        /// The field at fault, e.g. `column 3`, `index 17`, `label`, `features.values`.
        field: Option<String>,
        /// What was found and what was expected.
        message: String,
    },
    /// Reading the underlying stream failed.
    #[error("{source_name}: {location}: read failed: {error}")]
    Io {
        source_name: String,
        location: Location,
        #[source]
        error: std::io::Error,
    },
    /// A content type tern does not read or write.
    #[error("unsupported content type {content_type:?}; expected one of: {expected}")]
    UnsupportedContentType {
        content_type: String,
        expected: String,
    },
}

impl FormatError {
    /// A failed write of an output line or record (writers have no source name: they say `output`).
    pub fn write_failed(location: Location, error: impl Into<std::io::Error>) -> Self {
        FormatError::Io {
            source_name: "output".to_string(),
            location,
            error: error.into(),
        }
    }

    /// A [`FormatError::Malformed`] at `location`, with `field` when one is at fault.
    pub fn malformed(
        source_name: &str,
        location: Location,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        FormatError::Malformed {
            source_name: source_name.to_string(),
            location,
            field,
            message: message.into(),
        }
    }
}
