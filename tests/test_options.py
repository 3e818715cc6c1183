"""Every option is checked where it enters: a bad value is one line naming the option, its range and the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeclf.cli import main
from edgeclf.errors import ConfigError, EdgeclfError
from edgeclf.params import Interval, check

BAD = [
    (["doctor", "{data}", "--val-percent", "150"], "--val-percent must be a number in [0, 100), got 150.0"),
    (["doctor", "{data}", "--workers", "0"], "--workers must be an int in [1, inf) or left out (None), got 0"),
    (["train", "{data}", "--batch-size", "0"], "--batch-size must be an int in [1, inf), got 0"),
    (["train", "{data}", "--epochs", "0"], "--epochs must be an int in [1, inf), got 0"),
    (["train", "{data}", "--learning-rate", "0"], "--learning-rate must be a number in (0, inf), got 0.0"),
    (["train", "{data}", "--dropout", "1"], "--dropout must be a number in [0, 1), got 1.0"),
    (["train", "{data}", "--label-smoothing", "-0.1"], "--label-smoothing must be a number in [0, 1), got -0.1"),
    (["train", "{data}", "--aug-views", "-1"], "--aug-views must be an int in [0, 64], got -1"),
    (["train", "{data}", "--aug-views", "400"], "--aug-views must be an int in [0, 64], got 400"),
    (["train", "{data}", "--hidden", "100000000"], "--hidden must be an int in [0, 8192], got 100000000"),
    (["train", "{data}", "--seed", "99999999999999999999"],
     "--seed must be an int in [0, 4294967295], got 99999999999999999999"),
    (["train", "{data}", "--weight-decay", "1e9"], "--weight-decay must be a number in [0, 1], got 1000000000.0"),
    (["train", "{data}", "--random-crop", "120"], "--random-crop must be a number in [0, 100), got 120.0"),
    (["train", "{data}", "--val-percent", "60", "--test-percent", "50"], "must be below 100"),
    (["train", "{data}", "--fine-tune-epochs", "0"],
     "--fine-tune-epochs must be an int in [1, inf) or left out (None), got 0"),
    (["train", "{data}", "--steps", "0"], "--steps must be an int in [1, inf) or left out (None), got 0"),
    (["models", "nosuch"], "no model name contains 'nosuch'; run `edgeclf models` for the list"),
    (["train", "{data}", "--pool-blocks", "-1"], "--pool-blocks must be an int in [0, inf) or left out (None), got -1"),
    (["train", "{data}", "--pool-blocks", "17"], "--pool-blocks must be an int in [0, 16], got 17"),
    (["train", "{data}", "--model", "mobilenet_v1_0.25_128", "--pool-blocks", "13"],
     "--pool-blocks must be an int in [0, 12], got 13"),
    (["train", "{data}", "--model", "mobilenet_v1_0.25_128", "--fine-tune", "15"],
     "--fine-tune must be 'all' or an int in [1, 14] (this backbone has 15 units"),
    (["evaluate", "{data}/x.tflite", "--data", "{data}", "--top-k", "0"], "--top-k must be an int in [1, inf), got 0"),
    (["predict", "{data}/x.tflite", "{data}", "--top-k", "-1"], "--top-k must be an int in [1, inf), got -1"),
    (["benchmark", "{data}/x.tflite", "--threads", "0"], "--threads must be an int in [1, 256], got 0"),
    (["benchmark", "{data}/x.tflite", "--threads", "100000"], "--threads must be an int in [1, 256], got 100000"),
    (["predict", "{data}/x.tflite", "{data}", "--threads", "100000"],
     "--threads must be an int in [1, 256] or left out (None), got 100000"),
    (["benchmark", "{data}/x.tflite", "--runs", "0"], "--runs must be an int in [1, inf), got 0"),
    (["compare", "{data}", "--models", "efficientnet_lite0", "--threads", "1,x"], "--threads takes comma-separated"),
    (["compare", "{data}", "--models", "efficientnet_lite0", "--threads", "0"], "--threads must be an int in"),
    (["compare", "{data}", "--models", "efficientnet_lite0", "--quantize", "int3", "--out", "{data}/../cmp"],
     "--quantize must be one of"),
    (["compare", "{data}", "--models", ",", "--out", "{data}/../cmp"], "--models names no model; give one or more"),
    (["compare", "{data}", "--models", "efficientnet_lite0", "--weights", "imagenett", "--out", "{data}/../cmp"],
     "--weights imagenett: no such file; pass imagenet, none, a .pth checkpoint or a .tflite file"),
    (["train", "{data}", "--weights", "{data}/../w.pth", "--out", "{data}/../run"],
     "--weights {data}/../w.pth: no such file; pass imagenet, none, a .pth checkpoint or a .tflite file"),
    (["train", "{data}", "--weights", "{data}/a", "--out", "{data}/../run"], "--weights {data}/a: a folder, not a file"),
    (["export", "{data}/../norun"],
     "RUN {data}/../norun does not exist; pass a run directory that `edgeclf train` wrote"),
    (["verify", "{data}/../norun"], "RUN {data}/../norun does not exist"),
    (["demo", "--per-class", "0", "--out", "{data}/../demo"], "--per-class must be an int in [1, 10000], got 0"),
    (["demo", "--epochs", "0", "--out", "{data}/../demo"], "--epochs must be an int in [1, inf), got 0"),
    (["demo", "--model", "nosuch", "--out", "{data}/../demo"], "unknown model 'nosuch'"),
    (["demo", "--out", "{data}/.."], "which the demo did not make"),
    (["export", "{data}", "--calibration-size", "0"], "--calibration-size must be an int in [1, inf), got 0"),
    (["export", "{data}", "--quantize", "float32,int9"], "--quantize must be one of float32, float16, dynamic, int8, got 'int9'"),
    (["train", "{data}", "--image_dir", "{data}"], "DATA given twice"),
    (["train", "--image_dir", "{data}", "--tfhub_module", "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5"],
     "inception_v3/feature_vector/5 has no counterpart in edgeclf's zoo (MobileNet V1/V2/V3, EfficientNet-Lite)"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a[:1] + a[2:]) for a, _ in BAD])
def test_bad_option_is_one_line(argv: list[str], message: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    assert main([a.format(data=data) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message.format(data=data) in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "data"]  # refused before anything was written


def test_an_exported_file_where_a_run_is_meant_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """export, verify and --teacher given the .tflite, not its run: said so, not 'not a finished run; train first'."""
    from conftest import make_dataset

    data = make_dataset(tmp_path / "data", {"a": 4, "b": 4})
    f = tmp_path / "model.tflite"
    f.write_bytes(b"TFL3")
    for argv in (["export", str(f)], ["verify", str(f)], ["train", str(data), "--teacher", str(f)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{f} is a file, not a run directory: pass the run directory it was " \
            "exported from" in err, err
    assert "or `edgeclf evaluate" in (main(["verify", str(f)]), capsys.readouterr().err)[1]


def test_api_arguments_without_a_cli_are_checked_too() -> None:
    """Arguments the CLI never passes in a wrong type: the API's caller may (create_model(num_classes=0) gave a
    1000-class model; train(model=5) crashed in str.strip)."""
    import edgeclf

    for kw, message in [({"num_classes": 0}, "num_classes must be an int in [1, inf) or left out (None), got 0"),
                        ({"dropout": 1.0}, "dropout must be a number in [0, 1), got 1.0"),
                        ({"hidden": 10**8}, "hidden must be an int in [0, 8192], got 100000000")]:
        with pytest.raises(ConfigError, match=message.replace("[", "\\[").replace("(", "\\(").replace(")", "\\)")):
            edgeclf.create_model("efficientnet_lite0", weights="none", **kw)
    with pytest.raises(ConfigError, match="--model must be a model name such as efficientnet_lite0"):
        edgeclf.train("data", model=5)
    # verbose="no" is truthy: it printed; html=5 crashed in pathlib.
    for call, message in [(lambda: edgeclf.doctor("data", html=5), "--html must be a path"),
                          (lambda: edgeclf.doctor("data", cache_dir=5), "--cache-dir must be a path"),
                          (lambda: edgeclf.train("data", verbose="no"), "verbose must be True or False, got 'no'"),
                          (lambda: edgeclf.export("run", verbose="no"), "verbose must be True or False"),
                          (lambda: edgeclf.evaluate("m.tflite", verbose="no"), "verbose must be True or False"),
                          (lambda: edgeclf.evaluate("m.tflite", compare_to_run=1), "compare_to_run must be True or"),
                          (lambda: edgeclf.verify("run", verbose="no"), "verbose must be True or False"),
                          (lambda: edgeclf.benchmark("m.tflite", verbose="no"), "verbose must be True or False"),
                          (lambda: edgeclf.compare("data", "efficientnet_lite0", weights=None),
                           "--weights must be imagenet, none or a checkpoint file's path, got None"),
                          (lambda: edgeclf.search("data", 5, 3, verbose="no"), "verbose must be True or False"),
                          (lambda: edgeclf.scan("data", min_classes=0), "min_classes must be an int in")]:
        with pytest.raises(ConfigError, match=message.replace("[", "\\[")):
            call()
    assert edgeclf.create_model("efficientnet_lite0", 3, weights="none").head[-1].out_features == 3


def test_an_output_path_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--out/--html naming a file (or a path under one): one line naming it, before any work, nothing written."""
    from conftest import make_dataset

    data = make_dataset(tmp_path / "data", {"a": 4, "b": 4})
    f = tmp_path / "f"
    f.write_text("mine")
    cases = [["train", str(data), "--out", str(f)], ["train", str(data), "--out", str(f / "run")],
             ["doctor", str(data), "--no-embeddings", "--html", str(f / "page")],
             ["compare", str(data), "--models", "mobilenet_v2_1.0_96", "--out", str(f)],
             # the feature cache too: it failed after the backbone converted, leaving a failed run folder
             ["train", str(data), "--out", str(tmp_path / "run"), "--cache-dir", str(f / "cache")]]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{f} is a file, not a folder; choose another --" in err, err
    assert f.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["data", "f"]


