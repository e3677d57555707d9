"""The run report rendered as one self-contained HTML page (figures as base64 data URIs) and a Markdown
summary for MLflow and Prefect."""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from pipeline.report.content import Report

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5em 0}
.note{color:#a55}nav a{margin-right:1em}details{margin:.5em 0}"""
_FIGURE_SECTIONS = {"training": ("Training curves", ["training_curves"]),
                    "per-class": ("Per-class results", ["per_class_iou"]),
                    "confusion": ("Confusion matrix", ["confusion"]),
                    "samples": ("Validation samples", ["overlays", "class_legend"]),
                    "overlapping": ("Overlapping same-class instances", ["overlapping"])}
_OVERLAPPING = ("The validation images whose ground truth has the most pairs of same-class objects that "
                "touch. A per-pixel classifier gives such a pair one connected region of the class, so it "
                "cannot tell them apart; mask classification predicts one mask per object.")
_INTROS = {"overlapping": _OVERLAPPING}
_EMPTY = {"overlapping": "no validation image with touching same-class instances to show"}  # others: not run


def img_tag(png: bytes, alt: str) -> str:
    """An <img> with the PNG inline, so the page needs no other file."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _number(value: float) -> str:
    """Two decimals, whole numbers (steps, counts) without."""
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.2f}"


def html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=_number, na_rep="–", border=0)


def _headline_frame(headline: dict[str, dict[str, float]], paper: dict[str, float]) -> pd.DataFrame:
    """Rows: section/metric, value (the names of the metrics JSON and of the MLflow metrics), and the
    paper's number beside it where report.paper gives one."""
    rows = [{"metric": f"{s}/{k}", "value": v} for s, metrics in headline.items() for k, v in metrics.items()]
    frame = pd.DataFrame(rows, columns=["metric", "value"])
    if paper:
        frame["paper"] = frame["metric"].map(paper)
    return frame


def _section_tables(key: str, report: Report) -> list[str]:
    """The tables under a figure section's figures: per-class results, the overlapping images."""
    if key == "per-class":
        return [f"<details open><summary>{html.escape(c)}</summary>{html_table(t)}</details>"
                for c, t in report.tables.items()]
    if key == "overlapping" and not report.crowded.empty:
        return [html_table(report.crowded)]
    return []


def render_html(report: Report) -> str:
    """The report as one HTML page with inline CSS and figures (no external files or requests)."""
    parts = [f"<h1>MaskFormer run report: {html.escape(report.title)}</h1>",
             "<nav>" + "".join(f'<a href="#{key}">{title}</a>' for key, title in
                               [("metrics", "Metrics"), *[(k, t) for k, (t, _) in _FIGURE_SECTIONS.items()],
                                ("runs", "Earlier runs"), ("environment", "Environment")]) + "</nav>",
             '<section id="metrics"><h2>Headline metrics</h2>',
             html_table(_headline_frame(report.headline, report.paper))]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in report.notes]
    parts.append("</section>")
    for key, (title, names) in _FIGURE_SECTIONS.items():
        parts.append(f'<section id="{key}"><h2>{title}</h2>')
        if key in _INTROS:
            parts.append(f"<p>{html.escape(_INTROS[key])}</p>")
        shown = [img_tag(report.figures[n], n) for n in names if n in report.figures]
        empty = _EMPTY.get(key, "nothing to show (the stage has not run)")
        parts += shown or [f'<p class="note">{empty}</p>']
        parts += _section_tables(key, report)
        parts.append("</section>")
    runs = html_table(report.runs) if not report.runs.empty else "<p>no runs recorded yet</p>"
    parts.append(f'<section id="runs"><h2>Earlier runs (MLflow)</h2>{runs}</section>')
    env = pd.DataFrame(list(report.environment.items()), columns=["item", "value"])
    parts.append(f'<section id="environment"><h2>Environment</h2>{html_table(env)}</section>')
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}'
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def md_table(frame: pd.DataFrame) -> str:
    """A pipe table (no tabulate needed); floats with two decimals."""
    def cell(v: object) -> str:
        text = "–" if v is None or (isinstance(v, float) and np.isnan(v)) else \
            _number(v) if isinstance(v, float) else str(v)
        return text.replace("|", "\\|")
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(report: Report, html_name: str = "report.html") -> str:
    """A short summary (headline metrics, weakest classes, the images with touching same-class instances,
    earlier runs, environment) for MLflow/Prefect."""
    headline = md_table(_headline_frame(report.headline, report.paper))
    parts = [f"# MaskFormer run report: {report.title}", "", headline, ""]
    parts += [f"> {n}" for n in report.notes]
    semantic = report.tables.get("semantic segmentation per class")
    if semantic is not None:
        parts += ["", "## Weakest classes (IoU)", "", md_table(semantic.nsmallest(5, "IoU"))]
    if not report.crowded.empty:
        parts += ["", "## Overlapping same-class instances", "", _OVERLAPPING, "", md_table(report.crowded)]
    if not report.runs.empty:
        runs = report.runs.drop(columns=["run_id"]).head(10)
        parts += ["", "## Earlier runs", "", md_table(runs)]
    parts += ["", "## Environment", "", md_table(pd.DataFrame(list(report.environment.items()),
                                                                 columns=["item", "value"]))]
    parts += ["", f"Plots, per-class tables and sample overlays: {html_name}", ""]
    return "\n".join(parts)
