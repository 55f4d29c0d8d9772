"""Paired differences and their t-intervals, checked by hand."""

from __future__ import annotations

import math

import pytest

from calico.eval.stats import paired_difference, summarize


def test_summarize_sample_std():
    s = summarize([0.30, 0.34, None, float("nan")])
    assert s.n == 2 and s.mean == pytest.approx(0.32) and s.std == pytest.approx(0.04 / math.sqrt(2))
    assert summarize([0.5]).std == 0.0 and summarize([]).n == 0


def test_paired_difference_hand_checked():
    # diffs 0.02, 0.04, 0.06: mean 0.04, sd 0.02, t_{0.975, 2} = 4.302653 -> half width 0.049685
    a = {0: 0.32, 1: 0.34, 2: 0.36, 3: 0.9}
    b = {0: 0.30, 1: 0.30, 2: 0.30}
    d = paired_difference(a, b)
    assert d.n == 3 and d.mean == pytest.approx(0.04)
    assert d.hi - d.mean == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert not d.above_zero  # 0.04 - 0.0497 < 0
    assert d.text() == "+4.0 [-1.0, +9.0]"
    tight = paired_difference({0: 0.35, 1: 0.36, 2: 0.35}, {0: 0.30, 1: 0.30, 2: 0.31})
    assert tight.above_zero


def test_paired_difference_one_or_no_pair():
    one = paired_difference({0: 0.5}, {0: 0.4, 1: 0.3})
    assert one.n == 1 and not one.above_zero and one.text() == "+10.0 (1 seed)"
    assert paired_difference({0: 0.5}, {1: 0.4}).text() == "–"
