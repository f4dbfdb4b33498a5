"""Depth + surface-normal scenes ray-cast analytically in numpy, with exact ground truth.

A pinhole camera at the origin looks along +z (x right, y down, z forward; the NYUv2-like
convention documented in ``aloe.data.shards``). A scene is a floor plane ``y = h``, a back wall
``z = D`` and 1-3 spheres resting on the floor. Each pixel centre's ray ``d = (u, v, 1)`` is
intersected with every surface; because ``d_z = 1`` the ray parameter of the nearest hit is
the depth itself. Normals face the camera. RGB is Lambertian shading (ambient + one directional
light) of per-surface albedo, with a checkerboard on the floor so texture and geometry differ.
"""

from __future__ import annotations

import math

import numpy as np

from aloe.data.synthetic_images import sample_rng

MAX_DEPTH = 10.0


def _sphere_hit(d: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Smallest positive t with |t d - c| = r per ray (inf where missed); d is (H, W, 3)."""
    a = np.einsum("hwk,hwk->hw", d, d)
    b = d @ centre
    c = centre @ centre - radius**2
    disc = b * b - a * c
    t = np.full(a.shape, np.inf)
    ok = disc >= 0
    root = np.sqrt(np.where(ok, disc, 0.0))
    t_near = (b - root) / a
    t[ok & (t_near > 1e-6)] = t_near[ok & (t_near > 1e-6)]
    return t


def render_scene(
    seed: int, stream: int, index: int, size: int, fov_degrees: float = 60.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (rgb uint8 (S, S, 3), depth float32 (S, S) metres, normal float32 (S, S, 3))."""
    rng = sample_rng(seed, stream, index)
    focal = 0.5 / math.tan(math.radians(fov_degrees) / 2)
    coords = (np.arange(size) + 0.5) / size - 0.5
    v, u = np.meshgrid(coords / focal, coords / focal, indexing="ij")
    d = np.stack([u, v, np.ones_like(u)], axis=-1)

    cam_height = rng.uniform(1.0, 1.6)
    wall = rng.uniform(5.0, 9.0)
    n_spheres = int(rng.integers(1, 4))

    depth = np.full((size, size), np.inf)
    normal = np.zeros((size, size, 3))
    albedo = np.zeros((size, size, 3))

    def take(t: np.ndarray, n: np.ndarray, colour: np.ndarray) -> None:
        closer = t < depth
        depth[closer] = t[closer]
        normal[closer] = n[closer] if n.ndim == 3 else n
        albedo[closer] = colour[closer] if colour.ndim == 3 else colour

    t_wall = np.full((size, size), wall)
    take(t_wall, np.array([0.0, 0.0, -1.0]), rng.uniform(0.3, 0.9, size=3))

    t_floor = np.where(v > 1e-9, cam_height / np.where(v > 1e-9, v, 1.0), np.inf)
    hit = d * np.where(np.isfinite(t_floor), t_floor, 0.0)[..., None]
    checker = (np.floor(hit[..., 0] * 2) + np.floor(hit[..., 2] * 2)) % 2
    floor_a, floor_b = rng.uniform(0.2, 0.9, size=(2, 3))
    floor_colour = np.where(checker[..., None] == 0, floor_a, floor_b)
    take(t_floor, np.array([0.0, -1.0, 0.0]), floor_colour)

    for _ in range(n_spheres):
        radius = rng.uniform(0.3, 0.9)
        centre = np.array(
            [rng.uniform(-1.5, 1.5), cam_height - radius, rng.uniform(2.0, wall - radius - 0.2)]
        )
        t = _sphere_hit(d, centre, radius)
        n = (d * np.where(np.isfinite(t), t, 0.0)[..., None] - centre) / radius
        take(t, n, rng.uniform(0.2, 1.0, size=3))

    light = np.array([rng.uniform(-0.6, 0.6), -1.0, -rng.uniform(0.3, 1.0)])
    light /= np.linalg.norm(light)
    lambert = np.clip(normal @ light, 0.0, None)
    rgb = albedo * (0.25 + 0.75 * lambert[..., None])
    valid = depth <= MAX_DEPTH
    depth = np.where(valid, depth, 0.0)
    normal = np.where(valid[..., None], normal, 0.0)
    rgb8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return rgb8, depth.astype(np.float32), normal.astype(np.float32)
