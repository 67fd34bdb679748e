"""Reference quality for tern's Linear Learner: scikit-learn's linear models on the same SageMaker CSV splits.

Usage: python sklearn_linear.py DATASET_DIR {binary,multiclass,regression}
Reads DATASET_DIR/{train,test}.csv (label first, no header), fits on train, scores on test, prints one JSON object:
  binary     -> {"accuracy": ..., "roc_auc": ...}  StandardScaler + LogisticRegression(max_iter=5000)
  multiclass -> {"accuracy": ...}                  StandardScaler + LogisticRegression(max_iter=5000)
  regression -> {"rmse": ...}                      LinearRegression
Library: scikit-learn 1.7.2 (tests/python/requirements.txt).
"""
import json
import os
import sys

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    return data[:, 1:], data[:, 0]


def main(directory, task):
    X_train, y_train = load(os.path.join(directory, "train.csv"))
    X_test, y_test = load(os.path.join(directory, "test.csv"))
    if task == "regression":
        model = LinearRegression().fit(X_train, y_train)
        result = {"rmse": float(np.sqrt(mean_squared_error(y_test, model.predict(X_test))))}
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X_train, y_train)
        result = {"accuracy": float(accuracy_score(y_test, model.predict(X_test)))}
        if task == "binary":
            result["roc_auc"] = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("binary", "multiclass", "regression"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
