"""Reference k-NN predictions for tern's k-NN: scikit-learn's brute-force neighbours on the same SageMaker CSV files.

Usage:
  python sklearn_knn.py classifier TRAIN TEST K METRIC   -> {"predictions": [...], "distances": [[...]]}
      KNeighborsClassifier(n_neighbors=K, algorithm="brute", metric=METRIC) with METRIC "euclidean" or "cosine";
      distances are kneighbors' distances of each test row (euclidean: not squared; cosine: 1 - similarity).
  python sklearn_knn.py regressor TRAIN TEST K             -> {"predictions": [...]}
      KNeighborsRegressor(n_neighbors=K, algorithm="brute").
  python sklearn_knn.py inner_product TRAIN TEST K         -> {"predictions": [...], "similarities": [[...]]}
      No scikit-learn estimator ranks by inner product: numpy ranks train rows by descending x.y (stable, ties to
      the lower row), and the prediction is the most frequent label among the K (ties: the smallest label).
Features are rounded to float32 first, as tern parses them. Library: scikit-learn 1.7.2, numpy
(tests/python/requirements.txt).
"""
import json
import sys

import numpy as np


def load(path):
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    return data[:, 1:].astype(np.float32).astype(np.float64), data[:, 0].astype(np.float32).astype(np.float64)


def main(argv):
    command, train_path, test_path, k = argv[1], argv[2], argv[3], int(argv[4])
    X, y = load(train_path)
    T, _ = load(test_path)
    if command == "classifier":
        from sklearn.neighbors import KNeighborsClassifier

        model = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=argv[5]).fit(X, y)
        distances, _ = model.kneighbors(T)
        print(json.dumps({"predictions": model.predict(T).tolist(), "distances": distances.tolist()}))
    elif command == "regressor":
        from sklearn.neighbors import KNeighborsRegressor

        model = KNeighborsRegressor(n_neighbors=k, algorithm="brute").fit(X, y)
        print(json.dumps({"predictions": model.predict(T).tolist()}))
    elif command == "inner_product":
        scores = T @ X.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        classes = np.unique(y)
        predictions, similarities = [], []
        for row, neighbours in enumerate(order):
            counts = np.array([(y[neighbours] == c).sum() for c in classes])
            predictions.append(float(classes[int(np.argmax(counts))]))
            similarities.append(scores[row, neighbours].tolist())
        print(json.dumps({"predictions": predictions, "similarities": similarities}))
    else:
        raise SystemExit(f"unknown command {command!r}; expected classifier, regressor or inner_product")


if __name__ == "__main__":
    main(sys.argv)
