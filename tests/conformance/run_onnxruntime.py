"""Runs a tern package's model.onnx with onnxruntime: the conformance suite's onnxruntime column.

usage: run_onnxruntime.py <package-dir> <features.f32> <rows> <out.json>

features.f32 holds rows x feature_dim little-endian float32 values (row-major); out.json receives
{"outputs":[{"name":..., "shape":[...], "values":[...]}]} for every graph output, NaN written as null.
Same contract as runtime-core/examples/run_package.rs.
"""
import json
import math
import sys

import numpy as np
import onnxruntime


def main(package_dir, features_path, rows, out_path):
    with open(f"{package_dir}/manifest.json") as f:
        manifest = json.load(f)
    features = np.fromfile(features_path, dtype="<f4").reshape(int(rows), manifest["feature_dim"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        f"{package_dir}/model.onnx", options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, {manifest["inputs"][0]["name"]: features})
    outputs = []
    for name, value in zip(names, results):
        value = np.asarray(value)
        flat = value.reshape(-1)
        if value.dtype.kind == "f":
            values = [None if math.isnan(v) else float(np.float32(v)) for v in flat]
        else:
            values = [int(v) for v in flat]
        outputs.append({"name": name, "shape": list(value.shape), "values": values})
    with open(out_path, "w") as f:
        json.dump({"outputs": outputs}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
