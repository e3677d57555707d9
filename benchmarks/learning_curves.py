"""The learning curves of every option tried for the default run: PQ_th and mask AP against train CPU-minutes.

Run: `python -m benchmarks learning_curves`; reads results/learning_options.jsonl (one line per evaluated
checkpoint, written by `learning_options`) and draws results/learning_curves.png: one line per option
through its checkpoints, a dot where its schedule finished, the issue-12 targets as dashed lines. Rows of
re-evaluations (`<option>+eval`) are left out: they share the curve of their option.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmarks.common import RESULTS

TARGETS = {"PQ_th": 35.0, "AP": 25.0}  # issue 12: things learned on the default run
HIGHLIGHT = 6  # options with the best finished PQ_th get a colour and a label; the rest are grey


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Checkpoint rows per option in train order; a re-run of an option replaces its earlier rows."""
    by_option: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if "eval_overrides" in row or row["option"].endswith("+eval"):
            continue
        points = by_option[row["option"]]
        if points and row["iteration"] <= points[-1]["iteration"]:
            points.clear()  # the option was run again from the start
        points.append(row)
    return dict(by_option)


def best_options(by_option: dict[str, list[dict]], count: int) -> list[str]:
    """The options whose finished run reached the highest PQ_th."""
    finished = {name: pts[-1]["PQ_th"] for name, pts in by_option.items() if pts[-1].get("final")}
    return sorted(finished, key=finished.get, reverse=True)[:count]


def draw(by_option: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = best_options(by_option, HIGHLIGHT)
    colours = dict(zip(top, plt.get_cmap("tab10").colors, strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    for ax, metric in zip(axes, TARGETS, strict=True):
        for name, pts in by_option.items():
            x = [p["train_cpu_s"] / 60 for p in pts]
            y = [p[metric] for p in pts]
            shown = name in colours
            colour = colours.get(name, "0.75")
            ax.plot(x, y, "-", color=colour, lw=2 if shown else 1, zorder=3 if shown else 1,
                    label=name if shown else None)
            if pts[-1].get("final"):
                ax.plot(x[-1], y[-1], "o", color=colour, ms=5, zorder=4 if shown else 2)
        ax.axhline(TARGETS[metric], ls="--", color="crimson", lw=1)
        ax.text(0.99, TARGETS[metric], f"target {TARGETS[metric]:g} ", color="crimson", va="bottom",
                ha="right", transform=ax.get_yaxis_transform())
        ax.set_xlabel("train CPU-minutes (2 cores)")
        ax.set_ylabel({"PQ_th": "PQ things", "AP": "mask AP"}[metric])
        ax.grid(alpha=0.3)
    axes[1].legend(title=f"best {len(top)} finished (grey: the other {len(by_option) - len(top)})",
                   fontsize=8, title_fontsize=8, loc="lower right")
    fig.suptitle("Options tried for the default run (results/learning_options.jsonl; dot: schedule finished)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks learning_curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=Path, default=RESULTS / "learning_options.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "learning_curves.png")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    by_option = curves(rows)
    draw(by_option, args.out)
    print(f"{args.out}: {len(by_option)} options, best finished: {', '.join(best_options(by_option, 3))}")
