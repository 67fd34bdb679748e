//! `DataProcessing`: InputFilter before the model, JoinSource and OutputFilter after it, over CSV rows (JSON arrays
//! of their fields) and JSON records.
//!
//! - A CSV row becomes an array of its fields as strings, so a row written back keeps its text exactly.
//! - JoinSource Input, JSON input: an object input gains `"SageMakerOutput"`; any other input becomes
//!   `{"SageMakerInput": input, "SageMakerOutput": output}`. The output is the record's response as JSON: its
//!   JSON Lines line, its `application/json` response (`{"predictions":[…]}` holding its one prediction), or its
//!   CSV line's fields (numbers as JSON numbers; one field as a scalar).
//! - JoinSource Input, CSV input: the output's fields are appended to the row and the result is a CSV row (a JSON
//!   response is appended as one field holding its JSON text).
//! - OutputFilter then applies to the joined record (or, without a join, to the output record).

use serde_json::{json, Map, Value};

use super::jsonpath::JsonPath;
use super::records::{push_csv_field, split_csv};

/// How records of a content type are seen by the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// `text/csv`: a line is an array of fields.
    Csv,
    /// `application/json` / `application/jsonlines`: a JSON value.
    Json,
}

impl RecordFormat {
    /// The format of a content type, or `None` for one data processing does not handle (RecordIO, libsvm, …).
    pub fn of(content_type: &str) -> Option<RecordFormat> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "text/csv" | "text/x-csv" | "application/csv" => Some(RecordFormat::Csv),
            "application/json"
            | "application/jsonlines"
            | "application/json-lines"
            | "application/x-jsonlines" => Some(RecordFormat::Json),
            _ => None,
        }
    }

    /// Parses one record's text.
    pub fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            RecordFormat::Csv => Ok(Value::Array(
                split_csv(text)?.into_iter().map(Value::String).collect(),
            )),
            RecordFormat::Json => {
                serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))
            }
        }
    }

    /// Writes one record: a CSV row (a scalar is one field; nested values are written as their JSON text) or
    /// compact JSON.
    pub fn write(self, value: &Value) -> String {
        match self {
            RecordFormat::Json => value.to_string(),
            RecordFormat::Csv => {
                let mut line = String::new();
                let fields: &[Value] = match value {
                    Value::Array(fields) => fields,
                    scalar => std::slice::from_ref(scalar),
                };
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    match field {
                        Value::String(text) => push_csv_field(&mut line, text),
                        Value::Null => {}
                        other => push_csv_field(&mut line, &other.to_string()),
                    }
                }
                line
            }
        }
    }
}

/// A CSV response line as a JSON value: numbers as numbers, one field as a scalar.
pub fn csv_output_as_json(line: &str) -> Result<Value, String> {
    let fields: Vec<Value> = split_csv(line)?
        .into_iter()
        .map(
            |field| match serde_json::from_str::<serde_json::Number>(field.trim()) {
                Ok(number) => Value::Number(number),
                Err(_) => Value::String(field),
            },
        )
        .collect();
    Ok(match <[Value; 1]>::try_from(fields) {
        Ok([single]) => single,
        Err(fields) => Value::Array(fields),
    })
}

/// Joins one input record with its output (JoinSource Input), as the module docs describe.
pub fn join(input: Value, input_format: RecordFormat, output: Value) -> Value {
    match input_format {
        RecordFormat::Csv => {
            let mut fields = match input {
                Value::Array(fields) => fields,
                other => vec![other],
            };
            match output {
                Value::Array(more) => fields.extend(more),
                Value::String(_) => fields.push(output),
                other => fields.push(Value::String(other.to_string())),
            }
            Value::Array(fields)
        }
        RecordFormat::Json => match input {
            Value::Object(mut fields) => {
                fields.insert("SageMakerOutput".to_string(), output);
                Value::Object(fields)
            }
            other => json!({"SageMakerInput": other, "SageMakerOutput": output}),
        },
    }
}

