"""Real dlib face-recogniser weights from the npm package ``@vladmandic/face-api`` (MIT).

The package ships ``model/face_recognition_model-weights_manifest.json`` + ``.bin``: dlib's
ResNet (CC0 upstream) as TensorFlow.js weights, mostly uint8-quantised. This module

1. obtains the package tarball with ``npm pack`` (the registry's own client; no install scripts
   run) or takes a tarball the user already has;
2. decodes the manifest (:mod:`occrecon.assets.tfjs`) and renames/transposes the tensors into a
   :class:`occrecon.nets.identity.dlib_resnet.DlibResNet` state dict;
3. caches the state dict under :func:`occrecon.assets.cache.cache_dir`.

Layouts: tfjs conv filters are ``[kh, kw, in, out]`` (PyTorch ``[out, in, kh, kw]``), the ``fc``
matrix is ``[256, 128]`` for ``x @ fc`` (PyTorch ``Linear.weight`` is its transpose).
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from occrecon.assets.cache import cache_dir
from occrecon.assets.tfjs import parse_manifest
from occrecon.errors import DataFormatError, MissingAssetError

log = logging.getLogger(__name__)

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
MANIFEST_MEMBER = "package/model/face_recognition_model-weights_manifest.json"
CACHE_NAME = f"face-api-{VERSION}/dlib_face_recognition_resnet.pt"
HOW_TO_GET = (
    "Run `occrecon assets fetch face-recognition` (needs npm; it runs `npm pack "
    f"{PACKAGE}@{VERSION}`), or download that tarball elsewhere and run "
    "`occrecon assets fetch face-recognition --tarball PATH`."
)


def torch_name(tfjs_name: str) -> str:
    """Map a face-api weight name to the DlibResNet state-dict key.

    ``conv32_1/conv1/conv/filters`` -> ``conv32_1.conv1.conv.weight``;
    ``.../scale/weights`` -> ``.scale.weight``; ``.../biases`` -> ``.bias``; ``fc`` -> ``fc.weight``.
    """
    if tfjs_name == "fc":
        return "fc.weight"
    parts = tfjs_name.split("/")
    leaf = {"filters": "weight", "weights": "weight", "bias": "bias", "biases": "bias"}.get(parts[-1])
    if leaf is None:
        raise KeyError(f"unexpected face-api weight name {tfjs_name!r}")
    return ".".join(parts[:-1] + [leaf])


def tfjs_name(torch_key: str) -> str:
    """Inverse of :func:`torch_name`."""
    if torch_key == "fc.weight":
        return "fc"
    parts = torch_key.split(".")
    if parts[-2] == "conv":
        leaf = "filters" if parts[-1] == "weight" else "bias"
    else:
        leaf = "weights" if parts[-1] == "weight" else "biases"
    return "/".join(parts[:-1] + [leaf])


def face_api_to_state_dict(weights: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Convert decoded face-api arrays (tfjs names/layouts) to a DlibResNet state dict."""
    state = {}
    for name, array in weights.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if name == "fc":
            tensor = tensor.t()  # [256, 128] -> Linear.weight [128, 256]
        elif name.endswith("/filters"):
            tensor = tensor.permute(3, 2, 0, 1)  # HWIO -> OIHW
        state[torch_name(name)] = tensor.contiguous()
    return state


