//! A command's output files, written as one unit.
//!
//! Each output is first written in full into a staging folder beside its destination
//! (`<dir>/.tern-staging-<pid>-<random>/`), so a failure while writing (a full disk, a bad record found late, a
//! kill) leaves every earlier file untouched. [`OutputSet::commit`] then, per destination folder:
//! 1. syncs the staged files and writes a journal (`.tern-commit`, the names to move in and to retire) into the
//!    staging folder;
//! 2. renames each staged file over its destination, and removes the retired names (outputs an earlier run wrote
//!    that this one does not, such as a classifier's ROC plot after a regression run);
//! 3. removes the journal and the staging folder.
//!
//! A process killed during step 2 leaves the journal behind; [`recover`], which every writer of tern outputs runs
//! on a destination folder before it writes there, finishes such a commit (rolls it forward) and removes staging
//! folders and temporary files of tern's naming whose process has exited without committing. Each folder is
//! committed on its own: outputs spread over two folders (SageMaker's `model/` and `output/data/`) are each whole,
//! the model's folder last.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::TrainError;

/// The prefix of a staging folder.
pub const STAGING_PREFIX: &str = ".tern-staging-";
/// The prefix of a temporary file written by [`crate::artifact::write_atomically`].
pub const TEMPORARY_PREFIX: &str = ".tern-tmp-";
/// The journal a committing staging folder holds.
const JOURNAL: &str = ".tern-commit";

/// The prefix of this process's temporaries: `<prefix><pid>-`.
pub fn process_prefix(prefix: &str) -> String {
    format!("{prefix}{}-", std::process::id())
}

/// Output files being staged, by destination folder.
#[derive(Debug, Default)]
pub struct OutputSet {
    folders: BTreeMap<PathBuf, Staging>,
    /// Destination folders in the order their first output was staged; committed in reverse, so the folder of the
    /// first output (the model) is made whole last.
    order: Vec<PathBuf>,
}

#[derive(Debug)]
struct Staging {
    dir: tempfile::TempDir,
    files: Vec<String>,
    retire: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Journal {
    files: Vec<String>,
    retire: Vec<String>,
}

fn split(path: &Path) -> Result<(PathBuf, String), TrainError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| TrainError::Config(format!("{}: not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

impl OutputSet {
    /// An empty set.
    pub fn new() -> Self {
        OutputSet::default()
    }

    fn staging(&mut self, dir: &Path) -> Result<&mut Staging, TrainError> {
        if !self.folders.contains_key(dir) {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
            recover(dir)?;
            let staging = tempfile::Builder::new()
                .prefix(&process_prefix(STAGING_PREFIX))
                .tempdir_in(dir)
                .map_err(|e| TrainError::io(dir, e))?;
            self.order.push(dir.to_path_buf());
            self.folders.insert(
                dir.to_path_buf(),
                Staging {
                    dir: staging,
                    files: Vec::new(),
                    retire: Vec::new(),
                },
            );
        }
        Ok(self.folders.get_mut(dir).expect("inserted above"))
    }

    /// Where to write the output that [`OutputSet::commit`] moves to `destination` (a file in the staging folder,
    /// not yet created). Staging the same destination twice gives the same path.
    pub fn stage(&mut self, destination: &Path) -> Result<PathBuf, TrainError> {
        let (dir, name) = split(destination)?;
        let staging = self.staging(&dir)?;
        staging.retire.retain(|n| *n != name);
        if !staging.files.contains(&name) {
            staging.files.push(name.clone());
        }
        Ok(staging.dir.path().join(name))
    }

    /// Stages `bytes` as the output `destination`.
    pub fn write(&mut self, destination: &Path, bytes: &[u8]) -> Result<(), TrainError> {
        let staged = self.stage(destination)?;
        std::fs::write(&staged, bytes).map_err(|e| TrainError::io(destination, e))
    }

    /// Removes `destination`, an output of tern's naming that an earlier run may have left, when the set commits,
    /// unless this set stages it.
    pub fn retire(&mut self, destination: &Path) -> Result<(), TrainError> {
        let (dir, name) = split(destination)?;
        let staging = self.staging(&dir)?;
        if !staging.files.contains(&name) && !staging.retire.contains(&name) {
            staging.retire.push(name);
        }
        Ok(())
    }

    /// Moves every staged output into place (module docs: the protocol). Dropping the set without committing
    /// removes what was staged and leaves the destinations as they were.
    pub fn commit(mut self) -> Result<(), TrainError> {
        for dir in self.order.iter().rev() {
            let staging = self
                .folders
                .remove(dir)
                .expect("every ordered folder is staged");
            let staged = staging.dir.path();
            for name in &staging.files {
                let path = staged.join(name);
                let file = std::fs::File::open(&path).map_err(|e| TrainError::io(&path, e))?;
                file.sync_all().map_err(|e| TrainError::io(&path, e))?;
                set_readable(&path)?;
            }
            let journal = serde_json::to_vec(&Journal {
                files: staging.files.clone(),
                retire: staging.retire.clone(),
            })
            .map_err(|e| TrainError::Config(e.to_string()))?;
            let journal_path = staged.join(JOURNAL);
            let mut file = std::fs::File::create(&journal_path)
                .map_err(|e| TrainError::io(&journal_path, e))?;
            file.write_all(&journal)
                .and_then(|()| file.sync_all())
                .map_err(|e| TrainError::io(&journal_path, e))?;
            sync_dir(staged);
            let staged = staging.dir.keep();
            roll_forward(dir, &staged)?;
        }
        Ok(())
    }
}

/// Outputs are ordinary files others may read, not the private (0600) files temporaries are created as.
fn set_readable(path: &Path) -> Result<(), TrainError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| TrainError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Best effort: not every platform can open a folder to sync it.
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Finishes the commit journalled in `staged`: moves what is still staged, removes retired names, then the
/// journal and the folder.
fn roll_forward(dir: &Path, staged: &Path) -> Result<(), TrainError> {
    let journal_path = staged.join(JOURNAL);
    let bytes = std::fs::read(&journal_path).map_err(|e| TrainError::io(&journal_path, e))?;
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
        TrainError::Config(format!(
            "{}: unreadable commit journal: {e}",
            journal_path.display()
        ))
    })?;
    for name in &journal.files {
        let from = staged.join(name);
        if from.exists() {
            std::fs::rename(&from, dir.join(name))
                .map_err(|e| TrainError::io(dir.join(name), e))?;
        }
    }
    for name in &journal.retire {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TrainError::io(&path, e)),
        }
    }
    sync_dir(dir);
    std::fs::remove_file(&journal_path).map_err(|e| TrainError::io(&journal_path, e))?;
    std::fs::remove_dir(staged).map_err(|e| TrainError::io(staged, e))
}

