"""A real SageMaker client for tern serve's HTTP suite (tests/tests/serve_http.rs).

Reads {"url": ..., "requests": [spec, ...]} as JSON on stdin, sends each request with `requests` over a real socket,
bodies built by the sagemaker SDK's serializers (CSVSerializer, JSONSerializer, JSONLinesSerializer,
sagemaker.amazon.common.RecordSerializer) and successful responses read by its deserializers (JSONDeserializer,
JSONLinesDeserializer, RecordDeserializer), and prints one JSON result per request as a JSON list on stdout.

A spec: name; method (POST, default, or GET); path (default /invocations); rows (a list of feature lists, serialized
by `serializer`: csv, json, jsonlines or recordio) or body (a raw string, serializer "raw"); content_type (default:
the serializer's); accept; headers; deserializer (json, jsonlines, recordio, or none); repeat (send it that many
times, default 1).

A result: name, status, headers (lower-case names), text (the body as UTF-8, for non-RecordIO bodies), body_hex (the
raw body), decoded (the deserializer's output: JSON values; RecordIO records as {label key: float list}).
"""

import io
import json
import sys

import numpy as np
import requests

# The SDK prints its config notices on stdout at import: keep stdout for the results.
RESULTS = sys.stdout
sys.stdout = sys.stderr
from sagemaker.amazon.common import RecordDeserializer, RecordSerializer  # noqa: E402
from sagemaker.deserializers import JSONDeserializer, JSONLinesDeserializer  # noqa: E402
from sagemaker.serializers import CSVSerializer, JSONLinesSerializer, JSONSerializer  # noqa: E402

SERIALIZERS = {
    "csv": CSVSerializer(),
    "json": JSONSerializer(),
    "jsonlines": JSONLinesSerializer(),
    "recordio": RecordSerializer(),
}


def serialize(spec):
    kind = spec.get("serializer", "raw")
    if kind == "raw":
        return spec.get("body", "").encode(), spec.get("content_type", "text/csv")
    serializer = SERIALIZERS[kind]
    rows = spec["rows"]
    if kind == "csv":
        data = np.array(rows, dtype=np.float64)
    elif kind == "json":
        data = {"instances": [{"features": row} for row in rows]}
    elif kind == "jsonlines":
        data = [{"features": row} for row in rows]
    else:
        data = np.array(rows, dtype=np.float32)
    body = serializer.serialize(data)
    if isinstance(body, str):
        body = body.encode()
    return body, spec.get("content_type", serializer.CONTENT_TYPE)


def deserialize(kind, body, content_type):
    stream = io.BytesIO(body)
    if kind == "json":
        return JSONDeserializer().deserialize(stream, content_type)
    if kind == "jsonlines":
        return JSONLinesDeserializer().deserialize(stream, content_type)
    if kind == "recordio":
        records = RecordDeserializer().deserialize(stream, content_type)
        return [
            {key: list(value.float32_tensor.values) for key, value in record.label.items()}
            for record in records
        ]
    return None


def send(session, url, spec):
    body, content_type = serialize(spec)
    headers = {"Content-Type": content_type}
    if "accept" in spec:
        headers["Accept"] = spec["accept"]
    headers.update(spec.get("headers", {}))
    method = spec.get("method", "POST")
    target = url + spec.get("path", "/invocations")
    if method == "GET":
        response = session.get(target, headers=spec.get("headers", {}), timeout=70)
    else:
        response = session.post(target, data=body, headers=headers, timeout=70)
    result = {
        "name": spec.get("name", ""),
        "status": response.status_code,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body_hex": response.content.hex(),
    }
    response_type = response.headers.get("Content-Type", "")
    if "recordio" not in response_type:
        result["text"] = response.content.decode("utf-8", errors="replace")
    kind = spec.get("deserializer")
    if kind and response.status_code == 200:
        result["decoded"] = deserialize(kind, response.content, response_type)
    return result


def main():
    job = json.load(sys.stdin)
    results = []
    with requests.Session() as session:
        for spec in job["requests"]:
            for _ in range(spec.get("repeat", 1)):
                results.append(send(session, job["url"], spec))
    json.dump(results, RESULTS)


if __name__ == "__main__":
    main()