def state_dict_to_face_api(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Inverse of :func:`face_api_to_state_dict` (tfjs names and layouts, float32)."""
    weights = {}
    for key, tensor in state.items():
        array = tensor.detach().cpu().float()
        if key == "fc.weight":
            array = array.t()
        elif array.ndim == 4:
            array = array.permute(2, 3, 1, 0)
        weights[tfjs_name(key)] = np.ascontiguousarray(array.numpy())
    return weights


def read_face_api_tarball(tarball: str | Path, model: str = "face_recognition_model") -> dict[str, np.ndarray]:
    """Decode one model's weights (``model/<model>-weights_manifest.json``) inside an ``npm pack`` tarball."""
    tarball = Path(tarball)
    manifest_member = f"package/model/{model}-weights_manifest.json"
    if not tarball.is_file():
        raise MissingAssetError(tarball, f"{PACKAGE} tarball", HOW_TO_GET)
    try:
        with tarfile.open(tarball, "r:*") as archive:
            names = set(archive.getnames())
            if manifest_member not in names:
                raise DataFormatError(tarball, f"an npm tarball of {PACKAGE} containing {manifest_member}")

            def member_bytes(name: str) -> bytes:
                if name not in names:
                    raise DataFormatError(tarball, f"member {name} (listed in the weights manifest)")
                handle = archive.extractfile(name)
                if handle is None:
                    raise DataFormatError(tarball, f"{name} to be a regular file")
                return handle.read()

            manifest = json.loads(member_bytes(manifest_member))
            folder = manifest_member.rsplit("/", 1)[0]
            return parse_manifest(manifest, lambda p: member_bytes(f"{folder}/{p}"), f"{tarball}!{manifest_member}")
    except tarfile.TarError as err:
        raise DataFormatError(tarball, "a gzip tar archive (npm pack output)", got=str(err)) from err


def npm_pack(destination: str | Path, spec: str = f"{PACKAGE}@{VERSION}", timeout_s: float = 300.0) -> Path:
    """Run ``npm pack SPEC`` in ``destination`` and return the tarball path.

    Raises :class:`MissingAssetError` when npm is not installed or the registry is unreachable.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise MissingAssetError("npm", "the npm client", HOW_TO_GET + " Install Node.js/npm, or use --tarball.")
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            [npm, "pack", spec, "--ignore-scripts", "--json"],
            cwd=destination, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise MissingAssetError(spec, "npm package (npm pack timed out)", HOW_TO_GET) from err
    if result.returncode != 0:
        raise MissingAssetError(spec, f"npm package (npm pack failed: {result.stderr.strip()[-400:]})", HOW_TO_GET)
    try:
        filename = json.loads(result.stdout)[0]["filename"]
    except (json.JSONDecodeError, LookupError, TypeError):
        filename = result.stdout.strip().splitlines()[-1]
    # npm writes scoped names as "vladmandic-face-api-1.7.15.tgz" (older npm: "@vladmandic/...")
    path = destination / filename.replace("@", "").replace("/", "-")
    if not path.is_file():
        raise MissingAssetError(path, "tarball written by npm pack", HOW_TO_GET)
    return path


def default_weights_path() -> Path:
    """Where :func:`fetch_face_recognition` caches the converted state dict."""
    return cache_dir() / CACHE_NAME


def fetch_face_recognition(tarball: str | Path | None = None, force: bool = False) -> Path:
    """Obtain, convert and cache the dlib face-recogniser weights; returns the cached ``.pt``.

    With ``tarball=None`` runs ``npm pack`` into a temporary folder (the tarball is not kept).
    An existing cache file is reused unless ``force``.
    """
    target = default_weights_path()
    if target.is_file() and not force:
        log.info("face recognition weights already cached at %s", target)
        return target
    with tempfile.TemporaryDirectory(prefix="occrecon-npm-") as tmp:
        source = Path(tarball) if tarball is not None else npm_pack(tmp)
        state = face_api_to_state_dict(read_face_api_tarball(source))
    check_dlib_state_dict(state, str(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".pt.tmp")
    torch.save(state, partial)
    partial.replace(target)  # never leave a half-written cache file under the final name
    log.info("converted %d tensors from %s to %s", len(state), source, target)
    return target


def check_dlib_state_dict(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise :class:`DataFormatError` unless ``state`` has DlibResNet's exact keys and shapes (117 tensors)."""
    from occrecon.nets.identity.dlib_resnet import DlibResNet

    check_state_dict(state, DlibResNet(), where)


def load_face_recognition_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Load the cached (or given) converted state dict; :class:`MissingAssetError` says how to get it."""
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise MissingAssetError(path, "dlib face recognition weights (converted from face-api)", HOW_TO_GET)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
        raise DataFormatError(
            path, "a state dict written by `occrecon assets fetch face-recognition`", got=str(err)[:200]
        ) from err
    check_dlib_state_dict(state, str(path))
    return state


# --- face detector and 68-point landmark networks (occrecon.faces) --------------------------------

FACE_MODELS: dict[str, str] = {
    "tiny_face_detector": "tiny_face_detector_model",
    "face_landmark_68": "face_landmark_68_model",
    "face_landmark_68_tiny": "face_landmark_68_tiny_model",
    "ssd_mobilenetv1": "ssd_mobilenetv1_model",
}
"""occrecon name -> face-api model stem (``model/<stem>-weights_manifest.json`` in the tarball)."""

HOW_TO_GET_FACES = (
    "Run `occrecon assets fetch face-api` (needs npm; it runs `npm pack "
    f"{PACKAGE}@{VERSION}`), or download that tarball elsewhere and run "
    "`occrecon assets fetch face-api --tarball PATH`."
)


def module_key(tfjs_key: str) -> str:
    """Map a detector/landmark weight name to the :mod:`occrecon.faces.nets` state-dict key.

    ``dense1/conv2/depthwise_filter`` -> ``dense1.conv2.depthwise.weight``; ``.../pointwise_filter``
    -> ``.pointwise.weight``; ``.../filters`` and ``fc/weights`` -> ``.weight``; ``.../bias`` -> ``.bias``.
    """
    parts = tfjs_key.split("/")
    leaf = {"filters": ["weight"], "weights": ["weight"], "bias": ["bias"],
            "depthwise_filter": ["depthwise", "weight"], "pointwise_filter": ["pointwise", "weight"]}.get(parts[-1])  # fmt: skip
    if leaf is None:
        raise KeyError(f"unexpected face-api weight name {tfjs_key!r}")
    return ".".join(parts[:-1] + leaf)


def face_model_state_dict(weights: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Convert decoded detector/landmark arrays (tfjs layouts) to :mod:`occrecon.faces.nets` layouts.

    Conv filters ``[kh, kw, in, out]`` -> ``[out, in, kh, kw]``; depthwise ``[kh, kw, C, 1]`` ->
    ``[C, 1, kh, kw]``; fully connected ``[in, out]`` -> ``[out, in]``.
    """
    state = {}
    for name, array in weights.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if name.endswith("depthwise_filter"):
            tensor = tensor.permute(2, 3, 0, 1)
        elif tensor.ndim == 4:
            tensor = tensor.permute(3, 2, 0, 1)
        elif tensor.ndim == 2:
            tensor = tensor.t()
        state[module_key(name)] = tensor.contiguous()
    return state


def ssd_state_dict(weights: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The SSD detector's weights under ``params.<tfjs name>`` in tfjs layouts (the port permutes
    them itself); the manifest's unused graph constants (``Preprocessor/...``, ``stack_1``) are dropped."""
    from occrecon.faces.nets import ssd_weight_shapes

    return {f"params.{name}": torch.from_numpy(np.ascontiguousarray(weights[name], dtype=np.float32))
            for name in ssd_weight_shapes() if name in weights}  # fmt: skip


def build_face_model(name: str) -> torch.nn.Module:
    """An untrained network of :data:`FACE_MODELS` ``name`` (``occrecon.faces.nets``)."""
    from occrecon.faces.nets import FaceLandmark68Net, SsdMobilenetV1Net, TinyFaceDetectorNet

    if name == "tiny_face_detector":
        return TinyFaceDetectorNet()
    if name == "ssd_mobilenetv1":
        return SsdMobilenetV1Net()
    if name in ("face_landmark_68", "face_landmark_68_tiny"):
        return FaceLandmark68Net(tiny=name.endswith("tiny"))
    raise KeyError(f"unknown face-api model {name!r}; expected one of {sorted(FACE_MODELS)}")


def face_model_path(name: str) -> Path:
    """Cache path of the converted ``name`` (a key of :data:`FACE_MODELS`)."""
    return cache_dir() / f"face-api-{VERSION}/{name}.pt"


def face_models_cached() -> bool:
    """Whether every network of :data:`FACE_MODELS` is converted and cached."""
    return all(face_model_path(name).is_file() for name in FACE_MODELS)


def check_state_dict(state: Mapping[str, torch.Tensor], model: torch.nn.Module, where: str) -> None:
    """Raise :class:`DataFormatError` unless ``state`` has exactly ``model``'s keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise DataFormatError(where, f"the {len(expected)} tensors of {type(model).__name__}",
                              got=f"missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {wrong[:3]}")  # fmt: skip


def _save_atomic(state: Mapping[str, torch.Tensor], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".pt.tmp")
    torch.save(dict(state), partial)
    partial.replace(target)  # never leave a half-written cache file under the final name


def fetch_face_api(tarball: str | Path | None = None, force: bool = False, progress=None) -> dict[str, Path]:
    """Convert and cache every face-api network occrecon uses from one ``npm pack`` (or ``tarball``).

    Returns ``{name: cached .pt}`` for :data:`FACE_MODELS` plus ``"face_recognition"`` (the dlib
    ResNet of :func:`fetch_face_recognition`). Cached files are reused unless ``force``.
    ``progress(message)`` (e.g. ``print``) is told about each step.
    """
    say = progress or (lambda message: log.info("%s", message))
    targets = {name: face_model_path(name) for name in FACE_MODELS}
    targets["face_recognition"] = default_weights_path()
    todo = [name for name, path in targets.items() if force or not path.is_file()]
    if not todo:
        return targets
    with tempfile.TemporaryDirectory(prefix="occrecon-npm-") as tmp:
        if tarball is None:
            say(f"fetching {PACKAGE}@{VERSION} with npm pack ...")
        source = Path(tarball) if tarball is not None else npm_pack(tmp)
        for name in todo:
            say(f"converting {name} from {source.name}")
            if name == "face_recognition":
                fetch_face_recognition(source, force=True)
                continue
            decoded = read_face_api_tarball(source, FACE_MODELS[name])
            state = ssd_state_dict(decoded) if name == "ssd_mobilenetv1" else face_model_state_dict(decoded)
            check_state_dict(state, build_face_model(name), f"{source}!{FACE_MODELS[name]}")
            _save_atomic(state, targets[name])
    return targets


def load_face_model(name: str, path: str | Path | None = None) -> torch.nn.Module:
    """The converted network ``name`` in eval mode; :class:`MissingAssetError` says how to get it."""
    path = Path(path) if path is not None else face_model_path(name)
    if not path.is_file():
        raise MissingAssetError(path, f"face-api {name} weights (converted)", HOW_TO_GET_FACES)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
        raise DataFormatError(path, "a state dict written by `occrecon assets fetch face-api`", got=str(err)[:200]) from err
    model = build_face_model(name)
    check_state_dict(state, model, str(path))
    model.load_state_dict(state)
    return model.eval()
