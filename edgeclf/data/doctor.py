"""`edgeclf doctor`: check a dataset before training on it."""

from __future__ import annotations

import hashlib
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..params import NONE, POSITIVE_INT, check
from ..progress import progress
from ..table import format_table, short_list
from .dataset import Dataset, scan
from .images import ImageDecodeError, is_unreadable_photo, load_rgb, misnamed_images, unreadable_photos
from .near_dups import (CONFIRM, MIN_COSINE, NEAR_DUP_BITS, NEIGHBOURS, OUTLIER_Z, THUMB, aligned_similarity, cliques,
                        content_signature, hash_pairs, looks_differ, nearest, outlier_scores, perceptual_hash, robust_z)
from .parallel import imap
from .rowfile import Rows, TempRows
from .split import SPLITS

SMALL_CLASS = 20  # below this many images a class is too small to learn or evaluate reliably


@dataclass(frozen=True)
class ImageInfo:
    """What the doctor learns from one file."""

    path: str
    sha256: str | None
    phash: int | None
    width: int | None
    height: int | None
    error: str | None
    thumb: np.ndarray | None = None  # content thumbnail that confirms near-duplicates
    transparent: bool = False  # some pixel has alpha < 255: clients disagree on what is under it
    high_bit_depth: bool = False  # 16-bit or float greyscale: clients disagree on how to make 8 bits of it
    looks: np.ndarray | None = None  # content colour and proportions that tell cross-class look-alikes apart


