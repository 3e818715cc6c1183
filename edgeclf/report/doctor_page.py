"""`doctor --html DIR`: one self-contained page (thumbnails embedded) to look at what doctor found. Presentation only."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

from .._io import make_dir, write_json, write_text
from ..data.images import ImageDecodeError, load_rgb

_THUMB = 160  # px, longer side of each thumbnail
_LIMIT = 60  # groups / suspects / outliers shown per section (all of them are in doctor.json)


def _thumb(path: str) -> str:
    """An <img> with the photo as an embedded JPEG thumbnail (a grey box for a file that cannot be decoded)."""
    try:
        img = load_rgb(path, min_side=_THUMB)
        img.thumbnail((_THUMB, _THUMB))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except (ImageDecodeError, OSError):
        return f'<span class="bad" title="{html.escape(path)}">cannot decode</span>'
    return f'<img class="photo" alt="{html.escape(path)}" src="{src}">'


def _figure(path: str, root: str, caption: str = "") -> str:
    name = html.escape(os.path.relpath(path, root))
    return f"<figure>{_thumb(path)}<figcaption>{name}{'<br>' + html.escape(caption) if caption else ''}</figcaption></figure>"


def _counts_chart(r: dict[str, Any]) -> str:
    """Horizontal bars, one per class, split into train/val/test (inline SVG: no image file, no plotting library)."""
    colours = {"train": "#4477aa", "val": "#ee8866", "test": "#44aa99"}
    top = max([c["total"] for c in r["classes"]] + [1])
    bar, label_w, width = 18, 160, 560
    rows = []
    for k, c in enumerate(r["classes"]):
        y, x = k * (bar + 6), label_w
        rows.append(f'<text x="{label_w - 6}" y="{y + bar - 4}" text-anchor="end">{html.escape(c["name"])}</text>')
        for split in ("train", "val", "test"):
            w = width * c[split] / top
            rows.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colours[split]}">'
                        f'<title>{html.escape(c["name"])} {split}: {c[split]}</title></rect>')
            x += w
        rows.append(f'<text x="{x + 4:.1f}" y="{y + bar - 4}">{c["total"]}</text>')
    legend = " ".join(f'<span style="color:{v}">■ {k}</span>' for k, v in colours.items())
    height = len(r["classes"]) * (bar + 6)
    return (f'<svg id="counts-chart" width="{label_w + width + 60}" height="{height}" font-size="12" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg><p>{legend}</p>')


def _groups(groups: list[dict[str, Any]], root: str) -> str:
    out = []
    for g in groups[:_LIMIT]:
        flags = (["LEAK: " + "/".join(g["splits"])] if g["cross_split"] else []) + \
                (["classes " + ", ".join(g["classes"])] if g["cross_class"] else []) + \
                ([f"similarity ≥ {g['min_similarity']:.2f}"] if "min_similarity" in g else [])
        out.append(f'<div class="group"><p>{html.escape(" · ".join(flags))}</p>'
                   + "".join(_figure(f, root) for f in g["files"]) + "</div>")
    return "".join(out) or "<p>none</p>"


def _suspects(li: dict[str, Any], root: str) -> str:
    out = []
    for s in [s for s in li["suspects"] if s["flagged"]][:_LIMIT]:
        near = "".join(_figure(p, root, f"a {s['predicted']} photo") for p in s.get("neighbours", []))
        out.append(f'<div class="group suspect">{_figure(s["path"], root, "")}'
                   f'<p>labelled <b>{html.escape(s["given"])}</b> ({s["p_given"]:.2f}), looks like '
                   f'<b>{html.escape(s["predicted"])}</b> ({s["p_predicted"]:.2f})</p>{near}</div>')
    return "".join(out) or "<p>none flagged</p>"


def write_page(out: Path, r: dict[str, Any]) -> Path:
    """DIR/doctor.html (self-contained) and DIR/doctor.json; returns the page's path."""
    root = r["root"]
    make_dir(out, "--html")
    write_json(out / "doctor.json", r)
    unreadable = "".join(f"<li><code>{html.escape(os.path.relpath(u['path'], root))}</code>: {html.escape(u['reason'])}</li>"
                         for u in r["unreadable"]) or "<li>none</li>"
    sections = [
        ("counts", "Images per class", _counts_chart(r)),
        ("unreadable", f"Unreadable files ({len(r['unreadable'])})", f"<ul>{unreadable}</ul>"),
        ("exact", f"Exact duplicates ({len(r['exact_duplicates'])} groups)", _groups(r["exact_duplicates"], root)),
        ("near", f"Near-duplicates ({len(r['near_duplicates'])} groups)",
         f"<p>{html.escape(r['near_duplicate_method'])}; every two photos in a group are a confirmed pair.</p>"
         + _groups(r["near_duplicates"], root)),
    ]
    if r.get("outliers") is not None:
        sections.append(("outliers", f"Outliers ({len(r['outliers'])})",
                         "<p>Photos unlike every class in backbone-feature space.</p>"
                         + ("".join(_figure(o["path"], root, f"filed under {o['class']}, z {o['z']:g}")
                                    for o in r["outliers"][:_LIMIT]) or "<p>none</p>")))
    if r.get("label_issues"):
        li = r["label_issues"]
        sections.append(("labels", f"Likely label errors ({li['flagged']} flagged of {li['photos']})",
                         (f'<p class="caveat"><b>Warning:</b> {html.escape(li["caveat"])}</p>' if li.get("caveat")
                          else "")
                         + "<p>Each suspect beside the photos of the class it looks like.</p>" + _suspects(li, root)))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in r["warnings"]) or "<li>no problems found</li>"
    body = "".join(f'<section id="{sid}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>edgeclf doctor</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}figure{{display:inline-block;margin:0 .6em .6em 0;
vertical-align:top;max-width:{_THUMB}px;font-size:11px;word-break:break-all}}.group{{border-top:1px solid #ddd;
padding:.4em 0}}.bad{{display:inline-block;width:{_THUMB}px;height:90px;background:#ccc}}</style></head><body>
<h1>edgeclf doctor</h1><p>dataset <code>{html.escape(root)}</code> · {r['n_classes']} classes ·
{r['n_images']:,} images · nothing in the dataset was moved or deleted</p>
<ul id="warnings">{warnings}</ul>{body}</body></html>"""
    return write_text(out / "doctor.html", page)
