"""The report's figures, rendered to PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no GUI), and
saved without the software tag, so the same numbers give the same bytes. Each entry keeps
one colour and each mode one line style across every figure, and legends sit below the
axes so they never cover data; long entry labels are wrapped and laid out in fewer columns,
so the legend fits the figure's width.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator
from pencilbench.reports.tables import Size, SizeRow, budget_curve, size_axis

COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
LINES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
WIDTH, HEIGHT, DPI = 7.2, 4.4, 110


@dataclass(frozen=True)
class LineStyle:
    colour: str
    line: str
    marker: str


def line_styles(entries: pd.DataFrame) -> dict[str, LineStyle]:
    """A colour per entry (cycling after ten), line style and marker by mode (and style), from
    an entry table with columns ``entry``, ``model``, ``mode``, ``style``."""
    labels = sorted(entries["entry"].unique())
    variants = sorted({(mode, style) for mode, style in zip(entries["mode"], entries["style"], strict=True)})
    out = {}
    for entry, _, mode, style in entries[["entry", "model", "mode", "style"]].itertuples(index=False):
        variant = variants.index((mode, style))
        out[entry] = LineStyle(
            COLOURS[labels.index(entry) % len(COLOURS)],
            LINES[variant % len(LINES)],
            MARKERS[variant % len(MARKERS)],
        )
    return out


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _new(title: str) -> tuple[Figure, object]:
    figure = Figure(figsize=(WIDTH, HEIGHT), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11)
    axes.grid(True, which="major", alpha=0.3)
    return figure, axes


LEGEND_WRAP = 44  # characters per legend line
LEGEND_WIDTH = 110  # characters of legend text that fit across the figure at font size 8


def _legend(figure: Figure, axes: object, count: int) -> None:
    handles, labels = axes.get_legend_handles_labels()
    wrapped = ["\n".join(textwrap.wrap(label, LEGEND_WRAP, break_on_hyphens=False)) or label for label in labels]
    widest = max((len(line) for label in wrapped for line in label.split("\n")), default=1)
    columns = max(1, min(count, 3, LEGEND_WIDTH // (widest + 6)))
    figure.legend(
        handles,
        wrapped,
        loc="outside lower center",
        ncols=columns,
        fontsize=8,
        frameon=False,
    )


def _tokens_x_axis(axes: object, low: float, high: float) -> None:
    """A log-2 x axis of token counts labelled with plain integers."""
    axes.set_xscale("log", base=2)
    axes.set_xlim(low, high)
    axis = axes.xaxis
    # A narrow range gets ticks at 1.5 times the powers of two as well, so it is never unlabelled.
    subs = (1.0,) if high / low >= 8 else (1.0, 1.5)
    axis.set_major_locator(LogLocator(base=2, subs=subs, numticks=9))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0f}"))
    axis.set_minor_locator(NullLocator())


def _accuracy_axis(axes: object, label: str) -> None:
    axes.set_ylim(-0.03, 1.03)
    axes.set_ylabel(label)


def _split_knobs(task_sizes: Sequence[Size]) -> tuple[list[str], str]:
    """Tick labels holding only the knobs that differ between sizes, one per line (long
    labels side by side would overlap), and the knobs every size shares."""
    items = [size.label.split(" ") for size in task_sizes]
    shared = [item for item in items[0] if all(item in other for other in items)]
    ticks = ["\n".join(item for item in mine if item not in shared) for mine in items]
    return ticks, " ".join(shared)


def accuracy_vs_size(
    task: str, task_sizes: Sequence[Size], rows: Sequence[SizeRow], styles: Mapping[str, LineStyle]
) -> bytes:
    """Accuracy at each size, one line per entry with Wilson 95% error bars; the entries are
    nudged sideways a little so that equal points and their bars stay visible."""
    figure, axes = _new(f"{task}: accuracy by problem size")
    numeric = size_axis(task_sizes)
    log = False
    ticks, shared = _split_knobs(task_sizes)
    fixed = f"\nsame for every size: {shared}" if shared else ""
    if numeric is None:
        positions = [float(i) for i in range(len(task_sizes))]
        tilt = len(task_sizes) > 5
        axes.set_xticks(positions, ticks, rotation=20 if tilt else 0, ha="right" if tilt else "center", fontsize=8)
        axes.set_xlabel("problem size (ordered by gold CoT length)" + fixed)
        axes.set_xlim(-0.5, len(task_sizes) - 0.5)
    else:
        knob, positions = numeric
        log = max(positions) / max(min(positions), 1e-9) >= 8
        if log:
            axes.set_xscale("log", base=2)
        axes.xaxis.set_major_locator(FixedLocator(positions))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xlabel(f"problem size: {knob}" + (" (log scale)" if log else "") + fixed)
    where = {size.params: x for size, x in zip(task_sizes, positions, strict=True)}
    # Nudges are a share of the smallest gap between sizes, measured on the axis as drawn.
    drawn = np.log2(positions) if log else np.array(positions)
    gaps = np.diff(np.unique(drawn))
    gap = float(gaps.min()) if len(gaps) else 1.0
    entries = sorted({row.entry for row in rows})
    for index, entry in enumerate(entries):
        nudge = (index - (len(entries) - 1) / 2) * 0.3 / max(len(entries), 2) * gap
        mine = sorted((row for row in rows if row.entry == entry), key=lambda row: where[row.size.params])
        x = np.array([where[row.size.params] for row in mine])
        x = x * 2**nudge if log else x + nudge
        accuracy = np.array([row.score.accuracy for row in mine])
        # clipped: at 0% or 100% the Wilson bound can miss the point by a rounding error
        below = np.clip(accuracy - np.array([row.score.low for row in mine]), 0, None)
        above = np.clip(np.array([row.score.high for row in mine]) - accuracy, 0, None)
        style = styles[entry]
        axes.errorbar(
            x,
            accuracy,
            yerr=np.vstack([below, above]),
            color=style.colour,
            linestyle=style.line,
            marker=style.marker,
            markersize=5,
            capsize=3,
            elinewidth=0.9,
            label=entry,
        )
    _accuracy_axis(axes, "accuracy (share correct, 95% CI)")
    _legend(figure, axes, len(entries))
    return _png(figure)


def accuracy_vs_budget(title: str, frames: Mapping[str, pd.DataFrame], styles: Mapping[str, LineStyle]) -> bytes:
    """Share solved within a context budget B, one step curve per entry (macro over tasks)."""
    figure, axes = _new(title)
    peaks = np.concatenate([frame["peak_context"].to_numpy() for frame in frames.values()])
    low, high = max(1.0, peaks.min() / 1.3), peaks.max() * 1.3
    for entry, frame in frames.items():
        budgets, shares = budget_curve(frame)
        style = styles[entry]
        x = np.concatenate(([low], budgets, [high]))
        y = np.concatenate(([0.0], shares, [shares[-1] if len(shares) else 0.0]))
        axes.step(x, y, where="post", color=style.colour, linestyle=style.line, linewidth=1.8, label=entry)
    _tokens_x_axis(axes, low, high)
    axes.set_xlabel("context budget B (pencilbench tokens: compact tokens, instruct words; log scale)")
    _accuracy_axis(axes, "solved within budget B (share of samples)")
    _legend(figure, axes, len(frames))
    return _png(figure)


@dataclass(frozen=True)
class ContextTrail:
    """Live context length after each generated token, for one line of the sawtooth plot."""

    label: str
    lengths: tuple[int, ...]
    style: LineStyle
    reduces: bool  # a PENCIL trail: the zoomed panel is fitted to these


ZOOM_REDUCTIONS = 12


def live_context(title: str, prompt_tokens: int, trails: Sequence[ContextTrail]) -> bytes:
    """Live context over generation steps: CoT grows without end, PENCIL saws back down.

    The lower panel zooms on the first reductions of the first PENCIL trail and on the range
    the PENCIL trails live in, where the prompt and a long run would otherwise flatten the
    sawtooth into a line.
    """
    figure = Figure(figsize=(WIDTH, HEIGHT * 1.45), layout="constrained")
    full, zoom = figure.subplots(2, 1, height_ratios=(1, 1))
    full.set_title(title, fontsize=11)
    for axes in (full, zoom):
        for trail in trails:
            steps = np.arange(len(trail.lengths) + 1)
            lengths = np.concatenate(([prompt_tokens], trail.lengths))
            axes.step(
                steps,
                lengths,
                where="post",
                color=trail.style.colour,
                linestyle=trail.style.line,
                linewidth=1.3,
                label=trail.label,
            )
        axes.axhline(prompt_tokens, color="#555555", linewidth=0.8, linestyle=":", label="prompt length")
        axes.grid(True, alpha=0.3)
        axes.set_ylabel("live context (pencilbench tokens)")
        axes.set_xlabel("generation step (pencilbench tokens generated)")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    full.set_xlim(0, max(len(trail.lengths) for trail in trails))
    full.set_ylim(0, None)
    sawing = [trail.lengths for trail in trails if trail.reduces]
    if sawing:
        top = max(max(lengths) for lengths in sawing)
        margin = 0.1 * (top - prompt_tokens) + 1
        zoom.set_ylim(prompt_tokens - margin, top + margin)
        drops = np.flatnonzero(np.diff(sawing[0]) < 0)
        end = int(drops[ZOOM_REDUCTIONS - 1]) + 2 if len(drops) > ZOOM_REDUCTIONS else len(sawing[0])
        zoom.set_xlim(0, end)
        zoom.set_title(f"zoom: the first {min(len(drops), ZOOM_REDUCTIONS)} reductions, PENCIL range", fontsize=9)
    else:
        zoom.set_title("no PENCIL trail to zoom on", fontsize=9)
    _legend(figure, full, len(trails) + 1)
    return _png(figure)
