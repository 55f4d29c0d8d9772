"""``calico convert <format>``: write another dataset's layout as a nuScenes-format dataroot."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = sub.add_parser("pandaset", help="PandaSet sequence(s) -> nuScenes format (Pandar64, 6 cameras, boxes, "
                                        "per-point labels)")
    p.add_argument("--src", required=True,
                   help="a PandaSet sequence folder (with lidar/, camera/, annotations/) or a folder of them")
    p.add_argument("--out", required=True, help="dataroot to write (created; existing files are overwritten)")
    p.add_argument("--version", default="v1.0-pandaset", help="table folder name")
    p.add_argument("--frames", type=int, nargs="*", default=None, metavar="N",
                   help="convert only these frame numbers (e.g. 0 8); default: every frame present")
    p.add_argument("--val", nargs="*", default=None, metavar="SEQ",
                   help="sequences for the val split (default: the last of several; a single sequence goes to "
                        "both train and val)")
    p.add_argument("--link-images", action="store_true",
                   help="symlink the camera JPEGs to the source instead of copying them")


def run(args: argparse.Namespace) -> int:
    from calico.errors import CalicoError

    if args.format == "pandaset":
        from .pandaset import convert, format_summary

        try:
            summary = convert(args.src, args.out, version=args.version, frames=args.frames, val=args.val,
                              link_images=args.link_images)
        except OSError as exc:
            raise CalicoError(f"{args.out}: cannot write the dataset ({exc})") from exc
        print(format_summary(summary))
        return 0
    raise CalicoError(f"unknown format {args.format!r}")
