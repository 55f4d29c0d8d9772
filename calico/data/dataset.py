"""``NuScenesDataset``: sample dicts from the ``calico prepare`` index, and ``collate`` into batches.

See docs/ARCHITECTURE.md for the sample and batch contracts. All geometry is in the keyframe LiDAR frame.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from calico.config import Config
from calico.data.geometry import invert
from calico.data.paths import cache_dir
from calico.data.pointcloud import crop_ego, load_pcd_bin
from calico.data.prepare import load_index
from calico.data.splits import fraction_of, parse_member, select_records, split_scene_names
from calico.errors import DataError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def resize_crop(image: Image.Image, intrinsics: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scale so the image covers ``size`` (H, W), then crop: centred in x, bottom-aligned in y (keeps the road).

    Returns the uint8 (H, W, 3) image and the intrinsics of the result.
    """
    th, tw = size
    w, h = image.size
    s = max(th / h, tw / w)
    nw, nh = max(tw, round(w * s)), max(th, round(h * s))
    image = image.resize((nw, nh), Image.BILINEAR)
    x0, y0 = (nw - tw) // 2, nh - th
    image = image.crop((x0, y0, x0 + tw, y0 + th))
    k = intrinsics.copy()
    k[0, :] *= nw / w
    k[1, :] *= nh / h
    k[0, 2] -= x0
    k[1, 2] -= y0
    return np.asarray(image, dtype=np.uint8), k


