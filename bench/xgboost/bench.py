"""tern's xgboost vs the `xgboost` package (hist) on the same generated data, same threads, rounds, depth, max_bin.

Run through bench/xgboost/run.sh. Data: scikit-learn's make_classification, 1,000,000 train + 200,000 test rows x 50
features (30 informative, 10 redundant, flip_y 0.05), seed 0, cached once as raw f32 under $TERN_BENCH_CACHE (default
~/.cache/tern-bench). Both train binary:logistic, eta 0.3, 50 rounds, max_depth 6, max_bin 256, 2 threads; training
time starts from in-memory arrays (xgboost: DMatrix construction + train; tern: quantile cuts + binning + train).
Prediction: the 200,000 test rows (xgboost: inplace_predict; tern: Model::predict). AUC by scikit-learn for both.
Each side runs $TERN_BENCH_REPEATS times (default 3), alternating, and the fastest run of each is reported, so a busy
shared machine disturbs the ratio less.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

ROWS, TEST_ROWS, FEATURES, SEED = 1_000_000, 200_000, 50, 0
ROUNDS, DEPTH, MAX_BIN, THREADS = 50, 6, 256, 2


def data(cache):
    os.makedirs(cache, exist_ok=True)
    stem = os.path.join(cache, f"xgb_{ROWS}x{FEATURES}_seed{SEED}")
    paths = {k: f"{stem}_{k}.f32" for k in ("train_x", "train_y", "test_x", "test_y")}
    if not all(os.path.exists(p) for p in paths.values()):
        X, y = make_classification(n_samples=ROWS + TEST_ROWS, n_features=FEATURES, n_informative=30,
                                   n_redundant=10, flip_y=0.05, random_state=SEED)
        X, y = X.astype(np.float32), y.astype(np.float32)
        parts = {"train_x": X[:ROWS], "train_y": y[:ROWS], "test_x": X[ROWS:], "test_y": y[ROWS:]}
        for key, array in parts.items():
            tmp = paths[key] + ".tmp"
            np.ascontiguousarray(array).tofile(tmp)
            os.replace(tmp, paths[key])
    load = lambda key, shape: np.fromfile(paths[key], dtype=np.float32).reshape(shape)
    return paths, load("train_x", (ROWS, FEATURES)), load("train_y", (ROWS,)), load("test_x", (TEST_ROWS, FEATURES)), load("test_y", (TEST_ROWS,))


def main():
    binary = sys.argv[1]
    cache = os.environ.get("TERN_BENCH_CACHE", os.path.expanduser("~/.cache/tern-bench"))
    paths, X, y, Xt, yt = data(cache)

    out = os.path.join(cache, "xgb_tern_predictions.f32")
    params = {"objective": "binary:logistic", "eta": 0.3, "max_depth": DEPTH, "max_bin": MAX_BIN,
              "tree_method": "hist", "nthread": THREADS, "verbosity": 0}
    tern_runs, xgb_runs = [], []
    for _ in range(int(os.environ.get("TERN_BENCH_REPEATS", "3"))):
        result = subprocess.run([binary, paths["train_x"], paths["train_y"], paths["test_x"], str(ROWS),
                                 str(TEST_ROWS), str(FEATURES), str(ROUNDS), str(DEPTH), str(MAX_BIN), str(THREADS),
                                 out], check=True, capture_output=True, text=True)
        tern_runs.append(json.loads(result.stdout))
        start = time.perf_counter()
        booster = xgb.train(params, xgb.DMatrix(X, label=y, nthread=THREADS), ROUNDS)
        xgb_train = time.perf_counter() - start
        start = time.perf_counter()
        xgb_pred = booster.inplace_predict(Xt)
        xgb_runs.append((xgb_train, time.perf_counter() - start))
    tern = {"train_seconds": min(r["train_seconds"] for r in tern_runs),
            "predict_seconds": min(r["predict_seconds"] for r in tern_runs)}
    xgb_train = min(r[0] for r in xgb_runs)
    xgb_predict = min(r[1] for r in xgb_runs)
    tern_auc = roc_auc_score(yt, np.fromfile(out, dtype=np.float32))
    xgb_auc = roc_auc_score(yt, xgb_pred)
    print("runs (train s): tern " + ", ".join(f"{r['train_seconds']:.2f}" for r in tern_runs)
          + "; xgboost " + ", ".join(f"{r[0]:.2f}" for r in xgb_runs))
    print(f"data: {ROWS} train + {TEST_ROWS} test rows x {FEATURES} features; {ROUNDS} rounds, max_depth {DEPTH}, "
          f"max_bin {MAX_BIN}, {THREADS} threads; xgboost {xgb.__version__}")
    print(f"{'':10}{'train s':>10}{'predict rows/s':>18}{'AUC':>10}")
    print(f"{'tern':10}{tern['train_seconds']:>10.2f}{TEST_ROWS / tern['predict_seconds']:>18,.0f}{tern_auc:>10.5f}")
    print(f"{'xgboost':10}{xgb_train:>10.2f}{TEST_ROWS / xgb_predict:>18,.0f}{xgb_auc:>10.5f}")
    print(f"ratios (>1 means tern is faster): training {xgb_train / tern['train_seconds']:.2f}x, "
          f"prediction {xgb_predict / tern['predict_seconds']:.2f}x; AUC tern - xgboost {tern_auc - xgb_auc:+.5f}")

if __name__ == "__main__":
    main()
