"""Speed of the inpainting networks on this machine, in one run (issue 3, section 7).

Prints:

1. float32 matmul GFLOP/s (numpy, best of a few): the practical roofline;
2. training throughput of the shipped network (compact GConv-Lap, 2 channels) with the full six-term
   loss at 128-px crops, batch 8 (PyTorch, a few Adam steps after a warm-up), in slices/s;
3. ONNX Runtime inference throughput of every model in a models folder at 128, 256 and 512 px,
   batch 1 and 8: ms per batch, crops/s, convolution FLOPs per crop (counted from the ONNX graph),
   achieved GFLOP/s and its share of the matmul figure.

    /work/venv/bin/python benchmarks/bench_models.py                      # models/
    /work/venv/bin/python benchmarks/bench_models.py --models-dir /tmp/m --quick

Figures only: nothing is asserted. Timings are medians of repeated runs after one warm-up; other
load on the machine (a training job) slows them, so the load average is printed too. Needs the
train extra (torch) for the training figure and onnx (dev extra) for the FLOP count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autopaint_app.core.holes import batch_masks  # noqa: E402
from autopaint_app.core.inpaint_model import InpaintModel  # noqa: E402
from benchmarks.flops import contract_shapes, conv_flops, matmul_gflops  # noqa: E402

TRAIN_CROP, TRAIN_BATCH = 128, 8


def _median_seconds(function, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_throughput(crop: int, batch: int, steps: int, vgg_downsample: int, threads: int | None) -> dict:
    """Adam steps of the compact 2-channel GConv with the GConv-Lap loss on random crops and trainer holes.

    Args:
        crop, batch: Crop side (px) and crops per step (the shipped runs: 128, 8).
        steps: Timed steps after one warm-up step.
        vgg_downsample: The perceptual and style terms run at 1/k resolution (shipped runs: 2).
        threads: torch intra-op threads, or None for torch's default.

    Returns:
        dict: seconds per step (median), slices/s, parameters, VGG weights source, threads.
    """
    import torch

    from autopaint_app.training.losses import InpaintingLoss, LossWeights
    from autopaint_app.training.networks import NetworkConfig, build_network, count_parameters

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_network(NetworkConfig(arch="gconv", in_channels=2)).train()
    criterion = InpaintingLoss(LossWeights(), vgg_downsample=vgg_downsample)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((batch, 2, crop, crop), dtype=np.float32))
    masks = torch.from_numpy(batch_masks(batch, crop, rng))

    def step() -> None:
        loss, _ = criterion(model(images, masks), images, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = _median_seconds(step, steps)
    return {"seconds_per_step": seconds, "slices_per_s": batch / seconds, "crop": crop, "batch": batch, "params": count_parameters(model),
            "vgg": criterion.vgg_weights_source, "threads": torch.get_num_threads(), "torch": torch.__version__}


def inference_rows(path: Path, sizes, batches, repeats: int, threads: int | None, matmul: float) -> list[dict]:
    """One row per (size, batch): ms per batch, crops/s, GFLOP per crop, GFLOP/s, share of matmul."""
    rows = []
    for batch in batches:
        model = InpaintModel.load(path, threads=threads, batch_size=batch, providers="cpu")
        channels = len(model.channels)
        rng = np.random.default_rng(0)
        for size in sizes:
            image = rng.random((batch, channels, size, size), dtype=np.float32)
            mask = batch_masks(batch, size, rng)
            seconds = _median_seconds(lambda: model(image, mask), repeats)
            flops = conv_flops(path, contract_shapes(channels, size))
            achieved = batch * flops / seconds / 1e9
            rows.append({"model": path.stem, "size": size, "batch": batch, "ms": 1e3 * seconds,
                         "crops_per_s": batch / seconds, "gflop_per_crop": flops / 1e9, "gflops": achieved,
                         "of_matmul": achieved / matmul, "provider": model.provider})
    return sorted(rows, key=lambda r: (r["size"], r["batch"]))


def _figure(value: float) -> str:
    """Three significant digits, no exponent for the ranges printed here (0.123, 12.3, 1234)."""
    return f"{value:.0f}" if value >= 1000 else f"{value:.3g}" if value >= 1e-3 else f"{value:.2e}"


def format_inference(rows: list[dict]) -> str:
    lines = [f"{'model':<28}{'px':>5}{'batch':>6}{'ms/batch':>11}{'crops/s':>10}{'GFLOP/crop':>12}"
             f"{'GFLOP/s':>9}{'of matmul':>11}"]
    for r in rows:
        lines.append(f"{r['model']:<28}{r['size']:>5}{r['batch']:>6}{_figure(r['ms']):>11}{_figure(r['crops_per_s']):>10}"
                     f"{_figure(r['gflop_per_crop']):>12}{_figure(r['gflops']):>9}{100 * r['of_matmul']:>10.0f}%")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models", help="folder of *.onnx (default models/)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 512-px matmul, 1 training step at 64 px batch 2, inference 128 px batch 1 and 2, 1 repeat")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime and torch threads (default: theirs)")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps after the warm-up (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference runs per figure (default 3)")
    parser.add_argument("--vgg-downsample", type=int, default=2,
                        help="VGG terms at 1/k resolution, as the shipped runs train (default 2; the paper: 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = sorted(args.models_dir.glob("*.onnx")) if args.models_dir.is_dir() else []
    sizes, batches = ((128,), (1, 2)) if args.quick else ((128, 256, 512), (1, 8))
    steps, repeats = (1, 1) if args.quick else (args.steps, args.repeats)
    if args.quick and args.threads is None:
        args.threads = 1  # a smoke run on a busy machine: no thread barriers waiting on a descheduled peer
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    n, best_of = (512, 2) if args.quick else (2048, 5)
    matmul = matmul_gflops(n, best_of)
    print(f"float32 matmul (numpy, {n}x{n}, best of {best_of}): {matmul:.1f} GFLOP/s")
    crop, batch = (64, 2) if args.quick else (TRAIN_CROP, TRAIN_BATCH)
    train = training_throughput(crop, batch, steps, args.vgg_downsample, args.threads)
    print(f"training (torch {train['torch']}, {train['threads']} threads): compact GConv-Lap, {train['params'] / 1e6:.2f} M "
          f"params, 2 channels, six-term loss (VGG16 {train['vgg']}, at 1/{args.vgg_downsample} resolution), "
          f"{train['crop']}-px crops, batch {train['batch']}: {train['seconds_per_step']:.2f} s/step, "
          f"{train['slices_per_s']:.2f} slices/s (median of {steps} steps after 1 warm-up)")
    if not models:
        print(f"ONNX Runtime inference: no *.onnx model in {args.models_dir}")
        return 0
    rows = [row for path in models for row in inference_rows(path, sizes, batches, repeats, args.threads, matmul)]
    threads = args.threads if args.threads is not None else "default"
    print(f"ONNX Runtime inference ({rows[0]['provider']}, {threads} threads; median of {repeats} after 1 warm-up; "
          f"GFLOP = 2 x conv MACs from the graph):")
    print(format_inference(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
