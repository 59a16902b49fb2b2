"""core.review: lesion numbering matches lesion_table, accepted mask, CSV and export (atomic, no overwrite)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from autopaint_app.core.errors import OutputExistsError
from autopaint_app.core.io import Volume, read_volume
from autopaint_app.core.lesions import lesion_table
from autopaint_app.core.review import (CSV_COLUMNS, accepted_mask, export_review, label_lesions, lesion_rows,
                                       write_lesion_csv)


@pytest.fixture
def three_lesions():
    """Mask (z, y, x) = (6, 20, 30) with three blobs; the two cubes touch only by a corner (one lesion)."""
    mask = np.zeros((6, 20, 30), dtype=bool)
    mask[1:3, 2:5, 2:5] = True        # 18 voxels
    mask[3, 5, 5] = True              # corner-touching the first: same 26-connected lesion
    mask[2:5, 10:14, 20:25] = True    # 60 voxels
    mask[5, 18, 1] = True             # 1 voxel
    suv = np.full(mask.shape, 1.0)
    suv[2, 12, 22] = 9.0
    return mask, suv


def test_labels_follow_lesion_table_numbering(three_lesions):
    mask, suv = three_lesions
    labels = label_lesions(mask)
    table = lesion_table(mask, suv, (2.0, 2.0, 3.0))
    assert labels.dtype == np.int32 and labels.max() == len(table) == 3
    for lesion in table:
        assert int((labels == lesion.label).sum()) == lesion.voxels
    assert [lesion.voxels for lesion in table] == [19, 60, 1]


def test_accepted_mask_drops_rejected_lesions(three_lesions):
    mask, _ = three_lesions
    labels = label_lesions(mask)
    assert np.array_equal(accepted_mask(labels, []), mask)
    kept = accepted_mask(labels, [2])
    assert kept.sum() == 20 and not kept[2:5, 10:14, 20:25].any()
    assert not accepted_mask(labels, [1, 2, 3]).any()


def test_csv_lists_every_lesion_with_decision(three_lesions, tmp_path):
    mask, suv = three_lesions
    table = lesion_table(mask, suv, (2.0, 2.0, 3.0))
    path = write_lesion_csv(table, tmp_path / "lesions.csv", rejected=[3])
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["lesion"], r["accepted"], r["voxels"]) for r in rows] == [("1", "True", "19"), ("2", "True", "60"),
                                                                           ("3", "False", "1")]
    assert float(rows[1]["volume_ml"]) == pytest.approx(60 * 12 / 1000) and float(rows[1]["suv_max"]) == 9.0
    with pytest.raises(OutputExistsError):
        write_lesion_csv(table, path)
    assert lesion_rows(lesion_table(mask))[0]["suv_max"] == ""  # no SUV: empty cells, not "None"


def test_export_writes_accepted_mask_on_reference_grid(three_lesions, tmp_path):
    mask, suv = three_lesions
    reference = Volume(np.zeros(mask.shape, np.int16), (2.0, 2.0, 3.0), (-10.5, 4.25, 100.0),
                       (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    labels, table = label_lesions(mask), lesion_table(mask, suv, reference.spacing)
    paths = export_review(labels, table, reference, tmp_path, "case7", rejected=[2])
    written = read_volume(paths["mask"])
    assert written.same_grid(reference) and written.array.dtype == np.uint8
    assert np.array_equal(written.array > 0, accepted_mask(labels, [2]))
    before = paths["table"].read_bytes()
    with pytest.raises(OutputExistsError):
        export_review(labels, table, reference, tmp_path, "case7")
    assert paths["table"].read_bytes() == before
    export_review(labels, table, reference, tmp_path, "case7", overwrite=True)
    assert read_volume(paths["mask"]).array.sum() == mask.sum()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case7_lesions.csv", "case7_mask.nii.gz"]
