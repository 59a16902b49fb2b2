"""`autopaint-cli`: everything the app does, headless, for batch work.

Each subcommand gathers arguments and calls one core function; no computation lives here.
Bad input ends with one line ``error: <file>: <problem>`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autopaint_app.core.errors import InputError
from autopaint_app.core.presets import OOI_REGIONS, SITE_REGION

EXIT_BAD_INPUT = 2


def _add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopaint-cli",
        description="AutoPaint Studio: unsupervised PET/CT tumour segmentation by self-inpainting.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the main job on the embedded demo case")
    demo.add_argument("--out", type=Path, default=None, help="output folder (default: ./autopaint-demo-output)")
    _add_overwrite(demo)

    phantom = commands.add_parser("phantom", help="write a synthetic PET-CT phantom case")
    phantom.add_argument("--site", choices=["lung", "hn"], required=True)
    phantom.add_argument("--seed", type=int, required=True)
    phantom.add_argument("--healthy", action="store_true", help="no tumours (training data)")
    phantom.add_argument("--slices", type=int, default=None, help="number of axial slices (default: site's)")
    phantom.add_argument("--in-plane", type=int, default=512, help="CT in-plane size in pixels (default 512)")
    phantom.add_argument("--out", type=Path, required=True, help="output case folder")
    _add_overwrite(phantom)

    convert = commands.add_parser("convert", help="any supported volume or DICOM folder to NIfTI")
    convert.add_argument("input", type=Path)
    convert.add_argument("--out", type=Path, required=True, help="output .nii.gz")
    convert.add_argument("--suv", action="store_true", help="convert a DICOM PET to body-weight SUV")
    convert.add_argument("--weight", type=float, default=None, help="patient weight in kg (overrides the tag)")
    convert.add_argument("--dose", type=float, default=None, help="injected dose in MBq (overrides the tag)")
    convert.add_argument("--series", default=None, help="DICOM SeriesInstanceUID when a folder holds several")
    _add_overwrite(convert)

    ooi = commands.add_parser("ooi", help="organ-of-interest mask in the CT geometry")
    ooi.add_argument("--ct", type=Path, required=True)
    ooi.add_argument("--pet", type=Path, default=None, help="PET (SUV file or DICOM folder), refines the HN box")
    ooi.add_argument("--site", choices=["lung", "hn"], required=True)
    _add_ooi_region(ooi)
    ooi.add_argument("--out", type=Path, required=True)
    _add_overwrite(ooi)

    check = commands.add_parser("check", help="load and validate every case in folders (geometry, overlap, labels)")
    check.add_argument("paths", type=Path, nargs="+", help="case folders, cohort folders or dataset roots")

    train = commands.add_parser("train", help="train an inpainting network (JSON lines on stdout; needs torch)")
    train.add_argument("--config", type=Path, required=True, help="run.json")
    train.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")

    export = commands.add_parser("export", help="training checkpoint to ONNX + model card (needs torch)")
    export.add_argument("--checkpoint", type=Path, required=True, help="best.pt or latest.pt of a run")
    export.add_argument("--out", type=Path, required=True, help="models/<site>_<modality>_<arch>.onnx")
    export.add_argument("--val-set", type=Path, default=None, help="the run's val_set.npz (default: beside checkpoints/)")
    _add_overwrite(export)

    quantize = commands.add_parser("quantize", help="int8 twin of a float model for fast mode (records the "
                                                    "pipeline's inputs on a calibration case)")
    quantize.add_argument("--model", type=Path, required=True, help="float ONNX model with its .json card beside it")
    quantize.add_argument("--calibration-case", type=Path, required=True,
                          help="case folder (of the model's site) whose fast-mode crops calibrate the int8 ranges; "
                               "not a case you will evaluate on")
    quantize.add_argument("--slices", default=None, metavar="A:B", help="slices of that case to run (default: all)")
    quantize.add_argument("--crops", type=int, default=96, help="crops that calibrate (default 96)")
    quantize.add_argument("--check-crops", type=int, default=96,
                          help="other crops on which the twin is compared with the float model (default 96)")
    quantize.add_argument("--val-set", type=Path, default=None,
                          help="the float model's training-run val_set.npz, to validate the twin like the float card")
    quantize.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: one per core)")
    quantize.add_argument("--out", type=Path, default=None, help="default: <model>.int8.onnx beside the model")
    _add_overwrite(quantize)

    _add_segment_parsers(commands)
    _add_model_eval_parser(commands)

    info = commands.add_parser("info", help="geometry, value range and modality guess as JSON")
    info.add_argument("path", type=Path, help="volume file, DICOM folder or case folder")
    return parser


def _on_off(text: str) -> bool:
    """``on``/``off`` on the command line, as a bool."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def _add_ooi_region(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ooi-region", choices=list(OOI_REGIONS), default=SITE_REGION,
                        help="automatic organ of interest: site = the site's organ (lung fields, neck; a case's "
                             "ooi.nii.gz), body = the whole body in the field of view, for lesions elsewhere "
                             "(limbs, abdomen) or volumes cropped around a lesion (default site; --ooi wins)")


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `segment` and `evaluate`."""
    parser.add_argument("--site", choices=["lung", "hn"], required=True)
    parser.add_argument("--modality", choices=["ct", "pet", "petct"], required=True,
                        help="channels the network sees")
    _add_ooi_region(parser)
    parser.add_argument("--model", type=Path, default=None,
                        help="ONNX model (default: models/<site>_<modality>_gconv_lap.onnx, or its int8 twin, "
                             "see --precision)")
    parser.add_argument("--mode", choices=["fast", "reference"], default="fast",
                        help="fast: local crops, batched (default); reference: the paper's whole-slice passes")
    parser.add_argument("--precision", choices=["auto", "float32", "int8"], default="auto",
                        help="which default model: auto (default) = the int8 twin (<name>.int8.onnx) in fast mode "
                             "when one is installed, the float model in reference mode; ignored with --model")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    tuning = parser.add_argument_group("pipeline parameters (default: the paper's for the site)")
    tuning.add_argument("--radius", type=int, default=None, help="sliding-circle radius, px (lung 27, hn 15)")
    tuning.add_argument("--stride", type=int, default=None, help="circle stride, px (lung 15, hn 8)")
    tuning.add_argument("--min-radius", type=float, default=None,
                        help="minimum tumour radius, px (lung 7, hn 4)")
    tuning.add_argument("--top-k", type=int, default=None, help="candidate circles per slice at most (3)")
    tuning.add_argument("--outlier-k", type=float, default=None,
                        help="a candidate stands out from its slice by this many robust SDs (2)")
    tuning.add_argument("--volume-k", type=float, default=None,
                        help="a candidate also stands out from all circles of the run by this many robust SDs "
                             "(4; 0 = off, the paper's per-slice rule alone)")
    tuning.add_argument("--search", choices=["exhaustive", "coarse-to-fine"], default=None,
                        help="fast mode's circle search (default coarse-to-fine: a quarter of the circles, then the "
                             "neighbourhoods of possible outliers, ~2.4x faster, same cohort Dice; exhaustive: every "
                             "circle, the paper's decisions, which a small tumour's slice may need)")
    tuning.add_argument("--complete-neighbours", type=_on_off, default=None, metavar="{on,off}",
                        help="coarse-to-fine: search the slices next to a slice with candidates with every circle "
                             "(default on; a tumour continues along z)")
    tuning.add_argument("--context", type=float, default=None,
                        help="fast mode's crop context around a circle, fraction of the radius (0.7)")


def _add_segment_parsers(commands) -> None:
    segment = commands.add_parser("segment", help="segment tumours in one case by autoinpainting")
    segment.add_argument("--case", type=Path, default=None, help="case folder (instead of --ct/--pet)")
    segment.add_argument("--ct", type=Path, default=None, help="CT (file or DICOM folder)")
    segment.add_argument("--pet", type=Path, default=None, help="PET (SUV file or DICOM folder)")
    _add_pipeline_options(segment)
    segment.add_argument("--threshold", type=float, default=None, help="residual threshold of the mask (default 0.1)")
    segment.add_argument("--min-lesion-ml", type=float, default=None,
                         help="drop lesions (3-D) smaller than this from the mask, in ml (default 0 = keep all, as "
                              "the paper; the residual is unchanged)")
    segment.add_argument("--slices", default=None, help="A:B, only these axial slices (half-open, 0-based)")
    segment.add_argument("--ooi", type=Path, default=None, help="organ-of-interest mask on the CT grid")
    segment.add_argument("--out", type=Path, required=True, help="output folder")
    _add_overwrite(segment)

    baseline = commands.add_parser("baseline", help="clinical SUV threshold segmentation inside the OOI")
    baseline.add_argument("--pet", type=Path, required=True, help="PET (SUV file or DICOM folder)")
    baseline.add_argument("--ct", type=Path, default=None, help="CT; the mask goes on its grid")
    baseline.add_argument("--site", choices=["lung", "hn"], required=True)
    baseline.add_argument("--method", choices=["suv2.5", "suv41"], required=True,
                          help="SUV >= 2.5, or 41 %% of each lesion's SUVmax")
    baseline.add_argument("--ooi", type=Path, default=None, help="organ-of-interest mask (default: automatic)")
    _add_ooi_region(baseline)
    baseline.add_argument("--out", type=Path, required=True, help="output mask (.nii.gz)")
    _add_overwrite(baseline)

    evaluate = commands.add_parser("evaluate", help="score the pipeline on labelled cases (the paper's table)")
    evaluate.add_argument("--cases", type=Path, nargs="+", required=True, help="case or cohort folders")
    _add_pipeline_options(evaluate)
    evaluate.add_argument("--out", type=Path, required=True, help="output folder (CSV, JSON, PNG; cases/ holds "
                                                                  "each finished case)")
    evaluate.add_argument("--target-uptake", type=float, default=None, metavar="F",
                          help="score against the avid part of each label: voxels with SUV >= F x their lesion's "
                               "SUVmax (e.g. 0.41 for sarcomas whose GTV holds a necrotic core); default: the whole "
                               "label. With --resume, stored cases are re-scored from their residuals, no inference")
    evaluate.add_argument("--resume", action="store_true",
                          help="reuse the cases already stored in --out/cases (computed with the same options and "
                               "model) and compute the rest; the table is rewritten")
    evaluate.add_argument("--shard", default=None, metavar="K/N",
                          help="compute only cases K, K+N, K+2N, ... (e.g. 1/2 and 2/2 in two processes into the "
                               "same --out); the last shard to finish writes the table")
    _add_overwrite(evaluate)


def _add_model_eval_parser(commands) -> None:
    parser = commands.add_parser("model-eval", help="held-out inpainting quality of a model vs biharmonic")
    parser.add_argument("--model", type=Path, required=True, help="ONNX model with its .json card beside it")
    parser.add_argument("--cases", type=Path, nargs="+", required=True, help="case or cohort folders")
    parser.add_argument("--healthy", action="store_true",
                        help="cases without a tumour label are tumour free (else they are skipped)")
    parser.add_argument("--synthetic-pet", action="store_true",
                        help="CT-only cases get a PET synthesised from their CT (tissue background SUV, 6 mm blur, "
                             "noise; no organ uptake), so a PET-CT model can be scored on real CTs: the CT "
                             "channel's row is the real-data figure")
    parser.add_argument("--site", choices=["lung", "hn"], required=True)
    parser.add_argument("--crops", type=int, default=32, help="crops (with holes) per case (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the crops and holes (default 0)")
    parser.add_argument("--crop", type=int, default=None, help="crop side in px (default: the card's train_crop)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: one per core)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file with every figure (per crop too)")
    _add_overwrite(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from autopaint_app import commands

    handler = getattr(commands, f"run_{args.command.replace('-', '_')}")
    try:
        result = handler(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    try:
        if result is not None:
            print(json.dumps(result, indent=2))
    except BrokenPipeError:  # e.g. `| head`: the reader left, nothing more to say
        sys.stderr.close()
    failed = isinstance(result, dict) and result.get("failed")
    return EXIT_BAD_INPUT if failed else 0


if __name__ == "__main__":
    sys.exit(main())
