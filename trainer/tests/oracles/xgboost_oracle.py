"""The xgboost oracle for trainer/tests/xgboost.rs: trains and predicts with the real `xgboost` package.

Usage: python xgboost_oracle.py REQUEST.json  → prints one JSON object on stdout.

Requests (all paths absolute; CSVs are SageMaker CSV: label first, no header, "nan" for missing):
  {"action": "train_eval", "train": csv, "test": csv, "params": {...}, "num_round": n, "metric": "auc"|"accuracy"|"rmse"|"mae"|"rmsle"|"ndcg",
   "groups": [sizes] (train, ranking only), "test_groups": [sizes],
   "csv_weights": true (the train CSV's second column is the instance weight)}
      → {"metric": value, "predictions": [...]}    (xgboost hist trained with exactly these params)
  {"action": "inject_missing", "source": csv, "out": csv, "rate": r, "seed": s}
      → {"rows": n}                                 (sets a fraction r of feature cells to NaN, label kept)
  {"action": "predict", "model": json_model_path, "data": csv}
      → {"predictions": [...]}                      (Booster().load_model(path).predict, rows × groups flattened)
  {"action": "train_save", "train": csv, "params": {...}, "num_round": n, "model_out": path, "data": csv}
      → {"predictions": [...]}                      (trains, saves the JSON model, predicts `data`)
Versions: xgboost 3.2.0, numpy and scikit-learn from tests/python/requirements.txt.
"""
import json
import sys

import numpy as np
import xgboost as xgb
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score


def load(path, weighted=False):
    data = np.genfromtxt(path, delimiter=",", dtype=np.float64)
    first = 2 if weighted else 1
    return data[:, first:].astype(np.float32), data[:, 0], (data[:, 1] if weighted else None)


def ndcg(labels, scores, groups):
    total, start = 0.0, 0
    for size in groups:
        y, s = labels[start:start + size], scores[start:start + size]
        start += size
        order = np.argsort(-s, kind="stable")
        discounts = 1.0 / np.log2(np.arange(size) + 2.0)
        dcg = np.sum((2.0 ** y[order] - 1.0) * discounts)
        idcg = np.sum((2.0 ** np.sort(y)[::-1] - 1.0) * discounts)
        total += dcg / idcg if idcg > 0 else 1.0
    return total / len(groups)


def main():
    request = json.load(open(sys.argv[1]))
    action = request["action"]
    if action == "inject_missing":
        data = np.genfromtxt(request["source"], delimiter=",", dtype=np.float64)
        rng = np.random.default_rng(request["seed"])
        mask = rng.random(data[:, 1:].shape) < request["rate"]
        features = data[:, 1:]
        features[mask] = np.nan
        np.savetxt(request["out"], np.column_stack([data[:, 0], features]), delimiter=",", fmt="%.10g")
        print(json.dumps({"rows": int(data.shape[0])}))
        return
    if action == "predict":
        booster = xgb.Booster()
        booster.load_model(request["model"])
        X, _, _ = load(request["data"])
        predictions = booster.predict(xgb.DMatrix(X, missing=np.nan))
        print(json.dumps({"predictions": [float(v) for v in np.asarray(predictions, dtype=np.float32).ravel()]}))
        return
    params = dict(request["params"])
    params.setdefault("tree_method", "hist")
    params["nthread"] = 2
    X, y, w = load(request["train"], request.get("csv_weights", False))
    dtrain = xgb.DMatrix(X, label=y, weight=w, missing=np.nan)
    if "groups" in request:
        dtrain.set_group(request["groups"])
    booster = xgb.train(params, dtrain, num_boost_round=request["num_round"])
    if action == "train_save":
        booster.save_model(request["model_out"])
        Xp, _, _ = load(request["data"])
        predictions = booster.predict(xgb.DMatrix(Xp, missing=np.nan))
        print(json.dumps({"predictions": [float(v) for v in np.asarray(predictions, dtype=np.float32).ravel()]}))
        return
    Xt, yt, _ = load(request["test"])
    dtest = xgb.DMatrix(Xt, missing=np.nan)
    predictions = booster.predict(dtest)
    metric = request["metric"]
    if metric == "auc":
        value = roc_auc_score(yt, predictions)
    elif metric == "accuracy":
        labels = predictions if predictions.ndim == 1 else predictions.argmax(axis=1)
        value = accuracy_score(yt, labels)
    elif metric == "rmse":
        value = float(np.sqrt(mean_squared_error(yt, predictions)))
    elif metric == "mae":
        value = float(np.mean(np.abs(yt - predictions)))
    elif metric == "rmsle":
        value = float(np.sqrt(np.mean((np.log1p(predictions) - np.log1p(yt)) ** 2)))
    elif metric == "ndcg":
        value = ndcg(yt, predictions, request["test_groups"])
    else:
        raise SystemExit(f"unknown metric {metric}")
    print(json.dumps({"metric": float(value), "predictions": [float(v) for v in np.asarray(predictions).ravel()]}))


if __name__ == "__main__":
    main()
