"""Instance normalisation: ``occrecon.nets.norm.InstanceNorm2d`` (group norm, one group per channel)
vs ``torch.nn.InstanceNorm2d``, measured in the same run at the synthesis generator's shapes
(224 px input, width 64), forward and forward + backward, contiguous and channels-last.

    python bench/norm.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from occrecon.nets.norm import InstanceNorm2d

SHAPES = ((1, 64, 224, 224), (1, 256, 56, 56), (8, 256, 56, 56))


def best_ms(fn, reps: int) -> float:
    fn()
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 10
    ours, torch_norm = InstanceNorm2d(256, affine=True), nn.InstanceNorm2d(256, affine=True)
    print(f"instance norm, {torch.get_num_threads()} threads, best of {reps} (ms); ratio = torch / ours")
    print(f"{'shape':<20} {'layout':<14} {'pass':<8} {'torch':>8} {'ours':>8} {'ratio':>6}")
    ratios = []
    for shape in SHAPES:
        for fmt, fmt_name in ((torch.contiguous_format, "contiguous"), (torch.channels_last, "channels_last")):
            x = torch.randn(shape).contiguous(memory_format=fmt)
            for mode in ("fwd", "fwd+bwd"):
                times = []
                for norm in (torch_norm, ours):
                    norm = norm if shape[1] == 256 else type(norm)(shape[1], affine=True)
                    if mode == "fwd":
                        with torch.inference_mode():
                            times.append(best_ms(lambda n=norm, x=x: n(x), reps))
                    else:
                        xg = x.clone().requires_grad_(True)
                        times.append(best_ms(lambda n=norm, x=xg: n(x).square().sum().backward(), reps))
                ratios.append(times[0] / times[1])
                print(f"{str(shape):<20} {fmt_name:<14} {mode:<8} {times[0]:>8.2f} {times[1]:>8.2f} {ratios[-1]:>5.1f}x")
    print(f"summary: InstanceNorm2d {min(ratios):.1f}-{max(ratios):.1f}x torch.nn.InstanceNorm2d")


if __name__ == "__main__":
    main()
