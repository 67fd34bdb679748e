//! Typed decoding of SageMaker's JSON instances: serde visitors that build [`Record`]s straight from the parser's
//! events, with no intermediate `serde_json::Value` tree, so a request takes memory in proportion to its text (at
//! most 4 bytes per number, against the 2 bytes `0,` takes) and only one record at a time needs to exist.
//!
//! A malformed field is reported as a [`Problem`] (its JSON path and what was expected) through [`Problems`]:
//! serde's own errors carry only text.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{Features, Record};

/// (field path, message) of a malformed instance.
pub(super) type Problem = (String, String);

/// The first problem the visitors found; the serde error they return only unwinds the parse.
#[derive(Default)]
pub(super) struct Problems(RefCell<Option<Problem>>);

impl Problems {
    /// Records `field`'s problem (the first one wins) and returns the error that stops the parse.
    fn report<E: de::Error>(&self, field: String, message: String) -> E {
        self.0.borrow_mut().get_or_insert((field, message));
        E::custom("malformed instance")
    }

    /// The recorded problem, if any.
    pub(super) fn take(&self) -> Option<Problem> {
        self.0.borrow_mut().take()
    }
}

/// A JSON path, built on the stack as the decoder descends and rendered only for an error, e.g.
/// `instances[2].data.features.keys[1]` (indices 0-based).
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut text = String::new();
        self.render_into(&mut text);
        text
    }

    fn render_into(&self, text: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render_into(text);
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.render_into(text);
                let _ = write!(text, "[{index}]");
            }
        }
    }

    /// The field an instance-level problem names: the path, or `record` at the top level.
    fn instance_field(&self) -> String {
        match self.render() {
            text if text.is_empty() => "record".to_string(),
            text => text,
        }
    }
}

/// The longest JSON text an error message quotes of an unexpected value.
const QUOTE_LIMIT: usize = 64;

/// A short description of an unexpected value for an error message, e.g. `a string "x"` or `an array [1,[2]]…`,
/// written as the value is consumed: at most [`QUOTE_LIMIT`] characters are kept, whatever the value's size.
struct Sketch {
    text: String,
    chars: usize,
    truncated: bool,
}

impl Sketch {
    fn new() -> Self {
        Sketch {
            text: String::new(),
            chars: 0,
            truncated: false,
        }
    }

    fn push(&mut self, piece: &str) {
        for c in piece.chars() {
            if self.truncated || self.chars == QUOTE_LIMIT {
                self.truncated = true;
                return;
            }
            self.text.push(c);
            self.chars += 1;
        }
    }

    fn push_string(&mut self, value: &str) {
        // Escaping only what can be shown keeps a huge string from being copied whole.
        let shown: String = value.chars().take(QUOTE_LIMIT + 1).collect();
        let escaped = serde_json::to_string(&shown).unwrap_or_default();
        if shown.len() < value.len() {
            self.push(&escaped[..escaped.len() - 1]);
            self.truncated = true;
        } else {
            self.push(&escaped);
        }
    }

    fn finish(self, kind: &str) -> String {
        let ellipsis = if self.truncated { "…" } else { "" };
        format!("{kind} {}{ellipsis}", self.text)
    }
}

/// Consumes one value into a [`Sketch`].
struct SketchSeed<'s>(&'s mut Sketch);

