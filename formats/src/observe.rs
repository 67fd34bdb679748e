//! What a run reports while it works — progress, SageMaker's `#metric` lines, log lines — as [`Event`]s handed to an
//! [`Observer`]. Training, batch transform and every other library routine report here and never draw: the CLI's
//! observer draws progress bars, [`StderrLines`] writes the lines a SageMaker container writes, and the Python wheel
//! and Spark forward the same events to their own callers. It lives in the crate every other crate builds on, so
//! the trainer and the runtimes share it.

use std::sync::Arc;

/// One thing a run reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// A stage of `total` steps began (`total` 0: not known yet; a later [`Event::Total`] says).
    Started { stage: &'a str, total: u64 },
    /// The current stage's number of steps became known or changed.
    Total(u64),
    /// `steps` more steps of the current stage are done.
    Advanced { steps: u64 },
    /// A short status for the current stage, e.g. the running training loss.
    Message(&'a str),
    /// The current stage ended.
    Finished,
    /// A metric was measured (`epoch`: the 0-based epoch or round; `None` for a final value): SageMaker's `#metric`
    /// line, [`metric_line`].
    Metric {
        name: &'a str,
        epoch: Option<usize>,
        value: f64,
    },
    /// An information line.
    Log(&'a str),
}

/// SageMaker's metric line, `#metric epoch=3 validation:rmse=0.125000` (no `epoch=` for a final value): what
/// automatic model tuning's regular expressions read from a training log.
pub fn metric_line(name: &str, epoch: Option<usize>, value: f64) -> String {
    match epoch {
        Some(epoch) => format!("#metric epoch={epoch} {name}={value:.6}"),
        None => format!("#metric {name}={value:.6}"),
    }
}

/// Receives a run's [`Event`]s, from any thread.
pub trait Observer: Send + Sync {
    fn observe(&self, event: &Event<'_>);
}

/// Drops every event (`--quiet`).
pub struct Silent;

impl Observer for Silent {
    fn observe(&self, _event: &Event<'_>) {}
}

/// Writes metric and log lines to standard error, as SageMaker's containers do, and draws no progress.
pub struct StderrLines;

impl Observer for StderrLines {
    fn observe(&self, event: &Event<'_>) {
        match event {
            Event::Metric { name, epoch, value } => {
                eprintln!("{}", metric_line(name, *epoch, *value))
            }
            Event::Log(line) => eprintln!("{line}"),
            _ => {}
        }
    }
}

/// The progress of one stage, for the code doing its steps; cheap to clone and to call from rayon's threads.
#[derive(Clone)]
pub struct Progress {
    observer: Arc<dyn Observer>,
}

impl Progress {
    /// Starts a stage of `total` steps named `stage` on `observer`.
    pub fn start(observer: Arc<dyn Observer>, stage: &str, total: u64) -> Progress {
        observer.observe(&Event::Started { stage, total });
        Progress { observer }
    }

    /// Progress nobody watches.
    pub fn hidden() -> Progress {
        Progress {
            observer: Arc::new(Silent),
        }
    }

    /// `steps` more steps are done.
    pub fn inc(&self, steps: u64) {
        self.observer.observe(&Event::Advanced { steps });
    }

    /// The stage has `total` steps in all.
    pub fn set_length(&self, total: u64) {
        self.observer.observe(&Event::Total(total));
    }

    /// Shows `message` beside the stage's progress.
    pub fn set_message(&self, message: impl AsRef<str>) {
        self.observer.observe(&Event::Message(message.as_ref()));
    }

    /// Ends the stage, showing `message` last.
    pub fn finish_with_message(&self, message: impl AsRef<str>) {
        self.set_message(message);
        self.observer.observe(&Event::Finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_are_sagemakers() {
        assert_eq!(
            metric_line("validation:rmse", Some(3), 0.125),
            "#metric epoch=3 validation:rmse=0.125000"
        );
        assert_eq!(
            metric_line("test:mse", None, 2.0),
            "#metric test:mse=2.000000"
        );
    }
}
