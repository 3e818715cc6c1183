"""The clients an app runs an exported file with, behind one call: images in, probabilities out.

`litert` and `onnxruntime` are edgeclf's own runtime (it fits each image with the file's
preprocessing); `mediapipe` is MediaPipe Tasks' ImageClassifier fed the whole RGB image, exactly as
an app does, so the fitting is MediaPipe's own; `torch` is the PyTorch model of the run that made
the file. Comparing them is how edgeclf checks that its number is the number the app gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import quiet_fds
from ..data.images import ImageDecodeError, load_rgb
from ..data.parallel import imap
from ..errors import ConfigError, EdgeclfError, ModelError
from ..params import Options, check
from ..progress import progress
from .engine import Engine

CLIENTS = ("litert", "mediapipe", "onnxruntime", "torch")
# Which clients can run which kind of model.
RUNS = {".tflite": ("litert", "mediapipe", "torch"), ".onnx": ("onnxruntime", "torch"), "dir": ("torch",)}


def default_client(path: Path) -> str:
    """The client edgeclf's own runtime uses for this kind of model."""
    return {".tflite": "litert", ".onnx": "onnxruntime"}.get(path.suffix, "torch")


def check_client(path: Path, client: str) -> str:
    """The client, or a one-line ConfigError when it is unknown or cannot run this model."""
    check("--client", client, Options(*CLIENTS))
    kind = "dir" if path.is_dir() else path.suffix
    if kind in RUNS and client not in RUNS[kind]:
        what = "a run directory" if kind == "dir" else f"a {kind} file"
        raise ConfigError(f"--client {client} cannot run {what} ({path}); use one of {', '.join(RUNS[kind])}")
    return client


@dataclass(frozen=True)
class LoadRGB:
    """Picklable worker: path → full-resolution uint8 RGB array (what an app hands MediaPipe), or the reason."""

    def __call__(self, path: str) -> np.ndarray | str:
        """The decoded RGB pixels of `path`, or why it cannot be read."""
        try:
            return np.asarray(load_rgb(path))
        except ImageDecodeError as exc:
            return exc.reason


class MediaPipeClient:
    """MediaPipe Tasks' ImageClassifier over one .tflite: RGB array → probabilities of every class.

    With `roi` (default) a crop-mode file gets the centre region of interest the README tells an
    app to pass; `roi=False` feeds every file the whole image, as an app that ignores the mode does.
    """

    def __init__(self, engine: Engine, roi: bool = True) -> None:
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise EdgeclfError("--client mediapipe needs the mediapipe package: pip install mediapipe") from None
        self._mp, self._vision = mp, vision
        self.engine, self.roi = engine, roi and engine.preprocess.resize == "crop"
        # Every score, also below a threshold the file carries (an app with default options gets none of
        # those): evaluate applies the file's threshold itself, from the same scores. MediaPipe takes a
        # threshold of 0 or below as "not set" and falls back to the file's; 1e-9 overrides it.
        opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(engine.path)),
                                             max_results=-1, score_threshold=1e-9)
        try:
            with quiet_fds():  # MediaPipe's absl start-up lines are not the user's business
                self._clf = vision.ImageClassifier.create_from_options(opts)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"MediaPipe cannot load {engine.path} ({str(exc).splitlines()[0][:160]}); "
                             "re-export it with edgeclf export") from None

    def options(self, w: int, h: int) -> Any:
        """The ImageProcessingOptions an app passes for a w x h image (None: the whole image)."""
        if not self.roi:
            return None
        from mediapipe.tasks.python.components.containers.rect import RectF
        from mediapipe.tasks.python.vision.core.image_processing_options import ImageProcessingOptions

        left, top, right, bottom = self.engine.preprocess.roi(w, h)
        return ImageProcessingOptions(region_of_interest=RectF(left=left, top=top, right=right, bottom=bottom))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Probabilities [classes] of one uint8 RGB image."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._clf.classify(image, self.options(rgb.shape[1], rgb.shape[0]))
        out = np.zeros(len(self.engine.labels), np.float32)
        for c in result.classifications[0].categories:
            out[c.index] = c.score
        return out

    def close(self) -> None:
        """Release the classifier."""
        self._clf.close()


def mediapipe_predict(engine: Engine, paths: list[str], roi: bool = True, workers: int | None = None
                      ) -> tuple[np.ndarray, dict[str, str], list[int]]:
    """predict_files() through MediaPipe's ImageClassifier: (probs, {bad path: reason}, indices of good files)."""
    client = MediaPipeClient(engine, roi)
    good, rows, bad = [], [], {}
    try:
        for i, res in enumerate(progress(imap(LoadRGB(), paths, workers), "MediaPipe", len(paths), "img")):
            if isinstance(res, str):
                bad[paths[i]] = res
            else:
                good.append(i)
                rows.append(client(res))
    finally:
        client.close()
    out = np.stack(rows) if rows else np.zeros((0, len(engine.labels)), np.float32)
    return out, bad, good
