//! Write → read round trips of every format, over generated records (proptest).

use proptest::prelude::*;
use tern_formats::csv::{CsvOptions, CsvReader, CsvWriter};
use tern_formats::json::{read_json_request, JsonLinesReader, JsonLinesWriter};
use tern_formats::libsvm::{Indexing, LibsvmOptions, LibsvmReader, LibsvmWriter};
use tern_formats::recordio::{RecordIoReader, RecordIoWriter, TensorType};
use tern_formats::{open_reader, ContentType, Features, FormatError, Record};

/// Equal as numbers, NaN equal to NaN, `-0.0` distinct from `0.0` only where the format keeps the sign bit.
fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same_all(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| same(x, y))
}

fn same_option(a: Option<f32>, b: Option<f32>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => same(x, y),
        (None, None) => true,
        _ => false,
    }
}

fn same_record(a: &Record, b: &Record) -> bool {
    let features = match (&a.features, &b.features) {
        (Features::Dense(x), Features::Dense(y)) => same_all(x, y),
        (
            Features::Sparse {
                indices: i,
                values: v,
                dim: d,
            },
            Features::Sparse {
                indices: j,
                values: w,
                dim: e,
            },
        ) => i == j && same_all(v, w) && d == e,
        _ => false,
    };
    features && same_option(a.label, b.label) && same_option(a.weight, b.weight)
}

fn assert_same(written: &[Record], read: &[Record]) -> Result<(), TestCaseError> {
    prop_assert_eq!(written.len(), read.len());
    for (index, (w, r)) in written.iter().zip(read).enumerate() {
        prop_assert!(
            same_record(w, r),
            "record {}: wrote {:?}, read {:?}",
            index,
            w,
            r
        );
    }
    Ok(())
}

