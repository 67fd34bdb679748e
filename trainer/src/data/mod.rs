//! Training data: channels (File mode folders/files or Pipe mode FIFOs) streamed as records, and in-memory
//! [`Dataset`]s (dense or CSR sparse) for algorithms that need random access.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView1, Axis};
use tern_formats::{ContentType, Features, Record, RecordStream};

use crate::TrainError;

pub mod batches;

/// A sparse matrix in compressed-row form; absent entries are 0 for linear models and missing for trees.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    /// Row `i`'s entries are `indices[indptr[i]..indptr[i+1]]` / `values[…]`; `indptr.len() == n_rows + 1`.
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl CsrMatrix {
    /// An empty matrix with `n_cols` columns.
    pub fn new(n_cols: usize) -> Self {
        CsrMatrix {
            n_rows: 0,
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends a row given as sorted (index, value) pairs.
    pub fn push_row(&mut self, indices: &[u32], values: &[f32]) {
        self.indices.extend_from_slice(indices);
        self.values.extend_from_slice(values);
        self.indptr.push(self.indices.len());
        self.n_rows += 1;
    }

    /// Row `i` as (indices, values).
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let range = self.indptr[i]..self.indptr[i + 1];
        (&self.indices[range.clone()], &self.values[range])
    }
}

/// The features of many examples.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureMatrix {
    /// Rows × features; NaN marks a missing value.
    Dense(Array2<f32>),
    /// Rows × features, compressed rows.
    Sparse(CsrMatrix),
}

impl FeatureMatrix {
    pub fn n_rows(&self) -> usize {
        match self {
            FeatureMatrix::Dense(m) => m.nrows(),
            FeatureMatrix::Sparse(m) => m.n_rows,
        }
    }

    pub fn n_cols(&self) -> usize {
        match self {
            FeatureMatrix::Dense(m) => m.ncols(),
            FeatureMatrix::Sparse(m) => m.n_cols,
        }
    }

    /// Row `i` as a [`Row`] view.
    pub fn row(&self, i: usize) -> Row<'_> {
        match self {
            FeatureMatrix::Dense(m) => Row::Dense(m.row(i)),
            FeatureMatrix::Sparse(m) => {
                let (indices, values) = m.row(i);
                Row::Sparse { indices, values }
            }
        }
    }

    /// The rows at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> FeatureMatrix {
        match self {
            FeatureMatrix::Dense(m) => FeatureMatrix::Dense(m.select(Axis(0), rows)),
            FeatureMatrix::Sparse(m) => {
                let mut out = CsrMatrix::new(m.n_cols);
                for &i in rows {
                    let (indices, values) = m.row(i);
                    out.push_row(indices, values);
                }
                FeatureMatrix::Sparse(out)
            }
        }
    }

    /// A dense copy (sparse absent entries become 0).
    pub fn to_dense(&self) -> Array2<f32> {
        match self {
            FeatureMatrix::Dense(m) => m.clone(),
            FeatureMatrix::Sparse(m) => {
                let mut out = Array2::zeros((m.n_rows, m.n_cols));
                for i in 0..m.n_rows {
                    let (indices, values) = m.row(i);
                    for (&j, &v) in indices.iter().zip(values) {
                        out[[i, j as usize]] = v;
                    }
                }
                out
            }
        }
    }
}

/// One row of a [`FeatureMatrix`].
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    Dense(ArrayView1<'a, f32>),
    Sparse {
        indices: &'a [u32],
        values: &'a [f32],
    },
}

impl Row<'_> {
    /// The dot product with a dense weight vector (sparse absent entries count as 0).
    pub fn dot(&self, weights: &[f32]) -> f32 {
        match self {
            Row::Dense(values) => values.iter().zip(weights).map(|(x, w)| x * w).sum(),
            Row::Sparse { indices, values } => indices
                .iter()
                .zip(*values)
                .map(|(&j, &x)| x * weights[j as usize])
                .sum(),
        }
    }

    /// Calls `f(feature_index, value)` for every stored entry (all of them when dense).
    pub fn for_each(&self, mut f: impl FnMut(usize, f32)) {
        match self {
            Row::Dense(values) => values.iter().enumerate().for_each(|(j, &x)| f(j, x)),
            Row::Sparse { indices, values } => indices
                .iter()
                .zip(*values)
                .for_each(|(&j, &x)| f(j as usize, x)),
        }
    }
}

