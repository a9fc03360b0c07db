"""The comparison at the end of a sweep: one row per trial (weights, per-teacher validation rewards,
change from before training ± paired s.e., Pareto mark beyond noise), as a Markdown table, JSON,
and a PNG of every trial's per-teacher change with ±1 s.e. error bars.

A row is a plain dict: trial, status (`ok`, `stopped` by ASHA, or `error`), weights {teacher: w},
val {teacher: mean reward after training} (empty when the trial reported none), val_total_ref,
steps, mlflow_run_id, error; from a finished trial's final report also change {teacher or
`total_ref`: {diff, se}} (after minus before training, paired clip by clip) and val_clips
{teacher: {clip_id: mean after training}}; set here: pareto, dominated_by.

A trial is Pareto-optimal when no other trial dominates it beyond noise (pareto.py,
`dominates_beyond_noise`): gaps between two trials are paired clip by clip on their `val_clips`
(every trial validates on the same clips with the same noise). Trials without a final change ± s.e.
(failed, or stopped by ASHA before their final validation) are compared with nothing.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Optional, Sequence

from common.types import TEACHERS
from orchestrator.sweeps.pareto import NOISE_Z, Estimate, dominators_beyond_noise

SHORT = {"semantic": "sem", "timing": "tim", "aesthetic": "aes", "spatial": "spa"}
TOTAL_REF = "total_ref"
"""The key of the comparable total (under the sweep's weights) in a row's `change`."""


def change_se(row: Mapping[str, Any], key: str) -> float:
    """The s.e. of the row's change on `key` (a teacher or `total_ref`); infinite (unknown) when the
    row's per-clip values show fewer than 2 validation clips, where a reported s.e. of 0 only means
    that one clip cannot measure its own spread."""
    clips = row.get("val_clips") or {}
    if clips and min(len(v) for v in clips.values()) < 2:
        return math.inf
    return float(row["change"][key]["se"])


def estimates(row: Mapping[str, Any]) -> Optional[dict[str, Estimate]]:
    """The row's per-teacher Estimates (change, s.e., per-clip means after training), or None when
    the row has no change ± s.e. for every teacher (a failed or stopped trial)."""
    change, clips = row.get("change") or {}, row.get("val_clips") or {}
    if not all(t in change for t in TEACHERS):
        return None
    return {t: Estimate(float(change[t]["diff"]), change_se(row, t), clips.get(t)) for t in TEACHERS}


def mark_pareto(rows: list[dict[str, Any]], z: float = NOISE_Z) -> list[dict[str, Any]]:
    """Set row["dominated_by"] (names of the trials that dominate it beyond `z` s.e. on the four
    teachers) and row["pareto"] (comparable and dominated by none). Rows without a change ± s.e.
    (failed or stopped trials) are never optimal and dominate nothing."""
    points = [estimates(r) for r in rows]
    for row, point, doms in zip(rows, points, dominators_beyond_noise(points, z)):
        row["dominated_by"] = [rows[j]["trial"] for j in doms]
        row["pareto"] = point is not None and not doms
    return rows


def sorted_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pareto-optimal trials first, then by the comparable total, trials without results last."""
    def key(r):
        total = r.get("val_total_ref", math.nan)
        return (not r.get("pareto", False), -total if math.isfinite(total) else math.inf, r["trial"])
    return sorted(rows, key=key)


def _num(x: Any, fmt: str = ".4f") -> str:
    return format(float(x), fmt) if x is not None and math.isfinite(float(x)) else "-"


def change_text(diff: Optional[float], se: float, z: float = NOISE_Z) -> str:
    """`+0.0031 ± 0.0040`, in bold when the change is beyond `z` s.e.; `± ?` when the s.e. is
    unknown (infinite); "" without a change."""
    if diff is None or not math.isfinite(float(diff)):
        return ""
    if not math.isfinite(se):
        return f"{diff:+.4f} ± ?"
    text = f"{diff:+.4f} ± {se:.4f}"
    return f"**{text}**" if abs(diff) > z * se else text


def _cell(value: Any, row: Mapping[str, Any], key: str, z: float) -> str:
    change = (row.get("change") or {}).get(key)
    delta = change_text(float(change["diff"]), change_se(row, key), z) if change else ""
    return f"{_num(value)} ({delta})" if delta else _num(value)


def markdown_table(rows: Sequence[dict[str, Any]], baseline: Optional[Mapping[str, float]] = None,
                   z: float = NOISE_Z) -> str:
    """One line per trial: weights; per teacher the validation reward after training and, in
    brackets, its change from before training ± paired s.e. (bold beyond `z` s.e.); the same for the
    total under the sweep's weights; Pareto mark (*, beyond noise); the trials that dominate the
    row beyond noise; steps; status. `baseline` (the policy before training) is the first line when
    given. A note under the table says how to read it."""
    head = (["trial"] + [f"w_{SHORT[t]}" for t in TEACHERS] + [f"{t} (Δ ± s.e.)" for t in TEACHERS]
            + ["total (sweep w)", "pareto", f"dominated by (> {z:g} s.e.)", "steps", "status"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if baseline:
        cells = ["before training"] + ["-"] * len(TEACHERS) + [_num(baseline.get(t)) for t in TEACHERS]
        cells += [_num(baseline.get("total_ref")), "", "", "0", ""]
        lines.append("| " + " | ".join(cells) + " |")
    for r in sorted_rows(rows):
        status = r["status"] if not r.get("error") else f"error: {str(r['error']).splitlines()[0][:80]}"
        if estimates(r) is not None:
            dominated = ", ".join(r.get("dominated_by", [])) or "none"
        else:
            dominated = "not compared (no final change ± s.e.)" if r.get("val") else "-"
        cells = [r["trial"]] + [_num(r["weights"].get(t), ".3f") for t in TEACHERS]
        cells += [_cell(r["val"].get(t), r, t, z) for t in TEACHERS]
        cells += [_cell(r.get("val_total_ref"), r, TOTAL_REF, z), "*" if r.get("pareto") else "",
                  dominated, str(r.get("steps", "-")), status]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    clips = sorted({len(next(iter(r["val_clips"].values()), {})) for r in rows if r.get("val_clips")})
    count = f" ({'/'.join(str(n) for n in clips)})" if clips else ""
    lines += ["", f"Δ: change from before training, the mean over the validation clips{count} of each clip's "
                  f"difference, ± its standard error; bold: beyond {z:g} s.e. A trial dominates another when on "
                  f"no teacher it is worse by more than {z:g} s.e. of their gap and on some teacher better by "
                  f"more than {z:g} s.e.; the gap between two trials is paired clip by clip (same clips and "
                  f"noise), so its s.e. is often well below either trial's Δ s.e. (without per-clip values: "
                  f"sqrt(s.e.1² + s.e.2²) of their Δ); ± ?: one clip, no s.e., so no decision. "
                  f"pareto (*): no trial dominates it."]
    return "\n".join(lines)


def pareto_png(rows: Sequence[dict[str, Any]], path: str, z: float = NOISE_Z, title: str = "") -> str:
    """One panel per teacher and the sweep's total: every trial's change from before training
    (trials on x, Pareto-optimal ones in colour and labelled with *), ±1 s.e. error bars, a zero
    line, in the reward's own units (no rescaling). Trials without a change ± s.e. are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [r for r in sorted_rows(rows) if estimates(r) is not None]
    keys = [*TEACHERS, TOTAL_REF]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 4.2), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, key in zip(axes[0], keys):
        ax.axhline(0.0, color="black", linewidth=0.8)
        for i, r in enumerate(drawn):
            c = (r.get("change") or {}).get(key)
            if not c:
                continue
            style = (dict(color=colors(i % 10), marker="o", markersize=6, elinewidth=2) if r.get("pareto")
                     else dict(color="0.55", marker="o", markersize=4, markerfacecolor="white", elinewidth=1))
            se = change_se(r, key)  # unknown (one clip): the point without a bar
            ax.errorbar([i], [c["diff"]], yerr=[se if math.isfinite(se) else 0.0], capsize=3, linestyle="none",
                        **style)
        ax.set_xticks(range(len(drawn)), [r["trial"] + (" *" if r.get("pareto") else "") for r in drawn],
                      rotation=90, fontsize=7)
        ax.set_xlim(-0.7, max(len(drawn), 1) - 0.3)
        ax.set_title("total (sweep weights)" if key == TOTAL_REF else key, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, "no trial with a final\nchange ± s.e.", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
    axes[0][0].set_ylabel("validation change from before training (±1 s.e.)")
    fig.suptitle((title or "Sweep: per-teacher change from before training")
                 + f"\n* = Pareto-optimal beyond {z:g} s.e. (paired per clip); grey = dominated", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
