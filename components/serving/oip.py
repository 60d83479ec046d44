"""Open Inference Protocol (KServe v2 / Triton) tensors: request bodies -> arrays, arrays -> response bodies.

Both encodings of the protocol are understood: tensors as JSON ``data`` lists, and the binary tensor
extension (a JSON header of ``Inference-Header-Content-Length`` bytes followed by raw little-endian
tensors whose sizes are in ``parameters.binary_data_size``), which Triton's clients use by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.serving.images import InputError

HEADER_LENGTH = "Inference-Header-Content-Length"
DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "UINT8": np.uint8, "INT32": np.int32,
          "INT64": np.int64}  # fmt: skip


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: dict[str, bool] | None  # requested output name -> as binary; None: all outputs
    binary_default: bool


def _bad(detail: str) -> InputError:
    return InputError(400, "invalid_infer_request", detail)


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """The inputs (as arrays of their declared shape) and the requested outputs of one ``/infer`` body."""
    split = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise _bad(f"{HEADER_LENGTH}={header_length!r} is not a length within the {len(body)}-byte body")
        split = int(header_length)
    try:
        head = json.loads(body[:split])
        specs = head["inputs"]
    except (ValueError, KeyError, TypeError) as err:
        raise _bad(f"body is not an inference request with 'inputs': {err}") from None
    offset, inputs = split, {}
    for spec in specs:
        name, shape, dtype = spec.get("name"), spec.get("shape"), spec.get("datatype")
        if dtype not in DTYPES:
            raise _bad(f"input {name!r}: datatype {dtype!r} is not one of {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _bad(f"input {name!r}: shape {shape!r} is not a list of non-negative integers")
        np_dtype = np.dtype(DTYPES[dtype]).newbyteorder("<")
        size = (spec.get("parameters") or {}).get("binary_data_size")
        try:
            if size is not None:
                raw = body[offset : offset + size]
                offset += size
                array = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
            else:
                array = np.asarray(spec["data"], dtype=np_dtype).reshape(shape)
        except (KeyError, ValueError, TypeError) as err:
            raise _bad(f"input {name!r}: data does not fill shape {shape} as {dtype}: {err}") from None
        inputs[name] = array
    params = head.get("parameters") or {}
    binary_default = bool(params.get("binary_data_output", False))
    outputs = None
    if head.get("outputs"):
        outputs = {
            o["name"]: bool((o.get("parameters") or {}).get("binary_data", binary_default)) for o in head["outputs"]
        }
    return InferRequest(head.get("id"), inputs, outputs, binary_default)


def encode_infer(
    request: InferRequest,
    model_name: str,
    model_version: str,
    arrays: dict[str, np.ndarray],
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers for ``arrays`` (output name -> array; integer arrays go out as INT64,
    the rest as FP32), in the request's encodings; ``parameters`` become the response's ``parameters``."""
    wanted = request.outputs or dict.fromkeys(arrays, request.binary_default)
    unknown = sorted(set(wanted) - set(arrays))
    if unknown:
        raise _bad(f"unknown output(s) {unknown}; this model has {sorted(arrays)}")
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in wanted.items():
        integer = np.issubdtype(np.asarray(arrays[name]).dtype, np.integer)
        array = np.ascontiguousarray(arrays[name], dtype="<i8" if integer else "<f4")
        out: dict[str, Any] = {"name": name, "datatype": "INT64" if integer else "FP32", "shape": list(array.shape)}
        if binary:
            blob = array.tobytes()
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = array.ravel().tolist()
        outputs.append(out)
    head: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if parameters:
        head["parameters"] = parameters
    if request.id is not None:
        head["id"] = request.id
    header = json.dumps(head).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
