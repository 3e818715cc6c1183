"""The one LiteRT module: convert a PyTorch module to .tflite bytes, open an interpreter, run images one by one.

Training (fast feature extraction), exporting and the runtime all go through it, so conversion
settings, log silencing and the error for a file that is not a model are written once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._io import quiet_fds
from .errors import ModelError


def convert(module: Any, sample: Any) -> bytes:
    """litert-torch conversion of `module` traced on `sample` (a tensor): the .tflite bytes."""
    with quiet_fds():  # the converter's JAX/absl start-up logs are not edgeclf's output
        import litert_torch

        edge = litert_torch.convert(module, (sample,))
        with tempfile.TemporaryDirectory() as tmp:
            edge.export(f"{tmp}/m.tflite")
            return Path(f"{tmp}/m.tflite").read_bytes()


def open_interpreter(path: str | Path, threads: int | None = None) -> Any:
    """An allocated ai-edge-litert Interpreter; a file that is not a model is a one-line ModelError."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with quiet_fds():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a valid .tflite model ({str(exc).splitlines()[0]}); re-export it") from None
    return it


def run_each(it: Any, batch: np.ndarray, dequantize: bool = False, name: object = "the model") -> np.ndarray:
    """Invoke the interpreter's first input/output on each image of `batch` (files are made for batch 1).

    `dequantize` turns a quantized output into real values; a graph that loads but fails to run
    is a one-line ModelError naming `name`.
    """
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for x in batch:
        try:
            it.set_tensor(inp["index"], np.ascontiguousarray(x[None], dtype=inp["dtype"]))
            it.invoke()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{name} failed to run ({str(exc).splitlines()[0][:160]}); the file is damaged: "
                             "re-export it") from None
        y = it.get_tensor(out["index"])[0].copy()
        if dequantize and out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        rows.append(y)
    return np.stack(rows)