impl<'de> DeserializeSeed<'de> for SketchSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SketchSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(if v { "true" } else { "false" });
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(&v.to_string());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(&v.to_string());
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(&number_text(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push_string(v);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push("null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push("[");
        let mut first = true;
        while !self.0.truncated {
            // A separator is due only if an element follows, which reading it tells: take it back otherwise.
            let (length, chars) = (self.0.text.len(), self.0.chars);
            if !first {
                self.0.push(",");
            }
            if seq.next_element_seed(SketchSeed(self.0))?.is_none() {
                self.0.text.truncate(length);
                self.0.chars = chars;
                self.0.push("]");
                return Ok(());
            }
            first = false;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push("{");
        let mut first = true;
        while let Some(key) = map.next_key::<KeyText>()? {
            if !first {
                self.0.push(",");
            }
            first = false;
            self.0.push_string(&key.0);
            self.0.push(":");
            map.next_value_seed(SketchSeed(self.0))?;
        }
        self.0.push("}");
        Ok(())
    }
}

/// An object key, kept only as far as an error message shows it.
struct KeyText(String);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.chars().take(QUOTE_LIMIT + 1).collect()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A finite JSON number as `serde_json` prints it.
fn number_text(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string())
}

/// What a visitor found where it expected something else: the rest of a compound value is consumed into a sketch.
fn describe_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<String, A::Error> {
    let mut sketch = Sketch::new();
    SketchSeed(&mut sketch).visit_seq(seq)?;
    Ok(sketch.finish("an array"))
}

fn describe_map<'de, A: MapAccess<'de>>(map: A) -> Result<String, A::Error> {
    let mut sketch = Sketch::new();
    SketchSeed(&mut sketch).visit_map(map)?;
    Ok(sketch.finish("an object"))
}

fn describe_str(v: &str) -> String {
    let mut sketch = Sketch::new();
    sketch.push_string(v);
    sketch.finish("a string")
}

/// Implements the visitor methods for every scalar JSON value a visitor does not expect, as
/// `self.unexpected(description)`.
macro_rules! refuse_scalars {
    ($($method:ident),*) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            self.unexpected(format!("a boolean {v}"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            self.unexpected(describe_str(v))
        }
        $(refuse_scalars!(@one $method);)*
    };
    (@one numbers) => {
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.unexpected(format!("a number {v}"))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.unexpected(format!("a number {v}"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            self.unexpected(format!("a number {}", number_text(v)))
        }
    };
    (@one null) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.unexpected("null".to_string())
        }
    };
    (@one seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let found = describe_seq(seq)?;
            self.unexpected(found)
        }
    };
    (@one map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let found = describe_map(map)?;
            self.unexpected(found)
        }
    };
}

/// One feature value: a number, or `null` (NaN, missing).
#[derive(Clone, Copy)]
struct NumberSeed<'a> {
    path: Path<'a>,
    problems: &'a Problems,
}

impl NumberSeed<'_> {
    fn unexpected<E: de::Error>(self, found: String) -> Result<f32, E> {
        Err(self.problems.report(
            self.path.render(),
            format!("expected a number, found {found}"),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for NumberSeed<'_> {
    type Value = f32;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f32, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberSeed<'_> {
    type Value = f32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or null")
    }

    // JSON numbers are read as f64 first, then narrowed, whatever their written form.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f32, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f32, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f32, E> {
        match narrow(v) {
            Some(value) => Ok(value),
            None => Err(self.problems.report(self.path.render(), beyond_float32(v))),
        }
    }

    fn visit_unit<E>(self) -> Result<f32, E> {
        Ok(f32::NAN)
    }

    refuse_scalars!(seq, map);
}

/// A label or weight: a number, or `null` (absent).
struct OptionalNumberSeed<'a>(NumberSeed<'a>);

impl<'de> DeserializeSeed<'de> for OptionalNumberSeed<'_> {
    type Value = Option<f32>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<f32>, D::Error> {
        let value = self.0.deserialize(deserializer)?;
        Ok((!value.is_nan()).then_some(value))
    }
}

/// What the elements of an array of scalars become: feature values (`f32`), sparse indices (`u32`), dimensions
/// (`u64`).
trait Element: Sized {
    /// The array, as an error names what it expected.
    const ARRAY: &'static str;

    /// The next element of `seq`, at `path`; `None` after the last.
    fn next<'de, A: SeqAccess<'de>>(
        seq: &mut A,
        path: Path<'_>,
        problems: &Problems,
    ) -> Result<Option<Self>, A::Error>;
}

impl Element for f32 {
    const ARRAY: &'static str = "an array of numbers";

    fn next<'de, A: SeqAccess<'de>>(
        seq: &mut A,
        path: Path<'_>,
        problems: &Problems,
    ) -> Result<Option<f32>, A::Error> {
        seq.next_element_seed(NumberSeed { path, problems })
    }
}

