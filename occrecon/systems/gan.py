"""Manual-optimisation plumbing shared by the GAN stages (a generator and a discriminator, one
optimiser each; Lightning 2.x ``automatic_optimization = False``).

:class:`ManualGANMixin` gives a LightningModule with ``self.hparams.gradient_clip_val`` /
``gradient_clip_algorithm`` and ``self.scheduler_cfg``:

- :meth:`~ManualGANMixin.clip` — clip one optimiser's gradients by hand (Lightning's
  ``trainer.gradient_clip_val`` does not apply to manual optimisation);
- :meth:`~ManualGANMixin.step_schedulers` — step every scheduler whose interval is ``interval``
  (``"step"`` after each batch, ``"epoch"`` in ``on_train_epoch_end``);
- :meth:`~ManualGANMixin.gan_optimizers` — ``configure_optimizers`` output for G and D from
  ``model.optimizer`` / ``model.scheduler`` and D's own optimiser section; a step-interval schedule
  without ``t_max`` spans ``max_steps // 2`` batches, since ``trainer.global_step`` counts the G
  *and* the D steps (Lightning #17958);
- :meth:`~ManualGANMixin.require_find_unused` — under DDP each backward touches one network only,
  so plain ``ddp`` fails in DDP's reducer: refuse it with the fix in the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from occrecon.errors import ConfigError
from occrecon.training import build_optimization


class ManualGANMixin:
    """Mixin for a ``LightningModule`` trained with two optimisers by hand (module docstring)."""

    scheduler_cfg: dict[str, Any]

    def clip(self, optimizer: Any) -> None:
        hp = self.hparams  # type: ignore[attr-defined]
        if hp.gradient_clip_val > 0:
            self.clip_gradients(optimizer, hp.gradient_clip_val, hp.gradient_clip_algorithm)  # type: ignore[attr-defined]

    def step_schedulers(self, interval: str) -> None:
        if self.scheduler_cfg["name"] == "none" or self.scheduler_cfg["interval"] != interval:
            return
        schedulers = self.lr_schedulers()  # type: ignore[attr-defined]
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    def on_train_epoch_end(self) -> None:
        self.step_schedulers("epoch")

    def gan_optimizers(
        self,
        g_optimizer: Mapping[str, Any],
        g_params: Iterable[torch.nn.Parameter],
        d_optimizer: Mapping[str, Any],
        d_params: Iterable[torch.nn.Parameter],
    ) -> list[dict[str, Any]]:
        scheduler = dict(self.scheduler_cfg)
        trainer = getattr(self, "_trainer", None)  # None outside a Trainer (benchmarks)
        max_steps = trainer.max_steps if trainer is not None else -1
        if scheduler["interval"] == "step" and not scheduler["t_max"] and max_steps > 0:
            scheduler["t_max"] = max(1, max_steps // 2)
        return [build_optimization(self, g_optimizer, scheduler, g_params),  # type: ignore[arg-type]
                build_optimization(self, d_optimizer, scheduler, d_params)]  # type: ignore[arg-type]  # fmt: skip

    def require_find_unused(self, stage_name: str) -> None:
        from lightning.pytorch.strategies import DDPStrategy

        strategy = self.trainer.strategy  # type: ignore[attr-defined]
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
            raise ConfigError(
                f"{stage_name}: each G/D backward touches one network only; use "
                "trainer.strategy=ddp_find_unused_parameters_true instead of plain ddp"
            )
