//! The JSONPath subset SageMaker batch transform accepts in `DataProcessing.InputFilter` / `OutputFilter`.
//!
//! | Operator | Meaning |
//! |---|---|
//! | `$` | the root (the whole record); must start every expression |
//! | `.name` | the child `name` of an object |
//! | `*` (`.*` or `[*]`) | every child: the elements of an array, the values of an object (in key order) |
//! | `['a']`, `['a','b']` | one child by name, or several kept as an object with those keys (`$['id','SageMakerOutput']`) |
//! | `[n]`, `[n,m]` | one element by index, or several kept as an array; negative counts from the end (`-1` = last) |
//! | `[start:end]` | a slice of an array (either bound optional, negative allowed, end exclusive): `$[1:]` |
//!
//! Index and slice selectors combine in one bracket (`$[0,5:]`). CSV rows are treated as JSON arrays. Anything else
//! (filters `?()`, recursive descent `..`, slice steps, scripts) is refused when the expression is parsed, naming the
//! position. Evaluating a path that selects something the record lacks (a missing name, an index beyond the array)
//! is an error, as in SageMaker.

use serde_json::{Map, Value};

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// One child by name: descends.
    Child(String),
    /// Several children by name: an object keeping those keys.
    Children(Vec<String>),
    /// One element by index: descends.
    Index(i64),
    /// Indices and slices: an array of the selected elements, in the order written.
    Elements(Vec<Selector>),
    /// Every child.
    Wildcard,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Selector {
    Index(i64),
    Slice(Option<i64>, Option<i64>),
}

/// Why an expression was refused or could not be applied to a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PathError {
    /// The expression is outside the supported subset or malformed.
    #[error("JSONPath {expression:?} at character {position}: {message}")]
    Syntax {
        expression: String,
        position: usize,
        message: String,
    },
    /// The record lacks what the expression selects.
    #[error("JSONPath {expression:?}: {message}")]
    Select { expression: String, message: String },
}

impl JsonPath {
    /// Parses `expression`. An empty expression means `$`, as SageMaker's default.
    pub fn parse(expression: &str) -> Result<JsonPath, PathError> {
        let source = if expression.trim().is_empty() {
            "$".to_string()
        } else {
            expression.trim().to_string()
        };
        let segments = Parser {
            text: source.as_bytes(),
            expression: &source,
            position: 0,
        }
        .parse()?;
        Ok(JsonPath { source, segments })
    }

    /// Whether this is `$`: the whole record, unchanged.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Applies the expression to `value`.
    pub fn select(&self, value: &Value) -> Result<Value, PathError> {
        select(&self.segments, value, "$").map_err(|message| PathError::Select {
            expression: self.source.clone(),
            message,
        })
    }
}

