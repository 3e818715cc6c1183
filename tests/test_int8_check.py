"""int8 with a guarantee: the file is checked against the float model on validation, re-calibrated, or refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeclf.cli import main
from edgeclf.errors import ConfigError
from test_export import _colour_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.training.trainer import train

    root = tmp_path_factory.mktemp("int8")
    data = _colour_dataset(root / "data", n=120)
    run = train(data, "mobilenet_v2_1.0_96", root / "run", epochs=10, val_percent=30, feature_backend="torch",
                verbose=False, aug_views=0, hidden=0, dropout=0.2)  # ImageNet features and a linear head
    # A model that answers by image: an untrained backbone (its initial BatchNorm statistics) gave every image the
    # same logits (std 1e-8, accuracy at chance), so float and int8 agreed whatever export did.
    assert json.loads((run / "metrics.json").read_text())["val"]["accuracy"] > 0.9  # chance: 0.33
    return run


def test_int8_file_is_checked_against_float(run: Path) -> None:
    from edgeclf.workflows.export import export

    f = export(run, quantize="int8", max_drop=50, verbose=False)
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert c["checked"] and c["split"] == "val" and c["n"] >= 100
    assert c["drop_points"] == pytest.approx(100 * (c["val_acc_float"] - c["val_acc_int8"]), abs=0.01)
    assert c["passed"] == (c["drop_points"] <= 50) and 0 <= c["top1_agreement"] <= 1
    assert c["top1_agreement"] >= 0.98 and c["drop_points"] <= 2  # colours in ImageNet features: int8 keeps them


def test_the_rounding_kept_is_the_one_closer_to_float(run: Path, tmp_path: Path) -> None:
    """Where an int8 file within --max-drop answers some validation images differently, two roundings are checked
    (GPTQ, and GPTQ within the activations' windows); the file left is the one closer to float, byte for byte what
    that rounding writes."""
    import hashlib

    from edgeclf.exporting.exporter import ROUNDINGS, export as export_file
    from edgeclf.workflows.export import export

    flat = _flat_logits(run, tmp_path / "flat")  # int8 ties the probabilities: answers differ
    f = export(flat, quantize="int8", max_drop=100, verbose=False)
    side = json.loads(f.with_suffix(".json").read_text())
    c = side["int8_check"]
    tried = c["roundings_tried"]
    assert [t["rounding"] for t in tried] == [ROUNDINGS[False], ROUNDINGS[True]]
    best = max(tried, key=lambda t: (t["top1_agreement"], -t["mean_abs_prob_diff"]))
    assert side["rounding"] == best["rounding"] and c["mean_abs_prob_diff"] == best["mean_abs_prob_diff"]
    again = export_file(flat, "tflite", "int8", tmp_path / "again.tflite", verbose=False,
                        window=best["rounding"] == ROUNDINGS[True])
    assert hashlib.sha256(f.read_bytes()).digest() == hashlib.sha256(again.read_bytes()).digest()


def _flat_logits(run: Path, dest: Path) -> Path:
    """A copy of `run` whose logits are shrunk 10,000x: float keeps every argmax, int8 probabilities tie them."""
    from edgeclf.artifacts.run import load_run, save_model

    model, meta = load_run(run)
    with torch.no_grad():
        model.head[-1].weight.mul_(1e-4)
        model.head[-1].bias.mul_(1e-4)
    dest.mkdir()
    for name in ("split.json", "labels.txt", "manifest.json", "metrics.json"):
        (dest / name).write_bytes((run / name).read_bytes())
    save_model(dest, model, meta)
    return dest


def test_int8_over_budget_keeps_the_worst_ops_in_float(run: Path, tmp_path: Path) -> None:
    """Re-calibrating cannot untie the probabilities; the per-layer errors name the softmax, kept in float."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision

    from edgeclf.workflows.export import export

    flat = _flat_logits(run, tmp_path / "flat")
    f = export(flat, quantize="int8", max_drop=1.0, verbose=False)
    c = json.loads(f.with_suffix(".json").read_text())
    check = c["int8_check"]
    assert check["passed"] and check["drop_points"] <= 1 and check["top1_agreement"] >= 0.99
    n_train = len(json.loads((run / "split.json").read_text())["files"]["train"])
    assert 100 < n_train < 400  # the re-calibration takes all there are, and says how many
    assert [t["calibration_images"] for t in check["tries"]] == [100, n_train]
    assert all(t["drop_points"] > 1 for t in check["tries"]) and check["calibration_images"] == n_train
    assert "output" in check["float_ops"] and len(check["float_ops"]) == 3 and c["float_ops"] == check["float_ops"]
    assert "roundings_tried" not in check  # over --max-drop: the repairs run, not a second rounding
    rows = list(csv.DictReader(open(f.with_suffix(".layers.csv"))))  # the table the choice came from
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, len(rows) + 1))
    # A phone app runs the mixed file as it is: uint8 pixels in, float probabilities out.
    img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.full((96, 96, 3), (200, 30, 30), np.uint8))
    with vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(
            base_options=mp.tasks.BaseOptions(model_asset_path=str(f)), max_results=3)) as clf:
        assert len(clf.classify(img).classifications[0].categories) == 3


