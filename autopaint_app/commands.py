"""The work behind each `autopaint-cli` subcommand: gather inputs, call core, write outputs.

Each ``run_<command>(args)`` returns a JSON-ready dict (printed by the CLI) and raises
:class:`~autopaint_app.core.errors.InputError` for anything the user can fix.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from autopaint_app.core import baselines, metrics
from autopaint_app.core.case import case_from_paths, find_cases, find_cases_in, load_case
from autopaint_app.core.describe import describe_volume
from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.io import Volume, read_volume, write_json, write_mask, write_volume
from autopaint_app.core.ooi import BODY_REGION, compute_ooi
from autopaint_app.core.phantom import PHANTOM_FILES, ensure_demo_case, make_phantom, write_phantom
from autopaint_app.core.preprocess import resample_pet_to_ct
from autopaint_app.model_eval_command import run_model_eval  # noqa: F401 (dispatched by name)
from autopaint_app.segment_commands import run_baseline, run_evaluate, run_segment  # noqa: F401 (dispatched by name)


def run_phantom(args) -> dict:
    for name in (*PHANTOM_FILES, "phantom.json"):  # refuse before the (slow at 512 px) generation, not after it
        _refuse_existing(args.out / name, args.overwrite)
    try:
        phantom = make_phantom(args.site, args.seed, healthy=args.healthy, n_slices=args.slices,
                               in_plane=args.in_plane)
    except ValueError as exc:  # bad --seed / --slices / --in-plane: a user error, not a traceback
        raise InputError("phantom options", str(exc)) from None
    out = write_phantom(phantom, args.out, overwrite=args.overwrite)
    return {"out": str(out), "ct_shape_zyx": list(phantom.ct.shape), "tumours": len(phantom.tumours),
            "label_voxels": int(np.count_nonzero(phantom.label.array))}


def run_convert(args) -> dict:
    _refuse_existing(args.out, args.overwrite)
    if args.suv and args.input.is_dir():
        from autopaint_app.core.suv import read_pet_suv  # imported late: SUV needs pydicom

        volume = read_pet_suv(args.input, weight_kg=args.weight, dose_mbq=args.dose, series_uid=args.series)
    elif args.suv:
        case = load_case(case_from_paths(pet=args.input, pet_units="BQML"), pet_suv=True,
                         weight_kg=args.weight, dose_mbq=args.dose)
        volume = case.pet
    else:
        if args.weight is not None or args.dose is not None:
            raise InputError(args.input, "--weight/--dose only apply with --suv")
        volume = read_volume(args.input, series_uid=args.series)
    write_volume(volume, args.out, overwrite=args.overwrite)
    result = {"out": str(args.out), **describe_volume(volume)}
    if "suv" in volume.meta:
        result["suv_conversion"] = volume.meta["suv"]
    return result


def _pet_on_ct(pet_path: Path | None, ct: Volume | None) -> Volume | None:
    """PET in SUV (DICOM folders converted from their tags) resampled onto the CT grid."""
    if pet_path is None:
        return None
    case = load_case(case_from_paths(pet=pet_path), pet_suv=True)
    return case.pet if ct is None else resample_pet_to_ct(case.pet, ct)


def run_ooi(args) -> dict:
    _refuse_existing(args.out, args.overwrite)
    ct = read_volume(args.ct)
    mask = compute_ooi(args.site, ct=ct, pet=_pet_on_ct(args.pet, ct), region=args.ooi_region)
    if not mask.any():
        what = "body" if args.ooi_region == BODY_REGION else f"{args.site} organ of interest"
        raise InputError(args.ct, f"no {what} found in this CT")
    write_mask(mask, ct, args.out, overwrite=args.overwrite)
    return {"out": str(args.out), "voxels": int(mask.sum()), "volume_ml": float(mask.sum() * ct.voxel_volume_ml)}


def run_info(args) -> dict:
    path: Path = args.path
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir() and not _holds_dicom(path):
        cases = find_cases(path)
        if not cases:
            raise InputError(path, "no volume, DICOM series or known case layout found in this folder")
        return {"folder": str(path), "cases": [_case_files_json(c) for c in cases]}
    return describe_volume(read_volume(path))


def run_check(args) -> dict:
    """Load every case found; one line per problem on stderr, exit 2 when any case fails."""
    import sys

    report = {"cases": [], "failed": 0}
    for files in find_cases_in(args.paths):
        try:
            case = load_case(files)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            report["cases"].append({"case_id": files.case_id, "ok": False, "error": str(exc)})
            report["failed"] += 1
            continue
        report["cases"].append({"case_id": case.case_id, "ok": True, "layout": files.layout,
                                "shape_zyx": list(case.reference.shape), "pet_units": case.pet_units,
                                "label_voxels": None if case.label is None else int(case.label.array.sum())})
    return report


def _holds_dicom(folder: Path) -> bool:
    import SimpleITK as sitk

    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _case_files_json(files) -> dict:
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(files).items()}


def run_demo(args) -> dict:
    """The main job on the embedded demo case: AutoPaint (when a lung PET-CT model is installed) and the
    clinical SUV baselines, each scored against the phantom's ground truth."""
    started = time.perf_counter()
    out = args.out or Path("autopaint-demo-output") / time.strftime("run-%Y%m%d-%H%M%S")
    outputs = ["ooi.nii.gz", "pet_suv_on_ct.nii.gz", *(f"baseline_{n}.nii.gz" for n in baselines.CLI_BASELINES),
               "summary.json"]
    for name in outputs:  # refuse before the work, and before any file of a previous run is replaced
        _refuse_existing(out / name, args.overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create output folder ({exc.strerror})") from None
    case = load_case(ensure_demo_case())
    suv = resample_pet_to_ct(case.pet, case.ct)
    ooi = compute_ooi("lung", ct=case.ct, pet=suv)
    truth = case.label.array.astype(bool)
    write_mask(ooi, case.ct, out / "ooi.nii.gz", overwrite=args.overwrite)
    write_volume(suv, out / "pet_suv_on_ct.nii.gz", overwrite=args.overwrite)
    scores = {"ooi_tumour_coverage": float((ooi & truth).sum() / max(truth.sum(), 1))}
    for name, method in baselines.CLI_BASELINES.items():
        mask = method(suv.array, ooi)
        write_mask(mask, case.ct, out / f"baseline_{name}.nii.gz", overwrite=args.overwrite)
        scores[name] = {"dice": metrics.dice(mask, truth), "precision": metrics.precision(mask, truth),
                        "recall": metrics.recall(mask, truth)}
    scores["autopaint"] = _demo_autopaint(case.files.ct.parent, out, truth, args.overwrite)
    summary = {"case": str(case.files.ct.parent), "out": str(out), "ct_shape_zyx": list(case.ct.shape),
               "ooi_volume_ml": float(ooi.sum() * case.ct.voxel_volume_ml),
               "label_volume_ml": float(truth.sum() * case.ct.voxel_volume_ml),
               "scores": scores, "seconds": round(time.perf_counter() - started, 2)}
    write_json(summary, out / "summary.json", overwrite=args.overwrite)
    return summary


def _demo_autopaint(case_folder: Path, out: Path, truth: np.ndarray, overwrite: bool) -> dict:
    """`segment` on the demo case into ``out/autopaint`` with the default lung PET-CT model, scored."""
    from autopaint_app.cli import build_parser
    from autopaint_app.core.model_store import default_model_path

    try:
        model = default_model_path("lung", "petct", precision="auto", mode="fast")  # what segment would pick
    except InputError as exc:
        return {"skipped": f"no AutoPaint model installed ({exc.problem})"}
    argv = ["segment", "--case", str(case_folder), "--site", "lung", "--modality", "petct",
            "--model", str(model), "--out", str(out / "autopaint")] + (["--overwrite"] if overwrite else [])
    run = run_segment(build_parser().parse_args(argv))
    mask = read_volume(out / "autopaint" / "mask.nii.gz").array > 0
    return {"model": str(model), "seconds": run["seconds"], "dice": metrics.dice(mask, truth),
            "precision": metrics.precision(mask, truth), "recall": metrics.recall(mask, truth)}


def _require_torch() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxscript") is None:
        raise InputError(None, "training and export need torch and onnxscript: pip install -e '.[train]'")


def run_train(args) -> None:
    """Train from run.json; progress goes to stdout as JSON lines, so nothing is returned to print."""
    _require_torch()
    from autopaint_app.training.train import command_line, run_from_args  # torch stays out of the CLI import

    run_from_args(args.config, args.resume, command_line("autopaint-cli train", args.config, args.resume))
    return None


def run_export(args) -> dict:
    """Checkpoint -> ONNX + card; returns a summary of the card."""
    _require_torch()
    from autopaint_app.training.export import export_checkpoint  # torch stays out of the headless CLI import

    card = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite, val_set=args.val_set)
    return {"out": str(args.out), "card": str(Path(args.out).with_suffix(".json")), "params": card["params"],
            "onnx_parity_max_abs": card["onnx_parity_max_abs"], "validation": {
                key: card["validation"].get(key) for key in ("crops", "model", "biharmonic")}}


