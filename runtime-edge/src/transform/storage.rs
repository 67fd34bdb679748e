//! Where inputs come from and outputs go: local files and folders, or S3 (`s3://bucket/prefix`, feature `s3`).
//!
//! S3 is reached through object_store's client configured from the standard environment: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (an S3 API
//! server other than AWS's; plain `http://` endpoints are allowed when named explicitly) and `AWS_ALLOW_HTTP`.
//! Objects are read as a stream and written as multipart uploads, which only become visible once complete.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::TransformError;

/// Suffix of an output still being written (local folders).
pub const PARTIAL_SUFFIX: &str = ".tern-partial";
/// Suffix of a finished output.
pub const OUTPUT_SUFFIX: &str = ".out";

/// A file or folder, or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `s3://bucket[/prefix]` or a local path.
    pub fn parse(text: &str) -> Result<Location, TransformError> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(TransformError::Location {
                        location: text.to_string(),
                        message: "expected s3://bucket/prefix".to_string(),
                    });
                }
                Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_end_matches('/').to_string(),
                })
            }
            None => Ok(Location::Local(PathBuf::from(text))),
        }
    }
}

impl Location {
    /// Whether `item` lies inside this location (an output folder inside the input folder holds the job's own
    /// outputs, which are never inputs).
    pub fn holds(&self, item: &InputItem) -> bool {
        match (self, &item.source) {
            (Location::Local(dir), Source::File(file)) => {
                match (dir.canonicalize(), file.canonicalize()) {
                    (Ok(dir), Ok(file)) => file.starts_with(dir),
                    _ => false,
                }
            }
            #[cfg(feature = "s3")]
            (Location::S3 { bucket, prefix }, Source::Object { bucket: from, meta }) => {
                bucket == from
                    && (prefix.is_empty()
                        || meta.location.as_ref().starts_with(&format!("{prefix}/")))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// One input object.
#[derive(Debug, Clone)]
pub struct InputItem {
    /// The name relative to the input location (`a/b.csv`); the output is `<name>.out`.
    pub name: String,
    /// The full name for messages (a path or an `s3://` URL).
    pub display: String,
    pub size: u64,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    #[cfg(feature = "s3")]
    Object {
        bucket: String,
        meta: object_store::ObjectMeta,
    },
}

/// An output being written; nothing is visible under its final name until [`OutputSink::commit`].
pub struct OutputSink {
    inner: SinkInner,
}

enum SinkInner {
    File {
        writer: std::io::BufWriter<fs::File>,
        partial: PathBuf,
        target: PathBuf,
    },
    #[cfg(feature = "s3")]
    Object {
        writer: tokio_util::io::SyncIoBridge<object_store::buffered::BufWriter>,
        target: String,
        handle: tokio::runtime::Handle,
    },
}

impl Write for OutputSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            SinkInner::File { writer, .. } => writer.write(buf),
            #[cfg(feature = "s3")]
            SinkInner::Object { writer, .. } => writer.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            SinkInner::File { writer, .. } => writer.flush(),
            #[cfg(feature = "s3")]
            SinkInner::Object { writer, .. } => writer.flush(),
        }
    }
}

impl OutputSink {
    /// Makes the output visible under its final name: fsync + rename, or completing the multipart upload.
    pub fn commit(self) -> Result<(), TransformError> {
        match self.inner {
            SinkInner::File {
                writer,
                partial,
                target,
            } => {
                let write_error = |error: std::io::Error| TransformError::Write {
                    target: target.display().to_string(),
                    error,
                };
                let file = writer
                    .into_inner()
                    .map_err(|e| write_error(e.into_error()))?;
                file.sync_all().map_err(write_error)?;
                fs::rename(&partial, &target).map_err(write_error)
            }
            #[cfg(feature = "s3")]
            SinkInner::Object {
                mut writer, target, ..
            } => writer
                .shutdown()
                .map_err(|error| TransformError::Write { target, error }),
        }
    }

    /// Discards what was written (removes the partial file, aborts the upload).
    pub fn abort(self) {
        match self.inner {
            SinkInner::File {
                writer, partial, ..
            } => {
                drop(writer);
                let _ = fs::remove_file(partial);
            }
            #[cfg(feature = "s3")]
            SinkInner::Object { writer, handle, .. } => {
                let mut inner = writer.into_inner();
                let _ = handle.block_on(inner.abort());
            }
        }
    }
}

/// Access to the locations of one job.
pub struct Store {
    #[cfg(feature = "s3")]
    s3: Option<s3::S3Store>,
}

impl Store {
    /// Opens what `input` and `output` need (an S3 client when either is `s3://`; both must then be in the same
    /// bucket or the client is shared across buckets of one endpoint).
    pub fn for_locations(input: &Location, output: &Location) -> Result<Store, TransformError> {
        let needs_s3 =
            matches!(input, Location::S3 { .. }) || matches!(output, Location::S3 { .. });
        #[cfg(feature = "s3")]
        {
            Ok(Store {
                s3: if needs_s3 {
                    Some(s3::S3Store::new()?)
                } else {
                    None
                },
            })
        }
        #[cfg(not(feature = "s3"))]
        {
            if needs_s3 {
                return Err(TransformError::Location {
                    location: format!("{input} / {output}"),
                    message: "s3:// locations need tern-edge built with the `s3` feature"
                        .to_string(),
                });
            }
            Ok(Store {})
        }
    }

