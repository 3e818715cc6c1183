"""Where an int8 graph departs from its float twin: the error each op adds, and ops kept in float.

ai-edge-quantizer's model validator runs both graphs on the same inputs and compares every
tensor they share; here each op's output SNR is set against the SNR of what it was fed, so a
layer is blamed only for the error it adds, not for the error that reached it (an error made by
the stem shows up in every later tensor). The ops that add the most are the ones to keep in float.
"""

from __future__ import annotations

import csv
import io
import os
import re
from typing import Any, Sequence

import numpy as np

from .._io import quiet_fds, write_text

REPORT_COLUMNS = ("rank", "index", "op", "layer", "snr_db", "added_db", "cosine", "tensor")
SAMPLES = 8  # images the comparison runs on: errors are averages, a few images settle them


def short_name(tensor: str) -> str:
    """A readable layer name from the converter's scope path (backbone.14.dw for ...MBBlock_14/ConvBnAct_dw/...)."""
    if tensor.startswith("serving_default_output"):
        return "output"
    if tensor.startswith("serving_default_"):
        return "input"
    parts = [p.rsplit(".", 1)[-1] for p in tensor.split(";")[0].split("/")]
    attrs = [p.split("_", 1)[1] for p in parts if "_" in p]  # Class_attr; the root module has no attr
    attrs = [a for a in attrs if a not in ("model", "")]
    if len(attrs) > 1 and attrs[-1] in ("act", "bn", "conv"):  # the fused epilogue, not a layer of its own
        attrs = attrs[:-1]
    return ".".join(attrs) or tensor[:40]


def _db(snr: float) -> float:
    return float(10 * np.log10(max(snr, 1e-12)))


def centred_snr(target: np.ndarray, reference: np.ndarray) -> float:
    """Power of the reference's variation around its mean over the power of the error.

    Centred, because what a tensor carries is its variation: near-uniform probabilities out of a
    softmax keep a high plain SNR while int8 steps erase which class was ahead.
    """
    ref = np.asarray(reference, np.float64)
    signal = np.mean((ref - ref.mean()) ** 2)
    noise = np.mean((np.asarray(target, np.float64) - ref) ** 2)
    return float(signal / max(noise, 1e-30))


def layer_errors(float_bytes: bytes, quant_bytes: bytes, samples: np.ndarray) -> list[dict[str, Any]]:
    """Per-op rows in graph order: output SNR (dB, centred) and cosine vs float, and the SNR the op itself lost."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils.validation_utils import ValidationErrorMetric as M, cosine_similarity

    with quiet_fds():
        it = Interpreter(model_content=bytes(float_bytes))
        it.allocate_tensors()
        key = next(iter(it.get_signature_list()))
        name = it.get_signature_list()[key]["inputs"][0]
        data = {key: [{name: np.asarray(x, np.float32)[None]} for x in samples]}
        res = model_validator.compare_model(bytes(float_bytes), bytes(quant_bytes), data, [M.SNR, M.COSINE_SIMILARITY],
                                            compare_fns=[centred_snr, cosine_similarity],
                                            num_threads=os.cpu_count() or 1).get_all_tensor_results()
    details = it.get_tensor_details()
    snr = {n: _db(v["snr"]) for n, v in res.items()}
    ops = it._get_ops_details()  # the interpreter's op list is the graph order
    # Only activations feed error forward: weights are compared too, but their error is the op's own.
    flowing = {t for op in ops for t in op["outputs"]} | {d["index"] for d in it.get_input_details()}
    rows = []
    for i, op in enumerate(ops):
        out = details[op["outputs"][0]]["name"] if len(op["outputs"]) else None
        if out not in res or op["op_name"] == "DELEGATE":
            continue
        fed = [snr[details[t]["name"]] for t in op["inputs"] if t in flowing and details[t]["name"] in snr]
        rows.append({"index": i, "op": op["op_name"], "layer": short_name(out), "snr_db": round(snr[out], 2),
                     "added_db": round(max(0.0, (min(fed) if fed else 99.0) - snr[out]), 2),
                     "cosine": round(float(res[out]["cosine_similarity"]), 6), "tensor": out})
    for r, row in enumerate(sorted(rows, key=lambda x: -x["added_db"]), 1):
        row["rank"] = r
    return rows


def worst(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The `n` ops that add the most error (rank 1 first)."""
    return sorted(rows, key=lambda r: r["rank"])[:n]


def keep_float_recipe(base: list[dict[str, Any]], tensors: Sequence[str]) -> list[dict[str, Any]]:
    """`base` recipe with the ops producing `tensors` left unquantized (exact scope match)."""
    # The quantizer matches an op by its scope: output tensor names, each followed by ";".
    return base + [{"regex": f"^{re.escape(t)};", "operation": "*", "algorithm_key": "no_quantize", "op_config": {}}
                   for t in tensors]


def read_report(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a FILE-stem.layers.csv, numbers parsed."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["rank"], r["index"] = int(r["rank"]), int(r["index"])
        r["snr_db"], r["added_db"], r["cosine"] = float(r["snr_db"]), float(r["added_db"]), float(r["cosine"])
    return rows


def write_report(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """The per-layer table as CSV, graph order, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in REPORT_COLUMNS})
    write_text(path, buf.getvalue())
