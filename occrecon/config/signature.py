"""Config schemas derived from a class's typed ``__init__`` signature.

A data module's constructor is its single source of truth: its keyword arguments, types and
defaults become the typed ``data`` section of an experiment, so adding an option means adding
one argument, never a second dataclass that could drift from it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import types
import typing
from typing import Any, Dict, List, Optional

from occrecon.errors import ConfigError


def _omegaconf_type(annotation: Any) -> Any:
    """Map an annotation onto the subset of types OmegaConf structured configs understand."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = _omegaconf_type(rest[0]) if len(rest) == 1 else Any
        return Optional[inner] if type(None) in args else inner
    if origin is typing.Literal:
        return type(args[0])
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence):
        item = args[0] if args else Any
        return List[Any if item is Any else _omegaconf_type(item)]
    if origin in (dict, collections.abc.Mapping):
        return Dict[str, Any]
    if annotation in (int, float, str, bool):
        return annotation
    return Any


@functools.lru_cache(maxsize=None)
def schema_from_signature(cls: type, extra: tuple[tuple[str, type, Any], ...] = ()) -> type:
    """A dataclass whose fields are ``cls.__init__``'s keyword arguments (types and defaults).

    ``extra`` adds ``(name, type, default)`` fields (e.g. the ``dataset`` selector). Every
    argument needs a default: a config must be complete without the caller knowing the class.
    """
    hints = typing.get_type_hints(cls.__init__)
    fields: list[tuple[str, Any, Any]] = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            raise ConfigError(f"{cls.__qualname__}.__init__: argument {name!r} needs a default to be configurable")
        default = param.default
        if isinstance(default, (list, dict, tuple)):
            value = list(default) if isinstance(default, tuple) else default
            field = dataclasses.field(default_factory=lambda v=value: type(v)(v))
        else:
            field = dataclasses.field(default=default)
        fields.append((name, _omegaconf_type(hints.get(name, Any)), field))
    fields += [(name, typ, dataclasses.field(default=default)) for name, typ, default in extra]
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)
