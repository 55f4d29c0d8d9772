"""BEV map-segmentation ground truth from the nuScenes map expansion, via the devkit's ``NuScenesMap``.

Raster convention (shared with the models and the evaluation): ``mask[c, i, j]`` covers the cell whose
centre in the keyframe LiDAR frame is ``x = -R + (j + 0.5) * res``, ``y = -R + (i + 0.5) * res``: rows run
along +y, columns along +x, like every BEV tensor in this project (``[..., y, x]``). We rasterise by
testing cell centres against the map polygons (shapely's vectorised ``contains_xy``) rather than the
devkit's ``get_map_mask``, whose canvas rotation convention is easy to get wrong.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import shapely
from tqdm import tqdm

from calico.config import MAP_CLASSES
from calico.data.geometry import apply
from calico.errors import DataError

MASK_RANGE = 50.0  # metres: [-50, 50]^2 around the LiDAR (paper §3.3)
MASK_SIZE = 200  # 0.5 m cells, as BEVFusion
DIVIDER_HALF_WIDTH = 0.5  # metres each side of a divider line

_POLYGON_LAYERS = {
    "drivable_area": ["drivable_area"], "ped_crossing": ["ped_crossing"], "walkway": ["walkway"],
    "stop_line": ["stop_line"], "carpark_area": ["carpark_area"],
}
_LINE_LAYERS = {"divider": ["road_divider", "lane_divider"]}


def has_map_expansion(dataroot: str, locations: set[str]) -> bool:
    root = Path(dataroot) / "maps" / "expansion"
    return bool(locations) and all((root / f"{loc}.json").exists() for loc in locations)


def cell_centres(size: int = MASK_SIZE, extent: float = MASK_RANGE) -> np.ndarray:
    """(size*size, 2) xy centres in the LiDAR frame, row-major over (i: y, j: x)."""
    res = 2 * extent / size
    c = -extent + (np.arange(size) + 0.5) * res
    xx, yy = np.meshgrid(c, c)  # yy varies along rows (i), xx along columns (j)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


class MapRasteriser:
    """All polygons of one map location, per class, in an STR-tree: each sample then tests its cell
    centres against the few geometries near it. (The devkit's ``get_records_in_patch`` scans every record
    of the map per call, ~1 s per sample on a small map and far slower on the real ones.)"""

    def __init__(self, nmap):
        layers = {**_POLYGON_LAYERS, **_LINE_LAYERS}
        self.geoms: list[list] = []
        self.trees: list[shapely.STRtree] = []
        for name in MAP_CLASSES:
            geoms = [g for layer in layers[name] for g in self._layer_geometries(nmap, layer)]
            for g in geoms:
                shapely.prepare(g)
            self.geoms.append(geoms)
            self.trees.append(shapely.STRtree(geoms))

    @staticmethod
    def _layer_geometries(nmap, layer: str) -> list:
        geoms = []
        for rec in getattr(nmap, layer):
            if layer in ("road_divider", "lane_divider"):
                line = nmap.extract_line(rec["line_token"])
                if not line.is_empty:
                    geoms.append(line.buffer(DIVIDER_HALF_WIDTH))
            else:
                for ptok in rec.get("polygon_tokens", [rec.get("polygon_token")]):
                    if ptok:
                        poly = nmap.extract_polygon(ptok)
                        if poly.is_valid and not poly.is_empty:
                            geoms.append(poly)
        return geoms

    def __call__(self, lidar2global: np.ndarray, size: int = MASK_SIZE, extent: float = MASK_RANGE) -> np.ndarray:
        """(6, size, size) uint8 masks of ``MAP_CLASSES`` around one LiDAR pose."""
        xy_local = cell_centres(size, extent)
        xyz = np.concatenate([xy_local, np.zeros((len(xy_local), 1))], axis=1)
        xy = apply(lidar2global, xyz)[:, :2]
        patch = shapely.box(*xy.min(0), *xy.max(0))
        out = np.zeros((len(MAP_CLASSES), size * size), dtype=bool)
        for c, (geoms, tree) in enumerate(zip(self.geoms, self.trees)):
            for k in tree.query(patch):
                out[c] |= shapely.contains_xy(geoms[k], xy[:, 0], xy[:, 1])
        return out.astype(np.uint8).reshape(len(MAP_CLASSES), size, size)


def write_map_masks(nusc, records: list[dict], out_dir: Path, progress: bool = True) -> str:
    """Rasterise every record's masks into ``out_dir/maps/<token>.npz`` (bit-packed); return the folder."""
    from nuscenes.map_expansion.map_api import NuScenesMap

    folder = Path(out_dir) / "maps"
    folder.mkdir(parents=True, exist_ok=True)
    maps: dict[str, MapRasteriser] = {}
    for rec in tqdm(records, desc="map masks", unit="sample", disable=not progress):
        path = folder / f"{rec['token']}.npz"
        rec["map_mask"] = path.name
        if path.exists():
            continue
        loc = rec["location"]
        if loc not in maps:
            with contextlib.redirect_stdout(io.StringIO()):
                maps[loc] = MapRasteriser(NuScenesMap(dataroot=nusc.dataroot, map_name=loc))
        mask = maps[loc](rec["ego2global"] @ rec["lidar2ego"])
        np.savez_compressed(path, bits=np.packbits(mask), shape=np.array(mask.shape))
    return str(folder)


def load_map_mask(path: Path, size: int, seg_range: float = MASK_RANGE) -> np.ndarray:
    """Load a cached mask (drawn over ``[-MASK_RANGE, MASK_RANGE]^2``) and resample it onto ``size`` cells over
    ``[-seg_range, seg_range]^2`` (the cached cell holding each new cell's centre). A ``seg_range`` beyond the
    cached extent is refused: those cells have no ground truth."""
    if not 0 < seg_range <= MASK_RANGE:
        raise DataError(f"model.seg_range={seg_range} but map masks are cached over ±{MASK_RANGE:g} m "
                        f"(use a seg_range in (0, {MASK_RANGE:g}])", str(path))
    with np.load(path, allow_pickle=False) as z:
        shape = tuple(z["shape"])
        mask = np.unpackbits(z["bits"])[: int(np.prod(shape))].reshape(shape)
    if shape[-1] != size or seg_range != MASK_RANGE:
        # new cell i's centre, as a position in cached cells: (i + 0.5) * cell_new / cell_cached, shifted by the
        # margin between the two extents (0 at the cached range, which keeps the plain resize exact)
        scale = (2 * seg_range / size) / (2 * MASK_RANGE / shape[-1])
        offset = (MASK_RANGE - seg_range) * shape[-1] / (2 * MASK_RANGE)
        idx = (offset + (np.arange(size) + 0.5) * scale).astype(np.int64)
        mask = mask[:, idx][:, :, idx]
    return mask
