//! Shared helpers for tern's cross-crate suites: where the repository, the built `tern` binary, the exported real
//! datasets and the oracle virtualenv are.

use std::path::{Path, PathBuf};

pub mod text_classifier;
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The `tern` binary of the same build profile as the running test (target/<profile>/tern). `scripts/test.sh` builds
/// it before the tests run; a missing binary fails the test with that instruction.
pub fn tern_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("tern");
    assert!(
        binary.exists(),
        "{} is missing: build it first (scripts/test.sh does: cargo build --release --workspace --bins)",
        binary.display()
    );
    binary
}

/// Runs `tern` with `args`, returning its output whatever the exit code.
pub fn tern(args: &[&str]) -> Output {
    Command::new(tern_binary())
        .args(args)
        .output()
        .expect("run tern")
}

/// Runs `tern` with `args` and fails the test, showing stderr, unless it succeeds; returns stdout.
pub fn tern_ok(args: &[&str]) -> String {
    let output = tern(args);
    assert!(
        output.status.success(),
        "tern {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// A real dataset exported by tests/python/export_datasets.py: `tests/data/generated/<name>/<split>.csv`.
pub fn dataset(name: &str, split: &str) -> PathBuf {
    let path = repo_root()
        .join("tests/data/generated")
        .join(name)
        .join(format!("{split}.csv"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (or .venv/bin/python tests/python/export_datasets.py tests/data/generated)",
        path.display()
    );
    path
}

/// The oracle virtualenv's python.
pub fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    python
}
