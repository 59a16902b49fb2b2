"""A training run's settings (``run.json``): a frozen, validated dataclass with the paper's defaults.

``run.json`` example::

    {"cases": ["/data/lung_1", {"path": "/data/lung_2", "healthy": true, "patient_id": "P2"}],
     "site": "lung", "modality": "petct", "arch": "gconv_lap", "size": "compact",
     "train_crop": 128, "batch_size": 8, "epochs_phase1": 150, "epochs_phase2": 150,
     "out_dir": "/work/runs/lung_petct_gconv_lap"}

A case entry is a folder path (it may hold several cases, see ``core.case.find_cases``) or a dict
with ``path``, optional ``healthy`` (the folder's cases have no label but are known to be tumour
free), optional ``patient_id`` (cases sharing it always land on the same side of the split) and
optional ``split`` (``"train"`` or ``"val"``: force the folder's patients to that side, e.g. to keep
a real patient held out for validation; the rest are split at random by ``val_fraction``).
Relative paths are resolved against the folder of ``run.json``. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from autopaint_app.core.errors import InputError
from autopaint_app.core.presets import MODALITY_CHANNELS, PRESETS, SitePreset
from autopaint_app.training.rim_lesions import REGIONS as RIM_LESION_REGIONS

ARCHS = ("gconv_lap", "gconv", "pconv")
SIZES = ("compact", "light", "paper")  # networks.NAMED_WIDTHS
PREFILLS = ("none", "harmonic", "biharmonic")  # see networks.HarmonicPrefill, BiharmonicPrefill
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class CaseEntry:
    """One entry of ``cases``: a folder, whether it is known tumour-free, an optional patient id,
    an optional forced side of the split (``"train"`` or ``"val"``, e.g. to hold out a real patient),
    a sampling weight (a slice of a case with weight 3 is drawn 3x as often as one of weight 1:
    a few real scans among many phantoms) and whether a CT-only case gets a PET synthesised from its
    CT (``core.synthetic_pet``: real chest CTs in a PET-CT run)."""

    path: str
    healthy: bool = False
    patient_id: str | None = None
    split: str | None = None
    weight: float = 1.0
    synthetic_pet: bool = False


@dataclass(frozen=True)
class RunConfig:
    """Settings of one training run (defaults: the paper, on a compact network).

    Attributes:
        cases: Case folders (``CaseEntry``).
        out_dir: Where checkpoints, logs and the validation set go.
        site: ``"lung"`` or ``"hn"`` (windows and organ of interest).
        modality: ``"ct"``, ``"pet"`` or ``"petct"`` (channels ``("ct", "pet")``).
        arch: ``"gconv_lap"`` (GConv + Laplacian term), ``"gconv"`` or ``"pconv"``.
        size: ``"compact"`` (CPU default, 5 levels, 32-128 channels), ``"light"`` (4 levels, 16-64
            channels: ~4x faster circle search) or ``"paper"`` (64...512 channels, 8 levels).
        widths: Explicit encoder widths (overrides ``size``; used by tests for tiny nets).
        prefill: ``"none"`` (the paper's network), ``"harmonic"`` or ``"biharmonic"``: the output
            layer corrects a parameter-free harmonic or biharmonic fill of the holes
            (``networks.HarmonicPrefill``, ``networks.BiharmonicPrefill``; our PET models).
        prefill_channels: Channel names the prefill fills, e.g. ``["pet"]`` in a PET-CT run: the
            PET output corrects the smooth fill and the CT keeps the plain head. None = every
            channel. (Measured in session 13: a PET prefill alone already stops a PET-CT model's
            tumour circles from standing out; README, Models.)
        rim_lesions: Share of training crops (0-1) that get a synthetic lesion on the known rim of
            a hole, the healthy slice kept as the target inside it (``training.rim_lesions``): the
            network learns to paint healthy tissue next to a tumour. 0 = the paper's training.
        rim_lesion_region: Where decoys may sit: ``"body"`` (anywhere in the patient) or
            ``"near_lung"`` (within reach of aerated lung on CT, where lung tumours are; the heart
            and mediastinum keep their uptake as healthy rim). Needs a CT channel.
        pet_smoothing_px, ct_smoothing_px: ``[low, high]``: each training crop's PET (CT) is blurred
            by a Gaussian of sigma drawn uniformly from this range (working-grid pixels), input and
            target alike, so the network also sees smoother reconstructions than the phantoms'
            (``training.scan_smoothing``). None = the crops as they are.
        channel_loss_weights: Relative weight of each channel in the per-pixel loss terms (valid,
            hole, Laplacian), e.g. ``{"pet": 3}``; unnamed channels weigh 1, and the weights are
            scaled to a mean of 1 so the balance with the other terms stays the paper's. None =
            every channel alike (the paper).
        train_crop: Side of the square training crops on the working grid, pixels.
        batch_size: Crops per step.
        epochs_phase1, epochs_phase2: Epochs with all BN on (lr1), then encoder BN frozen (lr2).
        lr1, lr2: Adam learning rates of the two phases.
        steps_per_epoch: Cap on steps per epoch; default one pass (train slices / batch).
        seed: Seeds the split, crops, holes and the network initialisation.
        val_fraction: Share of patients held out for validation (at least one when >= 2).
        val_crops: Size of the fixed validation set (crops with fixed holes).
        max_slices_per_case: Healthy slices kept per case (evenly spaced) to bound memory.
        restrict_to_ooi: Keep only slices meeting the organ of interest; crops centred in it.
        tumour_margin_mm: Slices within this distance (z) of a tumour are excluded too.
        vgg_weights: torchvision VGG16 state dict (ImageNet); default hub cache, else seeded random.
        vgg_downsample: Average-pool before VGG (1 = paper; 2 makes the loss ~4x cheaper on CPU).
        init_from: Training checkpoint whose network weights start this run (fine-tuning, e.g. a
            lung CT model from the lung PET-CT one); input/output channels are matched by name.
        threads: torch intra-op threads.
        device: ``"cpu"`` or ``"cuda"`` (torch's first CUDA device).
        ct_window, suv_window: ``(low, high)`` overriding the site preset's CT window (HU) and
            SUV window for the data and the model card; None keeps the preset's.
        export: Export the best checkpoint to ``out_dir`` as ONNX + card at the end of the run.
    """

    cases: tuple[CaseEntry, ...]
    out_dir: str
    site: str = "lung"
    modality: str = "petct"
    arch: str = "gconv_lap"
    size: str = "compact"
    widths: tuple[int, ...] | None = None
    prefill: str = "none"
    prefill_channels: tuple[str, ...] | None = None
    rim_lesions: float = 0.0
    rim_lesion_region: str = "body"
    channel_loss_weights: dict | None = None
    pet_smoothing_px: tuple[float, float] | None = None
    ct_smoothing_px: tuple[float, float] | None = None
    train_crop: int = 128
    batch_size: int = 8
    epochs_phase1: int = 150
    epochs_phase2: int = 150
    lr1: float = 1e-4
    lr2: float = 5e-5
    steps_per_epoch: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    val_crops: int = 32
    max_slices_per_case: int = 80
    restrict_to_ooi: bool = True
    tumour_margin_mm: float = 6.0
    vgg_weights: str | None = None
    vgg_downsample: int = 1
    init_from: str | None = None
    threads: int = 2
    device: str = "cpu"
    ct_window: tuple[float, float] | None = None
    suv_window: tuple[float, float] | None = None
    export: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not self.cases:
            problems.append("'cases' lists no case folder")
        if self.site not in PRESETS:
            problems.append(f"site must be one of {sorted(PRESETS)}, got {self.site!r}")
        if self.modality not in MODALITY_CHANNELS:
            problems.append(f"modality must be one of {sorted(MODALITY_CHANNELS)}, got {self.modality!r}")
        if self.arch not in ARCHS:
            problems.append(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.size not in SIZES:
            problems.append(f"size must be one of {SIZES}, got {self.size!r}")
        if self.prefill not in PREFILLS or (self.prefill != "none" and self.arch == "pconv"):
            problems.append(f"prefill must be one of {PREFILLS} (not with pconv), got {self.prefill!r}")
        chosen = self.prefill_channels
        if chosen is not None and (self.prefill == "none" or not chosen or len(set(chosen)) != len(chosen)
                                   or not set(chosen) <= set(MODALITY_CHANNELS.get(self.modality, ()))):
            problems.append(f"prefill_channels must name distinct channels of the {self.modality!r} modality "
                            f"{list(MODALITY_CHANNELS.get(self.modality, ()))} with a prefill set, got {list(chosen)}")
        positive = {"train_crop": self.train_crop, "batch_size": self.batch_size, "threads": self.threads,
                    "val_crops": self.val_crops, "max_slices_per_case": self.max_slices_per_case,
                    "vgg_downsample": self.vgg_downsample, "lr1": self.lr1, "lr2": self.lr2}
        problems += [f"{name} must be positive, got {value}" for name, value in positive.items() if value <= 0]
        if self.epochs_phase1 < 0 or self.epochs_phase2 < 0 or self.epochs_phase1 + self.epochs_phase2 < 1:
            problems.append("epochs_phase1 and epochs_phase2 must be >= 0 with at least one epoch")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            problems.append(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("ct_window", "suv_window"):
            window = getattr(self, name)
            if window is not None and not (len(window) == 2 and window[0] < window[1]):
                problems.append(f"{name} must be [low, high] with low < high, got {list(window)}")
        if not 0.0 <= self.rim_lesions <= 1.0:
            problems.append(f"rim_lesions must be a share of crops in [0, 1], got {self.rim_lesions}")
        if self.rim_lesion_region not in RIM_LESION_REGIONS:
            problems.append(f"rim_lesion_region must be one of {list(RIM_LESION_REGIONS)}, "
                            f"got {self.rim_lesion_region!r}")
        elif self.rim_lesion_region == "near_lung" and "ct" not in self.channels:
            problems.append("rim_lesion_region 'near_lung' finds the lung on CT; modality "
                            f"{self.modality} has no CT")
        problems += self._channel_weight_problems()
        for name in ("ct", "pet"):
            sigma_px = getattr(self, f"{name}_smoothing_px")
            if sigma_px is None:
                continue
            if not 0.0 <= sigma_px[0] <= sigma_px[1] <= 10.0:
                problems.append(f"{name}_smoothing_px must be [low, high] px with 0 <= low <= high <= 10, "
                                f"got {list(sigma_px)}")
            elif name not in self.channels:
                problems.append(f"{name}_smoothing_px blurs the {name.upper()}; modality {self.modality} "
                                f"has no {name.upper()}")
        if not 0.0 < self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if problems:
            raise InputError(self.extra.get("config_path"), "; ".join(problems))

    def _channel_weight_problems(self) -> list[str]:
        weights = self.channel_loss_weights
        if weights is None:
            return []
        if not isinstance(weights, dict) or not weights:
            return [f"channel_loss_weights must be an object like {{\"pet\": 3}}, got {weights!r}"]
        problems = [f"channel_loss_weights names {name!r}, not a channel of modality {self.modality} "
                    f"({', '.join(self.channels)})" for name in weights if name not in self.channels]
        problems += [f"channel_loss_weights[{name!r}] must be a positive number, got {value!r}"
                     for name, value in weights.items()
                     if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0]
        return problems

    def channel_weights(self) -> tuple[float, ...] | None:
        """Per-channel loss weights in network order, scaled to a mean of 1; None = all alike."""
        if not self.channel_loss_weights:
            return None
        raw = [float(self.channel_loss_weights.get(name, 1.0)) for name in self.channels]
        mean = sum(raw) / len(raw)
        return tuple(value / mean for value in raw)

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names in network order, e.g. ``("ct", "pet")``."""
        return MODALITY_CHANNELS[self.modality]

    @property
    def site_preset(self) -> SitePreset:
        """The site's preset with this run's ``ct_window`` / ``suv_window`` overrides applied."""
        preset = PRESETS[self.site]
        overrides = {name: getattr(self, name) for name in ("ct_window", "suv_window") if getattr(self, name)}
        return replace(preset, **overrides) if overrides else preset

    @property
    def total_epochs(self) -> int:
        return self.epochs_phase1 + self.epochs_phase2

    @property
    def model_name(self) -> str:
        """``<site>_<modality>_<arch>``, the models/ file stem."""
        return f"{self.site}_{self.modality}_{self.arch}"

    def to_dict(self) -> dict:
        """JSON-ready dict (round-trips through ``from_dict``)."""
        data = asdict(self)
        data.pop("extra")
        return data

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path | None = None, source: str | None = None) -> RunConfig:
        """Build from a parsed ``run.json``; unknown keys and bad values raise InputError."""
        known = {f.name for f in fields(cls)} - {"extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(source, f"unknown run.json keys: {', '.join(unknown)}")
        missing = [key for key in ("cases", "out_dir") if key not in data]
        if missing:
            raise InputError(source, f"run.json needs {' and '.join(missing)}")
        values = dict(data)
        values["cases"] = tuple(_case_entry(item, base_dir, source) for item in data["cases"])
        values["out_dir"] = str(_resolve(data["out_dir"], base_dir))
        for key in ("vgg_weights", "init_from"):
            if values.get(key) is not None:
                values[key] = str(_resolve(values[key], base_dir))
        if values.get("widths") is not None:
            values["widths"] = tuple(int(w) for w in values["widths"])
        if values.get("prefill_channels") is not None:
            chosen = values["prefill_channels"]
            if not isinstance(chosen, list) or not all(isinstance(name, str) for name in chosen):
                raise InputError(source, f"prefill_channels must be a list of channel names, got {chosen!r}")
            values["prefill_channels"] = tuple(chosen)
        for key in ("ct_window", "suv_window", "pet_smoothing_px", "ct_smoothing_px"):
            if values.get(key) is not None:
                values[key] = _window(values[key], key, source)
        try:
            return cls(**values, extra={"config_path": source})
        except TypeError as error:
            raise InputError(source, f"bad run.json value ({error})") from None


def _window(value, key: str, source: str | None) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(source, f"{key} must be [low, high], got {value!r}") from None
    return low, high


def _resolve(path: str, base_dir: Path | None) -> Path:
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() or base_dir is None else (base_dir / path).resolve()


_CASE_KEYS = {"path", "healthy", "patient_id", "split", "weight", "synthetic_pet"}


def _case_entry(item, base_dir: Path | None, source: str | None) -> CaseEntry:
    if isinstance(item, str):
        return CaseEntry(str(_resolve(item, base_dir)))
    if isinstance(item, dict) and "path" in item and set(item) <= _CASE_KEYS:
        if item.get("split") not in (None, "train", "val"):
            raise InputError(source, f"a case entry's split must be 'train' or 'val', got {item['split']!r}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
            raise InputError(source, f"a case entry's weight must be a positive number, got {weight!r}")
        synthetic_pet = item.get("synthetic_pet", False)
        if not isinstance(synthetic_pet, bool):
            raise InputError(source, f"a case entry's synthetic_pet must be true or false, got {synthetic_pet!r}")
        return CaseEntry(str(_resolve(item["path"], base_dir)), bool(item.get("healthy", False)),
                         item.get("patient_id"), item.get("split"), float(weight), synthetic_pet)
    raise InputError(source, f"a case entry must be a folder path or an object with keys among "
                             f"{sorted(_CASE_KEYS)} ('path' required), got {item!r}")


def load_run_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate ``run.json``.

    Raises:
        InputError: missing/unreadable file, invalid JSON, unknown keys or bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "run config not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"not a readable JSON file ({error})") from None
    if not isinstance(data, dict):
        raise InputError(path, "run config must be a JSON object")
    return RunConfig.from_dict(data, base_dir=path.parent.resolve(), source=str(path))
