"""The compare report: table, Pareto plot (accuracy vs latency), self-contained HTML page. Presentation only."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .._io import write_json, write_text
from ..table import Footnotes, format_table

_BASE = ["model", "quantize", "weights", "resize", "size_mb", "params_m", "macs_m", "test_acc"]
_HEADERS = {"quantize": "quant", "size_mb": "MB", "params_m": "params M", "macs_m": "MACs M", "test_acc": "test acc"}


def columns(threads: list[int], extra: list[str] | None = None) -> list[str]:
    """The table's columns: one latency column per timed thread count (then any `extra` ones)."""
    return _BASE + [f"p50_ms_{t}t" for t in threads] + (extra or []) + ["status"]


def latency_key(threads: list[int]) -> str:
    """The latency the Pareto front is drawn on: the most threads timed."""
    return f"p50_ms_{max(threads)}t"

def format_results(rows: list[dict[str, Any]], threads: list[int], extra: list[str] | None = None) -> str:
    """The comparison as a table a person reads at a glance; each failure's message once, under the table."""
    # A failure's message (what to do about it) is a long line: in its cell it widened every row past the screen.
    notes = Footnotes()

    def show(r: dict, k: str) -> Any:
        v = r.get(k, "")
        if k == "status" and isinstance(v, str) and v.startswith("failed: "):
            return notes.cite(f"{r.get('model')}: {v[len('failed: '):]}", "failed, see ")
        return "none (random init)" if k == "weights" and v == "none" else v
    cols = columns(threads, extra)
    return notes.below(format_table([_HEADERS.get(c, c.replace("p50_ms_", "p50 ms ")) for c in cols],
                                    [[show(r, k) for k in cols] for r in rows]))


def pareto_front(rows: list[dict[str, Any]], x: str, y: str = "test_acc") -> list[dict[str, Any]]:
    """Rows no other row beats on both latency (lower) and accuracy (higher), sorted by latency."""
    ok = [r for r in rows if r.get("status") == "ok" and x in r]
    front = [r for r in ok if not any(o[x] <= r[x] and o[y] >= r[y] and (o[x] < r[x] or o[y] > r[y]) for o in ok)]
    return sorted(front, key=lambda r: r[x])


def plot_pareto(path: Path, rows: list[dict[str, Any]], x: str, limits: dict[str, float] | None = None) -> None:
    """Accuracy vs latency, marker area ∝ file size, the Pareto front drawn (and a latency limit, if any)."""
    from ..plots import new_figure, save_png

    ok = [r for r in rows if r.get("status") == "ok" and x in r]
    fig, ax = new_figure((8, 5.5))
    for q, marker in (("float32", "o"), ("float16", "s"), ("dynamic", "D"), ("int8", "^")):
        pts = [r for r in ok if r["quantize"] == q]
        if pts:
            ax.scatter([r[x] for r in pts], [r["test_acc"] for r in pts], s=[30 + 25 * r["size_mb"] for r in pts],
                       marker=marker, alpha=0.6, label=q)
    for r in ok:
        ax.annotate(r["model"] + ("*" if r["weights"] == "none" else ""), (r[x], r["test_acc"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    front = pareto_front(rows, x)
    if front:
        ax.plot([r[x] for r in front], [r["test_acc"] for r in front], "k--", lw=1, label="Pareto front")
    if limits and limits.get("max_latency_ms"):
        ax.axvline(limits["max_latency_ms"], color="r", ls=":", lw=1.2,
                   label=f"limit {limits['max_latency_ms']:g} ms, {limits.get('max_size_mb', float('nan')):g} MB")
    n = x[len("p50_ms_"):-1]
    ax.set_xlabel(f"latency p50 (ms, batch 1, {n} thread{'s' if n != '1' else ''}, LiteRT)")
    ax.set_ylabel("test accuracy (exported file)")
    ax.set_title("accuracy vs latency (marker size = file size)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # every row failed: an empty plot, and no legend to warn about
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no model finished: see the table's status column", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def write_report(out: Path, rows: list[dict[str, Any]], info: dict[str, Any]) -> Path:
    """results.csv, results.json, pareto.png and report.html (self-contained: images embedded)."""
    import base64
    import html

    buf = io.StringIO()
    cols, x = columns(info["threads"], info.get("extra_columns")), latency_key(info["threads"])
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "results.csv", buf.getvalue())
    write_json(out / "results.json", {"info": info, "results": rows})
    plot_pareto(out / "pareto.png", rows, x, info.get("limits"))

    def img(p: Path, alt: str) -> str:
        data = base64.b64encode(p.read_bytes()).decode() if p.is_file() else ""
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    front = {(r["model"], r["quantize"]) for r in pareto_front(rows, x)}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr" + (' class="front"' if (r["model"], r.get("quantize")) in front else "") + ">" + "".join(
            f"<td>{html.escape(str('none (random init)' if c == 'weights' and r.get(c) == 'none' else r.get(c, '')))}</td>"
            for c in cols) + "</tr>" for r in rows)
    curves = "".join(f"<figure>{img(out / f'curves_{m}.png', m)}<figcaption>{html.escape(m)}</figcaption></figure>"
                     for m in info["models"] if (out / f"curves_{m}.png").is_file())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>edgeclf compare</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}tr.front{{background:#e8f4e8}}
figure{{display:inline-block;margin:0 1em 1em 0}}img{{max-width:100%}}</style></head><body>
<h1>edgeclf compare</h1>
<p>dataset <code>{html.escape(info['data'])}</code> · weights <b>{html.escape(info['weights'])}</b> ·
latency: LiteRT, batch 1, p50 over the runs after warm-up · wall time {info['wall_s']} s ·
rows on the Pareto front are shaded</p>
<h2>Results</h2><table id="results"><tr>{head}</tr>{body}</table>
<h2>Accuracy vs latency</h2><div id="pareto">{img(out / 'pareto.png', 'Pareto plot')}</div>
<h2>Training curves</h2><div id="curves">{curves}</div>
</body></html>"""
    return write_text(out / "report.html", page)
