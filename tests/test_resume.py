"""A resumable folder's settings: the same request made another way resumes, another request is refused."""

from __future__ import annotations

import os

import pytest

from edgeclf.errors import ConfigError
from edgeclf.workflows.resume import hold_settings


def test_paths_given_relative_or_absolute_are_the_same_setting(tmp_path, monkeypatch):
    (tmp_path / "runs" / "big").mkdir(parents=True)
    (tmp_path / "w.pt").write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    hold_settings(out, "data", teacher="runs/big", weights="w.pt", epochs=3)
    # The same folder and file, named from elsewhere: a resume, not another search.
    monkeypatch.chdir(tmp_path / "runs")
    hold_settings(out, os.path.join("..", "data"), teacher=str(tmp_path / "runs" / "big"), weights="../w.pt", epochs=3)
    with pytest.raises(ConfigError, match=r"holds results made with teacher .*big, not .*other"):
        hold_settings(out, "../data", teacher="other", weights="../w.pt", epochs=3)
    with pytest.raises(ConfigError, match=r"holds results made with weights .*w\.pt, not imagenet"):
        hold_settings(out, "../data", teacher="big", weights="imagenet", epochs=3)


def test_a_folder_of_someone_elses_files_is_refused(tmp_path):
    """compare/search --out ~/Desktop would write report.html and runs/ among the user's files."""
    from edgeclf.workflows.resume import check_own_folder

    desk = tmp_path / "desk"
    desk.mkdir()
    check_own_folder(desk)  # empty: fine
    (desk / ".DS_Store").write_bytes(b"")
    check_own_folder(desk)  # hidden files do not count
    (desk / "report.html").write_text("mine")
    with pytest.raises(ConfigError, match=r"--out .*desk already holds files of its own \(report.html\); choose a new "
                                          r"or empty folder"):
        check_own_folder(desk)
    (desk / "cells").mkdir()  # an earlier comparison's folder: resumed
    check_own_folder(desk)


def test_compare_and_search_refuse_it_before_any_work(tmp_path):
    from conftest import make_dataset
    from edgeclf.workflows.compare import compare
    from edgeclf.workflows.search import search

    data = make_dataset(tmp_path / "data", {"a": 3, "b": 3})
    desk = tmp_path / "desk"
    desk.mkdir()
    (desk / "report.html").write_text("mine")
    with pytest.raises(ConfigError, match="already holds files of its own"):
        compare(data, ["mobilenet_v2_0.35_96"], out=desk, weights="none", verbose=False)
    with pytest.raises(ConfigError, match="already holds files of its own"):
        search(data, max_latency_ms=5, max_size_mb=1, models=["mobilenet_v2_0.35_96"], out=desk, verbose=False)
    assert sorted(p.name for p in desk.iterdir()) == ["report.html"] and (desk / "report.html").read_text() == "mine"
