"""What a run will cost, measured: ``python -m autopaint_app.training --estimate --config run.json``.

Loads the run's data exactly as training would, builds its network, loss and optimizer on its
device, runs one warm-up step and ``steps`` timed training steps on real crops, then one pass of
validation, and prints one JSON line::

    {"event": "estimate", "params": 1234567, "seconds_per_step": 0.84, "steps_per_epoch": 40,
     "validation_s": 3.1, "seconds_per_epoch": 36.7, "total_epochs": 300, "seconds_total": 11010.0,
     "device": "cpu", "train_slices": 320, "batch_size": 8, "elapsed_s": ..., "eta_s": null}

Nothing is written to ``out_dir``; the log goes to stderr.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import numpy as np
import torch

from autopaint_app.training.config import RunConfig
from autopaint_app.training.devices import training_device
from autopaint_app.training.losses import InpaintingLoss
from autopaint_app.training.networks import build_network, count_parameters
from autopaint_app.training.progress import Progress
from autopaint_app.training.train import (loss_weights_for, network_config_for, prepare_data, train_step,
                                          validate)

logger = logging.getLogger("autopaint_app.training")


def estimate(config: RunConfig, steps: int = 3, stream=None) -> dict:
    """Measure parameters and time per epoch of ``config`` (see the module docstring); returns the record.

    Raises:
        InputError: bad cases or an unavailable device (as training would).
    """
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger("autopaint_app").addHandler(handler)
    logging.getLogger("autopaint_app").setLevel(logging.INFO)
    try:
        torch.set_num_threads(config.threads)
        device = training_device(config.device)
        data = prepare_data(config)
        torch.manual_seed(config.seed)
        model = build_network(network_config_for(config)).to(device)
        criterion = InpaintingLoss(loss_weights_for(config.arch, config.channel_weights()),
                                   vgg_weights_path=config.vgg_weights, vgg_downsample=config.vgg_downsample).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr1)
        rng = np.random.default_rng([config.seed, 1])
        seconds = []
        for index in range(max(1, steps) + 1):  # step 0 warms up (allocations, first-call overheads)
            images, masks = data.sampler.batch(config.batch_size, rng)
            started = time.perf_counter()
            train_step(model, criterion, optimizer, images, masks)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if index:
                seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        validate(model, criterion, data.val, config.batch_size)
        validation_s = time.perf_counter() - started
        seconds_per_step = float(np.median(seconds))
        steps_per_epoch = config.steps_per_epoch or math.ceil(data.sampler.n_slices / config.batch_size)
        per_epoch = round(steps_per_epoch * seconds_per_step + validation_s, 2)
        logger.info("estimate: %.3f s per step, %d steps per epoch, %.1f s per epoch", seconds_per_step,
                    steps_per_epoch, per_epoch)
        return Progress(0, stream=stream).emit(
            "estimate", params=count_parameters(model), seconds_per_step=round(seconds_per_step, 4),
            steps_per_epoch=steps_per_epoch, validation_s=round(validation_s, 3),
            seconds_per_epoch=per_epoch, total_epochs=config.total_epochs,
            seconds_total=round(per_epoch * config.total_epochs, 1), device=str(device),
            train_slices=data.sampler.n_slices, batch_size=config.batch_size)
    finally:
        logging.getLogger("autopaint_app").removeHandler(handler)
