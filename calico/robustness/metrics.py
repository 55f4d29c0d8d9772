"""Robustness metrics: corruption error (CE), mean CE, attack success rate (ASR), drop against clean."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def corruption_error(scores: Sequence[float], baseline_scores: Sequence[float]) -> float:
    """CE_c = sum_s (1 - NDS_{c,s}) / sum_s (1 - NDS^base_{c,s}) over the severities s of one corruption.

    ``scores`` / ``baseline_scores``: the model's and the baseline's NDS (in [0, 1]) at each severity, same
    order. Returned as a fraction (1.0 = as bad as the baseline, the paper's 100 %).
    """
    a, b = np.asarray(scores, dtype=np.float64), np.asarray(baseline_scores, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal-length non-empty score lists, got {a.shape} and {b.shape}")
    if ((a < 0) | (a > 1) | (b < 0) | (b > 1)).any():
        raise ValueError("NDS values must lie in [0, 1]")
    denom = float((1.0 - b).sum())
    if denom <= 0:
        raise ValueError("baseline has NDS = 1 at every severity: CE is undefined")
    return float((1.0 - a).sum() / denom)


def mean_corruption_error(
    scores: Mapping[str, Sequence[float]], baseline: Mapping[str, Sequence[float]]
) -> tuple[float, dict[str, float]]:
    """mCE = mean over corruptions c of CE_c; returns (mCE, {c: CE_c}). Both maps need the same keys."""
    if set(scores) != set(baseline) or not scores:
        raise ValueError(f"corruptions differ: model {sorted(scores)} vs baseline {sorted(baseline)}")
    ce = {c: corruption_error(scores[c], baseline[c]) for c in sorted(scores)}
    return float(np.mean(list(ce.values()))), ce


def attack_success_rate(successes: Sequence[bool]) -> float:
    """ASR = successful attacks / attacked frames."""
    s = np.asarray(successes, dtype=bool)
    if s.size == 0:
        raise ValueError("no attacked frames: ASR is undefined")
    return float(s.mean())


def metric_drop(clean: float, perturbed: float) -> dict[str, float]:
    """Absolute (clean - perturbed) and relative ((clean - perturbed) / clean) drop of a higher-is-better metric."""
    drop = float(clean) - float(perturbed)
    return {"clean": float(clean), "perturbed": float(perturbed), "drop": drop,
            "relative_drop": drop / float(clean) if clean else float("nan")}
