"""Ray casting shared by the LiDAR and the cameras.

A sensor's rays form a regular grid (LiDAR: elevation x azimuth, camera: pixel rows x columns). Each
object is tested only against the rays inside its bounding rectangle on that grid (a slice), which is
what makes pure numpy fast enough: most primitives cover a few hundred rays, not the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import intersect_boxes, intersect_cylinders, primitive_corners, surface_normals
from .world import KERB, SceneWorld

SKY, GROUND = -1, -2
_PAIRS = np.array([(i, j) for i in range(8) for j in range(i + 1, 8)])


@dataclass
class Hits:
    """Per-ray result on a (rows, cols) grid, flattened: distance, object id (or SKY/GROUND), material,
    world point and normal; ``unoccluded[k]`` counts the rays that hit object k ignoring occlusion."""

    t: np.ndarray
    obj: np.ndarray
    mat: np.ndarray
    point: np.ndarray
    normal: np.ndarray
    unoccluded: dict[int, int]


def camera_rects(corners: np.ndarray, starts: np.ndarray, k: np.ndarray, h: int, w: int,
                 near: float = 0.05) -> np.ndarray:
    """Pixel rectangles (m, 4) [r0, r1, c0, c1) of objects made of convex primitives given by corners
    (M, 8, 3) in the camera frame; object j owns primitives ``starts[j]:starts[j+1]``.

    Edges crossing the near plane are clipped so that bodies partly behind the camera get the exact
    rectangle of their visible part (perspective maps the convex hull to the hull of projected vertices).
    """
    a, b = corners[:, _PAIRS[:, 0]], corners[:, _PAIRS[:, 1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (near - a[..., 2]) / (b[..., 2] - a[..., 2])
        clip = a + s[..., None] * (b - a)
    ok_clip = (s >= 0) & (s <= 1)
    pts = np.concatenate([corners, clip], 1)
    ok = np.concatenate([corners[..., 2] >= near, ok_clip], 1)
    z = np.where(ok, np.maximum(pts[..., 2], near), 1.0)
    u = k[0, 0] * pts[..., 0] / z + k[0, 2]
    v = k[1, 1] * pts[..., 1] / z + k[1, 2]
    big = 1e9
    rect = np.stack([np.where(ok, v, big).min(1), np.where(ok, v, -big).max(1),
                     np.where(ok, u, big).min(1), np.where(ok, u, -big).max(1)], 1)
    out = np.empty((len(corners), 4), dtype=np.int64)
    out[:, 0] = np.clip(np.floor(rect[:, 0]), 0, h)
    out[:, 1] = np.clip(np.ceil(rect[:, 1]) + 1, 0, h)
    out[:, 2] = np.clip(np.floor(rect[:, 2]), 0, w)
    out[:, 3] = np.clip(np.ceil(rect[:, 3]) + 1, 0, w)
    out[~ok.any(1)] = 0
    return _union(out, starts)


def _union(per_prim: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-object rectangles as the union (min/max) of their primitives' non-empty rectangles."""
    empty = (per_prim[:, 1] <= per_prim[:, 0]) | (per_prim[:, 3] <= per_prim[:, 2])
    lo = np.where(empty[:, None], np.iinfo(np.int64).max // 4, per_prim[:, [0, 2]])
    hi = np.where(empty[:, None], np.iinfo(np.int64).min // 4, per_prim[:, [1, 3]])
    mins = np.minimum.reduceat(lo, starts)
    maxs = np.maximum.reduceat(hi, starts)
    return np.stack([mins[:, 0], maxs[:, 0], mins[:, 1], maxs[:, 1]], 1)


def lidar_rects(corners: np.ndarray, starts: np.ndarray, elev: np.ndarray, n_az: int) -> np.ndarray:
    """Object rectangles (m, 4) [r0, r1, c0, c1) on the elevation x azimuth grid; c1 may exceed n_az (wraps).

    The azimuth span of a convex body seen from outside is spanned by its vertices; the elevation bound
    uses the nearest/farthest horizontal distance, because a face's highest point need not be a vertex.
    """
    xy = corners[..., :2]
    centre = xy.mean(1)
    d_c = np.linalg.norm(centre, axis=1)
    rad = np.linalg.norm(xy - centre[:, None], axis=2).max(1)
    az_c = np.arctan2(centre[:, 1], centre[:, 0])
    daz = np.angle(np.exp(1j * (np.arctan2(xy[..., 1], xy[..., 0]) - az_c[:, None])))
    inside = d_c <= rad * 1.01  # the sensor is above/below the body: all azimuths
    az0 = np.where(inside, 0.0, az_c + daz.min(1))
    az1 = np.where(inside, 2 * np.pi, az_c + daz.max(1))
    r_min = np.maximum(d_c - rad, 1e-3)
    r_max = d_c + rad
    zmin, zmax = corners[..., 2].min(1), corners[..., 2].max(1)
    el1 = np.arctan2(zmax, np.where(zmax > 0, r_min, r_max))
    el0 = np.arctan2(zmin, np.where(zmin < 0, r_min, r_max))
    # Union per object, with azimuths unwrapped next to the object's first primitive.
    ref = np.repeat(az0[starts], np.diff(np.append(starts, len(corners))))
    shift = np.angle(np.exp(1j * (az0 - ref))) - (az0 - ref)
    az0, az1 = az0 + shift, az1 + shift
    full = np.maximum.reduceat(inside.astype(np.int64), starts) > 0
    az0 = np.where(full, 0.0, np.minimum.reduceat(az0, starts))
    az1 = np.where(full, 2 * np.pi, np.maximum.reduceat(az1, starts))
    el0, el1 = np.minimum.reduceat(el0, starts), np.maximum.reduceat(el1, starts)
    de = elev[1] - elev[0]
    step = 2 * np.pi / n_az
    out = np.empty((len(starts), 4), dtype=np.int64)
    out[:, 0] = np.clip(np.floor((el0 - elev[0]) / de), 0, len(elev))
    out[:, 1] = np.clip(np.ceil((el1 - elev[0]) / de) + 1, 0, len(elev))
    c0 = np.floor(az0 / step).astype(np.int64)
    span = np.minimum(np.ceil(az1 / step).astype(np.int64) + 1 - c0, n_az)
    out[:, 2] = np.mod(c0, n_az)
    out[:, 3] = out[:, 2] + span
    return out


def cast(world: SceneWorld, t_world: float, origin: np.ndarray, rot: np.ndarray, dirs: np.ndarray,
         rect_fn, max_range: float, count_unoccluded: bool = False) -> Hits:
    """Cast the sensor's rays ``dirs`` (R, C, 3; sensor frame) from ``origin`` with sensor->local ``rot``
    into the world at time ``t_world``. ``rect_fn(corners (M, 8, 3) in the sensor frame, object starts)
    -> (m, 4)`` gives each object's grid slice."""
    n_rows, n_cols = dirs.shape[:2]
    d = dirs.reshape(-1, 3) @ rot.T
    n = len(d)
    t = np.full(n, np.inf)
    obj = np.full(n, SKY, dtype=np.int32)
    prim = np.full(n, -1, dtype=np.int64)

    # Ground: a sloped plane, kerbs found with the raised plane, a few cm of smooth roughness at the hit.
    ga, gb = world.slope
    rate = d[:, 2] - ga * d[:, 0] - gb * d[:, 1]  # height change above the plane per metre of ray
    h0 = origin[2] - world.plane_height(origin[0], origin[1])
    down = rate < -1e-6
    with np.errstate(divide="ignore"):
        t_base = np.where(down, h0 / -rate, np.inf)
        t_top = np.where(down, (h0 - KERB) / -rate, np.inf)
    cand = np.nonzero(down & (t_top < max_range))[0]
    p_top = origin + t_top[cand, None] * d[cand]
    on_top = world.raised_at(p_top[:, 0], p_top[:, 1])
    tg = np.where(on_top, t_top[cand], t_base[cand])
    p_base = origin + t_base[cand, None] * d[cand]
    kerb = ~on_top & world.raised_at(p_base[:, 0], p_base[:, 1])
    if kerb.any():  # the ray enters a sidewalk through its kerb face: march to the first raised sample
        ki = np.nonzero(kerb)[0]
        fr = np.linspace(0.0, 1.0, 9)[None, :]
        ts = t_top[cand[ki], None] + fr * (t_base[cand[ki]] - t_top[cand[ki]])[:, None]
        ps = origin + ts[..., None] * d[cand[ki], None, :]
        first = world.raised_at(ps[..., 0], ps[..., 1]).argmax(1)
        tg[ki] = ts[np.arange(len(ki)), first]
    p = origin + tg[:, None] * d[cand]
    tg = tg + world.roughness(p[:, 0], p[:, 1]) / rate[cand]
    keep = (tg > 0) & (tg < max_range)
    t[cand[keep]] = tg[keep]
    obj[cand[keep]] = GROUND

    # Objects, each against the rays of its own grid rectangle.
    unoccluded: dict[int, int] = {}
    c, yaw, half, kind = world.primitives(t_world)
    corners_all = primitive_corners(kind, c, yaw, half)
    dist = np.linalg.norm(c - origin, axis=1) - np.linalg.norm(half, axis=1)
    bounds = np.flatnonzero(np.diff(world.prim_obj, prepend=-1, append=-1))
    starts, ends = bounds[:-1], bounds[1:]
    near = np.minimum.reduceat(dist, starts) < max_range
    obj_ids = world.prim_obj[starts]
    box_idx, cyl_idx = world.prim_groups()
    sel = np.nonzero(near)[0]
    if len(sel):
        counts = (ends - starts)[sel]
        corners = (corners_all[np.repeat(near, ends - starts)] - origin) @ rot
        rects = rect_fn(corners, np.concatenate([[0], np.cumsum(counts)[:-1]]))
        for k, i in enumerate(sel):
            r0, r1, c0, c1 = rects[k]
            if r1 <= r0 or c1 <= c0:
                continue
            cols = np.arange(c0, c1) % n_cols
            idx = (np.arange(r0, r1)[:, None] * n_cols + cols[None, :]).ravel()
            dd = d[idx]
            b, cy = box_idx[i], cyl_idx[i]
            if len(cy) == 0:
                tt = intersect_boxes(origin, dd, c[b], yaw[b], half[b])
                order = b
            elif len(b) == 0:
                tt = intersect_cylinders(origin, dd, c[cy], half[cy, 0], half[cy, 2])
                order = cy
            else:
                tt = np.concatenate([intersect_boxes(origin, dd, c[b], yaw[b], half[b]),
                                     intersect_cylinders(origin, dd, c[cy], half[cy, 0], half[cy, 2])], 1)
                order = np.concatenate([b, cy])
            if tt.shape[1] == 1:
                best = np.zeros(len(idx), dtype=np.int64)
                tb = tt[:, 0]
            else:
                best = tt.argmin(1)
                tb = np.take_along_axis(tt, best[:, None], 1)[:, 0]
            hit = tb < max_range
            if count_unoccluded:
                unoccluded[int(obj_ids[i])] = int(hit.sum())
            win = hit & (tb < t[idx])
            wi = idx[win]
            t[wi] = tb[win]
            obj[wi] = obj_ids[i]
            prim[wi] = order[best[win]]

    hit_any = np.isfinite(t)
    point = np.full((n, 3), np.nan)
    point[hit_any] = origin + t[hit_any, None] * d[hit_any]
    normal = np.zeros((n, 3))
    normal[obj == GROUND] = world.normal()
    on_obj = prim >= 0
    if on_obj.any():
        pi = prim[on_obj]
        normal[on_obj] = surface_normals(point[on_obj], kind[pi], c[pi], yaw[pi], half[pi])
    mat = np.full(n, -1, dtype=np.int32)
    g = obj == GROUND
    mat[g] = world.material_at(point[g, 0], point[g, 1])
    mat[on_obj] = world.prim_mat[prim[on_obj]]
    return Hits(t, obj, mat, point, normal, unoccluded)
