"""Report overlays of instances with known answers: outlines are exactly each segment's boundary pixels in
colours of their own, labels sit inside their segment, touching same-class pairs are counted as the
dilation definition says, and the report picks and shows the images that have them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from maskformer.data import id_to_rgb
from maskformer.evaluation.components import touching_same_class_pairs
from pipeline import outputs as out
from pipeline.params import Params
from pipeline.report import plots
from pipeline.report.content import Report, Validation
from pipeline.report.render import render_html, render_markdown

GRAY = 100  # the test image's value: no outline or class colour has it on every channel


def _squares(gap: int, second_class: int = 0) -> tuple[np.ndarray, list[plots.SegmentInfo]]:
    """A 12x20 map: background stuff (id 3, class 1) and two 5x5 thing squares (ids 1, 2), `gap` apart."""
    ids = np.full((12, 20), 3)
    ids[2:7, 2:7] = 1
    ids[2:7, 7 + gap:12 + gap] = 2
    return ids, [(1, 0, True), (2, second_class, True), (3, 1, False)]


def _boundary(ids: np.ndarray, seg_id: int) -> np.ndarray:
    """A square's edge pixels, written out: the square minus its 3x3 interior."""
    rows, cols = np.nonzero(ids == seg_id)
    edge = ids == seg_id
    edge[rows.min() + 1:rows.max(), cols.min() + 1:cols.max()] = False
    return edge


def test_outlines_are_exactly_the_boundary_pixels_in_two_colours():
    ids, segments = _squares(gap=0)
    image = np.full((*ids.shape, 3), GRAY, np.uint8)
    picture = plots.draw_instances(image, ids, segments, ["cat", "grass"])
    (_, _, first), (_, _, second) = plots._things(segments)
    assert not np.array_equal(first, second)
    assert np.array_equal((picture == first).all(-1), _boundary(ids, 1))
    assert np.array_equal((picture == second).all(-1), _boundary(ids, 2))
    interiors = (ids != 3) & ~_boundary(ids, 1) & ~_boundary(ids, 2)
    assert (picture[interiors] == GRAY).all()  # things are outlined, not filled
    stuff = picture[ids == 3]
    assert (stuff != GRAY).any(-1).all() and (stuff == stuff[0]).all()  # one faint class-colour fill


def test_wider_outlines_and_a_non_thing_filled():
    ids, segments = _squares(gap=2)
    image = np.full((*ids.shape, 3), GRAY, np.uint8)
    (_, _, first), _ = plots._things(segments)
    wide = plots.draw_instances(image, ids, segments, ["cat", "grass"], width=2)
    inner = np.zeros_like(ids, bool)
    inner[4:5, 4:5] = True  # the one pixel of a 5x5 square farther than 2 from its edge
    assert np.array_equal((wide == first).all(-1), (ids == 1) & ~inner)
    as_stuff = plots.draw_instances(image, ids, [(1, 0, False), *segments[1:]], ["cat", "grass"])
    crowd = as_stuff[ids == 1]
    assert (crowd != GRAY).any(-1).all() and (crowd == crowd[0]).all()  # filled, not outlined


def test_labels_inside_each_segment_in_its_colour():
    ids, segments = _squares(gap=0)
    labels = plots.instance_labels(ids, segments, ["cat", "grass"])
    colors = [tuple(int(c) for c in color) for _, _, color in plots._things(segments)]
    assert [(label.text, label.color) for label in labels] == [("cat#1", colors[0]), ("cat#2", colors[1])]
    assert [(label.y, label.x) for label in labels] == [(4, 4), (4, 9)]  # the squares' centres
    _, other = _squares(gap=0, second_class=1)
    assert [label.text for label in plots.instance_labels(ids, other, ["cat", "grass"])] == ["cat", "grass"]


@pytest.mark.parametrize(("gap", "second_class", "pairs"), [(0, 0, 1), (1, 0, 0), (0, 1, 0)])
def test_touching_same_class_pairs(gap, second_class, pairs):
    ids, segments = _squares(gap, second_class)
    assert touching_same_class_pairs(ids, segments) == pairs


def test_corners_and_stuff_do_not_touch():
    ids = np.zeros((6, 6), int)
    ids[0:2, 0:2], ids[2:4, 2:4] = 1, 2  # meet at a corner only
    ids[4:6, 0:3], ids[4:6, 3:6] = 3, 4  # stuff beside stuff
    assert touching_same_class_pairs(ids, [(1, 0, True), (2, 0, True), (3, 1, False), (4, 1, False)]) == 0


