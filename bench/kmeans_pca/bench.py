"""tern's K-Means and PCA vs scikit-learn's KMeans and PCA: training time and quality on the same generated data.

Run through bench/kmeans_pca/run.sh (it builds the bench binary and uses the project virtualenv). Data: sklearn's
make_blobs, 200,000 rows x 64 features, 16 centres (cluster_std 4), seed 0, cached as SageMaker CSV under
$TERN_BENCH_CACHE (default ~/.cache/tern-bench). tern's time includes streaming and parsing the CSV; scikit-learn's
excludes np.loadtxt (shown apart). 2 threads each.
  K-Means: tern k=16, init kmeans++, epochs 5, mini_batch_size 5000, extra_center_factor 4 (SageMaker's mini-batch
           pass + local Lloyd) vs KMeans(n_clusters=16, init="k-means++", n_init=1, random_state=0) (full Lloyd).
  PCA:     tern num_components=10 regular vs PCA(10, svd_solver="full"); tern randomized (extra_components -1) vs
           PCA(10, svd_solver="randomized", random_state=0).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

ROWS, FEATURES, CENTRES, SEED = 200_000, 64, 16, 0


def data(cache):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"kmeans_pca_{ROWS}x{FEATURES}.csv")
    if not os.path.exists(path):
        X, y = make_blobs(n_samples=ROWS, n_features=FEATURES, centers=CENTRES, cluster_std=4.0, random_state=SEED)
        tmp = path + ".tmp"
        np.savetxt(tmp, np.column_stack([y, X]), delimiter=",", fmt="%.6g")
        os.replace(tmp, path)
    return path


def tern(binary, algorithm, path, *pairs):
    out = subprocess.run([binary, algorithm, path, f"feature_dim={FEATURES}", *pairs], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    binary = sys.argv[1]
    path = data(os.environ.get("TERN_BENCH_CACHE", os.path.expanduser("~/.cache/tern-bench")))
    start = time.perf_counter()
    X = np.loadtxt(path, delimiter=",", dtype=np.float64)[:, 1:]
    load = time.perf_counter() - start
    print(f"data: {ROWS} rows x {FEATURES} features ({CENTRES} blobs), np.loadtxt {load:.2f} s")

    ours = tern(binary, "kmeans", path, f"k={CENTRES}", "init_method=kmeans++", "epochs=5", "mini_batch_size=5000",
                "extra_center_factor=4", "seed=0")
    start = time.perf_counter()
    model = KMeans(n_clusters=CENTRES, init="k-means++", n_init=1, random_state=SEED).fit(X)
    sk = time.perf_counter() - start
    print(f"kmeans  tern {ours['train_seconds']:7.2f} s  inertia {ours['inertia']:.6g} | sklearn KMeans {sk:7.2f} s  "
          f"inertia {model.inertia_:.6g} | time ratio sklearn/tern {sk / ours['train_seconds']:.2f}x "
          f"(+load {(sk + load) / ours['train_seconds']:.2f}x), inertia ratio tern/sklearn "
          f"{ours['inertia'] / model.inertia_:.4f}")

    for mode, solver in [("regular", "full"), ("randomized", "randomized")]:
        ours = tern(binary, "pca", path, "num_components=10", "mini_batch_size=5000", f"algorithm_mode={mode}")
        start = time.perf_counter()
        model = PCA(n_components=10, svd_solver=solver, random_state=SEED).fit(X)
        sk = time.perf_counter() - start
        error = float(np.mean((X - model.inverse_transform(model.transform(X))) ** 2))
        print(f"pca {mode:10s} tern {ours['train_seconds']:7.2f} s  recon {ours['reconstruction_error']:.6g} | "
              f"sklearn PCA({solver}) {sk:7.2f} s  recon {error:.6g} | time ratio sklearn/tern "
              f"{sk / ours['train_seconds']:.2f}x (+load {(sk + load) / ours['train_seconds']:.2f}x), "
              f"reconstruction ratio tern/sklearn {ours['reconstruction_error'] / error:.4f}")


if __name__ == "__main__":
    main()
