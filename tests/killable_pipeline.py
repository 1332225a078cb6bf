"""The composite stage with a kill switch, as a plug-in stage (``stage: "tests.killable_pipeline:SPEC"``).

Identical to ``stage: pipeline`` except that with ``$OCCRECON_TEST_KILL_AT_STEP`` set the run
SIGKILLs its own process group when training reaches that global step (``tests/test_pipeline_runs.py``).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from occrecon.registry import StageSpec
from occrecon.systems.pipeline import PipelineSystem
from tests.exact_stage import KILL_ENV


class KillablePipeline(PipelineSystem):
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if os.environ.get(KILL_ENV) == str(self.global_step):
            os.killpg(os.getpgid(0), signal.SIGKILL)


SPEC = StageSpec(
    name="killable_pipeline",
    system="tests.killable_pipeline:KillablePipeline",
    model_schema="occrecon.systems.pipeline:PipelineModelConfig",
    description="the composite stage with a kill switch (tests only)",
)
