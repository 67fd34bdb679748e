//! TEMPORARY skeleton: replaced by the formats work in this session.
use crate::{FormatError, Record};
pub struct RecordIoReader<R> {
    _r: R,
}
impl<R: std::io::Read> RecordIoReader<R> {
    pub fn new(r: R, _source: &str) -> Self {
        RecordIoReader { _r: r }
    }
}
impl<R: std::io::Read> Iterator for RecordIoReader<R> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}
