"""What the count families (poisson, negbinomial, nbinom1) share: integer counts, a log link,
zero inflation."""
from __future__ import annotations

import numpy as np

from .base import Family

__all__ = ["CountFamily"]


class CountFamily(Family):
    """Non-negative integer counts with a log link; zero inflation applies."""

    links = ("log",)
    is_count = True
    allows_zi = True
    constant_response_unbounded = True

    def mustart(self, y, n_trials=1.0, weights=1.0):
        return np.asarray(y, dtype=float) + 0.1  # log(0) is not a start

    def _check_response(self, y, trials, name):
        bad_mask = (y < 0) | (y != np.round(y))
        if bad_mask.any():
            bad = y[bad_mask][:5]
            raise ValueError(
                f"{self.name} response {name!r} must be non-negative integer counts; found "
                f"{int(bad_mask.sum())} row(s) that are not, e.g. {bad.tolist()}. For a positive "
                f"continuous response use family='gamma', otherwise family='gaussian'."
            )
