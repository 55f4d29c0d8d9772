"""The synthetic nuScenes-format world: procedural scenes, ray-cast LiDAR and cameras, tables, map, splits.

``generate(out_dir, ...)`` writes a dataroot that ``nuscenes.nuscenes.NuScenes`` and
``nuscenes.map_expansion.map_api.NuScenesMap`` load; ``calico synth`` is its command line.
"""

from .generate import generate
from .labels import ground_truth_labels
from .mapgen import MAP_NAME

__all__ = ["generate", "ground_truth_labels", "MAP_NAME"]
