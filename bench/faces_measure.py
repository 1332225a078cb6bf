"""Face front end and per-image fit, measured (the README's "Photo in, mesh out" figures).

    flock /tmp/occrecon-heavy.lock python bench/faces_measure.py [--synthetic data/synth --n 64] [--quick]

1. the face-api ports against the original (tests/fixtures/face_api, tfjs WASM under Node);
2. detection rate and landmark NME on the public-domain photos and on the synthetic set (truth
   known; each 128 px image is padded by 64 px of grey so the face is not cut by the border);
3. the fit (``occrecon reconstruct`` defaults): landmark reprojection error (px in the 224 crop)
   and photometric error (mean RGB L2 in [0, 1] inside face ∩ skin) before/after, seconds per face
   with 1 and 2 torch threads, next to one ResNet-50 forward+backward at 224 px (the coarse
   stage's network) measured in the same run as the peer.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from occrecon.facemodel import load_face_model
from occrecon.faces.align import align_face
from occrecon.faces.detect import FaceDetector, image_tensor
from occrecon.faces.fit import FaceFitter
from occrecon.faces.samples import reference_images

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "face_api"


def inter_ocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))


def port_vs_original(images: dict[str, np.ndarray]) -> list[str]:
    reference = json.loads((FIXTURES / "reference.json").read_text())
    nets = {k: FaceDetector(min_face_size=0, landmark_model=m) for k, m in
            (("landmarks68", "face_landmark_68"), ("landmarks68_tiny", "face_landmark_68_tiny"))}  # fmt: skip
    box_diff, score_diff, lm = 0.0, 0.0, {k: [] for k in nets}
    faces = 0
    for im in reference["images"]:
        det = FaceDetector(input_size=im["input_size"], min_face_size=0, detector=nets["landmarks68"].detector,
                           landmarker=nets["landmarks68"].landmarker)  # fmt: skip
        ours = det.face_api_detect(images[im["name"]])
        for (box, score), ref in zip(ours, im["faces"], strict=True):
            box_diff = max(box_diff, float(np.abs(np.subtract(box, ref["box"])).max()))
            score_diff = max(score_diff, abs(score - ref["score"]))
            x, y, w, h = ref["crop"]
            crop = image_tensor(images[im["name"]])[..., y : y + h, x : x + w]
            for key, net in nets.items():
                mine = net.face_api_landmarks([crop])[0]
                truth = np.asarray(ref[key])
                lm[key].append((np.abs(mine - truth).max(), np.linalg.norm(mine - truth, axis=1).mean() / inter_ocular(truth)))
            faces += 1
    rows = [f"| faces compared | {faces} (astronaut, grace_hopper, pair x2, astronaut_portrait) |",
            f"| box, max abs difference | {box_diff:.2e} px |", f"| score, max abs difference | {score_diff:.1e} |"]  # fmt: skip
    ssd, grids = FaceDetector(kind="ssd", min_face_size=0), np.load(FIXTURES / "reference_detector_grids.npz")
    ssd_score = ssd_box = 0.0
    for im in reference["images"]:
        _, scores = ssd.face_api_ssd(images[im["name"]])
        ssd_score = max(ssd_score, float(np.abs(scores - grids[f"{im['name']}_ssd_scores"]).max()))
        for (box, _), ref in zip(ssd.face_api_detect(images[im["name"]]), im["ssd_faces"], strict=True):
            ssd_box = max(ssd_box, float(np.abs(np.subtract(box, ref["box"])).max()))
    rows.append(f"| SSD MobileNet v1: 5118 anchor scores / final boxes, max abs difference | {ssd_score:.1e} / {ssd_box:.1e} px |")
    for key, values in lm.items():
        arr = np.array(values)
        rows.append(f"| {key}: max abs difference / NME (inter-ocular) | {arr[:, 0].max():.1e} px / {arr[:, 1].max():.1e} |")
    return rows


def synthetic_faces(root: str, n: int) -> list[dict[str, np.ndarray]]:
    from occrecon.synth.reader import SyntheticDataset

    data = SyntheticDataset(root, fields=["I_in", "landmarks", "landmark_visible"])
    out = []
    for i in range(min(n, len(data))):
        s = data[i]
        pad = 64
        image = np.pad(s["I_in"], ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
        out.append({"image": image, "landmarks": s["landmarks"] + pad, "visible": s["landmark_visible"]})
    return out


def detection_on_synthetic(detector: FaceDetector, samples: list[dict[str, np.ndarray]]) -> tuple[float, float, float]:
    found, nmes = 0, []
    for s in samples:
        faces = detector.detect(s["image"])
        if not faces:
            continue
        found += 1
        best = max(faces, key=lambda f: f.size)
        vis = s["visible"]
        err = np.linalg.norm(best.landmarks[vis] - s["landmarks"][vis], axis=1).mean()
        nmes.append(err / inter_ocular(s["landmarks"]))
    return found / len(samples), float(np.median(nmes)) if nmes else float("nan"), float(np.mean(nmes)) if nmes else float("nan")


def fit_rows(detector, fitter, named_photos, threads: int) -> list[tuple[str, dict[str, float]]]:
    torch.set_num_threads(threads)
    rows = []
    for name, photo in named_photos:
        for k, face in enumerate(detector.detect(photo)):
            aligned = align_face(photo, face.landmarks, "deep3d", fitter.image_size)
            result = fitter.fit(aligned.image, torch.from_numpy(aligned.landmarks)[None])
            rows.append((f"{name}#{k}", result.metrics))
    return rows


def synthetic_fit_rows(root: str, n: int, first: int = 8) -> list[str]:
    """Fit synthetic I_in (occluded) with its true landmarks at the data's own framing; the true
    mesh is known, so the rigid-aligned face-region vertex error (mm) is measured before/after.
    Images from ``first`` on (0-7 chose ``occrecon.faces.fit.FIT_REGU``)."""
    from occrecon.metrics.reconstruction import vertex_error
    from occrecon.synth.reader import SyntheticDataset

    torch.set_num_threads(1)
    data = SyntheticDataset(root, fields=["I_in", "landmarks", "coeffs"])
    model = load_face_model("procedural")
    size = data[0]["I_in"].shape[0]
    fitter = FaceFitter(model, "paper", size)
    face = model.face_mask if bool(model.face_mask.any()) else None
    rows = []
    for i in range(first, min(first + n, len(data))):
        s = data[i]
        image = torch.from_numpy(s["I_in"].copy()).permute(2, 0, 1)[None].float() / 255
        result = fitter.fit(image, torch.from_numpy(s["landmarks"])[None].float())
        truth = torch.from_numpy(s["coeffs"])[None].float()
        c_true, c_fit = fitter.layout.split(truth), fitter.layout.split(result.coeffs)
        v_true = model.shape(c_true.id, c_true.exp)
        v0 = model.shape(torch.zeros_like(c_true.id), torch.zeros_like(c_true.exp))
        mm = model.mm_per_unit
        e0 = float(vertex_error(v0, v_true, "rigid", face)[0]) * mm
        e1 = float(vertex_error(model.shape(c_fit.id, c_fit.exp), v_true, "rigid", face)[0]) * mm
        m = result.metrics
        rows.append((m["landmark_px_before"], m["landmark_px_after"], m["photometric_before"], m["photometric_after"], e0, e1, m["seconds"]))
    a = np.array(rows)
    return [f"| synthetic I_in, images {first}-{first + len(rows) - 1}, {size} px, true landmarks | {a[:, 0].mean():.2f} -> {a[:, 1].mean():.2f} | "
            f"{a[:, 2].mean():.3f} -> {a[:, 3].mean():.3f} | {a[:, 4].mean():.2f} -> {a[:, 5].mean():.2f} mm | {a[:, 6].mean():.2f} |"]  # fmt: skip


def peer_seconds(threads: int) -> float:
    from occrecon.nets.coeff_regressor import CoefficientRegressor

    torch.set_num_threads(threads)
    net = CoefficientRegressor((("y", 239),), 50, 64, None)
    x = torch.rand(1, 3, 224, 224)
    net(x).sum().backward()
    start = time.perf_counter()
    for _ in range(3):
        net(x).sum().backward()
    return (time.perf_counter() - start) / 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", default="data/synth")
    parser.add_argument("--n", type=int, default=64, help="synthetic images for detection")
    parser.add_argument("--n-fit", type=int, default=8, help="synthetic images for the fit")
    parser.add_argument("--quick", action="store_true", help="8 synthetic images, fewer fits")
    args = parser.parse_args()
    if args.quick:
        args.n, args.n_fit = 8, 2
    torch.set_num_threads(1)
    images = reference_images()
    print("## face-api port vs original (tfjs 4.22 WASM, face-api 1.7.15)\n\n| quantity | value |\n|---|---|")
    print("\n".join(port_vs_original(images)))

    detector = FaceDetector()
    real = {"astronaut": 1, "grace_hopper": 1, "pair": 2, "astronaut_portrait": 1}
    found = sum(min(len(detector.detect(images[k])), v) for k, v in real.items())
    synth = synthetic_faces(args.synthetic, args.n) if Path(args.synthetic).is_dir() else []
    print("\n## detection (tiny face detector, 416 px, score > 0.5, faces >= 40 px)\n\n| photos | rate | landmark NME vs truth |\n|---|---|---|")
    print(f"| public-domain photos | {found}/{sum(real.values())} | (no truth) |")
    if synth:
        rate, med, mean = detection_on_synthetic(detector, synth)
        print(f"| synthetic I_in (occluded), {len(synth)} images | {rate:.1%} | median {med:.3f}, mean {mean:.3f} (inter-ocular, visible points) |")

    fitter = FaceFitter(load_face_model("procedural"), "paper", 224)
    photos = [("astronaut", images["astronaut"]), ("grace_hopper", images["grace_hopper"]), ("pair", images["pair"])]
    photos += [(f"synthetic{i}", s["image"]) for i, s in enumerate(synth[: args.n_fit])]
    fit_rows(detector, fitter, photos[:1], 1)  # warm-up (first-call imports of the optimiser)
    print("\n## per-image fit (procedural model, 150 landmark + 40 photometric steps)\n")
    print("| face | landmark px before -> after | photometric before -> after | s (1 thread) | s (2 threads) |\n|---|---|---|---|---|")
    one, two = fit_rows(detector, fitter, photos, 1), fit_rows(detector, fitter, photos, 2)
    for (name, m1), (_, m2) in zip(one, two, strict=True):
        print(f"| {name} | {m1['landmark_px_before']:.2f} -> {m1['landmark_px_after']:.2f} | "
              f"{m1['photometric_before']:.3f} -> {m1['photometric_after']:.3f} | {m1['seconds']:.2f} | {m2['seconds']:.2f} |")  # fmt: skip
    if Path(args.synthetic).is_dir():
        print("\n| synthetic (truth known) | landmark px before -> after | photometric before -> after | "
              "vertex error (rigid, face region) mean face -> fit | s |\n|---|---|---|---|---|")
        print("\n".join(synthetic_fit_rows(args.synthetic, args.n_fit)))
    mean1, mean2 = np.mean([m["seconds"] for _, m in one]), np.mean([m["seconds"] for _, m in two])
    peer1, peer2 = peer_seconds(1), peer_seconds(2)
    print(f"\nmean seconds per face: {mean1:.2f} (1 thread), {mean2:.2f} (2 threads); one ResNet-50 "
          f"forward+backward at 224 px in the same run: {peer1:.2f} s / {peer2:.2f} s -> the fit costs "
          f"{mean1 / peer1:.1f} / {mean2 / peer2:.1f} of them")  # fmt: skip


if __name__ == "__main__":
    main()
