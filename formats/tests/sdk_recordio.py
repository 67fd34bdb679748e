"""The SageMaker SDK's side of tern's RecordIO-protobuf compatibility test (formats/tests/sagemaker_sdk.rs).

    sdk_recordio.py write DIR   writes every case with the SDK (sagemaker 2.257.7:
                                sagemaker.amazon.common.write_numpy_to_dense_tensor / write_spmatrix_to_sparse_tensor)
                                to DIR/sdk_<case>.rec and the numbers to DIR/<case>.json
    sdk_recordio.py check DIR   reads DIR/tern_<case>.rec (written by tern) with the SDK's read_records and checks the
                                numbers, keys, shapes and labels against the same data; prints "ok <case> <n>" per case,
                                exits 1 on the first mismatch

The data is generated from a fixed seed, so both modes see the same numbers.
"""

import json
import os
import sys

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
from sagemaker.amazon.common import (  # noqa: E402
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)

SEED = 20240607


def as_float32_exact(array):
    """float64 values that are exactly representable as float32 (tern holds features as f32)."""
    return array.astype(np.float32).astype(np.float64)


def sparse_matrix(rng, rows, cols, density, dtype):
    dense = rng.standard_normal((rows, cols)).astype(np.float32).astype(dtype)  # float32-exact
    dense[rng.random((rows, cols)) >= density] = 0
    dense[3, :] = 0  # an empty row: keys and values empty, shape still written
    return scipy.sparse.csr_matrix(dense)


def cases():
    """name -> (features, labels or None)."""
    rng = np.random.default_rng(SEED)
    return {
        "dense_float32": (
            rng.standard_normal((40, 7)).astype(np.float32),
            rng.integers(0, 3, 40).astype(np.float32),
        ),
        "dense_float64": (
            as_float32_exact(rng.standard_normal((30, 5)) * 1e3),
            as_float32_exact(rng.standard_normal(30)),
        ),
        "dense_int32_labels": (
            rng.standard_normal((25, 3)).astype(np.float32),
            rng.integers(-2, 5, 25),
        ),
        "dense_int32_features": (rng.integers(-1000, 1000, (20, 4)), None),
        "dense_unlabelled": (rng.standard_normal((10, 6)).astype(np.float32), None),
        "sparse_float32": (
            sparse_matrix(rng, 50, 300, 0.05, np.float32),
            rng.integers(0, 2, 50).astype(np.float32),
        ),
        "sparse_float64_int32_labels": (
            sparse_matrix(rng, 20, 1000, 0.01, np.float64),
            rng.integers(0, 10, 20),
        ),
    }


def tensor_type(dtype):
    if dtype == np.dtype(int):
        return "Int32"
    if dtype == np.dtype(float):
        return "Float64"
    if dtype == np.dtype("float32"):
        return "Float32"
    raise ValueError(dtype)


def describe(features, labels):
    """The numbers as JSON: what tern must read back."""
    sparse = scipy.sparse.issparse(features)
    out = {
        "sparse": sparse,
        "dim": int(features.shape[1]),
        "feature_type": tensor_type(features.dtype),
        "label_type": None if labels is None else tensor_type(labels.dtype),
        "labels": None if labels is None else [float(v) for v in labels],
    }
    if sparse:
        out["indices"] = [[int(i) for i in features.getrow(r).indices] for r in range(features.shape[0])]
        out["values"] = [[float(v) for v in features.getrow(r).data] for r in range(features.shape[0])]
    else:
        out["rows"] = [[float(v) for v in row] for row in features]
    return out


def write(directory):
    for name, (features, labels) in cases().items():
        with open(os.path.join(directory, f"sdk_{name}.rec"), "wb") as f:
            if scipy.sparse.issparse(features):
                write_spmatrix_to_sparse_tensor(f, features, labels)
            else:
                write_numpy_to_dense_tensor(f, features, labels)
        with open(os.path.join(directory, f"{name}.json"), "w") as f:
            json.dump(describe(features, labels), f)
        print(f"wrote {name}")


def tensor(value, expected_type):
    kind = value.WhichOneof("value")
    want = {"Float32": "float32_tensor", "Float64": "float64_tensor", "Int32": "int32_tensor"}[expected_type]
    if kind != want:
        raise AssertionError(f"tensor is {kind}, expected {want}")
    return getattr(value, kind)


def check(directory):
    for name, (features, labels) in cases().items():
        path = os.path.join(directory, f"tern_{name}.rec")
        with open(path, "rb") as f:
            records = read_records(f)
        sparse = scipy.sparse.issparse(features)
        if len(records) != features.shape[0]:
            raise AssertionError(f"{name}: {len(records)} records, expected {features.shape[0]}")
        feature_type = tensor_type(features.dtype)
        for r, record in enumerate(records):
            where = f"{name} record {r}"
            if list(record.features.keys()) != ["values"]:
                raise AssertionError(f"{where}: feature keys {list(record.features.keys())}")
            values = tensor(record.features["values"], feature_type)
            if sparse:
                row = features.getrow(r)
                expected_values, expected_keys, expected_shape = list(row.data), list(row.indices), [features.shape[1]]
            else:
                expected_values, expected_keys, expected_shape = list(features[r]), [], []
            if list(values.values) != [v.item() for v in np.asarray(expected_values)]:
                raise AssertionError(f"{where}: values {list(values.values)} != {expected_values}")
            if list(values.keys) != [int(k) for k in expected_keys]:
                raise AssertionError(f"{where}: keys {list(values.keys)} != {expected_keys}")
            if list(values.shape) != expected_shape:
                raise AssertionError(f"{where}: shape {list(values.shape)} != {expected_shape}")
            if labels is None:
                if len(record.label) != 0:
                    raise AssertionError(f"{where}: unexpected label {record.label}")
            else:
                label = tensor(record.label["values"], tensor_type(labels.dtype))
                if list(label.values) != [labels[r].item()]:
                    raise AssertionError(f"{where}: label {list(label.values)} != {labels[r]}")
        print(f"ok {name} {len(records)}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
