"""End to end on real computations: train → run dir → .tflite → evaluate / predict / benchmark."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset
from edgeclf.cli import main
from edgeclf.errors import ConfigError, DatasetError, EdgeclfError, ModelError

MODEL = "mobilenet_v2_0.35_96"  # small and fast; random init keeps the test offline


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pipe")
    data = make_dataset(root / "data", {"red": 20, "green": 20, "blue": 20})
    from edgeclf.training.trainer import train

    run = train(data, MODEL, root / "run", weights="none", epochs=5, workers=1, verbose=False,
                cache_dir=root / "cache")
    return data, run


def test_run_directory_is_complete(trained: tuple[Path, Path]) -> None:
    _, run = trained
    for name in ("model.pt", "labels.txt", "split.json", "metrics.json", "manifest.json", "history.csv", "curves.png"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["model"] == MODEL
    assert (run / "labels.txt").read_text().split() == ["blue", "green", "red"]
    metrics = json.loads((run / "metrics.json").read_text())
    cm = metrics["test"]["confusion_matrix"]
    assert len(cm) == 3 and sum(map(sum, cm)) == metrics["test"]["n"] > 0
    # The reported accuracy is the confusion matrix's diagonal (random images: no level to expect).
    assert metrics["test"]["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(3)) / metrics["test"]["n"], abs=1e-4)


def test_second_run_reuses_the_feature_cache(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    from edgeclf.training.trainer import train

    out = train(data, MODEL, tmp_path / "again", weights="none", epochs=5, workers=1, verbose=False,
                cache_dir=run.parent / "cache")
    first = json.loads((run / "metrics.json").read_text())
    second = json.loads((out / "metrics.json").read_text())
    assert first["test"]["accuracy"] == second["test"]["accuracy"]  # same seed, same cached features


def test_evaluate_names_a_moved_dataset(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """The run's dataset moved: 'dataset folder … does not exist; pass a folder with one sub-folder per class'."""
    import shutil

    from edgeclf.runtime.evaluate import evaluate

    _, run = trained
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    rec = json.loads((copy / "split.json").read_text())
    (copy / "split.json").write_text(json.dumps(dict(rec, root=str(tmp_path / "moved"))))
    with pytest.raises(ConfigError, match=r"run was trained on .*moved, which is gone \(moved or deleted\?\); "
                                          r"pass --data DATA$"):
        evaluate(copy, out=tmp_path / "eval", verbose=False)
    assert not (tmp_path / "eval").exists()  # refused before anything is written


