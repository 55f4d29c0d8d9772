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


# -- the published protocols' metrics --------------------------------------------------------------------------
def _levels(values: Sequence[float], what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{what}: need a non-empty list of per-severity scores, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: scores must be finite, got {a.tolist()}")
    return a


def robo3d_ce(scores: Sequence[float], baseline_scores: Sequence[float]) -> float:
    """Robo3D corruption error CE_i = sum_l (1 - m_l) / sum_l (1 - m^base_l) over the levels l of corruption i.

    Scores are fractions in [0, 1] (NDS, mAP or mIoU); returned as a fraction (1.0 = the baseline's 100 %).
    The same formula as :func:`corruption_error`, which the paper's Fig. 3 uses."""
    return corruption_error(_levels(scores, "model"), _levels(baseline_scores, "baseline"))


def robo3d_rr(scores: Sequence[float], clean: float) -> float:
    """Robo3D resilience rate RR_i = sum_l m_l / (L * m_clean) over the L levels (L = 3 in Robo3D)."""
    a = _levels(scores, "model")
    if not clean > 0:
        raise ValueError(f"clean score must be > 0 for RR, got {clean}")
    return float(a.sum() / (a.size * float(clean)))


def robo3d_summary(scores: Mapping[str, Sequence[float]], clean: float,
                   baseline: Mapping[str, Sequence[float]] | None = None) -> dict[str, object]:
    """{"RR": {c: RR_c}, "mRR": mean, and with a baseline "CE": {c: CE_c}, "mCE": mean} for one metric."""
    if not scores:
        raise ValueError("no corruptions to summarise")
    rr = {c: robo3d_rr(scores[c], clean) for c in sorted(scores)}
    out: dict[str, object] = {"RR": rr, "mRR": float(np.mean(list(rr.values())))}
    if baseline is not None:
        mce, ce = mean_corruption_error({c: _levels(v, c) for c, v in scores.items()},
                                        {c: _levels(v, c) for c, v in baseline.items()})
        out["CE"], out["mCE"] = ce, mce
    return out


def resistance_ability(scores: Sequence[float], clean: float) -> dict[str, object]:
    """MultiCorrupt RA_{c,s} = M_{c,s} / M_clean per level and RA_c = their mean."""
    a = _levels(scores, "model")
    if not clean > 0:
        raise ValueError(f"clean score must be > 0 for RA, got {clean}")
    per = (a / float(clean)).tolist()
    return {"per_severity": per, "RA": float(np.mean(per))}


def relative_resistance_ability(scores: Sequence[float], reference_scores: Sequence[float]) -> float:
    """MultiCorrupt RRA_c = sum_s M_{c,s} / sum_s M^ref_{c,s} - 1 (> 0: more robust than the reference)."""
    a, b = _levels(scores, "model"), _levels(reference_scores, "reference")
    if a.shape != b.shape:
        raise ValueError(f"model and reference have different severity counts: {a.size} vs {b.size}")
    if not b.sum() > 0:
        raise ValueError("reference scores sum to 0: RRA is undefined")
    return float(a.sum() / b.sum() - 1.0)


def multicorrupt_summary(scores: Mapping[str, Sequence[float]], clean: float,
                         reference: Mapping[str, Sequence[float]] | None = None) -> dict[str, object]:
    """{"RA": {c: RA_c}, "RA_per_severity": {c: [..]}, "mRA"} and with a reference model {"RRA", "mRRA"}."""
    if not scores:
        raise ValueError("no corruptions to summarise")
    ra = {c: resistance_ability(scores[c], clean) for c in sorted(scores)}
    out: dict[str, object] = {"RA": {c: v["RA"] for c, v in ra.items()},
                              "RA_per_severity": {c: v["per_severity"] for c, v in ra.items()},
                              "mRA": float(np.mean([v["RA"] for v in ra.values()]))}
    if reference is not None:
        missing = sorted(set(scores) - set(reference))
        if missing:
            raise ValueError(f"reference lacks corruptions {missing}")
        rra = {c: relative_resistance_ability(scores[c], reference[c]) for c in sorted(scores)}
        out["RRA"], out["mRRA"] = rra, float(np.mean(list(rra.values())))
    return out