def inspect(path: str) -> ImageInfo:
    """Hash, decode and measure one file; never raises for a bad image."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ImageInfo(path, None, None, None, None, f"cannot read file ({exc.strerror})")
    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(path) as header:
            width, height = header.size
            transparent = has_transparency(header)
            deep = header.mode in HIGH_BIT_DEPTH
        img = load_rgb(path, min_side=THUMB)  # enough detail for the content thumbnail
    except ImageDecodeError as exc:
        return ImageInfo(path, sha, None, None, None, exc.reason)
    except Exception as exc:  # noqa: BLE001 - a header Pillow cannot parse at all
        return ImageInfo(path, sha, None, None, None, load_error_reason(path, exc))
    thumb, looks = content_signature(img)
    return ImageInfo(path, sha, perceptual_hash(img), width, height, None, thumb, transparent, deep, looks)


HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # Pillow's modes of 16-bit and float greyscale


def has_transparency(img: Image.Image) -> bool:
    """Whether an opened image has a pixel that is not fully opaque (decodes only images with an alpha channel)."""
    if not (img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info):
        return False
    try:
        return img.convert("RGBA").getextrema()[3][0] < 255
    except Exception:  # noqa: BLE001 - a damaged file: load_rgb reports it
        return False


def load_error_reason(path: str, exc: Exception) -> str:
    """The reason load_rgb gives for a file, falling back to the exception text."""
    try:
        load_rgb(path)
    except ImageDecodeError as err:
        return err.reason
    return f"{type(exc).__name__}: {exc}"


def _describe_group(ds: Dataset, idx: list[int], sim: dict[tuple[int, int], float] | None = None) -> dict[str, Any]:
    samples = [ds.samples[i] for i in idx]
    splits = sorted({s.split for s in samples})
    classes = sorted({ds.classes[s.label] for s in samples})
    out = {"files": [str(s.path) for s in samples], "classes": classes, "splits": splits,
           "cross_split": len(splits) > 1, "cross_class": len(classes) > 1}
    if sim is not None:  # the weakest confirmed pair of the group: every pair is at least this similar
        out["min_similarity"] = round(min(sim[(a, b)] for k, a in enumerate(idx) for b in idx[k + 1:]), 3)
    return out


def _near_duplicates(infos: list[ImageInfo], labels: list[int], thumbs: TempRows, reps: list[int], x: Rows | None,
                     near_bits: int) -> tuple[list[list[int]], dict[tuple[int, int], float]]:
    """Confirmed near-duplicate cliques (indices into infos) and the similarity of each confirmed pair."""
    rep = np.asarray(reps, np.int64)
    cand = [rep[np.array([(a, b) for a, b, _ in hash_pairs([infos[i].phash for i in reps], near_bits)],
                         np.int64).reshape(-1, 2)]]
    if x is not None:  # embedding neighbours find the altered copies the hash misses
        idx, cos = nearest(x, NEIGHBOURS)
        a, b = np.nonzero(cos >= MIN_COSINE)
        cand.append(np.stack([rep[a], rep[idx[a, b]]], 1))
    pairs = np.unique(np.sort(np.concatenate(cand), 1), axis=0)
    score = aligned_similarity(thumbs, pairs)
    # Across classes, colour and proportions decide too: one outline in red and in blue is two products.
    for k, (i, j) in enumerate(pairs):
        if score[k] >= CONFIRM and labels[i] != labels[j] and looks_differ(infos[i].looks, infos[j].looks):
            score[k] = -1.0
    sim = {(int(i), int(j)): float(v) for (i, j), v in zip(pairs[score >= CONFIRM], score[score >= CONFIRM])}
    return cliques((i, j, v) for (i, j), v in sim.items()), sim


def _outliers(ds: Dataset, reps: list[int], x: Rows) -> list[dict[str, Any]]:
    """Photos unlike every class (robust z of the distance to the nearest class centre >= OUTLIER_Z), worst first."""
    labels = np.array([ds.samples[i].label for i in reps])
    if len(reps) < 10:
        return []
    score = outlier_scores(x, labels)
    z = robust_z(score)
    order = [int(k) for k in np.argsort(-z) if z[k] >= OUTLIER_Z]
    return [{"path": str(ds.samples[reps[k]].path), "class": ds.classes[labels[k]], "distance": round(float(score[k]), 4),
             "z": round(float(z[k]), 1)} for k in order]


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def diagnose(root: str | os.PathLike[str], val_percent: float = 10.0, test_percent: float = 10.0,
             workers: int | None = None, near_bits: int = NEAR_DUP_BITS,
             embed: Callable[[list[str]], Rows | None] | None = None) -> dict[str, Any]:
    """Scan and check a dataset; return a JSON-able report (see `format_report`).

    `embed(paths)` gives one backbone feature row per path (workflows.doctor passes the cached
    ImageNet features, read from disk as needed): with it, near-duplicate candidates include
    embedding neighbours and outliers are found; without it, candidates come from the perceptual
    hash alone. Memory stays flat as the dataset grows: thumbnails go to a temporary file and
    features are read a chunk at a time (bench/doctor_scale.py).
    """
    check("--workers", workers, NONE, POSITIVE_INT)
    ds = scan(root, val_percent, test_percent)
    paths = [str(s.path) for s in ds.samples]
    thumbs = TempRows((THUMB, THUMB))
    try:
        return _diagnose(ds, paths, thumbs, val_percent, test_percent, workers, near_bits, embed)
    finally:
        thumbs.close()


def _diagnose(ds: Dataset, paths: list[str], thumbs: TempRows, val_percent: float, test_percent: float,
              workers: int | None, near_bits: int, embed: Callable[[list[str]], Rows | None] | None) -> dict[str, Any]:
    infos = []
    for i, info in enumerate(progress(imap(inspect, paths, workers, chunksize=32), "checking images", len(paths),
                                      "img")):
        if info.thumb is not None:  # on disk, not in memory: 4 KB a photo is 400 MB at 100k photos
            thumbs.put(i, info.thumb)
            info = replace(info, thumb=None)
        infos.append(info)
    bad = [(i, info) for i, info in enumerate(infos) if info.error]
    good = [i for i, info in enumerate(infos) if not info.error]

    by_sha: dict[str, list[int]] = defaultdict(list)
    for i, info in enumerate(infos):
        if info.sha256 and not info.error:
            by_sha[info.sha256].append(i)
    exact = [sorted(v) for v in by_sha.values() if len(v) > 1]
    # One representative per exact-duplicate set, so exact copies are not re-reported as near ones.
    reps = sorted({by_sha[infos[i].sha256][0] for i in good})
    x = embed([infos[i].path for i in reps]) if embed is not None and reps else None
    near_groups, sim = _near_duplicates(infos, [s.label for s in ds.samples], thumbs, reps, x, near_bits)

    counts = ds.counts()
    totals = [counts[c]["total"] for c in ds.classes]
    widths = [infos[i].width for i in good]
    heights = [infos[i].height for i in good]
    exact_d = [_describe_group(ds, g) for g in exact]
    near_d = [_describe_group(ds, g, sim) for g in near_groups]
    report: dict[str, Any] = {
        "root": str(ds.root),
        "layout": ds.layout,
        "val_from_train": ds.val_from_train,
        "split_percent": {"train": 100 - val_percent - test_percent, "val": val_percent, "test": test_percent},
        "n_classes": len(ds.classes),
        "n_images": len(ds.samples),
        "classes": [{"name": c, **counts[c]} for c in ds.classes],
        "split_totals": {s: sum(counts[c][s] for c in ds.classes) for s in SPLITS},
        "ignored": {"hidden": ds.ignored_hidden, "non_images": len(ds.ignored_non_images),
                    "non_image_examples": ds.ignored_non_images[:5], "folder_links": ds.skipped_links,
                    "unreadable_photos": [p for p in ds.ignored_non_images if is_unreadable_photo(p)],
                    "misnamed_images": misnamed_images(ds.ignored_non_images), "loose_images": ds.loose_images},
        "unreadable": [{"path": info.path, "reason": info.error, "class": ds.classes[ds.samples[i].label]}
                       for i, info in bad],
        "exact_duplicates": exact_d,
        "near_duplicates": near_d,
        "near_duplicate_method": ("perceptual hash + embedding neighbours" if x is not None else "perceptual hash")
                                 + f", confirmed by aligned band-pass correlation >= {CONFIRM}",
        "outliers": _outliers(ds, reps, x) if x is not None else None,
        "leakage": {
            "exact_groups_across_splits": sum(g["cross_split"] for g in exact_d),
            "near_groups_across_splits": sum(g["cross_split"] for g in near_d),
            "groups_across_classes": sum(g["cross_class"] for g in exact_d + near_d),
        },
        "imbalance": {
            "ratio": round(max(totals) / max(1, min(totals)), 2),
            "largest": ds.classes[int(np.argmax(totals))],
            "smallest": ds.classes[int(np.argmin(totals))],
            "small_classes": [c for c in ds.classes if counts[c]["total"] < SMALL_CLASS],
        },
        "transparent": [infos[i].path for i in good if infos[i].transparent],
        "high_bit_depth": [infos[i].path for i in good if infos[i].high_bit_depth],
        "sizes": {"width": _stats(widths), "height": _stats(heights),
                  "shorter_side_below_224": sum(1 for w, h in zip(widths, heights) if min(w, h) < 224)},
    }
    report["warnings"] = ds.notes() + _warnings(report)
    return report


def _warnings(r: dict[str, Any]) -> list[str]:
    out = []
    photos = unreadable_photos(r["ignored"].get("unreadable_photos", []))
    if photos:
        out.append(photos)
    if r["ignored"].get("misnamed_images"):
        out.append(r["ignored"]["misnamed_images"])
    if r["unreadable"]:
        out.append(f"{len(r['unreadable'])} unreadable image(s) will be skipped; fix or delete them")
    leak = r["leakage"]
    if leak["exact_groups_across_splits"] or leak["near_groups_across_splits"]:
        out.append(f"leakage: {leak['exact_groups_across_splits']} exact and {leak['near_groups_across_splits']} "
                   "near-duplicate group(s) span train/val/test; test accuracy will be optimistic — leave the copies out "
                   "(doctor --suggest FILE.json, then train --exclude FILE.json) or rename shots as NAME_nohash_N.jpg "
                   "so they split together")
    if leak["groups_across_classes"]:
        out.append(f"{leak['groups_across_classes']} duplicate group(s) appear in more than one class "
                   "(conflicting labels)")
    if r.get("outliers"):
        out.append(f"{len(r['outliers'])} photo(s) look unlike every class (blank, screenshot or another subject?); "
                   "look at them before training")
    if r.get("transparent"):
        # edgeclf must pick one colour for training; the app's decoder picks its own, so the pixels would differ.
        out.append(f"{len(r['transparent'])} image(s) have transparent pixels (first: {r['transparent'][0]}): "
                   "edgeclf trains on them over white, MediaPipe given the file sees the colour stored under them, "
                   "and an app passing a premultiplied bitmap (Android's default) sees black; flatten them onto one "
                   "background, in the dataset and in the app")
    if r.get("high_bit_depth"):
        out.append(f"{len(r['high_bit_depth'])} image(s) are 16-bit or float greyscale (first: "
                   f"{r['high_bit_depth'][0]}): edgeclf scales them to 8 bits, Pillow's convert('RGB') in an app "
                   "clips them to white; save them as 8-bit, in the dataset and in the app")
    if r["imbalance"]["ratio"] >= 3:
        out.append(f"class imbalance {r['imbalance']['ratio']}:1 ({r['imbalance']['largest']} vs "
                   f"{r['imbalance']['smallest']}); training weights classes automatically")
    small = r["imbalance"]["small_classes"]
    if small:  # named in full only when few: a 120-class dataset made one line of 1,500 characters
        out.append(f"{len(small)} class(es) have fewer than {SMALL_CLASS} images: {short_list(small)}")
    untrained = [c["name"] for c in r["classes"] if not c["train"]]
    if untrained:  # only a pre-split layout can leave one (a hashed split keeps one photo per class in train)
        out.append(f"{len(untrained)} class(es) have no train image ({short_list(untrained)}): a model cannot learn "
                   "them and `edgeclf train` refuses the dataset; add images to their folders in the train split")
    return out


def format_report(r: dict[str, Any]) -> str:
    """A human-readable rendering of a doctor report."""
    rows = [[c["name"], c["train"], c["val"], c["test"], c["total"]] for c in r["classes"]]
    rows.append(["TOTAL", *(r["split_totals"][s] for s in SPLITS), r["n_images"]])
    sp = r["split_percent"]
    split = ("presplit layout: train/val/test folders as given" if r["layout"] == "presplit"  # no percentages apply
             else f"{r['layout']} layout, split {sp['train']:g}/{sp['val']:g}/{sp['test']:g}")
    if r.get("val_from_train"):
        split = f"presplit layout: train/test folders as given, val = {sp['val']:g} % of train (no val folder)"
    parts = [
        f"dataset  {r['root']}  ({split})",
        f"{r['n_classes']} classes, {r['n_images']:,} images"
        + (f"; ignored {r['ignored']['non_images']} non-image and {r['ignored']['hidden']} hidden file(s)"
           if r["ignored"]["non_images"] or r["ignored"]["hidden"] else ""),
        *([f"skipped {len(r['ignored']['folder_links'])} folder link(s) that loop or leave their class folder "
           f"(each folder is read once): {', '.join(r['ignored']['folder_links'][:3])}"]
          if r["ignored"].get("folder_links") else []),
        "",
        format_table(["class", "train", "val", "test", "total"], rows),
        "",
    ]
    w, h = r["sizes"]["width"], r["sizes"]["height"]
    if w:
        parts.append(f"image size  width {w['min']}–{w['max']} (median {w['median']:g}), height {h['min']}–{h['max']} "
                     f"(median {h['median']:g}); {r['sizes']['shorter_side_below_224']} with shorter side < 224")
    im = r["imbalance"]
    parts.append(f"imbalance   {im['ratio']}:1 (largest {im['largest']}, smallest {im['smallest']})")
    parts.append(f"unreadable  {len(r['unreadable'])}")
    for u in r["unreadable"][:20]:
        parts.append(f"  {u['path']}: {u['reason']}")
    for key, label in (("exact_duplicates", "exact duplicates"), ("near_duplicates", "near-duplicates")):
        groups = r[key]
        cross = sum(g["cross_split"] for g in groups)
        parts.append(f"{label:<11} {len(groups)} group(s), {cross} across splits")
        for g in groups[:10]:
            flag = " [LEAK: " + "/".join(g["splits"]) + "]" if g["cross_split"] else ""
            sim = f"  (similarity {g['min_similarity']:.2f})" if "min_similarity" in g else ""
            parts.append("  " + "  ==  ".join(os.path.relpath(f, r["root"]) for f in g["files"]) + flag + sim)
        if len(groups) > 10:
            parts.append(f"  … {len(groups) - 10} more (use --json or --html for all)")
    if r.get("outliers") is not None:
        parts.append(f"outliers    {len(r['outliers'])} photo(s) unlike every class")
        for o in r["outliers"][:10]:
            parts.append(f"  {os.path.relpath(o['path'], r['root'])}  (filed under {o['class']}, z {o['z']:g})")
        if len(r["outliers"]) > 10:
            parts.append(f"  … {len(r['outliers']) - 10} more (use --json or --html for all)")
    if r["warnings"]:
        parts.append("")
        parts += [f"warning: {w}" for w in r["warnings"]]
    else:
        parts.append("\nno problems found")
    return "\n".join(parts)