/// Splits an `application/json` response for `records` records into one value per record: the whole response
/// when there is one record, else `{key: [prediction i]}` for the response's one array-valued key.
pub fn split_json_response(response: &Value, records: usize) -> Result<Vec<Value>, String> {
    if records == 1 {
        return Ok(vec![response.clone()]);
    }
    let Some(fields) = response.as_object() else {
        return Err("the response is not a JSON object".to_string());
    };
    let arrays: Vec<(&String, &Vec<Value>)> = fields
        .iter()
        .filter_map(|(key, value)| value.as_array().map(|a| (key, a)))
        .collect();
    match arrays.as_slice() {
        [(key, elements)] if elements.len() == records => Ok(elements
            .iter()
            .map(|element| {
                let mut one = Map::new();
                one.insert((*key).clone(), Value::Array(vec![element.clone()]));
                Value::Object(one)
            })
            .collect()),
        [(key, elements)] => Err(format!(
            "the response's {key:?} holds {} predictions for {records} records",
            elements.len()
        )),
        _ => Err("the response has no single array of predictions to split".to_string()),
    }
}

/// The three DataProcessing settings, parsed.
#[derive(Debug, Clone)]
pub struct DataProcessing {
    pub input_filter: JsonPath,
    pub join_input: bool,
    pub output_filter: JsonPath,
}

impl Default for DataProcessing {
    fn default() -> Self {
        DataProcessing {
            input_filter: JsonPath::parse("$").expect("$ parses"),
            join_input: false,
            output_filter: JsonPath::parse("$").expect("$ parses"),
        }
    }
}

impl DataProcessing {
    /// Whether the input reaches the model unchanged.
    pub fn filters_input(&self) -> bool {
        !self.input_filter.is_root()
    }

    /// Whether outputs must be taken apart record by record (join or output filter).
    pub fn per_record_output(&self) -> bool {
        self.join_input || !self.output_filter.is_root()
    }

    /// Whether anything is set.
    pub fn is_default(&self) -> bool {
        !self.filters_input() && !self.per_record_output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_join_appends_output_fields_and_keeps_text() {
        let input = RecordFormat::Csv.parse("7,1.50,\"a,b\"").unwrap();
        let output = RecordFormat::Csv.parse("0.25,1").unwrap();
        let joined = join(input, RecordFormat::Csv, output);
        assert_eq!(RecordFormat::Csv.write(&joined), "7,1.50,\"a,b\",0.25,1");
        let kept = JsonPath::parse("$[0,-1]").unwrap().select(&joined).unwrap();
        assert_eq!(RecordFormat::Csv.write(&kept), "7,1");
    }

    #[test]
    fn csv_join_with_a_json_output_appends_one_field() {
        let input = RecordFormat::Csv.parse("7,1.5").unwrap();
        let output = json!({"score": 0.5});
        let joined = join(input, RecordFormat::Csv, output);
        assert_eq!(
            RecordFormat::Csv.write(&joined),
            "7,1.5,\"{\"\"score\"\":0.5}\""
        );
    }

    #[test]
    fn json_join_adds_sagemaker_output_or_wraps() {
        let joined = join(json!({"id": 1}), RecordFormat::Json, json!({"label": 1}));
        assert_eq!(joined, json!({"id": 1, "SageMakerOutput": {"label": 1}}));
        let joined = join(json!([1, 2]), RecordFormat::Json, json!(0.5));
        assert_eq!(
            joined,
            json!({"SageMakerInput": [1, 2], "SageMakerOutput": 0.5})
        );
    }

    #[test]
    fn csv_outputs_become_json_numbers() {
        assert_eq!(csv_output_as_json("0.25").unwrap(), json!(0.25));
        assert_eq!(csv_output_as_json("0.25,1").unwrap(), json!([0.25, 1]));
        assert_eq!(csv_output_as_json("x,1e3").unwrap(), json!(["x", 1e3]));
    }

    #[test]
    fn json_responses_split_per_record() {
        let response = json!({"predictions": [{"score": 1}, {"score": 2}]});
        assert_eq!(
            split_json_response(&response, 2).unwrap(),
            vec![
                json!({"predictions": [{"score": 1}]}),
                json!({"predictions": [{"score": 2}]})
            ]
        );
        assert_eq!(
            split_json_response(&response, 1).unwrap(),
            vec![response.clone()]
        );
        assert!(split_json_response(&response, 3)
            .unwrap_err()
            .contains("2 predictions for 3"));
    }
}
