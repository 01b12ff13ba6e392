"""progan_tf/utils/resolution.py: power-of-two resolution checks."""

import numpy as np
import pytest

from progan_tf.utils import resolution


@pytest.mark.parametrize("value, expected", [
    (1, True), (4, True), (1024, True), (np.int64(64), True),
    (0, False), (-4, False), (12, False), (4.0, False), (True, False), ("8", False)])
def test_is_power_of_two_accepts_integers_only(value, expected):
    assert resolution.is_power_of_two(value) is expected


def test_is_resolution_applies_the_bounds():
    assert resolution.is_resolution(4) and resolution.is_resolution(4096)
    assert not resolution.is_resolution(2)
    assert resolution.is_resolution(1024, maximum=1024)
    assert not resolution.is_resolution(2048, maximum=1024)
    assert resolution.is_resolution(16, minimum=16) and not resolution.is_resolution(8, minimum=16)


def test_check_resolution_names_the_option_and_the_value():
    assert resolution.check_resolution(32, "--resolution", maximum=1024) == 32
    with pytest.raises(ValueError, match=r"--resolution must be a power of two between 4 and "
                                         r"1024, received 48"):
        resolution.check_resolution(48, "--resolution", maximum=1024)
    with pytest.raises(ValueError, match=r"SWD resolution must be a power of two >= 16, "
                                         r"received 8"):
        resolution.check_resolution(8, "SWD resolution", minimum=16)
