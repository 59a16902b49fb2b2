"""Where the inpainting models live and which one a site and modality use by default.

Models are ``<models dir>/<site>_<modality>_<arch>.onnx`` with a same-name ``.json`` card
(ARCHITECTURE.md). The default for a site and modality is ``<site>_<modality>_gconv_lap.onnx`` (the
paper's GConv-Lap network), else the first other ``<site>_<modality>_*.onnx`` in name order.

The models folder is ``models/`` of the source tree, or ``$AUTOPAINT_MODELS_DIR`` when set (an
installed app, or tests that need an empty or prepared folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from autopaint_app.core.errors import InputError

MODELS_ENV = "AUTOPAINT_MODELS_DIR"
PREFERRED_ARCH = "gconv_lap"


def models_dir() -> Path:
    """The folder searched for default models (``$AUTOPAINT_MODELS_DIR`` or the repository's ``models/``)."""
    configured = os.environ.get(MODELS_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "models"


def default_model_path(site: str, modality: str, folder: str | os.PathLike | None = None) -> Path:
    """The model a site and modality use when none is given.

    Args:
        site: ``"lung"`` or ``"hn"``.
        modality: ``"ct"``, ``"pet"`` or ``"petct"``.
        folder: where to look (default :func:`models_dir`).

    Returns:
        ``<folder>/<site>_<modality>_gconv_lap.onnx`` when it exists, else the first (by name)
        ``<folder>/<site>_<modality>_*.onnx``.

    Raises:
        InputError: no such model (the message names the folder and the expected file).
    """
    folder = Path(folder) if folder is not None else models_dir()
    preferred = folder / f"{site}_{modality}_{PREFERRED_ARCH}.onnx"
    if preferred.is_file():
        return preferred
    others = sorted(folder.glob(f"{site}_{modality}_*.onnx")) if folder.is_dir() else []
    if others:
        return others[0]
    raise InputError(folder, f"no model for {site}/{modality} in this folder (expected {preferred.name}); "
                             f"pass --model FILE or train one")


def card_summary(card) -> dict:
    """JSON-ready facts of a :class:`~autopaint_app.core.inpaint_model.ModelCard` worth recording with a result."""
    raw = card.raw
    summary = {"architecture": card.architecture, "site": card.site, "channels": list(card.channels),
               "ct_window": list(card.ct_window), "suv_window": list(card.suv_window),
               "size_multiple": card.size_multiple}
    for key in ("modality", "size", "params", "train_crop", "created", "epochs", "onnx_parity_max_abs"):
        if key in raw:
            summary[key] = raw[key]
    return summary
