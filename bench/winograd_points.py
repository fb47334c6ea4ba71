"""Float32 error of Winograd F(4x4,3x3) for a choice of interpolation points, as the engine computes
it (weights and inputs transformed in float32, the per-position products summed over channels in
float32, the output transform in float32), against a float64 direct convolution, in units of
max|y|: why kernels/cpu/conv2d_winograd.cpp uses the points 0, 1, -1, 2, -1/2 (and infinity).
The matrices come from the Toom-Cook construction: A^T's columns are the points' powers, G's rows
[1, a, a^2] / prod_{b != a} (a - b), B^T's rows the coefficients of prod_{b != a} (x - b).

  /usr/bin/python3 bench/winograd_points.py [--channels 256] [--tiles 2000] [--search]
"""
import argparse
import itertools
from fractions import Fraction as F

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--channels", type=int, default=256)
ap.add_argument("--tiles", type=int, default=2000)
ap.add_argument("--search", action="store_true", help="also try every pair of extra points")
a = ap.parse_args()


def matrices(points, m=4, r=3):
    """A^T (m x n), G (n x r), B^T (n x n) for the finite points plus infinity, n = m + r - 1."""
    n = m + r - 1
    pts = [F(p) for p in points]

    def mul(p, q):
        out = [F(0)] * (len(p) + len(q) - 1)
        for i, x in enumerate(p):
            for j, y in enumerate(q):
                out[i + j] += x * y
        return out

    at = [[p ** i for p in pts] + [1 if i == m - 1 else 0] for i in range(m)]
    g, bt = [], []
    for j, x in enumerate(pts):
        f, poly = F(1), [F(1)]
        for k, y in enumerate(pts):
            if k != j:
                f *= x - y
                poly = mul(poly, [-y, F(1)])
        g.append([x ** k / f for k in range(r)])
        bt.append(poly + [F(0)] * (n - len(poly)))
    g.append([0] * (r - 1) + [1])
    poly = [F(1)]
    for y in pts:
        poly = mul(poly, [-y, F(1)])
    bt.append(poly)
    return [np.array([[float(v) for v in row] for row in mat]) for mat in (at, g, bt)]


def error(at, g, bt, m, channels, tiles, seed=0):
    rng = np.random.default_rng(seed)
    n, f32 = m + 2, np.float32
    d = rng.standard_normal((channels, tiles, n, n)).astype(f32)
    w = (rng.standard_normal((channels, 3, 3)) / np.sqrt(9 * channels)).astype(f32)
    u = np.einsum("ik,ckl,jl->cij", g.astype(f32), w, g.astype(f32)).astype(f32)
    v = np.einsum("ik,ctkl,jl->ctij", bt.astype(f32), d, bt.astype(f32)).astype(f32)
    prod = np.einsum("cij,ctij->tij", u, v).astype(f32)
    y = np.einsum("ik,tkl,jl->tij", at.astype(f32), prod, at.astype(f32))
    ref = np.zeros((tiles, m, m))
    dd, wd = d.astype(np.float64), w.astype(np.float64)
    for i in range(m):
        for j in range(m):
            ref[:, i, j] = np.einsum("ctkl,ckl->t", dd[:, :, i:i + 3, j:j + 3], wd)
    return np.abs(y - ref).max() / np.abs(ref).max()


print(f"{a.channels} channels, {a.tiles} tiles, error in units of max|y|")
print(f"F(2x2,3x3), points 0, 1, -1: {error(*matrices((0, 1, -1), m=2), 2, a.channels, a.tiles):.2e}")
for pts in [(0, 1, -1, 2, -2), (0, 1, -1, 2, F(-1, 2)), (0, 1, -1, F(1, 2), F(-1, 2))]:
    e = error(*matrices(pts), 4, a.channels, a.tiles)
    print(f"F(4x4,3x3), points {', '.join(str(p) for p in pts)}: {e:.2e}")
if a.search:
    extra = [F(1, 2), F(-1, 2), 2, -2, F(3, 2), F(-3, 2), F(2, 3), F(-2, 3), F(1, 3), F(-1, 3), 3, -3]
    found = sorted((error(*matrices((0, 1, -1, x, y)), 4, a.channels // 2, a.tiles // 2), x, y)
                   for x, y in itertools.combinations(extra, 2))
    for e, x, y in found[:5]:
        print(f"  search: 0, 1, -1, {x}, {y}: {e:.2e} (half the channels and tiles)")
