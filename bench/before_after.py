"""This session's speed-ups against the code they replaced, interleaved in one run (issue 18).

The replaced modules are read from git (``git show REV:path``) and imported beside today's:

* ``rasterize`` (visibility + barycentrics) on the procedural face, the Surrey Face Model (when
  ``../shared/facemodels/sfm`` exists) and the 70k-triangle field, batch 1 and 32;
* ``antialias`` forward + backward on the procedural face, batch 8;
* the synthesis generator (SPADE, width 64) at 224 px, batch 1 and 8, channels-last.

Outputs are compared too: the rasterizer's triangle ids and the antialiased image must be
identical, the generator's output equal to float rounding.

    python bench/before_after.py [--quick] [--rev dee8058] [--reps 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render import SFM_DIR, clip_positions, synthetic_face  # noqa: E402 - bench/ sibling

REPO = Path(__file__).resolve().parents[1]


def old_module(rev: str, path: str, name: str, folder: Path):  # noqa: ANN201 - a module
    """``path`` as it was at ``rev``, imported as ``name``."""
    text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    file = folder / f"{name}.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interleaved(fns: dict[str, callable], reps: int) -> dict[str, float]:
    """Best seconds of each callable, the callables alternating rep by rep."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="dee8058", help="the revision before the speed-ups")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.reps = 2
    from occrecon.facemodel.factory import load_face_model
    from occrecon.nets.synthesis import SynthesisGenerator
    from occrecon.render import antialias as aa_new
    from occrecon.render import torch_raster as raster_new

    folder = Path(tempfile.mkdtemp())
    raster_old = old_module(args.rev, "occrecon/render/torch_raster.py", "old_torch_raster", folder)
    aa_old = old_module(args.rev, "occrecon/render/antialias.py", "old_antialias", folder)
    synth_old = old_module(args.rev, "occrecon/nets/synthesis.py", "old_synthesis", folder)
    print(f"before = {args.rev}, after = working tree; {torch.get_num_threads()} threads, best of {args.reps}, interleaved")
    print(f"{'what':<34} {'before':>10} {'after':>10} {'speed-up':>9}  same output")
    face = load_face_model("procedural")
    scenes = {"procedural (14 832 triangles)": (face.mean_shape, face.triangles)}
    if SFM_DIR.is_dir():
        sfm = load_face_model("sfm", SFM_DIR)
        scenes["SFM (6 736)"] = (sfm.mean_shape, sfm.triangles)
    scenes["height field (69 938)"] = synthetic_face()
    size = (224, 224)
    for name, (verts, faces) in scenes.items():
        tri = faces.to(torch.int32)
        for batch in (1, 32):
            pos = clip_positions(verts, batch, "cpu")
            with torch.no_grad():
                same = torch.equal(raster_old.rasterize(pos, tri, size)[..., 3], raster_new.rasterize(pos, tri, size)[..., 3])
                t = interleaved({"old": partial(raster_old.rasterize, pos, tri, size),
                                 "new": partial(raster_new.rasterize, pos, tri, size)}, args.reps)  # fmt: skip
            print(f"{'rasterize ' + name.split(' (')[0] + f' B={batch}':<34} {batch / t['old']:>6.0f}/s {batch / t['new']:>6.0f}/s "
                  f"{t['old'] / t['new']:>8.2f}x  ids {same}")  # fmt: skip
    pos = clip_positions(face.mean_shape, 8, "cpu", seed=1)
    tri = face.triangles.long()
    rast = raster_new.rasterize(pos, tri, size)
    color = torch.rand(8, *size, 3, generator=torch.Generator().manual_seed(0))
    topology = aa_new.edge_topology(tri)

    def aa_step(module) -> torch.Tensor:  # noqa: ANN001
        p = pos.clone().requires_grad_(True)
        out = module.antialias(color, rast, p, tri, topology=topology)
        out.square().sum().backward()
        return out.detach()

    same = torch.equal(aa_step(aa_old), aa_step(aa_new))
    t = interleaved({"old": partial(aa_step, aa_old), "new": partial(aa_step, aa_new)}, args.reps)
    print(f"{'antialias fwd+bwd procedural B=8':<34} {1e3 * t['old']:>7.1f}ms {1e3 * t['new']:>7.1f}ms {t['old'] / t['new']:>8.2f}x  image {same}")
    for batch in (1, 8):
        torch.manual_seed(0)
        old_g = synth_old.SynthesisGenerator(width=64).eval().to(memory_format=torch.channels_last)
        new_g = SynthesisGenerator(width=64).eval().to(memory_format=torch.channels_last)
        new_g.load_state_dict(old_g.state_dict())
        gen = torch.Generator().manual_seed(1)
        image = torch.rand(batch, 3, 224, 224, generator=gen).contiguous(memory_format=torch.channels_last)
        parsing = torch.randint(0, 19, (batch, 224, 224), generator=gen)
        edges = torch.rand(batch, 13, 64, 64, generator=gen)
        mask = (torch.rand(batch, 1, 224, 224, generator=gen) > 0.7).float()
        with torch.inference_mode():
            diff = (old_g.generate(image, parsing, edges, mask) - new_g.generate(image, parsing, edges, mask)).abs().max()
            t = interleaved({"old": partial(old_g.generate, image, parsing, edges, mask),
                             "new": partial(new_g.generate, image, parsing, edges, mask)}, max(2, args.reps // 2))  # fmt: skip
        print(f"{f'synthesis generator B={batch}':<34} {1e3 * t['old'] / batch:>5.0f}ms/i {1e3 * t['new'] / batch:>5.0f}ms/i "
              f"{t['old'] / t['new']:>8.2f}x  max |diff| {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
