"""Stable splits, pre-split layouts, and the doctor's duplicate / leakage / imbalance findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wcwidth import wcswidth

from conftest import FLOWERS, make_dataset, photo
from edgeclf.cli import main
from edgeclf.data.dataset import scan
from edgeclf.data.doctor import diagnose, format_report
from edgeclf.data.split import SplitSpec, assign, hash_key
from edgeclf.errors import DatasetError


def test_adding_images_never_moves_existing_ones(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", {"a": 50, "b": 50})
    before = {s.path: s.split for s in scan(data).samples}
    for i in range(50, 120):
        photo(i).save(data / "a" / f"new_{i}.jpg")
    after = {s.path: s.split for s in scan(data).samples}
    assert all(after[p] == sp for p, sp in before.items())
    counts = {sp: sum(1 for v in after.values() if v == sp) for sp in ("train", "val", "test")}
    assert counts["train"] > counts["val"] > 0 and counts["test"] > 0


def test_a_rare_class_keeps_one_training_image(tmp_path: Path) -> None:
    """2 photos that both hash into val/test: the one nearest the train range trains, the other stays put."""
    from edgeclf.data.split import percentage
    from edgeclf.training.run_setup import check_trainable

    spec = SplitSpec()
    held = [n for n in (f"r{i}.jpg" for i in range(200)) if assign(f"rare/{n}", spec) != "train"][:2]
    data = make_dataset(tmp_path / "d", {"common": 12})
    (data / "rare").mkdir()
    for i, name in enumerate(held):
        photo(i).save(data / "rare" / name)
    ds = scan(data)
    rare = {s.rel: s.split for s in ds.samples if ds.classes[s.label] == "rare"}
    first = max(held, key=lambda n: percentage(f"rare/{n}"))
    other = next(n for n in held if n != first)
    assert rare == {first: "train", other: assign(f"rare/{other}", spec)}
    assert all(s.split == assign(f"common/{s.rel}", spec) for s in ds.samples if ds.classes[s.label] == "common")
    check_trainable(ds)  # used to be: "class(es) rare have no image in the train split"


def test_split_record_names_the_dataset_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run trained on a relative DATA path is exported and evaluated from other folders."""
    make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    monkeypatch.chdir(tmp_path)
    root = scan("d").split_record()["root"]
    monkeypatch.chdir("/")
    assert Path(root).is_absolute() and Path(root, "a").is_dir()


def test_nohash_groups_land_together() -> None:
    spec = SplitSpec(30, 30)
    assert hash_key("a/x_nohash_1.jpg") == hash_key("a/x_nohash_2.jpg") == "a/x"
    for stem in range(40):
        splits = {assign(f"c/shot{stem}_nohash_{k}.jpg", spec) for k in range(5)}
        assert len(splits) == 1


def test_split_percentages_validated() -> None:
    with pytest.raises(ValueError, match="must be below 100"):
        SplitSpec(50, 50)


