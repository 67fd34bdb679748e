//! SageMaker content types, parsed from `Content-Type` / `Accept` headers and `inputdataconfig.json`.

use crate::FormatError;

/// A data format SageMaker names by MIME type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    /// `text/csv`; `label_size` is 1 for training data (label first) and 0 for `text/csv;label_size=0` rows.
    Csv { label_size: usize },
    /// `text/libsvm` (also `text/x-libsvm`).
    Libsvm,
    /// `application/x-recordio-protobuf`.
    RecordIoProtobuf,
    /// `application/jsonlines` (also `application/json-lines`, `application/x-jsonlines`).
    JsonLines,
    /// `application/json`.
    Json,
    /// `application/x-parquet` (SageMaker XGBoost's Parquet input: numeric columns, the label first).
    Parquet { label_size: usize },
}

const EXPECTED: &str = "text/csv, text/libsvm, application/x-recordio-protobuf, application/jsonlines, application/json, application/x-parquet";

impl ContentType {
    /// Parses a MIME type with optional parameters, e.g. `text/csv; label_size=0` or `text/csv; charset=utf-8`.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let unsupported = || FormatError::UnsupportedContentType {
            content_type: text.to_string(),
            expected: EXPECTED.to_string(),
        };
        let mut parts = text.split(';').map(str::trim);
        let mime = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut label_size = None;
        for parameter in parts.filter(|p| !p.is_empty()) {
            let (key, value) = parameter.split_once('=').ok_or_else(unsupported)?;
            if key.trim().eq_ignore_ascii_case("label_size") {
                let size: usize = value.trim().parse().map_err(|_| unsupported())?;
                if size > 1 {
                    return Err(FormatError::UnsupportedContentType {
                        content_type: text.to_string(),
                        expected: "label_size=0 or label_size=1".to_string(),
                    });
                }
                label_size = Some(size);
            }
        }
        match mime.as_str() {
            "text/csv" | "text/x-csv" | "application/csv" => Ok(ContentType::Csv {
                label_size: label_size.unwrap_or(1),
            }),
            "text/libsvm" | "text/x-libsvm" | "application/x-libsvm" => Ok(ContentType::Libsvm),
            "application/x-recordio-protobuf" => Ok(ContentType::RecordIoProtobuf),
            "application/jsonlines" | "application/json-lines" | "application/x-jsonlines" => {
                Ok(ContentType::JsonLines)
            }
            "application/json" => Ok(ContentType::Json),
            "application/x-parquet" | "application/parquet" | "application/vnd.apache.parquet" => {
                Ok(ContentType::Parquet {
                    label_size: label_size.unwrap_or(1),
                })
            }
            _ => Err(unsupported()),
        }
    }

    /// The canonical MIME string (with `;label_size=0` for unlabelled CSV).
    pub fn mime(&self) -> &'static str {
        match self {
            ContentType::Csv { label_size: 0 } => "text/csv;label_size=0",
            ContentType::Csv { .. } => "text/csv",
            ContentType::Libsvm => "text/libsvm",
            ContentType::RecordIoProtobuf => "application/x-recordio-protobuf",
            ContentType::JsonLines => "application/jsonlines",
            ContentType::Json => "application/json",
            ContentType::Parquet { label_size: 0 } => "application/x-parquet;label_size=0",
            ContentType::Parquet { .. } => "application/x-parquet",
        }
    }

    /// Guesses from a file extension (`.csv`, `.libsvm`/`.svm`, `.rec`/`.pbr`/`.recordio`, `.jsonl`, `.json`).
    pub fn from_extension(path: &std::path::Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(ContentType::Csv { label_size: 1 }),
            "libsvm" | "svm" => Some(ContentType::Libsvm),
            "rec" | "pbr" | "recordio" | "protobuf" => Some(ContentType::RecordIoProtobuf),
            "jsonl" | "jsonlines" => Some(ContentType::JsonLines),
            "json" => Some(ContentType::Json),
            "parquet" | "pq" => Some(ContentType::Parquet { label_size: 1 }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parameters_and_aliases() {
        assert_eq!(
            ContentType::parse("text/csv").unwrap(),
            ContentType::Csv { label_size: 1 }
        );
        assert_eq!(
            ContentType::parse("text/csv; label_size=0").unwrap(),
            ContentType::Csv { label_size: 0 }
        );
        assert_eq!(
            ContentType::parse("text/csv;charset=utf-8").unwrap(),
            ContentType::Csv { label_size: 1 }
        );
        assert_eq!(
            ContentType::parse("application/x-recordio-protobuf").unwrap(),
            ContentType::RecordIoProtobuf
        );
        assert!(ContentType::parse("image/png")
            .unwrap_err()
            .to_string()
            .contains("text/csv"));
        assert!(ContentType::parse("text/csv;label_size=2").is_err());
    }
}
