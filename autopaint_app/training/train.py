"""The trainer: ``python -m autopaint_app.training --config run.json [--resume]``.

Paper, section 2.4: Adam, batch 8; phase 1 (``epochs_phase1``, lr 1e-4) with every BN layer
training, phase 2 (``epochs_phase2``, lr 5e-5) with the encoder BN frozen (running statistics
and affine parameters fixed), decoder BN still training. GConv-Lap uses the six-term loss,
GConv and PConv the same without the Laplacian term.

Every epoch ends with validation on fixed crops and fixed holes (``data.fixed_validation_set``):
MSE/PSNR/SSIM in the holes and over the whole crop, plus the validation loss. The **best
checkpoint is the one with the highest PSNR in the holes** (the quantity the paper reports and
the one autoinpainting depends on). ``out_dir`` receives ``checkpoints/latest.pt`` (every epoch
and on stop), ``checkpoints/best.pt``, ``val_set.npz``, ``train.log`` and, at the end, the ONNX
model and card of the best checkpoint.

stdout carries JSON lines only (``progress.Progress``):
``start`` (config, split, cases, vgg_weights, biharmonic val metrics, steps_per_epoch),
``step`` (phase, epoch, step, global_step, lr, losses by term), ``epoch`` (phase, epoch, train
loss means, val metrics, best, ``samples``: the ``samples/epoch_NNN.npz`` of fixed validation
inpaintings, see ``samples.py``), ``done``, ``stopped`` or ``error``; each with elapsed_s and eta_s.
``--estimate`` instead measures a few steps and prints one ``estimate`` line (``estimate.py``).
SIGINT / SIGTERM finish the current step, save ``latest.pt``, emit ``stopped`` and exit with
code 0 (a stop is an expected outcome: resume with ``--resume``). Seeded and deterministic.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from autopaint_app.core.errors import InputError
from autopaint_app.training import checkpoints as ckpt
from autopaint_app.training.config import RunConfig, load_run_config
from autopaint_app.training.data import CropSampler, ValidationSet, fixed_validation_set, load_slices, split_patients
from autopaint_app.training.devices import training_device
from autopaint_app.training.evaluation import biharmonic_metrics, inpainting_metrics
from autopaint_app.training.losses import InpaintingLoss, LossWeights
from autopaint_app.training.networks import InpaintingUNet, NetworkConfig, build_network
from autopaint_app.training.progress import Progress, StopRequest
from autopaint_app.training.rim_lesions import add_rim_lesions
from autopaint_app.training.rim_lesions import settings_for as rim_settings_for
from autopaint_app.training.scan_smoothing import smooth_channel
from autopaint_app.training.samples import write_samples

logger = logging.getLogger("autopaint_app.training")
BEST_METRIC = "psnr_hole"
# Model parameters of the network's config that must not change when a run is resumed.
FIXED_ON_RESUME = ("site", "modality", "arch", "size", "widths", "prefill", "prefill_channels", "train_crop", "seed",
                   "cases", "ct_window", "suv_window")


def network_config_for(config: RunConfig) -> NetworkConfig:
    """The U-Net of a run: GConv for gconv/gconv_lap, PConv for pconv; a named size or widths."""
    arch = "pconv" if config.arch == "pconv" else "gconv"
    channels = len(config.channels)
    if config.widths is not None:
        network = NetworkConfig.with_widths(config.widths, arch=arch, in_channels=channels)
    else:
        network = NetworkConfig.named(config.size, arch=arch, in_channels=channels)
    chosen = None if config.prefill_channels is None else tuple(config.channels.index(name)
                                                                 for name in config.prefill_channels)
    return replace(network, prefill=config.prefill, prefill_channels=chosen)


def loss_weights_for(arch: str, channels: tuple[float, ...] | None = None) -> LossWeights:
    weights = LossWeights() if arch == "gconv_lap" else LossWeights.without_laplacian()
    return replace(weights, channels=channels)


def checkpoint_paths(out_dir: str | Path) -> tuple[Path, Path]:
    """(latest, best) checkpoint paths of a run folder."""
    folder = Path(out_dir) / "checkpoints"
    return folder / "latest.pt", folder / "best.pt"


@dataclass
class TrainingData:
    sampler: CropSampler
    val: ValidationSet
    split: dict
    cases: list[dict]


def prepare_data(config: RunConfig) -> TrainingData:
    """Healthy slices, patient-wise split (logged) and the fixed validation set."""
    slices = load_slices(config.cases, config.site, config.modality, config.restrict_to_ooi,
                         config.tumour_margin_mm, config.max_slices_per_case, config.site_preset)
    forced = forced_sides(slices)
    train_ids, val_ids = split_patients([s.patient_id for s in slices], config.val_fraction, config.seed, forced)
    logger.info("patient-wise split (seed %d): train %s; validation %s", config.seed, train_ids, val_ids)
    train_cases = [s for s in slices if s.patient_id in train_ids]
    val_cases = [s for s in slices if s.patient_id in val_ids]
    val = fixed_validation_set(val_cases, config.val_crops, config.train_crop, config.seed)
    return TrainingData(CropSampler(train_cases, config.train_crop), val, {"train": train_ids, "val": val_ids},
                        [s.summary() for s in slices])


def forced_sides(slices) -> dict[str, str]:
    """Patient id -> forced split side from the ``split`` of the run.json entries.

    Raises:
        InputError: one patient forced to both sides.
    """
    sides: dict[str, str] = {}
    for case in slices:
        if case.forced_split is None:
            continue
        if sides.setdefault(case.patient_id, case.forced_split) != case.forced_split:
            raise InputError(None, f"patient {case.patient_id!r} is forced into both train and val")
    return sides


def save_validation_set(val: ValidationSet, path: Path) -> None:
    """``val_set.npz`` (images, masks, sources) written atomically, for export's model card."""
    handle, temporary = tempfile.mkstemp(prefix=".val_set.", suffix=".npz", dir=path.parent)
    os.close(handle)
    try:
        np.savez_compressed(temporary, images=val.images, masks=val.masks,
                            sources=np.array([f"{case}:{z}" for case, z in val.sources]))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def set_phase(model: InpaintingUNet, optimizer: torch.optim.Optimizer, phase: int, config: RunConfig) -> None:
    """Phase 1: lr1, all BN training. Phase 2: lr2, encoder BN in eval mode with frozen parameters."""
    frozen = phase == 2
    model.set_encoder_bn_frozen(frozen)
    for module in model.encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for parameter in module.parameters():
                parameter.requires_grad_(not frozen)
    for group in optimizer.param_groups:
        group["lr"] = config.lr2 if frozen else config.lr1


