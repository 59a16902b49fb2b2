"""The inpainting network at inference time: an ONNX model and its card, run by ONNX Runtime.

This is the only module of the app that imports ``onnxruntime`` (ARCHITECTURE.md). The pipeline never
sees the session: it receives a predictor callable, and :class:`InpaintModel` is one.

Model contract (``models/<site>_<modality>_<arch>.onnx`` and the same-name ``.json`` card):

* input ``image``: float32 ``(N, C, H, W)`` in [0, 1], channels in the card's ``channels`` order
  (a subsequence of ``("ct", "pet")``);
* input ``mask``: float32 ``(N, 1, H, W)``, 1 = known pixel, 0 = hole;
* output ``inpainted``: float32 ``(N, C, H, W)`` in [0, 1], the raw prediction (not composited);
* ``H`` and ``W`` multiples of the card's ``size_multiple`` (32 for the compact U-Nets).

The card must hold at least ``channels``, ``site``, ``ct_window``, ``suv_window``, ``size_multiple``
and ``architecture``.

Execution providers: onnxruntime-gpu lists CUDA and TensorRT as *available* even on a machine without
CUDA; creating a session with them then silently falls back to the CPU. So a provider is only
trusted after the session exists: ``session.get_providers()`` tells which ones really loaded, and
:attr:`InpaintModel.provider` reports that truth. ONNX Runtime's stderr noise about the failed GPU
libraries is silenced with ``set_default_logger_severity(4)`` before any session is created, and
the Python wrapper's printed fallback notice (TensorRT) is swallowed while the session is built.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from autopaint_app.core.errors import InputError
from autopaint_app.core.presets import CHANNEL_ORDER, PRESETS

# Fatal-only logging: the CUDA/TensorRT fallback would otherwise print two error lines per session.
onnxruntime.set_default_logger_severity(4)

CARD_FIELDS = ("channels", "site", "ct_window", "suv_window", "size_multiple", "architecture")
INPUT_NAMES = ("image", "mask")
OUTPUT_NAME = "inpainted"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
# "auto" tries CUDA only: TensorRT builds an engine per input shape (minutes for dynamic shapes),
# which is wrong for a desktop app; ask for it explicitly with providers="tensorrt".
_PROVIDER_CHOICES = {"auto": (CUDA, CPU), "cpu": (CPU,), "cuda": (CUDA, CPU), "tensorrt": (TENSORRT, CUDA, CPU)}


@dataclass(frozen=True)
class ModelCard:
    """The fields of a model card the app relies on (the whole JSON is kept in ``raw``)."""

    channels: tuple[str, ...]
    site: str
    ct_window: tuple[float, float]
    suv_window: tuple[float, float]
    size_multiple: int
    architecture: str
    raw: dict


def card_path_for(onnx_path: str | os.PathLike) -> Path:
    """The card beside a model: same name, ``.json`` suffix."""
    return Path(onnx_path).with_suffix(".json")


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read and validate a model card.

    Raises:
        InputError: missing file, invalid JSON, a missing field or a field of the wrong kind
            (the message names the card and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model card not found (expected a .json file beside the .onnx model)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"model card is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(path, "model card must be a JSON object")
    missing = [name for name in CARD_FIELDS if name not in raw]
    if missing:
        raise InputError(path, f"model card lacks the field(s) {', '.join(missing)}")
    channels = raw["channels"]
    if (not isinstance(channels, list) or not channels or any(c not in CHANNEL_ORDER for c in channels)
            or list(channels) != [c for c in CHANNEL_ORDER if c in channels]):
        raise InputError(path, f"model card 'channels' must be a non-empty subsequence of {list(CHANNEL_ORDER)}, "
                               f"got {channels!r}")
    if raw["site"] not in PRESETS:
        raise InputError(path, f"model card 'site' must be one of {', '.join(PRESETS)}, got {raw['site']!r}")
    multiple = raw["size_multiple"]
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise InputError(path, f"model card 'size_multiple' must be a positive integer, got {multiple!r}")
    if not isinstance(raw["architecture"], str) or not raw["architecture"]:
        raise InputError(path, "model card 'architecture' must be a non-empty string")
    windows = {name: _window(raw[name], name, path) for name in ("ct_window", "suv_window")}
    return ModelCard(tuple(channels), raw["site"], windows["ct_window"], windows["suv_window"], multiple,
                     raw["architecture"], raw)


def _window(value, name: str, path: Path) -> tuple[float, float]:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not value[0] < value[1]:
        raise InputError(path, f"model card '{name}' must be [low, high] with low < high, got {value!r}")
    return float(value[0]), float(value[1])


def _provider_list(providers: str | Sequence[str]) -> list[str]:
    if isinstance(providers, str):
        if providers not in _PROVIDER_CHOICES:
            raise ValueError(f"providers must be one of {', '.join(_PROVIDER_CHOICES)} or a list of ONNX Runtime "
                             f"provider names, got {providers!r}")
        wanted = list(_PROVIDER_CHOICES[providers])
    else:
        wanted = list(providers)
    available = set(onnxruntime.get_available_providers())
    chosen = [p for p in wanted if p in available]
    return chosen if CPU in chosen else chosen + [CPU]


class InpaintModel:
    """A loaded inpainting model; call it like the pipeline's predictor.

    Use :meth:`load`; the object is reusable across runs and cases (the session stays open).

    Attributes:
        path: the ``.onnx`` file.
        card: the validated :class:`ModelCard`.
        provider: the execution provider that really runs the model (e.g. ``"CPUExecutionProvider"``).
        providers: every provider the session really loaded, in priority order.
        batch_size: largest number of images per forward pass.
    """

    def __init__(self, session, path: Path, card: ModelCard, batch_size: int):
        self._session = session
        self.path = path
        self.card = card
        self.providers = tuple(session.get_providers())
        self.provider = self.providers[0]
        self.batch_size = int(batch_size)

    @classmethod
    def load(cls, onnx_path: str | os.PathLike, card_path: str | os.PathLike | None = None,
             threads: int | None = None, batch_size: int = 8, providers: str | Sequence[str] = "auto"
             ) -> "InpaintModel":
        """Open ``onnx_path`` and its card, check the contract, choose providers.

        Args:
            onnx_path: the ``.onnx`` model.
            card_path: the card; default: ``onnx_path`` with suffix ``.json``.
            threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
            batch_size: images per forward pass (>= 1); larger inputs are split into chunks.
            providers: ``"auto"`` (CUDA when it really loads, else CPU), ``"cpu"``, ``"cuda"``,
                ``"tensorrt"``, or a list of ONNX Runtime provider names (CPU is always appended).

        Raises:
            InputError: missing/unreadable model, bad card, or a model that breaks the contract.
            ValueError: bad ``threads``, ``batch_size`` or ``providers`` argument.
        """
        path = Path(onnx_path)
        if batch_size < 1 or (threads is not None and threads < 1):
            raise ValueError(f"batch_size and threads must be >= 1, got {batch_size}, {threads}")
        if not path.is_file():
            raise InputError(path, "model file not found")
        card = read_card(card_path if card_path is not None else card_path_for(path))
        provider_list = _provider_list(providers)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            # A provider whose libraries are missing makes the Python wrapper *print* "EP Error ...
            # Falling back" to stdout before retrying; the truth is read from the session below.
            with contextlib.redirect_stdout(io.StringIO()):
                session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=provider_list)
        except Exception as exc:  # ONNX Runtime raises several private exception types for bad files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(path, f"not a readable ONNX model ({first_line[:200]})") from None
        _check_contract(session, path, card)
        return cls(session, path, card, batch_size)

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names in input order (``("ct",)``, ``("pet",)`` or ``("ct", "pet")``)."""
        return self.card.channels

    @property
    def size_multiple(self) -> int:
        """H and W given to the network are padded up to a multiple of this."""
        return self.card.size_multiple

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Inpaint a batch.

        Args:
            image: float ``(N, C, H, W)`` in [0, 1], ``C == len(self.channels)``; any H, W.
            mask: ``(N, 1, H, W)``, 1 = known pixel, 0 = hole.

        Returns:
            float32 ``(N, C, H, W)``: the network's raw prediction. H and W are padded internally
            (mirror padding, the mask mirrored with the image) up to multiples of
            :attr:`size_multiple` and cropped back; N is run in chunks of :attr:`batch_size`.
        """
        image, mask = self._checked(image, mask)
        n, _, height, width = image.shape
        step = self.size_multiple
        pad = ((0, 0), (0, 0), (0, -height % step), (0, -width % step))
        # Hole pixels are zeroed here too: the tumour under a hole must never reach the network,
        # whatever the exported graph does with them.
        known = np.pad(image * mask, pad, mode="symmetric")
        mask = np.pad(mask, pad, mode="symmetric")
        outputs = []
        for start in range(0, n, self.batch_size):
            chunk = slice(start, start + self.batch_size)
            result = self._session.run([OUTPUT_NAME], {"image": known[chunk], "mask": mask[chunk]})[0]
            outputs.append(result[:, :, :height, :width])
        return np.ascontiguousarray(np.concatenate(outputs, axis=0), dtype=np.float32)

    def _checked(self, image, mask) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(image, dtype=np.float32)
        mask = np.asarray(mask, dtype=np.float32)
        channels = len(self.channels)
        if image.ndim != 4 or image.shape[1] != channels:
            raise ValueError(f"image must be (N, {channels}, H, W) for channels {self.channels}, got {image.shape}")
        expected = (image.shape[0], 1) + image.shape[2:]
        if mask.shape != expected:
            raise ValueError(f"mask must have shape {expected}, got {mask.shape}")
        return image, mask

    def __repr__(self) -> str:
        return (f"InpaintModel({self.path.name}, channels={self.channels}, provider={self.provider}, "
                f"batch_size={self.batch_size})")


def _check_contract(session, path: Path, card: ModelCard) -> None:
    """Input/output names, rank 4, float32, and static channel counts against the card."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if sorted(inputs) != sorted(INPUT_NAMES):
        raise InputError(path, f"model inputs must be named {list(INPUT_NAMES)}, got {sorted(inputs)}")
    if OUTPUT_NAME not in outputs:
        raise InputError(path, f"model has no output named '{OUTPUT_NAME}' (outputs: {sorted(outputs)})")
    expected_channels = {"image": len(card.channels), "mask": 1, OUTPUT_NAME: len(card.channels)}
    for name, arg in list(inputs.items()) + [(OUTPUT_NAME, outputs[OUTPUT_NAME])]:
        if arg.type != "tensor(float)":
            raise InputError(path, f"model {name!r} must be float32, got {arg.type}")
        if len(arg.shape) != 4:
            raise InputError(path, f"model {name!r} must have rank 4 (N, C, H, W), got shape {arg.shape}")
        channels = arg.shape[1]
        if isinstance(channels, int) and channels != expected_channels[name]:
            raise InputError(path, f"model {name!r} has {channels} channel(s), but its card lists "
                                   f"channels {list(card.channels)} (expected {expected_channels[name]})")
