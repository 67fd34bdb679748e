"""Linear Learner vs scikit-learn's SGDClassifier: training time and final loss on the same generated data.

Run through bench/linear_learner/run.sh (it builds tern and uses the project virtualenv). Data: sklearn's
make_classification, 1,000,000 train + 200,000 test rows x 20 features, seed 0, cached as SageMaker CSV under
$TERN_BENCH_CACHE (default ~/.cache/tern-bench). Both learners get the same epochs, mini-batch-free SGD (sklearn) vs
tern's default mini_batch_size, standardised features (tern: normalize_data=true; sklearn: StandardScaler in the timed
region), logistic loss, no regularisation beyond each default, 2 threads.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROWS, TEST_ROWS, FEATURES, EPOCHS, SEED = 1_000_000, 200_000, 20, 5, 0


def data(cache):
    os.makedirs(cache, exist_ok=True)
    train_path = os.path.join(cache, f"ll_{ROWS}x{FEATURES}_train.csv")
    test_path = os.path.join(cache, f"ll_{ROWS}x{FEATURES}_test.csv")
    if not (os.path.exists(train_path) and os.path.exists(test_path)):
        X, y = make_classification(n_samples=ROWS + TEST_ROWS, n_features=FEATURES, n_informative=12,
                                   n_redundant=4, flip_y=0.05, class_sep=0.8, random_state=SEED)
        X[:, :5] *= 100.0  # unequal scales, so normalisation matters
        for path, rows in [(train_path, slice(0, ROWS)), (test_path, slice(ROWS, None))]:
            tmp = path + ".tmp"
            np.savetxt(tmp, np.column_stack([y[rows], X[rows]]), delimiter=",", fmt="%.6g")
            os.replace(tmp, path)
    return train_path, test_path


def main():
    tern = sys.argv[1]
    cache = os.environ.get("TERN_BENCH_CACHE", os.path.expanduser("~/.cache/tern-bench"))
    out = os.path.join(cache, "ll_out")
    train_path, test_path = data(cache)
    test = np.loadtxt(test_path, delimiter=",", dtype=np.float32)
    y_test, X_test = test[:, 0], test[:, 1:]

    start = time.perf_counter()
    subprocess.run([tern, "train", "--algorithm", "linear-learner", "--train", train_path,
                    "--hp", "predictor_type=binary_classifier", "--hp", f"epochs={EPOCHS}",
                    "--hp", "num_models=1", "--hp", "mini_batch_size=1000", "--hp", "early_stopping_patience=100",
                    "--output-dir", out, "--quiet", "--no-plots"], check=True)
    tern_train = time.perf_counter() - start
    rows_path = os.path.join(cache, "ll_test_rows.csv")
    if not os.path.exists(rows_path):
        np.savetxt(rows_path, X_test, delimiter=",", fmt="%.6g")
    start = time.perf_counter()
    lines = subprocess.run([tern, "predict", os.path.join(out, "model.tar.gz"), "--input", rows_path,
                            "--accept", "application/jsonlines"], check=True, capture_output=True, text=True).stdout
    tern_predict = time.perf_counter() - start
    tern_score = np.array([json.loads(l)["score"] for l in lines.splitlines()])

    start = time.perf_counter()
    train = np.loadtxt(train_path, delimiter=",", dtype=np.float32)
    load = time.perf_counter() - start
    y, X = train[:, 0], train[:, 1:]
    start = time.perf_counter()
    model = make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", max_iter=EPOCHS, tol=None,
                                                          random_state=SEED))
    model.fit(X, y)
    sk_train = time.perf_counter() - start
    sk_score = model.predict_proba(X_test)[:, 1]

    def quality(score):
        return log_loss(y_test, np.clip(score, 1e-7, 1 - 1e-7)), accuracy_score(y_test, score >= 0.5), \
            roc_auc_score(y_test, score)

    tl, ta, tauc = quality(tern_score)
    sl, sa, sauc = quality(sk_score)
    print(f"data: {ROWS} train / {TEST_ROWS} test rows x {FEATURES} features, {EPOCHS} epochs, logistic loss")
    print(f"tern linear-learner : train {tern_train:7.2f} s (CSV parsing included)  test log-loss {tl:.4f}  "
          f"accuracy {ta:.4f}  AUC {tauc:.4f}  predict {tern_predict:.2f} s")
    print(f"sklearn SGDClassifier: train {sk_train:7.2f} s (+{load:.2f} s np.loadtxt)  test log-loss {sl:.4f}  "
          f"accuracy {sa:.4f}  AUC {sauc:.4f}")
    print(f"ratio (sklearn time / tern time): {sk_train / tern_train:.2f}x training only, "
          f"{(sk_train + load) / tern_train:.2f}x including load; log-loss ratio tern/sklearn {tl / sl:.3f}")


if __name__ == "__main__":
    main()
