"""SegmentationMeter: dataset-level TP/FP/FN per threshold, best threshold per class, hand-checked."""

import math

import pytest
import torch

from calico.eval.segmentation import SegmentationMeter


def test_hand_checked_two_classes_two_batches():
    meter = SegmentationMeter(classes=("a", "b"), thresholds=(0.5, 0.7))
    # class a, batch 1: 4 cells. probs .9 .6 .2 .8, gt 1 1 0 0
    #   t=.5: pred 1 1 0 1 -> tp2 fp1 fn0 ; t=.7: pred 1 0 0 1 -> tp1 fp1 fn1
    # class b, batch 1: probs all .1, gt 0 0 0 1 -> tp0 fp0 fn1 at both thresholds
    p1 = torch.tensor([[[[0.9, 0.6], [0.2, 0.8]], [[0.1, 0.1], [0.1, 0.1]]]])
    m1 = torch.tensor([[[[1, 1], [0, 0]], [[0, 0], [0, 1]]]])
    # batch 2 (class a): probs .75 .75 / .4 .4, gt 0 0 / 0 0 -> t=.5: fp2 ; t=.7: fp2
    # class b: probs .65 .65 / .65 .65, gt 1 1 / 1 0 -> t=.5: tp3 fp1 ; t=.7: fn3
    p2 = torch.tensor([[[[0.75, 0.75], [0.4, 0.4]], [[0.65, 0.65], [0.65, 0.65]]]])
    m2 = torch.tensor([[[[0, 0], [0, 0]], [[1, 1], [1, 0]]]])
    meter.update(p1, m1)
    meter.update(p2, m2)
    # a: t=.5 tp2 fp3 fn0 -> 2/5 = .4 ; t=.7 tp1 fp3 fn1 -> 1/5 = .2  => best .4 @ .5
    # b: t=.5 tp3 fp1 fn1 -> 3/5 = .6 ; t=.7 tp0 fp0 fn4 -> 0        => best .6 @ .5
    # A per-sample average would differ: b in batch 1 has IoU 0 at every threshold.
    res = meter.compute()
    assert res["a"] == pytest.approx(0.4)
    assert res["b"] == pytest.approx(0.6)
    assert res["mIoU"] == pytest.approx(0.5)
    assert res["best_threshold"] == {"a": 0.5, "b": 0.5}
    table = meter.iou_table()
    assert table[1].tolist() == pytest.approx([0.2, 0.0])


def test_best_threshold_moves_per_class():
    meter = SegmentationMeter(classes=("a",), thresholds=(0.35, 0.5, 0.65))
    probs = torch.tensor([0.4, 0.6, 0.7]).view(1, 1, 1, 3)
    masks = torch.tensor([0, 0, 1]).view(1, 1, 1, 3)
    meter.update(probs, masks)
    res = meter.compute()
    assert res["a"] == pytest.approx(1.0) and res["best_threshold"]["a"] == 0.65


def test_class_without_any_positive_is_nan_and_left_out_of_mean():
    meter = SegmentationMeter(classes=("a", "b"), thresholds=(0.5,))
    probs = torch.tensor([[[[0.9]], [[0.1]]]])
    masks = torch.tensor([[[[1]], [[0]]]])
    meter.update(probs, masks)
    res = meter.compute()
    assert math.isnan(res["b"]) and res["best_threshold"]["b"] is None
    assert res["mIoU"] == pytest.approx(1.0)


def test_shape_mismatch_is_a_clear_error():
    meter = SegmentationMeter()
    with pytest.raises(ValueError, match="expected probs and masks"):
        meter.update(torch.zeros(1, 6, 4, 4), torch.zeros(1, 6, 4, 5))
