//! Parquet (`application/x-parquet`) as SageMaker's XGBoost container reads it: one table of numeric columns, the
//! label in the first column (when `label_size=1`), every other column a feature in column order; a null is a
//! missing value (NaN). Boolean and integer columns read as numbers; text, binary, dates, decimals and nested
//! columns are refused naming the row and column.
//!
//! Parquet keeps its schema and row-group index in a footer at the end of the file, so a reader needs random
//! access: the input is read into memory first (as `application/json` is), then decoded row group by row group.
//! Compression codecs: snappy, gzip, lz4 and zstd.

use std::io::Read;

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;

use crate::error::{FormatError, Location};
use crate::{Features, Record, RecordStream};

fn whole(source: &str, message: String) -> FormatError {
    FormatError::malformed(source, Location::Whole, None, message)
}

/// A numeric value of `field`, `Ok(None)` for a null, else an error message naming what was found.
fn numeric(field: &Field) -> Result<Option<f32>, String> {
    Ok(Some(match field {
        Field::Null => return Ok(None),
        Field::Bool(b) => f32::from(u8::from(*b)),
        Field::Byte(v) => *v as f32,
        Field::Short(v) => *v as f32,
        Field::Int(v) => *v as f32,
        Field::Long(v) => *v as f32,
        Field::UByte(v) => *v as f32,
        Field::UShort(v) => *v as f32,
        Field::UInt(v) => *v as f32,
        Field::ULong(v) => *v as f32,
        Field::Float16(v) => f32::from(*v),
        Field::Float(v) => *v,
        Field::Double(v) => *v as f32,
        other => return Err(format!("expected a number or null, found {other}")),
    }))
}

/// Reads `input` (a whole Parquet file) into records; `source` names it in errors.
pub fn read_parquet<R: Read>(
    mut input: R,
    source: &str,
    label_size: usize,
) -> Result<Vec<Record>, FormatError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|error| FormatError::Io {
            source_name: source.to_string(),
            location: Location::Whole,
            error,
        })?;
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))
        .map_err(|e| whole(source, format!("not a readable Parquet file: {e}")))?;
    let columns = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .num_columns();
    if columns <= label_size {
        return Err(whole(
            source,
            format!(
                "the table has {columns} column(s); expected {} (the label first) and at least one feature",
                label_size + 1
            ),
        ));
    }
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| whole(source, format!("cannot read the rows: {e}")))?;
    let mut records = Vec::new();
    for (index, row) in rows.enumerate() {
        let location = Location::Row(index as u64 + 1);
        let row = row.map_err(|e| FormatError::malformed(source, location, None, e.to_string()))?;
        let mut label = None;
        let mut values = Vec::with_capacity(columns - label_size);
        for (column, (name, field)) in row.get_column_iter().enumerate() {
            let value = numeric(field).map_err(|message| {
                FormatError::malformed(source, location, Some(format!("column {name:?}")), message)
            })?;
            if column < label_size {
                label = Some(value.ok_or_else(|| {
                    FormatError::malformed(
                        source,
                        location,
                        Some(format!("column {name:?} (label)")),
                        "the label is null",
                    )
                })?);
            } else {
                values.push(value.unwrap_or(f32::NAN));
            }
        }
        if values.len() + label_size != columns {
            return Err(FormatError::malformed(
                source,
                location,
                None,
                format!(
                    "expected {columns} columns, found {}",
                    values.len() + label_size
                ),
            ));
        }
        records.push(Record {
            features: Features::Dense(values),
            label,
            weight: None,
        });
    }
    Ok(records)
}

/// [`read_parquet`] as a record stream.
pub fn parquet_stream<'a, R: Read>(
    input: R,
    source: &str,
    label_size: usize,
) -> Result<RecordStream<'a>, FormatError> {
    Ok(Box::new(
        read_parquet(input, source, label_size)?.into_iter().map(Ok),
    ))
}
