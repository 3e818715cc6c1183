"""doctor --label-issues: photos filed under the wrong class come first; nothing is moved."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.cli import main

COLOURS = {"blue": (40, 60, 220), "green": (40, 200, 60), "red": (220, 50, 40)}


@pytest.fixture(scope="module")
def mislabeled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """Three colour classes; two red photos and one blue photo filed under green."""
    root = tmp_path_factory.mktemp("l") / "data"
    rng = np.random.default_rng(0)
    wrong = set()
    for name, rgb in COLOURS.items():
        for i in range(16):
            folder = "green" if (name, i) in {("red", 0), ("red", 1), ("blue", 0)} else name
            (root / folder).mkdir(parents=True, exist_ok=True)
            img = np.clip(np.array(rgb) + rng.normal(0, 30, (48, 64, 3)), 0, 255).astype(np.uint8)
            path = root / folder / f"{name}_{i:02d}.jpg"
            Image.fromarray(img).save(path, quality=90)
            if folder != name:
                wrong.add(str(path))
    return root, wrong


def test_mislabeled_photos_rank_first(mislabeled: tuple[Path, set[str]], tmp_path: Path) -> None:
    from edgeclf.workflows.label_issues import label_issues

    root, wrong = mislabeled
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    r = label_issues(root, model="mobilenet_v2_1.0_96", top=5, cache_dir=tmp_path / "c", workers=1, verbose=False)
    assert set(r["ranking"][:3]) == wrong and r["flagged"] >= 3
    top = {s["path"]: s for s in r["suspects"]}
    assert all(top[p]["given"] == "green" and top[p]["predicted"] in ("red", "blue") for p in wrong)
    assert len(set(r["ranking"])) == len(r["ranking"]) == r["photos"] == 48
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing moved or written


def test_doctor_cli_lists_suspects(mislabeled: tuple[Path, set[str]], capsys: pytest.CaptureFixture) -> None:
    root, wrong = mislabeled
    assert main(["doctor", str(root), "--label-issues", "--model", "mobilenet_v2_1.0_96", "--folds", "3",
                 "--workers", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["label_issues"]
    assert r["folds"] == 3 and set(r["ranking"][:3]) == wrong
    assert main(["doctor", str(root), "--label-issues", "--folds", "1"]) == 2
    assert "--folds must be an int in [2, 20], got 1" in capsys.readouterr().err


def test_small_class_falls_back_to_fewer_folds(tmp_path: Path) -> None:
    from conftest import make_dataset
    from edgeclf.workflows.label_issues import label_issues

    data = make_dataset(tmp_path / "d", {"a": 12, "b": 3})
    import jax.numpy as jnp

    jnp.zeros(3).block_until_ready()  # JAX's threads running, as after an export in the same process
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r = label_issues(data, model="mobilenet_v2_1.0_96", folds=5, workers=1, verbose=False)
    assert r["folds"] == 3 and "3-fold instead of 5-fold" in r["note"]
    # cleanlab forked a pool under JAX's threads ("os.fork() … will likely lead to a deadlock").
    assert not [w for w in seen if "fork" in str(w.message)], [str(w.message) for w in seen]


def test_one_photo_class_is_left_unscored_and_the_report_still_written(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    from conftest import make_dataset

    data = make_dataset(tmp_path / "d", {"a": 10, "b": 10, "solo": 1})
    page = tmp_path / "page"
    assert main(["doctor", str(data), "--label-issues", "--model", "mobilenet_v2_1.0_96", "--workers", "1",
                 "--html", str(page), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["label_issues"]
    assert "not scored: the single photo of class(es) solo" in r["note"] and r["photos"] == 20
    assert (page / "doctor.html").is_file()


def test_a_model_too_unsure_to_judge_labels_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Photos with nothing in common per class (no label is wrong, none can be right): cleanlab flagged a third of them
    as 'likely label errors', read as a dataset full of mistakes, with no word that the model was guessing."""
    from conftest import make_dataset

    data = make_dataset(tmp_path / "d", {"a": 12, "b": 12, "c": 12})
    assert main(["doctor", str(data), "--label-issues", "--workers", "1", "--html", str(tmp_path / "page")]) == 0
    out = capsys.readouterr().out
    flagged = int(out.split("cleanlab flags ")[1].split(" of ")[0])
    assert flagged > 0.15 * 36 and "warning: " in out and "the out-of-fold head is right on only " in out, out
    page = (tmp_path / "page" / "doctor.html").read_text()
    assert "the out-of-fold head is right on only " in page  # and on the page
