"""Pooling evaluation with the strict box rule (issue 17) and point-wise truth, on hand-made cases."""

from __future__ import annotations

import numpy as np

from calico.data.point_labels import BACKGROUND, CLASS_FORMAT, GROUND, object_points
from calico.pooling.metrics import evaluate_frame, evaluate_points, evaluate_strict, format_summary, summarize


def _strict_case():
    # box A (car): 10 points inside; region 0 holds 6 of them, 4 more just beyond the box's end (x = 2.1, inside
    # the box enlarged by 10 %: half-length 2.2) and 3 far away. Box B (pedestrian): 6 points, none rich.
    # Box C (car): 4 points, too few to count.
    boxes = np.array([[0, 0, 0, 2, 4, 2, 0], [20, 0, 0, 1, 1, 2, 0], [40, 0, 0, 2, 4, 2, 0]], float)
    a = np.c_[np.linspace(-1.8, 1.8, 10), np.zeros(10), np.zeros(10)]
    near = np.c_[np.full(4, 2.1), np.linspace(-0.5, 0.5, 4), np.zeros(4)]
    far = np.c_[np.full(3, 8.0), np.arange(3.0), np.zeros(3)]
    b = np.c_[np.full(6, 20.0), np.linspace(-0.4, 0.4, 6), np.zeros(6)]
    c = np.c_[np.full(4, 40.0), np.linspace(-1, 1, 4), np.zeros(4)]
    xyz = np.concatenate([a, near, far, b, c])
    regions = np.full(len(xyz), -1)
    regions[:6] = 0
    regions[10:17] = 0  # 13 points: 6 in box A, 10 in the enlarged box A
    regions[6:10] = 1
    return xyz, regions, boxes, ["car", "pedestrian", "car"]


def test_strict_rule_hand_case():
    xyz, regions, boxes, names = _strict_case()
    st = evaluate_strict(xyz, regions, boxes, names)
    # A: region 0 holds 6/10 of the box and 10/13 of region 0 lies in the enlarged box -> found
    # B: no rich point touches it; C: 4 points, not counted
    assert st == {"car": [1, 1, 0], "pedestrian": [0, 1, 1]}
    # today's rule uses the box itself: only 6 of region 0's 13 points are inside -> missed
    assert evaluate_frame(xyz, regions, boxes, names)["per_class"]["car"] == [0, 1]
    # 8 more far points: 10 of 21 in the enlarged box (< 50 %) -> missed under the strict rule as well
    xyz2 = np.concatenate([xyz, np.c_[np.full(8, 9.0), np.arange(8.0), np.zeros(8)]])
    regions2 = np.concatenate([regions, np.zeros(8, int)])
    assert evaluate_strict(xyz2, regions2, boxes, names)["car"] == [0, 1, 0]
    # a region holding fewer than half of the box's points -> missed
    regions3 = regions.copy()
    regions3[[4, 5]] = 2
    assert evaluate_strict(xyz, regions3, boxes, names)["car"] == [0, 1, 0]
    s = summarize([{**evaluate_frame(xyz, regions, boxes, names), "strict": st}])
    assert s["strict"]["car"] == (1.0, 0.0, 1) and s["strict_overall"] == (0.5, 0.5, 2)
    assert "strict rule" in format_summary(s)
    assert evaluate_strict(xyz, regions, np.zeros((0, 9)), []) == {}


def test_point_truth_precision_recall():
    regions = np.array([0, 0, 1, -1, -1, 2, -1])
    labels = np.array([0, 0, 8, 0, GROUND, BACKGROUND, BACKGROUND])  # car, car, pedestrian, car, ground, bg, bg
    is_obj = object_points(labels, CLASS_FORMAT)
    p = evaluate_points(regions, is_obj, labels)
    assert (p["rich"], p["object"], p["rich_object"]) == (4, 4, 3)
    assert p["per_label"][0] == [2, 3] and p["per_label"][GROUND] == [0, 1] and p["per_label"][BACKGROUND] == [1, 2]
    s = summarize([{**evaluate_frame(np.zeros((7, 3)), regions, np.zeros((0, 9)), []), "points_truth": p}])
    assert s["points"]["precision"] == 0.75 and s["points"]["recall"] == 0.75
    text = format_summary(s)
    assert "precision 0.750, recall 0.750" in text and "| car | 3 | 0.667 |" in text
    # synthetic ids: clutter (id >= 0 outside every box) is not an object
    synth = object_points(np.array([3, 3, -2, 7]), "synth", np.array([True, False, True, False]))
    assert synth.tolist() == [True, False, False, False]
