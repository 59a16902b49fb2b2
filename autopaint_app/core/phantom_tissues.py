"""Tissue classes of the synthetic phantoms and their CT numbers and FDG uptake.

A phantom's anatomy is first painted as a uint8 tissue map (shape ``(z, y, x)``) whose codes are the
:class:`Tissue` values below; CT (HU) and PET (SUV) are then synthesised from that map. Values are
typical non-contrast CT numbers and FDG SUVbw of adults; a few (myocardium, glands, tonsils, blood,
liver) are drawn per case so that uptake varies between phantoms as it does between patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Tissue codes of the phantom tissue map (uint8)."""

    AIR = 0            # outside the body
    AIRWAY = 1         # air inside the body: trachea, bronchi, pharynx, sinuses
    LUNG = 2           # lung parenchyma
    FAT = 3
    MUSCLE = 4
    SKIN = 5
    BLOOD = 6          # heart chambers, great vessels, neck vessels
    MYOCARDIUM = 7     # left-ventricular wall (variable FDG uptake)
    LIVER = 8
    ABDOMEN = 9        # spleen / stomach / bowel under the left diaphragm
    CORTICAL_BONE = 10
    CANCELLOUS_BONE = 11
    DISC = 12
    CARTILAGE = 13
    SPINAL_CORD = 14
    OESOPHAGUS = 15
    PAROTID = 16
    SUBMANDIBULAR = 17
    TONSIL = 18
    THYROID = 19
    TONGUE = 20
    TEETH = 21
    TABLE = 22         # scanner couch (no activity)
    LUNG_VESSEL = 23   # pulmonary vessels inside the lung
    AIRWAY_WALL = 24
    TUMOUR = 25
    NECROSIS = 26      # necrotic tumour core (still tumour in the label)


# code: (HU, HU texture sd, SUV)
_DEFAULTS: dict[Tissue, tuple[float, float, float]] = {
    Tissue.AIR: (-1000.0, 0.0, 0.0),
    Tissue.AIRWAY: (-985.0, 4.0, 0.0),
    Tissue.LUNG: (-860.0, 0.0, 0.5),          # lung texture is added separately (gravity gradient)
    Tissue.FAT: (-100.0, 8.0, 0.3),
    Tissue.MUSCLE: (45.0, 8.0, 0.7),
    Tissue.SKIN: (25.0, 5.0, 0.6),
    Tissue.BLOOD: (40.0, 3.0, 1.8),
    Tissue.MYOCARDIUM: (45.0, 3.0, 3.0),
    Tissue.LIVER: (58.0, 4.0, 2.2),
    Tissue.ABDOMEN: (42.0, 6.0, 1.6),
    Tissue.CORTICAL_BONE: (650.0, 60.0, 0.4),
    Tissue.CANCELLOUS_BONE: (220.0, 45.0, 1.3),
    Tissue.DISC: (85.0, 8.0, 0.6),
    Tissue.CARTILAGE: (160.0, 25.0, 0.5),
    Tissue.SPINAL_CORD: (30.0, 3.0, 1.3),
    Tissue.OESOPHAGUS: (42.0, 4.0, 1.4),
    Tissue.PAROTID: (5.0, 10.0, 2.5),
    Tissue.SUBMANDIBULAR: (45.0, 5.0, 2.5),
    Tissue.TONSIL: (48.0, 5.0, 3.0),
    Tissue.THYROID: (100.0, 8.0, 1.3),
    Tissue.TONGUE: (50.0, 6.0, 1.6),
    Tissue.TEETH: (1800.0, 120.0, 0.0),
    Tissue.TABLE: (180.0, 10.0, 0.0),
    Tissue.LUNG_VESSEL: (40.0, 3.0, 1.8),
    Tissue.AIRWAY_WALL: (40.0, 5.0, 0.8),
    Tissue.TUMOUR: (40.0, 6.0, 6.0),
    Tissue.NECROSIS: (18.0, 4.0, 0.8),
}

TISSUE_NAMES: dict[int, str] = {int(t): t.name.lower() for t in Tissue}


@dataclass
class TissueTable:
    """Per-case lookup tables indexed by tissue code (float32 arrays of length 256)."""

    hu: np.ndarray
    hu_texture: np.ndarray
    suv: np.ndarray

    @classmethod
    def defaults(cls) -> "TissueTable":
        hu = np.zeros(256, np.float32)
        tex = np.zeros(256, np.float32)
        suv = np.zeros(256, np.float32)
        for tissue, (h, t, s) in _DEFAULTS.items():
            hu[tissue], tex[tissue], suv[tissue] = h, t, s
        return cls(hu, tex, suv)


@dataclass
class Anatomy:
    """A painted healthy anatomy, before tumours, CT texture and PET physics.

    Attributes:
        tissue: uint8 tissue codes (:class:`Tissue`), shape ``(z, y, x)`` on the CT grid.
        table: per-case HU / texture / SUV lookup tables.
        regions: named boolean masks ``(z, y, x)`` used to place tumours (site specific).
        exclude: boolean mask ``(z, y, x)`` that tumours never occupy (bone, teeth, air lumen).
    """

    tissue: np.ndarray
    table: TissueTable
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    exclude: np.ndarray | None = None


def paint(tissue: np.ndarray, mask: np.ndarray, code: Tissue, where: np.ndarray | None = None) -> None:
    """Set ``tissue[mask] = code`` in place, optionally only where ``where`` is True."""
    if where is not None:
        mask = mask & where
    tissue[mask] = np.uint8(code)


def is_any(tissue: np.ndarray, codes) -> np.ndarray:
    """Boolean mask of voxels whose tissue code is one of ``codes`` (lookup table, fast)."""
    table = np.zeros(256, dtype=bool)
    table[[int(c) for c in codes]] = True
    return table[tissue]


def paint_codes(tissue: np.ndarray, mask: np.ndarray, code: Tissue, over: tuple[Tissue, ...]) -> None:
    """Set ``code`` on ``mask`` voxels whose current code is one of ``over`` (in place)."""
    paint(tissue, mask, code, is_any(tissue, over))