/// Examples in memory: features, labels and optional instance weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub features: FeatureMatrix,
    /// One label per row; `None` for unlabelled data (inference rows).
    pub labels: Option<Vec<f32>>,
    /// One weight per row; `None` means every weight is 1.
    pub weights: Option<Vec<f32>>,
}

impl Dataset {
    pub fn n_rows(&self) -> usize {
        self.features.n_rows()
    }

    pub fn n_features(&self) -> usize {
        self.features.n_cols()
    }

    /// Where the feature count came from, for errors about sizes: the record holding the highest sparse index
    /// (or declaring the widest shape), or the dense rows' width, in `channel`.
    pub fn width_origin(&self, channel: &str) -> String {
        match &self.features {
            FeatureMatrix::Dense(m) => format!("the {} columns of channel {channel}", m.ncols()),
            FeatureMatrix::Sparse(m) => {
                let widest = (0..m.n_rows)
                    .find(|&i| m.row(i).0.last().map(|&j| j as usize + 1) == Some(m.n_cols));
                match widest {
                    Some(i) => format!(
                        "feature index {} in record {} of channel {channel}",
                        m.n_cols - 1,
                        i + 1
                    ),
                    None => format!("the declared shape [{}] in channel {channel}", m.n_cols),
                }
            }
        }
    }

    /// The labels, or a [`TrainError::Data`] naming `channel` when the data carry none.
    pub fn require_labels(&self, channel: &str) -> Result<&[f32], TrainError> {
        self.labels.as_deref().ok_or_else(|| {
            TrainError::data(
                channel,
                "the records carry no labels; this algorithm needs them",
            )
        })
    }

    /// The rows at `rows`, in that order (k-fold splits, subsamples).
    pub fn select(&self, rows: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(rows),
            labels: self
                .labels
                .as_ref()
                .map(|l| rows.iter().map(|&i| l[i]).collect()),
            weights: self
                .weights
                .as_ref()
                .map(|w| rows.iter().map(|&i| w[i]).collect()),
        }
    }

    /// Reads every record of `stream` into memory. Dense records give a dense matrix, sparse ones a CSR matrix;
    /// `feature_dim`, when given, is enforced on every record (else the first record's width is, for dense data).
    /// Fails on an empty stream, a ragged row, or labels on some records and not others.
    pub fn from_records(
        stream: RecordStream<'_>,
        channel: &str,
        feature_dim: Option<usize>,
    ) -> Result<Dataset, TrainError> {
        let mut builder = DatasetBuilder::new(channel, feature_dim);
        for record in stream {
            builder.push(record?)?;
        }
        builder.finish()
    }
}

/// Accumulates records into a [`Dataset`], checking each as it comes.
pub struct DatasetBuilder {
    channel: String,
    feature_dim: Option<usize>,
    dense: Vec<f32>,
    sparse: Option<CsrMatrix>,
    labels: Vec<f32>,
    weights: Vec<f32>,
    any_weight: bool,
    labelled: Option<bool>,
    rows: usize,
    max_sparse_dim: usize,
}

impl DatasetBuilder {
    /// A builder for records of `channel`, all of width `feature_dim` when given.
    pub fn new(channel: &str, feature_dim: Option<usize>) -> Self {
        DatasetBuilder {
            channel: channel.to_string(),
            feature_dim,
            dense: Vec::new(),
            sparse: None,
            labels: Vec::new(),
            weights: Vec::new(),
            any_weight: false,
            labelled: None,
            rows: 0,
            max_sparse_dim: 0,
        }
    }

