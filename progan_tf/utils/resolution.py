"""Checks of image resolutions: powers of two within a range."""

import numbers


def is_power_of_two(value):
    """True for an integer (Python or NumPy, not a bool) 1, 2, 4, 8, ..."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
            and int(value) & (int(value) - 1) == 0)


def is_resolution(value, minimum=4, maximum=None):
    """True for a power of two in [minimum, maximum] (no upper bound when maximum is None)."""
    return bool(is_power_of_two(value) and value >= minimum
                and (maximum is None or value <= maximum))


def check_resolution(value, what="resolution", minimum=4, maximum=None):
    """Returns `value` when `is_resolution(value, minimum, maximum)`, else raises ValueError
    naming `what` and quoting the value."""
    if not is_resolution(value, minimum, maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{what} must be a power of two {bound}, received {value!r}")
    return value