def test_int8_over_budget_with_no_float_ops_is_refused(run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from edgeclf.workflows.export import Int8DropError, export

    flat = _flat_logits(run, tmp_path / "flat")
    with pytest.raises(Int8DropError, match=r"loses .* points .*> --max-drop 1\).*the file is kept"):
        export(flat, quantize="int8", max_drop=1.0, max_float_ops=0, verbose=False)
    f = next((flat / "export").glob("*_int8.tflite"))
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert f.is_file() and c["passed"] is False and c["drop_points"] > 1 and "first_try" in c
    assert c["calibration_images"] == len(json.loads((run / "split.json").read_text())["files"]["train"])
    assert c["float_ops"] == []
    # The CLI says it in one line and exits non-zero; --no-int8-check exports without the check.
    assert main(["export", str(flat), "--quantize", "int8", "--max-float-ops", "0"]) == 2
    # Scoring or using the marked file later says so (evaluate and predict were silent about the mark).
    capsys.readouterr()
    photo = next(p for p in Path(json.loads((run / "split.json").read_text())["root"]).rglob("*.jpg"))
    for cmd in (["evaluate", str(f)], ["predict", str(f), str(photo)], ["verify", str(flat), "--clients", "litert"]):
        assert main(cmd) == 0
        warned = [ln for ln in capsys.readouterr().err.splitlines() if "failed its int8 check" in ln]
        assert warned == [f"warning: {f} failed its int8 check at export: {c['drop_points']:.2f} points below the "
                          f"float model on the {c['split']} split (> --max-drop 1); an app gets this file's answers: "
                          "export float16 or dynamic instead"], (cmd, warned)
    # The Python API says it too, as a warning a caller can filter, quiet or not; evaluate's JSON keeps it.
    from edgeclf import evaluate, predict, verify
    from edgeclf.errors import EdgeclfWarning

    with pytest.warns(EdgeclfWarning, match="failed its int8 check at export"):
        assert predict(f, photo)[0]["top"]
    with pytest.warns(EdgeclfWarning, match="failed its int8 check at export"):
        assert evaluate(f, verbose=False)["failed_int8_check"].startswith(f"{f} failed its int8 check")
    with pytest.warns(EdgeclfWarning, match="failed its int8 check at export"):
        assert verify(flat, clients="litert", verbose=False)["failed_int8_check"] == [f.name]
    assert main(["export", str(flat), "--quantize", "int8", "--no-int8-check"]) == 0


def test_report_names_the_error_each_op_adds(run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(run), "--quantize", "int8", "--report", "--max-drop", "50"]) == 0
    out = capsys.readouterr().out
    f = next((run / "export").glob("*_int8.tflite"))
    rows = list(csv.DictReader(open(f.with_suffix(".layers.csv"))))
    assert {"rank", "layer", "op", "snr_db", "added_db", "cosine"} <= set(rows[0])
    assert rows[0]["layer"] == "backbone.stem" and rows[-1]["op"] == "SOFTMAX"  # graph order, readable names
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, len(rows) + 1))
    top = min(rows, key=lambda r: int(r["rank"]))
    assert float(top["added_db"]) == max(float(r["added_db"]) for r in rows) and top["layer"] in out
    # Without --report the table of an older export goes: it would describe another file.
    assert main(["export", str(run), "--quantize", "int8", "--max-drop", "50"]) == 0
    assert not f.with_suffix(".layers.csv").exists()
    assert main(["export", str(run), "--quantize", "int8", "--max-float-ops", "-1"]) == 2
    assert "--max-float-ops must be an int in [0, 1000], got -1" in capsys.readouterr().err
    assert main(["export", str(run), "--quantize", "float32", "--report"]) == 0
    assert "is float32: no table written" in capsys.readouterr().err


