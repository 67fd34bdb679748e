"""tern's k-NN vs faiss-cpu: index build time, query time and recall@k on the same generated data.

Run through bench/knn/run.sh (it builds the bench binary and uses the project virtualenv). Data: sklearn's make_blobs,
100,000 rows x 64 features, 32 centres (cluster_std 6), seed 0, cached as SageMaker CSV under $TERN_BENCH_CACHE
(default ~/.cache/tern-bench); 2,000 query rows from the same distribution (seed 1). k = 10, 2 threads each.
  Flat:    tern index_type=faiss.Flat vs faiss.IndexFlatL2.
  IVFFlat: tern index_type=faiss.IVFFlat, nlists 316 (SageMaker's auto, sqrt of the points), nprobe 18 (tern's
           faiss_index_ivf_nprobe; SageMaker exposes none and FAISS's default is 1) vs
           faiss.IndexIVFFlat(IndexFlatL2, 64, 316) with nprobe 18. Both scan only the probed lists.
Recall@10 is measured against exact neighbours (numpy, float64). tern's build time includes streaming and parsing
the CSV (shown apart for faiss as np.loadtxt); query times exclude loading.
Library: faiss-cpu 1.15.1, scikit-learn 1.7.2 (tests/python/requirements.txt).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import faiss
import numpy as np
from sklearn.datasets import make_blobs

ROWS, FEATURES, CENTRES, QUERIES, K, SEED = 100_000, 64, 32, 2_000, 10, 0
NLISTS, NPROBE = 316, 18


def data(cache):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"knn_{ROWS}x{FEATURES}.csv")
    if not os.path.exists(path):
        X, y = make_blobs(n_samples=ROWS, n_features=FEATURES, centers=CENTRES, cluster_std=6.0, random_state=SEED)
        tmp = path + ".tmp"
        np.savetxt(tmp, np.column_stack([y, X]), delimiter=",", fmt="%.6g")
        os.replace(tmp, path)
    Q, _ = make_blobs(n_samples=QUERIES, n_features=FEATURES, centers=CENTRES, cluster_std=6.0, random_state=SEED,
                      shuffle=True)
    rng = np.random.default_rng(1)
    Q = (Q + rng.normal(scale=1.0, size=Q.shape)).astype(np.float32)
    return path, Q


def recall(found, exact):
    return float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]))


def tern(binary, path, queries, *pairs):
    with tempfile.TemporaryDirectory() as work:
        qpath, out = os.path.join(work, "q.f32"), os.path.join(work, "out.i64")
        queries.astype("<f4").tofile(qpath)
        report = json.loads(subprocess.run(
            [binary, path, qpath, str(len(queries)), out, f"feature_dim={FEATURES}", f"k={K}",
             "predictor_type=classifier", f"sample_size={ROWS}", *pairs],
            check=True, capture_output=True, text=True).stdout)
        report["indices"] = np.fromfile(out, dtype="<i8").reshape(len(queries), K)
    return report


def main():
    binary = sys.argv[1]
    faiss.omp_set_num_threads(2)
    path, Q = data(os.environ.get("TERN_BENCH_CACHE", os.path.expanduser("~/.cache/tern-bench")))
    start = time.perf_counter()
    X = np.loadtxt(path, delimiter=",", dtype=np.float64)[:, 1:].astype(np.float32)
    load = time.perf_counter() - start
    print(f"data: {ROWS} rows x {FEATURES} features ({CENTRES} blobs), {QUERIES} queries, k={K}; "
          f"np.loadtxt {load:.2f} s")
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    d2 = (Q64 ** 2).sum(1)[:, None] - 2 * Q64 @ X64.T + (X64 ** 2).sum(1)[None, :]
    exact = np.argsort(d2, axis=1, kind="stable")[:, :K]

    start = time.perf_counter()
    flat = faiss.IndexFlatL2(FEATURES)
    flat.add(X)
    flat_build = time.perf_counter() - start
    start = time.perf_counter()
    _, flat_found = flat.search(Q, K)
    flat_search = time.perf_counter() - start

    start = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(FEATURES), FEATURES, NLISTS)
    ivf.train(X)
    ivf.add(X)
    ivf_build = time.perf_counter() - start
    ivf.nprobe = NPROBE
    start = time.perf_counter()
    _, ivf_found = ivf.search(Q, K)
    ivf_search = time.perf_counter() - start

    tern_flat = tern(binary, path, Q)
    tern_ivf = tern(binary, path, Q, "index_type=faiss.IVFFlat", f"faiss_index_ivf_nlists={NLISTS}",
                    f"faiss_index_ivf_nprobe={NPROBE}")

    rows = [
        ("Flat", tern_flat, flat_build, flat_search, flat_found),
        ("IVFFlat", tern_ivf, ivf_build, ivf_search, ivf_found),
    ]
    print(f"{'index':<8} {'tern build s':>12} {'faiss build s':>13} {'tern query s':>12} {'faiss query s':>13} "
          f"{'query ratio':>11} {'tern recall':>11} {'faiss recall':>12}")
    for name, ours, build, search, found in rows:
        print(f"{name:<8} {ours['build_seconds']:>12.2f} {build:>13.2f} {ours['search_seconds']:>12.3f} "
              f"{search:>13.3f} {ours['search_seconds'] / search:>10.2f}x {recall(ours['indices'], exact):>11.4f} "
              f"{recall(found, exact):>12.4f}")
    print("tern build includes CSV parsing; faiss build excludes np.loadtxt. ratio = tern / faiss (lower is better "
          "for tern).")


if __name__ == "__main__":
    main()
