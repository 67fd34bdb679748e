"""Writes scikit-learn's bundled real datasets as SageMaker CSV (label first, no header), split train/validation/test.

Usage: python export_datasets.py OUT_DIR [NAME ...]
Names: breast_cancer (binary), digits (10 classes), diabetes (regression), iris (3 classes), and pang_lee (200
movie-review sentences labelled __label__pos / __label__neg, BlazingText's supervised format, from gensim's test data).
Splits are 60/20/20, shuffled with a fixed seed (0), stratified for classifiers, so every run writes the same files;
pang_lee is split 80/20 into train.txt and test.txt (every fifth line to test).
Data: scikit-learn 1.7.2's and gensim 4.4.0's bundled copies (tests/python/requirements.txt pins the versions).
"""
import os
import sys

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

LOADERS = {
    "breast_cancer": (datasets.load_breast_cancer, True),
    "digits": (datasets.load_digits, True),
    "diabetes": (datasets.load_diabetes, False),
    "iris": (datasets.load_iris, True),
}


def write_csv(path, X, y):
    rows = np.column_stack([y, X])
    tmp = path + ".tmp"
    np.savetxt(tmp, rows, delimiter=",", fmt="%.10g")
    os.replace(tmp, path)


def export_pang_lee(out_dir):
    import gensim

    source = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", "pang_lee_polarity.cor")
    # The corpus is Latin-1 (e.g. byte 0x97, an em dash in cp1252); written out as UTF-8.
    with open(source, encoding="latin-1") as f:
        lines = [line.rstrip() + "\n" for line in f if line.strip()]
    target = os.path.join(out_dir, "pang_lee")
    os.makedirs(target, exist_ok=True)
    splits = {"train": [l for i, l in enumerate(lines) if i % 5 != 4], "test": lines[4::5]}
    for split, chosen in splits.items():
        path = os.path.join(target, f"{split}.txt")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(chosen)
        os.replace(path + ".tmp", path)


def export(name, out_dir):
    if name == "pang_lee":
        export_pang_lee(out_dir)
        return
    loader, classify = LOADERS[name]
    X, y = loader(return_X_y=True)
    stratify = y if classify else None
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, random_state=0, stratify=stratify)
    stratify = y_rest if classify else None
    X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, test_size=0.5, random_state=0, stratify=stratify)
    target = os.path.join(out_dir, name)
    os.makedirs(target, exist_ok=True)
    for split, (Xs, ys) in {"train": (X_train, y_train), "validation": (X_val, y_val), "test": (X_test, y_test)}.items():
        write_csv(os.path.join(target, f"{split}.csv"), Xs, ys)


if __name__ == "__main__":
    out = sys.argv[1]
    names = sys.argv[2:] or list(LOADERS) + ["pang_lee"]
    for n in names:
        export(n, out)
    print(f"exported {', '.join(names)} to {out}")