def test_an_output_folder_inside_the_dataset_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Run folders, reports and pages inside DATA: their PNGs became a class 'runs' of the next training."""
    from conftest import make_dataset

    data = make_dataset(tmp_path / "data", {"a": 4, "b": 4})
    before = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    cases = [["train", str(data), "--out", str(data / "runs")], ["train", str(data), "--out", str(data)],
             ["doctor", str(data), "--no-embeddings", "--html", str(data / "a" / "page")],
             ["compare", str(data), "--models", "mobilenet_v2_1.0_96", "--out", str(data / "cmp")],
             ["search", str(data), "--max-latency-ms", "5", "--max-size-mb", "5", "--out", str(data / "s")]]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "is inside DATA" in err and "choose a folder outside DATA" in err, err
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == before


def test_compare_and_search_check_train_options_before_any_work(tmp_path: Path) -> None:
    """A typo in a train option passed through compare/search failed every row after training began."""
    import edgeclf
    from conftest import make_dataset

    data = make_dataset(tmp_path / "data", {"a": 4, "b": 4})
    # The nearest name is offered, compare's own ('threads') as well as train's.
    with pytest.raises(ConfigError, match=r"compare\(\) has no option 'thread' \(did you mean 'threads'\?\); "
                                          r"options: .*threads"):
        edgeclf.compare(data, "mobilenet_v2_1.0_96", out=tmp_path / "c", thread=2, verbose=False)
    with pytest.raises(ConfigError, match=r"--epochs must be an int in \[1, inf\), got 0"):
        edgeclf.compare(data, "mobilenet_v2_1.0_96", out=tmp_path / "c", epochs=0, verbose=False)
    with pytest.raises(ConfigError, match=r"search\(\) has no option 'epoch' \(did you mean 'epochs'\?\); "
                                          r"options: .*finalists"):
        edgeclf.search(data, 2, 1, out=tmp_path / "s", epoch=3, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_api_raises_the_same_error(tmp_path: Path) -> None:
    import edgeclf

    with pytest.raises(ConfigError, match="--batch-size must be an int"):
        edgeclf.train(tmp_path, batch_size=0)
    with pytest.raises(ConfigError, match="--val-percent"):
        edgeclf.doctor(tmp_path, val_percent=-5)
    # A switch from a hand-written config: 'no' was truthy, so flips stayed on.
    with pytest.raises(ConfigError, match=r"^--flip must be True or False, got 'no'$"):
        edgeclf.train(tmp_path, flip="no")
    with pytest.raises(ConfigError, match=r"^fine_tune_cached must be True or False, got 0$"):
        edgeclf.train(tmp_path, fine_tune_cached=0)
    with pytest.raises(ConfigError, match=r"^embeddings must be True or False, got 'false'$"):
        edgeclf.doctor(tmp_path, embeddings="false")
    with pytest.raises(ConfigError, match=r"^--report must be True or False, got 'yes'$"):
        edgeclf.export(tmp_path, report="yes")
    with pytest.raises(ConfigError, match=r"^roi must be True or False, got 'no'$"):
        edgeclf.evaluate(tmp_path / "m.tflite", roi="no")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # refused before anything was written


def test_api_takes_one_value_where_it_takes_several(tmp_path: Path) -> None:
    """A lone str for a list option is that one value, never its letters (a "/" once walked the disk)."""
    import edgeclf
    from edgeclf.params import as_list

    assert as_list("a,b") == ["a,b"] and as_list(tmp_path) == [tmp_path] and as_list(2) == [2]
    assert as_list(("x", "y")) == ["x", "y"] and as_list(None) is None
    with pytest.raises(EdgeclfError, match="unknown model .nosuch_model."):
        edgeclf.compare(tmp_path, "nosuch_model", out=tmp_path / "c")
    with pytest.raises(ConfigError, match="--quantize must be one of .*, got 'int9'"):
        edgeclf.compare(tmp_path, "efficientnet_lite0", quantize="int9", out=tmp_path / "c")
    with pytest.raises(ConfigError, match="--quantize must be one of .*, got 'int9'"):
        edgeclf.search(tmp_path, 2, 1, quantize="int9", out=tmp_path / "s")
    with pytest.raises(EdgeclfError, match=f"model file {tmp_path / 'm.tflite'} does not exist"):
        edgeclf.benchmark(str(tmp_path / "m.tflite"), threads=1)
    with pytest.raises(ConfigError, match="--clients must be one of litert, mediapipe, onnxruntime, got 'lite'"):
        edgeclf.verify(tmp_path, clients="lite")
    assert not (tmp_path / "c").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("call", [
    lambda e, d: e.train(None, out=d / "r"), lambda e, d: e.train([str(d)], out=d / "r"),
    lambda e, d: e.train(d, out=None), lambda e, d: e.doctor(None), lambda e, d: e.scan(3),
    lambda e, d: e.compare(None, "efficientnet_lite0", out=d / "c"), lambda e, d: e.search(None, 2, 1, out=d / "s"),
    lambda e, d: e.export(None), lambda e, d: e.evaluate(None), lambda e, d: e.predict(None, d),
    lambda e, d: e.predict(d, [d, None]), lambda e, d: e.verify(None), lambda e, d: e.benchmark([None]),
    lambda e, d: e.benchmark(None)])
def test_api_paths_that_are_not_paths_are_one_line(call, tmp_path: Path) -> None:
    """None or a list where a path goes: a ConfigError naming the argument, not a TypeError from os.fspath."""
    import edgeclf

    with pytest.raises(ConfigError, match=r"must be a path \((str or pathlib.Path|a file or a folder)|none was given"):
        call(edgeclf, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written (compare once wrote a report)


def test_a_large_wrong_value_is_shown_in_one_short_line(tmp_path: Path) -> None:
    """An array where a path or a number goes: its type and shape, not its repr over hundreds of lines."""
    import numpy as np

    import edgeclf

    for call, name in [(lambda: edgeclf.train(np.zeros((300, 300)), out=tmp_path / "r"), "DATA"),
                       (lambda: edgeclf.train(tmp_path, epochs=np.arange(100), out=tmp_path / "r"), "--epochs"),
                       (lambda: edgeclf.predict(tmp_path / "m.tflite", [tmp_path, list(range(100))]), "IMAGES[1]")]:
        with pytest.raises(ConfigError) as e:
            call()
        assert str(e.value).startswith(name) and "\n" not in str(e.value) and len(str(e.value)) < 200, str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_intervals() -> None:
    assert 0 in Interval(int, 0) and 1.5 not in Interval(int, 0) and True not in Interval(int, 0)
    assert float("nan") not in Interval(float, 0, 1) and 1 not in Interval(float, 0, 1, "left")
    assert check("--x", None, None, Interval(int, 1)) is None
    with pytest.raises(ConfigError, match=r"--x must be a number in \(0, 1\], got 2"):
        check("--x", 2, Interval(float, 0, 1, "right"))


def test_api_import_is_lazy(tmp_path: Path) -> None:
    """`edgeclf.doctor`, `scan`, and scoring exported files do not import torch (api.py used to import every stage);
    nor does running doctor without embeddings (checking --folds through label_issues' module once did)."""
    import subprocess
    import sys

    from conftest import make_dataset

    data = make_dataset(tmp_path / "data", {"a": 3, "b": 3})
    code = ("import sys, edgeclf; edgeclf.doctor; edgeclf.scan; edgeclf.predict; edgeclf.evaluate; edgeclf.verify; "
            f"edgeclf.doctor({str(data)!r}, embeddings=False); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_runs_do_not_overwrite_each_other(tmp_path: Path) -> None:
    from conftest import make_dataset
    from edgeclf.training.trainer import train

    data = make_dataset(tmp_path / "data", {"a": 6, "b": 6})
    kw = {"epochs": 1, "verbose": False, "feature_backend": "torch", "weights": "none", "model": "mobilenet_v1_0.25_128"}
    first = train(data, out=tmp_path / "runs" / "train", **kw)
    model = (first / "model.pt").read_bytes()
    second = train(data, out=tmp_path / "runs" / "train", **kw)
    assert first == tmp_path / "runs" / "train" and second == tmp_path / "runs" / "train2"
    assert (first / "model.pt").read_bytes() == model  # the first run is untouched
    assert train(data, out=tmp_path / "runs" / "train", exist_ok=True, seed=1, **kw) == first
    assert (first / "model.pt").read_bytes() != model
    # A run refused before any work (a budget too small) leaves no folder behind.
    with pytest.raises(ConfigError, match="--time-budget 1s is too small"):
        train(data, out=tmp_path / "runs" / "train", time_budget="1s", **{k: v for k, v in kw.items() if k != "epochs"})
    assert not (tmp_path / "runs" / "train3").exists()

    def crash(*_: object) -> None:
        raise RuntimeError("the disk went away")

    # A run that fails while training is marked so, and the next attempt reuses its folder.
    with pytest.raises(RuntimeError, match="the disk went away"):
        train(data, out=tmp_path / "runs" / "train", on_epoch=crash, **kw)
    failed = json.loads((tmp_path / "runs" / "train3" / "manifest.json").read_text())
    assert failed["status"] == "failed" and "the disk went away" in failed["error"]
    assert train(data, out=tmp_path / "runs" / "train", **kw) == tmp_path / "runs" / "train3"
    (tmp_path / "runs" / "train4").mkdir()  # not an edgeclf run: never written into
    (tmp_path / "runs" / "train4" / "mine.txt").write_text("x")
    assert train(data, out=tmp_path / "runs" / "train", **kw) == tmp_path / "runs" / "train5"
    # `--out .` in an app's folder: its own labels.txt would have been replaced by the run's.
    app = tmp_path / "app"
    app.mkdir()
    (app / "labels.txt").write_text("cat\ndog\n")
    with pytest.raises(ConfigError, match=r"--out .*app already holds files that are not an edgeclf run \(labels.txt\); "
                                          r"choose a new or empty folder \(or pass --exist-ok"):
        train(data, out=app, **kw)
    assert sorted(p.name for p in app.iterdir()) == ["labels.txt"] and (app / "labels.txt").read_text() == "cat\ndog\n"


def test_train_options_come_from_one_config(tmp_path: Path) -> None:
    """The CLI's train options are TrainConfig's fields: same names, same defaults, nothing written twice."""
    from dataclasses import fields

    from edgeclf.cli import build_parser
    from edgeclf.training.config import TrainConfig

    ns = build_parser().parse_args(["train", "DATA", "--lr", "0.01", "--no-flip", "--fine-tune-on-the-fly",
                                    "--fine-tune", "2", "--distill-weight", "1"])
    from edgeclf.cli.commands import TRAIN_COMMAND_ARGS

    given = {k: v for k, v in vars(ns).items() if k not in TRAIN_COMMAND_ARGS}
    assert given == {"lr": 0.01, "flip": False, "fine_tune_cached": False, "fine_tune": "2", "distill_weight": 1.0}
    cfg = TrainConfig.build(given)
    assert cfg.fine_tune == "2" and cfg.epochs == 30 and cfg.model == "efficientnet_lite0"
    # Every field has a CLI option; the API turns an unknown one into a one-line error.
    helptext = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in fields(TrainConfig):
        assert (f.metadata["negate"] or f.metadata["flags"][0]) in helptext, f.name
    # Model Maker's / retrain.py's spelling (the CLI's alias) names the field it means.
    with pytest.raises(ConfigError, match="train\\(\\) has no option 'learning_rate' \\(did you mean 'lr'\\?\\)"):
        TrainConfig.build({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="train\\(\\) has no option 'zzz'; options: "):
        TrainConfig.build({"zzz": 1})


def test_every_command_has_its_api_function() -> None:
    """`edgeclf CMD` is `edgeclf.CMD(...)` (models: `edgeclf.list_models`), and what the API raises or warns is
    importable from the top level, so a caller can catch or filter it."""
    import warnings

    import edgeclf
    import edgeclf.api
    from edgeclf.cli import build_parser
    from edgeclf.errors import EdgeclfWarning

    commands = build_parser()._subparsers._group_actions[0].choices
    for cmd in commands:
        name = "list_models" if cmd == "models" else cmd
        assert callable(getattr(edgeclf, name, None)), f"edgeclf.{name} is missing"
        assert cmd == "models" or getattr(edgeclf.api, cmd) is getattr(edgeclf, cmd), cmd
    assert {"EdgeclfError", "ConfigError", "DatasetError", "ModelError", "EdgeclfWarning"} <= set(dir(edgeclf))
    assert issubclass(edgeclf.ConfigError, edgeclf.EdgeclfError) and edgeclf.EdgeclfWarning is EdgeclfWarning
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("ignore", edgeclf.EdgeclfWarning)
        warnings.warn("a marked file", EdgeclfWarning)
    assert not seen
    with pytest.raises(ConfigError, match="--per-class must be an int in \\[1, 10000\\], got 0"):
        edgeclf.demo(per_class=0)


def test_every_cli_argument_says_what_it_does() -> None:
    """`edgeclf CMD --help` explains every argument and option, not just names it."""
    import argparse

    from edgeclf.cli import build_parser

    missing = []
    for name, sub in build_parser()._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {action.option_strings[0] if action.option_strings else action.dest}")
    assert not missing, missing


def test_train_config_replays_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from conftest import make_dataset

    data = make_dataset(tmp_path / "data", {"a": 10, "b": 10})
    argv = ["--model", "mobilenet_v2_0.35_96", "--weights", "none", "--epochs", "2", "--aug-views", "1",
            "--workers", "1", "--feature-backend", "torch", "--label-smoothing", "0.05"]
    assert main(["train", str(data), "--out", str(tmp_path / "r1"), *argv]) == 0
    first = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    # Replay: DATA and every option from the manifest; --seed overridden on the command line.
    assert main(["train", "--config", str(tmp_path / "r1" / "manifest.json"), "--out", str(tmp_path / "r2"),
                 "--seed", "3"]) == 0
    second = json.loads((tmp_path / "r2" / "manifest.json").read_text())
    assert second["config"] == dict(first["config"], seed=3)
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "nope.json")]) == 2
    assert "--config" in capsys.readouterr().err
    # The run's metrics.json is not its manifest: said so, instead of replaying `model` alone with the rest ignored.
    assert main(["train", str(data), "--config", str(tmp_path / "r1" / "metrics.json"), "--out", str(tmp_path / "r3")]) == 2
    assert "is neither a run's manifest.json nor train options ('best_epoch'" in capsys.readouterr().err
    assert not (tmp_path / "r3").exists()
    # Written by hand: a misspelt option is named with the nearest one; YAML (Ultralytics' way) is told what to give.
    (tmp_path / "opts.json").write_text('{"epochs": 3, "modle": "efficientnet_lite0"}')
    (tmp_path / "opts.yaml").write_text("epochs: 3\n")
    assert main(["train", str(data), "--config", str(tmp_path / "opts.json")]) == 2
    assert "('modle' is no option; did you mean 'model'?)" in capsys.readouterr().err
    assert main(["train", str(data), "--config", str(tmp_path / "opts.yaml")]) == 2
    assert 'or a JSON object of train options such as {"model": ' in capsys.readouterr().err


