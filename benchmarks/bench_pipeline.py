"""Speed of the autoinpainting pipeline: fast vs reference mode on one lung PET-CT phantom, one run.

Prints: fast-mode wall time on every OOI slice, reference-mode wall time measured on a subset of
slices and extrapolated to all of them (per inpainted hole; both modes inpaint the same holes), their
ratio, fast-vs-reference Dice on the subset, crops/s, achieved GFLOP/s against this machine's
float32 matmul GFLOP/s, peak RSS and time per stage. Figures only: nothing is asserted.

    /work/venv/bin/python benchmarks/bench_pipeline.py                  # shipped model or fake
    /work/venv/bin/python benchmarks/bench_pipeline.py --model models/lung_petct_gconv_lap.onnx
    /work/venv/bin/python benchmarks/bench_pipeline.py --slices 20 --reference-slices 2 --crop 128
    /work/venv/bin/python benchmarks/bench_pipeline.py --model M --reference-slices 2 --stress-k 1.5 --compare-exhaustive

Reference mode is run on a subset (half slices with candidates, half spread over the case, plus a
tumour slice) and extrapolated by holes to every slice: an exhaustive search inpaints every grid
circle, plus the union and its dilations on every slice with candidates. ``--stress-k`` repeats the
fast-vs-reference comparison with a lower outlier threshold, so that most slices have candidates and
the agreement covers the candidate, dilation and mask decisions, not only empty masks.

Without a model, a cost-matched fake runs instead: a ring-mean inpainter (local, so fast and
reference agree exactly) that also burns the FLOPs per pixel of the compact GConv-Lap network in a
float32 matmul, so its time scales with the pixels it is given like the real network's does.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autopaint_app.core import metrics  # noqa: E402
from autopaint_app.core.autopaint import PipelineParams, run_autopaint, working_ooi  # noqa: E402
from autopaint_app.core.autopaint_circles import circle_centres  # noqa: E402
from autopaint_app.core.model_store import default_model_path  # noqa: E402
from autopaint_app.core.ooi import compute_ooi  # noqa: E402
from autopaint_app.core.phantom import make_phantom  # noqa: E402
from autopaint_app.core.preprocess import prepare_case, resample_pet_to_ct  # noqa: E402
from autopaint_app.core.presets import LUNG  # noqa: E402
from benchmarks.flops import contract_shapes, conv_flops, matmul_gflops  # noqa: E402

# Conv FLOPs per input pixel of the compact GConv-Lap (widths 32..128, 2.18 M parameters), counted
# from its ONNX graph with flops.conv_flops() at 128 x 128 (2 x MACs): 2.22 GFLOP per 128-px crop.
COMPACT_FLOPS_PER_PIXEL = 1.354e5


class CostMatchedFake:
    """Ring-mean inpainting plus a float32 matmul of ``flops_per_pixel`` per input pixel."""

    size_multiple = 32

    def __init__(self, flops_per_pixel: float = COMPACT_FLOPS_PER_PIXEL, width: int = 256):
        self.flops_per_pixel = flops_per_pixel
        self.width = width
        self.weights = np.random.default_rng(0).standard_normal((width, width)).astype(np.float32) / width

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from scipy import ndimage as ndi

        pixels = image.shape[0] * image.shape[2] * image.shape[3]
        rows = max(1, int(round(pixels * self.flops_per_pixel / (2 * self.width * self.width))))
        work = np.ones((rows, self.width), dtype=np.float32)
        work @ self.weights                                   # the network's arithmetic, by volume only
        out = image.astype(np.float32, copy=True)
        for i in range(image.shape[0]):
            hole = mask[i, 0] < 0.5
            ring = ndi.binary_dilation(hole, iterations=4) & ~hole
            for c in range(image.shape[1]):
                out[i, c][hole] = image[i, c][ring].mean() if ring.any() else 0.0
        return out


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run(prepared, ooi, predictor, params, slices):
    """One pipeline run; returns (result, wall seconds)."""
    start = time.perf_counter()
    result = None
    for progress in run_autopaint(prepared, ooi, predictor, params, slices):
        result = progress.result
    return result, time.perf_counter() - start


def pick_reference_slices(fast, count: int, extra=()) -> list[int]:
    """Half slices with candidates (where decisions matter), half spread evenly over the OOI slices,
    plus ``extra`` (e.g. the phantom's tumour slices); every slice when ``count`` reaches their number
    (then the volume rule decides in both runs alike: a subset of fewer than
    ``autopaint.VOLUME_RULE_MIN_SLICES`` slices runs without it, unlike the whole fast run)."""
    processed = sorted(fast.slices)
    if count >= len(processed):
        return processed
    with_candidates = [z for z in processed if fast.slices[z].has_candidates]
    chosen = with_candidates[:: max(1, len(with_candidates) // max(1, count // 2))][: count // 2]
    rest = [z for z in processed if z not in chosen]
    for z in np.array(rest)[np.linspace(0, len(rest) - 1, count - len(chosen)).round().astype(int)] if rest else []:
        chosen.append(int(z))
    return sorted(set(chosen[:count]) | {z for z in extra if z in fast.slices})


def candidate_centres(result, z) -> list[tuple[int, int]]:
    """Centres ``(y, x)`` of a slice's kept circles, best first (comparable across circle searches)."""
    s = result.slices[z]
    return [tuple(int(v) for v in s.centres[i]) for i in s.candidates]


def agreement(a, b, slices, threshold) -> str:
    """Dice of the final masks of two runs on ``slices``, and on how many slices they kept the same circles."""
    mask_a = a.residual_working()[slices] > threshold
    mask_b = b.residual_working()[slices] > threshold
    same = sum(candidate_centres(a, z) == candidate_centres(b, z) and a.slices[z].chosen == b.slices[z].chosen
               for z in slices)
    kept = sum(a.slices[z].has_candidates for z in slices)
    return (f"Dice {metrics.dice(mask_a, mask_b):.4f} ({int(mask_a.sum())} vs {int(mask_b.sum())} mask pixels); "
            f"same kept circles and chosen mask on {same}/{len(slices)} slices ({kept} with candidates)")


def label_scores(result, label, slices, threshold) -> str:
    """Dice / precision / recall of a run's mask (CT grid) against the phantom's label on ``slices``
    (working slices are CT slices for phantoms: the working grid only resamples in-plane)."""
    mask = result.mask(threshold)[slices]
    truth = label.array.astype(bool)[slices]
    return (f"Dice {metrics.dice(mask, truth):.3f} (precision {metrics.precision(mask, truth):.3f}, "
            f"recall {metrics.recall(mask, truth):.3f})")


def exhaustive_holes(result, ooi_w) -> int:
    """Holes an exhaustive search inpaints on the run's slices: every grid circle + 6 masks per candidate slice."""
    p = result.params
    circles = sum(len(circle_centres(ooi_w[z], p.circle_radius_px, p.circle_stride_px)) for z in result.slices)
    return circles + sum((1 + len(p.dilation_widths_px)) * s.has_candidates for s in result.slices.values())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="ONNX model for fast mode (default: what segment runs, the shipped lung PET-CT model's "
                             "int8 twin when installed)")
    parser.add_argument("--reference-model", type=Path, default=None,
                        help="ONNX model for reference mode (default: the shipped float model when --model is not "
                             "given, else --model), so that the agreement covers the quantisation")
    parser.add_argument("--fake", action="store_true", help="use the cost-matched fake even when a model exists")
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    parser.add_argument("--slices", type=int, default=None, help="phantom slices (default: whole chest, 100)")
    parser.add_argument("--reference-slices", type=int, default=3, help="slices run in reference mode")
    parser.add_argument("--crop", type=int, default=None, help="fast-mode circle crop side before alignment (default: the rule, 96 for lung, fed one size multiple larger: 128 px for the compact net, 112 for the light one)")
    parser.add_argument("--context", type=float, default=0.7,
                        help="crop_context_ratio (default 0.7, the pipeline's: 96-px lung crops before alignment)")
    parser.add_argument("--search", choices=["coarse-to-fine", "exhaustive"], default=PipelineParams().circle_search,
                        help="fast-mode circle search")
    parser.add_argument("--complete-neighbours", choices=["on", "off"],
                        default="on" if PipelineParams().complete_neighbours else "off",
                        help="coarse-to-fine: every circle on the slices next to a slice with candidates "
                             "(default: the pipeline's)")
    parser.add_argument("--stress-k", type=float, default=None,
                        help="also compare fast vs reference on the subset with this lower outlier_k, so that "
                             "most slices have candidates (exercises candidates, dilations and masks)")
    parser.add_argument("--compare-exhaustive", action="store_true",
                        help="also run fast mode with the exhaustive search (same crops) on every slice")
    parser.add_argument("--only", default=None, metavar="A:B",
                        help="run fast mode on these working slices only (default: every OOI slice)")
    parser.add_argument("--reference-passes", type=int, default=3,
                        help="with --reference-slices 0: whole-slice passes timed directly for the extrapolation")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=PipelineParams().batch_size,
                        help="images per forward pass (default: the pipeline's, as segment and the app run)")
    args = parser.parse_args(argv)

    stages = {}
    start = time.perf_counter()
    phantom = make_phantom("lung", args.seed, n_slices=args.slices)
    stages["phantom (not pipeline)"] = time.perf_counter() - start
    start = time.perf_counter()
    suv = resample_pet_to_ct(phantom.pet, phantom.ct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ooi = compute_ooi("lung", ct=phantom.ct, pet=suv)
    stages["ooi"] = time.perf_counter() - start
    start = time.perf_counter()
    prepared = prepare_case(phantom.ct, phantom.pet, LUNG, "petct")
    stages["prepare"] = time.perf_counter() - start
    predictor, flops_per_pixel, which = load_predictor(args)
    reference_predictor, reference_which = predictor, which
    reference_path = args.reference_model or (default_reference_path() if args.model is None and not args.fake else None)
    if reference_path is not None and reference_path != getattr(predictor, "path", None):
        reference_predictor, _, reference_which = load_predictor(args, reference_path)

    params = PipelineParams.from_preset(LUNG, mode="fast", crop_size_px=args.crop, circle_search=args.search,
                                        crop_context_ratio=args.context,
                                        complete_neighbours=args.complete_neighbours == "on",
                                        batch_size=args.batch_size)
    size_multiple = getattr(predictor, "size_multiple", 32)
    # what the network is fed: the rule's crop grown by one size multiple (autopaint_circles.aligned_crop)
    crop = params.circle_crop_size(size_multiple) + size_multiple
    only = None if args.only is None else range(*(int(v) for v in args.only.split(":")))
    fast, fast_s = run(prepared, ooi, predictor, params, only)
    tumour_slices = [int(z) for z in np.flatnonzero(phantom.label.array.any(axis=(1, 2)))]
    ooi_w = working_ooi(prepared, ooi)
    if args.reference_slices > 0:
        subset = pick_reference_slices(fast, args.reference_slices, tumour_slices[len(tumour_slices) // 2:][:1])
        reference, reference_subset_s = run(prepared, ooi, reference_predictor, params.with_changes(mode="reference"),
                                            subset)
        per_hole = reference_subset_s / max(reference.stats["holes_inpainted"], 1)
    else:
        subset, reference, reference_subset_s = [], None, 0.0
        per_hole = whole_slice_pass_seconds(reference_predictor, prepared, ooi_w, sorted(fast.slices)[0], args.reference_passes)
    reference_holes = exhaustive_holes(fast, ooi_w)
    reference_s = per_hole * reference_holes

    crops = fast.stats["holes_inpainted"]
    inference_s = fast.stats["seconds"]["inference"]
    circles = sum(len(s.centres) for s in fast.slices.values())
    grid_circles = reference_holes - 6 * sum(s.has_candidates for s in fast.slices.values())
    achieved = flops_per_pixel * circles * crop * crop / max(fast.stats["seconds"].get("circles", inference_s), 1e-9) / 1e9
    roofline = matmul_gflops()
    load = os.getloadavg()

    print(f"predictor       : {which}")
    if reference_predictor is not predictor:
        print(f"reference model : {reference_which}")
    print(f"machine         : {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"(1/5/15 min) at the end (other processes share the CPU: wall times are upper bounds)")
    print(f"case            : lung PET-CT phantom seed {args.seed}, CT {phantom.ct.shape} (z, y, x), "
          f"{len(fast.slices)} OOI slices, {grid_circles} grid circles ({grid_circles / len(fast.slices):.1f} per slice), "
          f"tumour on slices {tumour_slices}")
    print(f"fast mode       : {fast_s:8.1f} s on all {len(fast.slices)} OOI slices ({fast_s / len(fast.slices):.2f} s "
          f"per slice; {args.search} search{' + neighbour completion' if params.coarse_to_fine and params.complete_neighbours else ''}, {crop}-px aligned circle crops, batch {params.batch_size}); {circles} circles "
          f"inpainted ({circles / len(fast.slices):.1f} per slice, {circles / grid_circles:.0%} of the grid), "
          f"{crops} holes in {fast.stats['forward_passes']} forward passes, {crops / fast_s:.1f} holes/s overall, "
          f"{crops / inference_s:.1f} holes/s in inference")
    measured = (f"{reference_subset_s:.1f} s measured on {len(subset)} slices {subset} "
                f"({reference.stats['holes_inpainted']} whole-slice passes" if reference is not None else
                f"{args.reference_passes} whole-slice passes timed directly (no reference slice run")
    whole_run = reference is not None and reference.stats["holes_inpainted"] == reference_holes
    if whole_run:  # the reference run inpainted every hole an exhaustive run needs: nothing is extrapolated
        print(f"reference mode  : {measured}, {per_hole:.3f} s each): the whole run, measured")
    else:
        print(f"reference mode  : {measured}, {per_hole:.3f} s each); EXTRAPOLATED to all slices by holes (every "
              f"grid circle + 6 masks per candidate slice = {reference_holes} passes): {reference_s:.1f} s")
    print(f"speed-up        : fast is {reference_s / fast_s:.1f} x faster than reference "
          f"({'both measured' if whole_run else 'reference extrapolated'})")
    if reference is not None:
        print(f"agreement       : fast vs reference on those {len(subset)} slices: "
              f"{agreement(fast, reference, subset, params.threshold)}")
        print(f"vs the label    : on those slices, fast {label_scores(fast, phantom.label, subset, params.threshold)}; "
              f"reference {label_scores(reference, phantom.label, subset, params.threshold)}")
    if args.stress_k is not None and reference is not None:
        stressed = params.with_changes(outlier_k=args.stress_k)
        fast_k, fast_k_s = run(prepared, ooi, predictor, stressed, subset)
        reference_k, reference_k_s = run(prepared, ooi, reference_predictor, stressed.with_changes(mode="reference"),
                                         subset)
        print(f"stressed k={args.stress_k:<4}: fast {fast_k_s:.1f} s vs reference {reference_k_s:.1f} s on the same "
              f"slices ({reference_k_s / fast_k_s:.1f} x); {agreement(fast_k, reference_k, subset, params.threshold)}")
    if args.compare_exhaustive:
        compare_exhaustive(prepared, ooi, predictor, params, fast, fast_s, only, args.stress_k,
                           reference if args.stress_k is None else None, subset)
    print(f"arithmetic      : {flops_per_pixel / 1e6:.3f} MFLOP/pixel -> {achieved:.1f} GFLOP/s achieved in "
          f"fast-mode circle inference vs {roofline:.1f} GFLOP/s float32 matmul ({achieved / roofline:.0%})")
    print(f"peak RSS        : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")
    runs = [("fast", fast, fast_s)] + ([("reference (subset)", reference, reference_subset_s)] if reference else [])
    print_stages(stages, runs)


def whole_slice_pass_seconds(predictor, prepared, ooi_w, z: int, passes: int) -> float:
    """Mean seconds of one reference-mode forward pass (whole slice, one circle) on slice ``z``."""
    p = PipelineParams.from_preset(LUNG)
    centres = circle_centres(ooi_w[z], p.circle_radius_px, p.circle_stride_px)
    image = prepared.channels[z][None]
    yy, xx = np.mgrid[:image.shape[2], :image.shape[3]]
    seconds = []
    for cy, cx in centres[np.linspace(0, len(centres) - 1, passes).round().astype(int)]:
        known = ((yy - cy) ** 2 + (xx - cx) ** 2 > p.circle_radius_px ** 2)[None, None].astype(np.float32)
        seconds.append(_timed(lambda: predictor(image, known)))
    return float(np.mean(seconds))


def compare_exhaustive(prepared, ooi, predictor, params, fast, fast_s, only, stress_k, reference=None,
                       subset=()) -> None:
    """Fast mode with the exhaustive search (every circle, same crops) vs the chosen search, same slices,
    and vs ``reference`` (the reference-mode run on ``subset``) when given.

    With ``stress_k`` both run with that outlier threshold (so that decisions are not all empty).
    """
    old = params.with_changes(circle_search="exhaustive")
    new, new_s = fast, fast_s
    if stress_k is not None:
        old, params = old.with_changes(outlier_k=stress_k), params.with_changes(outlier_k=stress_k)
        new, new_s = run(prepared, ooi, predictor, params, only)
    exhaustive, exhaustive_s = run(prepared, ooi, predictor, old, only)
    circles = sum(len(s.centres) for s in exhaustive.slices.values())
    print(f"exhaustive      : fast mode with every circle ({circles}), same crops, outlier_k {old.outlier_k}, same "
          f"slices: {exhaustive_s:.1f} s vs {params.circle_search} {new_s:.1f} s ({exhaustive_s / new_s:.1f} x); "
          f"{params.circle_search} vs it: "
          f"{agreement(new, exhaustive, sorted(new.slices), params.threshold)}")
    if reference is not None:
        print(f"exhaustive vs reference on those {len(subset)} slices: "
              f"{agreement(exhaustive, reference, subset, params.threshold)}")


def default_reference_path() -> Path | None:
    """The model `segment --mode reference` runs (the float one), or None when none is installed."""
    try:
        return default_model_path("lung", "petct", precision="auto", mode="reference")
    except Exception:
        return None


def load_predictor(args, model_path=None):
    """``(predictor, conv FLOPs per input pixel, description)``: the ONNX model, or the cost-matched fake."""
    model_path = model_path or args.model
    if model_path is None and not args.fake:
        try:  # what `segment` runs in fast mode: the int8 twin when one is installed
            model_path = default_model_path("lung", "petct", precision="auto", mode="fast")
        except Exception:
            model_path = None
    if model_path is None:
        predictor = CostMatchedFake()
        return predictor, predictor.flops_per_pixel, (
            f"cost-matched fake predictor (no model found: ring-mean fill + {predictor.flops_per_pixel / 1e6:.2f} "
            f"MFLOP/pixel float32 matmul, the compact GConv-Lap's arithmetic)")
    from autopaint_app.core.inpaint_model import InpaintModel

    predictor = InpaintModel.load(model_path, threads=args.threads, batch_size=args.batch_size)
    try:
        flops_per_pixel = conv_flops(model_path, contract_shapes(len(predictor.channels), 128)) / 128 ** 2
    except (ImportError, ValueError):  # no onnx package, or a graph whose conv sizes cannot be known
        flops_per_pixel = float("nan")
    return predictor, flops_per_pixel, f"ONNX model {model_path} ({predictor.provider})"


def print_stages(stages: dict, runs) -> None:
    """Time per stage: preparation, then per run inference of circles / masks, scoring and the rest."""
    print("time per stage  :")
    for name, seconds in stages.items():
        print(f"  {name:<30}{seconds:8.2f} s")
    for label, result, wall in runs:
        seconds = result.stats["seconds"]
        for name in ("circles", "masks", "scoring"):
            print(f"  {label + ' ' + name:<30}{seconds.get(name, 0.0):8.2f} s")
        rest = wall - seconds["inference"] - seconds["scoring"]
        print(f"  {label + ' other':<30}{rest:8.2f} s")


if __name__ == "__main__":
    main()