def test_presplit_layout(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_dataset(root / "train", {"a": 4, "b": 4})
    make_dataset(root / "val", {"a": 2, "b": 2}, seed=1)
    make_dataset(root / "test", {"a": 1, "b": 1}, seed=2)
    ds = scan(root)
    assert ds.layout == "presplit" and ds.classes == ["a", "b"]
    assert {sp: len(ds.split(sp)) for sp in ("train", "val", "test")} == {"train": 8, "val": 4, "test": 2}
    from edgeclf.data.doctor import diagnose, format_report

    # The percentages do not apply to folders split by hand; the header said "split 80/10/10" here.
    first = format_report(diagnose(root, workers=1)).splitlines()[0]
    assert "presplit layout: train/val/test folders as given" in first and "80/10/10" not in first
    # A class missing from a split: its accuracy goes unmeasured there, and doctor says so.
    import shutil

    shutil.rmtree(root / "test" / "b")
    warnings = diagnose(root, workers=1)["warnings"]
    assert any(w.startswith("1 class(es) have no test image (b)") for w in warnings), warnings
    assert not any("no val image" in w for w in warnings)


def test_presplit_without_val_folder_validates_on_a_hashed_part_of_train(tmp_path: Path) -> None:
    """train/ and test/ only (Kaggle's usual layout) left the run without validation: no early stopping, no
    calibration, no "unknown" threshold. --val-percent of train/ validates instead, hashed (stable), as
    Model Maker's data.split(0.9) does; the test folder is untouched and every class keeps training photos."""
    root = tmp_path / "d"
    make_dataset(root / "train", {"a": 40, "b": 40, "c": 1})
    make_dataset(root / "test", {"a": 5, "b": 5, "c": 1}, seed=2)
    ds = scan(root)
    val = ds.split("val")
    assert ds.val_from_train and 2 <= len(val) <= 20 and all(s.path.parts[-3] == "train" for s in val)
    assert len(ds.split("test")) == 11 and {s.label for s in ds.split("train")} == {0, 1, 2}
    assert [s.path for s in scan(root).split("val")] == [s.path for s in val]  # the same every time
    assert ds.split_record()["val_from_train"] is True
    # A run recorded before (train/ all training, val empty) keeps its own split: no val, not today's hashed one.
    old = {"files": {"train": [ds.name(x) for x in ds.samples if x.split != "test"], "val": [],
                     "test": [ds.name(x) for x in ds.split("test")]}}
    assert ds.recorded("val", old) == [] and len(ds.recorded("train", old)) == 81
    assert not scan(root, val_percent=0).split("val")
    assert len(scan(root, val_percent=30).split("val")) > len(val)
    make_dataset(root / "val", {"a": 2, "b": 2}, seed=3)  # a val folder decides, as before
    given = scan(root)
    assert not given.val_from_train and all(s.path.parts[-3] == "val" for s in given.split("val"))


def test_class_folders_named_as_splits_are_warned(tmp_path: Path) -> None:
    """Kaggle's Intel set: seg_train/<classes>/ and seg_test/<classes>/ read as two classes trained a split detector
    without a word. Names as splits warn (doctor and train); a 'train' class beside a 'bus' one, or year folders, do not."""
    make_dataset(tmp_path / "intel" / "seg_train", {"forest": 3, "sea": 3})
    make_dataset(tmp_path / "intel" / "seg_test", {"forest": 1, "sea": 1}, seed=1)
    want = "class folders seg_train, seg_test are named as splits: if they hold the classes, pass one as DATA"
    assert scan(tmp_path / "intel").split_like.startswith(want)
    assert any(w.startswith(want) for w in diagnose(tmp_path / "intel", workers=1)["warnings"])
    make_dataset(tmp_path / "vehicles", {"train": 2, "bus": 2})
    make_dataset(tmp_path / "years" / "cat" / "2019", {"x": 2})
    make_dataset(tmp_path / "years" / "dog" / "2019", {"x": 2})
    assert scan(tmp_path / "vehicles").split_like is None and scan(tmp_path / "years").split_like is None


def test_one_class_in_two_folders_named_alike_is_warned(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """'Cat' beside 'cat', 'dog' beside 'dog ' (a trailing space): trained as four classes without a word."""
    root = make_dataset(tmp_path / "d", {"Cat": 3, "cat": 3, "dog": 3, "dog ": 3, "sun-flower": 3, "bird": 3})
    want = ("class folders differ only in case, spaces or punctuation ('Cat' and 'cat'; 'dog' and 'dog '): the same "
            "class twice? They train as separate classes; merge each group into one folder")
    assert want in diagnose(root, workers=1)["warnings"]
    assert main(["train", str(root), "--model", "mobilenet_v2_0.35_96", "--weights", "none", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--workers", "1"]) == 0
    assert f"warning: {want}" in capsys.readouterr().err.splitlines()
    assert scan(make_dataset(tmp_path / "e", {"sunflower": 2, "sunflowers": 2})).look_alike is None


def test_images_outside_every_class_folder_are_named_as_such(tmp_path: Path) -> None:
    """Photos lying in DATA itself were counted as 'non-image' files and warned as 'image data with no image
    extension: rename them to .jpg', though they were .jpg: what they lack is a class folder."""
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3})
    for i in range(2):
        photo(500 + i).save(root / f"loose_{i}.jpg")
    (root / "notes.txt").write_text("x")
    r = diagnose(root, workers=1)
    assert r["ignored"]["non_images"] == 1 and not r["ignored"]["misnamed_images"], r["ignored"]
    assert (f"2 image(s) lie outside every class folder, so they were left out (first: "
            f"{root / 'loose_0.jpg'}); move each into {root}/<its class>/ to use it") in r["warnings"]
    # Pre-split: in DATA or in DATA/train itself (they were not even counted).
    split = make_dataset(tmp_path / "p" / "train", {"cat": 3, "dog": 3}).parent
    make_dataset(split / "test", {"cat": 1, "dog": 1})
    photo(600).save(split / "train" / "stray.jpg")
    assert scan(split).loose_note() == (
        f"1 image(s) lie outside every class folder, so they were left out (first: {split / 'train' / 'stray.jpg'}); "
        f"move each into {split}/<split>/<its class>/ to use it")


def test_many_small_classes_are_counted_not_all_named(tmp_path: Path) -> None:
    """120 small classes made one warning line of every name; doctor names five and counts the rest."""
    root = make_dataset(tmp_path / "d", {f"c{i}": 2 for i in range(7)})
    warnings = diagnose(root, workers=1)["warnings"]
    assert "7 class(es) have fewer than 20 images: c0, c1, c2, c3, c4 and 2 more" in warnings, warnings


def test_class_names_in_wide_characters_keep_the_table_aligned(tmp_path: Path) -> None:
    """Chinese or emoji class names take two terminal columns a character: doctor's table lined up by len() and
    every column after such a name stood one or two places to the right."""
    root = make_dataset(tmp_path / "d", {"猫": 3, "🐱 cat": 3, "dog": 3})
    lines = format_report(diagnose(root, workers=1)).splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("class"))
    table = lines[start:start + 6]
    assert [ln for ln in table if ln.startswith(("猫", "🐱", "dog", "TOTAL"))], table
    assert len({wcswidth(ln) for ln in table}) == 1, "\n".join(table)


def test_nested_class_folders(tmp_path: Path) -> None:
    make_dataset(tmp_path / "d" / "a" / "2024" / "june", {"x": 3})
    make_dataset(tmp_path / "d", {"b": 3})
    ds = scan(tmp_path / "d")
    assert ds.classes == ["a", "b"] and len(ds.samples) == 6


def test_names_made_on_a_mac_are_recorded_as_an_app_spells_them(tmp_path: Path) -> None:
    """macOS (and zips made there) store 'café' decomposed (NFD). Labels, split names and the split itself are
    the NFC ones: the same on Linux, in labels.txt and in the MediaPipe file an app compares its strings with."""
    import unicodedata

    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    def form(kind: str, name: str) -> str:
        return unicodedata.normalize(kind, name)

    for kind in ("NFD", "NFC"):
        make_dataset(tmp_path / kind, {form(kind, "café"): 12, form(kind, "crème brûlée"): 12})
        for f in sorted((tmp_path / kind / form(kind, "café")).iterdir())[:3]:
            f.rename(f.with_name(form(kind, f"été_{f.name}")))
    mac, linux = scan(tmp_path / "NFD"), scan(tmp_path / "NFC")
    assert mac.classes == linux.classes == ["café", "crème brûlée"]
    assert mac.split_record()["files"] == linux.split_record()["files"]  # one dataset, one split, on both systems
    assert all(form("NFC", n) == n for names in mac.split_record()["files"].values() for n in names)
    # A run recorded before names were NFC (decomposed names in its split.json) still finds its photos.
    old = {sp: [form("NFD", n) for n in names] for sp, names in mac.split_record()["files"].items()}
    assert {str(s.path) for s in linux.recorded("test", {"files": old})} == {str(s.path) for s in linux.split("test")}
    make_dataset(tmp_path / "wrap" / form("NFD", "données"), {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match=form("NFD", "données") + r" holds 2 folders of images \(a, b\)"):
        scan(tmp_path / "wrap")

    run = train(tmp_path / "NFD", "mobilenet_v1_0.25_128", tmp_path / "run", weights="none", epochs=1, verbose=False)
    assert (run / "labels.txt").read_text() == "café\ncrème brûlée\n"
    import mediapipe as mp
    from mediapipe.tasks.python import vision

    f = export(run, quantize="float32", max_drop=None, verbose=False)
    with vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(
            base_options=mp.tasks.BaseOptions(model_asset_path=str(f)), max_results=2)) as clf:
        got = clf.classify(mp.Image.create_from_file(str(next((tmp_path / "NFD").rglob("*.jpg")))))
    assert sorted(c.category_name for c in got.classifications[0].categories) == ["café", "crème brûlée"]


def test_doctor_finds_duplicates_leakage_and_imbalance(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", {"big": 60, "small": 5})
    src = data / "big" / "img_000.jpg"
    # An exact copy and a resized re-encode, under names that hash to different splits.
    names = [f"copy_{i}.jpg" for i in range(200)]
    other = next(n for n in names if _split_of("big", n) != _split_of("big", "img_000.jpg"))
    (data / "big" / other).write_bytes(src.read_bytes())
    from PIL import Image

    Image.open(src).resize((96, 72)).save(data / "small" / "resized.jpg", quality=70)
    r = diagnose(data, workers=1)
    assert len(r["exact_duplicates"]) == 1 and r["exact_duplicates"][0]["cross_split"]
    near = [g for g in r["near_duplicates"] if any("resized.jpg" in f for f in g["files"])]
    assert near and near[0]["cross_class"]
    assert r["leakage"]["exact_groups_across_splits"] == 1
    assert r["imbalance"]["ratio"] >= 10 and r["imbalance"]["small_classes"] == ["small"]
    text = format_report(r)
    assert "LEAK" in text and "imbalance" in text


def _split_of(cls: str, name: str) -> str:
    return assign(f"{cls}/{name}", SplitSpec())


def test_doctor_cli_json(tiny_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor", str(tiny_dataset), "--json", "--workers", "1"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n_classes"] == 2 and r["n_images"] == 24


def test_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeclf: error:") and "does not exist" in err and "\n" not in err


@pytest.mark.skipif(not FLOWERS.is_dir(), reason="../shared/datasets/flowers is absent")
def test_doctor_on_flowers() -> None:
    r = diagnose(FLOWERS)
    assert r["n_classes"] == 5 and r["n_images"] == 3670
    assert sum(r["split_totals"].values()) == 3670 and not r["unreadable"]
    assert r["exact_duplicates"]  # the flowers set holds a few byte-identical photos


def test_symlink_loop_is_followed_once(tmp_path: Path) -> None:
    """The issue's case: a/loop -> .. made the scanner descend ~40 levels and count b's photos as a's."""
    from conftest import make_dataset
    from edgeclf.data.dataset import scan
    from edgeclf.data.doctor import diagnose, format_report

    root = make_dataset(tmp_path / "data", {"a": 12, "b": 12})
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "b" / "fake.png").write_bytes(b"not a png")
    (root / "a" / "loop").symlink_to("..")
    (root / "a" / "to_b").symlink_to("../b")  # into another class: would relabel b's photos
    (root / "a" / "sub").mkdir()
    (root / "a" / "sub" / "again").symlink_to("..")  # back up inside the class
    (root / "b" / "alias").symlink_to(root / "b" / ".." / "b")  # the same folder again
    ds = scan(root)
    counts = ds.counts()
    assert counts["a"]["total"] == 13 and counts["b"]["total"] == 13  # 12 photos + the bad file, once each
    assert len(ds.skipped_links) == 4 and any("loop -> .." in s for s in ds.skipped_links)
    r = diagnose(root, workers=1)
    assert len(r["unreadable"]) == 2 and r["exact_duplicates"] == []  # no photo reached twice
    assert "skipped 4 folder link(s)" in format_report(r)


def test_class_reached_only_through_a_skipped_link_names_the_link(tmp_path: Path) -> None:
    """'class folder has no images' with the photos in plain sight: the error now names the link it refused."""
    from conftest import make_dataset
    from edgeclf.data.dataset import scan
    from edgeclf.errors import DatasetError

    outside = make_dataset(tmp_path / "elsewhere", {"more": 3}) / "more"
    root = make_dataset(tmp_path / "data", {"a": 3})
    (root / "b").mkdir()
    (root / "b" / "batch2").symlink_to(outside)
    with pytest.raises(DatasetError, match=r"class folder .*data/b has no images.*folder link .*b/batch2 -> "
                                           r".*elsewhere/more is not followed.*make .*data/b itself the link"):
        scan(root)
    (root / "b" / "batch2").unlink()
    (root / "b").rmdir()
    (root / "b").symlink_to(outside)  # the advice holds: a linked class folder is read
    assert scan(root).counts()["b"]["total"] == 3


def test_doctor_suggests_and_train_excludes_without_touching_files(tmp_path: Path) -> None:
    """doctor --suggest writes exclusions; train --exclude leaves them out, records them, deletes nothing."""
    import json
    import shutil

    from conftest import make_dataset
    from edgeclf.cli import main

    root = make_dataset(tmp_path / "data", {"a": 12, "b": 12})
    shutil.copy(root / "a" / "img_000.jpg", root / "b" / "same_photo.jpg")  # one photo, two labels
    shutil.copy(root / "a" / "img_001.jpg", root / "a" / "copy.jpg")  # an extra copy in one class
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    sug = tmp_path / "suggest.json"
    assert main(["doctor", str(root), "--suggest", str(sug), "--workers", "1"]) == 0
    listed = {e["file"]: e["reason"] for e in json.loads(sug.read_text())["exclude"]}
    assert len(listed) == 4 and {"a/img_000.jpg", "b/same_photo.jpg", "b/broken.jpg"} <= set(listed)
    assert len({"a/copy.jpg", "a/img_001.jpg"} & set(listed)) == 1  # one of the two copies is kept
    assert "filed under a, b" in listed["b/same_photo.jpg"] and listed["b/broken.jpg"].startswith("unreadable")
    run = tmp_path / "run"
    assert main(["train", str(root), "--out", str(run), "--weights", "none", "--model", "mobilenet_v2_0.35_96",
                 "--epochs", "1", "--feature-backend", "torch", "--exclude", str(sug)]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["exclusions"]["excluded"] == 4 and len(manifest["exclusions"]["sha256"]) == 64
    files = json.loads((run / "split.json").read_text())["files"]
    assert not set(listed) & {f for fs in files.values() for f in fs}
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing deleted or moved
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["train", str(root), "--exclude", str(tmp_path / "bad.json")]) == 2


def test_an_exclusion_list_for_another_dataset_is_warned(tmp_path: Path, capsys) -> None:
    """Listed files that are not in DATA excluded nothing, silently; now train says so."""
    import json

    from conftest import make_dataset
    from edgeclf.cli import main

    root = make_dataset(tmp_path / "data", {"a": 6, "b": 6})
    ex = tmp_path / "ex.json"
    ex.write_text(json.dumps({"exclude": [{"file": "a/img_000.jpg", "reason": "r"}, {"file": "cat/1.jpg", "reason": "r"}]}))
    assert main(["train", str(root), "--out", str(tmp_path / "run"), "--weights", "none", "--model",
                 "mobilenet_v2_0.35_96", "--epochs", "1", "--feature-backend", "torch", "--exclude", str(ex)]) == 0
    out = capsys.readouterr()
    assert f"excluded 1 file(s) listed in {ex}" in out.out
    assert f"warning: 1 of 2 file(s) listed in {ex} are not in" in out.err and "(first: cat/1.jpg)" in out.err


def test_presplit_class_without_training_photos(tmp_path: Path) -> None:
    """A class only in test/: doctor did not say so, and train's error said to lower --val-percent (no effect)."""
    from edgeclf.errors import DatasetError
    from edgeclf.training.trainer import train

    root = tmp_path / "d"
    make_dataset(root / "train", {"a": 4, "b": 4})
    make_dataset(root / "test", {"a": 1, "b": 1, "c": 2}, seed=2)
    warnings = diagnose(root, workers=1)["warnings"]
    assert any(w.startswith("1 class(es) have no train image (c)") for w in warnings), warnings
    # No val/ folder: the validation split is hashed out of train/ (10 %), and doctor says how to fill it.
    assert "1 class(es) have no val image (c): their accuracy is not measured there; add images to their train " \
           "folders or raise --val-percent" in warnings, warnings
    with pytest.raises(DatasetError, match=f"class\\(es\\) c have no image in the train split of {root}; add images "
                                           f"to {root / 'train' / 'c'}/$"):
        train(root, "mobilenet_v2_0.35_96", tmp_path / "run", weights="none", verbose=False)
    assert not (tmp_path / "run").exists()
