"""The sweep file runs as a wandb agent runs it: the command line is built by wandb's own agent code
(``wandb.wandb_agent.Agent._command_run``, which expands ``${env} ${interpreter} ...
${args_no_hyphens}``), then executed from another working directory with ``WANDB_MODE=offline``
on the tiny overlay. CPU here; the same file runs on a GPU (``experiments/trainer/auto.yaml``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "experiments" / "sweeps" / "reconstruction_loss_weights.yaml"


def agent_command(sweep: dict[str, Any], args: dict[str, Any], run_id: str, monkeypatch: pytest.MonkeyPatch,
                  wandb_dir: Path) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """The command list and environment wandb's agent would start for one run with ``args``."""
    from wandb import wandb_agent

    captured: dict[str, Any] = {}

    class Captured:  # stands in for the subprocess the agent would start
        def __init__(self, command: list[str] | None = None, env: dict[str, str] | None = None, **_: Any) -> None:
            captured.update(command=command, env=env)

    monkeypatch.setattr(wandb_agent, "AgentProcess", Captured)
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_RUN_ID", "")  # the agent sets it
    agent = wandb_agent.Agent.__new__(wandb_agent.Agent)
    agent._sweep_command, agent._function, agent._in_jupyter = sweep["command"], None, False
    agent._forward_signals, agent._run_processes = False, {}
    command = {"type": "run", "run_id": run_id, "program": sweep["program"],
               "args": {key: {"value": value} for key, value in args.items()}}  # fmt: skip
    wandb_agent.Agent._command_run(agent, command)
    return captured["command"], captured["env"]


def sweep_point(sweep: dict[str, Any], **chosen: Any) -> dict[str, Any]:
    """One point of the sweep: fixed ``value``s, the first of ``values``, ``min`` of distributions."""
    point = {}
    for key, spec in sweep["parameters"].items():
        point[key] = spec["value"] if "value" in spec else spec["values"][0] if "values" in spec else spec["min"]
    point.update(chosen)
    return point


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from occrecon.synth.config import SynthConfig
    from occrecon.synth.dataset_writer import generate_dataset

    root = tmp_path_factory.mktemp("sweep") / "synth"
    return generate_dataset(SynthConfig.from_dict({"n": 16, "size": 64, "seed": 0}), root, workers=1, progress=False)


def run_agent_command(tmp_path: Path, synth_root: Path, monkeypatch: pytest.MonkeyPatch, run_id: str,
                      extra_env: dict[str, str] | None = None,
                      **chosen: Any) -> tuple[subprocess.CompletedProcess, list[str]]:  # fmt: skip
    sweep = yaml.safe_load(SWEEP.read_text())
    # The test's only change to the file: the tiny overlay (debug budget), placed before the arguments.
    at = sweep["command"].index("${args_no_hyphens}")
    sweep["command"][at:at] = ["-c", "experiments/debug/tiny.yaml"]
    args = sweep_point(sweep, **{"run.root": str(tmp_path / "runs"), "data.root": str(synth_root),
                                 "data.synth_n": 16, "data.synth_size": 64, **chosen})  # fmt: skip
    command, env = agent_command(sweep, args, run_id, monkeypatch, tmp_path / "wandb")
    env = {k: v for k, v in env.items() if not k.startswith(("OCCRECON_", "PL_", "SLURM_"))}
    env.update(WANDB_MODE="offline", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]), **(extra_env or {}))  # fmt: skip
    elsewhere = tmp_path / "agent-cwd"  # not the checkout: relative -c paths must still resolve
    elsewhere.mkdir()
    result = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    return result, command


@pytest.mark.slow
def test_agent_command_trains_end_to_end_offline(
    tmp_path: Path, synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # feat=0.0 is a point of the sweep: L_feat off, so require_identity does not apply
    result, command = run_agent_command(tmp_path, synth_root, monkeypatch, "sweeprun1",
                                        **{"model.loss.weights.feat": 0.0})  # fmt: skip
    assert command[:4] == ["/usr/bin/env", "python", "-m", "occrecon.cli"]
    assert "model.loss.weights.feat=0.0" in command and "model.loss.require_identity=True" in command
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "sweeprun1"  # WANDB_RUN_ID set by the agent is the run id
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4
    assert state["hyper_parameters"]["loss"]["weights"]["feat"] == 0.0
    assert list((run / "wandb").rglob("offline-run-*")), "no offline W&B run was written"


@pytest.mark.slow
def test_agent_run_needing_identity_fails_at_start_without_weights(
    tmp_path: Path, synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an empty asset cache: this machine has no identity weights
    empty = {"OCCRECON_CACHE": str(tmp_path / "empty-cache")}
    result, _ = run_agent_command(tmp_path, synth_root, monkeypatch, "sweeprun2", empty, **{"model.loss.weights.feat": 0.2})
    assert result.returncode == 2
    assert "model.loss.require_identity=true but L_feat is unavailable" in result.stderr
    assert not (tmp_path / "runs" / "sweeprun2" / "checkpoints" / "last.ckpt").exists()
