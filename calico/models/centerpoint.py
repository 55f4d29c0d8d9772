"""CenterPoint detection head (Yin et al., 2021) on the fused BEV map: task-grouped heatmaps + box regression,
targets, losses and decoding (max-pool peaks or circle NMS). Boxes are (x, y, z, w, l, h, yaw, vx, vy)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from calico.config import CLASSES, DataConfig, ModelConfig
from calico.models.pointpillars import conv_bn_relu

# regression heads and their channels, in the order of the code weights
REG_HEADS: tuple[tuple[str, int], ...] = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))


def gaussian_radius(height: float, width: float, min_overlap: float = 0.1) -> float:
    """CenterPoint's (CornerNet-derived) Gaussian radius for a box of ``height`` x ``width`` cells: the
    smallest of three quadratic roots bounding the centre shift that keeps IoU >= ``min_overlap``."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: torch.Tensor, cx: int, cy: int, radius: int) -> None:
    """In place: heatmap[cy-r:cy+r+1, cx-r:cx+r+1] = max(itself, Gaussian with sigma = (2r+1)/6, peak 1)."""
    sigma = (2 * radius + 1) / 6
    r = torch.arange(-radius, radius + 1, dtype=heatmap.dtype, device=heatmap.device)
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    H, W = heatmap.shape
    left, right = min(cx, radius), min(W - cx, radius + 1)
    top, bottom = min(cy, radius), min(H - cy, radius + 1)
    patch = heatmap[cy - top: cy + bottom, cx - left: cx + right]
    gp = g[radius - top: radius + bottom, radius - left: radius + right]
    torch.maximum(patch, gp, out=patch)


