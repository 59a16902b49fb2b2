"""Irregular training holes (paper, 2.4): the generator lives in :mod:`autopaint_app.core.holes`.

Re-exported here so the trainer and its tests keep importing ``training.masks``; core's held-out
evaluation (``autopaint-cli model-eval``) draws its holes from the same code, which core may import
and training may not be imported by core.
"""

from autopaint_app.core.holes import (  # noqa: F401 (re-exported)
    BATCH_TARGET_RANGE,
    CIRCLE_RADIUS,
    ELLIPSE_SEMI_AXIS,
    LINE_LENGTH,
    LINE_THICKNESS,
    MASK_TARGET_RANGE,
    MAX_MASK_TARGET,
    MAX_SHAPE_TRIES,
    MIN_MASK_TARGET,
    OVERSHOOT,
    PAPER_BATCH_COVERAGE,
    batch_masks,
    hole_coverage,
    random_hole_mask,
)
