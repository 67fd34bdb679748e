//! Writing a package folder without ever losing what a user keeps beside it.
//!
//! A package is two files, `model.onnx` and `manifest.json`. [`CompiledPackage::write`] puts them at a path that is
//! either absent, an empty folder, or an earlier tern package (a folder holding those two files and nothing else,
//! its manifest a tern manifest): the new package is staged in a temporary folder beside the destination and
//! renamed into place, so a reader sees the old package or the new one, never half of one. Anything else at the path
//! (a file, a folder holding other files, such as a training output folder with `model.tar.gz`) is refused with
//! [`CompileError::OutputNotPackage`], unless the caller asks for [`Overwrite::Files`], which writes the two files
//! into the existing folder one by one (each atomically) and touches nothing else in it. Only files tern wrote are
//! ever deleted: an old package is removed file by file, by name, and its folder with a non-recursive remove.

use std::path::{Path, PathBuf};

use tern_runtime::package::{GRAPH_FILE, MANIFEST_FILE};

use crate::{CompileError, CompiledPackage};

use tern_trainer::outputs::{process_prefix, STAGING_PREFIX};

/// The prefix of the folder an earlier package is moved to while the new one takes its place.
pub const OLD_PACKAGE_PREFIX: &str = ".tern-package-old-";

/// What [`CompiledPackage::write_with`] may do with what already exists at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Replace an empty folder or an earlier tern package; refuse anything else.
    #[default]
    PackageOnly,
    /// Also write `model.onnx` and `manifest.json` into an existing folder that holds other files, replacing
    /// only those two names (`tern compile --force`).
    Files,
}

/// What the destination path holds now.
enum Existing {
    Nothing,
    /// An empty folder or one holding only a tern package's files.
    Package,
    /// A folder with other entries (a few named, for the message).
    OtherFolder(Vec<String>),
    /// A file, or a link or special file that is not a folder.
    NotFolder,
}

fn classify(dir: &Path) -> Result<Existing, CompileError> {
    let metadata = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(CompileError::io(dir, e)),
    };
    if metadata.file_type().is_symlink() {
        // A link is never renamed or replaced; with Overwrite::Files the files go into the folder it points to.
        return Ok(if dir.is_dir() {
            Existing::OtherFolder(vec![format!("{} is a symbolic link", dir.display())])
        } else {
            Existing::NotFolder
        });
    }
    if !metadata.is_dir() {
        return Ok(Existing::NotFolder);
    }
    let mut others = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| CompileError::io(dir, e))? {
        let entry = entry.map_err(|e| CompileError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && (name == GRAPH_FILE || name == MANIFEST_FILE) {
            names.push(name);
        } else {
            others.push(name);
        }
    }
    if !others.is_empty() {
        others.sort();
        return Ok(Existing::OtherFolder(others));
    }
    if names.iter().any(|n| n == MANIFEST_FILE) && !is_tern_manifest(&dir.join(MANIFEST_FILE)) {
        return Ok(Existing::OtherFolder(vec![format!(
            "{MANIFEST_FILE} (not a tern manifest)"
        )]));
    }
    Ok(Existing::Package)
}

/// Whether `path` parses as a tern manifest (any version): a JSON object naming `manifest_version` and
/// `graph_sha256`.
fn is_tern_manifest(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) => {
            map.contains_key("manifest_version") && map.contains_key("graph_sha256")
        }
        _ => false,
    }
}

fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, renamed over `path` (the trainer's
/// atomic write, so the file is readable by others like any written file).
fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), CompileError> {
    tern_trainer::artifact::write_atomically(path, bytes).map_err(|error| match error {
        tern_trainer::TrainError::Io { path, error } => CompileError::Io {
            path,
            source: error,
        },
        other => CompileError::Trainer(other),
    })
}

/// Removes a moved-aside earlier package: its two files by name, then the folder, which must then be empty.
fn remove_old_package(aside: &Path) -> Result<(), CompileError> {
    for name in [GRAPH_FILE, MANIFEST_FILE] {
        let path = aside.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CompileError::io(&path, e)),
        }
    }
    std::fs::remove_dir(aside).map_err(|e| CompileError::io(aside, e))
}

impl CompiledPackage {
    /// Writes the package to the folder `dir`, which must be absent, empty or an earlier tern package
    /// ([`Overwrite::PackageOnly`]); see [`CompiledPackage::write_with`].
    pub fn write(&self, dir: &Path) -> Result<(), CompileError> {
        self.write_with(dir, Overwrite::PackageOnly)
    }

