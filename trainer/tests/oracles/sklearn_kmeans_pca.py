"""Reference quality for tern's K-Means and PCA: scikit-learn on the same SageMaker CSV files.

Usage:
  python sklearn_kmeans_pca.py kmeans CSV K         -> {"inertia": ...}
      KMeans(n_clusters=K, init="k-means++", n_init=10, random_state=0) fitted on CSV's features (label column
      dropped); inertia = within-cluster sum of squared distances on the same rows.
  python sklearn_kmeans_pca.py pca CSV C            -> {"explained_variance": [...], "explained_variance_ratio": [...],
                                                        "reconstruction_error": ..., "components": [[...]]}
      PCA(n_components=C, svd_solver="full") fitted on CSV's features; reconstruction_error =
      mean((X - inverse_transform(transform(X)))**2) on the same rows.
Library: scikit-learn 1.7.2 (tests/python/requirements.txt).
"""
import json
import sys

import numpy as np


def features(path):
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    return data[:, 1:]


def main(argv):
    command, path = argv[1], argv[2]
    if command == "kmeans":
        from sklearn.cluster import KMeans

        X = features(path)
        model = KMeans(n_clusters=int(argv[3]), init="k-means++", n_init=10, random_state=0).fit(X)
        print(json.dumps({"inertia": float(model.inertia_)}))
    elif command == "pca":
        from sklearn.decomposition import PCA

        X = features(path)
        model = PCA(n_components=int(argv[3]), svd_solver="full").fit(X)
        reconstruction = model.inverse_transform(model.transform(X))
        print(json.dumps({
            "explained_variance": model.explained_variance_.tolist(),
            "explained_variance_ratio": model.explained_variance_ratio_.tolist(),
            "reconstruction_error": float(np.mean((X - reconstruction) ** 2)),
            "components": model.components_.tolist(),
        }))
    else:
        raise SystemExit(f"unknown command {command!r}; expected kmeans or pca")


if __name__ == "__main__":
    main(sys.argv)
