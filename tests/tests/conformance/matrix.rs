//! The matrix: one row per (case, precision), one cell per column. A row compiles the case's package at its
//! precision and runs it in every column; [`crate::cases::IGNORED`] cells print as N/A with their reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};

use libtest_mimic::Failed;
use tempfile::TempDir;
use tern_compiler::CompileOptions;
use tern_registry::compile;
use tern_runtime::Package;

use crate::cases::{ignored, precision_name, CASES, PRECISIONS};
use crate::columns::{self, Column, Job};
use crate::compare::Cell;
use crate::trained::{train, Trained};

/// Everything a run shares across its trials: the columns (with the resources they start once), each case trained
/// once, and the rows printed so far.
pub struct Matrix {
    columns: Vec<Box<dyn Column>>,
    trained: Vec<OnceLock<Trained>>,
    /// Each finished row's text (the row and its notes), by (case index, precision index).
    rows: Mutex<BTreeMap<(usize, usize), String>>,
    /// Every package, feature file and output file of the run; removed after the columns closed what they started.
    work: TempDir,
}

impl Matrix {
    pub fn new() -> Matrix {
        let work = tempfile::tempdir().unwrap();
        Matrix {
            columns: columns::all(work.path()),
            trained: CASES.iter().map(|_| OnceLock::new()).collect(),
            rows: Mutex::new(BTreeMap::new()),
            work,
        }
    }

    /// Runs the row of `CASES[case_index]` at `PRECISIONS[precision_index]` in every column, training the case
    /// first unless another trial of this process has. Fails, showing the row, when any cell fails.
    pub fn run_row(&self, case_index: usize, precision_index: usize) -> Result<(), Failed> {
        let case = &CASES[case_index];
        let precision = PRECISIONS[precision_index];
        let trained = self.trained[case_index].get_or_init(|| {
            train(
                case,
                &self.work.path().join(format!("case{case_index}.f32")),
            )
        });
        let stem = self
            .work
            .path()
            .join(format!("case{case_index}-{precision:?}"));
        let options = CompileOptions {
            precision,
            targets: vec!["x86_64".into(), "aarch64".into(), "wasm32".into()],
            calibration: Some(trained.train_data.clone()),
            held_out: Some(trained.test_data.clone()),
            force: false,
        };
        let ignored_here = |column: &dyn Column| ignored(case.name, precision, column.ignored_as());
        let cells: Vec<Cell> = match compile(&trained.artifact, &options)
            .and_then(|package| package.write(&stem))
        {
            Err(error) => self
                .columns
                .iter()
                .map(|column| match ignored_here(column.as_ref()) {
                    Some(reason) => Cell::not_applicable(format!("{reason} (compile: {error})")),
                    None => Cell::failed(format!("compile: {error}")),
                })
                .collect(),
            Ok(_) => {
                let manifest = Package::load(&stem).map(|p| p.manifest().clone());
                self.columns
                    .iter()
                    .map(|column| {
                        if let Some(reason) = ignored_here(column.as_ref()) {
                            return Cell::not_applicable(reason.to_string());
                        }
                        let manifest = match &manifest {
                            Ok(manifest) => manifest,
                            Err(e) => return Cell::failed(format!("load: {e}")),
                        };
                        column.run(&Job {
                            package: &stem,
                            manifest,
                            features: &trained.features,
                            features_file: &trained.features_file,
                            rows: trained.rows,
                            precision,
                            expected: &trained.expected,
                            output_prefix: stem.display().to_string(),
                        })
                    })
                    .collect()
            }
        };
        let row = self.row_text(case.name, &precision_name(precision), &cells);
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((case_index, precision_index), row.clone());
        let failures = cells.iter().filter(|cell| cell.is_failure()).count();
        if failures == 0 {
            Ok(())
        } else {
            Err(format!("{failures} cell(s) failed:\n{}{row}", self.header()).into())
        }
    }

    /// Whether any row has run.
    pub fn ran(&self) -> bool {
        !self
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// The rows that ran, in [`CASES`] × [`PRECISIONS`] order under one header, with the columns' footnotes.
    pub fn table(&self) -> String {
        let mut table = self.header();
        for row in self
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            table.push_str(row);
        }
        for footnote in self.columns.iter().filter_map(|column| column.footnote()) {
            writeln!(table, "{footnote}").unwrap();
        }
        table
    }

    fn header(&self) -> String {
        let mut header = format!("{:<28} {:<6}", "case", "prec");
        for column in &self.columns {
            write!(header, " | {:<24}", column.name()).unwrap();
        }
        header.push('\n');
        header
    }

    /// One row of the table, then each cell's note once, after the columns that gave it.
    fn row_text(&self, case: &str, precision: &str, cells: &[Cell]) -> String {
        let mut row = format!("{case:<28} {precision:<6}");
        for cell in cells {
            write!(row, " | {:<24}", cell_text(cell)).unwrap();
        }
        row.push('\n');
        let mut notes: Vec<(Vec<&str>, &str)> = Vec::new();
        for (cell, column) in cells.iter().zip(&self.columns) {
            if cell.note.is_empty() {
                continue;
            }
            match notes.iter_mut().find(|(_, note)| *note == cell.note) {
                Some((columns, _)) => columns.push(column.name()),
                None => notes.push((vec![column.name()], &cell.note)),
            }
        }
        for (columns, note) in notes {
            writeln!(row, "    {}: {note}", columns.join(", ")).unwrap();
        }
        row
    }
}

/// A cell as the table shows it: `max |Δ| / label agreement / verdict`, or N/A, fallback, not run.
fn cell_text(cell: &Cell) -> String {
    if cell.not_applicable {
        return "N/A".to_string();
    }
    if cell.note.starts_with("fallback") {
        return "fallback (CPU)".to_string();
    }
    if cell.note.starts_with("not run") {
        return if cell.pass {
            "not run"
        } else {
            "not run / FAIL"
        }
        .to_string();
    }
    let labels = cell
        .label_agreement
        .map(|a| format!("{:.4}", a))
        .unwrap_or_else(|| "-".to_string());
    format!(
        "{:.2e} / {} / {}",
        cell.max_abs_diff,
        labels,
        if cell.pass { "PASS" } else { "FAIL" }
    )
}