    /// Adds one record, failing with the record number when it does not fit the ones before.
    pub fn push(&mut self, record: Record) -> Result<(), TrainError> {
        let index = self.rows + 1;
        let has_label = record.label.is_some();
        match self.labelled {
            None => self.labelled = Some(has_label),
            Some(expected) if expected != has_label => {
                return Err(TrainError::data(
                    &self.channel,
                    format!(
                        "record {index} {} a label but the records before it {}",
                        if has_label { "has" } else { "lacks" },
                        if expected { "have one" } else { "do not" }
                    ),
                ))
            }
            Some(_) => {}
        }
        match record.features {
            Features::Dense(values) => {
                if self.sparse.is_some() {
                    return Err(TrainError::data(
                        &self.channel,
                        format!("record {index} is dense but the records before it are sparse"),
                    ));
                }
                let expected = *self.feature_dim.get_or_insert(values.len());
                if values.len() != expected {
                    return Err(TrainError::data(
                        &self.channel,
                        format!(
                            "record {index} has {} features, expected {expected} (feature_dim)",
                            values.len()
                        ),
                    ));
                }
                self.dense.extend_from_slice(&values);
            }
            Features::Sparse {
                indices,
                values,
                dim,
            } => {
                if self.rows > 0 && self.sparse.is_none() {
                    return Err(TrainError::data(
                        &self.channel,
                        format!("record {index} is sparse but the records before it are dense"),
                    ));
                }
                let width = dim.unwrap_or_else(|| indices.last().map_or(0, |&i| i as usize + 1));
                if let (Some(expected), Some(declared)) = (self.feature_dim, dim) {
                    if declared != expected {
                        return Err(TrainError::data(
                            &self.channel,
                            format!("record {index} declares shape [{declared}], expected [{expected}] (feature_dim)"),
                        ));
                    }
                }
                if let (Some(expected), Some(&last)) = (self.feature_dim, indices.last()) {
                    if last as usize >= expected {
                        return Err(TrainError::data(
                            &self.channel,
                            format!("record {index} has feature index {last}, beyond feature_dim {expected}"),
                        ));
                    }
                }
                self.max_sparse_dim = self.max_sparse_dim.max(width);
                self.sparse
                    .get_or_insert_with(|| CsrMatrix::new(0))
                    .push_row(&indices, &values);
            }
        }
        if let Some(label) = record.label {
            if !label.is_finite() {
                return Err(TrainError::data(
                    &self.channel,
                    format!("record {index} has label {label}, expected a finite number"),
                ));
            }
            self.labels.push(label);
        }
        self.any_weight |= record.weight.is_some();
        self.weights.push(record.weight.unwrap_or(1.0));
        self.rows += 1;
        Ok(())
    }

    /// The number of records added so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The finished dataset; an empty channel is an error.
    pub fn finish(self) -> Result<Dataset, TrainError> {
        if self.rows == 0 {
            return Err(TrainError::data(
                &self.channel,
                "the channel holds no records",
            ));
        }
        let features = match self.sparse {
            Some(mut csr) => {
                csr.n_cols = self.feature_dim.unwrap_or(self.max_sparse_dim);
                FeatureMatrix::Sparse(csr)
            }
            None => {
                let cols = self.feature_dim.unwrap_or(0);
                let matrix = Array2::from_shape_vec((self.rows, cols), self.dense)
                    .map_err(|e| TrainError::data(&self.channel, e.to_string()))?;
                FeatureMatrix::Dense(matrix)
            }
        };
        Ok(Dataset {
            features,
            labels: (self.labelled == Some(true)).then_some(self.labels),
            weights: self.any_weight.then_some(self.weights),
        })
    }
}

/// How a channel's data arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelSource {
    /// File mode: these files, read in order on every pass.
    Files(Vec<PathBuf>),
    /// Pipe mode: FIFOs `<dir>/<name>_<epoch>`, one per pass, each read once.
    Pipe { dir: PathBuf, name: String },
    /// Records already in memory (k-fold cross-validation retrains on folds this way).
    Memory(std::sync::Arc<Dataset>),
}

