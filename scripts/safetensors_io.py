"""Plain safetensors writing and reading for the fixture generators (no
dependency on the safetensors package): u64 little-endian header length, JSON
header padded with spaces to a multiple of 8, raw little-endian data."""
import json
import os
import struct

import numpy as np

_DT = {
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<f8"): "F64",
    np.dtype("<i2"): "I16",
    np.dtype("u1"): "U8",
    np.dtype("<i8"): "I64",
}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, np.ndarray or (dtype_str, shape, raw_bytes)).

    Data is written in list order.  Header: u64 LE length, JSON, padded with
    spaces so that the data section starts at an 8-byte aligned offset.
    """
    header = {}
    blobs = []
    off = 0
    for name, t in tensors:
        if isinstance(t, tuple):
            dtype_str, shape, raw = t
        else:
            a = np.ascontiguousarray(t)
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
            dtype_str = _DT[a.dtype]
            shape = list(a.shape)
            raw = a.tobytes(order="C")
        header[name] = {"dtype": dtype_str, "shape": [int(s) for s in shape],
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    assert all(isinstance(v, str) for v in metadata.values()), "metadata must be str->str"
    header["__metadata__"] = dict(metadata)
    hjson = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return os.path.getsize(path)


def read_safetensors(path):
    """Reads back what write_safetensors wrote: ({name: array}, header).

    F32, F16 and BF16 (as float32); the data must end exactly at the file end."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0
    hdr = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    end_max = 0
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        end_max = max(end_max, e)
        raw = data[base + b: base + e]
        if v["dtype"] == "F32":
            out[k] = np.frombuffer(raw, dtype="<f4").reshape(v["shape"])
        elif v["dtype"] == "F16":
            out[k] = np.frombuffer(raw, dtype="<f2").reshape(v["shape"])
        elif v["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[k] = u.view("<f4").reshape(v["shape"])
        elif v["dtype"] in ("I64", "I32"):
            out[k] = np.frombuffer(raw, dtype="<i8" if v["dtype"] == "I64" else "<i4").reshape(v["shape"])
        else:
            raise ValueError(v["dtype"])
    assert base + end_max == len(data), "trailing bytes"
    return out, hdr
