"""Bar charts like the paper's Fig. 2 (ASR per trace size) and Fig. 3 (CE per corruption), per method."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def load_results(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(label, results) per robustness.json; the label is the results' ``label`` or the folder name."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "robustness.json"
        try:
            res = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ValueError(f"{path}: results file does not exist") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        out.append((res.get("label") or path.parent.name, res))
    return out


def _grouped_bars(ax: Any, groups: list[str], series: dict[str, list[float]], ylabel: str, title: str) -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, (label, vals) in enumerate(series.items()):
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def plot_asr(results: list[tuple[str, dict[str, Any]]], out: str | Path) -> Path:
    """Fig. 2: ASR (%) per number of spoofed points, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_spoof = [(lab, r) for lab, r in results if r.get("spoofing")]
    if not with_spoof:
        raise ValueError("none of the results has a spoofing section")
    sizes = sorted({s for _, r in with_spoof for s in r["spoofing"]}, key=int)
    series = {lab: [100 * r["spoofing"].get(s, {}).get("asr", np.nan) for s in sizes] for lab, r in with_spoof}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _grouped_bars(ax, [f"{s} pts" for s in sizes], series, "attack success rate (%) ↓", "LiDAR spoofing")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return Path(out)


def plot_ce(results: list[tuple[str, dict[str, Any]]], out: str | Path) -> Path:
    """Fig. 3: CE (%) per corruption and the mCE, one bar per method (needs ``CE`` in the results)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def ce_of(r: dict[str, Any]) -> dict[str, Any] | None:
        """{"CE", "mCE"} of a --suite result, or of a --protocol result's NDS (run with --baseline)."""
        if r.get("CE"):
            return {"CE": r["CE"], "mCE": r["mCE"]}
        nds = r.get("metrics", {}).get("NDS", {}) if r.get("protocol") else {}
        return {"CE": nds["CE"], "mCE": nds["mCE"]} if nds.get("CE") else None

    with_ce = [(lab, ce) for lab, r in results if (ce := ce_of(r))]
    if not with_ce:
        raise ValueError("none of the results has corruption errors (run with --baseline)")
    protocols = {r.get("protocol") for _, r in results if r.get("protocol")}
    names = sorted({c for _, r in with_ce for c in r["CE"]})
    series = {lab: [100 * r["CE"].get(c, np.nan) for c in names] + [100 * r["mCE"]] for lab, r in with_ce}
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(names) + 2), 3.5))
    title = f"{', '.join(sorted(protocols))} corruptions (NDS)" if protocols else "LiDAR corruptions"
    _grouped_bars(ax, names + ["mCE"], series, "corruption error (%) ↓", title)
    ax.axhline(100, color="k", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return Path(out)
