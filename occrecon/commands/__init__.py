"""Plug-in sub-commands of the ``occrecon`` CLI.

Every module in this package (found with :mod:`pkgutil`, names starting with ``_`` skipped) that
defines ``register(subparsers)`` adds its own sub-command(s)::

    # occrecon/commands/render.py
    def register(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser("render", help="render a mesh")
        parser.add_argument("mesh")
        parser.set_defaults(handler=run)

    def run(args: argparse.Namespace) -> int:   # exit status
        from occrecon.render import ...        # heavy imports inside the handler
        ...
        return 0

A module with ``GROUP = "data"`` receives the subparsers of the ``occrecon data`` group instead,
so ``occrecon data synth`` and ``occrecon data check`` can live in different modules. Any other
group name works the same way (the group is created on first use). Keep module-level imports
light: every command module is imported to build ``occrecon --help``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

#: One-line help of the known command groups (others get a generic line).
GROUP_HELP = {"data": "data set tools (generate, check, ...)", "eval": "evaluations (fusion M_fin vs baselines, ...)"}


def discover(subparsers: argparse._SubParsersAction, package: str = __name__) -> list[str]:
    """Import every command module of ``package`` and let it register; returns module names."""
    groups: dict[str, argparse._SubParsersAction] = {}
    registered = []
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"occrecon command module {name} failed to import: {err}") from err
        register = getattr(module, "register", None)
        if register is None:
            continue
        group = getattr(module, "GROUP", None)
        register(_group(subparsers, groups, group) if group else subparsers)
        registered.append(name)
    return registered


def _group(
    subparsers: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction], group: str
) -> argparse._SubParsersAction:
    if group not in groups:
        parser = subparsers.add_parser(group, help=GROUP_HELP.get(group, f"{group} commands"))
        groups[group] = parser.add_subparsers(dest=f"{group}_command", metavar="COMMAND", required=True)
    return groups[group]