def test_config_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """An options JSON naming /x/café.pth was 'not JSON' where the locale's encoding is not UTF-8 (Windows, LANG=C)."""
    import os
    import subprocess
    import sys

    opts = tmp_path / "opts.json"
    opts.write_text('{"model": "efficientnet_lite0", "weights": "/x/caf\u00e9.pth"}', encoding="utf-8")
    code = "import sys; from edgeclf.training.config import read_config; print(ascii(read_config(sys.argv[1])))"
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONCOERCECLOCALE="0")
    r = subprocess.run([sys.executable, "-X", "utf8=0", "-c", code, str(opts)], env=env, capture_output=True,
                       text=True, encoding="utf-8")
    assert r.returncode == 0 and "caf\\xe9.pth" in r.stdout, r.stderr[-300:]


def test_progress_bars_show_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jupyter and Colab give stderr an ipykernel stream that is no terminal: bars were off where Model Maker's users
    work. (A real kernel's sys.stderr is ipykernel.iostream.OutStream, isatty() False: checked with nbclient.)"""
    import io

    from edgeclf import progress

    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    monkeypatch.delenv("EDGECLF_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", kernel_stream())
    assert progress.enabled()
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a pipe or a file: quiet, as before
    assert not progress.enabled()
    monkeypatch.setenv("EDGECLF_PROGRESS", "0")
    monkeypatch.setattr("sys.stderr", kernel_stream())
    assert not progress.enabled()


def test_progress_in_a_log_file_is_a_line_every_half_minute(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    """In a pipe or a file (docker without -t, nohup, Slurm, CI) edgeclf said nothing for the minutes of a cold
    train or a compare, and a bar's carriage returns would pile up into one line: it prints plain lines."""
    from edgeclf import progress

    monkeypatch.delenv("EDGECLF_PROGRESS", raising=False)
    assert progress.mode() == "lines"  # capsys: stderr is no terminal
    log = progress.bar("extracting features", 200, "img")
    assert isinstance(log, progress.Lines)
    log.update(50)
    log.close()
    assert capsys.readouterr().err == ""  # done within the interval: a short task stays silent
    log = progress.Lines("extracting features", 200, "img", every=0)
    log.update(50)
    log.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("extracting features: 50/200 img (25%) in 0s, about ") and lines[0].endswith("s left")
    assert lines[1].startswith("extracting features: 50 img done in ") and len(lines) == 2 and "\r" not in lines[0]
    log = progress.Lines("compare", 2, "model", every=0)
    log.update()
    log.close()
    assert capsys.readouterr().err.splitlines()[1].startswith("compare: 1 model done in ")
    log.t0 -= 60  # a minute after it began
    assert log._line(log.t0 + 61) == "compare: 1/2 models (50%) in 61s, about 61s left"
    assert list(progress.progress(range(3), "x")) == [0, 1, 2]
    monkeypatch.setenv("EDGECLF_PROGRESS", "0")
    assert progress.mode() == "off" and list(progress.progress(range(3), "x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_progress_under_torchrun_is_lines_labelled_by_rank(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """torchrun's processes each report their share: bars on one terminal redrew over each other, and lines in one
    log could not be told apart."""
    import io
    import sys

    from edgeclf import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("EDGECLF_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress.mode() == "bars"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert progress.mode() == "lines"
    monkeypatch.setattr("sys.stderr", io.StringIO())
    log = progress.Lines("features", 10, "img", every=0)
    log.update(5)
    log.close()
    lines = sys.stderr.getvalue().splitlines()
    assert lines[0].startswith("[rank 1] features: 5/10 img (50%)") and lines[1].startswith("[rank 1] features: 5 img")


def test_decoding_uses_threads_where_fork_is_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers were always forked: a ValueError on Windows (no fork) and a crash risk on macOS (Python's docs)."""
    import os
    import sys

    from edgeclf.data.parallel import imap

    pid = os.getpid()
    if "jax" not in sys.modules:  # another test file in this worker may have loaded it: then threads, rightly
        assert pid not in set(imap(_pid, range(64), workers=2, chunksize=4))  # Linux: forked processes
    monkeypatch.setattr(sys, "platform", "darwin")
    assert set(imap(_pid, range(64), workers=2, chunksize=4)) == {pid}  # threads in this process
    assert list(imap(_square, range(50), workers=2, chunksize=3)) == [i * i for i in range(50)]  # order kept


def _pid(_: int) -> int:
    import os

    return os.getpid()


def _square(i: int) -> int:
    return i * i


def test_demo_dataset_follows_per_class(tmp_path: Path) -> None:
    """`demo --per-class 1` after a default demo trained on the 60 images per class the first one left."""
    from edgeclf.data.dataset import scan
    from edgeclf.workflows.demo import demo_dataset

    assert len(scan(demo_dataset(tmp_path, 60)).samples) == 180
    assert len(scan(demo_dataset(tmp_path, 2)).samples) == 6
    assert len(scan(demo_dataset(tmp_path, 60)).samples) == 180  # the default's folder, untouched and reused


def test_retrain_py_command_lines_carry_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """retrain.py's --image_dir, --tfhub_module and --bottleneck_dir mean DATA, the zoo's counterpart and the
    feature cache; its output flags, which have no train counterpart, say what to run instead."""
    from edgeclf.cli import build_parser
    from edgeclf.training.config import TrainConfig

    hub = "https://tfhub.dev/google/imagenet/mobilenet_v2_035_128/feature_vector/5"
    a = build_parser().parse_args(["train", "--image_dir", "flowers", "--tfhub_module", hub, "--bottleneck_dir", "/b",
                                   "--how_many_training_steps", "500"])
    assert (a.image_dir, a.model, a.cache_dir, a.steps) == ("flowers", hub, "/b", 500)
    assert TrainConfig.build({"model": hub}).model == "mobilenet_v2_0.35_128"  # the run records the zoo's name
    from edgeclf.models.zoo import get_spec

    assert [get_spec(h).name for h in ("https://tfhub.dev/tensorflow/efficientnet/lite2/feature-vector/2",
                                       "https://tfhub.dev/google/imagenet/mobilenet_v1_050_160/feature_vector/5",
                                       "google/mobilenet-v3/tensorFlow2/small-075-224-feature-vector")] == [
        "efficientnet_lite2", "mobilenet_v1_0.5_160", "mobilenet_v3_small_0.75_224"]
    with pytest.raises(SystemExit):
        main(["train", "--image_dir", str(tmp_path), "--output_graph", "out.pb"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("--output_graph is not an edgeclf option: edgeclf train writes a run folder; `edgeclf export RUN -o "
                        "FILE.tflite` then writes the model, its labels inside it and in labels.txt beside it"), err