@torch.no_grad()
def validate(model: InpaintingUNet, criterion: InpaintingLoss, val: ValidationSet, batch_size: int) -> dict:
    """Metrics (``evaluation.METRIC_NAMES``) and the mean validation loss terms (``loss_<term>``)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs, terms_sum = [], {}
    for start in range(0, len(val.images), batch_size):
        images = torch.from_numpy(val.images[start:start + batch_size]).to(device)
        masks = torch.from_numpy(val.masks[start:start + batch_size]).to(device)
        output = model(images, masks)
        _, terms = criterion(output, images, masks)
        for name, value in terms.items():
            terms_sum[name] = terms_sum.get(name, 0.0) + value * len(images)
        outputs.append(output.cpu().numpy())
    model.train(was_training)
    result = inpainting_metrics(np.concatenate(outputs), val.images, val.masks)
    result.update({f"loss_{name}": value / len(val.images) for name, value in terms_sum.items()})
    return result


def _setup_logging(out_dir: Path) -> list[logging.Handler]:
    root = logging.getLogger("autopaint_app")
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       logging.FileHandler(out_dir / "train.log", encoding="utf-8")]
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    return handlers


def _initial_state(config: RunConfig, resume: bool, latest: Path) -> dict | None:
    """The checkpoint to resume from (None = fresh run); refuses to clobber an existing run."""
    if not resume:
        if latest.exists():
            raise InputError(latest.parent.parent, "holds a training run already; pass --resume or use another out_dir")
        return None
    if not latest.exists():
        logger.info("--resume: no checkpoint in %s yet, starting a fresh run", latest.parent)
        return None
    state = ckpt.load_checkpoint(latest)
    before = dict(state["run_config"])
    before.setdefault("prefill", "none")  # checkpoints written before the prefill option
    # Checkpoints written before case weights / synthetic PETs existed: weight 1, no synthetic PET.
    before["cases"] = [dict(case, weight=case.get("weight", 1.0), synthetic_pet=case.get("synthetic_pet", False))
                       if isinstance(case, dict) else case for case in before.get("cases") or []]
    changed = [key for key in FIXED_ON_RESUME if _jsonish(before.get(key)) != _jsonish(config.to_dict().get(key))]
    if changed:
        raise InputError(latest, f"run.json changed {', '.join(changed)} since this checkpoint; use another out_dir")
    return state


def _jsonish(value):
    if isinstance(value, (list, tuple)):
        return [_jsonish(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonish(item) for key, item in value.items()}
    return value


def train(config: RunConfig, resume: bool = False, stream=None, command: str | None = None) -> int:
    """Run (or resume) a training run; returns the exit code (0 done or stopped).

    Raises:
        InputError: bad cases, a run already in ``out_dir`` without ``resume``, a changed config.
    """
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handlers = _setup_logging(out_dir)
    progress = None
    try:
        latest, best = checkpoint_paths(out_dir)
        state = _initial_state(config, resume, latest)
        torch.set_num_threads(config.threads)
        device = training_device(config.device)
        torch.use_deterministic_algorithms(True)
        data = prepare_data(config)
        save_validation_set(data.val, out_dir / "val_set.npz")
        torch.manual_seed(config.seed)
        model = build_network(network_config_for(config))
        if config.init_from is not None and state is None:
            adopted = ckpt.initialise_from(model, config.init_from, config.channels)
            logger.info("network initialised from %s (%s)", config.init_from, adopted)
        elif state is not None and state.get("all_bn_frozen"):
            model.freeze_all_bn()  # a resumed run that started from an exported (BN-folded) model
        model.to(device)  # before the optimizer exists: its state follows the parameters' device
        criterion = InpaintingLoss(loss_weights_for(config.arch, config.channel_weights()),
                                   vgg_weights_path=config.vgg_weights,
                                   vgg_downsample=config.vgg_downsample).to(device)
        logger.info("VGG16 weights for the perceptual/style terms: %s", criterion.vgg_weights_source)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr1)
        steps_per_epoch = config.steps_per_epoch or math.ceil(data.sampler.n_slices / config.batch_size)
        total_steps = steps_per_epoch * config.total_epochs
        if state is None:
            baseline = biharmonic_metrics(data.val.images, data.val.masks)
            state = {"format": ckpt.CHECKPOINT_FORMAT, "run_config": config.to_dict(), "epoch": 0,
                     "step_in_epoch": 0, "global_step": 0, "phase": 1, "best": None, "history": [],
                     "wall_time_s": 0.0, "biharmonic": baseline, "command": command or " ".join(sys.argv),
                     "init_from": config.init_from, "all_bn_frozen": model.all_bn_frozen,
                     "numpy_rng": ckpt.rng_state_text(np.random.default_rng([config.seed, 1]))}
        else:
            model.load_state_dict(state["model"])
            set_phase(model, optimizer, state["phase"], config)  # param groups must match before loading
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            state["run_config"] = config.to_dict()  # epochs may have been extended
        state.update(split=data.split, cases=data.cases, vgg_weights=criterion.vgg_weights_source,
                     network=ckpt.network_to_dict(model.config), steps_per_epoch=steps_per_epoch)
        progress = Progress(total_steps, done_steps=min(state["global_step"], total_steps), stream=stream)
        progress.emit("start", config=config.to_dict(), split=data.split, cases=data.cases,
                      vgg_weights=criterion.vgg_weights_source, biharmonic=state["biharmonic"],
                      steps_per_epoch=steps_per_epoch, total_steps=total_steps, resumed_epoch=state["epoch"],
                      resumed_step=state["step_in_epoch"], train_slices=data.sampler.n_slices,
                      val_crops=len(data.val.images))
        loop = _Loop(config, model, criterion, optimizer, data, state, progress, steps_per_epoch, latest, best)
        with StopRequest() as stop:
            finished = loop.run(stop)
        if not finished:
            progress.emit("stopped", signal=stop.signal_name, epoch=state["epoch"],
                          step=state["step_in_epoch"], checkpoint=str(latest))
            return 0
        onnx_path = None
        if config.export:
            from autopaint_app.training.export import export_checkpoint

            onnx_path = out_dir / f"{config.model_name}.onnx"
            export_checkpoint(best, onnx_path, overwrite=True, val_set=out_dir / "val_set.npz")
        progress.emit("done", best=state["best"], checkpoint=str(best), onnx=None if onnx_path is None else str(onnx_path),
                      wall_time_s=round(state["wall_time_s"], 1))
        return 0
    except Exception as error:
        (progress or Progress(0, stream=stream)).emit("error", message=str(error), type=type(error).__name__)
        raise
    finally:
        if progress is not None:
            progress.close()
        for handler in handlers:
            logging.getLogger("autopaint_app").removeHandler(handler)
            handler.close()


def train_step(model: InpaintingUNet, criterion: InpaintingLoss, optimizer: torch.optim.Optimizer,
               images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """One Adam step on a batch (float32 (n, C, H, W) images, (n, 1, H, W) masks); the loss terms."""
    device = next(model.parameters()).device
    images, masks = torch.from_numpy(images).to(device), torch.from_numpy(masks).to(device)
    loss, terms = criterion(model(images, masks), images, masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return terms


class _Loop:
    """The epoch/step loop over a mutable checkpoint ``state`` (saved as is)."""

    def __init__(self, config, model, criterion, optimizer, data, state, progress, steps_per_epoch, latest, best):
        self.config, self.model, self.criterion, self.optimizer = config, model, criterion, optimizer
        self.data, self.state, self.progress = data, state, progress
        self.steps_per_epoch, self.latest, self.best = steps_per_epoch, latest, best
        self.rng = ckpt.restore_rng(state["numpy_rng"])
        self.session_start = time.perf_counter()
        self.wall_before = state["wall_time_s"]
        self.rim_settings = rim_settings_for(config.rim_lesions, config.channels, config.site_preset,
                                             config.rim_lesion_region)

    def run(self, stop: StopRequest) -> bool:
        """True when every epoch is done, False when a stop signal ended the run (after saving)."""
        state, config = self.state, self.config
        for epoch in range(state["epoch"], config.total_epochs):
            phase = 1 if epoch < config.epochs_phase1 else 2
            if phase != state["phase"] or epoch == state["epoch"]:
                set_phase(self.model, self.optimizer, phase, config)
                state["phase"] = phase
            self.model.train()
            sums: dict[str, float] = {"steps": 0.0}
            for step in range(state["step_in_epoch"], self.steps_per_epoch):
                terms = self._step()
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value
                sums["steps"] += 1
                state["step_in_epoch"] = step + 1
                state["global_step"] += 1
                self.progress.step_done()
                self.progress.emit("step", phase=phase, epoch=epoch + 1, step=step + 1,
                                   steps_per_epoch=self.steps_per_epoch, global_step=state["global_step"],
                                   lr=self.optimizer.param_groups[0]["lr"], losses=terms)
                if stop.requested:
                    self._save(self.latest)
                    return False
            self._end_epoch(epoch, phase, sums)
            if stop.requested:
                return False
        return True

    def _step(self) -> dict[str, float]:
        images, masks = self.data.sampler.batch(self.config.batch_size, self.rng)
        # The scan's smoothness first, then any decoy drawn on it; off = the crop stream as before.
        for name, sigma_px in (("ct", self.config.ct_smoothing_px), ("pet", self.config.pet_smoothing_px)):
            if sigma_px is not None:
                images = smooth_channel(images, self.config.channels, name, sigma_px, self.rng)
        if self.config.rim_lesions > 0:  # off: the crop stream (and resumes) stay as before
            images = add_rim_lesions(images, masks, self.rim_settings, self.rng)
        return train_step(self.model, self.criterion, self.optimizer, images, masks)

    def _end_epoch(self, epoch: int, phase: int, sums: dict[str, float]) -> None:
        state = self.state
        steps = max(1.0, sums.pop("steps"))  # this session's steps of the epoch (fewer after a resume)
        val = validate(self.model, self.criterion, self.data.val, self.config.batch_size)
        samples = write_samples(self.model, self.data.val.images, self.data.val.masks, self.config.channels,
                                self.latest.parent.parent, epoch + 1)
        record = {"epoch": epoch + 1, "phase": phase, "train": {k: v / steps for k, v in sums.items()}, "val": val}
        state["history"].append(record)
        state.update(epoch=epoch + 1, step_in_epoch=0, val_metrics=val)
        improved = state["best"] is None or val[BEST_METRIC] > state["best"]["value"]
        if improved:
            state["best"] = {"metric": BEST_METRIC, "value": val[BEST_METRIC], "epoch": epoch + 1}
            self._save(self.best)
        self._save(self.latest)
        logger.info("epoch %d (phase %d): val PSNR holes %.2f dB (biharmonic %.2f), SSIM holes %.4f%s", epoch + 1,
                    phase, val["psnr_hole"], state["biharmonic"]["psnr_hole"], val["ssim_hole"],
                    " - best so far" if improved else "")
        self.progress.emit("epoch", phase=phase, epoch=epoch + 1, epochs=self.config.total_epochs,
                           global_step=state["global_step"], lr=self.optimizer.param_groups[0]["lr"],
                           losses=record["train"], val=val, biharmonic=state["biharmonic"], best=state["best"],
                           samples=str(samples))

    def _save(self, path: Path) -> None:
        state = self.state
        state["wall_time_s"] = self.wall_before + time.perf_counter() - self.session_start
        state.update(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                     torch_rng=torch.get_rng_state(), numpy_rng=ckpt.rng_state_text(self.rng))
        ckpt.save_checkpoint(state, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autopaint_app.training",
                                     description="Train an AutoPaint inpainting network (JSON lines on stdout).")
    parser.add_argument("--config", type=Path, required=True, help="run.json")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoints/latest.pt")
    parser.add_argument("--estimate", action="store_true",
                        help="measure parameters and time per epoch on a few steps; print one JSON line, write nothing")
    parser.add_argument("--estimate-steps", type=int, default=3, help="timed steps of --estimate (default 3)")
    return parser


def run_from_args(config_path: Path, resume: bool, command: str | None = None) -> int:
    """Load ``run.json`` and train (what the module entry point and ``autopaint-cli train`` call)."""
    return train(load_run_config(config_path), resume=resume, command=command or " ".join(sys.argv))


def command_line(program: str, config_path: Path, resume: bool) -> str:
    """The command that reproduces this run, for the log and the model card."""
    return f"{program} --config {config_path}" + (" --resume" if resume else "")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.estimate:
            from autopaint_app.training.estimate import estimate

            estimate(load_run_config(args.config), steps=args.estimate_steps)
            return 0
        return run_from_args(args.config, args.resume,
                             command_line("python -m autopaint_app.training", args.config, args.resume))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