def _draft(image: Image.Image, intrinsics: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) still covering ``size`` (much faster loading: BENCHMARKS.md, data loading).

    Returns the intrinsics of the drafted image.
    """
    w0, h0 = image.size
    th, tw = size
    s = max(th / h0, tw / w0)
    image.draft("RGB", (max(1, round(w0 * s)), max(1, round(h0 * s))))
    w1, h1 = image.size
    k = intrinsics.copy()
    k[0, :] *= w1 / w0
    k[1, :] *= h1 / h0
    return k


class NuScenesDataset(torch.utils.data.Dataset):
    """Keyframe samples of a prepared nuScenes-format dataset.

    ``split``: None (all samples), a split of the splits file (``data.splits_file``, default
    ``<version>/splits.json``; members are scenes or ``scene[start:stop]`` keyframe slices) or an official one.
    ``fraction``: keep the members of this label fraction (nested; see ``calico.data.splits``).
    ``load_images``: default ``cfg.data.load_images`` when the model uses cameras (``cfg.model.modality``).
    """

    def __init__(self, cfg: Config, split: str | None = None, fraction: float | None = None,
                 load_images: bool | None = None, with_regions: bool = True, index: dict | None = None):
        self.cfg = cfg
        self.data = cfg.data
        self.root = Path(self.data.dataroot)
        self.index = index if index is not None else load_index(self.data)
        records = self.index["records"]
        if split is not None or fraction is not None:
            # members: scenes or "scene[a:b]" keyframe slices (calico.data.splits), the units of a label fraction
            if split is not None:
                members = split_scene_names(self.data.dataroot, self.data.version, split, self.data.splits_file)
            else:
                members = sorted({r["scene_name"] for r in records})
            present = {r["scene_name"] for r in records}
            members = [m for m in members if parse_member(m)[0] in present]  # as before: scenes in this index
            if fraction is not None:
                members = sorted(fraction_of(members, fraction))
            records = select_records(records, members)
        if not records:
            raise DataError(f"no samples for split={split!r} fraction={fraction!r}", str(self.root))
        self.records = records
        self.split = split
        if load_images is None:  # a LiDAR-only model never looks at the images: don't decode them
            load_images = self.data.load_images and "C" in cfg.model.modality
        self.load_images = load_images
        self.cache = cache_dir(self.data)
        self.with_regions = with_regions
        self.missing_sweeps = 0
        self._warned_sweeps = False
        self.transform = None  # optional callable(sample, index) -> sample (robustness suite, augmentation)

    def __len__(self) -> int:
        return len(self.records)

    def index_of(self, sample: str) -> int:
        """The position of a sample given by token or by index; KeyError with a user-facing message."""
        tokens = [r["token"] for r in self.records]
        if sample in tokens:
            return tokens.index(sample)
        if sample.isdigit() and int(sample) < len(tokens):
            return int(sample)
        raise KeyError(f"{sample!r}: not a sample token or index (0..{len(tokens) - 1})")

    # -- points ---------------------------------------------------------------------------------------
    def load_points(self, i: int) -> np.ndarray:
        """(P, 5) float32 ``x, y, z, intensity, dt``: keyframe + up to ``sweeps`` earlier sweeps, ego-cropped."""
        rec = self.records[i]
        key = load_pcd_bin(str(self.root / rec["lidar_path"]), self.data.nonfinite_points)
        key = crop_ego(key, self.data.ego_crop)
        parts = [np.concatenate([key[:, :4], np.zeros((len(key), 1), np.float32)], axis=1)]
        for sw in rec["sweeps"][: self.data.sweeps]:
            path = self.root / sw["path"]
            if not os.path.exists(path):
                self._missing_sweep(path)
                continue
            pts = crop_ego(load_pcd_bin(str(path), self.data.nonfinite_points), self.data.ego_crop)
            m = sw["sweep2lidar"]
            xyz = pts[:, :3] @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)
            dt = np.full((len(pts), 1), sw["dt"], np.float32)
            parts.append(np.concatenate([xyz, pts[:, 3:4], dt], axis=1).astype(np.float32))
        return np.concatenate(parts, axis=0)

    def _missing_sweep(self, path: Path) -> None:
        self.missing_sweeps += 1
        if not self._warned_sweeps:
            self._warned_sweeps = True
            warnings.warn(f"sweep file missing, using the sweeps present (warned once; counted in "
                          f"dataset.missing_sweeps): {path}", stacklevel=3)

    # -- cameras --------------------------------------------------------------------------------------
    def load_cameras(self, i: int) -> dict[str, np.ndarray]:
        rec = self.records[i]
        images, ks, l2c = [], [], []
        for cam in self.data.cameras:
            if cam not in rec["cams"]:
                raise DataError(f"sample {rec['token']} has no {cam}", str(self.root))
            c = rec["cams"][cam]
            ks.append(c["intrinsics"])
            l2c.append(c["lidar2cam"])
            if self.load_images:
                path = self.root / c["path"]
                try:
                    with Image.open(path) as im:
                        k = _draft(im, self._calibrated(c, im.size, path), self.data.image_size)
                        img, k = resize_crop(im.convert("RGB"), k, self.data.image_size)
                except FileNotFoundError as exc:
                    raise DataError("image file does not exist", str(path)) from exc
                except (UnidentifiedImageError, OSError, ValueError) as exc:
                    raise DataError(f"unreadable image ({exc})", str(path)) from exc
                images.append(img)
                ks[-1] = k
        intr = np.stack(ks).astype(np.float32)
        lidar2cam = np.stack(l2c).astype(np.float32)
        k4 = np.tile(np.eye(4, dtype=np.float32), (len(ks), 1, 1))
        k4[:, :3, :3] = intr
        out = {
            "intrinsics": intr, "lidar2cam": lidar2cam,
            "cam2lidar": np.stack([invert(m.astype(np.float64)) for m in lidar2cam]).astype(np.float32),
            "lidar2img": k4 @ lidar2cam,
        }
        if self.load_images:
            out["images"] = np.stack(images)
        return out

    def _calibrated(self, cam: dict, size: tuple[int, int], path: Path) -> np.ndarray:
        """The intrinsics for an image of ``size`` (W, H): the calibration's, scaled (with a one-time warning)
        when the file has another size than the calibration's image (same aspect ratio); else a DataError."""
        k = np.asarray(cam["intrinsics"], dtype=np.float64)
        ch, cw = (int(v) for v in cam.get("size", (0, 0)))
        w, h = size
        if not ch or not cw or (h, w) == (ch, cw):
            return k
        if abs(w / cw - h / ch) > 0.01 * max(w / cw, h / ch):
            raise DataError(f"image is {w}x{h} but its calibration is for {cw}x{ch} images (another aspect "
                            "ratio): the intrinsics do not fit it", str(path))
        if not getattr(self, "_warned_size", False):
            self._warned_size = True
            warnings.warn(f"{path}: image is {w}x{h} but its calibration is for {cw}x{ch} images: intrinsics "
                          "scaled to the image (warned once)", stacklevel=3)
        k = k.copy()
        k[0, :] *= w / cw
        k[1, :] *= h / ch
        return k

    # -- sample ---------------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        sample: dict[str, Any] = {
            "token": rec["token"], "scene_name": rec["scene_name"],
            "points": self.load_points(i),
            "lidar2ego": rec["lidar2ego"].astype(np.float32), "ego2global": rec["ego2global"].astype(np.float32),
            "gt_boxes": rec["gt_boxes"], "gt_labels": rec["gt_labels"], "gt_num_pts": rec["gt_num_pts"],
        }
        sample.update(self.load_cameras(i))
        if self.with_regions:
            regions = self._regions(rec["token"], len(sample["points"]))
            if regions is not None:
                sample["regions"] = regions
        if rec.get("map_mask"):
            from calico.data.maps import load_map_mask

            sample["map_masks"] = load_map_mask(self.cache / "maps" / rec["map_mask"], self.cfg.model.seg_size,
                                               self.cfg.model.seg_range)
        if self.transform is not None:
            sample = self.transform(sample, i)
        return sample

    def _regions(self, token: str, n: int) -> np.ndarray | None:
        """The cached regions pooled with this config's settings (None when not cached)."""
        from calico.data.regions import cache_settings, load_regions, regions_dir

        return load_regions(regions_dir(self.cache, cache_settings(self.cfg)), token, n)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch sample dicts (see the Batch contract in docs/ARCHITECTURE.md)."""
    pts = [torch.from_numpy(np.asarray(s["points"], np.float32)) for s in samples]
    batch: dict[str, Any] = {
        "points": torch.cat([torch.cat([torch.full((len(p), 1), float(b)), p], 1) for b, p in enumerate(pts)]),
        "tokens": [s["token"] for s in samples],
        "gt_boxes": [torch.from_numpy(np.asarray(s["gt_boxes"], np.float32)) for s in samples],
        "gt_labels": [torch.from_numpy(np.asarray(s["gt_labels"], np.int64)) for s in samples],
    }
    for key in ("intrinsics", "lidar2cam", "cam2lidar", "lidar2img", "lidar2ego", "ego2global"):
        batch[key] = torch.from_numpy(np.stack([s[key] for s in samples]).astype(np.float32))
    if "images" in samples[0]:
        imgs = np.stack([s["images"] for s in samples]).astype(np.float32) / 255.0
        imgs = (imgs - IMAGENET_MEAN) / IMAGENET_STD
        batch["images"] = torch.from_numpy(imgs).permute(0, 1, 4, 2, 3).contiguous()  # B,N,3,H,W
    if all("regions" in s for s in samples):
        batch["regions"] = torch.from_numpy(np.concatenate([s["regions"] for s in samples]).astype(np.int64))
    if all("map_masks" in s for s in samples):
        batch["map_masks"] = torch.from_numpy(np.stack([s["map_masks"] for s in samples]))
    return batch
