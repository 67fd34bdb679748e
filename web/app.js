// tern's browser demo: loads two packages (models/digits, models/breast_cancer) with the wasm runtime, on WebGPU or
// the wasm CPU backend (the switch at the top), and predicts from a drawing pad and an editable row. Predictions are
// asynchronous (a GPU's results come back through a Promise). The last request of each panel is kept in
// window.ternDemo.last, `seq` counts finished predictions and `inflight` the running ones, for the browser tests.
import init, { Model } from "./pkg/index.js";

const CANCER_FEATURES = [
  "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness", "mean compactness",
  "mean concavity", "mean concave points", "mean symmetry", "mean fractal dimension", "radius error",
  "texture error", "perimeter error", "area error", "smoothness error", "compactness error", "concavity error",
  "concave points error", "symmetry error", "fractal dimension error", "worst radius", "worst texture",
  "worst perimeter", "worst area", "worst smoothness", "worst compactness", "worst concavity",
  "worst concave points", "worst symmetry", "worst fractal dimension",
];
// scikit-learn's breast-cancer target: 0 = malignant, 1 = benign.
const CANCER_CLASSES = ["malignant", "benign"];

const $ = (id) => document.getElementById(id);
const state = { models: {}, digitRows: [], cancerRows: [], sample: 0 };
window.ternDemo = { last: {}, ready: false, error: null, seq: 0, inflight: 0 };

/** Label-first CSV text → [{label, features}]. */
function parseRows(text) {
  return text.trim().split("\n").map((line) => {
    const values = line.split(",").map(Number);
    return { label: values[0], features: values.slice(1) };
  });
}

async function fetchText(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.text();
}

async function loadModels(backend) {
  $("backend-status").textContent = "loading…";
  const started = performance.now();
  const [digits, cancer] = await Promise.all([
    Model.load("models/digits/", { backend }),
    Model.load("models/breast_cancer/", { backend }),
  ]);
  state.models = { digits, cancer };
  const ms = performance.now() - started;
  const status = $("backend-status");
  status.textContent = `running on ${digits.backend} · both models loaded in ${ms.toFixed(0)} ms`;
  status.title = digits.fallbackReason ?? "";
  const reason = digits.fallbackReason ?? cancer.fallbackReason;
  if (backend !== "wasm" && reason) {
    const gpu = "gpu" in navigator ? "this browser has WebGPU, but " : "this browser has no WebGPU, and ";
    status.textContent += ` (WebGPU asked: ${gpu}${reason})`;
  }
  document.body.dataset.backend = digits.backend;
}

/** Times one predict call (until its Promise resolves); returns [response, milliseconds]. */
async function timed(model, features) {
  const input = Float32Array.from(features);
  const started = performance.now();
  const response = await model.predict(input, 1);
  return [response, performance.now() - started];
}

/** Runs one prediction of a panel, counted in window.ternDemo.inflight / seq; a failure shows in the status bar. */
async function tracked(prediction) {
  window.ternDemo.inflight += 1;
  try {
    await prediction();
  } catch (error) {
    $("backend-status").textContent = `prediction failed: ${error.message}`;
    window.ternDemo.error = error.message;
  } finally {
    window.ternDemo.inflight -= 1;
    window.ternDemo.seq += 1;
  }
}

// ---- digits ------------------------------------------------------------------------------------------------------
const pad = $("pad");
const padContext = pad.getContext("2d");

function clearPad() {
  padContext.fillStyle = "#000";
  padContext.fillRect(0, 0, pad.width, pad.height);
  drawPreview(new Array(64).fill(0));
}

function setupDrawing() {
  let drawing = false;
  let last = null;
  const point = (event) => {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
  };
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    last = point(event);
    pad.setPointerCapture(event.pointerId);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const next = point(event);
    padContext.strokeStyle = "#fff";
    padContext.lineWidth = 18;
    padContext.lineCap = "round";
    padContext.beginPath();
    padContext.moveTo(...last);
    padContext.lineTo(...next);
    padContext.stroke();
    last = next;
  });
  const stop = () => {
    if (drawing) {
      drawing = false;
      predictDigit();
    }
  };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointerleave", stop);
}

/**
 * The drawing as scikit-learn's digits see a digit: the ink's bounding box scaled (aspect kept) into a centred
 * 32×32 bitmap, then each 4×4 block's count of set pixels (0–16), row-major 8×8.
 */
function padFeatures() {
  const { width, height } = pad;
  const pixels = padContext.getImageData(0, 0, width, height).data;
  let [left, top, right, bottom] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (pixels[(y * width + x) * 4] > 127) {
        left = Math.min(left, x); right = Math.max(right, x);
        top = Math.min(top, y); bottom = Math.max(bottom, y);
      }
    }
  }
  if (right < 0) return new Array(64).fill(0);
  const side = Math.max(right - left + 1, bottom - top + 1);
  const bitmap = document.createElement("canvas");
  bitmap.width = bitmap.height = 32;
  const context = bitmap.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, 32, 32);
  const scale = 32 / side;
  const w = (right - left + 1) * scale;
  const h = (bottom - top + 1) * scale;
  context.imageSmoothingEnabled = true;
  context.drawImage(pad, left, top, right - left + 1, bottom - top + 1, (32 - w) / 2, (32 - h) / 2, w, h);
  const small = context.getImageData(0, 0, 32, 32).data;
  const features = new Array(64).fill(0);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      if (small[(y * 32 + x) * 4] > 127) features[Math.floor(y / 4) * 8 + Math.floor(x / 4)] += 1;
    }
  }
  return features;
}

