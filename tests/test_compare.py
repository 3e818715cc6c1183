"""compare: a real (tiny) sweep, resumable, failures reported; the HTML page renders in headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_export import _colour_dataset


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.workflows.compare import compare

    root = tmp_path_factory.mktemp("cmp")
    data = _colour_dataset(root / "data", n=10)
    # efficientnet_lite3's weights are online-only: offline, that model fails and must not stop the sweep.
    compare(data, ["mobilenet_v2_1.0_96", "efficientnet_lite3"], ["float32"], root / "out", threads=[1], runs=3,
            verbose=False, epochs=5, workers=1, cache_dir=root / "cache")
    return root / "out"


def test_results_table_and_failures(report: Path) -> None:
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert [(r["model"], r["quantize"]) for r in rows] == [("mobilenet_v2_1.0_96", "float32"),
                                                           ("efficientnet_lite3", "float32")]
    ok, failed = rows
    assert ok["status"] == "ok" and float(ok["size_mb"]) > 1 and float(ok["p50_ms_1t"]) > 0
    # Solid colours through ImageNet features: well above chance, as the exported file measures it.
    assert float(ok["test_acc"]) >= 0.66 and float(ok["macs_m"]) > 10
    assert failed["status"].startswith("failed:") and "weights" in failed["status"]
    assert json.loads((report / "results.json").read_text())["results"][0]["model"] == "mobilenet_v2_1.0_96"


def test_rerun_skips_finished_cells(report: Path) -> None:
    from edgeclf.workflows.compare import compare

    cell = report / "cells" / "mobilenet_v2_1.0_96_float32.json"
    before = cell.stat().st_mtime_ns
    data = Path(json.loads((report / "results.json").read_text())["info"]["data"])
    rows = compare(data, ["mobilenet_v2_1.0_96"], ["float32"], report, threads=[1], runs=3, verbose=False,
                   epochs=5, workers=1, cache_dir=report.parent / "cache")
    assert cell.stat().st_mtime_ns == before and rows[0]["status"] == "ok"
    # Another setting is another comparison: its rerun reused these cells and reported them as its own
    # (seen: --weights none's random-init rows kept after a rerun asking for ImageNet weights).
    from edgeclf.errors import ConfigError

    with pytest.raises(ConfigError, match=r"holds results made with epochs 5, not 8: a rerun resumes the same"):
        compare(data, ["mobilenet_v2_1.0_96"], ["float32"], report, threads=[1], runs=3, verbose=False,
                epochs=8, workers=1, cache_dir=report.parent / "cache")
    assert cell.stat().st_mtime_ns == before


def test_pareto_front() -> None:
    from edgeclf.report.compare import pareto_front

    rows = [{"model": m, "quantize": "q", "status": "ok", "p50_ms_2t": t, "test_acc": a}
            for m, t, a in (("fast", 1.0, 0.8), ("slow_better", 3.0, 0.9), ("dominated", 2.0, 0.79))]
    assert [r["model"] for r in pareto_front(rows, "p50_ms_2t")] == ["fast", "slow_better"]


def test_pareto_plot_of_only_failed_rows_draws_without_warnings(tmp_path: Path) -> None:
    """Every model failed: the plot still comes out, saying so, without matplotlib's empty-legend warning."""
    import warnings

    from edgeclf.report.compare import plot_pareto

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_pareto(tmp_path / "p.png", [{"model": "m", "quantize": "int8", "status": "failed: x"}], "p50_ms_1t")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_columns_follow_the_timed_threads(report: Path) -> None:
    """Timed with --threads 1 only, the front is drawn on 1-thread latency (it was empty: columns were fixed)."""
    from edgeclf.workflows.compare import compare

    assert 'class="front"' in (report / "report.html").read_text()
    assert list(csv.DictReader((report / "results.csv").open()))[0].keys() >= {"p50_ms_1t"}
    assert "p50_ms_2t" not in (report / "results.csv").read_text()
    data = Path(json.loads((report / "results.json").read_text())["info"]["data"])
    rows = compare(data, ["mobilenet_v2_1.0_96"], ["float32"], report.parent / "out3", threads=[1, 3], runs=3,
                   verbose=False, epochs=5, workers=1, cache_dir=report.parent / "cache")
    assert rows[0]["p50_ms_3t"] > 0
    header = (report.parent / "out3" / "results.csv").read_text().splitlines()[0]
    assert header.endswith("p50_ms_1t,p50_ms_3t,status")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (Debian: apt install chromium chromium-driver)")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = (report / "report.html").resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    n_rows = len(json.loads((report / "results.json").read_text())["results"])
    assert 'id="results"' in dom and dom.count("<tr") == 1 + n_rows  # header + one row per cell
    assert 'alt="Pareto plot" src="data:image/png;base64,' in dom
    # The page as rendered, against the same page without the Pareto plot: the difference is the plot
    # (axes, labels, markers); the training-curve images, on both pages, cannot satisfy this.
    page = (report / "report.html").read_text()
    start = page.index('alt="Pareto plot" src="') + len('alt="Pareto plot" src="')
    no_plot = tmp_path / "no_plot.html"
    no_plot.write_text(page[:start] + page[page.index('"', start):])

    def drawn(html: Path) -> float:
        shot = tmp_path / f"{html.stem}.png"
        subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", html.resolve().as_uri()],
                       capture_output=True, timeout=120)
        px = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        assert px.shape[:2] == (1600, 1200)
        return float((px.min(axis=2) < 200).mean())  # not white or near-white

    with_plot, without = drawn(report / "report.html"), drawn(no_plot)
    assert with_plot > without + 0.002, (with_plot, without)  # measured: +0.005 for a 2-row report


def test_a_model_without_imagenet_weights_is_refused_before_training(tmp_path: Path) -> None:
    """It could only fail, after every model listed before it had trained (--weights none is the way)."""
    from edgeclf.errors import ConfigError
    from edgeclf.workflows.compare import compare

    with pytest.raises(ConfigError, match="mobilenet_v2_0.35_96: no published ImageNet weights; .*--weights none"):
        compare(tmp_path, ["efficientnet_lite0", "mobilenet_v2_0.35_96"], out=tmp_path / "out", verbose=False)
    assert not (tmp_path / "out").exists()


def test_weights_that_cannot_be_had_are_named_first_and_explained_once(tmp_path: Path, capsys) -> None:
    """A model whose weights are online-only failed when its turn came, after the models before it trained; its
    message (with the fix) was cut at 200 characters, and it widened every row of the table past the screen."""
    from edgeclf.workflows.compare import compare

    data = _colour_dataset(tmp_path / "data", n=4)
    rows = compare(data, ["efficientnet_lite3"], ["float32", "int8"], tmp_path / "out", threads=[1], runs=1,
                   epochs=1, workers=1, cache_dir=tmp_path / "cache")
    out, err = capsys.readouterr()
    assert err.startswith("warning: efficientnet_lite3: ImageNet weights for") and "its rows will fail" in err
    assert rows[0]["status"].endswith("or pass --weights none to train from scratch"), rows[0]["status"]
    table = out[:out.index("report:")].splitlines()
    assert [ln for ln in table if ln.startswith("efficientnet_lite3")][0].endswith("failed, see [1]"), table
    notes = [ln for ln in table if re.match(r"\[\d+\] ", ln)]
    assert len(notes) == 1 and notes[0] == "[1] efficientnet_lite3: " + rows[0]["status"][len("failed: "):], notes