/// One SageMaker input channel (`train`, `validation`, `test`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub content_type: ContentType,
    pub source: ChannelSource,
}

impl Channel {
    /// A File-mode channel over `path` (a file, or a folder whose files are read in name order, hidden files and
    /// SageMaker's `*.manifest` skipped). The content type is `content_type`, else guessed from the extension,
    /// else `text/csv`.
    pub fn from_path(
        name: &str,
        path: &Path,
        content_type: Option<ContentType>,
    ) -> Result<Channel, TrainError> {
        let files = list_files(path)?;
        if files.is_empty() {
            return Err(TrainError::data(
                name,
                format!("{} holds no data files", path.display()),
            ));
        }
        let content_type = content_type
            .or_else(|| ContentType::from_extension(&files[0]))
            .unwrap_or(ContentType::Csv { label_size: 1 });
        Ok(Channel {
            name: name.to_string(),
            content_type,
            source: ChannelSource::Files(files),
        })
    }

    /// Opens pass `epoch` (0-based) as one stream of records: in File mode all files again; in Pipe mode the FIFO
    /// `<name>_<epoch>`, waiting up to a minute for it to appear as SageMaker's containers do.
    pub fn open(&self, epoch: usize) -> Result<RecordStream<'static>, TrainError> {
        match &self.source {
            ChannelSource::Files(files) => {
                let content_type = self.content_type.clone();
                let mut streams = Vec::with_capacity(files.len());
                for file in files {
                    streams.push(open_file(file, &content_type)?);
                }
                Ok(Box::new(streams.into_iter().flatten()))
            }
            ChannelSource::Pipe { dir, name } => {
                let path = dir.join(format!("{name}_{epoch}"));
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while !path.exists() {
                    if std::time::Instant::now() > deadline {
                        return Err(TrainError::data(
                            name,
                            format!(
                                "Pipe mode FIFO {} did not appear within 60 s",
                                path.display()
                            ),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                open_file(&path, &self.content_type)
            }
            ChannelSource::Memory(dataset) => Ok(Box::new(DatasetRecords {
                dataset: dataset.clone(),
                next: 0,
            })),
        }
    }

    /// An in-memory channel over `dataset`.
    pub fn from_dataset(name: &str, dataset: Dataset) -> Channel {
        Channel {
            name: name.to_string(),
            content_type: ContentType::Csv { label_size: 1 },
            source: ChannelSource::Memory(std::sync::Arc::new(dataset)),
        }
    }

    /// Reads pass 0 into memory, checking every record against `feature_dim` when given.
    pub fn load(&self, feature_dim: Option<usize>) -> Result<Dataset, TrainError> {
        if let ChannelSource::Memory(dataset) = &self.source {
            if let Some(expected) = feature_dim.filter(|&d| d != dataset.n_features()) {
                return Err(TrainError::data(
                    &self.name,
                    format!(
                        "records have {} features, expected {expected} (feature_dim)",
                        dataset.n_features()
                    ),
                ));
            }
            return Ok(dataset.as_ref().clone());
        }
        Dataset::from_records(self.open(0)?, &self.name, feature_dim)
    }
}

/// Streams an in-memory dataset back as records.
struct DatasetRecords {
    dataset: std::sync::Arc<Dataset>,
    next: usize,
}

impl Iterator for DatasetRecords {
    type Item = Result<Record, tern_formats::FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.next;
        if i >= self.dataset.n_rows() {
            return None;
        }
        self.next += 1;
        let features = match self.dataset.features.row(i) {
            Row::Dense(values) => Features::Dense(values.to_vec()),
            Row::Sparse { indices, values } => Features::Sparse {
                indices: indices.to_vec(),
                values: values.to_vec(),
                dim: Some(self.dataset.n_features()),
            },
        };
        Some(Ok(Record {
            features,
            label: self.dataset.labels.as_ref().map(|l| l[i]),
            weight: self.dataset.weights.as_ref().map(|w| w[i]),
        }))
    }
}

fn open_file(path: &Path, content_type: &ContentType) -> Result<RecordStream<'static>, TrainError> {
    let file = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let name = path.display().to_string();
    let reader =
        tern_formats::open_reader(content_type, BufReader::with_capacity(1 << 20, file), &name)?;
    Ok(prefetch(reader))
}

/// Records per chunk handed from the parsing thread to the consumer, and chunks in flight: memory stays bounded by
/// `PREFETCH_CHUNK * PREFETCH_DEPTH` records.
const PREFETCH_CHUNK: usize = 512;
const PREFETCH_DEPTH: usize = 8;

type Chunk = Vec<Result<Record, tern_formats::FormatError>>;

/// Parses `stream` on its own thread, a bounded queue ahead of the consumer, so parsing and training overlap. Records
/// arrive in the same order, an error last; the thread ends when the stream does or the consumer hangs up.
pub fn prefetch(stream: RecordStream<'static>) -> RecordStream<'static> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Chunk>(PREFETCH_DEPTH);
    std::thread::spawn(move || {
        let mut chunk = Vec::with_capacity(PREFETCH_CHUNK);
        for item in stream {
            let failed = item.is_err();
            chunk.push(item);
            if chunk.len() == PREFETCH_CHUNK || failed {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(PREFETCH_CHUNK));
                if sender.send(full).is_err() || failed {
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = sender.send(chunk);
        }
    });
    Box::new(receiver.into_iter().flatten())
}

/// The data files under `path`: the file itself, or a folder's regular files (recursively) in name order.
fn list_files(path: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let meta = std::fs::metadata(path).map_err(|e| TrainError::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
            let entry = entry.map_err(|e| TrainError::io(&dir, e))?;
            let entry_path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let manifest = entry_path.extension().is_some_and(|e| e == "manifest");
            if hidden || manifest {
                continue;
            }
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One input channel an algorithm reads, as SageMaker documents it for the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The channel's name: the folder under `/opt/ml/input/data/`, the key of `inputdataconfig.json`.
    pub name: &'static str,
    /// Whether a job without it fails.
    pub required: bool,
    /// The content types (MIME types without parameters) the channel may hold.
    pub content_types: &'static [&'static str],
    /// What the algorithm does with it, for `tern algorithms` and errors.
    pub purpose: &'static str,
}

impl ChannelSpec {
    /// A channel every job must have.
    pub const fn required(
        name: &'static str,
        content_types: &'static [&'static str],
        purpose: &'static str,
    ) -> Self {
        ChannelSpec {
            name,
            required: true,
            content_types,
            purpose,
        }
    }

    /// A channel a job may have.
    pub const fn optional(
        name: &'static str,
        content_types: &'static [&'static str],
        purpose: &'static str,
    ) -> Self {
        ChannelSpec {
            name,
            required: false,
            content_types,
            purpose,
        }
    }
}

