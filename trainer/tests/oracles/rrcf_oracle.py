"""The Random Cut Forest oracle: rrcf 0.4.4 (PyPI) on scikit-learn 1.7.2's digits with injected anomalies.

Usage: rrcf_oracle.py OUT_DIR NUM_TREES TREE_SIZE SEED [SEED ...]

The data (written to OUT_DIR so tern trains on exactly the same rows):
- scikit-learn's bundled digits features (1797 rows x 64 pixel intensities 0..16), labels dropped;
- 3% of the rows (54, chosen with numpy's default_rng(0)) are replaced by anomalies: a copy of another random
  digit in which 3 random pixels are set to mean +/- 3 standard deviations of that pixel (sign random), i.e.
  far out along a few coordinates, ordinary along the rest;
- OUT_DIR/train.csv holds the features only (text/csv;label_size=0, SageMaker's RCF train channel);
  OUT_DIR/test.csv the same rows with the anomaly flag first (1 anomalous, 0 normal; label_size=1).

rrcf is run the way its README runs batch detection: per seed, `numpy.random.seed(seed)`, trees built on disjoint
random samples of TREE_SIZE rows (`n // TREE_SIZE` trees per draw) until NUM_TREES trees exist, each row scored by
its CoDisp averaged over the trees that hold it. Prints JSON: {"auc": [per seed], "rows": n, "anomalies": k}.
"""

import json
import sys

import numpy as np
import rrcf
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score


def inject(features):
    rng = np.random.default_rng(0)
    n, d = features.shape
    anomalies = rng.choice(n, int(round(0.03 * n)), replace=False)
    labels = np.zeros(n)
    labels[anomalies] = 1
    mean, std = features.mean(axis=0), features.std(axis=0)
    out = features.copy()
    for i in anomalies:
        out[i] = features[rng.integers(n)]
        pixels = rng.choice(d, 3, replace=False)
        out[i, pixels] = mean[pixels] + 3.0 * std[pixels] * rng.choice([-1.0, 1.0], 3)
    return out, labels


def rrcf_scores(features, num_trees, tree_size, seed):
    np.random.seed(seed)
    n = len(features)
    forest = []
    while len(forest) < num_trees:
        draws = np.random.choice(n, size=(n // tree_size, tree_size), replace=False)
        forest.extend(rrcf.RCTree(features[rows], index_labels=rows) for rows in draws)
    total, count = np.zeros(n), np.zeros(n)
    for tree in forest[:num_trees]:
        for leaf in tree.leaves:
            total[leaf] += tree.codisp(leaf)
            count[leaf] += 1
    return total / np.maximum(count, 1)


def main():
    out_dir, num_trees, tree_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seeds = [int(s) for s in sys.argv[4:]]
    features, labels = inject(load_digits().data.astype(np.float64))
    np.savetxt(f"{out_dir}/train.csv", features, delimiter=",", fmt="%.9g")
    np.savetxt(
        f"{out_dir}/test.csv", np.column_stack([labels, features]), delimiter=",", fmt="%.9g"
    )
    auc = [
        roc_auc_score(labels, rrcf_scores(features, num_trees, tree_size, seed)) for seed in seeds
    ]
    print(json.dumps({"auc": auc, "rows": len(labels), "anomalies": int(labels.sum())}))


if __name__ == "__main__":
    main()
