"""Triangle-mesh helpers for render proxies: binary STL parsing and vertex-clustering decimation.

Rendering on llvmpipe (CPU OpenGL) costs roughly linear in the number of triangles drawn, and the
benchmark's FTS-300 and 2F-85 base meshes alone hold ~200k triangles, most of them invisible at
128x128 px. A render proxy is a decimated copy of such a mesh used only for drawing (see scene.py);
physics keeps the original mesh.
"""

from __future__ import annotations

import struct
from typing import Tuple

import numpy as np

_STL_RECORD = np.dtype([('normal', '<f4', 3), ('v', '<f4', (3, 3)), ('attr', '<u2')])


def read_binary_stl(data: bytes) -> np.ndarray:
    """Binary STL bytes -> triangle corners, float64 array (n_triangles, 3, 3)."""
    if len(data) < 84:
        raise ValueError('STL data shorter than its header')
    n = struct.unpack('<I', data[80:84])[0]
    if len(data) < 84 + n * _STL_RECORD.itemsize:
        raise ValueError(f'not a binary STL (or truncated): header says {n} triangles')
    rec = np.frombuffer(data, dtype=_STL_RECORD, count=n, offset=84)
    return rec['v'].astype(np.float64)


def cluster_decimate(triangles: np.ndarray, cell_m: float) -> Tuple[np.ndarray, np.ndarray]:
    """Vertex clustering on a `cell_m` grid: (vertices (v, 3), faces (f, 3) int32).

    All corners falling into one grid cell merge into their mean; triangles that collapse are
    dropped. Good enough for drawing at a few mm per pixel; never used for collision.
    """
    corners = triangles.reshape(-1, 3)
    keys = np.floor(corners / cell_m).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = int(inverse.max()) + 1
    sums = np.zeros((n, 3))
    np.add.at(sums, inverse, corners)
    counts = np.bincount(inverse, minlength=n).astype(np.float64)
    vertices = sums / counts[:, None]
    faces = inverse.reshape(-1, 3)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    # drop duplicate triangles (same corners, any order)
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    used = np.unique(faces)
    remap = np.full(n, -1, np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces].astype(np.int32)
