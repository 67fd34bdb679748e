//! The JS API (wasm-bindgen): `Model.load`, `predict`, `predictCsv`, `predictJson`, `invoke`, `run`, `backend`.
//! Each method is a thin shell over the crate's plain functions; errors become JS exceptions (`Error`) carrying
//! runtime-core's message.

use js_sys::{
    Array, ArrayBuffer, BigInt64Array, Float32Array, Object, Promise, Reflect, Uint8Array, JSON,
};
use tern_runtime::{OutputValues, Package};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::{
    check_features, choose_backend, package_from_archive, predict_features, predict_request,
    Backend, WasmError,
};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (browsers, workers, Node ≥ 18).
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(url: &str) -> Result<Promise, JsValue>;

    /// The `Response` a `fetch` resolves to.
    type FetchResponse;
    #[wasm_bindgen(method, getter)]
    fn ok(this: &FetchResponse) -> bool;
    #[wasm_bindgen(method, getter)]
    fn status(this: &FetchResponse) -> u16;
    #[wasm_bindgen(method, js_name = arrayBuffer, catch)]
    fn array_buffer(this: &FetchResponse) -> Result<Promise, JsValue>;
}

fn js_error(error: WasmError) -> JsError {
    JsError::new(&error.to_string())
}

fn describe(value: &JsValue) -> String {
    value
        .as_string()
        .or_else(|| JSON::stringify(value).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| format!("{value:?}"))
}

fn source_error(source: &str, message: String) -> WasmError {
    WasmError::Source {
        source_name: source.to_string(),
        message,
    }
}

