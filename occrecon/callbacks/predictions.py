"""``occrecon predict``: write every stage's predictions under the run directory.

:class:`PredictionWriter` (a Lightning ``BasePredictionWriter``) stores each sample's outputs in
``<out>/<name>.*``, ``name`` from the batch's ``name`` field (the images data module) or the
sample's index in the prediction set. What is written depends only on a value's shape:

- ``[B, V, 3]`` floats named ``vertices``: an OBJ mesh (the system's face-model triangles;
  vertex colours from an ``albedo`` entry when present), model space;
- ``[B, 3, H, W]`` floats: an RGB PNG (``<name>_<key>.png``, clamped to ``[0, 1]``; maps with
  negative values, e.g. normals, as ``(v + 1) / 2``);
  ``[B, 1, H, W]``: a grey PNG (values in ``[0, 1]`` as is, anything else min-max scaled);
  ``[B, C>3, H, W]``: the channel maximum as a grey PNG (heatmaps);
- ``[B, H, W]`` integers: label maps, raw (``<name>_<key>.png``, one class index per pixel) and
  coloured (``<name>_<key>_colour.png``);
- everything else (coefficients ``[B, N]``, landmarks ``[B, N, 2]``, ...): ``<name>.npz``;
- for photo-folder batches also the aligned input (``<name>_input.png``) and its
  ``crop_from_photo`` ``[2, 3]`` matrix (in the npz) to map results back to the photo.

:func:`prediction_setup` is called by :func:`occrecon.training.run_command` for ``predict``: with
``predict.images`` the stage's data module is replaced by
:class:`datamodules.images.ImagesDataModule` (faces aligned to the stage's training framing,
``occrecon.faces.align.STAGE_FRAMING``); a data module without a prediction loader predicts on
its test split. Output folder: ``predict.out`` or ``<run dir>/predictions``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

log = logging.getLogger(__name__)


def _png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def _grey(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return (x.clamp(0, 1) * 255).round().byte().numpy()


class PredictionWriter(BasePredictionWriter):
    """Write predictions per sample (module docstring) into ``out_dir``."""

    def __init__(self, out_dir: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.written = 0

    def _names(self, batch: Any, batch_indices: Any, batch_idx: int, size: int) -> list[str]:
        if isinstance(batch, dict) and isinstance(batch.get("name"), list | tuple):
            return [str(n) for n in batch["name"]]
        if batch_indices is not None and len(batch_indices) == size:
            return [f"{int(i):06d}" for i in batch_indices]
        return [f"b{batch_idx:05d}_{i}" for i in range(size)]

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        from occrecon.mesh_io import write_obj
        from occrecon.viz import colorize_labels, image_to_uint8

        values = prediction if isinstance(prediction, dict) else {"labels": prediction}
        values = {k: v.detach().cpu() for k, v in values.items() if isinstance(v, torch.Tensor) and v.dim() >= 1}
        if not values:
            return
        size = next(iter(values.values())).shape[0]
        names = self._names(batch, batch_indices, batch_idx, size)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        triangles = getattr(getattr(pl_module, "face_model", None), "triangles", None)
        for i, name in enumerate(names):
            arrays: dict[str, np.ndarray] = {}
            for key, value in values.items():
                v = value[i]
                if key == "vertices" and v.dim() == 2 and v.shape[-1] == 3 and triangles is not None:
                    colours = values.get("albedo")
                    write_obj(self.out_dir / f"{name}.obj", v, triangles.cpu(), None if colours is None else colours[i].clamp(0, 1))
                elif v.dim() == 3 and v.is_floating_point() and v.shape[-1] > 8 and v.shape[-2] > 8:
                    if v.shape[0] == 3:  # colours in [0, 1]; signed 3-vectors (normals) as (v + 1) / 2
                        rgb = (v.clamp(-1, 1) + 1) / 2 if v.min() < 0 else v.clamp(0, 1)
                        _png(self.out_dir / f"{name}_{key}.png", image_to_uint8(rgb))
                    else:
                        _png(self.out_dir / f"{name}_{key}.png", _grey(v[0] if v.shape[0] == 1 else v.amax(0)))
                elif v.dim() == 2 and not v.is_floating_point() and v.shape[0] > 8 and v.shape[1] > 8:
                    _png(self.out_dir / f"{name}_{key}.png", v.clamp(0, 255).byte().numpy())
                    _png(self.out_dir / f"{name}_{key}_colour.png", colorize_labels(v))
                elif key != "albedo" or "vertices" not in values:
                    arrays[key] = v.numpy()
            if isinstance(batch, dict) and "crop_from_photo" in batch:  # photo folder: the input crop and its transform
                arrays["crop_from_photo"] = batch["crop_from_photo"][i].cpu().numpy()
                _png(self.out_dir / f"{name}_input.png", image_to_uint8(batch["image"][i].cpu().clamp(0, 1)))
            if arrays:
                np.savez(self.out_dir / f"{name}.npz", **arrays)
            self.written += 1

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log.info("predict: wrote the predictions of %d sample(s) to %s", self.written, self.out_dir)


class _TestSplitAsPredict(L.LightningDataModule):
    """Wraps a data module without ``predict_dataloader``: predicts on its test loader."""

    def __init__(self, inner: L.LightningDataModule) -> None:
        super().__init__()
        self.inner = inner

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup("test")

    def predict_dataloader(self) -> Any:
        return self.inner.test_dataloader()


def _has_predict_loader(datamodule: L.LightningDataModule) -> bool:
    return type(datamodule).predict_dataloader is not L.LightningDataModule.predict_dataloader


def prediction_setup(cfg: Any, datamodule: L.LightningDataModule, run_dir: Path) -> tuple[L.LightningDataModule, list]:
    """The data module and callbacks of ``occrecon predict`` (module docstring)."""
    predict = cfg.get("predict") or {}
    out = Path(predict.get("out") or Path(run_dir) / "predictions")
    if predict.get("images"):
        from datamodules.images import ImagesDataModule
        from occrecon.faces.align import STAGE_FRAMING

        align = predict.get("align", "auto")
        align = STAGE_FRAMING.get(cfg.stage, "deep3d") if align == "auto" else align
        datamodule = ImagesDataModule(
            predict["images"], image_size=cfg.data.image_size, align=align,
            min_face_size=predict.get("min_face_size", 40.0), batch_size=cfg.data.get("batch_size", 8),
        )  # fmt: skip
    elif not _has_predict_loader(datamodule):
        log.info("predict: %s has no prediction loader; predicting on its test split", type(datamodule).__name__)
        datamodule = _TestSplitAsPredict(datamodule)
    return datamodule, [PredictionWriter(out)]
