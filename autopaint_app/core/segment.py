"""One case segmented end to end: load, prepare, organ of interest, autoinpainting, output volumes.

The job behind ``autopaint-cli segment`` and ``evaluate`` (and the GUI's "segment" action):

    job = segment_case(case, "lung", "petct", predictor)
    segmentation = yield from job   # Progress items: "prepare", "ooi", then the pipeline's own

:func:`segment_case` is a generator whose *return value* is a :class:`Segmentation`
(:func:`run_to_end` runs it without progress; :func:`drive` with a callback per item). Nothing is written here; :func:`write_outputs` writes every
output file at the end, all or nothing.

Output volumes (all on the reference grid: the CT's, the PET's without a CT, geometry copied
exactly): ``mask`` (uint8, ``residual > threshold``), ``residual`` (float32, unit range),
``inpainted_<channel>`` (float32 in HU / SUV). The inpainted volumes keep the *original* values
wherever the inpainting changed nothing, so values outside the network's windows (bone above
500 HU, SUV above 12) survive; inside the inpainted regions they are the network's values mapped
back from the window.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Generator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from autopaint_app.core.autopaint import AutopaintResult, PipelineParams, Progress, run_autopaint
from autopaint_app.core.case import Case
from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.io import Volume, publish_staged, write_json, write_volume
from autopaint_app.core.lesions import lesion_table
from autopaint_app.core.ooi import BODY_REGION, SITE_REGION, compute_ooi
from autopaint_app.core.preprocess import PreparedCase, WorkingGrid, prepare_case, resample_pet_to_ct
from autopaint_app.core.presets import MODALITY_CHANNELS, preset_for_model

SUMMARY_NAME = "summary.json"


def output_names(modality: str) -> list[str]:
    """File names ``segment`` writes for a modality (volumes, then the summary)."""
    return (["mask.nii.gz", "residual.nii.gz"] + [f"inpainted_{c}.nii.gz" for c in MODALITY_CHANNELS[modality]]
            + [SUMMARY_NAME])


@dataclass(eq=False)
class Segmentation:
    """A finished segmentation job (everything in memory).

    Attributes:
        case: the loaded case; ``prepared``: network input and grids; ``ooi``: boolean ``(z, y, x)``
            on the reference grid; ``result``: the pipeline's :class:`AutopaintResult`.
        timings: wall seconds per stage (``prepare``, ``ooi``, ``autopaint``; callers add more).
        warnings: messages of warnings raised while preparing (e.g. an unusually small lung).
    """

    case: Case
    prepared: PreparedCase
    ooi: np.ndarray
    result: AutopaintResult
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    @property
    def reference(self) -> Volume:
        return self.prepared.reference

    def mask(self, threshold: float | None = None) -> np.ndarray:
        """Boolean tumour mask ``(z, y, x)`` on the reference grid (``residual > threshold``)."""
        return self.result.mask(threshold)

    def output_volumes(self, threshold: float | None = None) -> dict[str, Volume]:
        """``{file name: Volume}`` of every output volume (see the module docstring)."""
        reference = self.reference
        volumes = {"mask.nii.gz": reference.with_array(self.mask(threshold).astype(np.uint8)),
                   "residual.nii.gz": self.result.residual_volume()}
        for name, volume in physical_inpainted(self.result, self.prepared).items():
            volumes[f"inpainted_{name}.nii.gz"] = volume
        return volumes

    def lesions(self, threshold: float | None = None) -> list[dict]:
        """:func:`~autopaint_app.core.lesions.lesion_table` of the mask (SUV statistics when there is a PET)."""
        suv = self.prepared.suv.array if self.prepared.suv is not None else None
        table = lesion_table(self.mask(threshold), suv, self.reference.spacing)
        return [{key: _rounded(value) for key, value in asdict(row).items()} for row in table]


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, tuple):
        return [_rounded(v) for v in value]
    return value


def load_pet_on_reference(case: Case) -> Volume | None:
    """The case's PET in SUV on the reference grid (None without PET or when it is not in SUV)."""
    if case.pet is None or case.pet_units != "SUV":
        return None
    return case.pet if case.ct is None else resample_pet_to_ct(case.pet, case.ct)


