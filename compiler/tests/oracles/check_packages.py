"""Checks tern packages with the reference ONNX tooling: onnx.checker (full_check) and onnxruntime.

Usage: check_packages.py CASES_DIR
Each case is a folder holding `package/` (model.onnx + manifest.json), `rows.f32` (float32 little-endian,
row-major, NaN for missing), `expected.f32` (the trainer's scores, row-major) and `case.json`:
{"rows": n, "features": d, "score_columns": k, "labels": [..] or null, "label_rule": "output"|"argmax"|
 {"threshold": t, "strict": bool}|null, "score_output": name (default "score"), "label_output": name (default
 "predicted_label")}.
A score passes when |ort - trainer| <= tolerance.absolute or |ort - trainer| / max(|trainer|, 1e-6) <=
tolerance.relative (the manifest's tolerance); labels must agree on >= tolerance.label_agreement of the rows
(fp32: every row). Prints one line per case; exits 1 if any case fails.
Oracles: onnx 1.19.1, onnxruntime 1.23.2 (tests/python/requirements.txt).
"""
import json
import os
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # the Rust test turns this into a clear failure
    print(f"MISSING-PACKAGE: {e}; run scripts/setup-python.sh", file=sys.stderr)
    sys.exit(3)


def check(case_dir):
    with open(os.path.join(case_dir, "case.json")) as f:
        case = json.load(f)
    package = os.path.join(case_dir, "package")
    with open(os.path.join(package, "manifest.json")) as f:
        manifest = json.load(f)
    model_path = os.path.join(package, "model.onnx")
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    n, d, k = case["rows"], case["features"], case["score_columns"]
    rows = np.fromfile(os.path.join(case_dir, "rows.f32"), dtype="<f4").reshape(n, d)
    expected = np.fromfile(os.path.join(case_dir, "expected.f32"), dtype="<f4").reshape(n, k)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = dict(zip(names, session.run(None, {"input": rows})))
    score_output = case.get("score_output", "score")
    label_output = case.get("label_output", "predicted_label")
    score = results[score_output].reshape(n, -1).astype(np.float64)
    if score.shape != expected.shape:
        return False, f"score shape {score.shape} != trainer's {expected.shape}"
    tol = manifest["tolerance"]
    delta = np.abs(score - expected.astype(np.float64))
    relative = delta / np.maximum(np.abs(expected.astype(np.float64)), 1e-6)
    outside = (delta > tol["absolute"]) & (relative > tol["relative"])
    message = f"max|d| {delta.max():.3e} max rel {relative.max():.3e}"
    ok = not outside.any()
    if not ok:
        message += f"; {int(outside.sum())} scores outside the manifest tolerance"
    labels = case.get("labels")
    if labels is not None:
        rule = case["label_rule"]
        if rule == "output":
            got = results[label_output].reshape(-1).astype(np.int64)
        elif rule == "argmax":
            got = np.argmax(score, axis=1)
        else:
            first = results[score_output].reshape(n, -1)[:, 0]
            got = (first > rule["threshold"]) if rule["strict"] else (first >= rule["threshold"])
            got = got.astype(np.int64)
        agreement = float(np.mean(got == np.asarray(labels, dtype=np.int64)))
        need = 1.0 if manifest["precision"] == "fp32" else tol["label_agreement"]
        message += f", label agreement {agreement:.4f} (need {need})"
        if agreement < need:
            ok = False
    return ok, message


def main():
    root = sys.argv[1]
    failed = 0
    for name in sorted(os.listdir(root)):
        case_dir = os.path.join(root, name)
        if not os.path.isdir(case_dir):
            continue
        try:
            ok, message = check(case_dir)
        except Exception as e:  # checker or runtime refused the package
            ok, message = False, f"{type(e).__name__}: {e}"
        print(f"{'PASS' if ok else 'FAIL'} {name}: {message}")
        failed += 0 if ok else 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