    /// Every input object under `input`, sorted by name. A file is one input; a folder is every file under it
    /// (recursively, hidden files excluded); an S3 prefix is every object under it.
    pub fn list_inputs(&self, input: &Location) -> Result<Vec<InputItem>, TransformError> {
        match input {
            Location::Local(path) => list_local(path),
            Location::S3 { bucket, prefix } => {
                #[cfg(feature = "s3")]
                {
                    self.s3()?.list(bucket, prefix)
                }
                #[cfg(not(feature = "s3"))]
                {
                    let _ = (bucket, prefix);
                    unreachable!("Store::for_locations refuses s3:// without the s3 feature")
                }
            }
        }
    }

    #[cfg(feature = "s3")]
    fn s3(&self) -> Result<&s3::S3Store, TransformError> {
        self.s3.as_ref().ok_or_else(|| TransformError::Location {
            location: "s3://".to_string(),
            message: "no S3 client was opened for this job".to_string(),
        })
    }

    /// Opens an input for streaming.
    pub fn open(&self, item: &InputItem) -> Result<Box<dyn BufRead + Send>, TransformError> {
        match &item.source {
            Source::File(path) => {
                let file = fs::File::open(path).map_err(|error| TransformError::Read {
                    source_name: item.display.clone(),
                    error,
                })?;
                Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
            }
            #[cfg(feature = "s3")]
            Source::Object { bucket, meta } => self.s3()?.open(bucket, meta),
        }
    }

    /// Whether `<output>/<name>.out` exists (a finished output of an earlier run).
    pub fn output_exists(&self, output: &Location, name: &str) -> Result<bool, TransformError> {
        match output {
            Location::Local(dir) => Ok(dir.join(format!("{name}{OUTPUT_SUFFIX}")).is_file()),
            Location::S3 { bucket, prefix } => {
                #[cfg(feature = "s3")]
                {
                    self.s3()?
                        .exists(bucket, &s3::key(prefix, &format!("{name}{OUTPUT_SUFFIX}")))
                }
                #[cfg(not(feature = "s3"))]
                {
                    let _ = (bucket, prefix);
                    unreachable!("Store::for_locations refuses s3:// without the s3 feature")
                }
            }
        }
    }

    /// Starts writing `<output>/<name>.out`.
    pub fn create_output(
        &self,
        output: &Location,
        name: &str,
    ) -> Result<OutputSink, TransformError> {
        match output {
            Location::Local(dir) => {
                let target = dir.join(format!("{name}{OUTPUT_SUFFIX}"));
                let partial = dir.join(format!("{name}{OUTPUT_SUFFIX}{PARTIAL_SUFFIX}"));
                let write_error = |error| TransformError::Write {
                    target: target.display().to_string(),
                    error,
                };
                if let Some(parent) = partial.parent() {
                    fs::create_dir_all(parent).map_err(write_error)?;
                }
                let file = fs::File::create(&partial).map_err(write_error)?;
                Ok(OutputSink {
                    inner: SinkInner::File {
                        writer: std::io::BufWriter::with_capacity(1 << 16, file),
                        partial,
                        target,
                    },
                })
            }
            Location::S3 { bucket, prefix } => {
                #[cfg(feature = "s3")]
                {
                    self.s3()?
                        .create(bucket, &s3::key(prefix, &format!("{name}{OUTPUT_SUFFIX}")))
                }
                #[cfg(not(feature = "s3"))]
                {
                    let _ = (bucket, prefix);
                    unreachable!("Store::for_locations refuses s3:// without the s3 feature")
                }
            }
        }
    }

