"""Near-duplicates that are near-duplicates, and outliers: the geometry behind `doctor`.

Candidates come from two cheap sources: the perceptual hash, and the nearest neighbours of each
photo in backbone-embedding space (the features `train` caches), which find resized, recompressed,
cropped or re-lit copies the hash misses. Each candidate pair is then *confirmed* on the pixels:
both photos are trimmed of a uniform background (product shots on white), reduced to a 64 px
grey thumbnail, band-passed (difference of Gaussians, so brightness and flat backgrounds do not
count) and compared by normalised correlation over a small grid of crops (a copy may be cropped
by up to ~10 %). Measured on flowers with injected altered copies and on flowers pasted on white
(`bench/doctor_dups.py`): embedding similarity alone cannot separate copies from same-looking
different photos (copies go down to cosine 0.68, different photos up to 0.97); the aligned
band-pass correlation can.

Groups are cliques of confirmed pairs (complete linkage): a photo joins a group only if it is
confirmed against every member, so a chain of look-alikes never becomes one group.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np
from PIL import Image

from .rowfile import Rows, as_rows

THUMB = 64  # side of the stored grey thumbnail
_SIDE = 32  # side of each compared crop
_BG_TOL = 40  # grey levels: a border pixel this close to the border median is background
# Crops of the first photo tried against the whole second one: (x offset, y offset, side) as fractions.
_BOXES = [(0.0, 0.0, 1.0)] + [(ox * (1 - s), oy * (1 - s), s) for s in (0.96, 0.92, 0.88)
                              for ox in (0, 0.25, 0.5, 0.75, 1) for oy in (0, 0.25, 0.5, 0.75, 1)]
CONFIRM = 0.75  # aligned band-pass correlation that confirms a pair (bench/doctor_dups.py)
NEIGHBOURS = 5  # embedding neighbours per photo taken as candidates ...
MIN_COSINE = 0.6  # ... if at least this similar (altered copies of flowers: >= 0.68)
NEAR_DUP_BITS = 6  # hash candidates: max bit distance of both 64-bit hashes
_BANDS = 8  # 8 bands of 8 bits: two hashes within 7 bits share at least one band exactly
GREY_SATURATION = 0.04  # mean (max − min) / 255 of the content below which it counts as grey
_GRID = 3  # cells a side of the colour layout
COLOUR_TOL = 0.06  # chromaticity difference (r, g or b share of a cell's colour, mean over cells) that tells apart
ASPECT_TOL = 0.22  # |log| of the width/height ratio of two contents that tells them apart (x 1.25)
OUTLIER_Z = 3.5  # robust z-score of the distance to the nearest class centre that flags an outlier


_DCT = np.cos(np.pi * np.outer(np.arange(32), 2 * np.arange(32) + 1) / 64)


def perceptual_hash(img: Image.Image) -> int:
    """128-bit fingerprint: a DCT hash (64 bits, high) and a difference hash (64 bits, low).

    Either alone merges unrelated low-detail photos; requiring both to agree keeps only true
    near-duplicates (re-encodes, resizes, small crops or colour changes of one shot).
    """
    gray = img.convert("L")
    g = np.asarray(gray.resize((32, 32), Image.BILINEAR), dtype=np.float64)
    low = (_DCT @ g @ _DCT.T)[:8, :8].flatten()
    ph = low > np.median(low[1:])
    g9 = np.asarray(gray.resize((9, 8), Image.BILINEAR), dtype=np.int16)
    dh = (g9[:, 1:] > g9[:, :-1]).flatten()
    return int.from_bytes(np.packbits(np.concatenate([ph, dh])).tobytes(), "big")


def hash_distance(a: int, b: int) -> int:
    """Distance of two fingerprints: the larger of the DCT-hash and difference-hash bit distances."""
    x = a ^ b
    return max((x >> 64).bit_count(), (x & (2**64 - 1)).bit_count())


def hash_pairs(hashes: list[int], max_bits: int) -> list[tuple[int, int, int]]:
    """Index pairs (i, j, distance) whose fingerprints are within max_bits (see hash_distance).

    Multi-index hashing: each 64-bit half splits into 8 bands of 8 bits, and a pair within
    max_bits < 8 on both halves agrees exactly on at least one band of each. So every pair is
    found among photos sharing a (DCT band, difference-hash band) key of 16 bits, 64 keys per
    photo. Keys are sorted per band pair in numpy: memory O(n), no dict of buckets, and buckets
    of 16-bit keys stay small where 8-bit ones held n/256 photos each (bench/doctor_scale.py).
    """
    assert max_bits < _BANDS
    n = len(hashes)
    if n < 2:
        return []
    hi = np.array([h >> 64 for h in hashes], np.uint64)
    lo = np.array([h & (2**64 - 1) for h in hashes], np.uint64)
    found = []
    for bh in range(_BANDS):
        kh = ((hi >> np.uint64(8 * bh)) & np.uint64(0xFF)).astype(np.int64) << 8
        for bl in range(_BANDS):
            key = kh | ((lo >> np.uint64(8 * bl)) & np.uint64(0xFF)).astype(np.int64)
            order = np.argsort(key, kind="stable")
            srt = key[order]
            starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]])
            run_end = np.repeat(np.r_[starts[1:], n], np.diff(np.r_[starts, n]))
            pos = np.flatnonzero(run_end - np.arange(n) > 1)
            offset = 1
            while len(pos):  # sorted position p against p + offset, within its bucket: every pair once
                i, j = order[pos], order[pos + offset]
                d = np.maximum(np.bitwise_count(hi[i] ^ hi[j]), np.bitwise_count(lo[i] ^ lo[j]))
                close = d <= max_bits
                if close.any():
                    found.append(np.stack([np.minimum(i, j)[close], np.maximum(i, j)[close], d[close]], 1))
                offset += 1
                pos = pos[run_end[pos] - pos > offset]
    if not found:
        return []
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)
    return [(int(i), int(j), int(d)) for i, j, d in pairs]


def content_signature(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """A THUMB×THUMB uint8 grey thumbnail of the photo's content (a uniform border trimmed off) and the
    content's looks (see looks_differ), from one decode."""
    small = img.copy()
    small.thumbnail((256, 256))
    a = np.asarray(small.convert("RGB"), np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = np.median(border, axis=0)
    if (np.abs(border - bg).max(1) <= _BG_TOL).mean() >= 0.9:  # a plain backdrop: compare the object only
        fg = np.abs(a - bg).max(2) > _BG_TOL
        ys, xs = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        if len(ys) > 8 and len(xs) > 8:
            small = small.crop((int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1))
    thumb = np.asarray(small.convert("L").resize((THUMB, THUMB), Image.BILINEAR), np.uint8)
    return thumb, _looks(small.convert("RGB"))


def _looks(content: Image.Image) -> np.ndarray:
    """[chromaticity of each cell of a 3×3 grid (27), mean saturation, width / height]: what the grey square
    thumbnail does not see. Chromaticity (r, g, b over their sum) divides brightness out."""
    cells = np.asarray(content.resize((_GRID, _GRID), Image.BOX), np.float32).reshape(-1, 3)
    chroma = cells / np.maximum(cells.sum(1, keepdims=True), 1.0)
    # Every 4th pixel each way: the saturation needs no detail (the full grid cost doctor 30 % more time).
    p = np.asarray(content, np.float32)[::4, ::4].reshape(-1, 3)
    sat = float(((p.max(1) - p.min(1)) / 255).mean()) if len(p) else 0.0
    return np.append(chroma.ravel(), [sat, content.width / content.height]).astype(np.float32)


def looks_differ(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two contents are told apart by colour or proportions, which the grey square thumbnail does not see.

    Colour: both in colour, and their 3×3 grids of chromaticity differ (brightness, contrast and
    recompression leave chromaticity alone; a grey copy carries no colour, so it never differs).
    Proportions: width / height differ by more than a crop of a copy (<= ~10 %) changes them.
    Used across classes only (see doctor): there colour and shape are often what separates them (a
    red and a blue mug, a tall and a wide bottle), while within a class a recoloured edit of one
    shot is still a copy. Thresholds: bench/doctor_variants.py.
    """
    if abs(float(np.log(a[-1] / b[-1]))) > ASPECT_TOL:
        return True
    if min(float(a[-2]), float(b[-2])) < GREY_SATURATION:
        return False
    diff = np.abs(a[:-2] - b[:-2]).reshape(-1, 3).max(1).mean()
    return float(diff) > COLOUR_TOL


def _resample(offset: float, side: float) -> np.ndarray:
    """[_SIDE, THUMB] triangle-filter weights that resample the span [offset, offset + side]·THUMB to _SIDE samples."""
    scale = side * THUMB / _SIDE
    centre = offset * THUMB + (np.arange(_SIDE) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(THUMB)[None, :] - centre[:, None]) / max(scale, 1.0))
    return w / w.sum(1, keepdims=True)


def _band_pass() -> np.ndarray:
    """[_SIDE, _SIDE]: identity minus a Gaussian blur (sigma _SIDE/12), edges renormalised."""
    d = np.arange(_SIDE)
    g = np.exp(-0.5 * ((d[:, None] - d[None, :]) / (_SIDE / 12)) ** 2)
    return np.eye(_SIDE) - g / g.sum(1, keepdims=True)


# Cropping, resampling and band-passing are linear: a left (rows) and a right (columns) matrix per
# crop box; boxes share them, so each distinct one is applied once.
_ROWS = sorted({(oy, sc) for _, oy, sc in _BOXES})
_COLS = sorted({(ox, sc) for ox, _, sc in _BOXES})
_LEFT = np.stack([_band_pass() @ _resample(o, sc) for o, sc in _ROWS]).astype(np.float32)
_RIGHT_T = np.stack([(_band_pass() @ _resample(o, sc)).T for o, sc in _COLS]).astype(np.float32)
_PICK = [(_ROWS.index((oy, sc)), _COLS.index((ox, sc))) for ox, oy, sc in _BOXES]


def _unit(v: np.ndarray) -> np.ndarray:
    """Flatten the last two axes, remove the mean, scale to unit length."""
    v = v.reshape(*v.shape[:-2], -1)
    v = v - v.mean(-1, keepdims=True)
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-3)


def band_pass_crops(thumbs: np.ndarray) -> np.ndarray:
    """[n, len(_BOXES), _SIDE²] unit vectors: each crop box of each thumbnail, band-passed and normalised."""
    t = np.asarray(thumbs, np.float32).reshape(-1, 1, THUMB, THUMB)
    cols = t @ _RIGHT_T[None]  # [n, len(_COLS), THUMB, _SIDE]
    return _unit(np.stack([_LEFT[r] @ cols[:, c] for r, c in _PICK], axis=1))


def _whole_views(thumbs: np.ndarray) -> np.ndarray:
    """[n, _SIDE²] unit vectors: each whole thumbnail, band-passed and normalised (crop box 0)."""
    r0, c0 = _PICK[0]
    t = np.asarray(thumbs, np.float32).reshape(-1, 1, THUMB, THUMB)
    return _unit(_LEFT[r0] @ (t @ _RIGHT_T[c0]))[:, 0]


def aligned_similarity(thumbs: Rows, pairs: np.ndarray | list[tuple[int, int]], chunk: int = 128) -> np.ndarray:
    """For each pair (i, j): the best band-pass correlation of a crop of one photo with the whole other.

    `thumbs` holds a THUMB×THUMB thumbnail per photo index (in memory or on disk). Photos are taken a
    chunk at a time: their crops are made once and compared with the whole views of their partners,
    read for that chunk only, so memory is one chunk's crops and partners however many photos there are.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    thumbs = as_rows(thumbs)
    best = np.full(len(pairs), -1.0, np.float32)
    if not len(pairs):
        return best
    # Each pair seen from both ends, sorted by the photo whose crops are tried.
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    pid = np.concatenate([np.arange(len(pairs))] * 2)
    order = np.argsort(src, kind="stable")
    src, dst, pid = src[order], dst[order], pid[order]
    keys = np.unique(src)
    for s in range(0, len(keys), chunk):
        ks = keys[s:s + chunk]
        lo, hi = np.searchsorted(src, ks[0]), np.searchsorted(src, ks[-1], side="right")
        e_src, e_dst, e_pid = src[lo:hi], dst[lo:hi], pid[lo:hi]
        others, col = np.unique(e_dst, return_inverse=True)
        crops = band_pass_crops(thumbs.take(ks))  # [chunk, boxes, _SIDE²]
        whole = _whole_views(thumbs.take(others))
        starts = np.searchsorted(e_src, ks)
        ends = np.searchsorted(e_src, ks, side="right")
        for j, (a, b) in enumerate(zip(starts, ends)):
            sims = (crops[j] @ whole[col[a:b]].T).max(0)
            best[e_pid[a:b]] = np.maximum(best[e_pid[a:b]], sims)
    return best


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(x: Rows, k: int, chunk: int = 2048, target_chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of each row by cosine: (indices [n, k], similarities [n, k]).

    Both sides are read a chunk at a time (rows may live on disk): memory is O(chunk · target_chunk)
    (~50 MB with the defaults), not O(n).
    """
    x = as_rows(x)
    n = len(x)
    k = min(k, n - 1)
    idx = np.zeros((n, max(k, 0)), np.int64)
    sim = np.zeros((n, max(k, 0)), np.float32)
    if k <= 0:
        return idx, sim
    for qs in range(0, n, chunk):
        q = unit_rows(x.take(np.arange(qs, min(n, qs + chunk))))
        top_i = np.full((len(q), k), -1, np.int64)
        top_s = np.full((len(q), k), -np.inf, np.float32)
        for ts in range(0, n, target_chunk):
            block = q @ unit_rows(x.take(np.arange(ts, min(n, ts + target_chunk)))).T
            mine = np.arange(qs, qs + len(q))
            inside = (mine >= ts) & (mine < ts + block.shape[1])
            block[np.flatnonzero(inside), mine[inside] - ts] = -np.inf  # not its own neighbour
            cand_s = np.concatenate([top_s, block], 1)
            cand_i = np.concatenate([top_i, np.broadcast_to(np.arange(ts, ts + block.shape[1]), block.shape)], 1)
            part = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
            top_s, top_i = np.take_along_axis(cand_s, part, 1), np.take_along_axis(cand_i, part, 1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        idx[qs:qs + len(q)] = np.take_along_axis(top_i, order, 1)
        sim[qs:qs + len(q)] = np.take_along_axis(top_s, order, 1)
    return idx, sim


def cliques(scored: Iterable[tuple[int, int, float]]) -> list[list[int]]:
    """Groups in which every two members are a confirmed pair, built greedily from the most similar pair."""
    edges = sorted(scored, key=lambda e: -e[2])
    linked = {(min(i, j), max(i, j)) for i, j, _ in edges}
    group: dict[int, int] = {}
    members: dict[int, list[int]] = defaultdict(list)
    for i, j, _ in edges:
        gi, gj = group.get(i), group.get(j)
        if gi is not None and gi == gj:
            continue
        a = members[gi] if gi is not None else [i]
        b = members[gj] if gj is not None else [j]
        if all((min(p, q), max(p, q)) in linked for p in a for q in b):  # complete linkage: no chains
            gid = gi if gi is not None else (gj if gj is not None else i)
            merged = sorted(set(a) | set(b))
            for old in {gi, gj} - {None, gid}:
                members.pop(old, None)
            members[gid] = merged
            for m in merged:
                group[m] = gid
    return sorted((g for g in members.values() if len(g) > 1), key=lambda g: g[0])


def outlier_scores(x: Rows, labels: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """1 − cosine similarity to the nearest class centre: high for photos unlike every class.

    Class centres rather than nearest neighbours: a few blank frames or screenshots resemble each
    other, so their neighbours are each other; no class centre is near them (bench/doctor_dups.py).
    Rows are read a chunk at a time, twice (centres, then distances).
    """
    labels = np.asarray(labels, np.int64)
    x = as_rows(x)
    n, n_cls = len(labels), int(labels.max()) + 1
    sums = None
    for s in range(0, n, chunk):
        xn = unit_rows(x.take(np.arange(s, min(n, s + chunk))))
        part = np.eye(n_cls, dtype=np.float32)[labels[s:s + chunk]].T @ xn  # per-class sums of this chunk
        sums = part if sums is None else sums + part
    centres = unit_rows(sums)
    out = np.empty(n, np.float32)
    for s in range(0, n, chunk):
        out[s:s + chunk] = 1.0 - (unit_rows(x.take(np.arange(s, min(n, s + chunk)))) @ centres.T).max(1)
    return out


def robust_z(scores: np.ndarray) -> np.ndarray:
    """(score − median) / (1.4826 · median absolute deviation): a z-score that outliers cannot inflate."""
    med = float(np.median(scores))
    mad = 1.4826 * float(np.median(np.abs(scores - med)))
    return (scores - med) / max(mad, 1e-6)
