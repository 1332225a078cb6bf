"""A test-only stage on the real data path: ``stage: tests.exact_stage:EXACT_STAGE``.

Unlike ``tests/toy_stage.py`` its data module is a :class:`datamodules.common.FaceDataModule`
(``FaceDataset`` + ``FaceAugment`` + ``build_loader``), so with ``num_workers=0`` the augmentation
draws from the main-process stream, exactly like the real data modules. The network has dropout
(global torch RNG) and BatchNorm (breaks on a batch of one in training). With ``$OCCRECON_TEST_KILL_AT_STEP`` set, the run
SIGKILLs its own process group at that step (``tests/test_resume_kill.py``).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.common import FaceDataModule, RawSample, Record, build_loader, collate_skip_none
from occrecon.config.schema import BaseDataConfig, BaseModelConfig
from occrecon.registry import StageSpec
from occrecon.training import build_optimization
from occrecon.utils.seeding import numpy_generator
from tests.toy_stage import ToyLoss

KILL_ENV = "OCCRECON_TEST_KILL_AT_STEP"
"""Environment variable: SIGKILL the process group when training reaches this global step."""


@dataclass
class ExactModelConfig(BaseModelConfig):
    width: int = 8
    dropout: float = 0.3
    norm: bool = True
    loss: ToyLoss = field(default_factory=ToyLoss)  # weights.mse (l1 unused here)


@dataclass
class ExactDataConfig(BaseDataConfig):
    image_size: int = 16
    batch_size: int = 4
    num_workers: int = 0
    num_samples: int = 32
    augment: bool = True
    shuffle: bool = True
    skip_bad: bool = False
    bad: list[int] = field(default_factory=list)


class ExactSystem(L.LightningModule):
    """Predicts an image's mean intensity: conv -> BatchNorm -> ReLU -> dropout -> pooled linear."""

    def __init__(
        self,
        width: int,
        dropout: float,
        norm: bool,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        loss: dict[str, Any],
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm1d(width) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.conv(images)).mean(dim=(2, 3))
        return self.head(self.drop(F.relu(self.norm(features)))).squeeze(1)

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        images = batch["image"]
        return self.hparams.loss["weights"]["mse"] * F.mse_loss(self(images), images.mean(dim=(1, 2, 3)))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # A real kill -9 of the whole run (every rank: the test starts it in its own session).
        if os.environ.get(KILL_ENV) == str(self.global_step):
            os.killpg(os.getpgid(0), signal.SIGKILL)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimization(self, self.hparams.optimizer, self.hparams.scheduler)


class ExactDataModule(FaceDataModule):
    """``num_samples`` random images per split (fixed by a generator); records in ``bad`` fail to load."""

    name = "exact"

    def __init__(
        self,
        num_samples: int = 32,
        shuffle: bool = True,
        bad: list[int] | None = None,
        image_size: int = 16,
        batch_size: int = 4,
        num_workers: int = 0,
        augment: bool = True,
        skip_bad: bool = False,
        root: str | None = None,
    ) -> None:
        super().__init__(
            root=root, image_size=image_size, batch_size=batch_size, num_workers=num_workers, augment=augment,
            skip_bad=skip_bad, rotate_deg=20.0, flip_prob=0.5,
        )  # fmt: skip
        self.num_samples, self.shuffle, self.bad = num_samples, shuffle, set(bad or [])

    def index(self, split: str, on_error: Any = None) -> list[Record]:
        return [Record(f"{split}-{i}", image=None, fields={"i": i}) for i in range(self.num_samples)]  # type: ignore[arg-type]

    def load(self, record: Record) -> RawSample:
        from occrecon.errors import DataFormatError

        if record.fields["i"] in self.bad:
            raise DataFormatError(f"<{record.id}>", "a decodable image", got="bad on purpose")
        image = (numpy_generator(0, record.id).random((20, 20, 3)) * 255).astype(np.uint8)
        return RawSample(image=image, box=(2.0, 2.0, 18.0, 18.0))

    def train_dataloader(self) -> Any:
        if self.shuffle:
            return super().train_dataloader()
        if "fit" not in self.datasets:
            self.setup("fit")
        return build_loader(self.datasets["fit"], self.batch_size, False, self.num_workers, collate_fn=collate_skip_none)


EXACT_STAGE = StageSpec(
    name="exact",
    system="tests.exact_stage:ExactSystem",
    datamodule="tests.exact_stage:ExactDataModule",
    model_schema="tests.exact_stage:ExactModelConfig",
    data_schema="tests.exact_stage:ExactDataConfig",
    description="test-only stage on the real FaceDataModule path",
)
EXACT = "tests.exact_stage:EXACT_STAGE"