/// Fetches `url`'s body; errors name the URL and the HTTP status or the network failure.
async fn fetch_bytes(url: &str) -> Result<Vec<u8>, WasmError> {
    let fail = |message: String| source_error(url, message);
    let promise = global_fetch(url).map_err(|e| fail(format!("fetch failed: {}", describe(&e))))?;
    let response: FetchResponse = JsFuture::from(promise)
        .await
        .map_err(|e| fail(format!("fetch failed: {}", describe(&e))))?
        .unchecked_into();
    if !response.ok() {
        return Err(fail(format!("HTTP status {}", response.status())));
    }
    let body = response
        .array_buffer()
        .map_err(|e| fail(format!("reading the body failed: {}", describe(&e))))?;
    let buffer = JsFuture::from(body)
        .await
        .map_err(|e| fail(format!("reading the body failed: {}", describe(&e))))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Bytes from a `Uint8Array`, an `ArrayBuffer` or a string (UTF-8); `None` for anything else.
fn bytes_of(value: &JsValue) -> Option<Vec<u8>> {
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        Some(array.to_vec())
    } else if value.is_instance_of::<ArrayBuffer>() {
        Some(Uint8Array::new(value).to_vec())
    } else if ArrayBuffer::is_view(value) {
        let view: &js_sys::Object = value.unchecked_ref();
        let buffer = Reflect::get(view, &"buffer".into()).ok()?;
        let offset = Reflect::get(view, &"byteOffset".into()).ok()?.as_f64()? as u32;
        let length = Reflect::get(view, &"byteLength".into()).ok()?.as_f64()? as u32;
        Some(Uint8Array::new_with_byte_offset_and_length(&buffer, offset, length).to_vec())
    } else {
        value.as_string().map(String::into_bytes)
    }
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// A loaded, verified tern package.
#[wasm_bindgen]
pub struct Model {
    package: Package,
    backend: Backend,
    fallback_reason: Option<String>,
}

impl Model {
    fn new(package: Package, options: &JsValue) -> Result<Model, WasmError> {
        let requested = if options.is_undefined() || options.is_null() {
            String::new()
        } else {
            let backend = field(options, "backend");
            if backend.is_undefined() {
                String::new()
            } else {
                backend.as_string().ok_or_else(|| WasmError::Argument {
                    argument: "options.backend",
                    message: format!("expected a string, found {}", describe(&backend)),
                })?
            }
        };
        let choice = choose_backend(&requested)?;
        Ok(Model {
            package,
            backend: choice.backend,
            fallback_reason: choice.fallback_reason,
        })
    }

    async fn load_source(source: &JsValue) -> Result<Package, WasmError> {
        if let Some(url) = source.as_string() {
            let trimmed = url.trim_end_matches('/');
            if trimmed.ends_with(".tar") {
                let bytes = fetch_bytes(&url).await?;
                return package_from_archive(&bytes, &url);
            }
            let manifest_url = format!("{trimmed}/manifest.json");
            let graph_url = format!("{trimmed}/model.onnx");
            let manifest = fetch_bytes(&manifest_url).await?;
            let graph = fetch_bytes(&graph_url).await?;
            return Ok(Package::from_bytes(&manifest, &graph)?);
        }
        if let Some(bytes) = bytes_of(source).filter(|_| !source.is_string()) {
            return package_from_archive(&bytes, "archive");
        }
        if source.is_object() {
            let manifest = field(source, "manifest");
            let graph = field(source, "model");
            let manifest = if manifest.is_object() && bytes_of(&manifest).is_none() {
                JSON::stringify(&manifest)
                    .ok()
                    .and_then(|s| s.as_string())
                    .map(String::into_bytes)
            } else {
                bytes_of(&manifest)
            };
            if let (Some(manifest), Some(graph)) = (manifest, bytes_of(&graph)) {
                return Ok(Package::from_bytes(&manifest, &graph)?);
            }
        }
        Err(source_error(
            "Model.load",
            format!(
                "expected a package folder URL, a .tar URL, the archive's bytes (Uint8Array / ArrayBuffer) or \
                 {{manifest, model}} bytes; found {}",
                describe(source)
            ),
        ))
    }
}

#[wasm_bindgen]
impl Model {
    /// Loads and verifies a package. `source`: a package folder URL (its `manifest.json` and `model.onnx` are
    /// fetched), a URL ending in `.tar`, a tar archive's bytes, or `{manifest, model}` bytes. `options.backend`:
    /// `"auto"` (default), `"wasm"` or `"webgpu"`. Rejects with runtime-core's message when the package is bad.
    pub async fn load(source: JsValue, options: JsValue) -> Result<Model, JsError> {
        let package = Self::load_source(&source).await.map_err(js_error)?;
        Model::new(package, &options).map_err(js_error)
    }

    /// Loads and verifies a package from the bytes of its `manifest.json` and `model.onnx` (synchronous).
    #[wasm_bindgen(js_name = fromParts)]
    pub fn from_parts(manifest: &[u8], model: &[u8], options: JsValue) -> Result<Model, JsError> {
        let package =
            Package::from_bytes(manifest, model).map_err(|e| js_error(WasmError::Runtime(e)))?;
        Model::new(package, &options).map_err(js_error)
    }

    /// Loads and verifies a package from a tar archive holding `manifest.json` and `model.onnx` (synchronous).
    #[wasm_bindgen(js_name = fromArchive)]
    pub fn from_archive(bytes: &[u8], options: JsValue) -> Result<Model, JsError> {
        let package = package_from_archive(bytes, "archive").map_err(js_error)?;
        Model::new(package, &options).map_err(js_error)
    }

    /// Predicts `rows` rows of `features` (row-major, `featureDim` per row): the SageMaker JSON response as an
    /// object, e.g. `{predictions: [{score, predicted_label}]}`.
    pub fn predict(&self, features: &[f32], rows: usize) -> Result<JsValue, JsError> {
        let response = predict_features(&self.package, features, rows).map_err(js_error)?;
        to_js(&response)
    }

    /// Predicts `text/csv` rows (no label column): the SageMaker JSON response.
    #[wasm_bindgen(js_name = predictCsv)]
    pub fn predict_csv(&self, text: &str) -> Result<JsValue, JsError> {
        let response =
            predict_request(&self.package, text.as_bytes(), "text/csv").map_err(js_error)?;
        to_js(&response)
    }

    /// Predicts an `application/json` request (an object such as `{instances: [{features: […]}]}`, or its JSON
    /// text): the SageMaker JSON response.
    #[wasm_bindgen(js_name = predictJson)]
    pub fn predict_json(&self, request: JsValue) -> Result<JsValue, JsError> {
        let text = match request.as_string() {
            Some(text) => text,
            None => JSON::stringify(&request)
                .ok()
                .and_then(|s| s.as_string())
                .ok_or_else(|| {
                    js_error(WasmError::Argument {
                        argument: "request",
                        message: "expected an object or JSON text".to_string(),
                    })
                })?,
        };
        let response = predict_request(&self.package, text.as_bytes(), "application/json")
            .map_err(js_error)?;
        to_js(&response)
    }

    /// Answers a raw `/invocations` request: `body` of `contentType`, response bytes encoded as `accept`.
    pub fn invoke(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
    ) -> Result<Vec<u8>, JsError> {
        let (response, _) = self
            .package
            .invoke(body, content_type, accept)
            .map_err(|e| js_error(WasmError::Runtime(e)))?;
        Ok(response)
    }

    /// Runs the graph on `rows` rows of `features`: every output as `{outputs: [{name, shape, values}]}`, `values` a
    /// `Float32Array` (floating outputs) or a `BigInt64Array` (integer outputs), row-major.
    pub fn run(&self, features: &[f32], rows: usize) -> Result<JsValue, JsError> {
        check_features(&self.package, features, rows).map_err(js_error)?;
        let outputs = self
            .package
            .run(features, rows)
            .map_err(|e| js_error(WasmError::Runtime(e)))?;
        let list = Array::new();
        for output in &outputs.outputs {
            let entry = Object::new();
            let shape: Array = output
                .shape
                .iter()
                .map(|&d| JsValue::from(d as f64))
                .collect();
            let values: JsValue = match &output.values {
                OutputValues::F32(values) => Float32Array::from(values.as_slice()).into(),
                OutputValues::I64(values) => BigInt64Array::from(values.as_slice()).into(),
            };
            for (key, value) in [
                ("name", JsValue::from_str(&output.name)),
                ("shape", shape.into()),
                ("values", values),
            ] {
                Reflect::set(&entry, &key.into(), &value)
                    .map_err(|e| JsError::new(&describe(&e)))?;
            }
            list.push(&entry);
        }
        let result = Object::new();
        Reflect::set(&result, &"outputs".into(), &list).map_err(|e| JsError::new(&describe(&e)))?;
        Ok(result.into())
    }

    /// The backend the graph runs on: `"wasm"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.name().to_string()
    }

    /// Why the backend differs from the one asked for, or `undefined`.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback_reason.clone()
    }

    /// The number of features a row has.
    #[wasm_bindgen(getter, js_name = featureDim)]
    pub fn feature_dim(&self) -> usize {
        self.package.manifest().feature_dim
    }

    /// The package's `manifest.json` as an object.
    #[wasm_bindgen(getter)]
    pub fn manifest(&self) -> Result<JsValue, JsError> {
        let value = serde_json::to_value(self.package.manifest())
            .map_err(|e| JsError::new(&format!("manifest: {e}")))?;
        to_js(&value)
    }
}

fn to_js(value: &serde_json::Value) -> Result<JsValue, JsError> {
    JSON::parse(&value.to_string()).map_err(|e| JsError::new(&describe(&e)))
}