    /// Writes `dir/model.onnx` and `dir/manifest.json` (module docs: what may be replaced, and how).
    ///
    /// Errors: [`CompileError::OutputNotPackage`] when `dir` is a file, or a folder holding anything but a tern
    /// package and `overwrite` is [`Overwrite::PackageOnly`]; [`CompileError::Io`] naming the path that failed.
    pub fn write_with(&self, dir: &Path, overwrite: Overwrite) -> Result<(), CompileError> {
        let mut manifest = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| CompileError::Graph(format!("manifest: {e}")))?;
        manifest.push(b'\n');
        let existing = classify(dir)?;
        match (existing, overwrite) {
            (Existing::NotFolder, _) => Err(CompileError::OutputNotPackage {
                path: dir.to_path_buf(),
                holds: "is a file, not a folder".into(),
                hint: "name a new folder".into(),
            }),
            (Existing::OtherFolder(others), Overwrite::PackageOnly) => {
                let shown: Vec<&str> = others.iter().take(4).map(String::as_str).collect();
                let more = others.len().saturating_sub(shown.len());
                let holds = if more > 0 {
                    format!("holds {} and {more} more", shown.join(", "))
                } else {
                    format!("holds {}", shown.join(", "))
                };
                Err(CompileError::OutputNotPackage {
                    path: dir.to_path_buf(),
                    holds,
                    hint: format!(
                        "name a new folder, or pass --force to write {GRAPH_FILE} and {MANIFEST_FILE} into it \
                         (nothing else in it is touched)"
                    ),
                })
            }
            (Existing::OtherFolder(_), Overwrite::Files) => {
                // The graph first: between the two renames a reader sees the old manifest with the new graph,
                // whose sha256 it refuses, never a mismatched package it would run.
                write_file_atomically(&dir.join(GRAPH_FILE), &self.onnx)?;
                write_file_atomically(&dir.join(MANIFEST_FILE), &manifest)
            }
            (Existing::Nothing, _) => self.stage_and_rename(dir, &manifest, None),
            (Existing::Package, _) => {
                let parent = parent_of(dir);
                let aside = tempfile::Builder::new()
                    .prefix(OLD_PACKAGE_PREFIX)
                    .tempdir_in(&parent)
                    .map_err(|e| CompileError::io(&parent, e))?
                    .keep();
                // The empty placeholder reserves a unique name; the old package takes its place.
                std::fs::remove_dir(&aside).map_err(|e| CompileError::io(&aside, e))?;
                std::fs::rename(dir, &aside).map_err(|e| CompileError::io(dir, e))?;
                self.stage_and_rename(dir, &manifest, Some(&aside))?;
                remove_old_package(&aside)
            }
        }
    }

    /// Writes both files into a temporary folder beside `dir` and renames it to `dir`; on failure an earlier
    /// package moved to `aside` is put back.
    fn stage_and_rename(
        &self,
        dir: &Path,
        manifest: &[u8],
        aside: Option<&Path>,
    ) -> Result<(), CompileError> {
        let parent = parent_of(dir);
        let restore = |error: CompileError| {
            if let Some(aside) = aside {
                let _ = std::fs::rename(aside, dir);
            }
            error
        };
        std::fs::create_dir_all(&parent).map_err(|e| restore(CompileError::io(&parent, e)))?;
        // Staging folders of compiles killed before their rename are removed.
        tern_trainer::outputs::recover(&parent).map_err(|e| restore(CompileError::Trainer(e)))?;
        let staging = tempfile::Builder::new()
            .prefix(&process_prefix(STAGING_PREFIX))
            .tempdir_in(&parent)
            .map_err(|e| restore(CompileError::io(&parent, e)))?;
        for (name, bytes) in [
            (GRAPH_FILE, self.onnx.as_slice()),
            (MANIFEST_FILE, manifest),
        ] {
            let path = staging.path().join(name);
            std::fs::write(&path, bytes).map_err(|e| restore(CompileError::io(&path, e)))?;
        }
        // A temporary folder is private (0700); the package is read by whoever serves it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| restore(CompileError::io(staging.path(), e)))?;
        }
        // On a failed rename `staging` is dropped, removing the staged copy.
        std::fs::rename(staging.path(), dir).map_err(|e| restore(CompileError::io(dir, e)))?;
        let _ = staging.keep();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_runtime::manifest::Manifest;

    fn package(marker: &str) -> CompiledPackage {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "manifest_version": 1, "tern_version": marker, "algorithm": "linear-learner", "precision": "fp32",
            "targets": [], "feature_dim": 1, "inputs": [], "outputs": [], "accepts": [], "produces": [],
            "response": {"kind": "projection", "projection": "y"}, "opsets": {}, "graph_sha256": "00",
            "tolerance": {"absolute": 0.0, "relative": 0.0, "label_agreement": 1.0, "verified_rows": 0,
                          "measured_absolute": 0.0, "measured_label_agreement": 1.0}
        }))
        .expect("test manifest");
        CompiledPackage {
            onnx: marker.as_bytes().to_vec(),
            manifest,
            passes: Default::default(),
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_training_output_folder_is_refused_and_left_whole() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        std::fs::create_dir_all(out.join("plots")).unwrap();
        std::fs::write(out.join("model.tar.gz"), b"model").unwrap();
        std::fs::write(out.join("metrics.json"), b"{}").unwrap();
        let error = package("new").write(&out).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, CompileError::OutputNotPackage { .. }),
            "{message}"
        );
        assert!(
            message.contains("model.tar.gz") && message.contains("--force"),
            "{message}"
        );
        assert_eq!(listing(&out), ["metrics.json", "model.tar.gz", "plots"]);
        assert_eq!(std::fs::read(out.join("model.tar.gz")).unwrap(), b"model");
        assert_eq!(listing(root.path()), ["out"], "no temporary left beside it");
    }

    #[test]
    fn force_writes_the_two_files_beside_what_the_folder_holds() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("model.tar.gz"), b"model").unwrap();
        std::fs::write(out.join(GRAPH_FILE), b"someone else's graph").unwrap();
        package("new").write_with(&out, Overwrite::Files).unwrap();
        assert_eq!(
            listing(&out),
            ["manifest.json", "model.onnx", "model.tar.gz"]
        );
        assert_eq!(std::fs::read(out.join("model.tar.gz")).unwrap(), b"model");
        assert_eq!(std::fs::read(out.join(GRAPH_FILE)).unwrap(), b"new");
        assert!(is_tern_manifest(&out.join(MANIFEST_FILE)));
    }

    #[test]
    fn an_existing_file_is_refused_even_with_force() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("pkg");
        std::fs::write(&file, b"keep me").unwrap();
        for overwrite in [Overwrite::PackageOnly, Overwrite::Files] {
            let message = package("new")
                .write_with(&file, overwrite)
                .unwrap_err()
                .to_string();
            assert!(message.contains("is a file"), "{message}");
            assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
            assert_eq!(listing(root.path()), ["pkg"]);
        }
    }

    #[test]
    fn an_earlier_package_or_an_empty_folder_is_replaced_whole() {
        let root = tempfile::tempdir().unwrap();
        let pkg = root.path().join("pkg");
        std::fs::create_dir(&pkg).unwrap();
        package("first").write(&pkg).unwrap();
        package("second").write(&pkg).unwrap();
        assert_eq!(listing(&pkg), ["manifest.json", "model.onnx"]);
        assert_eq!(std::fs::read(pkg.join(GRAPH_FILE)).unwrap(), b"second");
        assert_eq!(
            listing(root.path()),
            ["pkg"],
            "the old package and the staging folder are gone"
        );
    }

    #[test]
    fn a_foreign_manifest_is_not_taken_for_a_package() {
        let root = tempfile::tempdir().unwrap();
        let pkg = root.path().join("pkg");
        std::fs::create_dir(&pkg).unwrap();
        std::fs::write(pkg.join(MANIFEST_FILE), b"{\"name\": \"my web app\"}").unwrap();
        let message = package("new").write(&pkg).unwrap_err().to_string();
        assert!(message.contains("not a tern manifest"), "{message}");
        assert_eq!(
            std::fs::read(pkg.join(MANIFEST_FILE)).unwrap(),
            b"{\"name\": \"my web app\"}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_a_folder_is_never_replaced() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("real");
        std::fs::create_dir(&target).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(package("new").write(&link).is_err());
        package("new").write_with(&link, Overwrite::Files).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(listing(&target), ["manifest.json", "model.onnx"]);
    }
}
