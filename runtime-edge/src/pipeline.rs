//! An inference pipeline: packages chained so that package `i`'s response is package `i + 1`'s request, served as
//! one model (a single package is a pipeline of one).

use std::ops::Range;

use tern_runtime::{DecodedRequest, Outputs, Package, ResponseType, RuntimeError};

/// Packages in order, with the content type each hands to the next.
#[derive(Debug, Clone)]
pub struct Pipeline {
    packages: Vec<Package>,
    /// `handoff[i]`: the response type of package `i`, which package `i + 1` reads as its request.
    handoff: Vec<String>,
}

/// The content types tried, in order, for a hand-off between two packages.
const HANDOFF_PREFERENCE: [&str; 3] = ["text/csv", "application/jsonlines", "application/json"];

impl Pipeline {
    /// Chains `packages` (at least one). Each hand-off uses the first of `text/csv`, `application/jsonlines`,
    /// `application/json` that the earlier package produces and the later one accepts (an empty `produces` or
    /// `accepts` list allows all); `Err` names the pair with no common type.
    pub fn new(packages: Vec<Package>) -> Result<Pipeline, String> {
        if packages.is_empty() {
            return Err("a pipeline needs at least one package".to_string());
        }
        let lists = |list: &[String], mime: &str| {
            list.is_empty()
                || list
                    .iter()
                    .any(|entry| entry.split(';').next().unwrap_or_default().trim() == mime)
        };
        let mut handoff = Vec::with_capacity(packages.len() - 1);
        for (i, pair) in packages.windows(2).enumerate() {
            let (from, to) = (pair[0].manifest(), pair[1].manifest());
            let mime = HANDOFF_PREFERENCE
                .iter()
                .find(|mime| lists(&from.produces, mime) && lists(&to.accepts, mime))
                .ok_or_else(|| {
                    format!(
                        "package {i} produces {:?} and package {} accepts {:?}: no common content type among {:?}",
                        from.produces,
                        i + 1,
                        to.accepts,
                        HANDOFF_PREFERENCE
                    )
                })?;
            handoff.push(mime.to_string());
        }
        Ok(Pipeline { packages, handoff })
    }

    /// The packages, in order.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// Answers one request: the first package reads `body` as `content_type`, each later package reads its
    /// predecessor's response, and the last answers in `accept` (see [`Package::invoke`]). Returns the response
    /// body and its content type; errors are the failing package's.
    pub fn invoke(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
    ) -> Result<(Vec<u8>, String), RuntimeError> {
        let last = self.packages.len() - 1;
        let mut current: Option<(Vec<u8>, String)> = None;
        for (i, package) in self.packages.iter().enumerate() {
            let step_accept = if i == last { accept } else { &self.handoff[i] };
            let (step_body, step_type) = match &current {
                None => (body, content_type),
                Some((bytes, mime)) => (bytes.as_slice(), mime.as_str()),
            };
            current = Some(package.invoke(step_body, step_type, step_accept)?);
        }
        Ok(current.expect("a pipeline has at least one package"))
    }

    /// The first step of [`Pipeline::invoke`] split for micro-batching: decodes `body` for the first package and
    /// negotiates `accept` with the last, with `invoke`'s checks and errors.
    pub fn decode(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
    ) -> Result<DecodedRequest, RuntimeError> {
        let last = self.packages.len() - 1;
        if last == 0 {
            return self.packages[0].decode_request(body, content_type, accept);
        }
        let mut decoded = self.packages[0].decode_request(body, content_type, &self.handoff[0])?;
        decoded.response_type = self.packages[last].response_type(accept)?;
        Ok(decoded)
    }

    /// [`Pipeline::decode`] for a request of at most `max_rows` records; `None` for a larger one, which is then
    /// better streamed through [`Pipeline::invoke`] (decoding stops at record `max_rows + 1`, so it holds at most
    /// `max_rows` rows).
    pub fn decode_up_to(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
        max_rows: usize,
    ) -> Result<Option<DecodedRequest>, RuntimeError> {
        let last = self.packages.len() - 1;
        let first_accept = if last == 0 { accept } else { &self.handoff[0] };
        let decoded =
            self.packages[0].decode_request_up_to(body, content_type, first_accept, max_rows)?;
        let Some(mut decoded) = decoded else {
            return Ok(None);
        };
        if last > 0 {
            decoded.response_type = self.packages[last].response_type(accept)?;
        }
        Ok(Some(decoded))
    }

    /// Runs `rows` decoded rows (one request's or several merged) through every package, handing each package's
    /// response to the next in the hand-off content type as [`Pipeline::invoke`] does; returns the last package's
    /// outputs.
    pub fn run(&self, features: &[f32], rows: usize) -> Result<Outputs, RuntimeError> {
        let mut outputs = self.packages[0].run(features, rows)?;
        for (i, package) in self.packages.iter().enumerate().skip(1) {
            let mime = &self.handoff[i - 1];
            let from = &self.packages[i - 1];
            let handoff = from.encode_response(&outputs, 0..rows, from.response_type(mime)?)?;
            // The response type decoded here is unused (the caller's accept was negotiated by `decode`): an empty
            // accept takes the package's default, which always exists.
            let next = package.decode_request(&handoff, mime, "")?;
            outputs = package.run(&next.features, next.rows)?;
        }
        Ok(outputs)
    }

    /// The response for rows `rows` of `outputs` (from [`Pipeline::run`]) as `response_type`, with its content type:
    /// byte for byte what [`Pipeline::invoke`] answers for a request holding exactly those rows.
    pub fn encode(
        &self,
        outputs: &Outputs,
        rows: Range<usize>,
        response_type: ResponseType,
    ) -> Result<(Vec<u8>, String), RuntimeError> {
        let last = &self.packages[self.packages.len() - 1];
        let body = last.encode_response(outputs, rows, response_type)?;
        Ok((body, response_type.mime().to_string()))
    }
}
