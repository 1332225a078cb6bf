"""Measure the synthesis ablations at the scale of ``small_cpu.yaml`` (README / docs/synthesis.md table).

1. trains a small parsing network (frozen net of the parsing-consistency / perceptual terms and of
   the ``eye_g`` count) unless ``--parsing-ckpt`` is given;
2. trains ``spade`` and ``concat``; the better one (masked PSNR on val) is the conditioning of
   the three ablations ``no_fin``, ``no_edge``, ``no_parsing_loss``;
3. scores every run and the baselines on the test split (:mod:`occrecon.evaluation.synthesis`) and
   writes ``<out>/results.json`` and ``<out>/results.md``.

    python tools/synthesis_ablations.py --data /tmp/synth64 --out runs/synthesis_ablations

(the data set is generated at ``--synth-size`` px on first use: 256 samples, seed 0).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "experiments" / "ablations" / "synthesis"
REPO = Path(__file__).resolve().parents[1]


def fit(name: str, overlays: list[Path], overrides: list[str], out: Path) -> tuple[Path, float]:
    from occrecon.config.load import load_config
    from occrecon.training import run_command

    cfg = load_config(overlays, [f"run.root={out / 'runs'}", f"run.id={name}", "run.overwrite=true", "logger.kind=csv", *overrides])
    start = time.perf_counter()
    _, paths = run_command("fit", cfg)
    return paths.last_checkpoint, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--out", default="runs/synthesis_ablations")
    parser.add_argument("--parsing-ckpt", default=None)
    parser.add_argument("--synth-size", type=int, default=64, help="image side when the data set is generated")
    parser.add_argument("--parsing-epochs", type=int, default=6, help="epochs of the parsing network (26 batches each)")
    parser.add_argument("--variants", default="spade,concat,no_fin,no_edge,no_parsing_loss")
    parser.add_argument("--max-batches", type=int, default=0, help="evaluate on this many test batches (0 = all)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every synthesis fit (e.g. a smoke test)")
    args = parser.parse_args()
    import torch

    from occrecon.commands.evaluate import load_system, synthetic_loader
    from occrecon.evaluation.synthesis import FIELDS, evaluate_synthesis

    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    data = [f"data.root={args.data}", f"data.synth_size={args.synth_size}"]  # generated on first use when absent
    parsing_ckpt = args.parsing_ckpt
    if parsing_ckpt is None:
        parsing_ckpt = str(out / "runs" / "parsing" / "checkpoints" / "last.ckpt")
        if not Path(parsing_ckpt).is_file():
            ckpt, seconds = fit("parsing", [REPO / "experiments/parsing/synthetic.yaml"], data + [
                "model.width=16", "model.depth=18", "data.image_size=64", "data.num_workers=0",
                f"trainer.max_epochs={args.parsing_epochs}", "trainer.limit_val_batches=2", "trainer.num_sanity_val_steps=0",
                "trainer.enable_progress_bar=false", "model.image_log_every_n_steps=0"], out)  # fmt: skip
            results["parsing_fit_seconds"] = seconds
    parsing = load_system(parsing_ckpt, "parsing")
    base = [REPO / "experiments/synthesis/synthetic.yaml", HERE / "small_cpu.yaml"]
    variants = args.variants.split(",")
    for name in variants:
        if name in results:
            continue
        overlays = base + [HERE / f"{name}.yaml"]
        if name in ("no_fin", "no_edge", "no_parsing_loss"):
            winner = max(("spade", "concat"), key=lambda n: results.get(n, {}).get("synthesis", {}).get("psnr_mask", -1))
            overlays.insert(2, HERE / f"{winner}.yaml")
        ckpt, seconds = fit(name, overlays, data + [f"model.parsing_ckpt={parsing_ckpt}", *args.overrides], out)
        system = load_system(ckpt, "synthesis")
        batches = synthetic_loader(args.data, "test", 8, FIELDS, 64)
        scores, notes = evaluate_synthesis(batches, system, parsing, None, "dlib", args.max_batches)
        results[name] = {**scores.compute(), "fit_seconds": seconds, "conditioning": system.hparams.conditioning,
                         "effective_weights": system.effective_weights, "notes": notes, "table": scores.table(),
                         "images": scores.count}  # fmt: skip
        results_path.write_text(json.dumps(results, indent=1))
        print(f"[ablation] {name}: {results[name]['synthesis']} ({seconds:.0f} s)", flush=True)
    rows = ["| run | conditioning | PSNR mask (dB) | SSIM mask | L1 mask | PSNR face (dB) | eye_g px left | id cos | fit s |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in variants:
        r = results[name]
        s = r["synthesis"]
        rows.append(f"| {name} | {r['conditioning']} | {s['psnr_mask']:.2f} | {s['ssim_mask']:.3f} | {s['l1_mask']:.4f} | "
                    f"{s['psnr_face']:.2f} | {s.get('eye_g_px', float('nan')):.1f} | {s.get('id_cos', float('nan')):.3f} | {r['fit_seconds']:.0f} |")  # fmt: skip
    first = results[variants[0]]
    for method in ("input", "telea", "nearest"):
        s = first[method]
        rows.append(f"| baseline: {method} | - | {s['psnr_mask']:.2f} | {s['ssim_mask']:.3f} | {s['l1_mask']:.4f} | "
                    f"{s['psnr_face']:.2f} | {s.get('eye_g_px', float('nan')):.1f} | {s.get('id_cos', float('nan')):.3f} | - |")  # fmt: skip
    (out / "results.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