def circle_radius_mm(case: Case, params: PipelineParams) -> float:
    """The sliding circle's radius in mm on this case's working grid."""
    return params.circle_radius_px * WorkingGrid.for_volume(case.reference).pixel_size_mm


def case_ooi(case: Case, site: str, suv_on_reference: Volume | None, ooi_path: str | os.PathLike | None,
             caught: list, region: str = SITE_REGION, circle_radius_mm: float | None = None) -> np.ndarray:
    """OOI on the reference grid: ``ooi_path``; else the whole body when ``region`` is ``"body"``;
    else the case's own OOI file; else the site's automatic one.

    Asking for the whole body overrides a case's OOI file (that file is a site organ someone drew);
    ``circle_radius_mm`` (the run's circle) is its margin from the edge of the field of view.

    Raises:
        InputError: the OOI is empty (names the image and suggests ``--ooi`` / ``--ooi-region body``).
    """
    if ooi_path is None and region == SITE_REGION and case.ooi is not None:
        mask = case.ooi.array > 0
    else:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            mask = compute_ooi(site, ct=case.ct, pet=suv_on_reference, user_mask_path=ooi_path, region=region,
                               circle_radius_mm=circle_radius_mm)
        caught.extend(str(w.message) for w in seen)
    if not mask.any():
        what = "body" if region == BODY_REGION and ooi_path is None else f"{site} organ of interest"
        raise InputError(case.reference.source or case.case_id,
                         f"no {what} found in this image; pass --ooi MASK"
                         + ("" if region == BODY_REGION else " or --ooi-region body"))
    return mask


def segment_case(case: Case, site: str, modality: str, predictor, params: PipelineParams | None = None,
                 slices: Iterable[int] | None = None, ooi_path: str | os.PathLike | None = None,
                 ooi_region: str = SITE_REGION) -> Generator[Progress, None, Segmentation]:
    """Segment one loaded case, yielding progress; the generator's return value is the :class:`Segmentation`.

    Args:
        case: from :func:`~autopaint_app.core.case.load_case` (PET in SUV when the modality uses it).
        site: ``"lung"`` or ``"hn"``; ``modality``: ``"ct"``, ``"pet"`` or ``"petct"``.
        predictor: the inpainting network (an :class:`~autopaint_app.core.inpaint_model.InpaintModel`) or a fake.
        params: pipeline parameters (default: the paper's for the site).
        slices: reference-grid slice indices to process (default: every slice with OOI).
        ooi_path: a user OOI mask file on the reference grid.
        ooi_region: ``"site"`` (the site's organ, or the case's OOI file) or ``"body"`` (whole body).

    Yields:
        ``Progress`` with stage ``"prepare"`` and ``"ooi"`` (before the pipeline), then the pipeline's items.

    Raises:
        InputError: the modality needs an image the case lacks, a PET not in SUV, an empty OOI,
            slice indices outside the volume, a model whose channels do not fit.
    """
    preset = preset_for_model(site, getattr(predictor, "card", None))  # the windows the model was trained with
    if "pet" in MODALITY_CHANNELS[modality] and case.pet is not None and case.pet_units != "SUV":
        raise InputError(case.files.pet, f"PET must be in SUV for modality {modality} (it holds {case.pet_units})")
    timings, caught, started = {}, [], time.perf_counter()
    yield Progress("prepare", None, 0, 0, 0, 0.0)
    prepared = prepare_case(case.ct, case.pet if "pet" in MODALITY_CHANNELS[modality] else None, preset, modality)
    suv = prepared.suv if prepared.suv is not None else load_pet_on_reference(case)
    if prepared.suv is None and suv is not None:
        prepared = PreparedCase(prepared.reference, prepared.ct_hu, suv, prepared.grid, prepared.channels,
                                prepared.modality, prepared.preset)  # SUV kept for lesion statistics only
    timings["prepare"] = time.perf_counter() - started
    yield Progress("ooi", None, 0, 0, 0, time.perf_counter() - started)
    mark = time.perf_counter()
    ooi = case_ooi(case, site, suv, ooi_path, caught, ooi_region, circle_radius_mm(case, params or
                                                                                  PipelineParams.from_preset(preset)))
    timings["ooi"] = time.perf_counter() - mark
    wanted = None if slices is None else list(slices)
    depth = prepared.reference.shape[0]
    if wanted is not None and (not wanted or any(not 0 <= z < depth for z in wanted)):
        raise InputError("--slices", f"slices must lie in [0, {depth}) for this image, got "
                                     f"{wanted[0] if wanted else ''}..{wanted[-1] + 1 if wanted else ''}")
    mark = time.perf_counter()
    result = yield from run_autopaint(prepared, ooi, predictor, params, wanted)
    timings["autopaint"] = time.perf_counter() - mark
    return Segmentation(case, prepared, ooi, result, timings, caught)


