"""Face verification on LFW's ``pairs.txt``: the protocol of the paper's Table 1.

**Descriptors** (one vector per image, compared by cosine similarity):

- ``alpha_id``: the identity coefficients α_id that a trained coarse 3D system predicts for the
  image (the paper's descriptor);
- ``embedding``: the identity network's embedding of the image (the ``L_feat`` network, aligned
  with the 5 points of the landmarks that the same 3D prediction projects; LFW has no landmarks).

**Protocol** (LFW's "unrestricted, labeled outside data" view 2): the 10 folds of ``pairs.txt``
(``read_pairs``). For fold ``k`` the decision threshold is the one that maximises the accuracy on
the other nine folds (candidates: midpoints between consecutive distinct scores, and below / above
all of them; ties in accuracy take the lowest threshold); a pair is "same" when its score is
strictly above the threshold. Per fold:

- ``acc``: accuracy on fold ``k`` at that threshold;
- ``eer_acc``: ``100 % − EER`` of fold ``k``'s own ROC; the EER is where the ROC (piecewise
  linear between its points, ties grouped) crosses ``FPR = 1 − TPR``;
- ``nauc``: area under fold ``k``'s ROC divided by the unit square's area (= AUROC), in percent.

Each is reported as ``{"mean", "std"}`` over the folds in percent (``std``: sample standard
deviation, ``ddof = 1``; a fold without pairs of both classes in a subset is left out of
``eer_acc``/``nauc``, one without pairs out of ``acc``).

**Subsets** (``lfw_attributes.txt``, eyewear = argmax of No Eyewear / Eyeglasses / Sunglasses):
``all``; ``glasses``: both images wear eyewear (eyeglasses or sunglasses; ``glasses_rule="any"``:
at least one); ``no_glasses``: neither does. Pairs with an image without an attribute row are only
in ``all``. Thresholds of a subset are chosen on that subset's pairs of the other folds.

ROC/AUROC come from ``torchmetrics.functional.classification`` (scores are passed as their
normalised ranks, which keeps ties and order exact and avoids its sigmoid for values outside
``[0, 1]``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_roc

from occrecon.errors import DataFormatError, ShapeError

SUBSETS: tuple[str, ...] = ("all", "glasses", "no_glasses")
KEYS: tuple[str, ...] = ("eer_acc", "acc", "nauc")
PAPER_TABLE1 = {
    "Ours w/ glasses (paper)": {"eer_acc": 84.37, "acc": 85.79, "nauc": 92.87},
    "Ours w/o glasses (paper)": {"eer_acc": 87.69, "acc": 89.02, "nauc": 95.37},
    "Tran et al. (paper)": {"eer_acc": 89.40, "acc": 89.36, "nauc": 95.90},
}
"""Table 1 of the paper (percent), for the ordering only: the synthetic set is not LFW."""


# -- single-fold measures ------------------------------------------------------------------------
def _ranks(scores: np.ndarray) -> torch.Tensor:
    """Dense ranks of ``scores`` scaled to ``[0, 1]`` (float64): order and ties preserved."""
    _, inverse = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    top = max(int(inverse.max()), 1) if inverse.size else 1
    return torch.from_numpy(inverse.astype(np.float64) / top)


def _both_classes(same: np.ndarray) -> bool:
    return bool(np.any(same)) and bool(np.any(~same))


def roc_points(scores: Sequence[float], same: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of the ROC from ``(0, 0)`` to ``(1, 1)``, one point per distinct score."""
    same = np.asarray(same, dtype=bool)
    if not _both_classes(same):
        raise ShapeError("same", "labels of both classes (same and different pairs)", same.shape)
    fpr, tpr, _ = binary_roc(_ranks(np.asarray(scores)), torch.from_numpy(same).long())
    return fpr.double().numpy(), tpr.double().numpy()


def equal_error_rate(scores: Sequence[float], same: Sequence[bool]) -> float:
    """EER in ``[0, 1]``: where the piecewise-linear ROC crosses ``FPR = 1 − TPR`` (NaN without both classes)."""
    if not _both_classes(np.asarray(same, dtype=bool)):
        return math.nan
    fpr, tpr = roc_points(scores, same)
    gap = fpr + tpr - 1.0  # -1 at (0, 0), +1 at (1, 1), non-decreasing along the curve
    i = int(np.argmax(gap >= 0.0))
    if i == 0 or gap[i] == 0.0:
        return float(fpr[i])
    w = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def normalised_auc(scores: Sequence[float], same: Sequence[bool]) -> float:
    """Area under the ROC over the unit square's area, in ``[0, 1]`` (NaN without both classes)."""
    same = np.asarray(same, dtype=bool)
    if not _both_classes(same):
        return math.nan
    return float(binary_auroc(_ranks(np.asarray(scores)), torch.from_numpy(same).long()))


