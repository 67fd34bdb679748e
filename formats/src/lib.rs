//! SageMaker's data and wire formats, read and written as streams of [`Record`]s.
//!
//! | content type | module | reads | writes |
//! |---|---|---|---|
//! | `text/csv` (label first, `label_size=0` for unlabelled rows) | [`csv`] | yes | yes |
//! | `text/libsvm` (`label idx:val …`, 0- or 1-based) | [`libsvm`] | yes | yes |
//! | `application/x-recordio-protobuf` (MXNet RecordIO framing around `aialgs.data.Record`) | [`recordio`] | yes | yes |
//! | `application/jsonlines` and SageMaker's JSON request shapes | [`json`] | yes | yes |
//!
//! [`response`] writes SageMaker's inference responses in each of those types, for the trainer and every runtime.
//!
//! Every reader is an iterator over `Result<Record, FormatError>` pulling from any `std::io::Read`, so memory stays
//! bounded by one record whatever the size of the input (a Pipe-mode FIFO included). Every error names the source
//! (file or channel), the line or record number, the field, and what was expected.
//!
//! ```
//! use tern_formats::{csv::CsvReader, Features};
//! let data = "1,0.5,2\n0,1.5,-1\n";
//! let records: Vec<_> = CsvReader::new(data.as_bytes(), "train.csv", Default::default())
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(records[1].label, Some(0.0));
//! assert_eq!(records[1].features, Features::Dense(vec![1.5, -1.0]));
//! ```

pub mod content_type;
pub mod csv;
pub mod error;
pub mod json;
pub mod libsvm;
pub mod observe;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod recordio;
pub mod response;
mod text;

pub use content_type::ContentType;
pub use error::{FormatError, Location};

/// The features of one example: dense values in feature order, or a sparse set of (index, value) pairs.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// All values, feature 0 first.
    Dense(Vec<f32>),
    /// Only the stored entries; `indices` are 0-based, strictly increasing, and each is `< dim` when `dim` is known.
    /// An absent index means 0 for linear models and "missing" for tree models, as SageMaker's algorithms read it.
    Sparse {
        indices: Vec<u32>,
        values: Vec<f32>,
        /// The feature dimension the record declares (RecordIO `shape`, JSON `shape`); `None` when the format has none.
        dim: Option<usize>,
    },
}

impl Features {
    /// The number of features this record spans: its length when dense, else its declared dimension or one past the
    /// largest index.
    pub fn dim(&self) -> usize {
        match self {
            Features::Dense(values) => values.len(),
            Features::Sparse { indices, dim, .. } => {
                dim.unwrap_or_else(|| indices.last().map_or(0, |&last| last as usize + 1))
            }
        }
    }

    /// Writes the values into `out` (length = the model's feature dimension), zero where a sparse record stores nothing.
    /// Entries at or beyond `out.len()` are ignored; callers check dimensions first.
    pub fn write_dense(&self, out: &mut [f32]) {
        match self {
            Features::Dense(values) => {
                let n = values.len().min(out.len());
                out[..n].copy_from_slice(&values[..n]);
                out[n..].fill(0.0);
            }
            Features::Sparse {
                indices, values, ..
            } => {
                out.fill(0.0);
                for (&index, &value) in indices.iter().zip(values) {
                    if let Some(slot) = out.get_mut(index as usize) {
                        *slot = value;
                    }
                }
            }
        }
    }
}

/// One example as SageMaker's formats carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub features: Features,
    /// The label (first CSV column, libsvm's leading value, RecordIO's `label["values"]`); `None` when unlabelled.
    pub label: Option<f32>,
    /// An instance weight (xgboost's `csv_weights=1` second CSV column, a libsvm `label:weight`); `None` means 1.
    pub weight: Option<f32>,
}

impl Record {
    /// A labelled dense record with no weight.
    pub fn dense(label: Option<f32>, values: Vec<f32>) -> Self {
        Record {
            features: Features::Dense(values),
            label,
            weight: None,
        }
    }
}

/// A boxed stream of records, what [`open_reader`] returns for any content type.
pub type RecordStream<'a> = Box<dyn Iterator<Item = Result<Record, FormatError>> + Send + 'a>;

/// Opens a streaming reader for `content_type` over `input`; `source` names the file or channel in errors.
///
/// `application/json` (a whole `{"instances": …}` document) is read into memory first, as it has no record framing;
/// the other types stream.
pub fn open_reader<'a, R: std::io::Read + Send + 'a>(
    content_type: &ContentType,
    input: R,
    source: &str,
) -> Result<RecordStream<'a>, FormatError> {
    let stream: RecordStream<'a> = match content_type {
        ContentType::Csv { label_size, .. } => Box::new(csv::CsvReader::new(
            input,
            source,
            csv::CsvOptions {
                label_size: *label_size,
                ..Default::default()
            },
        )),
        ContentType::Libsvm => Box::new(libsvm::LibsvmReader::new(input, source)),
        ContentType::RecordIoProtobuf => Box::new(recordio::RecordIoReader::new(input, source)),
        ContentType::JsonLines => Box::new(json::JsonLinesReader::new(input, source)),
        ContentType::Json => Box::new(json::read_json_request(input, source)?.into_iter().map(Ok)),
        #[cfg(feature = "parquet")]
        ContentType::Parquet { label_size } => parquet::parquet_stream(input, source, *label_size)?,
        #[cfg(not(feature = "parquet"))]
        ContentType::Parquet { .. } => return Err(FormatError::UnsupportedContentType {
            content_type: content_type.mime().to_string(),
            expected:
                "a content type other than Parquet: this build of tern-formats has no `parquet` \
                           feature"
                    .to_string(),
        }),
    };
    Ok(stream)
}