def gaussian_focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, gamma: float = 4.0) -> torch.Tensor:
    """CornerNet focal loss on probabilities ``pred`` vs Gaussian ``target``; normalised by the number of peaks."""
    pred = pred.clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).to(pred.dtype)
    pos_loss = -(torch.log(pred) * (1 - pred) ** alpha * pos).sum()
    neg_loss = -(torch.log(1 - pred) * pred ** alpha * (1 - target) ** gamma * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def circle_nms(xy: np.ndarray, scores: np.ndarray, labels: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy circle NMS: indices kept (by descending score) where no higher-scoring kept box of the same label
    has squared BEV centre distance <= ``thresh`` (CenterPoint's convention)."""
    order = np.argsort(-scores, kind="stable")
    xy, labels = xy[order], labels[order]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    close = (d2 <= thresh) & (labels[:, None] == labels[None, :])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= close[i]
    return order[np.asarray(keep, dtype=np.int64)]


def task_class_ids(cfg: ModelConfig) -> list[list[int]]:
    """``model.tasks`` as class ids per task (heatmap channel k of a task <-> its k-th id); names checked."""
    for name in (n for task in cfg.tasks for n in task):
        if name not in CLASSES:
            raise ValueError(f"model.tasks names unknown class {name!r}; classes are {CLASSES}")
    return [[CLASSES.index(n) for n in task] for task in cfg.tasks]


class CenterHead(nn.Module):
    """Shared conv, then per task a SepHead (heatmap + offset/z/log size/sin-cos/velocity)."""

    def __init__(self, cfg: ModelConfig, data: DataConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg
        self.pc_range = tuple(data.point_cloud_range)
        self.size = cfg.bev_size
        self.cell = (self.pc_range[3] - self.pc_range[0]) / self.size
        self.task_classes = task_class_ids(cfg)
        if len(cfg.nms_radius) != len(cfg.tasks):
            raise ValueError(f"model.nms_radius has {len(cfg.nms_radius)} values for {len(cfg.tasks)} tasks")
        if len(cfg.code_weights) != sum(c for _, c in REG_HEADS):
            raise ValueError(f"model.code_weights needs {sum(c for _, c in REG_HEADS)} values")
        hc = cfg.head_channels
        self.shared = conv_bn_relu(in_channels, hc)
        self.tasks = nn.ModuleList()
        for cls in self.task_classes:
            heads = nn.ModuleDict()
            for name, ch in (("heatmap", len(cls)),) + REG_HEADS:
                # mmdet3d SeparateHead(num_conv=head_convs + 1): hidden 3x3 conv-BN-ReLU layers, then the output conv
                hidden = [conv_bn_relu(hc, hc) for _ in range(cfg.head_convs)]
                heads[name] = nn.Sequential(*hidden, nn.Conv2d(hc, ch, 3, padding=1))
            nn.init.constant_(heads["heatmap"][-1].bias, -2.19)  # prior 0.1 on every cell
            self.tasks.append(heads)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        x = self.shared(x)
        return [{k: h(x) for k, h in heads.items()} for heads in self.tasks]

    # ---- targets and loss ------------------------------------------------------------------------------
    def targets(self, gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor], device: torch.device) -> list[dict]:
        """Per task: heatmap (B, n_cls, S, S), ind (B, M) flat cell index, mask (B, M), box (B, M, 10).

        Built on the CPU and moved to ``device`` once: drawn box by box on a GPU, each Gaussian and each row
        written would be its own kernel launch (hundreds per step), and the targets are the same everywhere.
        """
        S, cell = self.size, self.cell
        x0, y0 = self.pc_range[0], self.pc_range[1]
        B = len(gt_boxes)
        M = max([1] + [int(b.shape[0]) for b in gt_boxes])
        out = []
        for cls in self.task_classes:
            hm = torch.zeros(B, len(cls), S, S)
            ind = torch.zeros(B, M, dtype=torch.long)
            mask = torch.zeros(B, M)
            box = torch.zeros(B, M, 10)
            for b in range(B):
                boxes = gt_boxes[b].detach().float().cpu()
                labels = gt_labels[b].detach().long().cpu()
                k = 0
                for bx, lab in zip(boxes, labels.tolist()):
                    if lab not in cls:
                        continue
                    gx, gy = (float(bx[0]) - x0) / cell, (float(bx[1]) - y0) / cell
                    ix, iy = math.floor(gx), math.floor(gy)
                    w, length = float(bx[3]), float(bx[4])
                    if not (0 <= ix < S and 0 <= iy < S) or w <= 0 or length <= 0:
                        continue
                    radius = max(self.cfg.min_radius,
                                 int(gaussian_radius(length / cell, w / cell, self.cfg.gaussian_overlap)))
                    draw_gaussian(hm[b, cls.index(lab)], ix, iy, radius)
                    ind[b, k] = iy * S + ix
                    mask[b, k] = 1
                    box[b, k] = torch.tensor([gx - ix, gy - iy, float(bx[2]), *torch.log(bx[3:6]).tolist(),
                                              math.sin(float(bx[6])), math.cos(float(bx[6])),
                                              float(bx[7]), float(bx[8])])
                    k += 1
            out.append({name: t.to(device) for name, t in
                        (("heatmap", hm), ("ind", ind), ("mask", mask), ("box", box))})
        return out

    def loss(self, preds: list[dict[str, torch.Tensor]], gt_boxes: list[torch.Tensor],
             gt_labels: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Sum over tasks of Gaussian focal loss + bbox_loss_weight * code-weighted L1 at GT centres."""
        device = preds[0]["heatmap"].device
        tgts = self.targets(gt_boxes, gt_labels, device)
        cw = torch.tensor(self.cfg.code_weights, device=device)
        total = torch.zeros((), device=device)
        hm_sum, loc_sum = 0.0, 0.0
        for pred, t in zip(preds, tgts):
            hm_loss = gaussian_focal_loss(pred["heatmap"].float().sigmoid(), t["heatmap"])
            reg = torch.cat([pred[name] for name, _ in REG_HEADS], 1).float()  # (B, 10, S, S)
            B, C = reg.shape[:2]
            reg = reg.view(B, C, -1).gather(2, t["ind"][:, None, :].expand(-1, C, -1)).transpose(1, 2)
            m = t["mask"].unsqueeze(-1)
            l1 = ((reg - t["box"]).abs() * m).sum((0, 1)) / (t["mask"].sum() + 1e-4)
            loc_loss = (l1 * cw).sum()
            total = total + hm_loss + self.cfg.bbox_loss_weight * loc_loss
            hm_sum += float(hm_loss.detach())
            loc_sum += float(loc_loss.detach())
        return total, {"det/heatmap": hm_sum, "det/loc": loc_sum}

    # ---- decoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, preds: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """Boxes (K, 9), scores (K,), labels (K,) per sample, best first."""
        cfg = self.cfg
        S, cell = self.size, self.cell
        x0, y0 = self.pc_range[0], self.pc_range[1]
        B = preds[0]["heatmap"].shape[0]
        per_sample: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(B)]
        for t, (pred, cls) in enumerate(zip(preds, self.task_classes)):
            hm = pred["heatmap"].float().sigmoid()
            if cfg.nms == "maxpool":
                hm = hm * (nn.functional.max_pool2d(hm, 3, 1, 1) == hm)
                k = min(cfg.max_detections, hm[0].numel())
            elif cfg.nms == "circle":
                k = min(cfg.nms_pre_max, hm[0].numel())
            else:
                raise ValueError(f"model.nms must be 'circle' or 'maxpool', got {cfg.nms!r}")
            scores, idx = hm.flatten(1).topk(k, 1)
            c_idx, pix = idx // (S * S), idx % (S * S)
            reg = torch.cat([pred[name] for name, _ in REG_HEADS], 1).float().flatten(2)  # (B, 10, S*S)
            reg = reg.gather(2, pix[:, None, :].expand(-1, reg.shape[1], -1)).transpose(1, 2)  # (B, k, 10)
            ix, iy = (pix % S).float(), (pix // S).float()
            x = (ix + reg[..., 0]) * cell + x0
            y = (iy + reg[..., 1]) * cell + y0
            dims = reg[..., 3:6].clamp(max=10).exp()  # log-size; clamp keeps an untrained head finite
            yaw = torch.atan2(reg[..., 6], reg[..., 7])
            boxes = torch.cat([x[..., None], y[..., None], reg[..., 2:3], dims, yaw[..., None], reg[..., 8:10]], -1)
            labels = torch.tensor(cls, device=idx.device)[c_idx]
            for b in range(B):
                keep = scores[b] > cfg.score_threshold
                bb, ss, ll = boxes[b][keep], scores[b][keep], labels[b][keep]
                if cfg.nms == "circle" and bb.shape[0] > 0:
                    sel = circle_nms(bb[:, :2].cpu().numpy(), ss.cpu().numpy(), ll.cpu().numpy(),
                                     cfg.nms_radius[t])[: cfg.nms_post_max]
                    sel_t = torch.as_tensor(sel, device=bb.device)
                    bb, ss, ll = bb[sel_t], ss[sel_t], ll[sel_t]
                per_sample[b].append((bb, ss, ll))
        results = []
        for parts in per_sample:
            bb = torch.cat([p[0] for p in parts])
            ss = torch.cat([p[1] for p in parts])
            ll = torch.cat([p[2] for p in parts])
            order = ss.argsort(descending=True)[: cfg.max_detections]
            results.append({"boxes": bb[order], "scores": ss[order], "labels": ll[order]})
        return results
