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
