"""Frozen face-identity networks for the feature loss ``L_feat`` of paper Eq. 4, built from
pretrained weights (the architectures are in :mod:`occrecon.nets.identity`):

- ``"dlib"``: :class:`~occrecon.nets.identity.dlib_resnet.DlibResNet` (128-D), real weights
  converted from face-api (``occrecon assets fetch face-recognition``);
- ``"arcface_r50"`` / ``"arcface_r100"``: insightface IResNet (512-D) from the user's
  ``backbone.pth``.

:func:`build_identity_network` returns ``(None, reason)`` when no weights are available so the
caller disables the term *with a warning* instead of silently training without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from occrecon.assets.face_api import load_face_recognition_state_dict
from occrecon.errors import ConfigError, OccreconError
from occrecon.nets.identity import freeze
from occrecon.nets.identity.arcface import load_arcface
from occrecon.nets.identity.dlib_resnet import DlibResNet

log = logging.getLogger(__name__)

IDENTITY_KINDS = ("dlib", "arcface_r50", "arcface_r100", "none")


def build_identity_network(kind: str, path: str | Path | None = None) -> tuple[nn.Module | None, str]:
    """Build the frozen identity network ``kind`` or explain why it is unavailable.

    Args:
        kind: one of :data:`IDENTITY_KINDS`.
        path: weights file; for ``"dlib"`` defaults to the cache of
            ``occrecon assets fetch face-recognition``; required for ArcFace.

    Returns:
        ``(network, "")`` on success, ``(None, reason)`` when the weights are missing or unreadable
        (the reason is also logged as a warning). Unknown ``kind`` raises :class:`ConfigError`.
    """
    if kind not in IDENTITY_KINDS:
        raise ConfigError(f"identity network kind must be one of {IDENTITY_KINDS}, got {kind!r}")
    if kind == "none":
        reason = "identity network disabled by configuration (kind='none')"
        log.warning("L_feat is disabled: %s", reason)
        return None, reason
    try:
        if kind == "dlib":
            network: nn.Module = DlibResNet()
            network.load_state_dict(load_face_recognition_state_dict(path))
        else:
            if path is None:
                raise ConfigError(f"identity network {kind!r} needs the path of an insightface backbone.pth")
            network = load_arcface(path, "iresnet50" if kind == "arcface_r50" else "iresnet100")
    except (OccreconError, RuntimeError) as err:
        reason = f"{kind} identity network unavailable: {err}"
        log.warning("L_feat is disabled: %s", reason)
        return None, reason
    return freeze(network), ""
