"""Store the run id and the resolved config inside every checkpoint."""

from __future__ import annotations

from typing import Any

import lightning as L


class RunInfoCallback(L.Callback):
    """Adds ``checkpoint["occrecon"] = {"run_id", "config"}`` (plain containers only), so a
    checkpoint copied out of its run directory still says where and how it was trained."""

    def __init__(self, run_id: str, config: dict[str, Any]) -> None:
        self.run_id = run_id
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["occrecon"] = {"run_id": self.run_id, "config": self.config}
