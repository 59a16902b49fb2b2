"""Where the inpainting models live and which one a site and modality use by default.

Models are ``<models dir>/<site>_<modality>_<arch>.onnx`` with a same-name ``.json`` card
(ARCHITECTURE.md). The default for a site and modality is ``<site>_<modality>_gconv_lap.onnx`` (the
paper's GConv-Lap network), else the first other ``<site>_<modality>_*.onnx`` in name order.

A model may have an int8 twin, ``<name>.int8.onnx`` (``autopaint-cli quantize``): fast mode uses it
when it is there (``precision="auto"``), reference mode never does (it stays the paper's float
network). Why the twin is safe to use by default is measured in the README (Pipeline speed): the
same decisions as the float model on the benchmark case, and the same cohort results.

The models folder is ``models/`` of the source tree, or ``$AUTOPAINT_MODELS_DIR`` when set (an
installed app, or tests that need an empty or prepared folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from autopaint_app.core.errors import InputError

MODELS_ENV = "AUTOPAINT_MODELS_DIR"
PREFERRED_ARCH = "gconv_lap"
INT8_SUFFIX = ".int8.onnx"
PRECISIONS = ("auto", "float32", "int8")


def models_dir() -> Path:
    """The folder searched for default models (``$AUTOPAINT_MODELS_DIR`` or the repository's ``models/``)."""
    configured = os.environ.get(MODELS_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "models"


def is_int8(path: str | os.PathLike) -> bool:
    """Whether a model file is an int8 twin (by its name, ``*.int8.onnx``)."""
    return Path(path).name.endswith(INT8_SUFFIX)


def int8_path_for(float_path: str | os.PathLike) -> Path:
    """Where the int8 twin of a float model ``<name>.onnx`` goes: ``<name>.int8.onnx`` (card ``<name>.int8.json``)."""
    path = Path(float_path)
    return path.with_name(path.name[:-len(".onnx")] + INT8_SUFFIX)


def int8_twin(path: str | os.PathLike) -> Path | None:
    """``<name>.int8.onnx`` beside a float model ``<name>.onnx`` when it exists with its card, else None."""
    path = Path(path)
    if is_int8(path) or path.suffix != ".onnx":
        return None
    twin = int8_path_for(path)
    return twin if twin.is_file() and twin.with_suffix(".json").is_file() else None


def uses_int8(precision: str, mode: str) -> bool:
    """Whether a default model should be the int8 twin: ``auto`` means in fast mode only."""
    if precision not in PRECISIONS:
        raise InputError("--precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision == "int8" or (precision == "auto" and mode == "fast")


def default_model_path(site: str, modality: str, folder: str | os.PathLike | None = None,
                       precision: str = "float32", mode: str = "fast") -> Path:
    """The model a site and modality use when none is given.

    Args:
        site: ``"lung"`` or ``"hn"``.
        modality: ``"ct"``, ``"pet"`` or ``"petct"``.
        folder: where to look (default :func:`models_dir`).
        precision: ``"float32"`` (the float model), ``"int8"`` (its int8 twin, when there is one) or
            ``"auto"`` (the twin in fast mode, the float model in reference mode).
        mode: the pipeline mode the model is for (only ``"auto"`` looks at it).

    Returns:
        ``<folder>/<site>_<modality>_gconv_lap.onnx`` when it exists, else the first (by name)
        other ``<folder>/<site>_<modality>_*.onnx`` that is not an int8 twin; then that model's
        int8 twin when the precision asks for it and the twin exists.

    Raises:
        InputError: no such model (the message names the folder and the expected file).
    """
    folder = Path(folder) if folder is not None else models_dir()
    want_int8 = uses_int8(precision, mode)
    preferred = folder / f"{site}_{modality}_{PREFERRED_ARCH}.onnx"
    others = [p for p in sorted(folder.glob(f"{site}_{modality}_*.onnx")) if not is_int8(p)] if folder.is_dir() else []
    chosen = preferred if preferred.is_file() else (others[0] if others else None)
    if chosen is None:
        raise InputError(folder, f"no model for {site}/{modality} in this folder (expected {preferred.name}); "
                                 f"pass --model FILE or train one")
    if not want_int8:
        return chosen
    twin = int8_twin(chosen)
    if twin is None and precision == "int8":
        raise InputError(folder, f"{chosen.name} has no int8 twin ({chosen.stem}{INT8_SUFFIX} with its card); "
                                 f"make one with autopaint-cli quantize or use --precision float32")
    return twin or chosen


def card_summary(card) -> dict:
    """JSON-ready facts of a :class:`~autopaint_app.core.inpaint_model.ModelCard` worth recording with a result."""
    raw = card.raw
    summary = {"architecture": card.architecture, "site": card.site, "channels": list(card.channels),
               "ct_window": list(card.ct_window), "suv_window": list(card.suv_window),
               "size_multiple": card.size_multiple}
    for key in ("modality", "size", "precision", "params", "train_crop", "created", "epochs", "onnx_parity_max_abs"):
        if key in raw:
            summary[key] = raw[key]
    return summary
