"""A PET synthesised from a CT: tissue SUVs, nothing outside the body, the CT's exact grid."""

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume
from autopaint_app.core.synthetic_pet import background_suv, synthetic_pet_from_ct


def _torso() -> Volume:
    """Air; a 120 x 120 mm muscle block with a fat layer inside, a lung box and a bone rod; a couch."""
    hu = np.full((12, 160, 160), -1000, np.int16)
    hu[:, 20:140, 20:140] = -100                     # fat layer
    hu[:, 30:130, 30:130] = 45                       # muscle
    hu[:, 40:80, 40:80] = -860                       # lung
    hu[:, 95:115, 95:115] = 220                      # cancellous bone
    hu[:, 150:153, 5:155] = 180                      # 3-pixel couch below the body, apart from it
    direction = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    return Volume(hu, (1.0, 1.0, 4.0), (-80.5, 12.25, 300.0), direction, source="torso.nii.gz")


def test_background_suv_follows_the_phantom_tissues():
    hu = np.array([-1000, -860, -100, 45, 220, 650, 1800], np.float32)
    # 45 HU lies between the 10 HU (0.7) and 90 HU (0.9) anchors; 650 HU between 600 (0.4) and 1500 (0).
    expected = [0.0, 0.5, 0.3, 0.7 + 0.2 * 35 / 80, 1.3, 0.4 - 0.4 * 50 / 900, 0.0]
    assert background_suv(hu) == pytest.approx(expected, abs=1e-6)


def test_synthetic_pet_has_tissue_uptake_no_activity_outside_the_body_and_the_ct_grid():
    ct = _torso()
    pet = synthetic_pet_from_ct(ct, noise=False)
    assert (pet.spacing, pet.origin, pet.direction) == (ct.spacing, ct.origin, ct.direction)
    assert pet.shape == ct.shape and pet.array.dtype == np.float32 and pet.meta["synthetic_pet"] is True
    middle = pet.array[6]
    assert middle[60, 60] == pytest.approx(0.5, abs=0.05)          # lung centre
    assert middle[120, 60] == pytest.approx(0.7 + 0.2 * 35 / 80, abs=0.06)  # muscle
    assert middle[105, 105] == pytest.approx(1.3, abs=0.15)        # marrow, blurred a little
    assert middle[2, 2] == 0.0 and middle[151, 80] < 0.01           # air and the couch: no uptake
    noisy = synthetic_pet_from_ct(ct)
    assert np.array_equal(noisy.array, synthetic_pet_from_ct(ct).array)      # the same CT, the same PET
    assert not np.array_equal(noisy.array, synthetic_pet_from_ct(ct, seed=5).array)
    assert noisy.array.min() >= 0.0 and 0.02 < noisy.array[:, 110:125, 40:80].std() < 0.3


def test_a_ct_without_a_finite_value_is_refused_by_name():
    ct = Volume(np.full((2, 8, 8), np.nan, np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), source="broken_ct.nii.gz")
    with pytest.raises(InputError, match=r"broken_ct\.nii\.gz: the CT holds no finite value"):
        synthetic_pet_from_ct(ct)
