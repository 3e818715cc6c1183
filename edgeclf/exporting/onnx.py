"""PyTorch → ONNX (opset 17), the same uint8 NHWC graph as the .tflite, labels and preprocessing in its metadata."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from .._io import write_bytes
from ..models.builder import Classifier
from ..models.preprocess import Preprocess
from ..models.deploy import Deployable

OPSET = 17


def to_onnx(model: Classifier, pre: Preprocess, dest: str | os.PathLike[str], labels: list[str],
            extra: dict[str, str] | None = None) -> Path:
    """Write an ONNX classifier (input 'image' uint8 [N, H, W, 3], output 'probabilities') atomically."""
    import onnx

    module = Deployable(model, pre).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; onnxscript is not needed
        torch.onnx.export(module, (torch.zeros(1, pre.size, pre.size, 3, dtype=torch.uint8),), buf,
                          input_names=["image"], output_names=["probabilities"], opset_version=OPSET,
                          dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    props = {"labels": json.dumps(labels), "preprocess": json.dumps(pre.to_dict()), "producer": "edgeclf",
             **(extra or {})}
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    write_bytes(dest, proto.SerializeToString())
    return Path(dest)