def test_pair_count_matches_dilating_one_mask_and_intersecting():
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(0, 7, size=(9, 11))
        segments = [(int(s), int(rng.integers(0, 2)), bool(rng.integers(0, 2))) for s in range(1, 7)]
        things = [(s, c) for s, c, isthing in segments if isthing]
        expected = sum(ca == cb and (ndimage.binary_dilation(ids == a) & (ids == b)).any()
                       for i, (a, ca) in enumerate(things) for b, cb in things[i + 1:])
        assert touching_same_class_pairs(ids, segments) == expected


def test_overlays_draws_every_sample_with_or_without_predictions():
    ids, segments = _squares(gap=0)
    image = np.full((*ids.shape, 3), GRAY, np.uint8)
    truth = plots.Panoptic(ids, segments)
    samples = [plots.Sample("a", image, truth, ids % 2, truth, "1 touching same-class pairs"),
               plots.Sample("b", image, truth, None, None)]
    assert plots.overlays(samples, ["cat", "grass"], dpi=30).startswith(b"\x89PNG")
    assert plots.overlays([], ["cat"], dpi=30) is None


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO [x, y, w, h] of a mask."""
    rows, cols = np.nonzero(mask)
    return [int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1]


def _write_split(params: Params) -> None:
    """A processed validation split: separated cats, touching cats, a cat beside a dog, a cat beside a crowd
    of cats (no instance)."""
    layout = out.processed_dir(params.data)
    annotations = []
    for name, (gap, second) in {"a_apart": (1, 0), "b_touching": (0, 0), "c_mixed": (0, 2),
                                "d_crowd": (0, 0)}.items():
        ids, segments = _squares(gap, second)
        for folder, picture in (("images/val", np.full((*ids.shape, 3), GRAY, np.uint8)),
                                ("annotations/panoptic_val", id_to_rgb(ids))):
            (layout / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).save(layout / folder / f"{name}.png")
        infos = [{"id": s, "category_id": 10 * (c + 1), "iscrowd": int(name == "d_crowd" and s == 2),
                  "bbox": _bbox(ids == s)} for s, c, _ in segments]
        annotations.append({"file_name": f"{name}.png", "segments_info": infos})
    (layout / "annotations" / "panoptic_val.json").write_text(json.dumps({"annotations": annotations}))


CATEGORIES = [{"id": 10, "name": "cat", "isthing": 1}, {"id": 20, "name": "grass", "isthing": 0},
              {"id": 30, "name": "dog", "isthing": 1}]


def test_report_picks_the_images_with_touching_same_class_instances(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = Params()
    _write_split(params)
    validation = Validation(params, CATEGORIES)
    samples, table = validation.crowded(4)
    assert [s.name for s in samples] == ["b_touching"] and samples[0].panoptic is None
    assert samples[0].truth.segments == [(1, 0, True), (2, 0, True), (3, 1, False)]
    assert table.to_dict("records") == [{"image": "b_touching", "touching same-class pairs": 1,
                                         "thing instances": 2}]
    assert [s.name for s in validation.spread(2)] == ["a_apart", "d_crowd"]
    assert validation.sample("d_crowd").truth.segments == [(1, 0, True), (2, 0, False), (3, 1, False)]
    report = Report("t", {}, figures={"overlapping": plots.overlays(samples, ["cat", "grass", "dog"], 30)},
                    crowded=table)
    page = render_html(report)
    assert "<h2>Overlapping same-class instances</h2>" in page and 'alt="overlapping"' in page
    assert "<td>b_touching</td>" in page
    summary = render_markdown(report)
    assert "## Overlapping same-class instances" in summary and "| b_touching | 1 | 2 |" in summary
    empty = render_html(Report("t", {}, crowded=pd.DataFrame()))
    assert "no validation image with touching same-class instances to show" in empty


def test_category_colors_keep_a_category_s_own_colour():
    cats = [{"name": "a", "color": [1, 2, 3]}, {"name": "b"}]
    colors = plots.category_colors(cats)
    assert colors[0].tolist() == [1, 2, 3] and colors[1].tolist() == plots.class_colors(2)[1].tolist()
