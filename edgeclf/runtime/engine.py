"""Load any model edgeclf makes — .tflite, or a run directory — behind one predict() call."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import read_json
from ..litert import open_interpreter, run_each
from ..artifacts.run import find_sidecar
from ..errors import ModelError
from ..models.preprocess import Preprocess


@dataclass
class Engine:
    """A loaded classifier: labels, preprocessing, and predict(uint8 NHWC batch) → probabilities."""

    path: Path
    kind: str  # "tflite" | "torch"
    labels: list[str]
    preprocess: Preprocess
    runner: Any
    threads: int | None = None
    threshold: float | None = None  # below it the answer is "unknown" (train --unknown-rate)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] → probabilities [N, classes]."""
        return self.runner(batch)


def _sidecar(path: Path) -> tuple[Preprocess, list[str], float | None]:
    """Preprocessing, class names and score threshold: from the JSON beside the file, else from its metadata."""
    side = find_sidecar(path)
    if side.is_file():
        try:
            meta = read_json(side)
            if meta.get("classes"):  # a JSON without them falls through to the metadata inside the file
                return (Preprocess.from_record(meta["preprocess"], side), [str(c) for c in meta["classes"]],
                        meta.get("score_threshold"))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{side} is not the preprocessing JSON edgeclf export writes ({type(exc).__name__}); "
                             "delete it (the metadata inside the model is used then) or re-export") from None
    return _metadata(path, side)


def _metadata(path: Path, side: Path) -> tuple[Preprocess, list[str], float | None]:
    """Preprocessing, class names and score threshold from the edgeclf metadata inside a .tflite."""
    from ..artifacts.metadata import read_metadata

    try:
        custom = read_metadata(path.read_bytes())[0]["custom"]
        return (Preprocess.from_record(custom["preprocess"], path), [str(c) for c in custom["classes"]],
                custom.get("score_threshold"))
    except Exception:  # noqa: BLE001 - any failure: the file does not carry edgeclf metadata
        raise ModelError(f"{path}: no {side.name} beside it and no edgeclf metadata inside; "
                         "re-export with edgeclf export") from None


def _tflite_runner(path: Path, threads: int | None):
    it = open_interpreter(path, threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    shape_in, shape_out = list(inp["shape"]), list(out["shape"])
    if len(shape_in) != 4 or shape_in[-1] != 3 or len(shape_out) != 2 or inp["dtype"] not in (np.uint8, np.float32):
        raise ModelError(f"{path} is not an image classifier (input {shape_in} {np.dtype(inp['dtype']).name}, "
                         f"output {shape_out}); edgeclf runs files made by edgeclf export")

    def run(batch: np.ndarray) -> np.ndarray:
        return run_each(it, batch, dequantize=True, name=path)

    run.interpreter = it  # type: ignore[attr-defined]
    return run, int(out["shape"][-1])


def require_model(path: str | os.PathLike[str]) -> Path:
    """The path of a model file or run directory that exists, or a one-line error saying what to pass."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist; pass a .tflite or .onnx file or a run directory")
    return path


def load_engine(path: str | os.PathLike[str], threads: int | None = None) -> Engine:
    """Open a .tflite file or a run directory for inference."""
    path = Path(path)
    if path.is_dir():
        import torch

        from ..artifacts.run import MODEL_FILE, load_run

        files = sorted(p.name for p in path.iterdir() if p.suffix in (".tflite", ".onnx"))
        if files and not (path / MODEL_FILE).is_file():  # e.g. RUN/export: exported files, not a run
            raise ModelError(f"{path} is a folder of exported files, not a run; give one of them, e.g. "
                             f"{path / files[0]}")
        model, meta = load_run(path)
        pre = Preprocess.from_record(meta["preprocess"], path)

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.softmax(model(pre.normalize(batch)), -1).numpy()

        return Engine(path, "torch", list(meta["classes"]), pre, run, threads, meta.get("score_threshold"))
    require_model(path)
    if path.suffix == ".tflite":
        pre, classes, threshold = _sidecar(path)
        runner, n_out = _tflite_runner(path, threads)
        # The file's own classes (its JSON, or its metadata: what MediaPipe names), never a labels.txt beside it,
        # which another model exported into the same folder may have written.
        if len(classes) != n_out:
            raise ModelError(f"{path}: its JSON lists {len(classes)} classes but the model outputs {n_out}; "
                             "the JSON belongs to another file: re-export with edgeclf export")
        return Engine(path, "tflite", classes, pre, runner, threads, threshold)
    if path.suffix == ".onnx":
        runner, labels, pre, threshold = _onnx_runner(path, threads)
        side = find_sidecar(path)
        if threshold is None and side.is_file():  # exported before the threshold went into the file
            try:
                threshold = read_json(side).get("score_threshold")
            except (OSError, ValueError, AttributeError):
                threshold = None
        return Engine(path, "onnx", labels, pre, runner, threads, threshold)
    raise ModelError(f"{path}: unsupported model file type {path.suffix!r}; pass a .tflite or .onnx file "
                     "or a run directory")


def _onnx_runner(path: Path, threads: int | None):
    import json

    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelError(f"{path} is not a valid ONNX model ({str(exc).splitlines()[0][:160]}); re-export it") from None
    props = sess.get_modelmeta().custom_metadata_map
    try:
        labels, pre = json.loads(props["labels"]), Preprocess.from_record(json.loads(props["preprocess"]), path)
        threshold = float(props["score_threshold"]) if "score_threshold" in props else None
    except (KeyError, ValueError, TypeError):
        raise ModelError(f"{path} has no readable edgeclf labels/preprocessing metadata; "
                         "export it with edgeclf export") from None
    name = sess.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        try:
            return sess.run(None, {name: np.ascontiguousarray(batch, dtype=np.uint8)})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"{path} failed to run ({str(exc).splitlines()[0][:160]}); re-export it") from None

    return run, labels, pre, threshold
