//! Mini-batches read from one pass of a channel, every record checked (width, finite values) and numbered, for the
//! streaming algorithms (K-Means, PCA, Random Cut Forest). Memory is bounded by one batch; sparse records stay sparse.

use ndarray::Array2;
use tern_formats::{Features, RecordStream};

use crate::data::{record_error, CsrMatrix, FeatureMatrix};
use crate::TrainError;

/// Reads `batch_size` records at a time from one pass of a channel.
pub struct MiniBatches {
    stream: RecordStream<'static>,
    channel: String,
    feature_dim: usize,
    records_read: usize,
}

impl MiniBatches {
    /// Batches of `stream` (one pass of `channel`), each record required to have `feature_dim` features, all finite.
    pub fn new(stream: RecordStream<'static>, channel: &str, feature_dim: usize) -> Self {
        MiniBatches {
            stream,
            channel: channel.to_string(),
            feature_dim,
            records_read: 0,
        }
    }

    /// The number of records read so far in this pass.
    pub fn records_read(&self) -> usize {
        self.records_read
    }

    /// The next up-to-`batch_size` records, `None` at the end of the pass. A batch is dense when its first record is,
    /// sparse (CSR) otherwise; records of the other kind are converted. Labels and weights are ignored.
    ///
    /// # Errors
    /// The stream's parse errors (file, line/record), and [`TrainError::Data`] naming the channel, the 1-based record
    /// and the field for a record of the wrong width, a feature index beyond `feature_dim`, or a NaN/infinite value.
    pub fn next_batch(&mut self, batch_size: usize) -> Result<Option<FeatureMatrix>, TrainError> {
        let d = self.feature_dim;
        let mut dense: Option<Vec<f32>> = None;
        let mut sparse: Option<CsrMatrix> = None;
        let mut rows = 0;
        while rows < batch_size {
            let Some(record) = self.stream.next() else {
                break;
            };
            let record = record?;
            self.records_read += 1;
            let index = self.records_read;
            match record.features {
                Features::Dense(values) => {
                    if values.len() != d {
                        return Err(record_error(
                            &self.channel,
                            index,
                            "features",
                            format!("{} features, expected {d} (feature_dim)", values.len()),
                        ));
                    }
                    self.check_finite(index, values.iter().copied().enumerate())?;
                    if let Some(csr) = sparse.as_mut() {
                        let (indices, values): (Vec<u32>, Vec<f32>) = values
                            .iter()
                            .enumerate()
                            .filter(|(_, &v)| v != 0.0)
                            .map(|(j, &v)| (j as u32, v))
                            .unzip();
                        csr.push_row(&indices, &values);
                    } else {
                        dense
                            .get_or_insert_with(|| Vec::with_capacity(batch_size.min(1 << 16) * d))
                            .extend_from_slice(&values);
                    }
                }
                Features::Sparse {
                    indices, values, ..
                } => {
                    if let Some(&last) = indices.iter().max() {
                        if last as usize >= d {
                            return Err(record_error(
                                &self.channel,
                                index,
                                "features",
                                format!("feature index {last}, beyond feature_dim {d}"),
                            ));
                        }
                    }
                    self.check_finite(
                        index,
                        indices
                            .iter()
                            .map(|&j| j as usize)
                            .zip(values.iter().copied()),
                    )?;
                    if let Some(flat) = dense.as_mut() {
                        let start = flat.len();
                        flat.resize(start + d, 0.0);
                        for (&j, &v) in indices.iter().zip(&values) {
                            flat[start + j as usize] = v;
                        }
                    } else {
                        let csr = sparse.get_or_insert_with(|| CsrMatrix::new(d));
                        let mut pairs: Vec<(u32, f32)> = indices.into_iter().zip(values).collect();
                        pairs.sort_by_key(|&(j, _)| j);
                        let (indices, values): (Vec<u32>, Vec<f32>) = pairs.into_iter().unzip();
                        csr.push_row(&indices, &values);
                    }
                }
            }
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        Ok(Some(match (dense, sparse) {
            (Some(flat), _) => FeatureMatrix::Dense(
                Array2::from_shape_vec((rows, d), flat)
                    .map_err(|e| TrainError::data(&self.channel, e.to_string()))?,
            ),
            (None, Some(csr)) => FeatureMatrix::Sparse(csr),
            (None, None) => unreachable!("rows > 0 means one kind of record was read"),
        }))
    }

    fn check_finite(
        &self,
        index: usize,
        values: impl Iterator<Item = (usize, f32)>,
    ) -> Result<(), TrainError> {
        for (j, v) in values {
            if !v.is_finite() {
                return Err(record_error(
                    &self.channel,
                    index,
                    &format!("features[{j}]"),
                    format!("{v}, expected a finite number"),
                ));
            }
        }
        Ok(())
    }
}