    /// Removes partial outputs an interrupted run left in a local output folder; returns how many. (An interrupted
    /// S3 upload was never completed, so there is nothing visible to remove.)
    pub fn remove_partials(&self, output: &Location) -> Result<usize, TransformError> {
        let Location::Local(dir) = output else {
            return Ok(0);
        };
        if !dir.is_dir() {
            return Ok(0);
        }
        let mut removed = 0;
        for path in walk(dir)? {
            if path.to_string_lossy().ends_with(PARTIAL_SUFFIX) {
                fs::remove_file(&path).map_err(|error| TransformError::Write {
                    target: path.display().to_string(),
                    error,
                })?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn list_local(path: &Path) -> Result<Vec<InputItem>, TransformError> {
    let read_error = |error| TransformError::Read {
        source_name: path.display().to_string(),
        error,
    };
    let metadata = fs::metadata(path).map_err(read_error)?;
    let item = |file: PathBuf, name: String| -> Result<InputItem, TransformError> {
        let size = fs::metadata(&file)
            .map_err(|error| TransformError::Read {
                source_name: file.display().to_string(),
                error,
            })?
            .len();
        Ok(InputItem {
            name,
            display: file.display().to_string(),
            size,
            source: Source::File(file),
        })
    };
    if metadata.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".to_string());
        return Ok(vec![item(path.to_path_buf(), name)?]);
    }
    let mut items = Vec::new();
    for file in walk(path)? {
        let relative = file.strip_prefix(path).unwrap_or(&file);
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        items.push(item(file, name)?);
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}

/// Every regular file under `dir`, hidden ones (a name starting with '.') excluded.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, TransformError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = fs::read_dir(&folder).map_err(|error| TransformError::Read {
            source_name: folder.display().to_string(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| TransformError::Read {
                source_name: folder.display().to_string(),
                error,
            })?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(|error| TransformError::Read {
                source_name: path.display().to_string(),
                error,
            })?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    Ok(files)
}

#[cfg(feature = "s3")]
mod s3 {
    use std::collections::HashMap;
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};

    use futures_util::TryStreamExt;
    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

    use super::{InputItem, OutputSink, SinkInner, Source};
    use crate::transform::TransformError;

    /// `prefix/name`, or `name` under the bucket's root.
    pub fn key(prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    }

    /// S3 clients (one per bucket) and the runtime that drives them.
    pub struct S3Store {
        runtime: tokio::runtime::Runtime,
        buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    }

    fn storage_error(location: String, error: impl std::fmt::Display) -> TransformError {
        TransformError::Storage {
            location,
            message: error.to_string(),
        }
    }

    impl S3Store {
        pub fn new() -> Result<S3Store, TransformError> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| storage_error("s3://".to_string(), e))?;
            Ok(S3Store {
                runtime,
                buckets: Mutex::default(),
            })
        }

        fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, TransformError> {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(store) = buckets.get(bucket) {
                return Ok(store.clone());
            }
            let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
                .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                .ok();
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = endpoint {
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                builder = builder.with_endpoint(endpoint);
            }
            let store: Arc<dyn ObjectStore> = Arc::new(
                builder
                    .build()
                    .map_err(|e| storage_error(format!("s3://{bucket}"), e))?,
            );
            buckets.insert(bucket.to_string(), store.clone());
            Ok(store)
        }

        pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<InputItem>, TransformError> {
            let store = self.bucket(bucket)?;
            let location = format!("s3://{bucket}/{prefix}");
            let listing_prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
            let mut objects: Vec<ObjectMeta> = self
                .runtime
                .block_on(store.list(listing_prefix.as_ref()).try_collect())
                .map_err(|e| storage_error(location.clone(), e))?;
            if objects.is_empty() && !prefix.is_empty() {
                // The prefix may name one object.
                if let Ok(meta) = self.runtime.block_on(store.head(&ObjectPath::from(prefix))) {
                    objects.push(meta);
                }
            }
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            Ok(objects
                .into_iter()
                .map(|meta| {
                    let full = meta.location.to_string();
                    let name = match full.strip_prefix(prefix) {
                        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => {
                            rest[1..].to_string()
                        }
                        _ if full == prefix => full.rsplit('/').next().unwrap_or(&full).to_string(),
                        _ => full.clone(),
                    };
                    InputItem {
                        name,
                        display: format!("s3://{bucket}/{full}"),
                        size: meta.size,
                        source: Source::Object {
                            bucket: bucket.to_string(),
                            meta,
                        },
                    }
                })
                .filter(|item| !item.name.is_empty())
                .collect())
        }

        pub fn open(
            &self,
            bucket: &str,
            meta: &ObjectMeta,
        ) -> Result<Box<dyn BufRead + Send>, TransformError> {
            let store = self.bucket(bucket)?;
            let reader = object_store::buffered::BufReader::with_capacity(store, meta, 1 << 20);
            Ok(Box::new(std::io::BufReader::new(
                tokio_util::io::SyncIoBridge::new_with_handle(
                    reader,
                    self.runtime.handle().clone(),
                ),
            )))
        }

        pub fn exists(&self, bucket: &str, key: &str) -> Result<bool, TransformError> {
            let store = self.bucket(bucket)?;
            match self.runtime.block_on(store.head(&ObjectPath::from(key))) {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(storage_error(format!("s3://{bucket}/{key}"), e)),
            }
        }

        pub fn create(&self, bucket: &str, key: &str) -> Result<OutputSink, TransformError> {
            let store = self.bucket(bucket)?;
            let handle = self.runtime.handle().clone();
            let writer = object_store::buffered::BufWriter::new(store, ObjectPath::from(key));
            Ok(OutputSink {
                inner: SinkInner::Object {
                    writer: tokio_util::io::SyncIoBridge::new_with_handle(writer, handle.clone()),
                    target: format!("s3://{bucket}/{key}"),
                    handle,
                },
            })
        }
    }
}
