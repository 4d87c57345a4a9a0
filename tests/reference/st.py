"""Minimal safetensors reader/writer (numpy + json + struct only).

File layout:
    u64 little-endian N
    N bytes of JSON header (padded with spaces to a multiple of 8):
        {name: {"dtype": ..., "shape": [...], "data_offsets": [begin, end]},
         "__metadata__": {str: str}}
    raw little-endian, C-contiguous tensor data; offsets are relative to
    the first byte after the header.
"""
import json
import struct

import numpy as np

# safetensors dtype tag -> numpy dtype (little-endian)
_TAG_TO_NP = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to float32 on load
}
_NP_TO_TAG = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("int32"): "I32",
}


def _prepare(name, array):
    """Return (tag, little-endian C-contiguous array) for one tensor."""
    a = np.asarray(array)
    if a.dtype == np.int64:
        if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
            raise ValueError(f"{name}: int64 values do not fit in int32")
        a = a.astype(np.int32)
    if a.dtype not in _NP_TO_TAG:
        raise TypeError(f"{name}: unsupported dtype {a.dtype}")
    tag = _NP_TO_TAG[a.dtype]
    # (not np.ascontiguousarray: it would turn a 0-d scalar into shape [1])
    return tag, a.astype(_TAG_TO_NP[tag], order="C", copy=False)


def save(path, tensors, metadata=None):
    """Write `tensors` (name -> ndarray) and `metadata` (str -> str) to `path`."""
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must be str -> str, got {key!r}: {value!r}")

    prepared = {name: _prepare(name, a) for name, a in tensors.items()}
    # Wider element types first, so every tensor starts on its natural alignment.
    order = sorted(prepared, key=lambda n: (-prepared[n][1].dtype.itemsize, n))

    header = {"__metadata__": metadata}
    offset = 0
    for name in order:
        tag, a = prepared[name]
        header[name] = {"dtype": tag, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes

    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)

    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for name in order:
            f.write(prepared[name][1].tobytes(order="C"))


def load(path):
    """Return (tensors: dict name -> ndarray, metadata: dict str -> str).

    BF16 tensors are returned widened to float32.
    """
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]

    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = _TAG_TO_NP[info["dtype"]]
        a = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = a.copy()
    return tensors, metadata
