//! The Chromium columns: the browser build of the wasm runtime inside headless Chromium
//! (runtime-wasm/browser/run_packages.mjs, one Chromium for the whole run). `chromium-wasm` runs on the wasm CPU
//! backend (tern's interpreter), `chromium-webgpu` on WebGPU (SwiftShader's adapter here); graphs the WebGPU backend
//! refuses print as `fallback`, the op named. Without the browser build or Chromium their cells are not run, with a
//! note ([`Cell::not_run`]): scripts/setup-web.sh installs them.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use tern_runtime::Manifest;
use tern_tests::repo_root;

use super::wgpu::gpu_accepts;
use super::{from_runner_file, Column, Job};
use crate::compare::{Cell, RuntimePredictions};

/// The one Chromium both columns share, started on the first cell that needs it. It answers one job at a time, so
/// trials on other threads wait for it.
pub struct Browser {
    /// The folder the runner serves to the page: every package, feature file and output file lies in it.
    root: PathBuf,
    runner: Mutex<Option<Result<Runner, String>>>,
}

impl Browser {
    pub fn new(root: &Path) -> Browser {
        Browser {
            root: root.to_path_buf(),
            runner: Mutex::new(None),
        }
    }
}

/// A Chromium column: the shared browser, on one backend.
pub struct ChromiumColumn {
    name: &'static str,
    /// "wasm" or "webgpu", as run_packages.mjs spells it.
    backend: &'static str,
    browser: Arc<Browser>,
}

impl ChromiumColumn {
    pub fn new(name: &'static str, backend: &'static str, browser: Arc<Browser>) -> ChromiumColumn {
        ChromiumColumn {
            name,
            backend,
            browser,
        }
    }
}

impl Column for ChromiumColumn {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ignored_as(&self) -> &'static str {
        "x86_64"
    }

    fn run(&self, job: &Job) -> Cell {
        let output = job.output_file(self.name);
        let run = {
            let mut runner = self
                .browser
                .runner
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let runner = match runner.get_or_insert_with(|| Runner::start(&self.browser.root)) {
                Ok(runner) => runner,
                Err(why) => return Cell::not_run(why),
            };
            if self.backend == "webgpu" {
                if let Err(why) = &runner.adapter {
                    return Cell::not_run(why);
                }
            }
            runner.run(
                self.backend,
                job.package,
                job.features_file,
                job.rows,
                &output,
                job.manifest,
            )
        };
        match run {
            Ok(BrowserRun {
                fallback_reason: Some(reason),
                ..
            }) => {
                // Only a graph the WebGPU backend refuses may fall back; an adapter or device failure is a failure
                // of the column.
                if !reason.contains("cannot run this graph") {
                    return Cell::failed(format!("fell back to wasm: {reason}"));
                }
                // ... and only a graph tern-gpu's own check refuses too (else the browser build is stale:
                // scripts/build-wasm.sh).
                if gpu_accepts(job.package) {
                    return Cell::failed(format!(
                        "fell back to wasm although tern-gpu runs this graph natively: {reason}"
                    ));
                }
                Cell::fallback("wasm CPU", &reason)
            }
            Ok(run) => job.check(Ok(run.predictions)),
            Err(error) => job.check(Err(error)),
        }
    }

    fn footnote(&self) -> Option<String> {
        if self.backend != "webgpu" {
            return None;
        }
        let runner = self
            .browser
            .runner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match runner.as_ref() {
            Some(Ok(Runner {
                adapter: Ok(adapter),
                ..
            })) => Some(format!(
                "{} ran on Chromium's WebGPU adapter {adapter:?}",
                self.name
            )),
            _ => None,
        }
    }
}

/// `runtime-wasm/browser/run_packages.mjs` started once, fed one job per stdin line, answering one JSON line per job
/// on stdout.
struct Runner {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The WebGPU adapter Chromium offers (e.g. "google swiftshader"), or why there is none.
    adapter: Result<String, String>,
}

/// How a Chromium job ran: on the backend asked for, or on wasm because WebGPU refused (with the reason).
struct BrowserRun {
    predictions: RuntimePredictions,
    fallback_reason: Option<String>,
}

impl Runner {
    /// Starts the runner serving `root`, or says why it cannot run here.
    fn start(root: &Path) -> Result<Runner, String> {
        let repo = repo_root();
        let needed = [
            ("runtime-wasm/pkg/web/tern_wasm.js", "the browser build"),
            ("web/node_modules/playwright-core", "playwright-core"),
        ];
        for (path, what) in needed {
            if !repo.join(path).exists() {
                return Err(format!(
                    "{what} ({path}) is missing: run scripts/setup-web.sh"
                ));
            }
        }
        let mut child = Command::new("node")
            .arg(repo.join("runtime-wasm/browser/run_packages.mjs"))
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start node: {e} (scripts/setup-web.sh installs it)"))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            let _ = child.wait();
            return Err(format!("run_packages.mjs did not start: {}", stderr.trim()));
        }
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("run_packages.mjs: unreadable first line {line:?}: {e}"))?;
        let adapter = match ready["webgpu"]["adapter"].as_str() {
            Some(name) => Ok(name.to_string()),
            None if ready["webgpu"]["navigator_gpu"].as_bool() == Some(true) => {
                Err("Chromium has navigator.gpu but no WebGPU adapter".to_string())
            }
            None => Err("Chromium exposes no navigator.gpu".to_string()),
        };
        Ok(Runner {
            child,
            stdin,
            stdout,
            adapter,
        })
    }

    /// Runs the package in `dir` on `rows` rows of the float32 file `features` with `backend` ("wasm" or "webgpu").
    fn run(
        &mut self,
        backend: &str,
        dir: &Path,
        features: &Path,
        rows: usize,
        out: &Path,
        manifest: &Manifest,
    ) -> Result<BrowserRun, String> {
        let job = serde_json::json!({
            "package": dir, "features": features, "rows": rows, "out": out, "backend": backend,
        });
        let stdin = self.stdin.as_mut().ok_or("the runner's stdin is closed")?;
        writeln!(stdin, "{job}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("run_packages.mjs stopped: {e}"))?;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return Err("run_packages.mjs stopped without an answer".to_string()),
            Ok(_) => {}
        }
        let answer: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("run_packages.mjs: unreadable answer {line:?}: {e}"))?;
        if answer["ok"].as_bool() != Some(true) {
            return Err(format!(
                "Chromium: {}",
                answer["error"].as_str().unwrap_or("no reason given")
            ));
        }
        let ran_on = answer["backend"].as_str().unwrap_or_default();
        let fallback_reason = answer["fallbackReason"].as_str().map(str::to_string);
        if ran_on != backend && fallback_reason.is_none() {
            return Err(format!(
                "asked for {backend}, ran on {ran_on:?} without a reason"
            ));
        }
        Ok(BrowserRun {
            predictions: from_runner_file(out, manifest)?,
            fallback_reason: (ran_on != backend).then_some(fallback_reason).flatten(),
        })
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Closing stdin ends the runner, which closes Chromium.
        self.stdin = None;
        let _ = self.child.wait();
    }
}