def drive(job: Generator, on_item=None) -> object:
    """Exhaust a generator, calling ``on_item(item)`` for each yielded item; return its return value."""
    while True:
        try:
            item = next(job)
        except StopIteration as stop:
            return stop.value
        if on_item is not None:
            on_item(item)


def run_to_end(job: Generator) -> object:
    """Exhaust a generator without progress reporting and return its return value."""
    return drive(job)


def physical_inpainted(result: AutopaintResult, prepared: PreparedCase) -> dict[str, Volume]:
    """Inpainted channels on the reference grid in HU / SUV, original values where nothing changed."""
    windowed = result.inpainted_volumes(physical=True)
    changed = np.zeros(result.ooi.shape, dtype=np.uint8)
    for z in result.kept_slices():
        s = result.slices[z]
        before = result.channels[z][(slice(None),) + s.window.slices]
        changed[z][s.window.slices] |= np.any(s.inpainted != before, axis=0)
    changed_case = result.grid.from_working(changed, order=0).array > 0
    originals = {"ct": prepared.ct_hu, "pet": prepared.suv}
    volumes = {}
    for name, volume in windowed.items():
        original = originals[name].array.astype(np.float32)
        volumes[name] = volume.with_array(np.where(changed_case, volume.array, original).astype(np.float32))
    return volumes


def refuse_existing(out_dir: str | os.PathLike, names: Iterable[str], overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` for the first existing output unless ``overwrite`` (call before the work)."""
    if overwrite:
        return
    for name in names:
        if (Path(out_dir) / name).exists():
            raise OutputExistsError(Path(out_dir) / name)


def write_outputs(out_dir: str | os.PathLike, volumes: dict[str, Volume], documents: dict[str, dict],
                  overwrite: bool = False) -> list[Path]:
    """Write volumes and JSON documents into ``out_dir``, all or nothing.

    Every file is first written (atomically) under a hidden staging name in ``out_dir``; only when
    all are written are they renamed to their final names. Any failure or interruption (Ctrl-C)
    before that removes the staged files, so no partial set of outputs is ever left behind.

    Raises:
        OutputExistsError: an output exists and ``overwrite`` is False (checked before writing).
        InputError: the folder cannot be created or written.
    """
    out = Path(out_dir)
    names = list(volumes) + list(documents)
    refuse_existing(out, names, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create output folder ({exc.strerror})") from None
    tag = f".staging-{os.getpid()}-"
    staged: dict[Path, Path] = {}
    try:
        for name, volume in volumes.items():
            staged[out / name] = write_volume(volume, out / (tag + name), overwrite=True)
        for name, document in documents.items():
            staged[out / name] = write_json(document, out / (tag + name), overwrite=True)
    except BaseException:  # KeyboardInterrupt too: an interrupted run leaves no partial set
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        raise
    publish_staged(staged)
    return list(staged)