impl Element for u64 {
    const ARRAY: &'static str = "an array of integers";

    fn next<'de, A: SeqAccess<'de>>(
        seq: &mut A,
        path: Path<'_>,
        problems: &Problems,
    ) -> Result<Option<u64>, A::Error> {
        seq.next_element_seed(WholeNumberSeed { path, problems })
    }
}

impl Element for u32 {
    const ARRAY: &'static str = "an array of integers";

    fn next<'de, A: SeqAccess<'de>>(
        seq: &mut A,
        path: Path<'_>,
        problems: &Problems,
    ) -> Result<Option<u32>, A::Error> {
        let Some(index) = u64::next(seq, path, problems)? else {
            return Ok(None);
        };
        match u32::try_from(index) {
            Ok(index) => Ok(Some(index)),
            Err(_) => Err(problems.report(
                path.render(),
                format!("index {index} is too large; expected at most {}", u32::MAX),
            )),
        }
    }
}

/// An array of [`Element`]s.
struct ArraySeed<'a, T> {
    path: Path<'a>,
    problems: &'a Problems,
    elements: PhantomData<T>,
}

impl<'a, T> ArraySeed<'a, T> {
    fn new(path: Path<'a>, problems: &'a Problems) -> Self {
        ArraySeed {
            path,
            problems,
            elements: PhantomData,
        }
    }
}

impl<T: Element> ArraySeed<'_, T> {
    fn unexpected<E: de::Error>(self, found: String) -> Result<Vec<T>, E> {
        Err(self.problems.report(
            self.path.render(),
            format!("expected {}, found {found}", T::ARRAY),
        ))
    }
}

impl<'de, T: Element> DeserializeSeed<'de> for ArraySeed<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Element> Visitor<'de> for ArraySeed<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::ARRAY)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = T::next(
            &mut seq,
            Path::Index(&self.path, elements.len()),
            self.problems,
        )? {
            elements.push(element);
        }
        Ok(elements)
    }

    refuse_scalars!(numbers, null, map);
}

/// A non-negative integer (a sparse index or a dimension).
struct WholeNumberSeed<'a> {
    path: Path<'a>,
    problems: &'a Problems,
}

impl WholeNumberSeed<'_> {
    fn unexpected<E: de::Error>(self, found: String) -> Result<u64, E> {
        Err(self.problems.report(
            self.path.render(),
            format!("expected a non-negative integer, found {found}"),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for WholeNumberSeed<'_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WholeNumberSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        self.unexpected(format!("a number {v}"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        self.unexpected(format!("a number {}", number_text(v)))
    }

    refuse_scalars!(null, seq, map);
}

/// Which of `names` an object key is (`None`: another key), read without copying it.
struct KeyOf(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyOf {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyOf {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|name| *name == v))
    }
}

/// Features: an array of numbers (dense) or a `{"values", "keys", "shape"}` tensor object.
struct FeaturesSeed<'a> {
    path: Path<'a>,
    problems: &'a Problems,
}

