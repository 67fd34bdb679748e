//! The model artifact, `model.tar.gz`: `artifact.json` (schema version, algorithm, hyperparameters, feature schema,
//! label map, preprocessing, training metrics, provenance) and `weights.safetensors`, plus any algorithm files
//! (trees, vocabularies). Written atomically (temp file + rename) and deterministically (fixed tar metadata), so the
//! same seed gives the same bytes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The artifact schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the data and randomness of a training run came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// sha256 of each channel's bytes as read (channel name → hex digest).
    pub data_sha256: BTreeMap<String, String>,
    pub seed: Option<u64>,
    pub tern_version: String,
}

/// `artifact.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMeta {
    pub schema_version: u32,
    /// The registry name, e.g. `linear-learner`.
    pub algorithm: String,
    /// Every hyperparameter in force, as strings.
    pub hyperparameters: BTreeMap<String, String>,
    /// The number of input features the model expects.
    pub feature_dim: usize,
    /// Output class index → label text, when the model classifies.
    #[serde(default)]
    pub label_map: Option<Vec<String>>,
    /// Algorithm-defined preprocessing the runtimes must reproduce (normalisation statistics, …).
    #[serde(default)]
    pub preprocessing: serde_json::Value,
    /// Final metrics, e.g. `validation:binary_classification_accuracy` → 0.97.
    #[serde(default)]
    pub training_metrics: BTreeMap<String, f64>,
    pub provenance: Provenance,
    /// Algorithm-specific settings its loader needs (predictor type, resolved loss, threshold, …).
    #[serde(default)]
    pub model: serde_json::Value,
}

/// A float32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }
}

/// A trained model as the trainer writes it and the compiler reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub meta: ArtifactMeta,
    /// Stored in `weights.safetensors`.
    pub tensors: BTreeMap<String, Tensor>,
    /// Other files of the archive (e.g. `trees.json`), by name.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The most bytes of `artifact.json` an artifact reader takes.
pub const MAX_META_BYTES: u128 = 16 << 20;
/// How many times its compressed size an artifact may unpack to (model weights compress little; a run of zeros
/// compresses a thousandfold).
pub const MAX_EXPANSION: u128 = 100;
/// An artifact may always unpack to this many bytes, however well it compresses.
pub const MIN_EXPANDED_BYTES: u128 = 256 << 20;

const META_FILE: &str = "artifact.json";
const WEIGHTS_FILE: &str = "weights.safetensors";

impl Artifact {
    /// A new artifact of `algorithm` with the current schema version and this build's version in the provenance.
    pub fn new(
        algorithm: &str,
        hyperparameters: BTreeMap<String, String>,
        feature_dim: usize,
    ) -> Self {
        Artifact {
            meta: ArtifactMeta {
                schema_version: SCHEMA_VERSION,
                algorithm: algorithm.to_string(),
                hyperparameters,
                feature_dim,
                label_map: None,
                preprocessing: serde_json::Value::Null,
                training_metrics: BTreeMap::new(),
                provenance: Provenance {
                    tern_version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                },
                model: serde_json::Value::Null,
            },
            tensors: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }

    /// The tensor `name`, or an error naming it.
    pub fn tensor(&self, name: &str) -> Result<&Tensor, TrainError> {
        self.tensors.get(name).ok_or_else(|| TrainError::Artifact {
            path: self.meta.algorithm.clone(),
            message: format!("tensor {name:?} is missing from {WEIGHTS_FILE}"),
        })
    }

    /// The first NaN or infinite weight, as (tensor name, flat index, value): a model holding one (training that
    /// diverged) predicts NaN, and is refused by the job and the compiler.
    pub fn first_non_finite(&self) -> Option<(&str, usize, f32)> {
        self.tensors.iter().find_map(|(name, tensor)| {
            tensor
                .data
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (name.as_str(), i, tensor.data[i]))
        })
    }

