#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/seeds/<target>/: a few well-formed inputs of each format (CSV rows
taken from examples/breast_cancer/test.csv, libsvm, RecordIO-protobuf, JSON lines, JSON requests, content types, a
model.tar.gz, request bodies, batch transform filters and records), laid out as each target reads its bytes.

Deterministic (fixed gzip mtime, no randomness): rerunning it rewrites the same files. Standard library only.

    python3 fuzz/seeds/make_seeds.py
"""

import gzip
import io
import json
import pathlib
import struct
import tarfile

SEEDS = pathlib.Path(__file__).resolve().parent
REPO = SEEDS.parent.parent
MAGIC = 0xCED7230A


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --- RecordIO-protobuf, encoded by hand (formats/src/recordio.rs `proto`) ---

def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(tag, wire_type, payload):
    key = varint(tag << 3 | wire_type)
    if wire_type == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def float32_value(values, keys=None, shape=None):
    tensor = field(1, 2, b"".join(struct.pack("<f", v) for v in values))
    if keys is not None:
        tensor += field(2, 2, b"".join(varint(k) for k in keys))
    if shape is not None:
        tensor += field(3, 2, b"".join(varint(s) for s in shape))
    return field(2, 2, tensor)  # Value.float32_tensor


def map_entry(tag, key, value):
    return field(tag, 2, field(1, 2, key.encode()) + field(2, 2, value))


def record(features, label=None):
    message = map_entry(1, "values", features)
    if label is not None:
        message += map_entry(2, "values", float32_value([label]))
    return message


def frame(payload, flag=0):
    padding = (4 - len(payload) % 4) % 4
    return struct.pack("<II", MAGIC, flag << 29 | len(payload)) + payload + b"\0" * padding


def recordio_body():
    return (
        frame(record(float32_value([1.5, 16.0, 14.0]), label=1.0))
        + frame(record(float32_value([1.0, 4.0], keys=[0, 2], shape=[3])))
    )


# --- model.tar.gz (trainer/src/artifact.rs) ---

def safetensors(tensors):
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = b"".join(struct.pack("<f", v) for v in values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def model_tar_gz():
    meta = {
        "schema_version": 1,
        "algorithm": "linear-learner",
        "hyperparameters": {"predictor_type": "regressor"},
        "feature_dim": 3,
        "provenance": {"data_sha256": {}, "seed": 1, "tern_version": "0.1.0"},
        "model": {"predictor_type": "regressor"},
    }
    files = [
        ("artifact.json", json.dumps(meta).encode()),
        ("weights.safetensors", safetensors({"weight": ([3, 1], [0.5, -1.0, 2.0]), "bias": ([1], [0.25])})),
        ("linear-learner-notes.txt", b"notes"),
    ]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, contents in files:
            info = tarfile.TarInfo(name)
            info.size = len(contents)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(contents))
    return gzip.compress(archive.getvalue(), mtime=0)


def artifact_entries():
    """The artifact target's odd mode: [kind][type][lie][length u16][contents] per entry (see its docs)."""
    out = b""
    # artifact.json and weights.safetensors as templates (kind's high bit), a plain file of the algorithm.
    out += bytes([0x80, 4, 5, 0, 0]) + bytes([0, 3, 0, 0])
    out += bytes([0x82, 4, 5, 0, 0]) + bytes([0, 2, 3, 1, 12]) + struct.pack("<3f", 0.5, -1.0, 2.0) + bytes([2, 0, 2])
    out += bytes([4, 4, 5, 5, 0]) + b"trees"
    return out


def main():
    rows = (REPO / "examples/breast_cancer/test.csv").read_text().splitlines()[:3]
    csv = "\n".join(rows) + "\n"
    for flags in (0, 1, 3):
        write("csv", f"breast_cancer_{flags}", bytes([flags]) + csv.encode())
    write("csv", "quoted", b"\x01" + b'1,"2.5",3\r\n0,,nan\n')

    write("libsvm", "one_based", b"\x01" + b"1 1:0.5 3:2\n0 2:1.5 # comment\n")
    write("libsvm", "zero_based", b"\x00" + b"1 0:0.5 2:2\n-1 1:1e3\n")

    write("recordio", "dense_and_sparse", recordio_body())
    write("recordio", "multi_part", frame(record(float32_value([1.0]))[:6], 1) + frame(record(float32_value([1.0]))[6:], 3))

    jsonlines = '{"features": [1.5, 16.0, 14.0], "label": 1}\n{"data": {"features": {"keys": [0, 2], "shape": [3], "values": [1, 4]}}}\n[1, 2, 3]\n'
    write("jsonlines", "shapes", jsonlines)

    requests = {
        "instances": '{"instances": [{"features": [1.5, 16.0, 14.0]}, {"data": {"features": {"values": [1, 2, 3]}}}]}',
        "plain_arrays": "[[1, 2, 3], [4, 5, null]]",
        "one_row": "[1.5, 16.0, 14.0]",
        "sparse": '{"data": {"features": {"keys": [0, 2], "shape": [3], "values": [1, 4]}}, "label": 0}',
    }
    for name, text in requests.items():
        write("json_request", name, text)

    for i, text in enumerate(["text/csv", "text/csv; label_size=0", "application/x-recordio-protobuf",
                              "application/jsonlines", "application/json; charset=utf-8", "text/x-libsvm"]):
        write("content_type", f"type_{i}", text)

    write("artifact", "model_tar_gz", b"\x00" + model_tar_gz())
    write("artifact", "entries", b"\x01" + artifact_entries())

    # http_body: [mode][row limit][piece seed][body]; mode picks the content type (and its high bit, frames).
    body_types = {"csv": 0, "libsvm": 2, "recordio": 3, "jsonlines": 4, "json": 5}
    write("http_body", "csv", bytes([body_types["csv"], 4, 7]) + b"1,2,3\n0.5,nan,-1\n")
    write("http_body", "libsvm", bytes([body_types["libsvm"], 4, 7]) + b"0 1:0.5 3:2\n")
    write("http_body", "recordio", bytes([body_types["recordio"], 4, 7]) + recordio_body())
    write("http_body", "jsonlines", bytes([body_types["jsonlines"], 4, 7]) + jsonlines.encode())
    for name, text in requests.items():
        write("http_body", f"json_{name}", bytes([body_types["json"], 4, 7]) + text.encode())
    # Frames mode: [head][payload…][lie] per frame; head's high bit asks for a well-formed record.
    write("http_body", "frames", bytes([0x80 | body_types["recordio"], 4, 7, 0x80, 3, 2, 4, 6, 0, 5, 0x80, 1, 8, 1, 5]))

    # transform_filters: [flags] then InputFilter, OutputFilter, output line, record (see its docs).
    filters = {
        "csv_documented": (0b100, "$[1:]", "$[0,-1]", "0.25,1", "7,1.5,2.5"),
        "json_documented": (0b111, "$.features", "$['id','SageMakerOutput']", '{"score": 0.5}',
                            '{"id": 3, "features": [1, 2]}'),
        "json_split": (0b10011, "$.*", "$[0, 2]", '{"predictions": [{"score": 1}, {"score": 2}]}', "[1, 2, 3]"),
        "csv_wildcard": (0b000, "$[*]", "$[:2]", '"a,b",2', '"x",,"y"""'),
    }
    for name, (flags, input_filter, output_filter, output, line) in filters.items():
        write("transform_filters", name, bytes([flags]) + "\n".join([input_filter, output_filter, output, line]).encode())


if __name__ == "__main__":
    main()
