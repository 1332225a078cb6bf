"""``occrecon reconstruct IMAGES_OR_DIRS... --out DIR``: photo in, one mesh per face out.

Works with no trained checkpoint: detects faces and 68 landmarks (face-api ports), aligns each to
the ``deep3d`` framing and fits the face model by analysis-by-synthesis with the Eq. 4 losses
(:mod:`occrecon.faces.fit`). ``--ckpt`` (a coarse-stage run) starts the fit at the network's
prediction (``--fit-steps 0`` = the network alone); ``--parsing-ckpt`` supplies the photometric
mask and a parsing picture. Per face ``OUT/<image stem>/face<k>.{obj,ply,_photo.ply,npz,json,png}``.
An unreadable or face-less image is named in one line and the rest go on; the exit code is 1 if
any image failed, 2 when the face networks cannot be obtained.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from occrecon.errors import MissingAssetError, OccreconError
from occrecon.faces.photos import collect_images, read_photo

log = logging.getLogger(__name__)
FIT_STEPS = 40
LANDMARK_STEPS = 150
def ensure_face_networks(say=print) -> bool:
    """Make sure the converted face-api networks are cached, fetching them once (``npm pack``)."""
    from occrecon.assets.face_api import HOW_TO_GET_FACES, face_models_cached, fetch_face_api

    if face_models_cached():
        return True
    say("first use: obtaining the face detector and landmark networks (npm @vladmandic/face-api) ...")
    try:
        fetch_face_api(progress=lambda m: say(f"  {m}"))
    except OccreconError as err:
        say(f"error: could not obtain the face networks ({str(err).splitlines()[0]}). {HOW_TO_GET_FACES}")
        return False
    return True


def build_priors(args: argparse.Namespace):  # noqa: ANN201 - (NetworkPriors, model name, dir, layout, size)
    """Network priors from ``--ckpt`` / ``--parsing-ckpt`` (the ``--pipeline`` hook goes here)."""
    import torch

    from occrecon.faces.reconstruct import NetworkPriors

    priors = NetworkPriors()
    model, model_dir, layout, size = args.model, args.model_dir, "paper", 224
    face_model = None
    if args.ckpt:
        from occrecon.systems.reconstruction import ReconstructionSystem

        system = ReconstructionSystem.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=True).eval()
        size, layout, face_model = system.hparams.image_size, system.layout.kind, system.face_model

        def coeffs(crop: torch.Tensor) -> torch.Tensor:
            return system(torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", antialias=True))

        priors.coeffs = coeffs
    if args.parsing_ckpt:
        from occrecon.commands.evaluate import load_system

        # run on the fit's deep3d crop (the parsing stage trains on CelebA-HQ crops: slightly wider)
        parsing = load_system(args.parsing_ckpt, "parsing")
        priors.labels = parsing.predict_labels
    if args.pipeline:
        priors, layout, size, face_model = pipeline_priors(args.pipeline)
    return priors, model, model_dir, layout, size, face_model


def pipeline_priors(path: str):  # noqa: ANN201 - (NetworkPriors, layout, size, face model)
    """Priors from an exported chain (``occrecon export-pipeline``): its coarse stage's ``y`` (on the
    chain's ``I_out`` when a synthesis stage is in it) starts the fit, and ``M_fin`` (else ``M_fa``)
    masks the photometric term, so occluders never pull the shape."""
    import torch
    import torch.nn.functional as F

    from occrecon.errors import ConfigError
    from occrecon.faces.reconstruct import NetworkPriors
    from occrecon.systems.pipeline import PipelineSystem

    chain = PipelineSystem.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    if "reconstruction" not in chain.stages:
        raise ConfigError(f"{path}: the chain {chain.order} has no coarse stage (reconstruction) to start the fit")
    coarse = chain.stages["reconstruction"]
    size = coarse.hparams.image_size
    cache: dict[int, dict] = {}

    def state(crop: torch.Tensor) -> dict:
        key = id(crop)
        if key not in cache:
            cache.clear()
            with torch.no_grad():
                cache[key] = chain(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True))
        return cache[key]

    def labels(crop: torch.Tensor) -> torch.Tensor:
        maps = state(crop)
        chosen = maps.get("M_fin", maps.get("M_fa"))
        return F.interpolate(chosen[:, None].float(), size=crop.shape[-2:], mode="nearest")[:, 0].long()

    priors = NetworkPriors(coeffs=lambda crop: state(crop)["coeffs"])
    if "parsing" in chain.stages:
        priors.labels = labels
    return priors, coarse.layout.kind, size, coarse.face_model


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from occrecon.faces.detect import FaceDetector
    from occrecon.faces.fit import FaceFitter, FitSettings
    from occrecon.faces.reconstruct import export_face, reconstruct_photo

    torch.set_num_threads(args.threads)  # 1 by default: the fit's many small ops are slower threaded
    images = collect_images(args.inputs)
    if not images:
        print("error: no images found in " + " ".join(args.inputs))
        return 1
    if not ensure_face_networks():
        return 2
    try:
        priors, model_name, model_dir, layout, size, face_model = build_priors(args)
        if face_model is None:
            from occrecon.facemodel import load_face_model

            face_model = load_face_model(model_name, model_dir)
        identity = None
        if args.identity != "none":
            from occrecon.assets.identity import build_identity_network

            identity, reason = build_identity_network(args.identity)
            if identity is None:
                print(f"note: L_feat off ({reason})")
        detector = FaceDetector(input_size=args.detector_size, score_threshold=args.score_threshold,
                                min_face_size=args.min_face_size, kind=args.detector)  # fmt: skip
        settings = FitSettings(landmark_steps=args.landmark_steps, steps=args.fit_steps, photometric=args.photometric)
        fitter = FaceFitter(face_model, layout, size, identity, settings)
    except (OccreconError, MissingAssetError) as err:
        print(f"error: {err}")
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    landmark_steps = 0 if args.fit_steps == 0 and args.ckpt else None
    for path in tqdm(images, desc="reconstruct", unit="image", disable=args.quiet):
        started = time.perf_counter()
        try:
            photo = read_photo(path)
        except (OSError, ValueError) as err:
            tqdm.write(f"failed: {path}: unreadable image ({type(err).__name__}: {str(err)[:120]})")
            rows.append((path.name, "unreadable", 0, "", "", 0.0))
            failed += 1
            continue
        results = reconstruct_photo(photo, detector, fitter, priors, landmark_steps=landmark_steps,
                                    max_faces=args.max_faces)  # fmt: skip
        if not results:
            tqdm.write(f"failed: {path}: no face of at least {args.min_face_size:g} px found")
            rows.append((path.name, "no face", 0, "", "", time.perf_counter() - started))
            failed += 1
            continue
        for k, rec in enumerate(results):
            export_face(fitter, rec, photo, out / path.stem, f"face{k}")
        m = [r.fit.metrics for r in results]
        land = " ".join(f"{x['landmark_px_before']:.1f}->{x['landmark_px_after']:.1f}" for x in m)
        phot = " ".join(f"{x['photometric_before']:.3f}->{x['photometric_after']:.3f}" for x in m)
        rows.append((path.name, "ok", len(results), land, phot, time.perf_counter() - started))
    print_summary(rows, out)
    return 1 if failed else 0


def print_summary(rows: list[tuple], out: Path) -> None:
    """The end-of-run table: image | status | faces | landmark px | photometric | seconds."""
    header = ("image", "status", "faces", "landmark px (before->after)", "photometric (before->after)", "s")
    table = [header] + [(r[0], r[1], str(r[2]), r[3], r[4], f"{r[5]:.1f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    ok = sum(r[1] == "ok" for r in rows)
    print(f"{ok}/{len(rows)} images reconstructed; results in {out}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reconstruct", help="photos in, a 3D face mesh per detected face out",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and/or folders of images")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per image)")
    parser.add_argument("--model", choices=("procedural", "sfm", "bfm"), default="procedural", help="face model")
    parser.add_argument("--model-dir", default=None, help="folder holding the SFM/BFM files")
    parser.add_argument("--ckpt", default=None, help="coarse-stage checkpoint: its prediction starts the fit")
    parser.add_argument("--parsing-ckpt", default=None, help="parsing-stage checkpoint: photometric mask + picture")
    parser.add_argument("--pipeline", default=None, metavar="PATH",
                        help="exported chain (occrecon export-pipeline): its y starts the fit, its M_fin masks L_phot")  # fmt: skip
    parser.add_argument("--fit-steps", type=int, default=FIT_STEPS, help="photometric fitting steps (0 = none)")
    parser.add_argument("--landmark-steps", type=int, default=LANDMARK_STEPS, help="landmark-only steps before them")
    parser.add_argument("--identity", choices=("dlib", "none"), default="none",
                        help="identity network for L_feat (dlib: face-api's port; slower)")  # fmt: skip
    parser.add_argument("--min-face-size", type=float, default=40.0, help="ignore faces smaller than this (px)")
    parser.add_argument("--max-faces", type=int, default=None, help="at most this many faces per image (largest)")
    parser.add_argument("--detector", choices=("tiny", "ssd"), default="tiny",
                        help="face-api's tiny face detector or its SSD MobileNet v1 (larger, slower)")  # fmt: skip
    parser.add_argument("--detector-size", type=int, default=416, help="tiny detector input side (multiple of 32)")
    parser.add_argument("--score-threshold", type=float, default=0.5, help="detector score threshold")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for the fit)")
    parser.add_argument("--photometric", choices=("vertex", "render"), default="vertex",
                        help="L_phot at visible vertices (fast) or on a render every step")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)

