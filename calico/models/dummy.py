"""A valid random Batch (docs/ARCHITECTURE.md) for tests, benchmarks and smoke runs: a 6-camera ring looking
outward, points with denser clusters on random boxes, random map masks."""

from __future__ import annotations

import math

import torch

from calico.config import CLASSES, MAP_CLASSES, Config
from calico.data.batch import move_to

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# typical nuScenes (w, l, h) per class, for plausible random boxes
TYPICAL_WLH = {
    "car": (1.9, 4.6, 1.7), "truck": (2.5, 6.9, 2.8), "construction_vehicle": (2.8, 6.4, 3.2),
    "bus": (2.9, 11.0, 3.5), "trailer": (2.9, 12.3, 3.9), "barrier": (2.5, 0.5, 1.0),
    "motorcycle": (0.8, 2.1, 1.5), "bicycle": (0.6, 1.7, 1.3), "pedestrian": (0.7, 0.7, 1.8),
    "traffic_cone": (0.4, 0.4, 1.1),
}


def ring_calibration(num_cams: int, image_size: tuple[int, int], fov_deg: float = 70.0,
                     height: float = -0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Intrinsics (N, 3, 3) and cam2lidar (N, 4, 4) of ``num_cams`` pinhole cameras at LiDAR origin + ``height``
    in z, yaws evenly spread (camera 0 looks along +x), camera axes x right, y down, z forward."""
    H, W = image_size
    f = 0.5 * W / math.tan(math.radians(fov_deg) / 2)
    K = torch.tensor([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]], dtype=torch.float32)
    c2l = []
    for i in range(num_cams):
        a = -2 * math.pi * i / num_cams  # clockwise seen from above, like nuScenes' camera order
        fwd = torch.tensor([math.cos(a), math.sin(a), 0.0])
        right = torch.tensor([math.sin(a), -math.cos(a), 0.0])
        down = torch.tensor([0.0, 0.0, -1.0])
        T = torch.eye(4)
        T[:3, :3] = torch.stack([right, down, fwd], 1)
        T[2, 3] = height
        c2l.append(T)
    return K.expand(num_cams, 3, 3).clone(), torch.stack(c2l)


def make_dummy_batch(cfg: Config, batch_size: int = 2, num_points: int = 4000, num_boxes: int = 4,
                     seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Random Batch for ``cfg`` (uses cfg.data.point_cloud_range / image_size / cameras and cfg.model.seg_size).

    Each box gets 50 points inside it, so a LiDAR model can learn to find it; the rest are uniform in range.
    """
    g = torch.Generator().manual_seed(seed)
    x0, y0, z0, x1, y1, z1 = cfg.data.point_cloud_range
    H, W = cfg.data.image_size
    N = len(cfg.data.cameras)
    pts, boxes, labels = [], [], []
    for b in range(batch_size):
        lab = torch.randint(0, len(CLASSES), (num_boxes,), generator=g)
        wlh = torch.tensor([TYPICAL_WLH[CLASSES[int(c)]] for c in lab]).view(-1, 3)
        span = torch.tensor([x1 - x0, y1 - y0]) * 0.8
        xy = (torch.rand(num_boxes, 2, generator=g) - 0.5) * span + torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2])
        z = -1.0 + wlh[:, 2:3] / 2
        yaw = (torch.rand(num_boxes, 1, generator=g) * 2 - 1) * math.pi
        vel = torch.randn(num_boxes, 2, generator=g)
        bx = torch.cat([xy, z, wlh, yaw, vel], 1)
        inside = []
        for box in bx:
            local = (torch.rand(50, 3, generator=g) - 0.5) * box[3:6][[1, 0, 2]]  # l along heading, w across
            c, s = math.cos(box[6]), math.sin(box[6])
            rot = torch.tensor([[c, -s], [s, c]])
            p = torch.cat([local[:, :2] @ rot.T + box[:2], local[:, 2:] + box[2]], 1)
            inside.append(p)
        n_bg = max(num_points - 50 * num_boxes, 0)
        bg = torch.rand(n_bg, 3, generator=g) * torch.tensor([x1 - x0, y1 - y0, 2.0]) + torch.tensor([x0, y0, -2.0])
        xyz = torch.cat(inside + [bg]) if inside else bg
        xyz = xyz[torch.randperm(xyz.shape[0], generator=g)]
        extra = torch.cat([torch.rand(xyz.shape[0], 1, generator=g),
                           (torch.rand(xyz.shape[0], 1, generator=g) * 0.5)], 1)
        pts.append(torch.cat([torch.full((xyz.shape[0], 1), float(b)), xyz, extra], 1))
        boxes.append(bx.float())
        labels.append(lab.long())
    K, c2l = ring_calibration(N, (H, W))
    l2c = torch.linalg.inv(c2l)
    K4 = torch.eye(4).expand(N, 4, 4).clone()
    K4[:, :3, :3] = K
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    images = (torch.rand(batch_size, N, 3, H, W, generator=g) - mean) / std
    S = cfg.model.seg_size
    masks = (torch.rand(batch_size, len(MAP_CLASSES), S // 4, S // 4, generator=g) > 0.7).to(torch.uint8)
    masks = masks.repeat_interleave(4, 2).repeat_interleave(4, 3)[..., :S, :S]
    if masks.shape[-1] < S:  # S not a multiple of 4
        masks = torch.nn.functional.pad(masks, (0, S - masks.shape[-1], 0, S - masks.shape[-2]))
    batch = {
        "points": torch.cat(pts),
        "images": images,
        "intrinsics": K.expand(batch_size, N, 3, 3).clone(),
        "cam2lidar": c2l.expand(batch_size, N, 4, 4).clone(),
        "lidar2cam": l2c.expand(batch_size, N, 4, 4).clone(),
        "lidar2img": (K4 @ l2c).expand(batch_size, N, 4, 4).clone(),
        "gt_boxes": boxes,
        "gt_labels": labels,
        "map_masks": masks,
        "tokens": [f"dummy-{seed}-{b}" for b in range(batch_size)],
    }
    return move_to(batch, device)
