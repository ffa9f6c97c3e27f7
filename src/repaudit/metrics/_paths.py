"""Numba kernels of graph convexity: one bidirectional Dijkstra per sampled pair, or the
shortest-path trees of every vertex when the graph is small enough to keep them.

One full single-source Dijkstra per sampled pair (or per cover vertex) visits the whole graph,
so sampled-pair convexity (Tětková et al., arXiv 2305.17154) grew as N^2. A bidirectional
search stops once the two frontiers prove the shortest path, which on a kNN graph visits a
small neighbourhood of both endpoints and is exact.
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.inf


@numba.njit(cache=True, inline="always")
def _push(hk, hv, size, key, val):
    i = size
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= key:
            break
        hk[i], hv[i] = hk[p], hv[p]
        i = p
    hk[i], hv[i] = key, val
    return size + 1


@numba.njit(cache=True, inline="always")
def _pop(hk, hv, size):
    # Removes the root; the caller read it first.
    size -= 1
    key, val = hk[size], hv[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and hk[c + 1] < hk[c]:
            c += 1
        if hk[c] >= key:
            break
        hk[i], hv[i] = hk[c], hv[c]
        i = c
    if size > 0:
        hk[i], hv[i] = key, val
    return size


@numba.njit(cache=True, inline="always")
def _walk(parent, in_class, v, stop):
    """Interior vertices from v back to stop along ``parent`` links, and how many are in class."""
    n_int = 0
    n_in = 0
    while v != stop:
        n_int += 1
        n_in += in_class[v]
        v = parent[v]
    return n_int, n_in


@numba.njit(cache=True)
def _pair_chunk(indptr, indices, weights, in_class, src, dst, lo, hi, scores, connected):
    """Bidirectional Dijkstra for pairs lo..hi-1; writes their scores and connectivity.

    Lazy-deletion binary heaps; per-vertex arrays are reset by stamping with the pair index,
    so each pair costs only the vertices it touches. Stop rule (Goldberg & Harrelson 2005):
    the best meeting path ``mu`` is final once ``top_f + top_b >= mu``.
    """
    n = indptr.size - 1
    cap = indices.size + 2
    dist = np.empty((2, n), dtype=np.float64)
    pred = np.empty((2, n), dtype=np.int64)
    seen = np.full((2, n), -1, dtype=np.int64)
    done = np.full((2, n), -1, dtype=np.int64)
    hk = np.empty((2, cap), dtype=np.float64)
    hv = np.empty((2, cap), dtype=np.int64)
    size = np.zeros(2, dtype=np.int64)
    for p in range(lo, hi):
        s, t = src[p], dst[p]
        ends = (s, t)
        for side in range(2):
            e = ends[side]
            dist[side, e] = 0.0
            pred[side, e] = -1
            seen[side, e] = p
            hk[side, 0], hv[side, 0] = 0.0, e
            size[side] = 1
        mu = _INF
        meet_f, meet_b = -1, -1
        while size[0] > 0 and size[1] > 0:
            # Drop stale entries so the tops are the frontiers' true minima.
            for side in range(2):
                while size[side] > 0 and done[side, hv[side, 0]] == p:
                    size[side] = _pop(hk[side], hv[side], size[side])
            if size[0] == 0 or size[1] == 0:
                break
            if hk[0, 0] + hk[1, 0] >= mu:
                break
            side = 0 if size[0] <= size[1] else 1
            other = 1 - side
            d, u = hk[side, 0], hv[side, 0]
            size[side] = _pop(hk[side], hv[side], size[side])
            done[side, u] = p
            for j in range(indptr[u], indptr[u + 1]):
                v = indices[j]
                nd = d + weights[j]
                if seen[side, v] != p or nd < dist[side, v]:
                    dist[side, v] = nd
                    pred[side, v] = u
                    seen[side, v] = p
                    size[side] = _push(hk[side], hv[side], size[side], nd, v)
                if seen[other, v] == p:
                    cand = nd + dist[other, v]
                    if cand < mu:
                        mu = cand
                        if side == 0:
                            meet_f, meet_b = u, v
                        else:
                            meet_f, meet_b = v, u
        if mu == _INF:
            scores[p] = 0.0
            connected[p] = False
            continue
        connected[p] = True
        n_int, n_in = _walk(pred[0], in_class, meet_f, s)
        more_int, more_in = _walk(pred[1], in_class, meet_b, t)
        n_int, n_in = n_int + more_int, n_in + more_in
        scores[p] = 1.0 if n_int == 0 else n_in / n_int


@numba.njit(cache=True, parallel=True)
def pair_scores(indptr, indices, weights, in_class, src, dst, n_chunks):
    """Score pairs (src[p], dst[p]) on shortest paths: 0 without a path, 1 for a direct edge,
    else the share of interior vertices with ``in_class``; also returns connectivity."""
    m = src.size
    scores = np.empty(m, dtype=np.float64)
    connected = np.empty(m, dtype=np.bool_)
    step = (m + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        lo = min(m, c * step)
        hi = min(m, lo + step)
        if lo < hi:
            _pair_chunk(indptr, indices, weights, in_class, src, dst, lo, hi, scores, connected)
    return scores, connected


@numba.njit(cache=True)
def _tree_chunk(indptr, indices, weights, lo, hi, pred):
    # Full Dijkstra from each source s in lo..hi-1 (lazy-deletion heap); pred[s] is its tree.
    n = indptr.size - 1
    dist = np.empty(n, dtype=np.float64)
    done = np.empty(n, dtype=np.bool_)
    hk = np.empty(indices.size + 1, dtype=np.float64)
    hv = np.empty(indices.size + 1, dtype=np.int64)
    for s in range(lo, hi):
        row = pred[s]
        dist[:] = np.inf
        done[:] = False
        dist[s] = 0.0
        hk[0], hv[0] = 0.0, s
        size = 1
        while size > 0:
            d, u = hk[0], hv[0]
            size = _pop(hk, hv, size)
            if done[u]:
                continue
            done[u] = True
            for j in range(indptr[u], indptr[u + 1]):
                v = indices[j]
                nd = d + weights[j]
                if nd < dist[v]:
                    dist[v] = nd
                    row[v] = u
                    size = _push(hk, hv, size, nd, v)


@numba.njit(cache=True, parallel=True)
def shortest_path_trees(indptr, indices, weights, n_chunks):
    """Shortest-path trees from every vertex: pred[s, v] = v's parent on the path s -> v
    (-1 when unreachable or v == s). Sources are independent, so threads do not matter."""
    n = indptr.size - 1
    pred = np.full((n, n), -1, dtype=np.int32)
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        lo = min(n, c * step)
        hi = min(n, lo + step)
        if lo < hi:
            _tree_chunk(indptr, indices, weights, lo, hi, pred)
    return pred


@numba.njit(cache=True)
def tree_pair_scores(pred, in_class, src, dst):
    # The path src -> dst read backwards from src's tree; same scoring as pair_scores.
    m = src.size
    scores = np.empty(m, dtype=np.float64)
    connected = np.empty(m, dtype=np.bool_)
    for p in range(m):
        s = src[p]
        v = pred[s, dst[p]]
        if v < 0:
            scores[p] = 0.0
            connected[p] = False
            continue
        connected[p] = True
        n_int, n_in = _walk(pred[s], in_class, v, s)
        scores[p] = 1.0 if n_int == 0 else n_in / n_int
    return scores, connected