fn collect(
    records: impl Iterator<Item = Result<Record, FormatError>>,
) -> Result<Vec<Record>, TestCaseError> {
    records
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

fn finite() -> BoxedStrategy<f32> {
    any::<f32>()
        .prop_filter("finite", |v| v.is_finite())
        .boxed()
}

/// Sorted, distinct indices below `dim` with a value each.
fn sparse_entries(
    dim: u32,
    value: BoxedStrategy<f32>,
) -> impl Strategy<Value = (Vec<u32>, Vec<f32>)> {
    proptest::collection::btree_map(0..dim, value, 0..12)
        .prop_map(|entries| entries.into_iter().unzip())
}

fn sparse_record(value: BoxedStrategy<f32>) -> impl Strategy<Value = Record> {
    (1u32..5000)
        .prop_flat_map(move |dim| (Just(dim), sparse_entries(dim, value.clone())))
        .prop_map(|(dim, (indices, values))| Record {
            features: Features::Sparse {
                indices,
                values,
                dim: Some(dim as usize),
            },
            label: None,
            weight: None,
        })
}

/// A CSV table: records sharing one layout (label or not, weight or not, feature count).
fn csv_table() -> impl Strategy<Value = (bool, bool, Vec<Record>)> {
    (any::<bool>(), any::<bool>(), 0usize..8)
        .prop_filter("a row needs at least one field", |(label, weight, dim)| {
            *label || *weight || *dim > 0
        })
        .prop_flat_map(|(label, weight, dim)| {
            let record = (
                proptest::collection::vec(any::<f32>(), dim),
                any::<f32>(),
                any::<f32>(),
            )
                .prop_map(move |(values, l, w)| Record {
                    features: Features::Dense(values),
                    label: label.then_some(l),
                    weight: weight.then_some(w),
                });
            (
                Just(label),
                Just(weight),
                proptest::collection::vec(record, 0..20),
            )
        })
}

proptest! {
    #[test]
    fn csv_round_trips((label, weight, records) in csv_table()) {
        let mut writer = CsvWriter::new(Vec::new());
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let options = CsvOptions { label_size: usize::from(label), weight_column: weight, ..Default::default() };
        let read = collect(CsvReader::new(&bytes[..], "generated.csv", options))?;
        assert_same(&records, &read)?;
    }

    #[test]
    fn libsvm_round_trips(
        records in proptest::collection::vec(
            (sparse_record(any::<f32>().prop_filter("libsvm leaves NaN out", |v| !v.is_nan()).boxed()),
             any::<f32>(), proptest::option::of(any::<f32>())),
            0..20),
        one_based in any::<bool>(),
    ) {
        let records: Vec<Record> = records
            .into_iter()
            .map(|(record, label, weight)| Record {
                features: match record.features {
                    Features::Sparse { indices, values, .. } => Features::Sparse { indices, values, dim: None },
                    dense => dense,
                },
                label: Some(label),
                weight,
            })
            .collect();
        let mut writer = if one_based { LibsvmWriter::one_based(Vec::new()) } else { LibsvmWriter::new(Vec::new()) };
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let indexing = if one_based { Indexing::OneBased } else { Indexing::ZeroBased };
        let read = collect(LibsvmReader::with_options(&bytes[..], "generated.libsvm", LibsvmOptions { indexing }))?;
        assert_same(&records, &read)?;
    }

    #[test]
    fn recordio_round_trips(
        records in proptest::collection::vec(
            (prop_oneof![
                proptest::collection::vec(any::<f32>(), 0..10).prop_map(Features::Dense),
                sparse_record(any::<f32>().boxed()).prop_map(|r| r.features),
            ], proptest::option::of(any::<f32>())),
            0..20),
        double in any::<bool>(),
    ) {
        let records: Vec<Record> = records
            .into_iter()
            .map(|(features, label)| Record { features, label, weight: None })
            .collect();
        let tensor = if double { TensorType::Float64 } else { TensorType::Float32 };
        let mut writer = RecordIoWriter::with_tensor_types(Vec::new(), tensor, tensor);
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        prop_assert_eq!(bytes.len() % 4, 0);
        let read = collect(RecordIoReader::new(&bytes[..], "generated.rec"))?;
        assert_same(&records, &read)?;
    }

    #[test]
    fn recordio_int32_round_trips(
        rows in proptest::collection::vec(
            (proptest::collection::vec(-(1i32 << 24)..(1 << 24), 0..10), proptest::option::of(-1000i32..1000)),
            0..20),
    ) {
        let records: Vec<Record> = rows
            .into_iter()
            .map(|(values, label)| Record::dense(label.map(|l| l as f32), values.into_iter().map(|v| v as f32).collect()))
            .collect();
        let mut writer = RecordIoWriter::with_tensor_types(Vec::new(), TensorType::Int32, TensorType::Int32);
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let read = collect(RecordIoReader::new(&bytes[..], "generated.rec"))?;
        assert_same(&records, &read)?;
    }

    #[test]
    fn json_lines_and_requests_round_trip(
        records in proptest::collection::vec(
            (prop_oneof![
                proptest::collection::vec(finite(), 1..10).prop_map(Features::Dense),
                sparse_record(finite()).prop_map(|r| r.features),
            ], proptest::option::of(finite()), proptest::option::of(finite())),
            0..20),
    ) {
        let records: Vec<Record> = records
            .into_iter()
            .map(|(features, label, weight)| Record { features, label, weight })
            .collect();
        let mut writer = JsonLinesWriter::new(Vec::new());
        for record in &records {
            writer.write_record(record).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let read = collect(JsonLinesReader::new(&bytes[..], "generated.jsonl"))?;
        assert_same(&records, &read)?;

        let text = String::from_utf8(bytes).unwrap();
        let request = format!("{{\"instances\": [{}]}}", text.lines().collect::<Vec<_>>().join(","));
        let read = read_json_request(request.as_bytes(), "request").map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_same(&records, &read)?;
    }
}

#[test]
fn open_reader_dispatches_on_content_type() {
    let cases: [(&str, &[u8]); 5] = [
        ("text/csv", b"1,2,3\n"),
        ("text/libsvm", b"1 0:2 1:3\n"),
        (
            "application/jsonlines",
            b"{\"features\": [2, 3], \"label\": 1}\n",
        ),
        (
            "application/json",
            b"{\"instances\": [{\"features\": [2, 3], \"label\": 1}]}",
        ),
        ("application/x-recordio-protobuf", &[]),
    ];
    let mut recordio = RecordIoWriter::new(Vec::new());
    recordio
        .write_record(&Record::dense(Some(1.0), vec![2.0, 3.0]))
        .unwrap();
    let recordio = recordio.into_inner().unwrap();
    for (mime, bytes) in cases {
        let bytes = if bytes.is_empty() {
            &recordio[..]
        } else {
            bytes
        };
        let content_type = ContentType::parse(mime).unwrap();
        let records: Vec<Record> = open_reader(&content_type, bytes, mime)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 1, "{mime}");
        assert_eq!(records[0].label, Some(1.0), "{mime}");
        let mut dense = [0.0; 2];
        records[0].features.write_dense(&mut dense);
        assert_eq!(dense, [2.0, 3.0], "{mime}");
    }
}