fn select(segments: &[Segment], value: &Value, at: &str) -> Result<Value, String> {
    let Some((segment, rest)) = segments.split_first() else {
        return Ok(value.clone());
    };
    match segment {
        Segment::Child(name) => {
            let child = object(value, at)?
                .get(name)
                .ok_or_else(|| format!("{at} has no field {name:?}"))?;
            select(rest, child, &format!("{at}.{name}"))
        }
        Segment::Children(names) => {
            let fields = object(value, at)?;
            let mut out = Map::new();
            for name in names {
                let child = fields
                    .get(name)
                    .ok_or_else(|| format!("{at} has no field {name:?}"))?;
                out.insert(name.clone(), select(rest, child, &format!("{at}.{name}"))?);
            }
            Ok(Value::Object(out))
        }
        Segment::Index(index) => {
            let elements = array(value, at)?;
            let position = resolve(*index, elements.len(), at)?;
            select(rest, &elements[position], &format!("{at}[{index}]"))
        }
        Segment::Elements(selectors) => {
            let elements = array(value, at)?;
            let mut out = Vec::new();
            for selector in selectors {
                match *selector {
                    Selector::Index(index) => {
                        let position = resolve(index, elements.len(), at)?;
                        out.push(select(
                            rest,
                            &elements[position],
                            &format!("{at}[{index}]"),
                        )?);
                    }
                    Selector::Slice(start, end) => {
                        let (from, to) = slice_bounds(start, end, elements.len());
                        for (offset, element) in elements[from..to].iter().enumerate() {
                            out.push(select(rest, element, &format!("{at}[{}]", from + offset))?);
                        }
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Segment::Wildcard => match value {
            Value::Array(elements) => elements
                .iter()
                .enumerate()
                .map(|(i, element)| select(rest, element, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(fields) => fields
                .iter()
                .map(|(name, child)| select(rest, child, &format!("{at}.{name}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Err(format!("{at} is {}, not an array or object", kind(other))),
        },
    }
}

fn object<'v>(value: &'v Value, at: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{at} is {}, not an object", kind(value)))
}

fn array<'v>(value: &'v Value, at: &str) -> Result<&'v Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{at} is {}, not an array", kind(value)))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn resolve(index: i64, len: usize, at: &str) -> Result<usize, String> {
    let position = if index < 0 { len as i64 + index } else { index };
    if position < 0 || position >= len as i64 {
        return Err(format!(
            "index {index} is outside {at}, which has {len} elements"
        ));
    }
    Ok(position as usize)
}

fn slice_bounds(start: Option<i64>, end: Option<i64>, len: usize) -> (usize, usize) {
    let clamp = |bound: i64| -> usize {
        let position = if bound < 0 { len as i64 + bound } else { bound };
        position.clamp(0, len as i64) as usize
    };
    let from = start.map_or(0, clamp);
    let to = end.map_or(len, clamp);
    (from, to.max(from))
}

struct Parser<'a> {
    text: &'a [u8],
    expression: &'a str,
    position: usize,
}

impl Parser<'_> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, PathError> {
        Err(PathError::Syntax {
            expression: self.expression.to_string(),
            position: self.position,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.position).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.position += 1;
        }
    }

    fn parse(mut self) -> Result<Vec<Segment>, PathError> {
        if self.peek() != Some(b'$') {
            return self.error("an expression starts with $");
        }
        self.position += 1;
        let mut segments = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b'.' => {
                    self.position += 1;
                    match self.peek() {
                        Some(b'.') => return self.error("recursive descent (..) is not supported"),
                        Some(b'*') => {
                            self.position += 1;
                            segments.push(Segment::Wildcard);
                        }
                        _ => {
                            let start = self.position;
                            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                            {
                                self.position += 1;
                            }
                            if start == self.position {
                                return self.error("expected a field name after '.'");
                            }
                            segments.push(Segment::Child(
                                self.expression[start..self.position].to_string(),
                            ));
                        }
                    }
                }
                b'[' => {
                    self.position += 1;
                    segments.push(self.bracket()?);
                }
                _ => return self.error(format!("unexpected {:?}; expected '.' or '['", c as char)),
            }
        }
        Ok(segments)
    }

    /// After '[': names, or indices/slices, or '*', up to ']'.
    fn bracket(&mut self) -> Result<Segment, PathError> {
        self.skip_spaces();
        match self.peek() {
            Some(b'*') => {
                self.position += 1;
                self.skip_spaces();
                self.expect(b']')?;
                Ok(Segment::Wildcard)
            }
            Some(b'\'') | Some(b'"') => {
                let mut names = Vec::new();
                loop {
                    self.skip_spaces();
                    names.push(self.quoted()?);
                    self.skip_spaces();
                    match self.peek() {
                        Some(b',') => self.position += 1,
                        Some(b']') => {
                            self.position += 1;
                            break;
                        }
                        _ => return self.error("expected ',' or ']' after a quoted name"),
                    }
                }
                Ok(if names.len() == 1 {
                    Segment::Child(names.remove(0))
                } else {
                    Segment::Children(names)
                })
            }
            Some(b'?') | Some(b'(') => {
                self.error("filter and script expressions are not supported")
            }
            _ => {
                let mut selectors = Vec::new();
                loop {
                    self.skip_spaces();
                    let start = self.integer()?;
                    self.skip_spaces();
                    if self.peek() == Some(b':') {
                        self.position += 1;
                        self.skip_spaces();
                        let end = self.integer()?;
                        self.skip_spaces();
                        if self.peek() == Some(b':') {
                            return self.error("slice steps are not supported");
                        }
                        selectors.push(Selector::Slice(start, end));
                    } else {
                        match start {
                            Some(index) => selectors.push(Selector::Index(index)),
                            None => {
                                return self.error("expected an index, a slice, a quoted name or *")
                            }
                        }
                    }
                    match self.peek() {
                        Some(b',') => self.position += 1,
                        Some(b']') => {
                            self.position += 1;
                            break;
                        }
                        _ => return self.error("expected ',' or ']'"),
                    }
                }
                Ok(match selectors.as_slice() {
                    [Selector::Index(index)] => Segment::Index(*index),
                    _ => Segment::Elements(selectors),
                })
            }
        }
    }

    fn expect(&mut self, wanted: u8) -> Result<(), PathError> {
        if self.peek() == Some(wanted) {
            self.position += 1;
            Ok(())
        } else {
            self.error(format!("expected {:?}", wanted as char))
        }
    }

    /// An optional signed integer.
    fn integer(&mut self) -> Result<Option<i64>, PathError> {
        let start = self.position;
        if self.peek() == Some(b'-') {
            self.position += 1;
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.position += 1;
        }
        let text = &self.expression[start..self.position];
        if text.is_empty() {
            return Ok(None);
        }
        match text.parse::<i64>() {
            Ok(value) => Ok(Some(value)),
            Err(_) => {
                self.position = start;
                self.error(format!("{text:?} is not an integer"))
            }
        }
    }

    fn quoted(&mut self) -> Result<String, PathError> {
        let Some(quote) = self.peek().filter(|&c| c == b'\'' || c == b'"') else {
            return self.error("expected a quoted name");
        };
        self.position += 1;
        let start = self.position;
        while let Some(c) = self.peek() {
            if c == quote {
                let name = self.expression[start..self.position].to_string();
                self.position += 1;
                return Ok(name);
            }
            self.position += 1;
        }
        self.error("unterminated quoted name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(expression: &str, value: Value) -> Value {
        JsonPath::parse(expression).unwrap().select(&value).unwrap()
    }

    #[test]
    fn root_and_empty_keep_the_record() {
        assert!(JsonPath::parse("$").unwrap().is_root());
        assert!(JsonPath::parse("").unwrap().is_root());
        assert_eq!(apply("$", json!([1, 2])), json!([1, 2]));
    }

    #[test]
    fn sagemaker_documented_examples() {
        // CSV rows are arrays: drop the id column, keep id and the appended prediction.
        assert_eq!(
            apply("$[1:]", json!(["7", "1.5", "2.5"])),
            json!(["1.5", "2.5"])
        );
        assert_eq!(
            apply("$[0,-1]", json!(["7", "1.5", "2.5", "0.9"])),
            json!(["7", "0.9"])
        );
        assert_eq!(
            apply("$[0,5:]", json!([0, 1, 2, 3, 4, 5, 6])),
            json!([0, 5, 6])
        );
        assert_eq!(
            apply("$.features", json!({"id": 3, "features": [1, 2]})),
            json!([1, 2])
        );
        assert_eq!(
            apply(
                "$['id','SageMakerOutput']",
                json!({"id": 3, "features": [1], "SageMakerOutput": {"score": 0.5}})
            ),
            json!({"id": 3, "SageMakerOutput": {"score": 0.5}})
        );
    }

    #[test]
    fn names_indices_slices_and_wildcards() {
        let record = json!({"a": {"b": [10, 20, 30]}, "c": 1});
        assert_eq!(apply("$.a.b[1]", record.clone()), json!(20));
        assert_eq!(apply("$['a']['b'][-1]", record.clone()), json!(30));
        assert_eq!(apply("$.a.b[:2]", record.clone()), json!([10, 20]));
        assert_eq!(apply("$.a.b[-2:]", record.clone()), json!([20, 30]));
        assert_eq!(apply("$.a.b[5:]", record.clone()), json!([]));
        assert_eq!(apply("$.a.b[*]", record.clone()), json!([10, 20, 30]));
        assert_eq!(apply("$.*", json!({"x": 1, "y": 2})), json!([1, 2]));
        assert_eq!(apply("$[*].v", json!([{"v": 1}, {"v": 2}])), json!([1, 2]));
        assert_eq!(apply("$[0, 2]", json!([1, 2, 3])), json!([1, 3]));
    }

    #[test]
    fn unsupported_syntax_is_refused_with_its_position() {
        for (expression, position) in [
            ("features", 0),
            ("$..a", 2),
            ("$[?(@.a)]", 2),
            ("$[::2]", 3),
            ("$[1:3:1]", 5),
            ("$.a[", 4),
            ("$['a'", 5),
            ("$[a]", 2),
            ("$ .a", 1),
        ] {
            match JsonPath::parse(expression) {
                Err(PathError::Syntax { position: at, .. }) => {
                    assert_eq!(at, position, "{expression}")
                }
                other => panic!("{expression}: expected a syntax error, got {other:?}"),
            }
        }
    }

    #[test]
    fn selecting_what_the_record_lacks_is_an_error() {
        let path = JsonPath::parse("$[0,7]").unwrap();
        let error = path.select(&json!([1, 2])).unwrap_err().to_string();
        assert!(error.contains("index 7 is outside $"), "{error}");
        let error = JsonPath::parse("$.features")
            .unwrap()
            .select(&json!({"f": 1}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no field \"features\""), "{error}");
        assert!(JsonPath::parse("$.a").unwrap().select(&json!([1])).is_err());
    }
}