    /// The archive as bytes: a gzip'd tar with fixed modes and times.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let mut meta =
            serde_json::to_vec_pretty(&self.meta).map_err(|e| self.error(e.to_string()))?;
        meta.push(b'\n');
        let weights = self.safetensors_bytes()?;
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut archive = tar::Builder::new(encoder);
        let mut add = |name: &str, bytes: &[u8]| -> Result<(), TrainError> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            archive
                .append_data(&mut header, name, bytes)
                .map_err(|e| self.error(e.to_string()))
        };
        add(META_FILE, &meta)?;
        add(WEIGHTS_FILE, &weights)?;
        for (name, bytes) in &self.files {
            add(name, bytes)?;
        }
        let encoder = archive
            .into_inner()
            .map_err(|e| self.error(e.to_string()))?;
        encoder.finish().map_err(|e| self.error(e.to_string()))
    }

    /// Writes the archive to `path` atomically: a temp file beside it, then a rename.
    pub fn write(&self, path: &Path) -> Result<(), TrainError> {
        write_atomically(path, &self.to_bytes()?)
    }

    /// Reads an archive written by [`Artifact::write`] (or SageMaker's layout of the same files).
    pub fn read(path: &Path) -> Result<Artifact, TrainError> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        Artifact::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses archive bytes; `name` is used in errors.
    ///
    /// What is read is bounded by what the format holds, before anything is allocated for it: `artifact.json` at
    /// most [`MAX_META_BYTES`]; `weights.safetensors` and the algorithm's own files (named `<algorithm>-…`, such as
    /// `xgboost-model.json`) together at most [`MAX_EXPANSION`] times the archive's compressed size (at least
    /// [`MIN_EXPANDED_BYTES`]) and what the process may allocate ([`crate::memory`]). Other entries, and entries
    /// that are not plain files, are skipped without being read; entries before `artifact.json`, whose algorithm is
    /// not yet known, are read within the same bounds and dropped unless they are its files.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Artifact, TrainError> {
        let error = |message: String| TrainError::Artifact {
            path: name.to_string(),
            message,
        };
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let mut files = BTreeMap::new();
        let entries = archive
            .entries()
            .map_err(|e| error(format!("not a gzip'd tar archive: {e}")))?;
        let expansion_limit = (bytes.len() as u128 * MAX_EXPANSION).max(MIN_EXPANDED_BYTES);
        let mut expanded: u128 = 0;
        let mut algorithm: Option<String> = None;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| error(format!("truncated or corrupt archive: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(|e| error(e.to_string()))?;
            let file_name = path.to_string_lossy().trim_start_matches("./").to_string();
            let size = u128::from(entry.header().size().map_err(|e| error(e.to_string()))?);
            let known = file_name == META_FILE
                || file_name == WEIGHTS_FILE
                || algorithm
                    .as_ref()
                    .is_none_or(|a| file_name.starts_with(&format!("{a}-")));
            if !known {
                continue;
            }
            if file_name == META_FILE && size > MAX_META_BYTES {
                return Err(error(format!(
                    "{META_FILE} declares {size} bytes; at most {MAX_META_BYTES} are read"
                )));
            }
            expanded += size;
            if expanded > expansion_limit {
                return Err(error(format!(
                    "entry {file_name} ({size} bytes) takes the archive past {expansion_limit} bytes unpacked, \
                     {MAX_EXPANSION} times its {} compressed bytes: not a model tern wrote",
                    bytes.len()
                )));
            }
            crate::memory::ensure(expanded, || format!("{name}: unpacking entry {file_name}"))?;
            let mut contents = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut contents)
                .map_err(|e| error(format!("truncated or corrupt archive at {file_name}: {e}")))?;
            if file_name == META_FILE {
                algorithm = serde_json::from_slice::<serde_json::Value>(&contents)
                    .ok()
                    .and_then(|v| v.get("algorithm")?.as_str().map(str::to_string));
            }
            files.insert(file_name, contents);
        }
        let meta_bytes = files.remove(META_FILE).ok_or_else(|| {
            error(format!(
                "{META_FILE} is missing; is this a tern model.tar.gz?"
            ))
        })?;
        let meta: ArtifactMeta =
            serde_json::from_slice(&meta_bytes).map_err(|e| error(format!("{META_FILE}: {e}")))?;
        if meta.schema_version != SCHEMA_VERSION {
            return Err(error(format!(
                "schema version {} is not supported by this tern (which reads version {SCHEMA_VERSION})",
                meta.schema_version
            )));
        }
        let weights = files
            .remove(WEIGHTS_FILE)
            .ok_or_else(|| error(format!("{WEIGHTS_FILE} is missing")))?;
        let algorithm_files = format!("{}-", meta.algorithm);
        files.retain(|file_name, _| file_name.starts_with(&algorithm_files));
        let tensors =
            read_safetensors(&weights).map_err(|e| error(format!("{WEIGHTS_FILE}: {e}")))?;
        Ok(Artifact {
            meta,
            tensors,
            files,
        })
    }

    fn safetensors_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let raw: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), bytes, t.shape.clone())
            })
            .collect();
        let views = raw
            .iter()
            .map(|(name, bytes, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| self.error(format!("tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::tensor::serialize(views, None).map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, message: String) -> TrainError {
        TrainError::Artifact {
            path: self.meta.algorithm.clone(),
            message,
        }
    }
}

fn read_safetensors(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, String> {
    let parsed = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut tensors = BTreeMap::new();
    for (name, view) in parsed.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor {name} has dtype {:?}, expected F32",
                view.dtype()
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, Tensor::new(view.shape().to_vec(), data));
    }
    Ok(tensors)
}

/// Writes `bytes` to `path` through a temp file in the same folder and a rename, so readers never see half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    crate::outputs::recover(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(&crate::outputs::process_prefix(
            crate::outputs::TEMPORARY_PREFIX,
        ))
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(dir, e))?;
    temp.write_all(bytes).map_err(|e| TrainError::io(path, e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(path, e))?;
    // Temp files are created 0600; the result is an ordinary file others may read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| TrainError::io(path, e))?;
    }
    temp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Artifact {
        let mut artifact = Artifact::new(
            "linear-learner",
            BTreeMap::from([("epochs".into(), "3".into())]),
            2,
        );
        artifact
            .tensors
            .insert("weight".into(), Tensor::new(vec![2, 1], vec![0.5, -1.25]));
        artifact
            .files
            .insert("linear-learner-notes.txt".into(), b"hi".to_vec());
        artifact
            .meta
            .training_metrics
            .insert("train:objective_loss".into(), 0.25);
        artifact
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let artifact = sample();
        let bytes = artifact.to_bytes().unwrap();
        assert_eq!(bytes, artifact.to_bytes().unwrap());
        assert_eq!(Artifact::from_bytes(&bytes, "m").unwrap(), artifact);
    }

    /// A tar.gz of `entries` (name, size of zero bytes), as a hostile user would build one.
    fn archive_of_zeros(entries: &[(&str, usize)]) -> Vec<u8> {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut builder = tar::Builder::new(encoder);
        for &(name, size) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(size as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, std::io::repeat(0).take(size as u64))
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_compressed_run_of_zeros_is_refused_before_it_is_read() {
        // 300 MB of zeros: about 300 kB compressed.
        let bomb = archive_of_zeros(&[("weights.safetensors", 300_000_000)]);
        let message = Artifact::from_bytes(&bomb, "bomb.tar.gz")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("weights.safetensors") && message.contains("compressed"),
            "{message}"
        );
        let meta_bomb = archive_of_zeros(&[("artifact.json", 20 << 20)]);
        let message = Artifact::from_bytes(&meta_bomb, "m")
            .unwrap_err()
            .to_string();
        assert!(message.contains("artifact.json declares"), "{message}");
    }

    #[test]
    fn entries_of_other_names_are_skipped() {
        let mut artifact = sample();
        artifact
            .files
            .insert("notes.txt".into(), b"not the algorithm's".to_vec());
        let back = Artifact::from_bytes(&artifact.to_bytes().unwrap(), "m").unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn entries_before_the_metadata_are_kept_only_if_they_are_the_algorithms() {
        // Found by the `artifact` fuzz target: another algorithm's file ahead of artifact.json was returned.
        let artifact = sample();
        let meta = serde_json::to_vec(&artifact.meta).unwrap();
        let weights = artifact.safetensors_bytes().unwrap();
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        for (name, bytes) in [
            ("kmeans-centroids.json", &b"{}"[..]),
            ("notes.txt", b"not the algorithm's"),
            ("linear-learner-notes.txt", b"hi"),
            ("artifact.json", &meta),
            ("weights.safetensors", &weights),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, bytes).unwrap();
        }
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let read = Artifact::from_bytes(&bytes, "m").unwrap();
        assert_eq!(
            read.files.keys().collect::<Vec<_>>(),
            ["linear-learner-notes.txt"]
        );
        assert_eq!(read, artifact);
    }

    #[test]
    fn truncated_and_foreign_archives_are_refused_with_a_reason() {
        let bytes = sample().to_bytes().unwrap();
        let truncated = Artifact::from_bytes(&bytes[..bytes.len() / 2], "m.tar.gz")
            .unwrap_err()
            .to_string();
        assert!(truncated.contains("m.tar.gz"), "{truncated}");
        let foreign = Artifact::from_bytes(b"not an archive", "x")
            .unwrap_err()
            .to_string();
        assert!(foreign.contains("x"), "{foreign}");
    }

    #[test]
    fn writes_atomically_leaving_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.tar.gz");
        sample().write(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("model.tar.gz")]);
        assert_eq!(Artifact::read(&path).unwrap(), sample());
    }
}
