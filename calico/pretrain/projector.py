"""Projection heads used only during pre-training (paper §3.1, App. B).

All three projectors (``P_PLRC``, ``P_RAPC``, ``P_RAD``) are two linear layers, the first followed by
BatchNorm and ReLU: ``Linear(in, hidden) -> BN -> ReLU -> Linear(hidden, out)``, hidden 256, out 128 in
the paper. ``P_RAD`` maps camera channels to the LiDAR channel count instead, because eq. 3 contrasts
the projected camera feature ``c`` with the LiDAR feature ``l`` taken from F^LiDAR *directly*.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from calico.config import Config


class Projector(nn.Module):
    """``Linear(in, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, out)`` on (K, in) rows."""

    def __init__(self, in_channels: int, hidden: int = 256, out_channels: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_channels, hidden, bias=False),  # bias is redundant before BN
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] <= 1 and self.training:
            # BatchNorm cannot estimate a variance from < 2 rows; fall back to running statistics.
            bn = self.net[1]
            return self.net[3](torch.relu(nn.functional.batch_norm(
                self.net[0](x), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)))
        return self.net(x)


def lidar_feature_channels(cfg: Config) -> int:
    """Channels of the LiDAR map pre-training reads: F^LiDAR, or the LiDAR decoder's output when
    ``pretrain.features == "decoder"``."""
    return cfg.model.decoder_channels if cfg.pretrain.features == "decoder" else cfg.model.lidar_channels


def lidar_projector(cfg: Config) -> Projector:
    """``P_PLRC`` / ``P_RAPC`` (two instances of one shape): LiDAR feature channels -> ``proj_out``."""
    return Projector(lidar_feature_channels(cfg), cfg.pretrain.proj_hidden, cfg.pretrain.proj_out)


def rad_projector(cfg: Config) -> Projector:
    """``P_RAD``: F^Camera channels -> LiDAR feature channels (eq. 3 compares with raw interpolated LiDAR
    features)."""
    return Projector(cfg.model.camera_channels, cfg.pretrain.proj_hidden, lidar_feature_channels(cfg))


class ProposalAttentionPool(nn.Module):
    """ProposalContrast's proposal encoder, simplified: one-head cross-attention from the anchor to its ball.

    ``forward(anchor (A, D), members (K, D), mask (A, K) bool) -> (A, D)``: query from the anchor feature,
    keys/values from every point, attention restricted to ``mask`` (the anchor is always inside its own
    ball, so no row is empty), plus a residual on the anchor feature.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.scale = 1.0 / math.sqrt(channels)

    def forward(self, anchor: Tensor, members: Tensor, mask: Tensor) -> Tensor:
        logits = self.q(anchor) @ self.k(members).t() * self.scale
        logits = logits.masked_fill(~mask, float("-inf"))
        attn = torch.softmax(logits, dim=1)
        return anchor + attn @ self.v(members)
