//! The JS API (wasm-bindgen): `Model.load`, `predict`, `predictCsv`, `predictJson`, `invoke`, `run`, `backend`.
//! Each method is a thin shell over the crate's plain functions and runtime-core; the prediction methods return
//! Promises (reading results back from a GPU is asynchronous in browsers), and errors become JS exceptions
//! (`Error`) carrying runtime-core's message.

use js_sys::{
    Array, ArrayBuffer, BigInt64Array, Float32Array, Float64Array, Promise, Reflect, Uint8Array,
    JSON,
};
use tern_runtime::{OutputValues, Outputs, Package};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[cfg(not(feature = "webgpu"))]
use crate::NO_WEBGPU_BUILD;
use crate::{
    check_features, package_from_archive, predict_features_columns, resolve_backend, Backend,
    BackendRequest, WasmError,
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

unsafe extern "C" {
    /// Synthesised by the wasm linker: runs every static constructor (tract registers its kernels and ops with
    /// `inventory`, whose registrations are constructors).
    fn __wasm_call_ctors();
}

/// Runs the module's static constructors, once, when wasm-bindgen instantiates the module. Calling them from the
/// module also keeps the linker from treating it as a "command" and wrapping every export in a call to them, which
/// re-ran tract's registrations on every JS call.
#[wasm_bindgen(start)]
fn start() {
    // SAFETY: the start function runs once per instance, before any other export is called.
    unsafe { __wasm_call_ctors() }
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

/// What runs a model's graph.
enum Engine {
    /// The wasm CPU (runtime-core's `Package::run`: tern's interpreter, or tract in a build with the `tract`
    /// feature).
    Wasm,
    /// tern-gpu's kernels on the browser's GPU.
    #[cfg(feature = "webgpu")]
    WebGpu(tern_gpu::GpuModel),
}

/// A loaded, verified tern package.
#[wasm_bindgen]
pub struct Model {
    package: Package,
    engine: Engine,
    backend: Backend,
    fallback_reason: Option<String>,
}

/// `options.backend` (absent: `"auto"`).
fn requested_backend(options: &JsValue) -> Result<BackendRequest, WasmError> {
    if options.is_undefined() || options.is_null() {
        return Ok(BackendRequest::Auto);
    }
    let backend = field(options, "backend");
    if backend.is_undefined() {
        return Ok(BackendRequest::Auto);
    }
    let text = backend.as_string().ok_or_else(|| WasmError::Argument {
        argument: "options.backend",
        message: format!("expected a string, found {}", describe(&backend)),
    })?;
    BackendRequest::parse(&text)
}

#[cfg(feature = "webgpu")]
thread_local! {
    /// The GPU device every WebGPU model shares, opened by the first load that needs it.
    static GPU: std::cell::RefCell<Option<tern_gpu::Gpu>> = const { std::cell::RefCell::new(None) };
}

/// Whether the global scope has `navigator.gpu` (browsers with WebGPU; never Node, where wgpu would panic).
#[cfg(feature = "webgpu")]
fn has_navigator_gpu() -> bool {
    let global = js_sys::global();
    let navigator = field(&global, "navigator");
    !navigator.is_undefined()
        && !navigator.is_null()
        && !field(&navigator, "gpu").is_undefined()
        && !field(&navigator, "gpu").is_null()
}

/// The graph on the browser's GPU, or why not.
#[cfg(feature = "webgpu")]
async fn webgpu_engine(graph: &[u8]) -> Result<tern_gpu::GpuModel, String> {
    if !has_navigator_gpu() {
        return Err(format!(
            "navigator.gpu is absent: this environment exposes no WebGPU; the graph runs on the wasm CPU \
             backend ({})",
            cpu_engine()
        ));
    }
    let proto = tern_runtime::onnx::ModelProto::from_bytes(graph)
        .map_err(|e| format!("model.onnx does not parse: {e}"))?;
    tern_gpu::check(&proto).map_err(|e| {
        format!(
            "the WebGPU backend cannot run this graph ({e}); it runs on the wasm CPU backend ({})",
            cpu_engine()
        )
    })?;
    let gpu = match GPU.with(|slot| slot.borrow().clone()) {
        Some(gpu) => gpu,
        None => {
            let gpu = tern_gpu::Gpu::request().await.map_err(|e| {
                format!(
                    "{e}; the graph runs on the wasm CPU backend ({})",
                    cpu_engine()
                )
            })?;
            GPU.with(|slot| *slot.borrow_mut() = Some(gpu.clone()));
            gpu
        }
    };
    tern_gpu::GpuModel::new(&gpu, &proto).await.map_err(|e| {
        format!(
            "{e}; the graph runs on the wasm CPU backend ({})",
            cpu_engine()
        )
    })
}

#[cfg(feature = "webgpu")]
fn gpu_error(error: tern_gpu::GpuError) -> WasmError {
    match error {
        tern_gpu::GpuError::Record {
            record,
            field,
            message,
        } => WasmError::Runtime(tern_runtime::RuntimeError::Record {
            source_name: "input".to_string(),
            record,
            field,
            message,
        }),
        other => WasmError::Gpu {
            message: other.to_string(),
        },
    }
}

impl Model {
    /// A model on the wasm CPU backend; `request` only sets the fallback reason (synchronous loads cannot open a
    /// GPU device).
    fn on_wasm(package: Package, request: BackendRequest, reason: Option<String>) -> Model {
        let choice = resolve_backend(
            request,
            reason.map(Err).or(if request.tries_webgpu() {
                Some(Err(NO_WEBGPU_SYNC.to_string()))
            } else {
                None
            }),
        );
        Model {
            package,
            engine: Engine::Wasm,
            backend: choice.backend,
            fallback_reason: choice.fallback_reason,
        }
    }

    /// Chooses the backend for an asynchronous load: WebGPU when asked (or `auto`) and possible.
    async fn with_backend(package: Package, graph: &[u8], request: BackendRequest) -> Model {
        if !request.tries_webgpu() {
            return Model::on_wasm(package, request, None);
        }
        #[cfg(feature = "webgpu")]
        {
            match webgpu_engine(graph).await {
                Ok(gpu) => Model {
                    package,
                    engine: Engine::WebGpu(gpu),
                    backend: Backend::WebGpu,
                    fallback_reason: None,
                },
                Err(reason) => Model::on_wasm(package, request, Some(reason)),
            }
        }
        #[cfg(not(feature = "webgpu"))]
        {
            let _ = graph;
            Model::on_wasm(package, request, Some(NO_WEBGPU_BUILD.to_string()))
        }
    }

    async fn load_source(source: &JsValue) -> Result<(Package, Vec<u8>), WasmError> {
        if let Some(url) = source.as_string() {
            let trimmed = url.trim_end_matches('/');
            if trimmed.ends_with(".tar") {
                let bytes = fetch_bytes(&url).await?;
                let files = crate::archive::read_package(&bytes, &url)?;
                let package = Package::from_bytes(&files.manifest, &files.graph)?;
                return Ok((package, files.graph));
            }
            let manifest_url = format!("{trimmed}/manifest.json");
            let graph_url = format!("{trimmed}/model.onnx");
            let manifest = fetch_bytes(&manifest_url).await?;
            let graph = fetch_bytes(&graph_url).await?;
            return Ok((Package::from_bytes(&manifest, &graph)?, graph));
        }
        if let Some(bytes) = bytes_of(source).filter(|_| !source.is_string()) {
            let files = crate::archive::read_package(&bytes, "archive")?;
            let package = Package::from_bytes(&files.manifest, &files.graph)?;
            return Ok((package, files.graph));
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
                return Ok((Package::from_bytes(&manifest, &graph)?, graph));
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

    /// Every graph output for `rows` rows of `features`, on the model's backend.
    async fn outputs(&self, features: &[f32], rows: usize) -> Result<Outputs, WasmError> {
        check_features(&self.package, features, rows)?;
        match &self.engine {
            Engine::Wasm => Ok(self.package.run(features, rows)?),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(gpu) => gpu.run(features, rows).await.map_err(gpu_error),
        }
    }

    /// Answers a request body: on the wasm backend through runtime-core's `invoke`, on WebGPU by decoding it with
    /// runtime-core, running the graph on the GPU and encoding the outputs with runtime-core (the same bytes for the
    /// same outputs).
    async fn answer(
        &self,
        body: &[u8],
        content_type: &str,
        accept: &str,
    ) -> Result<Vec<u8>, WasmError> {
        match &self.engine {
            Engine::Wasm => Ok(self.package.invoke(body, content_type, accept)?.0),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(_) => {
                let request = self.package.decode_request(body, content_type, accept)?;
                let outputs = self.outputs(&request.features, request.rows).await?;
                Ok(self.package.encode_response(
                    &outputs,
                    0..request.rows,
                    request.response_type,
                )?)
            }
        }
    }

    async fn answer_json(&self, body: &[u8], content_type: &str) -> Result<JsValue, JsError> {
        let response = self
            .answer(body, content_type, "application/json")
            .await
            .map_err(js_error)?;
        json_to_js(&response)
    }
}

/// Why a synchronous load (`fromParts`, `fromArchive`) runs on the wasm CPU.
const NO_WEBGPU_SYNC: &str =
    "Model.fromParts and Model.fromArchive load synchronously on the wasm CPU backend; use Model.load for WebGPU";

/// The engine of the wasm CPU backend in this build: `"interpreter"` (tern's) or `"tract"`.
#[cfg(feature = "webgpu")]
fn cpu_engine() -> &'static str {
    tern_runtime::EngineKind::DEFAULT.name()
}

#[wasm_bindgen]
impl Model {
    /// Loads and verifies a package. `source`: a package folder URL (its `manifest.json` and `model.onnx` are
    /// fetched), a URL ending in `.tar`, a tar archive's bytes, or `{manifest, model}` bytes. `options.backend`:
    /// `"auto"` (default: WebGPU when this build, the browser, the device and the graph allow it, else wasm),
    /// `"wasm"` or `"webgpu"` (falls back to wasm, see `fallbackReason`). Rejects with runtime-core's message when
    /// the package is bad.
    pub async fn load(source: JsValue, options: JsValue) -> Result<Model, JsError> {
        let request = requested_backend(&options).map_err(js_error)?;
        let (package, graph) = Self::load_source(&source).await.map_err(js_error)?;
        Ok(Model::with_backend(package, &graph, request).await)
    }

    /// Loads and verifies a package from the bytes of its `manifest.json` and `model.onnx` (synchronous; the wasm
    /// CPU backend).
    #[wasm_bindgen(js_name = fromParts)]
    pub fn from_parts(manifest: &[u8], model: &[u8], options: JsValue) -> Result<Model, JsError> {
        let request = requested_backend(&options).map_err(js_error)?;
        let package =
            Package::from_bytes(manifest, model).map_err(|e| js_error(WasmError::Runtime(e)))?;
        Ok(Model::on_wasm(package, request, None))
    }

    /// Loads and verifies a package from a tar archive holding `manifest.json` and `model.onnx` (synchronous; the
    /// wasm CPU backend).
    #[wasm_bindgen(js_name = fromArchive)]
    pub fn from_archive(bytes: &[u8], options: JsValue) -> Result<Model, JsError> {
        let request = requested_backend(&options).map_err(js_error)?;
        let package = package_from_archive(bytes, "archive").map_err(js_error)?;
        Ok(Model::on_wasm(package, request, None))
    }

    /// Predicts `rows` rows of `features` (row-major, `featureDim` per row): a Promise of the SageMaker JSON
    /// response as an object, e.g. `{predictions: [{score, predicted_label}]}`.
    pub async fn predict(&self, features: Vec<f32>, rows: usize) -> Result<JsValue, JsError> {
        let response = match &self.engine {
            Engine::Wasm => predict_features_columns(&self.package, &features, rows),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(_) => match self.outputs(&features, rows).await {
                Ok(outputs) => crate::response::response_columns(&self.package, &outputs),
                Err(error) => Err(error),
            },
        }
        .map_err(js_error)?;
        Ok(columns_to_js(&response))
    }

    /// Predicts `text/csv` rows (no label column): a Promise of the SageMaker JSON response.
    #[wasm_bindgen(js_name = predictCsv)]
    pub async fn predict_csv(&self, text: String) -> Result<JsValue, JsError> {
        self.answer_json(text.as_bytes(), "text/csv").await
    }

    /// Predicts an `application/json` request (an object such as `{instances: [{features: […]}]}`, or its JSON
    /// text): a Promise of the SageMaker JSON response.
    #[wasm_bindgen(js_name = predictJson)]
    pub async fn predict_json(&self, request: JsValue) -> Result<JsValue, JsError> {
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
        self.answer_json(text.as_bytes(), "application/json").await
    }

    /// Answers a raw `/invocations` request: a Promise of the response bytes (`Uint8Array`) for `body` of
    /// `contentType`, encoded as `accept`.
    pub async fn invoke(
        &self,
        body: Vec<u8>,
        content_type: String,
        accept: String,
    ) -> Result<Uint8Array, JsError> {
        let bytes = self
            .answer(&body, &content_type, &accept)
            .await
            .map_err(js_error)?;
        Ok(Uint8Array::from(bytes.as_slice()))
    }

    /// Runs the graph on `rows` rows of `features`: a Promise of every output as
    /// `{outputs: [{name, shape, values}]}`, `values` a `Float32Array` (floating outputs) or a `BigInt64Array`
    /// (integer outputs), row-major.
    pub async fn run(&self, features: Vec<f32>, rows: usize) -> Result<JsValue, JsError> {
        let outputs = self.outputs(&features, rows).await.map_err(js_error)?;
        let names: Array = outputs
            .outputs
            .iter()
            .map(|output| JsValue::from_str(&output.name))
            .collect();
        let ranks: Vec<u32> = outputs
            .outputs
            .iter()
            .map(|output| output.shape.len() as u32)
            .collect();
        let shapes: Vec<f64> = outputs
            .outputs
            .iter()
            .flat_map(|output| output.shape.iter().map(|&d| d as f64))
            .collect();
        let values: Array = outputs
            .outputs
            .iter()
            .map(|output| match &output.values {
                OutputValues::F32(values) => JsValue::from(Float32Array::from(values.as_slice())),
                OutputValues::I64(values) => JsValue::from(BigInt64Array::from(values.as_slice())),
                OutputValues::Text(values) => JsValue::from(
                    values
                        .iter()
                        .map(|text| JsValue::from_str(text))
                        .collect::<Array>(),
                ),
            })
            .collect();
        Ok(tern_outputs(names, &ranks, &shapes, values))
    }

    /// The backend the graph runs on: `"webgpu"` or `"wasm"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.name().to_string()
    }

    /// Why the backend is not WebGPU although `auto` or `webgpu` was asked for, or `undefined`.
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

#[wasm_bindgen(inline_js = r#"
export function tern_outputs(names, ranks, shapes, values) {
  const outputs = [];
  for (let i = 0, at = 0; i < names.length; at += ranks[i], i++) {
    outputs.push({ name: names[i], shape: Array.from(shapes.subarray(at, at + ranks[i])), values: values[i] });
  }
  return { outputs };
}

export function tern_response(key, rows, names, lists, columns, values) {
  // v - v is 0 exactly when v is finite: runtime-core's JSON writes NaN and infinities as null.
  const fields = names.length;
  const records = new Array(rows);
  for (let row = 0; row < rows; row++) {
    const record = {};
    for (let f = 0; f < fields; f++) {
      const width = columns[f], field = values[f];
      let at = row * width, value;
      if (lists[f]) {
        value = new Array(width);
        for (let i = 0; i < width; i++, at++) {
          const v = field[at];
          value[i] = v - v === 0 ? v : null;
        }
      } else {
        const v = field[at];
        value = v - v === 0 ? v : null;
      }
      record[names[f]] = value;
    }
    records[row] = record;
  }
  return { [key]: records };
}
"#)]
extern "C" {
    /// Builds `{outputs: [{name, shape, values}]}`: output `i`'s shape is the next `ranks[i]` values of `shapes`.
    fn tern_outputs(names: Array, ranks: &[u32], shapes: &[f64], values: Array) -> JsValue;

    /// Builds `{key: [record, …]}` from a response's columns (see [`columns_to_js`]).
    fn tern_response(
        key: &str,
        rows: usize,
        names: Array,
        lists: &[u8],
        columns: &[u32],
        values: Array,
    ) -> JsValue;
}

/// The response as the objects `JSON.parse` makes of runtime-core's JSON text (keys in the same order, float32
/// values widened to float64, non-finite values as `null`), built in one call into JS.
fn columns_to_js(response: &crate::response::ResponseColumns) -> JsValue {
    let names: Array = response
        .fields
        .iter()
        .map(|f| JsValue::from_str(f.name))
        .collect();
    let lists: Vec<u8> = response.fields.iter().map(|f| f.list as u8).collect();
    let columns: Vec<u32> = response.fields.iter().map(|f| f.columns as u32).collect();
    let values: Array = response
        .fields
        .iter()
        .map(|f| JsValue::from(Float64Array::from(f.values.as_slice())))
        .collect();
    tern_response(response.key, response.rows, names, &lists, &columns, values)
}

/// A JSON response body (runtime-core's encoder writes UTF-8) as a JS value, parsed by the engine's `JSON.parse`.
fn json_to_js(body: &[u8]) -> Result<JsValue, JsError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| JsError::new(&format!("the JSON response is not UTF-8: {e}")))?;
    JSON::parse(text).map_err(|e| JsError::new(&describe(&e)))
}
