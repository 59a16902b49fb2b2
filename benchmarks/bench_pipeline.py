"""Speed of the autoinpainting pipeline: fast vs reference mode on one lung PET-CT phantom, one run.

Prints: fast-mode wall time on every OOI slice, reference-mode wall time measured on a subset of
slices and extrapolated to all of them (per inpainted hole; both modes inpaint the same holes), their
ratio, fast-vs-reference Dice on the subset, crops/s, achieved GFLOP/s against this machine's
float32 matmul GFLOP/s, peak RSS and time per stage. Figures only: nothing is asserted.

    /work/venv/bin/python benchmarks/bench_pipeline.py                  # shipped model or fake
    /work/venv/bin/python benchmarks/bench_pipeline.py --model models/lung_petct_gconv_lap.onnx
    /work/venv/bin/python benchmarks/bench_pipeline.py --slices 20 --reference-slices 2 --crop 96

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
from autopaint_app.core.autopaint import PipelineParams, run_autopaint  # noqa: E402
from autopaint_app.core.model_store import default_model_path  # noqa: E402
from autopaint_app.core.ooi import compute_ooi  # noqa: E402
from autopaint_app.core.phantom import make_phantom  # noqa: E402
from autopaint_app.core.preprocess import prepare_case, resample_pet_to_ct  # noqa: E402
from autopaint_app.core.presets import LUNG  # noqa: E402

# Conv FLOPs per input pixel of the compact GConv-Lap (widths 32..128, 2.18 M parameters), counted
# from its ONNX graph with count_conv_flops() at 128 x 128 (2 x MACs): 2.22 GFLOP per 128-px crop.
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


def count_conv_flops(onnx_path: Path, channels: int, size: int) -> float | None:
    """FLOPs (2 x MACs) of every Conv for one ``size`` x ``size`` image; None without ``onnx`` or shapes."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(onnx_path))
    for tensor in model.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        for dim, value in zip(dims, (1, channels if tensor.name == "image" else 1, size, size)):
            dim.ClearField("dim_param")
            dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    flops = 0.0
    for node in model.graph.node:
        if node.op_type == "ConvTranspose":
            return None                                        # not counted; the U-Nets here upsample by Resize
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        w = weights[node.input[1]]                             # (Cout, Cin/group, kh, kw)
        out = shapes.get(node.output[0])
        if not out or 0 in out:
            return None
        flops += 2.0 * int(np.prod(out)) * int(np.prod(w[1:]))
    return flops


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Best-of float32 matmul GFLOP/s of this machine through numpy's BLAS."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


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