def best_threshold(scores: Sequence[float], same: Sequence[bool]) -> float:
    """Threshold maximising the accuracy of ``score > threshold`` (module docstring)."""
    s = np.unique(np.asarray(scores, dtype=np.float64))
    same = np.asarray(same, dtype=bool)
    if s.size == 0:
        return math.nan
    candidates = np.concatenate([[s[0] - 1.0], (s[:-1] + s[1:]) / 2.0, [s[-1] + 1.0]])
    scores = np.asarray(scores, dtype=np.float64)
    accuracy = [np.mean((scores > t) == same) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def accuracy_at(scores: Sequence[float], same: Sequence[bool], threshold: float) -> float:
    """Fraction of pairs whose decision ``score > threshold`` is right (NaN for no pairs)."""
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    return float(np.mean((scores > threshold) == same)) if scores.size else math.nan


# -- the 10-fold protocol -------------------------------------------------------------------------
@dataclass
class FoldScores:
    """Per-fold values (fractions in ``[0, 1]``, NaN = not measurable) of one subset."""

    eer_acc: list[float]
    acc: list[float]
    nauc: list[float]

    def summary(self) -> dict[str, dict[str, float]]:
        """``key -> {"mean", "std"}`` in percent over the measurable folds."""
        out = {}
        for key in KEYS:
            values = np.asarray([v for v in getattr(self, key) if not math.isnan(v)]) * 100.0
            mean = float(values.mean()) if values.size else math.nan
            std = float(values.std(ddof=1)) if values.size > 1 else (0.0 if values.size else math.nan)
            out[key] = {"mean": mean, "std": std}
        return out


def ten_fold(
    scores: Sequence[float], same: Sequence[bool], folds: Sequence[int], keep: Sequence[bool] | None = None
) -> FoldScores:
    """Run the protocol on the pairs where ``keep`` (default all); ``folds`` are 0-based fold ids."""
    scores = np.asarray(scores, dtype=np.float64)
    same, folds = np.asarray(same, dtype=bool), np.asarray(folds)
    keep = np.ones_like(same) if keep is None else np.asarray(keep, dtype=bool)
    if not (scores.shape == same.shape == folds.shape == keep.shape) or scores.ndim != 1:
        raise ShapeError(
            "scores/same/folds/keep", f"[P] each (P = {scores.shape[0] if scores.ndim else 0})", same.shape
        )
    result = FoldScores([], [], [])
    for k in np.unique(folds):
        test, train = keep & (folds == k), keep & (folds != k)
        eer = equal_error_rate(scores[test], same[test])
        result.eer_acc.append(1.0 - eer)
        result.nauc.append(normalised_auc(scores[test], same[test]))
        threshold = best_threshold(scores[train], same[train])
        result.acc.append(accuracy_at(scores[test], same[test], threshold) if not math.isnan(threshold) else math.nan)
    return result


def subset_masks(
    eyewear_a: Sequence[int], eyewear_b: Sequence[int], glasses_rule: str = "both"
) -> dict[str, np.ndarray]:
    """``subset -> [P] bool`` from per-pair eyewear classes (−1 unknown, 0 none, 1 eyeglasses, 2 sunglasses)."""
    a, b = np.asarray(eyewear_a), np.asarray(eyewear_b)
    known = (a >= 0) & (b >= 0)
    wear_a, wear_b = a >= 1, b >= 1
    wearing = wear_a & wear_b if glasses_rule == "both" else wear_a | wear_b
    if glasses_rule not in ("both", "any"):
        raise ValueError(f"glasses_rule must be 'both' or 'any', got {glasses_rule!r}")
    return {"all": np.ones(a.shape, dtype=bool), "glasses": known & wearing, "no_glasses": known & ~wear_a & ~wear_b}


def verification_table(
    scores: Sequence[float], same: Sequence[bool], folds: Sequence[int], subsets: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """``subset -> {"eer_acc", "acc", "nauc"} -> {"mean", "std"}`` (percent) plus ``"pairs"`` per subset."""
    table: dict[str, Any] = {}
    for name, keep in subsets.items():
        table[name] = ten_fold(scores, same, folds, keep).summary()
        table[name]["pairs"] = int(np.sum(keep))
    return table


# -- files ------------------------------------------------------------------------------------------
@dataclass
class PairList:
    """Pairs of ``pairs.txt`` with their eyewear classes (−1 unknown without an attributes file)."""

    same: np.ndarray  # [P] bool
    folds: np.ndarray  # [P] int
    keys: list[tuple[tuple[str, int], tuple[str, int]]]
    eyewear_a: np.ndarray
    eyewear_b: np.ndarray


def pair_list(pairs: Sequence[Any], eyewear: Mapping[tuple[str, int], int] | None = None) -> PairList:
    """:class:`PairList` of parsed pairs (objects with ``a``, ``b``, ``same``, ``fold``, as
    ``datamodules.lfw.read_pairs`` returns) and an ``image key -> eyewear class`` table
    (``datamodules.lfw.read_eyewear``; missing keys are unknown, −1)."""
    eyewear = eyewear or {}
    return PairList(
        same=np.array([p.same for p in pairs], dtype=bool),
        folds=np.array([p.fold for p in pairs], dtype=np.int64),
        keys=[(p.a, p.b) for p in pairs],
        eyewear_a=np.array([eyewear.get(p.a, -1) for p in pairs], dtype=np.int64),
        eyewear_b=np.array([eyewear.get(p.b, -1) for p in pairs], dtype=np.int64),
    )


def read_scores(path: str | Path, expected: int | None = None) -> np.ndarray:
    """One similarity per line in ``pairs.txt`` order: the last comma-separated field of each line.

    A first line that is not a number is a header. Raises :class:`DataFormatError` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "a scores file (one similarity per pair)", got="no such file")
    values = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        field = raw.split(",")[-1].strip()
        try:
            values.append(float(field))
        except ValueError:
            if number == 1:
                continue  # header
            raise DataFormatError(
                path, "a similarity (a number) as the last field", line=number, got=repr(raw)
            ) from None
    if expected is not None and len(values) != expected:
        raise DataFormatError(
            path, f"{expected} scores (one per pair of the pairs file, in order)", got=str(len(values))
        )
    return np.asarray(values, dtype=np.float64)


def cosine_scores(
    descriptors: np.ndarray,
    index: Mapping[tuple[str, int], int],
    keys: Sequence[tuple[tuple[str, int], tuple[str, int]]],
) -> np.ndarray:
    """Cosine similarity per pair of the rows of ``descriptors [N, D]`` (``index``: image key -> row)."""
    d = torch.as_tensor(descriptors, dtype=torch.float64)
    a = d[[index[k[0]] for k in keys]]
    b = d[[index[k[1]] for k in keys]]
    return torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12).numpy()


def table_markdown(rows: Mapping[str, Mapping[str, Any]], paper: bool = True) -> str:
    """Markdown table: one row per (descriptor, subset), then the paper's Table 1 for the ordering."""
    lines = ["| descriptor | subset | pairs | 100 % − EER | accuracy | nAUC |", "|---|---|---|---|---|---|"]
    for name, table in rows.items():
        for subset in SUBSETS:
            if subset not in table:
                continue
            t = table[subset]
            cells = [f"{t[k]['mean']:.2f} ± {t[k]['std']:.2f}" for k in KEYS]
            lines.append(f"| {name} | {subset} | {t['pairs']} | " + " | ".join(cells) + " |")
    if paper:
        for name, t in PAPER_TABLE1.items():
            lines.append(f"| {name} | LFW | 6000 | " + " | ".join(f"{t[k]:.2f}" for k in KEYS) + " |")
    return "\n".join(lines)


def write_json(rows: Mapping[str, Any], path: str | Path) -> None:
    """``rows`` as JSON (NaN written as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(clean(dict(rows)), indent=2) + "\n")


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """ROC curves (all folds pooled) of ``name -> (scores, same, keep)`` to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (scores, same, keep) in curves.items():
        if not _both_classes(np.asarray(same)[keep]):
            continue
        fpr, tpr = roc_points(np.asarray(scores)[keep], np.asarray(same)[keep])
        ax.plot(fpr, tpr, label=f"{name} (AUC {normalised_auc(np.asarray(scores)[keep], np.asarray(same)[keep]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("verification ROC (10 folds pooled)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- descriptors from images -------------------------------------------------------------------------
@torch.no_grad()
def image_descriptors(images: Any, system: Any, identity: Any = None, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Descriptors of every sample of ``images`` (a per-image dataset: ``images[i]["image"]`` is
    ``[3, S, S]`` in ``[0, 1]``, e.g. ``LFWDataModule.make_dataset("images")``) by a trained coarse 3D
    system (``system(images) -> y``, ``system.layout``, ``system.render``).

    Returns ``"alpha_id"`` ``[N, n_id]``, plus ``"embedding"`` ``[N, D]`` when ``identity`` (an
    ``IdentityFeatureLoss``) is given: the image aligned with the 5 points of the landmarks its
    own 3D prediction projects (LFW has no landmarks).
    """
    from occrecon.landmarks import five_points

    out: dict[str, list[torch.Tensor]] = {"alpha_id": [], "embedding": []}
    for start in range(0, len(images), batch_size):
        batch = torch.stack([images[i]["image"] for i in range(start, min(start + batch_size, len(images)))])
        y = system(batch)
        out["alpha_id"].append(system.layout.split(y).id)
        if identity is not None:
            out["embedding"].append(identity.embed(batch, five_points(system.render(y).landmarks)))
    return {k: torch.cat(v).numpy() for k, v in out.items() if v}
