"""Comparisons with their uncertainty: mean ± std over seeds and paired differences with a 95 % interval.

A claim that method A beats B rests on several seeds where A and B share everything but the method (the
same fine-tuning seed: data order, head initialisation, augmentation draws), so the per-seed difference
``A_s - B_s`` removes the seed-to-seed variation both share. Its interval is Student's t over the seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count of finite values."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float | None]) -> Summary:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return Summary(float("nan"), float("nan"), 0)
    return Summary(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, int(len(v)))


@dataclass(frozen=True)
class PairedDiff:
    """``a - b`` over paired seeds: mean, 95 % t-interval ``[lo, hi]`` (nan with one pair), per-seed values."""

    mean: float
    lo: float
    hi: float
    n: int
    diffs: tuple[float, ...]

    @property
    def above_zero(self) -> bool:
        """The interval lies above zero (the claim 'a beats b' holds at 95 %)."""
        return self.n > 1 and self.lo > 0

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+2.3 [+0.4, +4.2]`` (values times ``scale``); just the mean with one pair."""
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{self.mean * scale:+.{digits}f} (1 seed)"
        return f"{self.mean * scale:+.{digits}f} [{self.lo * scale:+.{digits}f}, {self.hi * scale:+.{digits}f}]"


def paired_difference(a: dict[int, float], b: dict[int, float], confidence: float = 0.95) -> PairedDiff:
    """Paired difference of two ``{seed: value}`` maps over the seeds both have (finite values only)."""
    from scipy import stats

    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None
                   and np.isfinite(a[s]) and np.isfinite(b[s]))
    d = np.asarray([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) == 0:
        return PairedDiff(float("nan"), float("nan"), float("nan"), 0, ())
    mean = float(d.mean())
    if len(d) == 1:
        return PairedDiff(mean, float("nan"), float("nan"), 1, (mean,))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return PairedDiff(mean, mean - half, mean + half, len(d), tuple(float(x) for x in d))
