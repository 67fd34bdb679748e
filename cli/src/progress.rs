//! The CLI's [`Observer`]: draws each stage a run reports as an indicatif progress bar on standard error (hidden when
//! stderr is not a terminal) and prints metric and log lines above it.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use tern_formats::observe::{metric_line, Event, Observer};

/// How a stage's bar is drawn.
#[derive(Clone, Copy)]
pub enum BarStyle {
    /// Steps (epochs, rounds, trees): `kmeans [=====>    ] 3/10 message`.
    Steps,
    /// Bytes of input read (batch transform), with elapsed time and rate.
    Bytes,
}

/// Draws progress bars for the stages of a run.
pub struct Bars {
    style: BarStyle,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new(style: BarStyle) -> Bars {
        Bars {
            style,
            bar: Mutex::new(None),
        }
    }

    fn with_bar(&self, act: impl FnOnce(&ProgressBar)) {
        let bar = self
            .bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bar) = bar.as_ref() {
            act(bar);
        }
    }

    fn line(&self, line: &str) {
        let bar = self
            .bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match bar.as_ref() {
            Some(bar) if !bar.is_hidden() && !bar.is_finished() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }
}

impl Observer for Bars {
    fn observe(&self, event: &Event<'_>) {
        match *event {
            Event::Started { stage, total } => {
                let bar = ProgressBar::new(total);
                let template = match self.style {
                    BarStyle::Steps => "{prefix} [{bar:30}] {pos}/{len} {msg}",
                    BarStyle::Bytes => {
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}"
                    }
                };
                let style = ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(stage.to_string());
                *self
                    .bar
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(bar);
            }
            Event::Total(total) => self.with_bar(|bar| bar.set_length(total)),
            Event::Advanced { steps } => self.with_bar(|bar| bar.inc(steps)),
            Event::Message(message) => self.with_bar(|bar| bar.set_message(message.to_string())),
            Event::Finished => self.with_bar(ProgressBar::finish),
            Event::Metric { name, epoch, value } => self.line(&metric_line(name, epoch, value)),
            Event::Log(line) => self.line(line),
        }
    }
}