function drawPreview(features) {
  const preview = $("preview");
  const context = preview.getContext("2d");
  const cell = preview.width / 8;
  features.forEach((value, i) => {
    const shade = Math.round((value / 16) * 255);
    context.fillStyle = `rgb(${shade},${shade},${shade})`;
    context.fillRect((i % 8) * cell, Math.floor(i / 8) * cell, cell, cell);
  });
}

function showDigits(features, source) {
  return tracked(() => renderDigits(features, source));
}

async function renderDigits(features, source) {
  drawPreview(features);
  const [response, ms] = await timed(state.models.digits, features);
  const prediction = response.predictions[0];
  $("digits-label").textContent = String(prediction.predicted_label);
  const bars = $("digits-bars");
  bars.replaceChildren(...prediction.score.map((p, k) => {
    const bar = document.createElement("div");
    bar.className = "bar" + (k === prediction.predicted_label ? " top" : "");
    bar.innerHTML = `<span>${k}</span><i style="width:${(p * 100).toFixed(1)}%"></i><b>${(p * 100).toFixed(1)}%</b>`;
    return bar;
  }));
  $("digits-meta").textContent = `${source} · ${state.models.digits.backend} · ${ms.toFixed(2)} ms`;
  $("digits-response").textContent = JSON.stringify(response, null, 1);
  window.ternDemo.last.digits = { features, response, backend: state.models.digits.backend, ms };
}

function predictDigit() {
  return showDigits(padFeatures(), "your drawing");
}

function sampleDigit() {
  const row = state.digitRows[state.sample++ % state.digitRows.length];
  clearPad();
  return showDigits(row.features, `held-out test image (true label ${row.label})`);
}

// ---- breast cancer -----------------------------------------------------------------------------------------------
function fillCancerRow(index) {
  const row = state.cancerRows[index];
  $("cancer-fields").replaceChildren(...CANCER_FEATURES.map((name, i) => {
    const label = document.createElement("label");
    label.innerHTML = `<span>${name}</span><input type="number" step="any" data-index="${i}" value="${row.features[i]}">`;
    return label;
  }));
  $("cancer-fields").querySelectorAll("input").forEach((input) => input.addEventListener("change", predictCancer));
  predictCancer();
}

function cancerFeatures() {
  return [...$("cancer-fields").querySelectorAll("input")].map((input) => Number(input.value));
}

function predictCancer() {
  return tracked(renderCancer);
}

async function renderCancer() {
  const features = cancerFeatures();
  const [response, ms] = await timed(state.models.cancer, features);
  const prediction = response.predictions[0];
  const truth = state.cancerRows[Number($("cancer-row").value)].label;
  $("cancer-label").textContent =
    `${CANCER_CLASSES[prediction.predicted_label]} (score ${prediction.score.toFixed(4)})`;
  $("cancer-label").className = "big " + CANCER_CLASSES[prediction.predicted_label];
  $("cancer-meta").textContent =
    `recorded diagnosis of this row: ${CANCER_CLASSES[truth]} · ${state.models.cancer.backend} · ${ms.toFixed(2)} ms`;
  $("cancer-response").textContent = JSON.stringify(response, null, 1);
  window.ternDemo.last.cancer = { features, response, backend: state.models.cancer.backend, ms };
}

// ---- start -------------------------------------------------------------------------------------------------------
async function main() {
  await init(); // throws, saying so, where the browser has no WebAssembly SIMD
  const [digitsText, cancerText] = await Promise.all([
    fetchText("models/digits/rows.csv"),
    fetchText("models/breast_cancer/rows.csv"),
  ]);
  state.digitRows = parseRows(digitsText);
  state.cancerRows = parseRows(cancerText);
  await loadModels(document.querySelector("input[name=backend]:checked").value);

  clearPad();
  setupDrawing();
  $("digits-predict").addEventListener("click", predictDigit);
  $("digits-clear").addEventListener("click", clearPad);
  $("digits-sample").addEventListener("click", sampleDigit);

  const select = $("cancer-row");
  state.cancerRows.forEach((row, i) => select.add(new Option(`#${i + 1}`, String(i))));
  select.addEventListener("change", () => fillCancerRow(Number(select.value)));
  $("cancer-predict").addEventListener("click", predictCancer);
  fillCancerRow(0);

  document.querySelectorAll("input[name=backend]").forEach((radio) =>
    radio.addEventListener("change", async () => {
      await loadModels(radio.value);
      await predictCancer();
      if (window.ternDemo.last.digits) await showDigits(window.ternDemo.last.digits.features, "same input");
    }));
  $("wasm-info").textContent = `tern-wasm · packages: digits (${state.models.digits.manifest.precision}), ` +
    `breast cancer (${state.models.cancer.manifest.precision})`;
  window.ternDemo.ready = true;
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  window.ternDemo.error = error.message;
  $("backend-status").textContent = `failed: ${error.message}`;
  document.body.dataset.ready = "error";
});
