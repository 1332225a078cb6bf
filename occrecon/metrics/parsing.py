"""Face-parsing metrics accumulated over a whole split (torchmetrics), named as in the literature.

One confusion matrix is summed over all pixels of all images (as EAGRNet's ``miou.py``), then:

* ``f1/<class>``: ``2 TP / (2 TP + FP + FN)`` per class;
* ``f1/overall``: Helen's "overall" F1 — the listed classes (eyes, brows, nose, lips, inner mouth,
  :data:`occrecon.labels.HELEN_OVERALL_F1_CLASSES`) merged into one foreground class, i.e.
  ``2 |G ∩ P| / (|G| + |P|)`` with ``G`` / ``P`` the pixels whose true / predicted label is in
  the group (confusions *inside* the group count as correct, as for merged classes in the Helen
  protocol);
* ``f1/mean``: mean of the per-class F1 over the foreground classes (background excluded, the
  CelebAMask-HQ convention);
* ``iou/<class>`` and ``miou``: IoU per class and its mean over the classes present in the
  ground truth or the predictions;
* ``pixel_accuracy``: correct pixels / valid pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_confusion_matrix

from occrecon.utils.checks import check_shape


def f1_per_class(confmat: torch.Tensor) -> torch.Tensor:
    """``[C]`` F1 from a ``[C, C]`` confusion matrix (rows = truth, columns = prediction); NaN where a class never occurs."""
    tp = confmat.diag().double()
    denom = confmat.sum(0).double() + confmat.sum(1).double()
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.nan)


def iou_per_class(confmat: torch.Tensor) -> torch.Tensor:
    """``[C]`` IoU ``TP / (TP + FP + FN)``; NaN where a class is absent from truth and prediction."""
    tp = confmat.diag().double()
    union = confmat.sum(0).double() + confmat.sum(1).double() - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.nan)


def merged_f1(confmat: torch.Tensor, group: Sequence[int]) -> torch.Tensor:
    """F1 of the classes in ``group`` merged into one class: ``2 |G ∩ P| / (|G| + |P|)``."""
    idx = torch.tensor(list(group), device=confmat.device)
    inter = confmat[idx][:, idx].sum().double()
    denom = confmat[idx].sum().double() + confmat[:, idx].sum().double()
    return 2 * inter / denom if denom > 0 else torch.tensor(torch.nan, dtype=torch.float64)


class FaceParsingMetrics(Metric):
    """Split-level parsing metrics from an accumulated confusion matrix.

    Args:
        class_names: names of the classes in label order (e.g. ``labels.CELEBAMASK_CLASSES``).
        overall_f1_classes: names merged into ``f1/overall`` (``labels.HELEN_OVERALL_F1_CLASSES``
            for Helen); ``None`` skips it.
        ignore_index: label value excluded from all counts.

    ``update(preds, target)``: ``preds`` ``[B, C, H, W]`` logits or ``[B, H, W]`` labels,
    ``target`` ``[B, H, W]`` int64. ``compute()`` returns a flat ``dict[str, Tensor]``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        class_names: Sequence[str],
        overall_f1_classes: Sequence[str] | None = None,
        ignore_index: int = 255,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.overall = None if overall_f1_classes is None else [self.class_names.index(n) for n in overall_f1_classes]
        self.ignore_index = ignore_index
        self.add_state(
            "confmat", default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_shape(target, ["B", "H", "W"], "target")
        if preds.dim() == 4:
            preds = preds.argmax(dim=1)
        check_shape(preds, list(target.shape), "preds")
        self.confmat += multiclass_confusion_matrix(
            preds, target, self.num_classes, ignore_index=self.ignore_index, validate_args=False
        )

    def compute(self) -> dict[str, torch.Tensor]:
        confmat = self.confmat
        f1 = f1_per_class(confmat)
        iou = iou_per_class(confmat)
        out = {f"f1/{name}": f1[i] for i, name in enumerate(self.class_names)}
        out.update({f"iou/{name}": iou[i] for i, name in enumerate(self.class_names)})
        out["f1/mean"] = f1[1:].nanmean()
        if self.overall is not None:
            out["f1/overall"] = merged_f1(confmat, self.overall)
        out["miou"] = iou.nanmean()
        out["pixel_accuracy"] = confmat.diag().sum().double() / confmat.sum().clamp_min(1).double()
        return out