def test_evaluate_out_never_replaces_the_runs_metrics(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """`evaluate FILE --out RUN` replaced the run's metrics.json, the training record compare and search read."""
    import shutil

    from edgeclf.runtime.evaluate import evaluate

    _, run = trained
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    before = (copy / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match=r"--out .*run is a training run folder, whose metrics.json evaluate would "
                                          r"replace; use a folder of its own, e.g. --out .*run/eval$"):
        evaluate(copy, out=copy, verbose=False)
    assert (copy / "metrics.json").read_bytes() == before
    assert evaluate(copy, out=copy / "eval", verbose=False)["n"] > 0 and (copy / "eval" / "metrics.json").is_file()


def test_class_folders_named_another_way_are_pointed_out(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """Photos sorted on another machine ('Red/', 'gr een/'): 'classes the model does not know' said no more."""
    import shutil

    from edgeclf.runtime.evaluate import evaluate

    data, run = trained
    for src, dst in (("red", "Red"), ("green", "gr een"), ("blue", "blue")):
        shutil.copytree(data / src, tmp_path / "new" / dst)
    with pytest.raises(DatasetError, match=r"knows?: Red, gr een; .*; 2 differ from the model's only in case, spaces or "
                                           r"punctuation \(Red -> red, gr een -> green\): rename those folders"):
        evaluate(run, tmp_path / "new", verbose=False)


def test_a_moved_run_still_scores_its_exports_on_its_own_split(trained: tuple[Path, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """Exports record their run's absolute path; a run folder moved whole lost its split ('no run record')."""
    import shutil

    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.workflows.export import export

    data, run = trained
    f = export(shutil.copytree(run, tmp_path / "before"), verbose=False)
    moved = Path(shutil.move(str(tmp_path / "before"), str(tmp_path / "after")))
    m = evaluate(moved / "export" / f.name, verbose=False)
    assert m["split"] == "test" and m["n"] == json.loads((run / "metrics.json").read_text())["test"]["n"]
    # A new run took the old place: the sidecar's path now names another model. The moved run is still the
    # file's own (its split, no 'replaced since' warning); the new one was used, with its other split.
    from edgeclf.artifacts.run import exported_from, is_stale
    from edgeclf.training.trainer import train

    train(data, MODEL, tmp_path / "before", weights="none", epochs=1, workers=1, verbose=False, seed=1,
          test_percent=30, cache_dir=run.parent / "cache")
    assert exported_from(moved / "export" / f.name) == moved and not is_stale(moved / "export" / f.name)
    m = evaluate(moved / "export" / f.name, verbose=True)
    assert m["n"] == json.loads((run / "metrics.json").read_text())["test"]["n"]
    assert "replaced" not in capsys.readouterr().out


def test_scoring_holds_a_batch_of_images_not_the_folder(trained: tuple[Path, Path]) -> None:
    """predict/evaluate decoded every image before the first prediction: 150 KB a photo at 224 px, so a
    folder of 20,000 took 3 GB. Now a batch at a time: the peak does not grow with the number of files."""
    import tracemalloc

    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import predict_files

    data, run = trained
    engine = load_engine(run)
    one = str(next((data / "red").iterdir()))
    per_image = engine.preprocess.size ** 2 * 3
    peaks = []
    for n in (64, 640):
        tracemalloc.start()
        probs, bad, good = predict_files(engine, [one] * n, workers=1)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert probs.shape == (n, 3) and not bad and np.allclose(probs, probs[0], atol=1e-5)
    assert peaks[1] - peaks[0] < 100 * per_image, (peaks, per_image)  # 576 more images held would be 576 x


def test_tflite_matches_pytorch_and_evaluates(trained: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    data, run = trained
    from edgeclf.workflows.export import export
    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import evaluate

    tfl = export(run, "tflite", "float32", tmp_path / "m.tflite", verbose=False)
    assert (tmp_path / "labels.txt").is_file() and (tmp_path / "m.json").is_file()
    engine = load_engine(tfl)
    assert engine.labels == ["blue", "green", "red"]
    x = np.random.default_rng(0).integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    ref = load_engine(run).predict(x)
    got = engine.predict(x)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    m_file = evaluate(tfl, data, out=tmp_path / "eval", verbose=False)
    m_run = evaluate(run, data, verbose=False)
    assert m_file["n"] == m_run["n"] > 0 and m_file["accuracy"] == m_run["accuracy"]
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 1000
    with pytest.raises(EdgeclfError, match="--out .* is inside DATA"):  # its PNGs would become a class
        evaluate(tfl, data, out=data / "eval", verbose=False)
    assert not (data / "eval").exists()
    # Without DATA: the dataset the file's run was trained on (its split.json), the same figures.
    m_default = evaluate(tfl, verbose=False)
    assert (m_default["n"], m_default["accuracy"]) == (m_file["n"], m_file["accuracy"])
    orphan = tmp_path / "orphan" / "m.tflite"
    orphan.parent.mkdir()
    orphan.write_bytes(tfl.read_bytes())
    (orphan.parent / "labels.txt").write_text((tmp_path / "labels.txt").read_text())
    with pytest.raises(EdgeclfError, match="no run record names its dataset; pass --data DATA"):
        evaluate(orphan, verbose=False)
    # RUN/export given as the model: said to be a run without model.pt ("run `edgeclf train` first").
    with pytest.raises(EdgeclfError, match="is a folder of exported files, not a run; give one of them, e.g. .*m.tfl"):
        evaluate(orphan.parent, data, verbose=False)
    # `evaluate MODEL DATA`, as predict takes its images: the same as --data; two different DATA: one line.
    capsys.readouterr()
    assert main(["evaluate", str(orphan), str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == m_file["accuracy"]
    assert main(["evaluate", str(orphan), str(data), "--data", str(tmp_path)]) == 2
    assert "DATA is given twice" in capsys.readouterr().err
    # A folder of photos the run never saw (a user's own held-out set) is scored whole, not its 10 % "test split".
    held = tmp_path / "held_out"
    for c in ("red", "blue"):
        (held / c).mkdir(parents=True)
        for i, f in enumerate(sorted((data / c).iterdir())[:6]):
            (held / c / f"new_{i}.jpg").write_bytes(f.read_bytes())
    m_held = evaluate(tfl, held, verbose=False)
    assert (m_held["split"], m_held["n"], m_held["data_unseen_by_run"]) == ("all", 12, True)
    assert evaluate(tfl, held, split="test", verbose=False)["n"] < 12
    # New photos of one class only (how many of them does the model name right?): scored, not "needs 2 classes".
    one = tmp_path / "one_class"
    (one / "red").mkdir(parents=True)
    for f in (held / "red").iterdir():
        (one / "red" / f.name).write_bytes(f.read_bytes())
    m_one = evaluate(tfl, one, verbose=False)
    red = next(r for r in m_held["per_class"] if r["class"] == "red")
    assert (m_one["split"], m_one["n"]) == ("all", 6) and m_one["accuracy"] == red["recall"]
    # The classes with no photo there have no recall (not 0: the model got nothing wrong about them).
    from edgeclf.runtime.evaluate import format_metrics

    table = format_metrics(m_one).split("\n\n")[1].splitlines()[2:]  # the per-class rows
    rows = {line.split()[0]: line.split()[1:] for line in table}
    assert rows["blue"][1:] == ["-", "-", "0"], rows
    # Scores written alike (a precision of 0 or 1 as 0.0000, 1.0000), or undefined.
    assert all(re.fullmatch(r"-|[01]\.\d{4}", c) for r in rows.values() for c in r[:3]), rows
    # A Kaggle-style folder holding only test/<class>/: the error says where the classes are.
    (tmp_path / "kaggle").mkdir()
    (one).rename(tmp_path / "kaggle" / "test")
    with pytest.raises(DatasetError, match=r"classes the model does not know: test; .*kaggle/test holds folders named "
                                           r"as the model's classes \(red\): to evaluate on them, pass .*kaggle/test"):
        evaluate(tfl, tmp_path / "kaggle", verbose=False)
    assert evaluate(tfl, data, split="all", verbose=False)["n"] == len(list(data.rglob("*.jpg")))
    # A split with no images (1 photo per class stays in train) was a table of NaN; --json wrote invalid JSON.
    tiny = tmp_path / "tiny"
    for c in ("red", "blue"):
        (tiny / c).mkdir(parents=True)
        (tiny / c / "only.jpg").write_bytes((held / c / "new_0.jpg").read_bytes())
    with pytest.raises(EdgeclfError, match=f"the test split of {tiny} holds no images; pass --split train / val / all"):
        evaluate(tfl, tiny, split="test", verbose=False)
    # Images there, none readable: `--json` printed {"accuracy": NaN, ...}, which JSON.parse and jq reject.
    for c in ("red", "blue"):
        (tiny / c / "only.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert main(["evaluate", str(tfl), str(tiny), "--split", "all", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"edgeclf: error: none of the 2 image(s) in {tiny} can be read ({tiny / 'blue' / 'only.jpg'}: "
                   "not an image Pillow recognises (wrong extension or corrupt header)); fix or replace them")
    assert main(["evaluate", str(tfl), str(held)]) == 0
    assert f"on every image of {held} (a folder the model's run never saw): 12 images" in capsys.readouterr().out
    # One camera name in common with the run (red/img_000.jpg): its hashed test split, and the header says so.
    (held / "red" / "img_000.jpg").write_bytes((held / "red" / "new_0.jpg").read_bytes())
    m_clash = evaluate(tfl, held, verbose=False)
    assert m_clash["split"] == "test" and m_clash["data_elsewhere"] and m_clash["n"] < 13
    assert main(["evaluate", str(tfl), str(held)]) == 0
    hint = "(not the run's dataset folder; if every photo here is new, --split all scores them all)"
    assert hint in capsys.readouterr().out
    assert not evaluate(tfl, data, verbose=False)["data_elsewhere"]

    # predict: folders walked, a bad image reported and skipped
    bad = tmp_path / "imgs" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "imgs" / "ok.jpg").write_bytes((data / "red" / "img_000.jpg").read_bytes())
    from edgeclf.runtime.predict import predict

    rows = predict(tfl, [tmp_path / "imgs"], top_k=2)
    assert [Path(r["path"]).name for r in rows] == ["broken.jpg", "ok.jpg"]
    assert "error" in rows[0] and len(rows[1]["top"]) == 2
    # One path, not a list: that image (a str used to be walked character by character, "/" included).
    one = predict(tfl, str(tmp_path / "imgs" / "ok.jpg"), top_k=1)
    assert [Path(r["path"]).name for r in one] == ["ok.jpg"]
    # Images in memory (a Pillow image, uint8 RGB/grey arrays), in the inputs' order between files and folders:
    # the same scores as the file, as an app hands MediaPipe its camera frame.
    from PIL import Image

    pil = Image.open(tmp_path / "imgs" / "ok.jpg")
    mixed = predict(tfl, [np.asarray(pil), tmp_path / "imgs", pil, np.asarray(pil.convert("L"))], top_k=3)
    assert [r.get("image", Path(r.get("path", "")).name) for r in mixed] == [0, "broken.jpg", "ok.jpg", 2, 3]
    assert mixed[0]["top"] == mixed[2]["top"] == mixed[3]["top"] == predict(tfl, pil, top_k=3)[0]["top"]
    from edgeclf.runtime.predict import format_predictions

    assert format_predictions(mixed).splitlines()[0].startswith("image 0: ")
    assert format_predictions(mixed, "csv").splitlines()[1].startswith("image 0,1,")
    with pytest.raises(ConfigError, match=r"IMAGES\[1\]: a numpy image must be uint8 .*got float32 \(8, 8, 3\)"):
        predict(tfl, [pil, np.zeros((8, 8, 3), np.float32)])
    # Nothing readable: the CLI says so and exits non-zero, so a script notices.
    assert main(["predict", str(tfl), str(bad)]) == 1
    assert main(["predict", str(tfl), str(bad), str(tmp_path / "imgs" / "ok.jpg")]) == 0
    # An image piped in (`curl -s URL | edgeclf predict MODEL -`): scored like the file, named "-".
    import subprocess
    import sys

    cli = [sys.executable, "-m", "edgeclf", "predict", str(tfl), "-", "--csv", "--top-k", "1"]
    piped = subprocess.run(cli, input=(tmp_path / "imgs" / "ok.jpg").read_bytes(), capture_output=True, check=True)
    from edgeclf.runtime.predict import format_predictions

    assert piped.stdout.decode().splitlines() == format_predictions([{**one[0], "path": "-"}], "csv").splitlines()
    # Scoring a .tflite file needs no torch (1.5 s and ~200 MB to import; an app server or a board pays it).
    code = (f"import sys, edgeclf; edgeclf.predict({str(tfl)!r}, {str(tmp_path / 'imgs' / 'ok.jpg')!r}); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    empty = subprocess.run(cli, input=b"", capture_output=True)
    assert empty.returncode == 2 and empty.stderr.decode().strip() == (
        "edgeclf: error: IMAGES -: standard input is empty; pipe an image's bytes in")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files in .*empty; pass image files or folders"):
        predict(tfl, tmp_path / "empty")
    (tmp_path / "empty" / "0001").write_bytes((tmp_path / "imgs" / "ok.jpg").read_bytes())  # a scraper's name
    with pytest.raises(DatasetError, match=r"no image files in .*empty; 1 file\(s\) hold image data but have no "
                                           r"image extension.*or pass the files by name$"):
        predict(tfl, tmp_path / "empty")
    assert predict(tfl, tmp_path / "empty" / "0001")[0]["top"]  # by name it is read: the content decides
    # A pattern no shell expanded (quoted; Windows' cmd never expands): read as one missing file before.
    assert [Path(r["path"]).name for r in predict(tfl, str(tmp_path / "imgs" / "*.jpg"))] == ["broken.jpg", "ok.jpg"]
    assert predict(tfl, str(tmp_path / "imgs" / "*.png"))[0]["error"] == "no file matches this pattern"
    with pytest.raises(ConfigError, match=r"IMAGES\[0\] https://example.com/a.jpg is a URL; edgeclf reads local"):
        predict(tfl, "https://example.com/a.jpg")

    from edgeclf.runtime.benchmark import benchmark_file

    b = benchmark_file(tfl, threads=1, runs=5, warmup=1)
    assert b["runtime"] == "litert" and 0 < b["min_ms"] <= b["p50_ms"] <= b["p99_ms"]
    from edgeclf.runtime.benchmark import format_benchmark

    # The roofline column is against the float32 peak: an int8 file's 180 % needs its one-line reason.
    # Notes come from the row's figures, not this machine's timing (a busy CPU can put a float file over 100 %).
    assert "% of f32 FMA peak" in format_benchmark([b]) and "above 100 %" not in format_benchmark(
        [dict(b, roofline_pct=85.0)])
    assert format_benchmark([dict(b, roofline_pct=182.7, int8=True)]).endswith("than the float32 peak measured here")
    # A float file above the float peak is a peak measured on a busy CPU, not integer kernels (said before).
    assert b["int8"] is False and format_benchmark([dict(b, roofline_pct=140.0)]).endswith("rerun on an idle machine")

    # A labels.txt beside the file names nothing (another model's, perhaps): the file's own classes do.
    (tmp_path / "labels.txt").write_text("a\nb\n")
    assert load_engine(tfl).labels == ["blue", "green", "red"]
    # A JSON that lists other classes than the model outputs, and a truncated model file: one-line errors.
    liar = tmp_path / "liar.tflite"
    liar.write_bytes(tfl.read_bytes())
    liar.with_suffix(".json").write_text(json.dumps(dict(json.loads(tfl.with_suffix(".json").read_text()),
                                                         classes=["a", "b"])))
    with pytest.raises(ModelError, match="its JSON lists 2 classes but the model outputs 3"):
        load_engine(liar)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tfl.read_bytes()[:1000])
    (tmp_path / "cut.json").write_text((tmp_path / "m.json").read_text())
    with pytest.raises(ModelError, match="not a valid .tflite"):
        load_engine(cut)


def test_train_refuses_class_without_train_images(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_dataset(root / "train", {"a": 3, "b": 3})
    make_dataset(root / "test", {"c": 2}, seed=3)
    from edgeclf.training.trainer import train

    with pytest.raises(DatasetError, match="no image in the train split"):
        train(root, MODEL, tmp_path / "run", weights="none", verbose=False)


def test_export_of_unfinished_run_fails_cleanly(tmp_path: Path) -> None:
    from edgeclf.workflows.export import export

    with pytest.raises(EdgeclfError, match="not a finished edgeclf run"):
        export(tmp_path)


@pytest.mark.parametrize("cmd", ["doctor", "models", "train", "export", "evaluate", "predict", "benchmark", "compare",
                                 "demo"])
def test_every_command_has_help(cmd: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0 and "usage: edgeclf" in capsys.readouterr().out


def test_python_api_as_the_readme_shows(tmp_path: Path) -> None:
    # Regression: `edgeclf.train` and `edgeclf.export` were also subpackages; once imported, Python
    # bound the package over the function and the README's second call failed ("module not callable").
    import subprocess
    import sys

    make_dataset(tmp_path / "data", {"a": 6, "b": 6})
    code = """
import edgeclf
# Tab completion (IPython, Jupyter) lists dir(): the lazily loaded commands were missing from it.
assert {"train", "export", "evaluate", "predict", "doctor", "compare", "search"} <= set(dir(edgeclf)), dir(edgeclf)
from edgeclf.training.features import FeatureCache  # a submodule first: the worst order for the names
run = edgeclf.train("data", model="mobilenet_v2_0.35_96", out="run", weights="none", epochs=1,
                    feature_backend="torch", verbose=False)
tfl = edgeclf.export(run, format="tflite", verbose=False)
again = edgeclf.train("data", model="mobilenet_v2_0.35_96", out="run2", weights="none", epochs=1,
                      feature_backend="torch", verbose=False)
print(edgeclf.evaluate(tfl, data="data", verbose=False)["n"], again.name)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == "run2"


def test_evaluate_reads_the_runs_split_not_a_rehash(tmp_path: Path) -> None:
    """Images added after training do not join the run's test split: evaluate reads split.json's list."""
    from edgeclf.runtime.evaluate import evaluate, format_metrics
    from edgeclf.training.trainer import train

    data = make_dataset(tmp_path / "data", {"a": 20, "b": 20})
    run = train(data, "mobilenet_v2_0.35_96", tmp_path / "run", weights="none", epochs=1, feature_backend="torch",
                verbose=False)
    listed = json.loads((run / "split.json").read_text())["files"]["test"]
    make_dataset(tmp_path / "new", {"a": 60}, seed=9)
    for f in (tmp_path / "new" / "a").iterdir():
        f.rename(data / "a" / f"later_{f.name}")
    r = evaluate(run, data, verbose=False)
    assert r["n"] == len(listed) > 0 and r["gone_since_training"] == 0
    # Test photos deleted since: scored over fewer images, which evaluate said nowhere.
    (data / listed[0]).unlink()
    r = evaluate(run, data, verbose=False)
    assert r["n"] == len(listed) - 1 and r["gone_since_training"] == 1
    assert "(1 of the run's test images is no longer in the folder: deleted or renamed since training)" in \
        format_metrics(r).splitlines()[0]
    # A class added since: the run's own split (none of its photos) is still scored; it was refused outright.
    make_dataset(data, {"c": 20}, seed=5)
    r = evaluate(run, data, verbose=False)
    assert r["n"] == len(listed) - 1 and r["classes_not_scored"] == ["c"]
    assert "class folders added since training, which the model cannot answer, left out: c; 1 of the run's" in \
        format_metrics(r).splitlines()[0]
    with pytest.raises(DatasetError, match=r"class folders added since the model was trained: c; drop --split all"):
        evaluate(run, data, split="all", verbose=False)


def test_presplit_names_repeat_across_split_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """train/red/img_000.jpg and val/red/img_000.jpg are two photos: evaluate scored the training photo as a
    validation one too, and a run without test photos got no golden vectors."""
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.runtime.golden import golden_path
    from edgeclf.runtime.verify import verify
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    root = tmp_path / "d"
    make_dataset(root / "train", {"red": 8, "blue": 8})
    make_dataset(root / "val", {"red": 3, "blue": 3}, seed=1)  # the same names, other photos
    run = train(root, MODEL, tmp_path / "run", weights="none", epochs=2, aug_views=0, workers=1, val_percent=30,
                cache_dir=tmp_path / "cache")
    # The folders decide; a percentage the user gave was ignored without a word.
    assert f"{root} is pre-split (train/val/test folders): --val-percent 30 ignored" in capsys.readouterr().err
    assert evaluate(run, split="val", verbose=False)["n"] == 6
    tfl = export(run, "tflite", "float32", verbose=False)
    golden = json.loads(golden_path(tfl).read_text())
    assert golden["images"] and {Path(i["file"]).parts[0] for i in golden["images"]} == {"val"}
    with pytest.raises(DatasetError, match="the test split of .* holds no images; pass --split train / val / all"):
        verify(run, verbose=False)
    rows = verify(run, split="val", verbose=False)["rows"]
    assert rows[0]["n"] == 6 and [r["golden"] for r in rows[1:]] == ["ok", "ok"]
    # Another tool's model put beside the exports to compare: verify stopped at it ("no other.onnx.json beside
    # it … re-export with edgeclf export") and checked nothing; now it is left out with its reason.
    import torch

    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), str(run / "export" / "other.onnx"),
                      dynamo=False)
    r = verify(run, split="val", verbose=False)
    assert [x["golden"] for x in r["rows"][1:]] == ["ok", "ok"] and list(r["not_edgeclf_exports"]) == ["other.onnx"]


def test_confusion_plot_of_many_classes_shows_the_most_confused(tmp_path: Path) -> None:
    """60 classes drew a 3,700-pixel heat map of 3,600 numbers (300 classes: 18,000 pixels, 1m50s); the plot keeps
    the 30 classes in the most errors and says so, and the CSV keeps every class."""
    from PIL import Image

    from edgeclf.runtime.evaluate import most_confused, write_reports

    rng = np.random.default_rng(0)
    n = 60
    y = np.repeat(np.arange(n), 5)
    pred = y.copy()
    wrong = rng.choice(len(y), 40, replace=False)
    pred[wrong] = rng.integers(0, n, len(wrong))
    cm = np.zeros((n, n), int)
    np.add.at(cm, (y, pred), 1)
    labels = [f"class {i}" for i in range(n)]
    keep = most_confused(cm)
    off = cm - np.diag(np.diag(cm))
    errors = off.sum(0) + off.sum(1)
    assert len(keep) == 30 and list(keep) == sorted(keep)
    assert errors[keep].min() >= np.delete(errors, keep).max()  # no class left out is in more errors
    write_reports(tmp_path, {"confusion_matrix": cm.tolist(), "model": "m", "split": "test"}, labels)
    w, h = Image.open(tmp_path / "confusion_matrix.png").size
    assert max(w, h) <= 2000, (w, h)
    assert len((tmp_path / "confusion_matrix.csv").read_text().splitlines()) == n + 1
    assert list(most_confused(cm[:5, :5])) == [0, 1, 2, 3, 4]


def test_a_file_copied_away_from_its_run_says_its_split_is_hashed(trained: tuple[Path, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """The .tflite alone, evaluated on its run's own dataset, was said to be on 'not the run's dataset folder'; and a
    folder of 300 unknown classes was refused with every name in one 3,000-character line."""
    import shutil

    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.workflows.export import export

    data, run = trained
    tfl = export(run, "tflite", "float32", tmp_path / "with_run" / "m.tflite", verbose=False)
    alone = tmp_path / "app" / "m.tflite"
    alone.parent.mkdir()
    shutil.copy(tfl, alone)
    m = evaluate(alone, data)
    header = capsys.readouterr().out.splitlines()[0]
    assert not m["data_elsewhere"] and m["split_without_run_record"] and m["split"] == "test"
    assert "not the run's dataset folder" not in header and "hashed afresh: no run was found for the file" in header
    assert m["n"] == evaluate(tfl, data, verbose=False)["n"]  # the same photos: the run used the default split
    assert not evaluate(tfl, data, verbose=False)["split_without_run_record"]
    many = make_dataset(tmp_path / "many", {f"class_{i:03d}": 1 for i in range(300)}, size=(8, 8))
    with pytest.raises(DatasetError) as e:
        evaluate(alone, many, split="all", verbose=False)
    assert "classes the model does not know: class_000, class_001" in str(e.value) and "and 295 more" in str(e.value)
    assert len(str(e.value)) < 300


def test_every_api_argument_is_checked_where_it_enters(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """Each keyword of each API function, given a value of no sensible type, is a one-line error naming it.

    Found this way: a lone object for a list option crashed in list(), html=5 in pathlib, config=... in
    .items(), teacher=... in Path(); verbose='no' printed and folds was not checked without label_issues.
    """
    import inspect

    import edgeclf
    from edgeclf.workflows.export import export

    data, run = trained
    tfl = export(run, quantize="float32", out=tmp_path / "m.tflite", verbose=False)

    class Bad:
        def __repr__(self) -> str:
            return "<bad>"

    given = {"data": data, "root": data, "run_dir": run, "model": tfl, "paths": run, "inputs": tfl,
             "models": MODEL, "max_latency_ms": 5, "max_size_mb": 3, "name": MODEL}
    spelt = {"runtimes": "--runtime"}  # the CLI's singular spelling
    checked = 0
    for fn_name in ("doctor", "train", "export", "evaluate", "predict", "benchmark", "compare", "search", "verify",
                    "scan", "create_model", "demo"):
        fn = getattr(edgeclf, fn_name)
        params = inspect.signature(fn).parameters.values()
        required = {p.name: given[p.name] for p in params if p.default is p.empty and p.kind != p.VAR_KEYWORD}
        if fn_name == "predict":
            required["model"] = tfl
        for p in params:
            if p.default is p.empty or p.kind == p.VAR_KEYWORD:
                continue
            with pytest.raises(EdgeclfError) as err:
                fn(**{**required, p.name: Bad()})
            names = (p.name, "--" + p.name.replace("_", "-"), spelt.get(p.name, "?"))
            assert "\n" not in str(err.value) and any(n in str(err.value) for n in names), (fn_name, p.name, err.value)
            checked += 1
    assert checked > 60


def test_json_edgeclf_writes_or_prints_is_strict(tmp_path: Path) -> None:
    """A figure that does not exist is null, not Python's NaN token, which JSON.parse, jq and Go reject."""
    from edgeclf._io import to_json, write_json

    obj = {"accuracy": float("nan"), "rows": [{"rss_mb": float("inf")}, (1, 2.5)], "run": Path("runs/a")}
    want = {"accuracy": None, "rows": [{"rss_mb": None}, [1, 2.5]], "run": "runs/a"}

    def no_constants(token: str) -> None:
        raise AssertionError(f"{token} in JSON")

    assert json.loads(write_json(tmp_path / "m.json", obj).read_text(), parse_constant=no_constants) == want
    assert json.loads(to_json(obj), parse_constant=no_constants) == want


def test_plots_leave_the_callers_matplotlib_alone(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """matplotlib.use("Agg") in every plot switched a notebook's backend: its own plt.show() then drew nothing."""
    import subprocess
    import sys

    data, run = trained
    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; import edgeclf, warnings; "
            "warnings.simplefilter('ignore'); "
            f"edgeclf.train({str(data)!r}, {MODEL!r}, {str(tmp_path / 'r')!r}, weights='none', epochs=2, workers=1, "
            f"verbose=False, aug_views=0, cache_dir={str(run.parent / 'cache')!r}); "
            f"edgeclf.evaluate({str(run)!r}, out={str(tmp_path / 'ev')!r}, verbose=False); "
            "print(matplotlib.get_backend(), plt.get_fignums())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["svg", "[]"]
    for png in [tmp_path / "r" / "curves.png", *sorted((tmp_path / "ev").glob("*.png"))]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert len(list((tmp_path / "ev").glob("*.png"))) >= 2


def test_two_models_exported_into_one_folder_keep_their_labels(trained: tuple[Path, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """The second export into an app's folder replaced labels.txt with its classes, and edgeclf itself read that
    labels.txt for the first model: predict named a colour model's answers with the pets' classes."""
    from edgeclf.runtime.predict import predict
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    data, colours = trained
    pets = train(make_dataset(tmp_path / "pets", {"cat": 8, "dog": 8, "fox": 8}), MODEL, tmp_path / "pets_run",
                 weights="none", epochs=1, workers=1, verbose=False, aug_views=0, cache_dir=colours.parent / "cache")
    app = tmp_path / "app"
    first = export(colours, out=app / "colours.tflite", verbose=False)
    export(pets, out=app / "pets.tflite")
    assert "labels.txt holds another model's classes: pets.tflite's are in pets.labels.txt" in capsys.readouterr().out
    assert (app / "labels.txt").read_text().split() == ["blue", "green", "red"]
    assert (app / "pets.labels.txt").read_text().split() == ["cat", "dog", "fox"]
    photo = next((data / "red").glob("*.jpg"))
    assert predict(first, photo)[0]["top"][0]["label"] in {"blue", "green", "red"}
    # Even a labels.txt replaced by hand (or by an older edgeclf) does not rename the file's answers.
    (app / "labels.txt").write_text("cat\ndog\nfox\n")
    assert {t["label"] for t in predict(first, photo)[0]["top"]} == {"blue", "green", "red"}
    # Another run's file is not replaced under it: `export A -o app/`, `export B -o app/` share a default name.
    with pytest.raises(ConfigError, match=f"--output {app / 'colours.tflite'} holds a model exported from another run "
                                          f"\\({colours.resolve()}\\); name another file \\(e.g. -o "
                                          f"{app / 'pets_run_colours.tflite'}\\)"):
        export(pets, out=app / "colours.tflite", verbose=False)
    (app / "mine.tflite").write_bytes(b"an app's own model")
    with pytest.raises(ConfigError, match="mine.tflite exists and is not an edgeclf export"):
        export(pets, out=app / "mine.tflite", verbose=False)
    assert (app / "mine.tflite").read_bytes() == b"an app's own model"
    # The run's own file is: a re-export replaces it, and the labels.txt it was exported with follows it.
    (app / "labels.txt").write_text("blue\ngreen\nred\n")
    export(colours, out=app / "colours.tflite", verbose=False)
    assert (app / "labels.txt").read_text().split() == ["blue", "green", "red"]