def run_quantize(args) -> None:
    """Float model -> int8 twin + card; prints what it measured (nothing returned to print)."""
    import importlib.util
    import shlex
    import sys

    if importlib.util.find_spec("onnx") is None:  # onnxruntime's quantisation tools need it; the app does not
        raise InputError(None, "quantize needs the onnx package: pip install -e '.[train]'")
    from autopaint_app.training.quantize import describe, int8_path_for, parse_slices, quantize_model
    command = "autopaint-cli " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["quantize"] else None
    for name in ("crops", "check_crops"):
        if getattr(args, name) < CALIBRATION_MINIMUM:
            raise InputError(f"--{name.replace('_', '-')}", f"must be at least {CALIBRATION_MINIMUM}, "
                                                            f"got {getattr(args, name)}")
    card = quantize_model(args.model, args.calibration_case, args.out, slices=parse_slices(args.slices),
                          crops=args.crops, check_crops=args.check_crops, val_set=args.val_set,
                          overwrite=args.overwrite, threads=args.threads, command=command)
    for line in describe(card, Path(args.out) if args.out is not None else int8_path_for(args.model)):
        print(line)
    return None


CALIBRATION_MINIMUM = 8  # one batch


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """Fail before any work is done when the output exists (the write would refuse it anyway)."""
    if Path(path).exists() and not overwrite:
        raise OutputExistsError(path)
