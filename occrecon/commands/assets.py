"""``occrecon assets ...``: obtain and convert pretrained assets.

``occrecon assets fetch face-api [--tarball PATH] [--force]`` converts every face-api network
occrecon uses (tiny face detector, 68-point landmarks full and tiny, dlib face recogniser) from
one ``npm pack``; ``occrecon assets fetch face-recognition [--tarball PATH] [--force]`` runs ``npm pack
@vladmandic/face-api@1.7.15`` (or reads the given tarball), converts the dlib face recogniser to
a PyTorch state dict and caches it (``$OCCRECON_CACHE`` or ``$XDG_CACHE_HOME/occrecon`` or
``~/.cache/occrecon``). ``occrecon assets where`` prints the cache locations.
"""

from __future__ import annotations

import argparse
import logging

from occrecon.errors import OccreconError

log = logging.getLogger(__name__)


def _fetch_face_recognition(args: argparse.Namespace) -> int:
    from occrecon.assets.face_api import fetch_face_recognition

    try:
        path = fetch_face_recognition(tarball=args.tarball, force=args.force)
    except OccreconError as err:
        print(f"error: {err}")
        return 1
    print(f"face recognition weights (dlib ResNet, 128-D): {path}")
    return 0


def _fetch_face_api(args: argparse.Namespace) -> int:
    from occrecon.assets.face_api import fetch_face_api

    try:
        paths = fetch_face_api(tarball=args.tarball, force=args.force, progress=print)
    except OccreconError as err:
        print(f"error: {err}")
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _where(args: argparse.Namespace) -> int:
    from occrecon.assets.cache import cache_dir
    from occrecon.assets.face_api import FACE_MODELS, default_weights_path, face_model_path

    print(f"cache directory: {cache_dir()}")
    paths = {"face-recognition": default_weights_path(), **{n: face_model_path(n) for n in FACE_MODELS}}
    for name, path in paths.items():
        print(f"{name}: {path} ({'present' if path.is_file() else 'missing'})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``assets`` command to the CLI's subparsers (``args.handler(args) -> int``)."""
    parser = subparsers.add_parser("assets", help="obtain and convert pretrained assets")
    actions = parser.add_subparsers(dest="assets_action", required=True)
    fetch = actions.add_parser("fetch", help="download (via a package registry client) and convert an asset")
    what = fetch.add_subparsers(dest="asset", required=True)
    face = what.add_parser("face-recognition", help="dlib ResNet face recogniser from npm @vladmandic/face-api")
    face.add_argument("--tarball", default=None, help="an already downloaded face-api .tgz (skips npm)")
    face.add_argument("--force", action="store_true", help="convert again even if the cache file exists")
    face.set_defaults(handler=_fetch_face_recognition)
    every = what.add_parser("face-api", help="face detector, 68-point landmarks and face recogniser from npm @vladmandic/face-api")
    every.add_argument("--tarball", default=None, help="an already downloaded face-api .tgz (skips npm)")
    every.add_argument("--force", action="store_true", help="convert again even if the cache files exist")
    every.set_defaults(handler=_fetch_face_api)
    where = actions.add_parser("where", help="print where converted assets are cached")
    where.set_defaults(handler=_where)
