"""The work behind `autopaint-cli segment`, `baseline` and `evaluate` (re-exported by ``commands``).

Same contract as :mod:`autopaint_app.commands`: ``run_<command>(args)`` returns a JSON-ready dict and
raises :class:`~autopaint_app.core.errors.InputError` for anything the user can fix. Outputs are
refused before any work and written only at the end, all or nothing, so Ctrl-C leaves none.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from autopaint_app.core import baselines
from autopaint_app.core.autopaint import PipelineParams
from autopaint_app.core.case import Case, case_from_paths, find_cases, load_case
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import write_mask
from autopaint_app.core.model_store import card_summary, default_model_path
from autopaint_app.core.presets import get_preset
from autopaint_app.core.segment import (drive, load_pet_on_reference, case_ooi, output_names, refuse_existing,
                                        segment_case, write_outputs)

# `baseline --method` names -> core.baselines.CLI_BASELINES keys (41 %: per lesion, see core.baselines).
BASELINE_METHODS = {"suv2.5": "suv_2.5", "suv41": "suvmax_41pct_per_lesion"}


def parse_slices(text: str | None) -> range | None:
    """``"A:B"`` (half-open, Python style; either side may be empty) -> ``range``; None stays None.

    ``A`` defaults to 0; an empty ``B`` is returned as ``range(A, -1)`` to mean "to the end"
    (resolved by :func:`resolve_slices` once the depth is known).

    Raises:
        InputError: anything but two non-negative integers around one colon with ``A < B``.
    """
    if text is None:
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0].strip() else 0
        stop = int(parts[1]) if parts[1].strip() else -1
    except ValueError:
        raise InputError("--slices", f"expected A:B (slice indices, e.g. 40:60), got {text!r}") from None
    if start < 0 or (stop != -1 and (stop < 0 or stop <= start)):
        raise InputError("--slices", f"expected 0 <= A < B, got {text!r}")
    return range(start, stop)


def resolve_slices(wanted: range | None, depth: int) -> range | None:
    """``wanted`` with an open end replaced by ``depth``."""
    if wanted is None:
        return None
    return range(wanted.start, depth) if wanted.stop == -1 else wanted


# ----------------------------------------------------------------------------------- inputs
def case_files_from_args(args):
    """``--case DIR`` or ``--ct`` / ``--pet`` -> :class:`CaseFiles`."""
    case_dir = getattr(args, "case", None)
    if case_dir is not None:
        if args.ct is not None or args.pet is not None:
            raise InputError(case_dir, "give either --case or --ct/--pet, not both")
        found = find_cases(case_dir)
        if len(found) != 1:
            problem = "no PET/CT case found" if not found else f"holds {len(found)} cases; choose one"
            raise InputError(case_dir, problem)
        return found[0]
    if args.ct is None and args.pet is None:
        raise InputError("--case", "give a case folder (--case DIR) or images (--ct CT and/or --pet PET)")
    return case_from_paths(ct=args.ct, pet=args.pet)


def load_for_modality(files, modality: str) -> Case:
    """Load a case; PET must be (or become) SUV when the modality uses it."""
    uses_pet = modality in ("pet", "petct")
    needed = {"ct": files.ct, "pet": files.pet}
    for channel in ("ct", "pet") if modality == "petct" else (modality,):
        if needed[channel] is None:
            raise InputError(f"--{channel}", f"modality {modality} needs a {channel.upper()} image "
                                             f"({files.case_id} has none)")
    return load_case(files, pet_suv=True if uses_pet else None)


def load_predictor(model_path: Path | None, site: str, modality: str, threads: int | None, batch_size: int,
                   card_windows: bool = True, precision: str = "float32", mode: str = "fast"):
    """The ONNX model (``--model`` or the default for site and modality), checked against the preset.

    ``precision`` and ``mode`` choose between a default model and its int8 twin
    (:func:`~autopaint_app.core.model_store.default_model_path`); a ``--model`` is used as given.

    ``card_windows``: the caller normalises with the card's windows (``core.segment.segment_case``
    does, via ``presets.preset_for_model``), so a model trained with custom windows is fine; False
    for callers that prepare with the site preset (model-eval), which refuse such a model.
    """
    from autopaint_app.core.inpaint_model import InpaintModel  # onnxruntime only when a model is needed

    path = model_path if model_path is not None else default_model_path(site, modality, precision=precision,
                                                                         mode=mode)
    model = InpaintModel.load(path, threads=threads, batch_size=batch_size)
    preset = get_preset(site)
    if model.card.site != site:
        raise InputError(path, f"model was trained for site {model.card.site}, not {site}")
    if not card_windows and (model.card.ct_window, model.card.suv_window) != (preset.ct_window, preset.suv_window):
        raise InputError(path, f"model windows CT {model.card.ct_window} / SUV {model.card.suv_window} differ "
                               f"from the {site} preset's {preset.ct_window} / {preset.suv_window}")
    return model


def model_facts(predictor) -> dict:
    """What to record about the predictor in a summary."""
    card = getattr(predictor, "card", None)
    if card is None:
        return {"path": None, "name": type(predictor).__name__, "provider": None}
    return {"path": str(predictor.path), "provider": predictor.provider, "card": card_summary(card)}


# CLI option -> PipelineParams field, for the options a user may tune.
TUNABLE_OPTIONS = {"threshold": "threshold", "radius": "circle_radius_px", "stride": "circle_stride_px",
                   "min_radius": "min_tumour_radius_px", "top_k": "top_k", "outlier_k": "outlier_k",
                   "volume_k": "volume_outlier_k",
                   "search": "circle_search", "context": "crop_context_ratio",
                   "complete_neighbours": "complete_neighbours", "min_lesion_ml": "min_lesion_ml"}


def pipeline_params(args) -> PipelineParams:
    """The site preset's parameters with the command line's overrides (bad values: InputError)."""
    overrides = {"mode": args.mode}
    for option, name in TUNABLE_OPTIONS.items():
        if getattr(args, option, None) is not None:
            overrides[name] = getattr(args, option)
    try:
        return PipelineParams.from_preset(get_preset(args.site), **overrides)
    except ValueError as exc:
        raise InputError("pipeline parameters", str(exc)) from None


class ProgressBar:
    """A tqdm bar on stderr fed with the pipeline's ``Progress`` items (slices done / total)."""

    def __init__(self, enabled: bool | None, description: str = ""):
        self.enabled, self.description, self.bar = enabled, description, None

    def __call__(self, progress) -> None:
        from tqdm import tqdm

        if progress.slices_total == 0:
            return
        if self.bar is None:  # per mille of the run (Progress.fraction weighs the search and decision phases)
            self.bar = tqdm(total=1000, unit="‰", file=sys.stderr, desc=self.description,
                            disable=None if self.enabled is None else not self.enabled, leave=False,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
        self.bar.set_postfix_str(f"{progress.stage}, {progress.holes_inpainted} holes", refresh=False)
        # redraws at most every 0.1 s (tqdm's mininterval)
        self.bar.update(round(1000 * progress.fraction) - self.bar.n)
        if progress.stage in ("screened", "searched", "slice", "done"):
            self.bar.refresh()                                # a finished slice always shows

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_job(job, bar: ProgressBar):
    try:
        return drive(job, bar)
    finally:
        bar.close()
        job.close()


# ----------------------------------------------------------------------------------- segment
def run_segment(args) -> dict:
    """Segment one case; write mask, residual, inpainted channels and summary.json into ``--out``."""
    started = time.perf_counter()
    refuse_existing(args.out, output_names(args.modality), args.overwrite)   # before any work
    wanted = parse_slices(args.slices)
    params = pipeline_params(args)
    files = case_files_from_args(args)
    case = load_for_modality(files, args.modality)
    load_s = time.perf_counter() - started
    predictor = load_predictor(args.model, args.site, args.modality, args.threads, params.batch_size,
                               precision=args.precision, mode=params.mode)
    slices = resolve_slices(wanted, case.reference.shape[0])
    job = segment_case(case, args.site, args.modality, predictor, params, slices, args.ooi, args.ooi_region)
    segmentation = run_job(job, ProgressBar(False if args.no_progress else None, "segment"))
    mark = time.perf_counter()
    volumes = segmentation.output_volumes()
    lesions = segmentation.lesions()
    outputs_s = time.perf_counter() - mark
    summary = segment_summary(args, segmentation, predictor, lesions)
    summary["timings_s"] = {"load": load_s, **segmentation.timings, **segmentation.result.stats["seconds"],
                            "outputs": outputs_s}
    summary["timings_s"]["total"] = time.perf_counter() - started
    summary["timings_s"] = {k: round(v, 3) for k, v in summary["timings_s"].items()}
    write_outputs(args.out, volumes, {"summary.json": summary}, overwrite=args.overwrite)
    return {"out": str(args.out), "files": sorted(output_names(args.modality)), "lesions": len(lesions),
            "mask_volume_ml": summary["mask"]["volume_ml"], "slices_kept": summary["slices_kept"],
            "seconds": summary["timings_s"]["total"]}


def segment_summary(args, segmentation, predictor, lesions: list[dict]) -> dict:
    result, reference = segmentation.result, segmentation.reference
    mask = segmentation.mask()
    preset = get_preset(args.site)
    return {
        "case_id": segmentation.case.case_id,
        "inputs": {"ct": _path(segmentation.case.files.ct), "pet": _path(segmentation.case.files.pet),
                   "ooi": _path(args.ooi)},
        "site": args.site, "modality": args.modality, "mode": result.params.mode,
        "preset": {"name": preset.name, "ct_window_hu": list(preset.ct_window),
                   "suv_window": list(preset.suv_window)},
        "params": result.params.to_dict(),
        "model": model_facts(predictor),
        "grid": {"shape_zyx": list(reference.shape), "spacing_xyz_mm": list(reference.spacing),
                 "working_grid_identity": bool(result.grid.is_identity)},
        "ooi": {"region": "user mask" if args.ooi is not None else args.ooi_region,
                "voxels": int(segmentation.ooi.sum()),
                "volume_ml": round(float(segmentation.ooi.sum() * reference.voxel_volume_ml), 3)},
        "slices_processed": sorted(result.slices),
        "circles_inpainted": int(sum(len(s.centres) for s in result.slices.values())),
        "holes_inpainted": result.stats["holes_inpainted"], "forward_passes": result.stats["forward_passes"],
        "slices_with_candidates": sorted(z for z, s in result.slices.items() if s.has_candidates),
        "slices_kept": result.kept_slices(),
        "mask": {"threshold": result.params.threshold, "voxels": int(mask.sum()),
                 "volume_ml": round(float(mask.sum() * reference.voxel_volume_ml), 3)},
        "lesions": lesions,
        "warnings": segmentation.warnings,
        "outputs": output_names(args.modality),
    }


def _path(value) -> str | None:
    return None if value is None else str(value)


# ----------------------------------------------------------------------------------- baseline
def run_baseline(args) -> dict:
    """A clinical SUV threshold segmentation inside the OOI, written on the CT grid (PET's without CT)."""
    refuse_existing(Path(args.out).parent, [Path(args.out).name], args.overwrite)
    if not Path(args.out).parent.is_dir():
        raise InputError(Path(args.out).parent, "output folder does not exist")
    files = case_from_paths(ct=args.ct, pet=args.pet)
    case = load_case(files, pet_suv=True)
    suv = load_pet_on_reference(case)
    caught: list[str] = []
    ooi = case_ooi(case, args.site, suv, args.ooi, caught, args.ooi_region)
    method = BASELINE_METHODS[args.method]
    mask = baselines.CLI_BASELINES[method](suv.array, ooi)
    reference = case.reference
    write_mask(mask, reference, args.out, overwrite=args.overwrite)
    return {"out": str(args.out), "method": method, "voxels": int(mask.sum()),
            "volume_ml": round(float(mask.sum() * reference.voxel_volume_ml), 3),
            "ooi_voxels": int(ooi.sum()), "grid": "CT" if case.ct is not None else "PET",
            "suv_max_in_ooi": round(float(suv.array[ooi].max()), 3), "warnings": caught}


def run_evaluate(args) -> dict:
    from autopaint_app.evaluate_command import run_evaluate as evaluate  # keeps matplotlib out of other commands

    return evaluate(args)

