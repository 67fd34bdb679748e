//! TEMPORARY skeleton: replaced by the formats work in this session.
use crate::{FormatError, Record};
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    pub label_size: usize,
    pub weight_column: bool,
}
pub struct CsvReader<R> {
    _r: R,
}
impl<R: std::io::Read> CsvReader<R> {
    pub fn new(r: R, _source: &str, _o: CsvOptions) -> Self {
        CsvReader { _r: r }
    }
}
impl<R: std::io::Read> Iterator for CsvReader<R> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}
