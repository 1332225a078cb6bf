"""TensorFlow.js weight manifests: read (with de-quantisation) and write.

Format (tfjs ``io`` "weights manifest"): a JSON list of groups ``{"paths": [shard, ...],
"weights": [{"name", "shape", "dtype", "quantization"?}, ...]}``. A group's shards are
concatenated in ``paths`` order into one byte buffer, and the weights are laid out back to back
in ``weights`` order, little-endian, without padding. A weight with a ``quantization`` entry is
stored as ``quantization.dtype`` and decoded to ``dtype``:

- ``uint8`` / ``uint16``: ``value = q * scale + min`` (affine quantisation);
- ``float16``: IEEE half floats.

Unquantised weights are stored as ``dtype`` itself (``float32``, ``int32``, ``bool`` = 1 byte).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from occrecon.errors import DataFormatError

_PLAIN = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "bool": np.dtype("u1")}
_QUANT = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}


def _stored_dtype(entry: Mapping[str, Any], where: str) -> np.dtype:
    quant = entry.get("quantization")
    if quant is not None:
        if quant.get("dtype") not in _QUANT:
            raise DataFormatError(where, f"quantization dtype in {sorted(_QUANT)}", got=repr(quant.get("dtype")))
        return _QUANT[quant["dtype"]]
    if entry.get("dtype") not in _PLAIN:
        raise DataFormatError(where, f"dtype in {sorted(_PLAIN)}", got=repr(entry.get("dtype")))
    return _PLAIN[entry["dtype"]]


def decode_weight(entry: Mapping[str, Any], raw: bytes, where: str = "<manifest>") -> np.ndarray:
    """Decode one manifest entry from its stored bytes (exactly ``prod(shape) * itemsize`` long).

    Quantised values are computed in float64 and rounded once to the target dtype, as tfjs does
    in JavaScript doubles before filling a ``Float32Array``.
    """
    shape = tuple(int(d) for d in entry["shape"])
    stored = np.frombuffer(raw, dtype=_stored_dtype(entry, where)).reshape(shape)
    quant = entry.get("quantization")
    target = _PLAIN.get(entry.get("dtype", "float32"), np.dtype("<f4"))
    if quant is None:
        return stored.astype(target.newbyteorder("="))
    if quant["dtype"] == "float16":
        return stored.astype(np.float32)
    values = stored.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
    return values.astype(target.newbyteorder("="))


def parse_manifest(
    manifest: list[dict[str, Any]], read_shard: Callable[[str], bytes], where: str = "<manifest>"
) -> dict[str, np.ndarray]:
    """Decode every weight of a parsed manifest; ``read_shard(path)`` returns a shard's bytes.

    Raises :class:`DataFormatError` (naming ``where`` and the weight) when the shards are shorter
    or longer than the manifest says, or a dtype is unknown.
    """
    if not isinstance(manifest, list):
        raise DataFormatError(where, "a JSON list of weight groups", got=type(manifest).__name__)
    weights: dict[str, np.ndarray] = {}
    for index, group in enumerate(manifest):
        buffer = b"".join(read_shard(path) for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            label = f"{where} (group {index}, weight {entry.get('name')!r})"
            count = int(np.prod(entry["shape"], dtype=np.int64))
            nbytes = count * _stored_dtype(entry, label).itemsize
            if offset + nbytes > len(buffer):
                raise DataFormatError(
                    label, f"{nbytes} more bytes in the shards {group['paths']}", got=f"{len(buffer) - offset}"
                )
            weights[entry["name"]] = decode_weight(entry, buffer[offset : offset + nbytes], label)
            offset += nbytes
        if offset != len(buffer):
            raise DataFormatError(f"{where} (group {index})", f"shards of {offset} bytes", got=f"{len(buffer)} bytes")
    return weights


def read_manifest(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``*-weights_manifest.json`` and its shards (next to it) into named arrays."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, "a JSON weights manifest", line=err.lineno, got=err.msg) from err

    def read_shard(name: str) -> bytes:
        shard = path.parent / name
        if not shard.is_file():
            raise DataFormatError(path, f"weight shard {shard} listed in 'paths' to exist")
        return shard.read_bytes()

    return parse_manifest(manifest, read_shard, str(path))


def quantize_uint8(values: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Affine uint8 quantisation (tfjs converter style): ``q = round((v - min) / scale)``."""
    lo, hi = float(values.min()), float(values.max())
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    q = np.clip(np.round((values.astype(np.float64) - lo) / scale), 0, 255).astype(np.uint8)
    return q, {"dtype": "uint8", "scale": scale, "min": lo}


def write_manifest(
    weights: Mapping[str, np.ndarray],
    directory: str | Path,
    stem: str,
    quantize: bool = False,
    shard_bytes: int = 4 * 1024 * 1024,
) -> Path:
    """Write ``weights`` as a tfjs manifest ``<stem>-weights_manifest.json`` plus shards.

    ``quantize`` stores float32 tensors as uint8 (:func:`quantize_uint8`); shards are split every
    ``shard_bytes`` bytes like tfjs' ``shard1``, ``shard2``... Returns the manifest path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries, chunks = [], []
    for name, array in weights.items():
        array = np.asarray(array)
        entry: dict[str, Any] = {
            "name": name,
            "shape": list(array.shape),
            "dtype": "float32" if array.dtype.kind == "f" else "int32",
        }
        if quantize and array.dtype.kind == "f":
            q, entry["quantization"] = quantize_uint8(array)
            chunks.append(q.tobytes())
        else:
            chunks.append(array.astype(_PLAIN[entry["dtype"]]).tobytes())
        entries.append(entry)
    data = b"".join(chunks)
    paths = []
    for i in range(0, max(len(data), 1), shard_bytes):
        paths.append(f"{stem}-shard{len(paths) + 1}")
        (directory / paths[-1]).write_bytes(data[i : i + shard_bytes])
    manifest_path = directory / f"{stem}-weights_manifest.json"
    manifest_path.write_text(json.dumps([{"paths": paths, "weights": entries}]), encoding="utf-8")
    return manifest_path
