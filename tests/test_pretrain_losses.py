"""Hand-checked and loop-reference tests of calico.pretrain.losses (eq. 1-3 and baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calico.pretrain import losses as L
from calico.pretrain.projector import ProposalAttentionPool


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax_row(row: np.ndarray) -> np.ndarray:
    m = row.max()
    return row - (m + math.log(np.exp(row - m).sum()))


# ---- reference implementations by explicit loops --------------------------------------------------


def ref_plrc(z1, z2, regions, tau):
    z1, z2 = _unit(z1), _unit(z2)
    terms = []
    for i in range(len(regions)):
        if regions[i] < 0:
            continue
        lp = _log_softmax_row(np.array([z1[i] @ z2[j] / tau for j in range(len(regions))]))
        pos = [j for j in range(len(regions)) if regions[j] == regions[i]]
        terms.append(sum(lp[j] for j in pos) / len(pos))
    return -float(np.mean(terms))


def ref_rapc(p1, p2, regions, tau):
    def rep(p):
        p = _unit(p)
        out = []
        for i in range(len(regions)):
            members = [j for j in range(len(regions)) if regions[i] >= 0 and regions[j] == regions[i]] or [i]
            out.append(np.concatenate([p[i], p[members].max(0)]))
        return _unit(np.array(out))

    r1, r2 = rep(p1), rep(p2)
    terms = []
    for i in range(len(regions)):
        if regions[i] < 0:
            continue
        lp = _log_softmax_row(np.array([r1[i] @ r2[j] / tau for j in range(len(regions))]))
        terms.append(lp[i])
    return -float(np.mean(terms))


def ref_rad(c, lid, regions, tau):
    rich = [i for i in range(len(regions)) if regions[i] >= 0]
    c, lid = _unit(c[rich]), _unit(lid[rich])
    reg = [regions[i] for i in rich]
    total = 0.0
    for r in sorted(set(reg)):
        members = [k for k in range(len(reg)) if reg[k] == r]
        acc = 0.0
        for k in members:
            acc += _log_softmax_row(np.array([c[k] @ lid[j] / tau for j in range(len(reg))]))[k]
        total += acc / len(members)
    return -total / len(set(reg))


# ---- hand-worked cases -----------------------------------------------------------------------------

# Rows: two semantic-rich points of region 0 and one semantic-less point, 2-d features, tau = 1.
Z1 = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
Z2 = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
REG = [0, 0, -1]


def test_plrc_hand_case():
    # anchor 0: dots with view 2 = [1, 0, -1]; lse = log(e + 1 + 1/e) = 1.407606
    #   positives j = 0, 1: (1 - 1.407606 + 0 - 1.407606) / 2 = -0.907606
    # anchor 1: dots = [0, 1, 0]; lse = log(2 + e) = 1.551445 -> (-1.551445 + -0.551445) / 2 = -1.051445
    # loss = (0.907606 + 1.051445) / 2 = 0.979526
    got = L.plrc_loss(torch.tensor(Z1), torch.tensor(Z2), torch.tensor(REG), tau=1.0)
    assert got.item() == pytest.approx(0.979526, abs=1e-5)


def test_rapc_hand_case():
    # view 1: region 0 pooled = max((1,0),(0,1)) = (1,1); less row pooled = itself (1,0)
    #   reps: (1,0,1,1)/sqrt3, (0,1,1,1)/sqrt3, (1,0,1,0)/sqrt2
    # view 2: region 0 pooled = (1,1); less row (-1,0) pooled = itself
    #   reps: (1,0,1,1)/sqrt3, (0,1,1,1)/sqrt3, (-1,0,-1,0)/sqrt2
    # anchor 0: dots [1, 2/3, -2/sqrt6]: -(1 - log(e + e^(2/3) + e^-0.816497)) = 0.630801
    # anchor 1: dots [2/3, 1, -1/sqrt6]: -(1 - log(e^(2/3) + e + e^-0.408248)) = 0.673513
    # loss = 0.652157
    got = L.rapc_loss(torch.tensor(Z1), torch.tensor(Z2), torch.tensor(REG), tau=1.0)
    assert got.item() == pytest.approx(0.652157, abs=1e-5)
    prc = L.prc_loss(torch.tensor(Z1), torch.tensor(Z2), torch.tensor(Z1), torch.tensor(Z2),
                     torch.tensor(REG), alpha=0.25, tau=1.0)
    assert prc.item() == pytest.approx(0.25 * 0.979526 + 0.75 * 0.652157, abs=1e-5)


def test_rad_hand_case():
    # rich rows: regions [0, 0, 1]; c = (1,0),(0,1),(1,0); l = (1,0),(1,0),(0,1); the 4th row is semantic-less.
    # row 0: dots [1,1,0] -> 1 - log(2e + 1) = 1 - 1.861995 = -0.861995
    # row 1: dots [0,0,1] -> 0 - log(2 + e)  = -1.551445
    # row 2: dots [1,1,0] -> 0 - log(2e + 1) = -1.861995
    # loss = -1/2 * ((-0.861995 - 1.551445) / 2 + (-1.861995)) = 1.534357
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [5.0, 5.0]])
    l = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-3.0, 1.0]])  # noqa: E741
    got = L.rad_loss(c, l, torch.tensor([0, 0, 1, -1]), tau=1.0)
    assert got.item() == pytest.approx(1.534357, abs=1e-5)


def test_point_contrast_hand_case():
    # z1 = (1,0),(0,1); z2 = (1,0),(0,1); tau 1: each row -(1 - log(e + 1)) = log(1 + e) - 1 = 0.313262
    eye = torch.eye(2)
    assert L.point_contrast_loss(eye, eye, tau=1.0).item() == pytest.approx(math.log(1 + math.e) - 1, abs=1e-6)


# ---- random cases against the loop references ------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_losses_match_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n = 13
    regions = np.array([0, 0, 0, 3, 3, 7, -1, -1, -1, 1, -1, 3, 1])  # region 7 has one point
    a, b, c_, d = (rng.normal(size=(n, 5)) for _ in range(4))
    t = lambda x: torch.tensor(x)  # noqa: E731
    reg = torch.tensor(regions)
    assert L.plrc_loss(t(a), t(b), reg, 0.07).item() == pytest.approx(ref_plrc(a, b, regions, 0.07), rel=1e-9)
    assert L.rapc_loss(t(a), t(b), reg, 0.2).item() == pytest.approx(ref_rapc(a, b, regions, 0.2), rel=1e-9)
    assert L.rad_loss(t(c_), t(d), reg, 0.07).item() == pytest.approx(ref_rad(c_, d, regions, 0.07), rel=1e-9)


def test_scale_invariance_and_large_logits_stable():
    rng = np.random.default_rng(3)
    z1, z2 = torch.tensor(rng.normal(size=(6, 4))), torch.tensor(rng.normal(size=(6, 4)))
    reg = torch.tensor([0, 0, 1, 1, -1, -1])
    base = L.plrc_loss(z1, z2, reg, 0.07)
    assert L.plrc_loss(1e3 * z1, 1e-3 * z2, reg, 0.07).item() == pytest.approx(base.item(), rel=1e-9)
    tiny_tau = L.plrc_loss(z1.float(), z2.float(), reg, 1e-4)  # logits up to 1e4: must stay finite
    assert torch.isfinite(tiny_tau)


# ---- edge cases ------------------------------------------------------------------------------------


def test_no_semantic_rich_rows_gives_graph_connected_zero():
    z1 = torch.randn(4, 3, requires_grad=True)
    z2 = torch.randn(4, 3, requires_grad=True)
    reg = torch.full((4,), -1)
    for loss in (L.plrc_loss(z1, z2, reg), L.rapc_loss(z1, z2, reg), L.rad_loss(z1, z2, reg),
                 L.prc_loss(z1, z2, z1, z2, reg)):
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
    assert z1.grad is not None and torch.all(z1.grad == 0)


def test_single_point_region_and_single_rich_row():
    # one rich row only: PLRC anchor has one positive (itself); RAD over one row is log-softmax of one = 0
    z1, z2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    reg = torch.tensor([5, -1, -1])
    assert L.plrc_loss(z1, z2, reg).item() == pytest.approx(ref_plrc(z1.numpy(), z2.numpy(), reg.numpy(), 0.07), rel=1e-9)
    assert L.rad_loss(z1, z2, reg).item() == pytest.approx(0.0, abs=1e-7)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="plrc_loss"):
        L.plrc_loss(torch.randn(3, 2), torch.randn(4, 2), torch.tensor([0, 0, -1]))
    with pytest.raises(ValueError, match="mask"):
        L.bevdistill_loss(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3), torch.ones(1, 4, 4))


# ---- gradients -------------------------------------------------------------------------------------


def test_gradients_reach_z_p_c_but_never_l():
    reg = torch.tensor([0, 0, 1, 1, 1, -1, -1])
    z1, z2, p1, p2, c = (torch.randn(7, 6, requires_grad=True) for _ in range(5))
    l = torch.randn(7, 6, requires_grad=True)  # noqa: E741
    (L.prc_loss(z1, z2, p1, p2, reg) + L.rad_loss(c, l, reg)).backward()
    for t in (z1, z2, p1, p2, c):
        assert t.grad is not None and t.grad.abs().sum() > 0
    assert l.grad is None
    # semantic-less rows of c are not in eq. 3 at all
    assert torch.all(c.grad[5:] == 0)


def test_distill_teacher_gets_no_gradient():
    teacher_net = torch.nn.Conv2d(3, 4, 1)
    student = torch.randn(2, 4, 5, 5, requires_grad=True)
    teacher = teacher_net(torch.randn(2, 3, 5, 5))
    mask = torch.zeros(2, 5, 5, dtype=torch.bool)
    mask[0, 1:3, 2] = True
    L.bevdistill_loss(student, teacher, mask).backward()
    assert all(p.grad is None for p in teacher_net.parameters())
    assert student.grad[1].abs().sum() == 0 and student.grad[0].abs().sum() > 0
    L.dense_distill_loss(student, teacher).backward()
    assert all(p.grad is None for p in teacher_net.parameters())


def test_distill_values():
    # student = teacher up to a positive scale -> 0; opposite directions -> 4 (= 2 - 2 cos(pi))
    t = torch.randn(1, 3, 2, 2)
    assert L.dense_distill_loss(2.5 * t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert L.dense_distill_loss(-t, t).item() == pytest.approx(4.0, abs=1e-5)
    s = t.clone()
    s[0, :, 0, 0] = -t[0, :, 0, 0]  # one of four cells flipped
    mask = torch.tensor([[[True, True], [False, False]]])
    assert L.bevdistill_loss(s, t, mask).item() == pytest.approx(2.0, abs=1e-5)
    assert L.dense_distill_loss(s, t).item() == pytest.approx(1.0, abs=1e-5)
    assert L.bevdistill_loss(s, t, torch.zeros(1, 2, 2)).item() == 0.0


def test_simipu_loss_symmetric_and_grads_both_modalities():
    lid = torch.randn(5, 4, requires_grad=True)
    pix = torch.randn(5, 4, requires_grad=True)
    loss = L.simipu_loss(lid, pix, tau=0.5)
    expect = 0.5 * (L.point_contrast_loss(lid, pix, 0.5) + L.point_contrast_loss(pix, lid, 0.5))
    assert loss.item() == pytest.approx(expect.item())
    loss.backward()
    assert lid.grad.abs().sum() > 0 and pix.grad.abs().sum() > 0


def test_proposal_contrast_ball_query_and_loss():
    xy = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0], [0.0, 0.2]])
    bidx = torch.tensor([0, 0, 0, 1])
    mask = L.ball_query_mask(xy, bidx, torch.tensor([0, 2]), radius=1.0)
    # point 3 is within 1 m of anchor 0 but in another frame
    assert mask.tolist() == [[True, True, False, False], [False, False, True, False]]
    torch.manual_seed(0)
    pool = ProposalAttentionPool(4)
    f1 = torch.randn(4, 4, requires_grad=True)
    f2 = torch.randn(4, 4, requires_grad=True)
    loss = L.proposal_contrast_loss(f1, f2, xy, bidx, torch.tensor([0, 2]), 1.0, pool, tau=0.1)
    loss.backward()
    assert torch.isfinite(loss)
    # point 3 is in no proposal and is no anchor: no gradient
    assert f1.grad[3].abs().sum() == 0 and f1.grad[1].abs().sum() > 0
    assert pool.q.weight.grad is not None


def test_per_frame_denominators_match_frames_computed_separately():
    # with batch_idx, the batch loss is the anchor-weighted mean of the per-frame losses (PLRC, RAPC) and the
    # region-weighted mean for RAD (every region of the batch weighs the same)
    rng = np.random.default_rng(7)
    regions = np.array([0, 0, 1, -1, -1, 2, 2, 2, 3, -1])
    frame = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    a, b = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    t = torch.tensor
    ba = t(frame)
    f0, f1 = frame == 0, frame == 1
    n0, n1 = (regions[f0] >= 0).sum(), (regions[f1] >= 0).sum()
    expect = (n0 * ref_plrc(a[f0], b[f0], regions[f0], 0.1) + n1 * ref_plrc(a[f1], b[f1], regions[f1], 0.1)) / (n0 + n1)
    assert L.plrc_loss(t(a), t(b), t(regions), 0.1, ba).item() == pytest.approx(expect, rel=1e-9)
    expect = (n0 * ref_rapc(a[f0], b[f0], regions[f0], 0.1) + n1 * ref_rapc(a[f1], b[f1], regions[f1], 0.1)) / (n0 + n1)
    assert L.rapc_loss(t(a), t(b), t(regions), 0.1, ba).item() == pytest.approx(expect, rel=1e-9)
    # frame 0 has 2 regions, frame 1 has 2 regions
    expect = (2 * ref_rad(a[f0], b[f0], regions[f0], 0.1) + 2 * ref_rad(a[f1], b[f1], regions[f1], 0.1)) / 4
    assert L.rad_loss(t(a), t(b), t(regions), 0.1, ba).item() == pytest.approx(expect, rel=1e-9)
    # and it differs from the batch-wide denominator
    assert L.plrc_loss(t(a), t(b), t(regions), 0.1).item() != pytest.approx(
        L.plrc_loss(t(a), t(b), t(regions), 0.1, ba).item())
    pc_frames = [L.point_contrast_loss(t(a[m]), t(b[m]), 0.1).item() * m.sum() for m in (f0, f1)]
    assert L.point_contrast_loss(t(a), t(b), 0.1, ba).item() == pytest.approx(sum(pc_frames) / 10, rel=1e-9)
    # gradients stay finite with -inf masked logits
    z = t(a).requires_grad_()
    L.plrc_loss(z, t(b), t(regions), 0.1, ba).backward()
    assert torch.isfinite(z.grad).all()
