"""Paired comparison of two policies graded on the same clips, noise and plans (`prismrl eval` with
a baseline): per teacher, the mean over clips of (checkpoint - baseline), each clip first averaged
over its samples, with the standard error of that mean and how many clips went up and down.

A difference of means says little on its own: clips differ far more from one another than two
policies do, so the spread that matters is that of the per-clip differences. A margin of several
standard errors, on clips the policies were not trained on, is a difference that holds.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def per_clip_means(rows: Sequence[dict[str, Any]], key: str) -> dict[str, float]:
    """{clip_id: mean of row[key] over that clip's samples}, in first-seen clip order."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        sums.setdefault(r["clip_id"], []).append(float(r[key]))
    return {c: float(np.mean(v)) for c, v in sums.items()}


def per_clip_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """{key: {clip_id: mean of that key over the clip's samples}}: what another run needs to compare
    with these rows clip by clip later (e.g. two sweep trials validated on the same clips and noise)."""
    return {key: per_clip_means(rows, key) for key in keys}


def paired_differences(rows: Sequence[dict[str, Any]], baseline_rows: Sequence[dict[str, Any]],
                       keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """{key: {diff, se, higher, lower, clips}}: mean per-clip difference (rows minus baseline_rows),
    its standard error (sample std / sqrt(clips); 0 for one clip) and the clips above and below."""
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        a, b = per_clip_means(rows, key), per_clip_means(baseline_rows, key)
        if set(a) != set(b):
            missing = sorted(set(a) ^ set(b))[:5]
            raise ValueError(f"paired comparison of '{key}': clip ids differ between the two policies, e.g. {missing}")
        d = np.array([a[c] - b[c] for c in a])
        se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
        out[key] = {"diff": float(d.mean()), "se": se, "higher": int((d > 0).sum()), "lower": int((d < 0).sum()),
                    "clips": int(d.size)}
    return out


def paired_markdown(paired: dict[str, dict[str, float]]) -> str:
    """The eval.md section for `paired_differences`."""
    lines = ["", "## Paired per-clip differences (checkpoint - baseline)", "",
             "| teacher | mean Δ | ± s.e. | Δ / s.e. | clips higher | clips lower |", "|---|---|---|---|---|---|"]
    for key, p in paired.items():
        ratio = p["diff"] / p["se"] if p["se"] > 0 else float("nan")
        lines.append(f"| {key} | {p['diff']:+.4f} | {p['se']:.4f} | {ratio:+.1f} | {p['higher']}/{p['clips']} | "
                     f"{p['lower']}/{p['clips']} |")
    return "\n".join(lines) + "\n"