impl FeaturesSeed<'_> {
    fn unexpected<E: de::Error>(self, found: String) -> Result<Features, E> {
        Err(self.problems.report(
            self.path.render(),
            format!("expected an array of numbers or {{\"values\": [...]}}, found {found}"),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_> {
    type Value = Features;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Features, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_> {
    type Value = Features;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Features, A::Error> {
        let numbers: ArraySeed<f32> = ArraySeed::new(self.path, self.problems);
        numbers.visit_seq(seq).map(Features::Dense)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Features, A::Error> {
        let problems = self.problems;
        let (mut values, mut keys, mut shape) = (None, None, None);
        while let Some(key) = map.next_key_seed(KeyOf(&["values", "keys", "shape"]))? {
            match key {
                Some("values") => {
                    let path = Path::Key(&self.path, "values");
                    values = Some(map.next_value_seed(ArraySeed::new(path, problems))?);
                }
                Some("keys") => {
                    let path = Path::Key(&self.path, "keys");
                    keys = Some(map.next_value_seed(ArraySeed::new(path, problems))?);
                }
                Some("shape") => {
                    let path = Path::Key(&self.path, "shape");
                    shape = Some(map.next_value_seed(ArraySeed::new(path, problems))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        tensor(values, keys, shape, self.path)
            .map_err(|(field, message)| problems.report(field, message))
    }

    refuse_scalars!(numbers, null);
}

/// Checks a tensor object's parts: `values` present; `shape`'s size, when given, equal to the number of values
/// (dense) or above every key (sparse); one key per value, strictly increasing.
fn tensor(
    values: Option<Vec<f32>>,
    keys: Option<Vec<u32>>,
    shape: Option<Vec<u64>>,
    path: Path<'_>,
) -> Result<Features, Problem> {
    let field = |name: &'static str| Path::Key(&path, name).render();
    let Some(values) = values else {
        return Err((
            field("values"),
            "missing; expected an array of numbers".to_string(),
        ));
    };
    let size = match &shape {
        Some(shape) => Some(
            shape
                .iter()
                .try_fold(1u64, |size, &d| size.checked_mul(d))
                .ok_or_else(|| (field("shape"), format!("shape {shape:?} overflows")))?,
        ),
        None => None,
    };
    let Some(indices) = keys else {
        if let Some(size) = size {
            if size != values.len() as u64 {
                return Err((
                    field("shape"),
                    format!(
                        "{} values but shape holds {size}; sparse data needs \"keys\"",
                        values.len()
                    ),
                ));
            }
        }
        return Ok(Features::Dense(values));
    };
    if indices.len() != values.len() {
        return Err((
            field("keys"),
            format!(
                "{} keys but {} values; expected one key per value",
                indices.len(),
                values.len()
            ),
        ));
    }
    let mut previous: Option<u32> = None;
    for (i, &key) in indices.iter().enumerate() {
        let key_field = || format!("{}[{i}]", field("keys"));
        if let Some(size) = size.filter(|&size| u64::from(key) >= size) {
            return Err((
                key_field(),
                format!("index {key} is out of range for shape {size}"),
            ));
        }
        if let Some(previous) = previous.filter(|&previous| key <= previous) {
            return Err((
                key_field(),
                format!("index {key} after {previous}; keys must be strictly increasing"),
            ));
        }
        previous = Some(key);
    }
    let dim = size
        .map(|size| {
            usize::try_from(size)
                .map_err(|_| (field("shape"), format!("shape {size} is too large")))
        })
        .transpose()?;
    Ok(Features::Sparse {
        indices,
        values,
        dim,
    })
}

/// `"data": {"features": …}`.
struct DataSeed<'a> {
    path: Path<'a>,
    problems: &'a Problems,
}

impl DataSeed<'_> {
    fn unexpected<E: de::Error>(self, found: String) -> Result<Features, E> {
        Err(self.problems.report(
            self.path.render(),
            format!("expected {{\"features\": {{\"values\": [...]}}}}, found {found}"),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Features;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Features, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Features;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{\"features\": …}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Features, A::Error> {
        let mut features = None;
        while let Some(key) = map.next_key_seed(KeyOf(&["features"]))? {
            if key.is_some() {
                let seed = FeaturesSeed {
                    path: Path::Key(&self.path, "features"),
                    problems: self.problems,
                };
                features = Some(map.next_value_seed(seed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        match features {
            Some(features) => Ok(features),
            None => self.unexpected("an object without \"features\"".to_string()),
        }
    }

    refuse_scalars!(numbers, null, seq);
}

/// The fields of an instance object seen so far.
#[derive(Default)]
pub(super) struct InstanceFields {
    features: Option<Features>,
    data: Option<Features>,
    label: Option<f32>,
    weight: Option<f32>,
    /// The other keys, for the error of an object with neither `features` nor `data` (a few are enough).
    other_keys: Vec<String>,
}

/// The keys an instance object reads; others (e.g. `configuration`) are skipped.
const INSTANCE_KEYS: [&str; 4] = ["features", "data", "label", "weight"];

/// How many unexpected keys an error message lists.
const KEYS_LISTED: usize = 16;

impl InstanceFields {
    /// Reads the value of `key` (one of [`INSTANCE_KEYS`]; any other is read as `weight`) into its field.
    pub(super) fn read_value<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
        path: &Path<'_>,
        problems: &Problems,
    ) -> Result<(), A::Error> {
        let path = Path::Key(path, key);
        match key {
            "features" => {
                self.features = Some(map.next_value_seed(FeaturesSeed { path, problems })?)
            }
            "data" => self.data = Some(map.next_value_seed(DataSeed { path, problems })?),
            "label" => {
                self.label =
                    map.next_value_seed(OptionalNumberSeed(NumberSeed { path, problems }))?
            }
            _ => {
                self.weight =
                    map.next_value_seed(OptionalNumberSeed(NumberSeed { path, problems }))?
            }
        }
        Ok(())
    }

    /// Notes a key that is not one of [`INSTANCE_KEYS`] and skips its value.
    pub(super) fn skip_value<'de, A: MapAccess<'de>>(
        &mut self,
        key: Option<String>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        if let Some(key) = key.filter(|_| self.other_keys.len() < KEYS_LISTED) {
            self.other_keys.push(key);
        }
        map.next_value::<IgnoredAny>()?;
        Ok(())
    }

    /// The record, `features` winning over `data`; a problem at `path` when neither was given.
    pub(super) fn into_record(self, path: &Path<'_>) -> Result<Record, Problem> {
        let Some(features) = self.features.or(self.data) else {
            return Err((
                path.instance_field(),
                format!(
                    "expected a \"features\" or \"data\" key; found keys {:?}",
                    self.other_keys
                ),
            ));
        };
        Ok(Record {
            features,
            label: self.label,
            weight: self.weight,
        })
    }
}

/// An object key: one of `names`, or another key's text (kept for an error message, shortened).
pub(super) struct InstanceKey(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for InstanceKey {
    type Value = Result<&'static str, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for InstanceKey {
    type Value = Result<&'static str, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match self.0.iter().copied().find(|name| *name == v) {
            Some(name) => Ok(name),
            None => Err(v.chars().take(QUOTE_LIMIT).collect()),
        })
    }
}

/// Reads the keys of an instance object; `extra` names keys the caller handles itself (the request's
/// `instances`), returned as `Some(key)` with their value not yet read.
pub(super) fn read_instance_keys<'de, A: MapAccess<'de>>(
    map: &mut A,
    fields: &mut InstanceFields,
    path: &Path<'_>,
    problems: &Problems,
    extra: Option<&'static str>,
) -> Result<Option<&'static str>, A::Error> {
    const WITH_INSTANCES: [&str; 5] = ["features", "data", "label", "weight", "instances"];
    let names: &'static [&'static str] = if extra.is_some() {
        &WITH_INSTANCES
    } else {
        &INSTANCE_KEYS
    };
    while let Some(key) = map.next_key_seed(InstanceKey(names))? {
        match key {
            Ok(name) if Some(name) == extra => return Ok(Some(name)),
            Ok(name) => fields.read_value(name, map, path, problems)?,
            Err(other) => fields.skip_value(Some(other), map)?,
        }
    }
    Ok(None)
}

/// One instance (see the [module docs](super)): an object with `features` or `data`, or an array of numbers.
pub(super) struct InstanceSeed<'a> {
    pub(super) path: Path<'a>,
    pub(super) problems: &'a Problems,
}

impl InstanceSeed<'_> {
    fn unexpected<E: de::Error>(self, found: String) -> Result<Record, E> {
        Err(self.problems.report(
            self.path.instance_field(),
            format!(
                "expected an object with \"features\" or \"data\", or an array of numbers; found {found}"
            ),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for InstanceSeed<'_> {
    type Value = Record;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Record, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InstanceSeed<'_> {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instance")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Record, A::Error> {
        let numbers: ArraySeed<f32> = ArraySeed::new(self.path, self.problems);
        Ok(Record {
            features: Features::Dense(numbers.visit_seq(seq)?),
            label: None,
            weight: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut fields = InstanceFields::default();
        read_instance_keys(&mut map, &mut fields, &self.path, self.problems, None)?;
        fields
            .into_record(&self.path)
            .map_err(|(field, message)| self.problems.report(field, message))
    }

    refuse_scalars!(numbers, null);
}

/// The first element of a top-level array: a number (the array is one record) or an instance (the array lists
/// instances).
pub(super) enum FirstItem {
    Number(f32),
    Instance(Record),
}

/// Reads [`FirstItem`]; `description` receives a number's text for a later error.
pub(super) struct FirstItemSeed<'a> {
    pub(super) problems: &'a Problems,
    pub(super) description: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for FirstItemSeed<'_> {
    type Value = FirstItem;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<FirstItem, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl FirstItemSeed<'_> {
    fn number<E: de::Error>(self, v: f64) -> Result<FirstItem, E> {
        match narrow(v) {
            Some(value) => Ok(FirstItem::Number(value)),
            None => Err(self.problems.report(FIRST.render(), beyond_float32(v))),
        }
    }
}

impl<'de> Visitor<'de> for FirstItemSeed<'_> {
    type Value = FirstItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an instance")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FirstItem, E> {
        *self.description = format!("a number {v}");
        self.number(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FirstItem, E> {
        *self.description = format!("a number {v}");
        self.number(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FirstItem, E> {
        *self.description = format!("a number {}", number_text(v));
        self.number(v)
    }

    fn visit_unit<E>(self) -> Result<FirstItem, E> {
        *self.description = "null".to_string();
        Ok(FirstItem::Number(f32::NAN))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<FirstItem, E> {
        first_instance(self.problems)
            .visit_bool(v)
            .map(FirstItem::Instance)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FirstItem, E> {
        first_instance(self.problems)
            .visit_str(v)
            .map(FirstItem::Instance)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<FirstItem, A::Error> {
        first_instance(self.problems)
            .visit_seq(seq)
            .map(FirstItem::Instance)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FirstItem, A::Error> {
        first_instance(self.problems)
            .visit_map(map)
            .map(FirstItem::Instance)
    }
}

const FIRST: Path<'static> = Path::Index(&Path::Root, 0);

fn first_instance(problems: &Problems) -> InstanceSeed<'_> {
    InstanceSeed {
        path: FIRST,
        problems,
    }
}

const INSTANCES: Path<'static> = Path::Key(&Path::Root, "instances");

/// A whole `application/json` request (see the [module docs](super)), each record handed to `on_record` as soon as
/// it is decoded.
pub(super) struct RequestSeed<'a, F, Stop> {
    pub(super) problems: &'a Problems,
    pub(super) on_record: &'a mut F,
    /// Where the consumer's error that stopped the parse is kept.
    pub(super) stopped: &'a mut Option<Stop>,
}

impl<F: FnMut(Record) -> Result<(), Stop>, Stop> RequestSeed<'_, F, Stop> {
    fn hand_over<Error: de::Error>(&mut self, record: Record) -> Result<(), Error> {
        (self.on_record)(record).map_err(|error| {
            *self.stopped = Some(error);
            Error::custom("stopped by the consumer")
        })
    }

    fn unexpected<Error: de::Error>(self, found: String) -> Result<(), Error> {
        Err(self.problems.report(
            "document".to_string(),
            format!(
                "expected {{\"instances\": [...]}}, an array, or an instance object; found {found}"
            ),
        ))
    }
}

impl<'de, F: FnMut(Record) -> Result<(), Stop>, Stop> DeserializeSeed<'de>
    for RequestSeed<'_, F, Stop>
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Record) -> Result<(), Stop>, Stop> Visitor<'de> for RequestSeed<'_, F, Stop> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON request")
    }

    /// `{"instances": [...]}` (other keys ignored), or a single instance object.
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let problems = self.problems;
        let mut fields = InstanceFields::default();
        let mut wrapped = false;
        while read_instance_keys(
            &mut map,
            &mut fields,
            &Path::Root,
            problems,
            Some("instances"),
        )?
        .is_some()
        {
            if wrapped {
                return Err(problems.report(
                    "instances".to_string(),
                    "appears twice; expected one array of instances".to_string(),
                ));
            }
            wrapped = true;
            map.next_value_seed(InstancesSeed { request: &mut self })?;
        }
        if wrapped {
            return Ok(());
        }
        let record = fields
            .into_record(&Path::Root)
            .map_err(|(field, message)| problems.report(field, message))?;
        self.hand_over(record)
    }

    /// A plain array: of numbers (one record) when its first element is a number or `null`, else of instances.
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let problems = self.problems;
        let mut first_description = String::new();
        let first = seq.next_element_seed(FirstItemSeed {
            problems,
            description: &mut first_description,
        })?;
        match first {
            None => Ok(()),
            Some(FirstItem::Instance(record)) => {
                self.hand_over(record)?;
                for index in 1.. {
                    let path = Path::Index(&Path::Root, index);
                    match seq.next_element_seed(InstanceSeed { path, problems })? {
                        Some(record) => self.hand_over(record)?,
                        None => break,
                    }
                }
                Ok(())
            }
            Some(FirstItem::Number(value)) => {
                let mut values = vec![value];
                let element = || RecordNumberSeed {
                    problems,
                    first: &first_description,
                };
                while let Some(value) = seq.next_element_seed(element())? {
                    values.push(value);
                }
                self.hand_over(Record {
                    features: Features::Dense(values),
                    label: None,
                    weight: None,
                })
            }
        }
    }

    refuse_scalars!(numbers, null);
}

/// The value of `instances`: an array of instances.
struct InstancesSeed<'r, 'a, F, Stop> {
    request: &'r mut RequestSeed<'a, F, Stop>,
}

impl<'de, F: FnMut(Record) -> Result<(), Stop>, Stop> DeserializeSeed<'de>
    for InstancesSeed<'_, '_, F, Stop>
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<F: FnMut(Record) -> Result<(), Stop>, Stop> InstancesSeed<'_, '_, F, Stop> {
    fn unexpected<Error: de::Error>(self, found: String) -> Result<(), Error> {
        Err(self.request.problems.report(
            "instances".to_string(),
            format!("expected an array of instances, found {found}"),
        ))
    }
}

impl<'de, F: FnMut(Record) -> Result<(), Stop>, Stop> Visitor<'de>
    for InstancesSeed<'_, '_, F, Stop>
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of instances")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let problems = self.request.problems;
        for index in 0.. {
            let path = Path::Index(&INSTANCES, index);
            match seq.next_element_seed(InstanceSeed { path, problems })? {
                Some(record) => self.request.hand_over(record)?,
                None => break,
            }
        }
        Ok(())
    }

    refuse_scalars!(numbers, null, map);
}

/// An element after the first of a plain array that began with a number: a number or `null` too. Anything else
/// makes the array one of instances, whose first element (a number) is then the fault, as it would be read whole.
struct RecordNumberSeed<'a> {
    problems: &'a Problems,
    /// The first element's description.
    first: &'a str,
}

impl RecordNumberSeed<'_> {
    fn unexpected<E: de::Error>(self, _found: String) -> Result<f32, E> {
        Err(self.problems.report(
            FIRST.render(),
            format!(
                "expected an object with \"features\" or \"data\", or an array of numbers; found {}",
                self.first
            ),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for RecordNumberSeed<'_> {
    type Value = f32;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f32, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordNumberSeed<'_> {
    type Value = f32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or null")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f32, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f32, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f32, E> {
        match narrow(v) {
            Some(value) => Ok(value),
            None => Err(self.problems.report(FIRST.render(), beyond_float32(v))),
        }
    }

    fn visit_unit<E>(self) -> Result<f32, E> {
        Ok(f32::NAN)
    }

    refuse_scalars!(seq, map);
}

/// `v` as float32; `None` for a finite value beyond float32's range, which would otherwise become infinity.
fn narrow(v: f64) -> Option<f32> {
    let narrowed = v as f32;
    (narrowed.is_finite() || !v.is_finite()).then_some(narrowed)
}

fn beyond_float32(v: f64) -> String {
    format!("expected a number within float32's range (|x| <= 3.4028235e38), found {v:e}")
}
