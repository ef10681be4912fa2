"""Stan's windowed warm-up schedule, as one pure function.

The warm-up of :mod:`bayes_glmm.bayes.native`'s NUTS (``csrc/nuts.c``) follows Stan's
three phases (Stan Reference Manual, "HMC algorithm parameters", automatic parameter tuning):

* an initial fast buffer (``init_buffer`` iterations) that adapts the step size only, while
  the chain travels to the typical set;
* a slow phase of windows that estimate the diagonal metric (the variance of each
  coordinate), the first of ``base_window`` iterations, each next one twice the previous;
  the last one is stretched to the end of the slow phase when the window after it would
  not fit in it.  After each window the metric is updated and the step-size adaptation
  restarts;
* a terminal fast buffer (``term_buffer`` iterations) that adapts the step size to the
  final metric.

When ``init_buffer + base_window + term_buffer`` exceeds the warm-up, the phases become 15%,
75% and 10% of it; below 20 warm-up iterations no metric is estimated at all.  This module
computes the schedule; the C engine receives it (:func:`window_ends`) and applies it, so the
rule lives in one place and is tested on its own (``tests/test_sampler_failures.py``).
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["Schedule", "windows", "window_ends", "MIN_TUNE_FOR_METRIC"]

#: below this many warm-up iterations Stan estimates no metric (the step size only)
MIN_TUNE_FOR_METRIC = 20


class Schedule(NamedTuple):
    """The warm-up phases of :func:`windows`.

    Attributes
    ----------
    init_buffer : int
        Iterations ``0 .. init_buffer - 1`` adapt the step size only.
    windows : tuple of (int, int)
        The metric windows as half-open iteration ranges ``[start, end)``: contiguous, the
        first starting at ``init_buffer``, the last ending at ``tune - term_buffer``.  Empty
        when no metric is estimated.
    term_buffer : int
        The last ``term_buffer`` warm-up iterations adapt the step size only.
    """

    init_buffer: int
    windows: tuple
    term_buffer: int


def windows(tune: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25) -> Schedule:
    """Stan's warm-up windows for ``tune`` warm-up iterations.

    Parameters
    ----------
    tune : int
        Warm-up iterations (>= 0).
    init_buffer, term_buffer, base_window : int
        Stan's defaults (75, 50, 25): the fast buffers and the first metric window.

    Returns
    -------
    Schedule
        With no windows (and the whole warm-up as ``init_buffer``) when ``tune < 20``.

    Examples
    --------
    >>> [b - a for a, b in windows(1000).windows]
    [25, 50, 100, 200, 500]
    >>> windows(100)
    Schedule(init_buffer=15, windows=((15, 90),), term_buffer=10)
    """
    for name, v in (("tune", tune), ("init_buffer", init_buffer), ("term_buffer", term_buffer)):
        if int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if int(base_window) != base_window or base_window < 1:
        raise ValueError(f"base_window must be a positive integer, got {base_window!r}")
    tune = int(tune)
    if tune < MIN_TUNE_FOR_METRIC:
        return Schedule(tune, (), 0)
    if init_buffer + base_window + term_buffer > tune:
        # Stan truncates toward zero in double arithmetic (unsigned = 0.15 * num_warmup);
        # the integer forms are the same for every tune (the test checks 1..1000)
        init_buffer = int(0.15 * tune)
        term_buffer = int(0.1 * tune)
        base_window = tune - (init_buffer + term_buffer)
    slow_end = tune - term_buffer  # first iteration of the terminal buffer
    out, start, size = [], int(init_buffer), int(base_window)
    end = start + size
    while True:
        out.append((start, end))
        if end == slow_end:
            break
        start, size = end, 2 * size
        end = start + size
        # stretch this window to the end of the slow phase when the next (twice as long)
        # would not fit after it
        if end + 2 * size > slow_end:
            end = slow_end
    return Schedule(int(init_buffer), tuple(out), int(term_buffer))


def window_ends(schedule: Schedule) -> list:
    """The last iteration (0-based, inclusive) of each metric window: what ``nuts.c`` reads
    (``bg_nuts_cfg.window_ends``); the slow phase starts at ``schedule.init_buffer``."""
    return [end - 1 for _, end in schedule.windows]
