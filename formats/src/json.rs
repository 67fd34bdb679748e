//! TEMPORARY skeleton: replaced by the formats work in this session.
use crate::{FormatError, Record};
pub struct JsonLinesReader<R> {
    _r: R,
}
impl<R: std::io::Read> JsonLinesReader<R> {
    pub fn new(r: R, _source: &str) -> Self {
        JsonLinesReader { _r: r }
    }
}
impl<R: std::io::Read> Iterator for JsonLinesReader<R> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}
pub fn read_json_request<R: std::io::Read>(
    _r: R,
    _source: &str,
) -> Result<Vec<Record>, FormatError> {
    Ok(vec![])
}