/// The channels of one training job, by name. Every job has a `train` channel (SageMaker's built-ins all do);
/// which others it may have is the algorithm's declaration ([`TrainingInput::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingInput {
    channels: BTreeMap<String, Channel>,
}

/// The name of the channel every job has.
pub const TRAIN: &str = "train";

impl TrainingInput {
    /// A job reading `train` (whatever its own name, it is the job's `train` channel).
    pub fn new(mut train: Channel) -> Self {
        train.name = TRAIN.to_string();
        TrainingInput {
            channels: BTreeMap::from([(TRAIN.to_string(), train)]),
        }
    }

    /// The input with `channel` added under its name (replacing one of the same name); `None` adds nothing.
    pub fn with(mut self, channel: impl Into<Option<Channel>>) -> Self {
        if let Some(channel) = channel.into() {
            self.channels.insert(channel.name.clone(), channel);
        }
        self
    }

    /// The `train` channel.
    pub fn train(&self) -> &Channel {
        &self.channels[TRAIN]
    }

    /// The `validation` channel, when given.
    pub fn validation(&self) -> Option<&Channel> {
        self.channel("validation")
    }

    /// The `test` channel, when given.
    pub fn test(&self) -> Option<&Channel> {
        self.channel("test")
    }

    /// The channel called `name`, when given.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.get(name)
    }

    /// Every channel, by name.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
    }

    /// Checks the channels against an algorithm's declaration, before any data is read: every channel must be
    /// declared, every required one given, and each one's content type among those its declaration accepts.
    /// Errors name the channel and list what the algorithm takes.
    pub fn check(&self, algorithm: &str, specs: &[ChannelSpec]) -> Result<(), TrainError> {
        let names = || {
            specs
                .iter()
                .map(|s| {
                    if s.required {
                        format!("{} (required)", s.name)
                    } else {
                        s.name.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for channel in self.channels.values() {
            let Some(spec) = specs.iter().find(|s| s.name == channel.name) else {
                return Err(TrainError::Config(format!(
                    "channel {:?}: {algorithm} reads no such channel; its channels are {}",
                    channel.name,
                    names()
                )));
            };
            let mime = channel.content_type.mime();
            let mime = mime.split(';').next().unwrap_or_default();
            if !spec.content_types.contains(&mime) {
                return Err(TrainError::Config(format!(
                    "channel {}: {algorithm} does not train on {mime}; it accepts {}",
                    channel.name,
                    spec.content_types.join(", ")
                )));
            }
        }
        if let Some(missing) = specs
            .iter()
            .find(|s| s.required && !self.channels.contains_key(s.name))
        {
            return Err(TrainError::Config(format!(
                "{algorithm} needs channel {:?} ({}); its channels are {}",
                missing.name,
                missing.purpose,
                names()
            )));
        }
        Ok(())
    }
}

/// A [`TrainError::Data`] for a record that parses but breaks a rule of the algorithm, e.g. a label out of range.
/// `record` is 1-based.
pub fn record_error(
    channel: &str,
    record: usize,
    field: &str,
    message: impl std::fmt::Display,
) -> TrainError {
    TrainError::data(
        channel,
        format!("record {record}, field {field}: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: &[&str] = &["text/csv"];
    const SPECS: &[ChannelSpec] = &[
        ChannelSpec::required("train", TYPES, "fit"),
        ChannelSpec::required("train_lst", TYPES, "the image list"),
        ChannelSpec::optional("validation", TYPES, "scored"),
    ];

    fn channel(name: &str, content_type: ContentType) -> Channel {
        Channel {
            name: name.to_string(),
            content_type,
            source: ChannelSource::Files(Vec::new()),
        }
    }

    fn csv(name: &str) -> Channel {
        channel(name, ContentType::Csv { label_size: 1 })
    }

    #[test]
    fn channels_are_checked_against_the_declaration() {
        let input = TrainingInput::new(csv("train")).with(csv("train_lst"));
        input.check("algo", SPECS).unwrap();
        assert_eq!(input.channel("train_lst").unwrap().name, "train_lst");
        assert!(input.validation().is_none());

        let unknown = input.clone().with(csv("auxiliary")).check("algo", SPECS);
        let message = unknown.unwrap_err().to_string();
        assert!(
            message.contains("\"auxiliary\"") && message.contains("train_lst (required)"),
            "{message}"
        );

        let missing = TrainingInput::new(csv("train")).check("algo", SPECS);
        let message = missing.unwrap_err().to_string();
        assert!(
            message.contains("needs channel \"train_lst\" (the image list)"),
            "{message}"
        );

        let libsvm = input
            .with(channel("validation", ContentType::Libsvm))
            .check("algo", SPECS);
        let message = libsvm.unwrap_err().to_string();
        assert!(
            message.contains("channel validation: algo does not train on text/libsvm"),
            "{message}"
        );
    }

    #[test]
    fn the_train_channel_is_named_train_whatever_it_was_called() {
        let input = TrainingInput::new(csv("data"));
        assert_eq!(input.train().name, "train");
        assert_eq!(input.channels().count(), 1);
    }
}