def pick_reference_slices(fast, count: int) -> list[int]:
    """Half slices with candidates (where decisions matter), half spread evenly over the OOI slices."""
    processed = sorted(fast.slices)
    with_candidates = [z for z in processed if fast.slices[z].has_candidates]
    chosen = with_candidates[:: max(1, len(with_candidates) // max(1, count // 2))][: count // 2]
    rest = [z for z in processed if z not in chosen]
    for z in np.array(rest)[np.linspace(0, len(rest) - 1, count - len(chosen)).round().astype(int)] if rest else []:
        chosen.append(int(z))
    return sorted(set(chosen))[:count]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: shipped lung_petct model)")
    parser.add_argument("--fake", action="store_true", help="use the cost-matched fake even when a model exists")
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    parser.add_argument("--slices", type=int, default=None, help="phantom slices (default: whole chest, 100)")
    parser.add_argument("--reference-slices", type=int, default=3, help="slices run in reference mode")
    parser.add_argument("--crop", type=int, default=None, help="fast-mode circle crop side (default: 4 r -> 128)")
    parser.add_argument("--compare-crops", type=int, nargs="*", default=[],
                        help="crop sides run in fast mode on the reference subset besides the default (agreement, speed)")
    parser.add_argument("--threads", type=int, default=None)
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

    model_path = args.model
    if model_path is None and not args.fake:
        try:
            model_path = default_model_path("lung", "petct")
        except Exception:
            model_path = None
    if model_path is not None:
        from autopaint_app.core.inpaint_model import InpaintModel

        predictor = InpaintModel.load(model_path, threads=args.threads)
        flops_per_pixel = (count_conv_flops(model_path, 2, 128) or float("nan")) / 128 ** 2
        which = f"ONNX model {model_path} ({predictor.provider})"
    else:
        predictor = CostMatchedFake()
        flops_per_pixel = predictor.flops_per_pixel
        which = (f"cost-matched fake predictor (no model found: ring-mean fill + {flops_per_pixel / 1e6:.2f} "
                 f"MFLOP/pixel float32 matmul, the compact GConv-Lap's arithmetic)")

    params = PipelineParams.from_preset(LUNG, mode="fast", crop_size_px=args.crop)
    crop = params.circle_crop_size(getattr(predictor, "size_multiple", 32))
    fast, fast_s = run(prepared, ooi, predictor, params, None)
    subset = pick_reference_slices(fast, args.reference_slices)
    reference, reference_subset_s = run(prepared, ooi, predictor, params.with_changes(mode="reference"), subset)
    per_hole = reference_subset_s / max(reference.stats["holes_inpainted"], 1)
    reference_s = per_hole * fast.stats["holes_inpainted"]

    fast_sub = fast.residual_working()[subset] > params.threshold
    ref_sub = reference.residual_working()[subset] > params.threshold
    same = sum(np.array_equal(fast.slices[z].candidates, reference.slices[z].candidates)
               and fast.slices[z].chosen == reference.slices[z].chosen for z in subset)
    crops = fast.stats["holes_inpainted"]
    inference_s = fast.stats["seconds"]["inference"]
    fast_pixels = sum(len(s.centres) for s in fast.slices.values()) * crop * crop
    achieved = flops_per_pixel * fast_pixels / inference_s / 1e9
    roofline = matmul_gflops()
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2

    print(f"predictor       : {which}")
    print(f"machine         : {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
          f"(other processes share the CPU: figures are upper bounds on wall time)")
    print(f"case            : lung PET-CT phantom seed {args.seed}, CT {phantom.ct.shape} (z, y, x), "
          f"{len(fast.slices)} OOI slices, {sum(len(s.centres) for s in fast.slices.values())} circles")
    print(f"fast mode       : {fast_s:8.1f} s on all {len(fast.slices)} OOI slices ({crop}-px circle crops, "
          f"batch {params.batch_size}); {crops} holes in {fast.stats['forward_passes']} forward passes, "
          f"{crops / fast_s:.1f} crops/s overall, {crops / inference_s:.1f} crops/s in inference")
    print(f"reference mode  : {reference_subset_s:8.1f} s measured on {len(subset)} slices {subset} "
          f"({reference.stats['holes_inpainted']} whole-slice passes, {per_hole:.3f} s each); "
          f"EXTRAPOLATED to all slices by holes: {reference_s:.1f} s")
    print(f"speed-up        : fast is {reference_s / fast_s:.1f} x faster than reference (extrapolated)")
    print(f"agreement       : fast-vs-reference Dice on those {len(subset)} slices = "
          f"{metrics.dice(fast_sub, ref_sub):.4f} ({int(fast_sub.sum())} vs {int(ref_sub.sum())} mask pixels); "
          f"same candidates and chosen mask on {same}/{len(subset)} slices")
    for side in [crop] + [c for c in args.compare_crops if c != crop]:
        other, other_s = run(prepared, ooi, predictor, params.with_changes(crop_size_px=side), subset)
        mask = other.residual_working()[subset] > params.threshold
        print(f"crop {side:>3} px     : fast mode on the same {len(subset)} slices: {other_s:.1f} s "
              f"({other.stats['holes_inpainted'] / other.stats['seconds']['inference']:.1f} crops/s in inference), "
              f"{reference_subset_s / other_s:.1f} x faster than reference there; Dice vs reference "
              f"{metrics.dice(mask, ref_sub):.4f}")
    print(f"arithmetic      : {flops_per_pixel / 1e6:.3f} MFLOP/pixel -> {achieved:.1f} GFLOP/s achieved in "
          f"fast-mode circle inference vs {roofline:.1f} GFLOP/s float32 matmul ({achieved / roofline:.0%})")
    print(f"peak RSS        : {rss_gb:.2f} GB")
    print("time per stage  :")
    for name, seconds in stages.items():
        print(f"  {name:<24}{seconds:8.2f} s")
    for label, result, wall in (("fast", fast, fast_s), ("reference (subset)", reference, reference_subset_s)):
        seconds = result.stats["seconds"]
        other = wall - seconds["inference"] - seconds["scoring"]
        print(f"  {label + ' inference':<24}{seconds['inference']:8.2f} s\n  {label + ' scoring':<24}"
              f"{seconds['scoring']:8.2f} s\n  {label + ' other':<24}{other:8.2f} s")


if __name__ == "__main__":
    main()
