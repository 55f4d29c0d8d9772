"""TransFusion-L detection head (Bai et al., 2022; BEVFusion's LiDAR head, CALICO Fig. 4) on the fused BEV map.

A dense class heatmap picks the top-K local peaks as object queries (feature at the peak + class embedding);
one transformer decoder layer (self-attention among queries, cross-attention over every BEV cell) refines them;
small per-query FFNs regress the box with CenterPoint's encoding (centre in cells, z, log size, sin/cos yaw,
velocity) and classify it. Training matches queries to ground truth one-to-one (Hungarian: focal class cost +
L1 BEV-centre cost) and adds the Gaussian focal loss of the initial heatmap. ``decode`` returns CenterPoint's
contract: per sample boxes (K, 9), scores, labels, best first. Differences from BEVFusion's head: no IoU term in
the matching cost, one decoder layer only (its default), no NMS at decode (BEVFusion's nuScenes setting).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from calico.config import CLASSES, DataConfig, ModelConfig
from calico.models.centerpoint import draw_gaussian, gaussian_focal_loss, gaussian_radius, task_class_ids
from calico.models.pointpillars import conv_bn_relu

# per-query regression outputs and their channels, in the order of model.code_weights (as CenterPoint's)
REG_OUTPUTS: tuple[tuple[str, int], ...] = (("center", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))
# small classes whose peaks are not thinned by the 3x3 local maximum (TransFusion's nuScenes setting: a pedestrian
# or cone can sit in a neighbouring cell of another one)
NO_LOCAL_MAX = ("pedestrian", "traffic_cone")


def focal_cost(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """(Q, G) matching cost of predicting class ``labels[g]`` with query ``q``'s sigmoid logits (Q, C):
    focal loss of calling it positive minus that of calling it negative (DETR-style FocalLossCost)."""
    p = logits.sigmoid()
    neg = -(1 - p + 1e-12).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + 1e-12).log() * alpha * (1 - p).pow(gamma)
    return pos[:, labels] - neg[:, labels]


def hungarian(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(query index, gt index) pairs of the minimum-cost one-to-one assignment of a (Q, G) cost matrix."""
    rows, cols = linear_sum_assignment(cost.detach().float().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def _ffn(cin: int, cout: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, hidden, 1, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Conv1d(hidden, cout, 1))


class DecoderLayer(nn.Module):
    """Post-norm transformer decoder layer: self-attention, cross-attention to the BEV cells, FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, q_pos: torch.Tensor, k: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        x = q + q_pos  # TransFusion adds the position to queries, keys and values alike
        q = self.norms[0](q + self.drop(self.self_attn(x, x, x, need_weights=False)[0]))
        kv = k + k_pos
        q = self.norms[1](q + self.drop(self.cross_attn(q + q_pos, kv, kv, need_weights=False)[0]))
        return self.norms[2](q + self.drop(self.ffn(q)))


class TransFusionHead(nn.Module):
    """Heatmap-initialised queries + one decoder layer; ``forward`` returns ``[dict]`` (one group of classes)."""

    def __init__(self, cfg: ModelConfig, data: DataConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg
        self.pc_range = tuple(data.point_cloud_range)
        self.size = cfg.bev_size
        self.cell = (self.pc_range[3] - self.pc_range[0]) / self.size
        names = [n for task in cfg.tasks for n in task]
        if len(cfg.code_weights) != sum(c for _, c in REG_OUTPUTS):
            raise ValueError(f"model.code_weights needs {sum(c for _, c in REG_OUTPUTS)} values")
        self.classes = [c for ids in task_class_ids(cfg) for c in ids]  # heatmap channel k <-> class id classes[k]
        self.no_local_max = [k for k, n in enumerate(names) if n in NO_LOCAL_MAX]
        nc, hc = len(self.classes), cfg.tf_hidden
        self.shared = conv_bn_relu(in_channels, hc)
        self.heatmap = nn.Sequential(conv_bn_relu(hc, hc), nn.Conv2d(hc, nc, 3, padding=1))
        nn.init.constant_(self.heatmap[-1].bias, -2.19)  # prior 0.1 on every cell, as CenterPoint
        self.class_embed = nn.Conv1d(nc, hc, 1)
        self.query_pos = _ffn(2, hc, hc)
        self.key_pos = _ffn(2, hc, hc)
        self.decoder = DecoderLayer(hc, cfg.tf_heads, cfg.tf_ffn, cfg.tf_dropout)
        self.preds = nn.ModuleDict({name: _ffn(hc, ch) for name, ch in (("cls", nc),) + REG_OUTPUTS})
        nn.init.constant_(self.preds["cls"][-1].bias, -2.19)
        S = self.size
        ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
        # cell centres in cells, (x, y) per flat index i * S + j; positions enter the embeddings divided by S
        self.register_buffer("cell_xy", torch.stack([xs.flatten(), ys.flatten()], 0), persistent=False)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        S, K = self.size, min(self.cfg.tf_proposals, len(self.classes) * self.size ** 2)
        feat = self.shared(x)
        dense = self.heatmap(feat)  # (B, nc, S, S) logits
        B, hc = feat.shape[:2]
        hm = dense.detach().sigmoid()
        peaks = hm * (F.max_pool2d(hm, 3, 1, 1) == hm)
        if self.no_local_max:
            peaks[:, self.no_local_max] = hm[:, self.no_local_max]
        score, idx = peaks.flatten(1).topk(K, 1)  # the queries: (class channel, cell) of the K best peaks
        label, pix = idx // (S * S), idx % (S * S)
        flat = feat.flatten(2)  # (B, hc, S*S)
        q = flat.gather(2, pix[:, None].expand(-1, hc, -1))
        q = q + self.class_embed(F.one_hot(label, len(self.classes)).transpose(1, 2).to(q.dtype))
        q_xy = self.cell_xy[:, pix].permute(1, 0, 2)  # (B, 2, K) in cells
        q_pos = self.query_pos(q_xy / S).transpose(1, 2)
        k_pos = self.key_pos((self.cell_xy / S)[None].expand(B, -1, -1).to(flat.dtype)).transpose(1, 2)
        q = self.decoder(q.transpose(1, 2), q_pos, flat.transpose(1, 2), k_pos).transpose(1, 2)  # (B, hc, K)
        out = {name: head(q) for name, head in self.preds.items()}
        out["center"] = out["center"] + q_xy  # an offset from the query's cell centre
        out.update(heatmap=dense, query_label=label, query_score=score)
        return [out]

    # ---- targets and loss ------------------------------------------------------------------------------
    def encode(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes (G, 9) -> regression targets (G, 10): centre in cells, z, log size, sin/cos yaw, velocity."""
        x0, y0 = self.pc_range[0], self.pc_range[1]
        return torch.cat([((boxes[:, 0:1] - x0) / self.cell), ((boxes[:, 1:2] - y0) / self.cell), boxes[:, 2:3],
                          boxes[:, 3:6].log(), boxes[:, 6:7].sin(), boxes[:, 6:7].cos(), boxes[:, 7:9]], 1)

    def _valid(self, boxes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes of the head's classes with centre on the grid and positive size; labels as heatmap channels."""
        lut = torch.full((len(CLASSES),), -1, dtype=torch.long)
        lut[self.classes] = torch.arange(len(self.classes))
        ch = lut[labels.long().cpu()]
        g = (boxes[:, :2] - torch.tensor(self.pc_range[:2])) / self.cell
        keep = (ch >= 0) & (g >= 0).all(1) & (g < self.size).all(1) & (boxes[:, 3:6] > 0).all(1)
        return boxes[keep], ch[keep]

    def heatmap_targets(self, gts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """(B, nc, S, S) Gaussians at box centres (CenterPoint's radius rule), built on the CPU."""
        hm = torch.zeros(len(gts), len(self.classes), self.size, self.size)
        for b, (boxes, ch) in enumerate(gts):
            for bx, c in zip(boxes.tolist(), ch.tolist()):
                gx, gy = (bx[0] - self.pc_range[0]) / self.cell, (bx[1] - self.pc_range[1]) / self.cell
                radius = max(self.cfg.min_radius,
                             int(gaussian_radius(bx[4] / self.cell, bx[3] / self.cell, self.cfg.gaussian_overlap)))
                draw_gaussian(hm[b, c], math.floor(gx), math.floor(gy), radius)
        return hm

    def loss(self, preds: list[dict[str, torch.Tensor]], gt_boxes: list[torch.Tensor],
             gt_labels: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Initial-heatmap focal loss + matched queries' sigmoid focal class loss + bbox_loss_weight * L1."""
        p = preds[0]
        device = p["heatmap"].device
        gts = [self._valid(b.detach().float().cpu(), lab) for b, lab in zip(gt_boxes, gt_labels)]
        hm_loss = gaussian_focal_loss(p["heatmap"].float().sigmoid(), self.heatmap_targets(gts).to(device))
        cls = p["cls"].float()  # (B, nc, K)
        reg = torch.cat([p[name] for name, _ in REG_OUTPUTS], 1).float().transpose(1, 2)  # (B, K, 10)
        cls_target = torch.zeros_like(cls)
        sel_pred, sel_tgt = [], []
        for b, (boxes, ch) in enumerate(gts):
            if boxes.shape[0] == 0:
                continue
            tgt = self.encode(boxes).to(device)
            ch = ch.to(device)
            # cost as TransFusion's assigner: class focal cost + L1 of the BEV centre over the range (here: / S)
            cost = (self.cfg.tf_cls_cost * focal_cost(cls[b].t(), ch)
                    + self.cfg.tf_reg_cost * torch.cdist(reg[b, :, :2], tgt[:, :2], p=1) / self.size)
            qi, gi = hungarian(cost)
            qi, gi = qi.to(device), gi.to(device)
            cls_target[b, ch[gi], qi] = 1.0
            sel_pred.append(reg[b, qi])
            sel_tgt.append(tgt[gi])
        num_pos = max(sum(t.shape[0] for t in sel_tgt), 1)
        cls_loss = sigmoid_focal_loss(cls, cls_target).sum() / num_pos
        if sel_tgt:
            cw = torch.tensor(self.cfg.code_weights, device=device)
            loc_loss = ((torch.cat(sel_pred) - torch.cat(sel_tgt)).abs() * cw).sum() / num_pos
        else:
            loc_loss = reg.sum() * 0.0
        total = hm_loss + cls_loss + self.cfg.bbox_loss_weight * loc_loss
        return total, {"det/heatmap": float(hm_loss.detach()), "det/cls": float(cls_loss.detach()),
                       "det/loc": float(loc_loss.detach())}

    # ---- decoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, preds: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """Boxes (K, 9), scores (K,), labels (K,) per sample, best first; a query's score is its class
        probability times its heatmap peak (TransFusion)."""
        p = preds[0]
        x0, y0 = self.pc_range[0], self.pc_range[1]
        prob = p["cls"].float().sigmoid().gather(1, p["query_label"][:, None]).squeeze(1)  # (B, K)
        scores = prob * p["query_score"].float()
        labels = torch.tensor(self.classes, device=scores.device)[p["query_label"]]
        c = p["center"].float()
        dims = p["dim"].float().clamp(max=10).exp()  # log-size; clamp keeps an untrained head finite
        yaw = torch.atan2(p["rot"][:, 0].float(), p["rot"][:, 1].float())
        boxes = torch.cat([c[:, 0:1] * self.cell + x0, c[:, 1:2] * self.cell + y0, p["height"].float(), dims,
                           yaw[:, None], p["vel"].float()], 1).transpose(1, 2)  # (B, K, 9)
        results = []
        for b in range(scores.shape[0]):
            keep = scores[b] > self.cfg.score_threshold
            order = scores[b][keep].argsort(descending=True)[: self.cfg.max_detections]
            results.append({"boxes": boxes[b][keep][order], "scores": scores[b][keep][order],
                            "labels": labels[b][keep][order]})
        return results


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
                                   gamma: float = 2.0) -> torch.Tensor:
    """Element-wise sigmoid focal loss (RetinaNet; TransFusion's class loss, alpha 0.25, gamma 2)."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return a_t * ce * (1 - p_t) ** gamma

