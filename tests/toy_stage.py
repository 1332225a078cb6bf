"""A tiny test-only stage (system + data module + schemas), used as ``stage: tests.toy_stage:TOY_STAGE``.

The network has dropout and the loader shuffles, so an exact resume needs the RNG states and the
mid-epoch loader position restored, not just the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from occrecon.callbacks import ResumableDataLoader
from occrecon.config.schema import BaseDataConfig, BaseModelConfig
from occrecon.registry import StageSpec
from occrecon.training import build_optimization
from occrecon.utils.seeding import torch_generator


@dataclass
class ToyLossWeights:
    mse: float = 1.0
    l1: float = 0.0


@dataclass
class ToyLoss:
    weights: ToyLossWeights = field(default_factory=ToyLossWeights)


@dataclass
class ToyModelConfig(BaseModelConfig):
    width: int = 8
    dropout: float = 0.5
    loss: ToyLoss = field(default_factory=ToyLoss)


@dataclass
class ToyDataConfig(BaseDataConfig):
    image_size: int = 8
    batch_size: int = 4
    num_workers: int = 0
    num_samples: int = 32


class ToySystem(L.LightningModule):
    """Predicts the mean intensity of an image: conv -> dropout -> pooled linear head."""

    def __init__(
        self, width: int, dropout: float, optimizer: dict[str, Any], scheduler: dict[str, Any], loss: dict[str, Any]
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.drop(F.relu(self.conv(images)))
        return self.head(features.mean(dim=(2, 3))).squeeze(1)

    def _losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, target = batch
        pred = self(images)
        weights = self.hparams.loss["weights"]
        return weights["mse"] * F.mse_loss(pred, target) + weights["l1"] * F.l1_loss(pred, target)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._losses(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._losses(batch))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("test/loss", self._losses(batch))

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimization(self, self.hparams.optimizer, self.hparams.scheduler)


class ToyDataModule(L.LightningDataModule):
    """Random images (fixed by a generator, not the global RNG) and their mean intensity."""

    def __init__(self, image_size: int = 16, batch_size: int = 4, num_workers: int = 0, root: str | None = None, num_samples: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        images = torch.rand(num_samples, 3, image_size, image_size, generator=torch_generator(0, "toy"))
        self.dataset = TensorDataset(images, images.mean(dim=(1, 2, 3)))

    def train_dataloader(self) -> ResumableDataLoader:
        return ResumableDataLoader(self.dataset, batch_size=self.hparams.batch_size, shuffle=True,
                                   num_workers=self.hparams.num_workers)

    def _eval_loader(self) -> ResumableDataLoader:
        return ResumableDataLoader(self.dataset, batch_size=self.hparams.batch_size,
                                   num_workers=self.hparams.num_workers)

    val_dataloader = test_dataloader = predict_dataloader = _eval_loader


TOY_STAGE = StageSpec(
    name="toy",
    system="tests.toy_stage:ToySystem",
    datamodule="tests.toy_stage:ToyDataModule",
    model_schema="tests.toy_stage:ToyModelConfig",
    data_schema="tests.toy_stage:ToyDataConfig",
    description="test-only toy stage",
)
TOY = "tests.toy_stage:TOY_STAGE"
