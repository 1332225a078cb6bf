"""The ``occrecon`` CLI: plug-in discovery, help, --print-config, and fit -> validate end to end."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from occrecon.cli import build_parser, main
from tests.toy_stage import TOY

REPO = Path(__file__).resolve().parents[1]

PLUGIN = {
    "__init__.py": "",
    "hello.py": """
        def register(subparsers):
            p = subparsers.add_parser("hello", help="say hello")
            p.add_argument("--name", default="world")
            p.set_defaults(handler=lambda args: print(f"hello {args.name}") or 0)
    """,
    "synth.py": """
        GROUP = "data"
        def register(subparsers):
            subparsers.add_parser("synth", help="make data").set_defaults(handler=lambda args: 3)
    """,
    "check.py": """
        GROUP = "data"
        def register(subparsers):
            p = subparsers.add_parser("check", help="check data")
            p.add_argument("root")
            p.set_defaults(handler=lambda args: 0 if args.root == "ok" else 1)
    """,
    "_private.py": "raise RuntimeError('underscore modules are not imported')\n",
    "helpers.py": "VALUE = 1  # no register(): not a command\n",
}


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "fake_occrecon_commands"
    package.mkdir()
    for name, body in PLUGIN.items():
        (package / name).write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return package.name


def test_plugin_commands_are_discovered_and_grouped(plugin_package: str, capsys: pytest.CaptureFixture) -> None:
    parser = build_parser(plugin_package)
    args = parser.parse_args(["hello", "--name", "occ"])
    assert args.handler(args) == 0 and capsys.readouterr().out == "hello occ\n"
    # Two modules share the `data` group.
    args = parser.parse_args(["data", "synth"])
    assert args.handler(args) == 3
    args = parser.parse_args(["data", "check", "ok"])
    assert args.handler(args) == 0
    help_text = parser.format_help()
    for command in ("fit", "validate", "test", "predict", "hello", "data"):
        assert command in help_text


def test_help_lists_the_training_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("fit", "validate", "test", "predict"))


def test_print_config_accepts_overrides_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(f"stage: '{TOY}'\n")
    code = main(["fit", "seed=5", "-c", str(config), "--print-config", "model.width=3"])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 5 and printed["model"]["width"] == 3 and printed["stage"] == TOY


def test_config_errors_exit_2_with_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["fit", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_then_validate_end_to_end(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(f"stage: '{TOY}'\nseed: 11\n")
    root = tmp_path / "runs"
    tiny = REPO / "experiments" / "debug" / "tiny.yaml"
    ckpt = root / "e2e" / "checkpoints" / "last.ckpt"
    fit = ["fit", "-c", str(config), "-c", str(tiny), f"run.root={root}", "run.id=e2e"]
    validate = ["validate", "-c", str(config), "-c", str(tiny), f"run.root={root}", "--ckpt", str(ckpt)]
    predict = ["predict", "-c", str(config), "-c", str(tiny), f"run.root={root}", "run.id=e2e"]  # last.ckpt
    # One interpreter for all commands (Lightning's import costs seconds); the DDP test covers
    # `python -m occrecon.cli` itself.
    code = (f"import sys; from occrecon.cli import main; "
            f"sys.exit(main({fit!r}) or main({validate!r}) or main({predict!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = root / "e2e"
    assert (run_dir / "config.yaml").is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # tiny.yaml: 1 epoch of 4 batches
    assert state["occrecon"]["run_id"] == "e2e"
    assert state["hyper_parameters"]["width"] == 8
    # validate found the run from the checkpoint's location and logged into it.
    metrics = (run_dir / "logs" / "validate" / "metrics.csv").read_text()
    assert "val/loss" in metrics
    assert result.stdout.count("finished; run e2e") == 3
