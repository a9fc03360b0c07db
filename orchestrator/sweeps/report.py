"""The comparison at the end of a sweep: one row per trial (weights, per-teacher validation rewards,
Pareto mark), as a Markdown table, JSON, and a parallel-coordinates PNG.

A row is a plain dict: trial, status (`ok`, `stopped` by ASHA, or `error`), weights {teacher: w},
val {teacher: mean reward after training} (empty when the trial reported none), val_total_ref,
steps, mlflow_run_id, error, pareto.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Optional, Sequence

from common.types import TEACHERS
from orchestrator.sweeps.pareto import pareto_mask

SHORT = {"semantic": "sem", "timing": "tim", "aesthetic": "aes", "spatial": "spa"}


def mark_pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set row["pareto"]: non-dominated on the four teachers' validation rewards (rows without
    validation rewards, e.g. failed trials, are never optimal)."""
    points = [[float(r["val"].get(t, math.nan)) for t in TEACHERS] for r in rows]
    for row, optimal in zip(rows, pareto_mask(points)):
        row["pareto"] = optimal
    return rows


def sorted_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pareto-optimal trials first, then by the comparable total, trials without results last."""
    def key(r):
        total = r.get("val_total_ref", math.nan)
        return (not r.get("pareto", False), -total if math.isfinite(total) else math.inf, r["trial"])
    return sorted(rows, key=key)


def _num(x: Any, fmt: str = ".4f") -> str:
    return format(float(x), fmt) if x is not None and math.isfinite(float(x)) else "-"


def markdown_table(rows: Sequence[dict[str, Any]], baseline: Optional[Mapping[str, float]] = None) -> str:
    """One line per trial: weights, validation rewards per teacher, total under the sweep's weights,
    Pareto mark (*), status. `baseline` (the policy before training) is the first line when given."""
    head = (["trial"] + [f"w_{SHORT[t]}" for t in TEACHERS] + list(TEACHERS)
            + ["total (sweep w)", "pareto", "steps", "status"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if baseline:
        cells = ["before training"] + ["-"] * len(TEACHERS) + [_num(baseline.get(t)) for t in TEACHERS]
        cells += [_num(baseline.get("total_ref")), "", "0", ""]
        lines.append("| " + " | ".join(cells) + " |")
    for r in sorted_rows(rows):
        status = r["status"] if not r.get("error") else f"error: {str(r['error']).splitlines()[0][:80]}"
        cells = [r["trial"]] + [_num(r["weights"].get(t), ".3f") for t in TEACHERS]
        cells += [_num(r["val"].get(t)) for t in TEACHERS]
        cells += [_num(r.get("val_total_ref")), "*" if r.get("pareto") else "", str(r.get("steps", "-")), status]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def pareto_png(rows: Sequence[dict[str, Any]], path: str, baseline: Optional[Mapping[str, float]] = None,
               title: str = "") -> str:
    """Parallel coordinates of every trial's four validation rewards (each axis scaled to the range
    seen on it, raw min and max written at its ends); Pareto-optimal trials drawn bold and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [r for r in rows if all(math.isfinite(r["val"].get(t, math.nan)) for t in TEACHERS)]
    series = [[r["val"][t] for t in TEACHERS] for r in drawn]
    if baseline:
        series.append([baseline[t] for t in TEACHERS])
    lo = [min(s[i] for s in series) if series else 0.0 for i in range(len(TEACHERS))]
    hi = [max(s[i] for s in series) if series else 1.0 for i in range(len(TEACHERS))]

    def scaled(values):
        return [(v - a) / (b - a) if b > a else 0.5 for v, a, b in zip(values, lo, hi)]

    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = list(range(len(TEACHERS)))
    colors = plt.get_cmap("tab10")
    for i, r in enumerate(drawn):
        y = scaled([r["val"][t] for t in TEACHERS])
        if r.get("pareto"):
            ax.plot(x, y, marker="o", linewidth=2.5, color=colors(i % 10), label=f"{r['trial']} (Pareto)")
        else:
            ax.plot(x, y, marker=".", linewidth=1, linestyle="--", color="0.6", label=r["trial"])
    if baseline:
        ax.plot(x, scaled([baseline[t] for t in TEACHERS]), color="black", linestyle=":", label="before training")
    ax.set_xticks(x, [f"{t}\n[{a:.3g}, {b:.3g}]" for t, a, b in zip(TEACHERS, lo, hi)])
    ax.set_ylabel("validation reward (scaled per teacher)")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(axis="x")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title or "Sweep: per-teacher validation rewards", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
