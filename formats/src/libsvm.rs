//! TEMPORARY skeleton: replaced by the formats work in this session.
use crate::{FormatError, Record};
pub struct LibsvmReader<R> {
    _r: R,
}
impl<R: std::io::Read> LibsvmReader<R> {
    pub fn new(r: R, _source: &str) -> Self {
        LibsvmReader { _r: r }
    }
}
impl<R: std::io::Read> Iterator for LibsvmReader<R> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}