/// The process id in a name `<prefix><pid>-<rest>`.
fn owner(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

/// Whether process `pid` still runs (so its temporaries are in use).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the process exists; it sends nothing.
        let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Cleans `dir` of what interrupted tern commands left: a journalled commit is finished; a staging folder without
/// a journal, or a temporary file, whose process has exited is removed. Only entries of tern's naming
/// ([`STAGING_PREFIX`], [`TEMPORARY_PREFIX`] followed by a process id) are touched.
pub fn recover(dir: &Path) -> Result<(), TrainError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let Some(pid) = owner(&name, STAGING_PREFIX).filter(|_| is_dir) {
            if path.join(JOURNAL).exists() {
                roll_forward(dir, &path)?;
            } else if !alive(pid) {
                remove_staging(&path)?;
            }
        } else if let Some(pid) = owner(&name, TEMPORARY_PREFIX).filter(|_| !is_dir) {
            if !alive(pid) {
                std::fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// Removes an abandoned staging folder: the plain files in it, then the (then empty) folder.
fn remove_staging(staged: &Path) -> Result<(), TrainError> {
    for entry in std::fs::read_dir(staged).map_err(|e| TrainError::io(staged, e))? {
        let entry = entry.map_err(|e| TrainError::io(staged, e))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::remove_file(entry.path()).map_err(|e| TrainError::io(entry.path(), e))?;
        }
    }
    std::fs::remove_dir(staged).map_err(|e| TrainError::io(staged, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn nothing_changes_until_the_set_commits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.tar.gz"), b"old model").unwrap();
        std::fs::write(dir.path().join("roc_curve.svg"), b"old plot").unwrap();
        let mut set = OutputSet::new();
        set.write(&dir.path().join("model.tar.gz"), b"new model")
            .unwrap();
        set.write(&dir.path().join("metrics.json"), b"{}").unwrap();
        set.retire(&dir.path().join("roc_curve.svg")).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("model.tar.gz")).unwrap(),
            b"old model"
        );
        set.commit().unwrap();
        assert_eq!(listing(dir.path()), ["metrics.json", "model.tar.gz"]);
        assert_eq!(
            std::fs::read(dir.path().join("model.tar.gz")).unwrap(),
            b"new model"
        );
    }

    #[test]
    fn a_set_dropped_before_commit_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("out.json"), b"kept").unwrap();
        let mut set = OutputSet::new();
        set.write(&dir.path().join("out.json"), b"half").unwrap();
        drop(set);
        assert_eq!(listing(dir.path()), ["out.json"]);
        assert_eq!(std::fs::read(dir.path().join("out.json")).unwrap(), b"kept");
    }

    #[test]
    fn recovery_finishes_a_journalled_commit_and_removes_abandoned_staging() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.tar.gz"), b"old").unwrap();
        std::fs::write(dir.path().join("pr_curve.svg"), b"old").unwrap();
        // A commit killed after moving metrics.json in but before model.tar.gz.
        let dead = 0x7fff_fff0u32;
        let committing = dir.path().join(format!("{STAGING_PREFIX}{dead}-a"));
        std::fs::create_dir(&committing).unwrap();
        std::fs::write(committing.join("model.tar.gz"), b"new").unwrap();
        std::fs::write(dir.path().join("metrics.json"), b"new").unwrap();
        let journal = r#"{"files":["metrics.json","model.tar.gz"],"retire":["pr_curve.svg"]}"#;
        std::fs::write(committing.join(JOURNAL), journal).unwrap();
        // A run killed while staging, and a temporary file of a dead process.
        let abandoned = dir.path().join(format!("{STAGING_PREFIX}{dead}-b"));
        std::fs::create_dir(&abandoned).unwrap();
        std::fs::write(abandoned.join("model.tar.gz"), b"partial").unwrap();
        std::fs::write(
            dir.path().join(format!("{TEMPORARY_PREFIX}{dead}-x")),
            b"partial",
        )
        .unwrap();
        // Not tern's naming: never touched.
        std::fs::write(dir.path().join(".tern-staging-notes"), b"mine").unwrap();
        recover(dir.path()).unwrap();
        assert_eq!(
            listing(dir.path()),
            [".tern-staging-notes", "metrics.json", "model.tar.gz"]
        );
        assert_eq!(
            std::fs::read(dir.path().join("model.tar.gz")).unwrap(),
            b"new"
        );
    }

    #[test]
    fn a_live_process_staging_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = OutputSet::new();
        set.write(&dir.path().join("a.txt"), b"x").unwrap();
        recover(dir.path()).unwrap();
        set.commit().unwrap();
        assert_eq!(listing(dir.path()), ["a.txt"]);
    }
}
