"""Ray intersection with the two primitives the world is built from: yaw-oriented boxes and vertical cylinders.

All rays of one sensor share an origin, so the tests take one origin ``o`` (3,) and directions ``d``
(n, 3) against ``m`` primitives at once and return hit distances (n, m) (``inf`` where missed). Written
in numpy rather than with a ray-tracing library because the culled, single-origin batches are small and
a dependency such as Open3D/Embree would be heavy for what is a few vectorised formulas.
"""

from __future__ import annotations

import numpy as np

BOX, CYLINDER = 0, 1
_EPS = 1e-6


def intersect_boxes(o: np.ndarray, d: np.ndarray, c: np.ndarray, yaw: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Ray/box distances (n, m). Boxes: centres ``c`` (m,3), yaw about +z (m,), half sizes ``h`` (m,3)."""
    cs, sn = np.cos(yaw), np.sin(yaw)
    rel = o[None, :] - c
    o_loc = np.stack([cs * rel[:, 0] + sn * rel[:, 1], -sn * rel[:, 0] + cs * rel[:, 1], rel[:, 2]], -1)
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    d_loc = (dx * cs + dy * sn, -dx * sn + dy * cs, np.broadcast_to(dz, (d.shape[0], c.shape[0])))
    t_near = np.full((d.shape[0], c.shape[0]), -np.inf)
    t_far = np.full((d.shape[0], c.shape[0]), np.inf)
    for a in range(3):
        da = d_loc[a]
        inv = 1.0 / np.where(np.abs(da) < 1e-12, 1e-12, da)
        t1 = (-h[:, a] - o_loc[:, a]) * inv
        t2 = (h[:, a] - o_loc[:, a]) * inv
        np.maximum(t_near, np.minimum(t1, t2), out=t_near)
        np.minimum(t_far, np.maximum(t1, t2), out=t_far)
    hit = (t_far >= t_near) & (t_near > _EPS)
    return np.where(hit, t_near, np.inf)


def intersect_cylinders(o: np.ndarray, d: np.ndarray, c: np.ndarray, r: np.ndarray, hz: np.ndarray) -> np.ndarray:
    """Ray/vertical-cylinder distances (n, m). Centres ``c`` (m,3), radius ``r`` (m,), half height ``hz`` (m,)."""
    rel = o[None, :] - c
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    a = np.maximum(dx * dx + dy * dy, 1e-12)
    b = 2.0 * (rel[:, 0] * dx + rel[:, 1] * dy)
    cc = rel[:, 0] ** 2 + rel[:, 1] ** 2 - r**2
    disc = b * b - 4.0 * a * cc
    with np.errstate(invalid="ignore"):
        ts = (-b - np.sqrt(disc)) / (2.0 * a)
    zs = rel[:, 2] + ts * dz
    t = np.where((disc >= 0) & (ts > _EPS) & (np.abs(zs) <= hz), ts, np.inf)
    # Caps can be hit first only when the origin is above or below the cylinder.
    outside_z = np.abs(rel[:, 2]) > hz
    if outside_z.any():
        zc = np.where(rel[:, 2] > 0, hz, -hz)
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = (zc - rel[:, 2]) / np.where(np.abs(dz) < 1e-12, 1e-12, dz)
        px = rel[:, 0] + tc * dx
        py = rel[:, 1] + tc * dy
        ok = outside_z & (tc > _EPS) & (px * px + py * py <= r * r)
        t = np.where(ok & (tc < t), tc, t)
    return t


def surface_normals(p: np.ndarray, kind: np.ndarray, c: np.ndarray, yaw: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Outward normals (n,3) at surface points ``p`` (n,3) of the primitives hit (per-point parameters)."""
    rel = p - c
    cs, sn = np.cos(yaw), np.sin(yaw)
    lx = cs * rel[:, 0] + sn * rel[:, 1]
    ly = -sn * rel[:, 0] + cs * rel[:, 1]
    lz = rel[:, 2]
    n = np.zeros_like(p)
    # Box: the face whose normalised coordinate is largest. Cylinder: side vs cap likewise.
    fx, fy, fz = np.abs(lx) / h[:, 0], np.abs(ly) / h[:, 1], np.abs(lz) / h[:, 2]
    is_box = kind == BOX
    bx = is_box & (fx >= fy) & (fx >= fz)
    by = is_box & ~bx & (fy >= fz)
    bz = is_box & ~bx & ~by
    nlx = np.where(bx, np.sign(lx), 0.0)
    nly = np.where(by, np.sign(ly), 0.0)
    n[:, 2] = np.where(bz, np.sign(lz), 0.0)
    rad = np.sqrt(lx * lx + ly * ly) / np.maximum(h[:, 0], 1e-9)
    cyl_side = ~is_box & (rad >= fz)
    cyl_cap = ~is_box & ~cyl_side
    rr = np.maximum(np.sqrt(lx * lx + ly * ly), 1e-9)
    nlx = np.where(cyl_side, lx / rr, nlx)
    nly = np.where(cyl_side, ly / rr, nly)
    n[:, 2] = np.where(cyl_cap, np.sign(lz), n[:, 2])
    n[:, 0] = cs * nlx - sn * nly
    n[:, 1] = sn * nlx + cs * nly
    return n


def primitive_corners(kind: np.ndarray, c: np.ndarray, yaw: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(m, 8, 3) corners of each primitive's oriented bounding box (a cylinder's is its square prism)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    hh = h.copy()
    hh[kind == CYLINDER, 1] = hh[kind == CYLINDER, 0]
    loc = signs[None] * hh[:, None, :]
    cs, sn = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    out = np.empty_like(loc)
    out[..., 0] = cs * loc[..., 0] - sn * loc[..., 1] + c[:, None, 0]
    out[..., 1] = sn * loc[..., 0] + cs * loc[..., 1] + c[:, None, 1]
    out[..., 2] = loc[..., 2] + c[:, None, 2]
    return out
