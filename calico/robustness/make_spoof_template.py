"""Build the spoofing template (``car_front_template.npz``) from real car points of a nuScenes scene.

    python -m calico.robustness.make_spoof_template --dataroot ../shared/data/nuscenes-scene-0916

Picks the annotated car with the most LiDAR points that the sensor saw end-on (line of sight within
``--max-angle`` degrees of the car's length axis, from 4 to 12 m away), takes the points inside its box
and expresses them in the box frame (x along the length, z up from the box bottom). A car seen from the
front is turned by 180 deg so that the visible face is always at -x: a sensor behind the car looks along
+x. The result is what a real HDL-32E sees of a car ahead, the attacker's trace source of Sun et al. 2020.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TEMPLATE_PATH = Path(__file__).with_name("car_front_template.npz")


def build_template(dataroot: str, version: str = "v1.0-mini", max_angle: float = 20.0,
                   min_range: float = 4.0, max_range: float = 12.0) -> dict[str, np.ndarray]:
    """Return {"points": (N, 4) float32 box-frame x, y, z-from-bottom, intensity, "lwh": (3,), tokens}."""
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.data_classes import LidarPointCloud
    from nuscenes.utils.geometry_utils import points_in_box

    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    best = None
    for sample in nusc.sample:
        _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        for box in boxes:
            if not box.name.startswith("vehicle.car"):
                continue
            rng_xy = float(np.hypot(box.center[0], box.center[1]))
            los = np.arctan2(box.center[1], box.center[0])
            yaw = box.orientation.yaw_pitch_roll[0]
            rel = np.degrees((los - yaw + np.pi) % (2 * np.pi) - np.pi)  # 0: rear seen, +-180: front seen
            end_on = min(abs(rel), 180.0 - abs(rel)) <= max_angle
            n_pts = nusc.get("sample_annotation", box.token)["num_lidar_pts"]
            if end_on and min_range <= rng_xy <= max_range and (best is None or n_pts > best[0]):
                best = (n_pts, sample["data"]["LIDAR_TOP"], box.token, abs(rel) > 90.0)
    if best is None:
        raise ValueError(f"{dataroot}: no car seen end-on between {min_range} and {max_range} m")
    _, sd_token, ann_token, front_seen = best
    path, boxes, _ = nusc.get_sample_data(sd_token, selected_anntokens=[ann_token])
    box = boxes[0]
    pc = LidarPointCloud.from_file(path)
    inside = points_in_box(box, pc.points[:3])
    pts = pc.points[:, inside]
    local = box.rotation_matrix.T @ (pts[:3] - box.center[:, None])  # box frame, x along the length
    if front_seen:
        local[:2] *= -1.0  # 180 deg about z: the visible face goes to -x
    w, length, h = box.wlh
    local[2] += h / 2.0
    points = np.concatenate([local.T, pts[3:4].T], axis=1).astype(np.float32)
    return {"points": points, "lwh": np.array([length, w, h], dtype=np.float32),
            "sample_data_token": np.array(sd_token), "annotation_token": np.array(ann_token)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", default="v1.0-mini")
    parser.add_argument("--out", default=str(TEMPLATE_PATH))
    args = parser.parse_args(argv)
    tpl = build_template(args.dataroot, args.version)
    np.savez_compressed(args.out, **tpl)
    print(f"wrote {args.out}: {len(tpl['points'])} points, car lwh {tpl['lwh'].round(2).tolist()}, "
          f"annotation {tpl['annotation_token']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
