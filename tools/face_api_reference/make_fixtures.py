"""Regenerate tests/fixtures/face_api/reference.{json,npz} with the original face-api under Node.

Needs node + npm. Installs (once) @vladmandic/face-api@1.7.15, @tensorflow/tfjs and
@tensorflow/tfjs-backend-wasm into a scratch folder outside the repository (default
/tmp/faceapi-ref), runs reference.cjs (tfjs WASM backend) on occrecon.faces.samples.reference_images()
and stores boxes, scores, crops, landmarks (JSON) and the raw detector grids (npz).

    python tools/face_api_reference/make_fixtures.py [--scratch /tmp/faceapi-ref]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from occrecon.faces.samples import reference_images

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "tests" / "fixtures" / "face_api"
PACKAGES = ["@vladmandic/face-api@1.7.15", "@tensorflow/tfjs@4.22.0", "@tensorflow/tfjs-backend-wasm@4.22.0"]
INPUT_SIZES = {"astronaut": 416, "grace_hopper": 416, "pair": 608, "astronaut_portrait": 320}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/faceapi-ref"))
    args = parser.parse_args()
    scratch = args.scratch
    modules = scratch / "node_modules"
    if not (modules / "@vladmandic" / "face-api").is_dir():
        scratch.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "init", "-y"], cwd=scratch, check=True, capture_output=True)
        subprocess.run(["npm", "install", "--ignore-scripts", *PACKAGES], cwd=scratch, check=True)
    jobs = []
    for name, image in reference_images().items():
        raw = scratch / f"{name}.rgb"
        raw.write_bytes(np.ascontiguousarray(image).tobytes())
        jobs.append({"name": name, "raw": str(raw), "height": image.shape[0], "width": image.shape[1],
                     "inputSize": INPUT_SIZES[name]})  # fmt: skip
    (scratch / "jobs.json").write_text(json.dumps(jobs))
    result = subprocess.run(
        ["node", str(HERE / "reference.cjs"), str(scratch / "jobs.json"), str(modules / "@vladmandic/face-api/model")],
        env={**os.environ, "NODE_PATH": str(modules)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    out = json.loads(result.stdout)
    grids = {}
    for image in out["images"]:
        grids[image["name"]] = np.asarray(image.pop("detector_output"), np.float32).reshape(image.pop("detector_output_shape"))
        grids[f"{image['name']}_ssd_scores"] = np.asarray(image.pop("ssd_scores"), np.float32)
        image.pop("ssd_boxes")  # checked through the final boxes (keeps the fixture small)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "reference.json").write_text(json.dumps(out, indent=1))
    np.savez_compressed(FIXTURES / "reference_detector_grids.npz", **grids)
    for image in out["images"]:
        print(image["name"], [(round(f["score"], 3), [round(v) for v in f["box"]]) for f in image["faces"]],
              "ssd", [(round(f["score"], 3), [round(v) for v in f["box"]]) for f in image["ssd_faces"]])


if __name__ == "__main__":
    main()
