"""tern-runtime vs onnxruntime on the same packages, and a compiled tree ensemble vs xgboost's own predict.
tern-runtime runs each package on both of its engines: tract (the native default) and tern's interpreter (the
browser build's engine).

Run through bench/runtime/run.sh. Packages, built fresh in $TERN_BENCH_CACHE/runtime (default ~/.cache/tern-bench):
- linear-learner binary classifier trained by `tern train` on examples/breast_cancer (30 features), fp32;
- linear-learner multiclass on scikit-learn's digits (64 features), fp32;
- xgboost binary:logistic trained by the `xgboost` package (hist, 100 rounds, depth 6) on make_classification
  100,000 × 50, saved as JSON, brought in with `tern import`, compiled fp32.
Every engine runs one thread (tract is single-threaded; onnxruntime intra_op_num_threads=1; xgboost nthread=1), on
the same rows. Latency: the median (and p99) of 2,000 single-row calls after a warm-up; throughput: rows/s of the
median of 50 calls of 1,024 rows. onnxruntime and xgboost are timed from Python around the call, which adds the
binding's few microseconds to their single-row latency; the ratio is printed as is.
Ratios are tern / peer for latency (below 1 = tern faster) and tern / peer for throughput (above 1 = tern faster).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import xgboost as xgb
from sklearn.datasets import load_digits, make_classification

LATENCY_RUNS, THROUGHPUT_RUNS, BATCH = 2000, 50, 1024
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL)


def write_csv(path, y, X):
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.9g")


def time_calls(call, rows, batch, runs):
    """Median and p99 seconds of `runs` calls of `batch` consecutive rows, after a warm-up call."""
    repeated = np.ascontiguousarray(np.concatenate([rows, rows[:batch]]))
    call(repeated[:batch])
    times = []
    for i in range(runs):
        start = (i * batch) % len(rows)
        chunk = repeated[start:start + batch]
        begin = time.perf_counter()
        call(chunk)
        times.append(time.perf_counter() - begin)
    times.sort()
    return times[len(times) // 2], times[min(len(times) * 99 // 100, len(times) - 1)]


def tern_times(timer, package, rows_file, rows, batch, runs, engine):
    out = subprocess.run([timer, package, rows_file, str(rows), str(batch), str(runs), engine], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["median_us"] / 1e6, result["p99_us"] / 1e6


def build_packages(tern, work):
    packages = {}
    data = os.path.join(ROOT, "examples", "breast_cancer")
    out = os.path.join(work, "ll_binary")
    # The README's main job: the same hyperparameters and verification rows as scripts/demo.sh.
    run(tern, "train", "--algorithm", "linear-learner", "--train", os.path.join(data, "train.csv"), "--validation",
        os.path.join(data, "validation.csv"), "--hp", "predictor_type=binary_classifier", "--hp", "epochs=15", "--hp",
        "mini_batch_size=32", "--output-dir", out, "--quiet", "--no-plots")
    run(tern, "compile", os.path.join(out, "model.tar.gz"), "--calibration", os.path.join(data, "train.csv"),
        "--held-out", os.path.join(data, "test.csv"), "-o", os.path.join(out, "package"))
    test = np.loadtxt(os.path.join(data, "test.csv"), delimiter=",", dtype=np.float32)[:, 1:]
    packages["linear-learner binary (30 features)"] = (os.path.join(out, "package"), test, None)

    X, y = load_digits(return_X_y=True)
    out = os.path.join(work, "ll_digits")
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "train.csv"), y, X)
    run(tern, "train", "--algorithm", "linear-learner", "--train", os.path.join(out, "train.csv"), "--hp",
        "predictor_type=multiclass_classifier", "--hp", "num_classes=10", "--hp", "epochs=5", "--output-dir", out,
        "--quiet", "--no-plots")
    run(tern, "compile", os.path.join(out, "model.tar.gz"), "-o", os.path.join(out, "package"))
    packages["linear-learner multiclass (64 features, 10 classes)"] = (
        os.path.join(out, "package"), X.astype(np.float32), None)

    X, y = make_classification(n_samples=110_000, n_features=50, n_informative=30, n_redundant=10, flip_y=0.05,
                               random_state=0)
    X = X.astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "tree_method": "hist",
                         "nthread": 2, "verbosity": 0}, xgb.DMatrix(X[:100_000], label=y[:100_000]), 100)
    out = os.path.join(work, "xgb")
    os.makedirs(out, exist_ok=True)
    booster.save_model(os.path.join(out, "xgb.json"))
    run(tern, "import", os.path.join(out, "xgb.json"), "-o", os.path.join(out, "model.tar.gz"))
    run(tern, "compile", os.path.join(out, "model.tar.gz"), "-o", os.path.join(out, "package"))
    booster.set_param({"nthread": 1})
    packages["xgboost binary (100 trees, depth 6, 50 features)"] = (
        os.path.join(out, "package"), X[100_000:], booster)
    return packages


def main():
    tern, timer = sys.argv[1], sys.argv[2]
    work = os.path.join(os.environ.get("TERN_BENCH_CACHE", os.path.expanduser("~/.cache/tern-bench")), "runtime")
    os.makedirs(work, exist_ok=True)
    packages = build_packages(tern, work)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    print(f"one thread each; latency: median of {LATENCY_RUNS} single-row calls; "
          f"throughput: median of {THROUGHPUT_RUNS} calls of {BATCH} rows")
    for name, (package, rows, booster) in packages.items():
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        rows_file = os.path.join(package, "..", "bench_rows.f32")
        rows.tofile(rows_file)
        session = ort.InferenceSession(os.path.join(package, "model.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        ort_call = lambda chunk: session.run(None, {"input": chunk})
        peers = {"onnxruntime": ort_call}
        if booster is not None:
            peers["xgboost predict"] = lambda chunk: booster.inplace_predict(chunk)
        tern = {}
        for engine in ("tract", "interpreter"):
            tern[engine] = (tern_times(timer, package, rows_file, len(rows), 1, LATENCY_RUNS, engine),
                            tern_times(timer, package, rows_file, len(rows), BATCH, THROUGHPUT_RUNS, engine))
        print(f"\n{name}")
        print(f"  {'engine':<22} {'p50 latency':>12} {'p99 latency':>12} {'rows/s @1024':>14}")
        for engine, (lat, thr) in tern.items():
            print(f"  {'tern ' + engine:<22} {lat[0] * 1e6:>10.1f}us {lat[1] * 1e6:>10.1f}us "
                  f"{BATCH / thr[0]:>14,.0f}")
        for peer, call in peers.items():
            lat = time_calls(call, rows, 1, LATENCY_RUNS)
            thr = time_calls(call, rows, BATCH, THROUGHPUT_RUNS)
            print(f"  {peer:<22} {lat[0] * 1e6:>10.1f}us {lat[1] * 1e6:>10.1f}us {BATCH / thr[0]:>14,.0f}")
            for engine, (tern_lat, tern_thr) in tern.items():
                print(f"  ratio tern {engine}/{peer}: latency {tern_lat[0] / lat[0]:.2f}x (target <= 1.2x), "
                      f"throughput {thr[0] / tern_thr[0]:.2f}x")


if __name__ == "__main__":
    main()
