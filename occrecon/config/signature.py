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


def constructor_parameters(cls: type) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Keyword arguments of ``cls(...)`` with their type hints.

    A constructor that ends in ``**options`` forwards them to its base class, so the walk goes on
    up the MRO; a subclass's own argument wins over (and may re-default) the base's of that name.
    Base arguments come first, in their declaration order.
    """
    chain: list[dict[str, tuple[inspect.Parameter, Any]]] = []  # most derived first
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        hints = typing.get_type_hints(init)
        params = inspect.signature(init).parameters
        chain.append({n: (p, hints.get(n, Any)) for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)})
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    merged: dict[str, tuple[inspect.Parameter, Any]] = {}
    for own in reversed(chain):  # base first; a re-declared name keeps its place, takes the new default
        merged.update(own)
    return merged


@functools.cache
def schema_from_signature(cls: type, extra: tuple[tuple[str, type, Any], ...] = ()) -> type:
    """A dataclass whose fields are the keyword arguments of ``cls(...)`` (types and defaults).

    ``extra`` adds ``(name, type, default)`` fields (e.g. the ``dataset`` selector). Every
    argument needs a default: a config must be complete without the caller knowing the class.
    """
    fields: list[tuple[str, Any, Any]] = []
    for name, (param, hint) in constructor_parameters(cls).items():
        if param.default is inspect.Parameter.empty:
            raise ConfigError(f"{cls.__qualname__}: argument {name!r} needs a default to be configurable")
        default = param.default
        if isinstance(default, (list, dict, tuple)):
            value = list(default) if isinstance(default, tuple) else default
            field = dataclasses.field(default_factory=lambda v=value: type(v)(v))
        else:
            field = dataclasses.field(default=default)
        fields.append((name, _omegaconf_type(hint), field))
    fields += [(name, typ, dataclasses.field(default=default)) for name, typ, default in extra]
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)


def merged_defaults(defaults: Any, given: collections.abc.Mapping[str, Any] | None, where: str = "model") -> dict[str, Any]:
    """A config section: the dataclass instance ``defaults`` as a plain dict, updated recursively by ``given``.

    The one way a system merges what it was given with its ``<Stem>ModelConfig`` defaults (whose
    fields are pinned to the constructor's arguments), so a partial section keeps the other
    defaults: ``merged_defaults(ModelConfig().optimizer, {"lr": 0.01})`` is Adam at lr 0.01.
    ``given`` may be ``None`` (all defaults). A key that the dataclass does not have raises
    :class:`ConfigError` naming ``where.key``; values of non-dataclass fields (lists, dicts) are
    replaced, not merged.

    >>> from occrecon.config.schema import OptimizerConfig
    >>> merged_defaults(OptimizerConfig(), {"lr": 0.01}, "model.optimizer")["name"]
    'adam'
    """
    given = {} if given is None else given
    base = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)}
    unknown = sorted(set(given) - set(base))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; expected one of {sorted(base)}")
    out = {}
    for key, default in base.items():
        value = given.get(key)
        if not dataclasses.is_dataclass(default):
            out[key] = value if key in given else default
        elif value is None or isinstance(value, collections.abc.Mapping):
            out[key] = merged_defaults(default, value, f"{where}.{key}")
        else:
            raise ConfigError(f"{where}.{key}: expected a mapping of {sorted(vars(default))}, got {value!r}")
    return out
