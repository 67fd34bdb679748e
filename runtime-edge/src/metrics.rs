//! `/metrics` in the Prometheus text exposition format (version 0.0.4): invocations by variant and status code, a
//! latency histogram per variant, requests in flight, and, with micro-batching, batches executed and histograms of
//! their size in rows and in requests per variant.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` follows.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of the batch-size histograms' buckets (rows, and requests, per executed batch); `+Inf` follows.
pub const BATCH_SIZE_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

// Batch-size histograms share the latency histogram's bucket array.
const _: () = assert!(BATCH_SIZE_BUCKETS.len() <= LATENCY_BUCKETS.len());

/// The variant label of requests answered before a variant was chosen (not ready, unknown target variant).
pub const NO_VARIANT: &str = "";

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`], non-cumulative, then the overflow bucket.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        let bucket = bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Writes the `_bucket` (cumulative), `_sum` and `_count` series of `name` for `variant`.
    fn render(&self, out: &mut String, name: &str, bounds: &[f64], variant: &str) {
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(
                out,
                "{name}_bucket{{variant=\"{variant}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{variant=\"{variant}\",le=\"+Inf\"}} {}\n\
             {name}_sum{{variant=\"{variant}\"}} {}\n\
             {name}_count{{variant=\"{variant}\"}} {}",
            self.count, self.sum, self.count
        );
    }
}

/// One variant's micro-batching figures.
#[derive(Debug, Default, Clone)]
struct Batches {
    rows: Histogram,
    requests: Histogram,
}

#[derive(Debug, Default)]
struct Tables {
    /// (variant, status code) → invocations.
    invocations: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batches: BTreeMap<String, Batches>,
}

/// The endpoint's counters; shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    tables: Mutex<Tables>,
    in_flight: AtomicI64,
}

/// Counts one `/invocations` request as in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Metrics {
    /// Marks an `/invocations` request as started; it stays in `tern_invocations_in_flight` until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    /// Records an answered `/invocations` request.
    pub fn record(&self, variant: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        *tables
            .invocations
            .entry((variant.to_string(), status))
            .or_default() += 1;
        tables
            .latency
            .entry(variant.to_string())
            .or_default()
            .observe(&LATENCY_BUCKETS, seconds);
    }

    /// Records one executed micro-batch of `variant`: `requests` requests merged into one run of `rows` rows.
    pub fn record_batch(&self, variant: &str, requests: usize, rows: usize) {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let batches = tables.batches.entry(variant.to_string()).or_default();
        batches.rows.observe(&BATCH_SIZE_BUCKETS, rows as f64);
        batches
            .requests
            .observe(&BATCH_SIZE_BUCKETS, requests as f64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tern_invocations_total /invocations requests answered, by production variant and HTTP status code.\n\
             # TYPE tern_invocations_total counter"
        );
        for ((variant, code), count) in &tables.invocations {
            let _ = writeln!(
                out,
                "tern_invocations_total{{variant=\"{}\",code=\"{code}\"}} {count}",
                escape(variant)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tern_invocation_duration_seconds Time from request to response of /invocations, by production variant.\n\
             # TYPE tern_invocation_duration_seconds histogram"
        );
        for (variant, histogram) in &tables.latency {
            histogram.render(
                &mut out,
                "tern_invocation_duration_seconds",
                &LATENCY_BUCKETS,
                &escape(variant),
            );
        }
        let _ = writeln!(
            out,
            "# HELP tern_batches_total Micro-batches executed (each one run of the variant's packages), by production variant.\n\
             # TYPE tern_batches_total counter"
        );
        for (variant, batches) in &tables.batches {
            let _ = writeln!(
                out,
                "tern_batches_total{{variant=\"{}\"}} {}",
                escape(variant),
                batches.rows.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP tern_batch_size_rows Rows per executed micro-batch, by production variant.\n\
             # TYPE tern_batch_size_rows histogram"
        );
        for (variant, batches) in &tables.batches {
            let variant = escape(variant);
            batches.rows.render(
                &mut out,
                "tern_batch_size_rows",
                &BATCH_SIZE_BUCKETS,
                &variant,
            );
        }
        let _ = writeln!(
            out,
            "# HELP tern_batch_size_requests Requests merged into each executed micro-batch, by production variant.\n\
             # TYPE tern_batch_size_requests histogram"
        );
        for (variant, batches) in &tables.batches {
            let variant = escape(variant);
            batches.requests.render(
                &mut out,
                "tern_batch_size_requests",
                &BATCH_SIZE_BUCKETS,
                &variant,
            );
        }
        let _ = writeln!(
            out,
            "# HELP tern_invocations_in_flight /invocations requests being answered now.\n\
             # TYPE tern_invocations_in_flight gauge\n\
             tern_invocations_in_flight {}",
            self.in_flight.load(Ordering::SeqCst).max(0)
        );
        out
    }
}

/// A label value with `\`, `"` and newlines escaped as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_split_by_variant_and_code() {
        let metrics = Metrics::default();
        metrics.record("a", 200, Duration::from_micros(300));
        metrics.record("a", 200, Duration::from_millis(20));
        metrics.record("a", 400, Duration::from_secs(10));
        metrics.record("b\"x", 415, Duration::from_millis(1));
        let text = metrics.render();
        assert!(
            text.contains("tern_invocations_total{variant=\"a\",code=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("tern_invocations_total{variant=\"a\",code=\"400\"} 1\n"));
        assert!(text.contains("tern_invocations_total{variant=\"b\\\"x\",code=\"415\"} 1\n"));
        assert!(text
            .contains("tern_invocation_duration_seconds_bucket{variant=\"a\",le=\"0.0005\"} 1\n"));
        assert!(text
            .contains("tern_invocation_duration_seconds_bucket{variant=\"a\",le=\"0.025\"} 2\n"));
        assert!(
            text.contains("tern_invocation_duration_seconds_bucket{variant=\"a\",le=\"2.5\"} 2\n")
        );
        assert!(
            text.contains("tern_invocation_duration_seconds_bucket{variant=\"a\",le=\"+Inf\"} 3\n")
        );
        assert!(text.contains("tern_invocation_duration_seconds_count{variant=\"a\"} 3\n"));
        let guard = metrics.start();
        assert!(metrics.render().contains("tern_invocations_in_flight 1\n"));
        drop(guard);
        assert!(metrics.render().contains("tern_invocations_in_flight 0\n"));
    }

    #[test]
    fn batches_are_counted_with_their_rows_and_requests() {
        let metrics = Metrics::default();
        metrics.record_batch("a", 3, 5);
        metrics.record_batch("a", 1, 1);
        let text = metrics.render();
        assert!(
            text.contains("tern_batches_total{variant=\"a\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("tern_batch_size_rows_bucket{variant=\"a\",le=\"4\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tern_batch_size_rows_bucket{variant=\"a\",le=\"8\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("tern_batch_size_rows_sum{variant=\"a\"} 6\n"),
            "{text}"
        );
        assert!(
            text.contains("tern_batch_size_requests_bucket{variant=\"a\",le=\"2\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tern_batch_size_requests_count{variant=\"a\"} 2\n"),
            "{text}"
        );
    }
}
