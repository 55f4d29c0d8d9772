"""``calico synth``: write the synthetic nuScenes-format world to a folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataroot to write (created; existing files are overwritten)")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--samples-per-scene", type=int, default=10, help="keyframes per scene (2 Hz)")
    parser.add_argument("--sweeps", type=int, default=3, help="20 Hz LiDAR sweeps written before each keyframe (0-9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unlabeled-scenes", type=int, default=0,
                        help="more scenes in a split 'unlabeled' (not train or val): a pre-training pool for "
                             "`calico pretrain --split train+unlabeled`, rendered at --unlabeled-image-size")
    parser.add_argument("--unlabeled-image-size", type=int, nargs=2, default=(36, 64), metavar=("H", "W"),
                        help="camera images of the unlabeled scenes (small: LiDAR-only stages load no images; "
                             "camera rendering is most of the generation time)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(225, 400), metavar=("H", "W"))
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--labels", action="store_true",
                        help="also write what each LiDAR ray hit (labels/*.npy: object id, -2 ground, -3 ego roof)")
    parser.add_argument("--work-zones", action="store_true",
                        help="also place rows of barriers and cone tapers on the road margin (pooling's hard cases, "
                        "issue 17; off by default, so existing worlds are unchanged)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def format_summary(s: dict) -> str:
    """A readable multi-line summary of ``generate``'s result."""
    lines = [f"wrote {s['dataroot']} (version {s['version']}, map {s['map_name']})",
             f"  scenes {s['scenes']} (train {s['splits'].get('train', 0)}, val {s['splits'].get('val', 0)}"
             + (f", unlabeled {s['splits']['unlabeled']}" if s["splits"].get("unlabeled") else "") + "), "
             f"keyframes {s['samples']}, sweeps/keyframe {s['sweeps_per_keyframe']}",
             f"  LiDAR points/keyframe {s['points_per_keyframe']:.0f} (within 1 m of the sensor: "
             f"{s['points_within_1m']:.0f})",
             "  boxes per class:"]
    for name, n in s["boxes_per_class"].items():
        lines.append(f"    {name:<22s}{n:>7d}")
    lines.append(f"  time {s['seconds']:.1f} s ({s['seconds_per_keyframe']:.2f} s per keyframe incl. sweeps)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from calico.errors import CalicoError

    from .generate import generate

    try:
        summary = generate(Path(args.out), scenes=args.scenes, samples_per_scene=args.samples_per_scene,
                           sweeps=args.sweeps, seed=args.seed, image_size=tuple(args.image_size),
                           version=args.version, progress=not args.no_progress, labels=args.labels,
                           work_zones=args.work_zones, unlabeled_scenes=args.unlabeled_scenes,
                           unlabeled_image_size=tuple(args.unlabeled_image_size))
    except ValueError as exc:
        raise CalicoError(str(exc)) from exc
    except OSError as exc:
        raise CalicoError(f"{args.out}: cannot write the dataset ({exc})") from exc
    print(format_summary(summary))
    return 0