def test_max_drop_is_validated(run: Path) -> None:
    from edgeclf.workflows.export import export

    with pytest.raises(ConfigError, match=r"--max-drop must be a number in \[0, 100\] or left out \(None\), got -1"):
        export(run, quantize="int8", max_drop=-1)


def test_small_validation_split_is_judged_with_the_training_images(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """A dataset of a few hundred photos has a validation split under 100: the training images join the check
    (it used to be skipped for exactly these datasets); under 100 images in all it is skipped with a warning."""
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    # ImageNet features (a random backbone leaves the colours at chance) and a linear head, as _flat_logits needs.
    kw = {"epochs": 10, "feature_backend": "torch", "verbose": False, "aug_views": 0, "hidden": 0, "dropout": 0.2}
    small = train(_colour_dataset(tmp_path / "d40", n=40), "mobilenet_v2_1.0_96", tmp_path / "r40", **kw)
    split = json.loads((small / "split.json").read_text())["files"]
    assert len(split["val"]) < 100 <= len(split["val"]) + len(split["train"])
    f = export(small, quantize="int8", max_drop=50)
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert c["checked"] and c["split"] == "val+train" and c["n"] == len(split["val"]) + len(split["train"])
    assert c["drop_points"] == pytest.approx(100 * (c["val_acc_float"] - c["val_acc_int8"]), abs=0.01)
    assert f"int8 check on {c['n']} validation + training images" in capsys.readouterr().out
    # Over budget: the first calibration already took every training image, so re-calibrating is skipped.
    flat = _flat_logits(small, tmp_path / "flat")
    f = export(flat, quantize="int8", max_drop=1.0, verbose=False)
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert [t["calibration_images"] for t in c["tries"]] == [len(split["train"])] and len(c["float_ops"]) == 3, c

    tiny = train(_colour_dataset(tmp_path / "d10", n=10), "mobilenet_v2_1.0_96", tmp_path / "r10", **kw)
    f = export(tiny, quantize="int8")
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert c["checked"] is False and "validation images (< 100)" in c["note"] and "too few" in c["note"]
    assert "int8 not checked against float" in capsys.readouterr().err


def test_the_file_left_is_the_best_try_not_the_last(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    """On a 300-class set, keeping 3 ops in float lost 5.36 points where re-calibrating had lost 4.98, and the worse
    file was the one left. The files and their check are real; the verdict is shifted so every try fails and the
    float-ops try fails worst."""
    import hashlib
    import shutil

    import edgeclf.workflows.export as workflow
    from edgeclf.artifacts.run import read_json, sidecar_of

    real = workflow.int8_check

    def harsher(dest: Path, *args, **kwargs):
        r = real(dest, *args, **kwargs)
        worse = 60 if read_json(sidecar_of(dest)).get("float_ops") else 50
        return {**r, "drop_points": round(r["drop_points"] + worse, 2), "passed": False}

    monkeypatch.setattr(workflow, "int8_check", harsher)
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    with pytest.raises(workflow.Int8DropError) as e:
        workflow.export(copy, quantize="int8", max_drop=1.0)
    f = next((copy / "export").glob("*_int8.tflite"))
    c = read_json(sidecar_of(f))["int8_check"]
    first = workflow.export_file(copy, "tflite", "int8", tmp_path / "first.tflite", "uint8", 100, None, False,
                                 window=read_json(sidecar_of(f))["rounding"] == workflow.ROUNDINGS[True])
    assert [t["calibration_images"] for t in c["tries"]][0] == 100 and len(c["tries"]) == 3, c["tries"]
    assert c["tries"][-1]["float_ops"] and c["best_of_tries"] and c["float_ops"] == []
    assert c["drop_points"] == min(t["drop_points"] for t in c["tries"]) < c["tries"][-1]["drop_points"]
    assert read_json(sidecar_of(f)).get("float_ops", []) == []
    if c["calibration_images"] == 100:  # the first try was the best: the same bytes come back
        assert hashlib.sha256(f.read_bytes()).digest() == hashlib.sha256(first.read_bytes()).digest()
    assert "more than an earlier try" in capsys.readouterr().out
    assert "(tries: 100 calibration images (" in str(e.value) and "\n" not in str(e.value)


def test_int8_weights_are_rounded_for_the_layers_output(run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """GPTQ: each row of every layer keeps the int8 grid ai-edge-quantizer derives (so the file holds exactly the
    integers chosen), and the model's logits on the calibration images move less than with nearest rounding."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeclf.artifacts.run import load_run, run_preprocess
    from edgeclf.exporting.exporter import calibration_images
    from edgeclf.exporting.fold import fold_normalization
    from edgeclf.exporting.rounding import fold_factor, int8_copies
    from edgeclf.exporting import tflite
    from edgeclf.exporting.tflite import graph_key, swap_weights, to_tflite
    from edgeclf.litert import convert
    from edgeclf.models.blocks import ConvBnAct

    import copy

    model, meta = load_run(run)
    pre = run_preprocess(meta, run)
    calib = calibration_images(run, pre, 100)
    folded, m0, s0 = fold_normalization(model, pre)
    u = (calib.astype(np.float32) - m0) / s0
    before = {k: v.clone() for k, v in folded.state_dict().items()}
    scaled, rounded = int8_copies(folded, torch.from_numpy(u).permute(0, 3, 1, 2))
    assert all(torch.equal(v, before[k]) for k, v in folded.state_dict().items())  # a copy was rounded

    def on_grid(w: torch.Tensor) -> torch.Tensor:
        """Integers of each row (dim 0) on its symmetric grid, scale max|w| / 127; fails off the grid."""
        w = w.detach().double()
        k = w / (w.flatten(1).abs().amax(1).clamp(min=1e-30) / 127).view(-1, *[1] * (w.dim() - 1))
        assert torch.allclose(k, k.round(), atol=1e-3), float((k - k.round()).abs().max())
        return k.round()

    nearest = fold_normalization(model, pre)[0]
    with torch.no_grad():
        pairs = [(m.conv, n.conv, fold_factor(m).view(-1, 1, 1, 1), fold_factor(n).view(-1, 1, 1, 1))
                 for m, n in zip(rounded.modules(), nearest.modules()) if isinstance(m, ConvBnAct)]
        pairs += [(m, n, torch.ones(1, 1), torch.ones(1, 1)) for m, n in zip(rounded.head.modules(),
                                                                            nearest.head.modules())
                  if isinstance(m, torch.nn.Linear)]
        for r, n, fr, fn in pairs:
            ints = on_grid(r.weight * fr)
            assert ints.abs().flatten(1).amax(1).max() == 127  # each row's largest weight set the scale, untouched
            w = n.weight * fn
            scale = (w.flatten(1).abs().amax(1) / 127).view(-1, *[1] * (w.dim() - 1))
            n.weight.copy_(torch.round(w / scale) * scale / fn)
        x = torch.from_numpy(u).permute(0, 3, 1, 2)
        ref = folded(x)
        err_gptq, err_nearest = (float((m(x) - ref).pow(2).mean()) for m in (rounded, nearest))
    assert err_gptq < 0.8 * err_nearest, (err_gptq, err_nearest)
    assert not torch.equal(rounded.backbone.stem.conv.weight, nearest.backbone.stem.conv.weight)
    # The quantizer re-derives each row's scale from its largest weight and rounds to the nearest step: the file
    # holds the integers chosen here (stem: OIHW here, OHWI in the file).
    conversions = []
    monkeypatch.setattr(tflite, "convert", lambda *a: conversions.append(1) or convert(*a))  # counts, converts
    monkeypatch.setattr(tflite, "_CONVERTED", {})  # an earlier test's export of this run converted it already
    f = to_tflite(model, pre, tmp_path / "m.tflite", "int8", labels=list(meta["classes"]), calibration=calib,
                  report=tmp_path / "m.layers.csv")
    # The rounded weights replace the float graph's own: one conversion (~15 s) serves the file and the report,
    # and the other files of the same model (a float32 file, an int8 try with ops in float): it is kept.
    assert len(conversions) == 1 and (tmp_path / "m.layers.csv").is_file()
    to_tflite(model, pre, tmp_path / "f.tflite", "float32")
    to_tflite(model, pre, tmp_path / "k.tflite", "int8", calibration=calib[:10], keep_float=["output"])
    assert len(conversions) == 1
    other = copy.deepcopy(model)  # one weight, or one setting no tensor holds, is another graph
    with torch.no_grad():
        other.head[-1].bias[0] += 1
    to_tflite(other, pre, tmp_path / "o.tflite", "float32")
    assert len(conversions) == 2
    key = graph_key(other, ())
    assert key == graph_key(copy.deepcopy(other), ()) != graph_key(other, ("float32 io",))
    next(m for m in other.modules() if getattr(m, "residual", False)).residual = False
    assert graph_key(other, ()) != key
    it = Interpreter(model_path=str(f))
    stem_op = next(op for op in it._get_ops_details() if op["op_name"] == "CONV_2D")
    held = it.get_tensor(stem_op["inputs"][1]).astype(np.int64)
    chosen = on_grid(rounded.backbone.stem.conv.weight * fold_factor(rounded.backbone.stem).view(-1, 1, 1, 1))
    assert np.array_equal(held, chosen.permute(0, 2, 3, 1).numpy().astype(np.int64))
    # The int8 check exports one model again and again: its rounding is reused, never for other weights.
    again = int8_copies(folded, x)
    assert all(torch.equal(a, b) for m, n in zip(again, (scaled, rounded))
               for a, b in zip(m.state_dict().values(), n.state_dict().values()))
    plain = int8_copies(folded, x, equalized=False)[1]
    with torch.no_grad():
        folded.backbone.stem.conv.weight[0] *= 1.5
    moved = int8_copies(folded, x, equalized=False)[1]
    assert not torch.equal(moved.backbone.stem.conv.weight[0], plain.backbone.stem.conv.weight[0])
    assert torch.equal(moved.backbone.stem.conv.weight[1:], plain.backbone.stem.conv.weight[1:])
    w = np.ones((3, 3, 3, 3), np.float32)  # in no graph: the graph is converted again instead
    graph = f.read_bytes()
    assert swap_weights(graph, [w], [2 * w]) is None
    assert swap_weights(graph, [w], [w]) is graph  # nothing to change: nothing looked for


def test_relu6_channels_are_scaled_to_fill_int8(run: Path, tmp_path: Path) -> None:
    """int8 activations share one scale per tensor: a channel peaking far below the others gets few steps. Three
    in four of the stem's channels shrunk 20x before their ReLU6 and grown back in the depthwise conv that reads
    them (the same function): export scales them back up, and the file's error falls by a fifth or more."""
    from edgeclf.artifacts.run import load_run, run_preprocess
    from edgeclf.exporting.equalize import HEADROOM, MAX_GAIN, equalize
    from edgeclf.exporting.exporter import calibration_images
    from edgeclf.exporting.tflite import to_tflite
    from edgeclf.runtime.engine import load_engine

    import copy

    model, meta = load_run(run)
    pre = run_preprocess(meta, run)
    calib = calibration_images(run, pre, 100)
    x = (torch.from_numpy(calib).permute(0, 3, 1, 2).float() - torch.tensor(pre.mean).view(1, 3, 1, 1)) / \
        torch.tensor(pre.std).view(1, 3, 1, 1)
    shrunk = copy.deepcopy(model)
    stem, dw = shrunk.backbone.stem, shrunk.backbone.blocks[0].dw.conv
    low = torch.arange(dw.in_channels) % 4 != 0
    with torch.no_grad():
        stem.bn.weight[low] /= 20
        stem.bn.bias[low] /= 20
        dw.weight[low] *= 20
        ref = torch.softmax(model(x), 1).numpy()
        assert np.abs(torch.softmax(shrunk(x), 1).numpy() - ref).max() < 1e-4
        scaled = copy.deepcopy(shrunk)
        assert equalize(scaled, x) > 0
        assert np.abs(torch.softmax(scaled(x), 1).numpy() - ref).max() < 1e-4  # below every clip on these images
        peaks = scaled.backbone.stem(x).amax((0, 2, 3))
        grown = scaled.backbone.stem.bn.weight / stem.bn.weight
    # The shrunk channels grew, each that fires on these images to peak at 6 / HEADROOM, or by MAX_GAIN where a
    # channel (near silent on these colours) would need more.
    assert (grown[low] > 1).all()
    capped = torch.isclose(grown, torch.tensor(MAX_GAIN))
    filled = low & (peaks > 0) & ~capped
    assert filled.sum() > low.sum() / 2 and (peaks[low & capped] < 6 / HEADROOM).all()
    assert torch.allclose(peaks[filled], torch.tensor(6 / HEADROOM), atol=1e-4)
    err = {}
    for eq in (True, False):
        f = to_tflite(shrunk, pre, tmp_path / f"eq{eq:d}.tflite", "int8", labels=list(meta["classes"]),
                      calibration=calib, equalize=eq)
        engine = load_engine(f)
        probs = np.concatenate([engine.predict(calib[i:i + 25]) for i in range(0, len(calib), 25)])
        err[eq] = float(np.abs(probs - ref).mean())
    assert err[True] < 0.8 * err[False], err
