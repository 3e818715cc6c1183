"""`edgeclf benchmark`: latency of a model file at batch 1, after warm-up, per thread count."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import progress
from ..table import format_table
from ..litert import open_interpreter
from .engine import load_engine, require_model


def _stats(ms: np.ndarray) -> dict[str, float]:
    return {"mean_ms": round(float(ms.mean()), 3), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "min_ms": round(float(ms.min()), 3)}


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):  # not Linux: memory is not reported
        return float("nan")


def _raw_tflite(path: Path, threads: int):
    """Any .tflite, edgeclf's or not: (invoke one random input, input description, the interpreter)."""
    it = open_interpreter(path, threads)
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(0, 256, d["shape"]).astype(d["dtype"])

    def run() -> None:
        it.set_tensor(d["index"], x)
        it.invoke()

    shape = "x".join(str(v) for v in d["shape"][1:])
    return run, f"{shape} {np.dtype(d['dtype']).name}", it


def graph_macs(path: str | os.PathLike[str]) -> int:
    """Multiply-accumulates of a .tflite, counted from its graph: conv, depthwise conv and fully-connected ops."""
    return _graph_macs(open_interpreter(path))


def _graph_macs(it: Any) -> int:
    # Python ints: numpy's int32 dimensions would overflow in the products below (and in 100 * macs).
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    total = 0
    for op in it._get_ops_details():  # no public API lists ops; this one is stable across LiteRT releases
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(ins) < 2:
            continue
        out, w = shapes[outs[0]], shapes[ins[1]]
        if name == "CONV_2D":  # out [N, H, W, Co], filter [Co, kh, kw, Ci]
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C]
            total += int(np.prod(out)) * w[1] * w[2]
        else:  # out [N, units], weights [units, in]
            total += int(np.prod(out)) * w[-1]
    return total


def graph_int8(path: str | os.PathLike[str]) -> bool:
    """Whether a .tflite's convolutions hold int8 weights (int8 and dynamic-range files): integer kernels."""
    return _graph_int8(open_interpreter(path))


def _graph_int8(it: Any) -> bool:
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in it.get_tensor_details()}
    return any(op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op["inputs"]) > 1
               and dtypes[op["inputs"][1]] == np.int8 for op in it._get_ops_details())


def graph_params(path: str | os.PathLike[str]) -> int:
    """Parameters of a .tflite: elements of every constant tensor (one with data in a buffer)."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    total = 0
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            buf = model.Buffers(t.Buffer())
            if buf is not None and (buf.DataLength() > 0 or buf.Size() > 0):
                total += int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1
    return total


def onnx_counts(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(parameters, MACs) of an .onnx graph: initializer elements; Conv, Gemm and MatMul work from inferred shapes."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(path))
    for v in model.graph.input:  # batch 1, as timed; a symbolic batch left every later shape unknown
        dims = v.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    # onnx's own inference stops at the Pad ops whose sizes the graph computes from Shape; onnxruntime's follows them.
    graph = SymbolicShapeInference.infer_shapes(model, auto_merge=True).graph
    inits = {t.name: numpy_helper.to_array(t).shape for t in graph.initializer}
    shapes: dict[str, list[int]] = dict(inits)
    for v in [*graph.input, *graph.value_info, *graph.output]:
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    macs = 0
    for node in graph.node:
        out, ins = shapes.get(node.output[0]), [shapes.get(i) for i in node.input]
        if not out or len(ins) < 2 or ins[1] is None:
            continue
        if node.op_type == "Conv":  # weight [Co, Ci / groups, kh, kw]
            macs += int(np.prod(out)) * int(np.prod(ins[1][1:]))
        elif node.op_type == "Gemm":  # B [K, N], or [N, K] with transB
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            macs += int(np.prod(out)) * ins[1][1 if trans_b else 0]
        elif node.op_type == "MatMul" and ins[0]:
            macs += int(np.prod(out)) * ins[0][-1]
    return sum(int(np.prod(s)) for s in inits.values()), macs


_PEAK: dict[int, float] = {}


def peak_gmacs(threads: int) -> float:
    """This CPU's float32 multiply-accumulate rate (GMAC/s) at `threads`, from a tight 1024² matmul."""
    if threads not in _PEAK:
        # numpy's BLAS, not torch's: timing a .tflite must not import torch (1.5 s, ~200 MB). Both reach the
        # same peak here (51 vs 49 GMAC/s on one core, 104 vs 100 on two).
        from threadpoolctl import threadpool_limits

        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((1024, 1024), np.float32), rng.standard_normal((1024, 1024), np.float32)
        with threadpool_limits(threads):
            for _ in range(3):
                a @ b
            # The fastest of several short bursts: another process taking the core slows some bursts, and a
            # peak measured low would put float files above 100 % and make search's latency floor prune
            # candidates that fit.
            best, n = float("inf"), 4
            for _ in range(6):
                t = time.perf_counter()
                for _ in range(n):
                    a @ b
                best = min(best, time.perf_counter() - t)
        _PEAK[threads] = n * 1024**3 / best / 1e9
    return _PEAK[threads]


def benchmark_file(path: str | os.PathLike[str], threads: int = 1, runs: int = 100, warmup: int = 10,
                   seed: int = 0) -> dict[str, Any]:
    """Time one model file (.tflite of any origin, .onnx, or a run dir): batch-1 latency after warm-up."""
    p = require_model(path)
    rss0 = _rss_mb()
    restore: int | None = None  # torch's thread count is the process's: put back after timing
    if p.suffix == ".tflite":
        fn, inp, it = _raw_tflite(p, threads)
        runtime = "litert"
    else:
        engine = load_engine(path, threads)
        size = engine.preprocess.size
        x = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        if engine.kind == "torch":
            import torch

            restore = torch.get_num_threads()
            torch.set_num_threads(threads)
        fn, inp = (lambda: engine.predict(x)), f"{size}x{size}x3 uint8"
        runtime = {"onnx": "onnxruntime"}.get(engine.kind, engine.kind)
    try:
        for _ in range(max(1, warmup)):
            fn()
        mem = _rss_mb() - rss0
        ms = np.empty(runs)
        for i in progress(range(runs), f"{p.name} x{threads} threads", runs, "run"):
            t = time.perf_counter()
            fn()
            ms[i] = (time.perf_counter() - t) * 1e3
    finally:
        if restore is not None:  # a benchmark at 1 thread left training in the same process on 1 thread
            import torch

            torch.set_num_threads(restore)
    size_bytes = p.stat().st_size if p.is_file() else (p / "model.pt").stat().st_size
    row = {"file": str(path), "runtime": runtime, "threads": threads, "size_mb": round(size_bytes / 1e6, 3),
           "input": inp, "runs": runs, **_stats(ms), "throughput_ips": round(1e3 / float(ms.mean()), 1),
           "memory_mb": round(mem, 1)}
    # Size and work counted in each form: the .tflite's graph, the .onnx graph, or the PyTorch module.
    extra: dict[str, Any] = {}
    if p.suffix == ".tflite":
        params, macs, extra["int8"] = graph_params(p), _graph_macs(it), _graph_int8(it)
    elif p.suffix == ".onnx":
        try:
            params, macs = onnx_counts(p)
        except Exception:  # noqa: BLE001 - counts are extras: a graph the inference cannot follow leaves them out
            return row
    else:
        from ..artifacts.run import load_run
        from ..models.profile import count_macs, count_params

        model = load_run(p)[0]
        params, macs = count_params(model), count_macs(model, engine.preprocess.size)
    peak = peak_gmacs(threads)
    # Roofline: the time the MACs would take at the machine's float32 FMA peak, over the measured time.
    row.update(params_m=round(params / 1e6, 3), macs_m=round(macs / 1e6, 1), peak_gmacs=round(peak, 1),
               roofline_pct=round(100 * macs / (peak * 1e9) / (row["p50_ms"] / 1e3), 1), **extra)
    return row


def format_benchmark(rows: list[dict[str, Any]]) -> str:
    """One row per file x runtime x threads."""
    table = format_table(
        ["file", "runtime", "threads", "size MB", "input", "params M", "MACs M", "mean ms", "p50 ms", "p90 ms",
         "p99 ms", "min ms", "img/s", "+RSS MB", "% of f32 FMA peak"],
        [[Path(r["file"]).name, r["runtime"], r["threads"], r["size_mb"], r["input"], r.get("params_m", "-"),
          r.get("macs_m", "-"),
          r["mean_ms"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["min_ms"], r["throughput_ips"], r["memory_mb"],
          r.get("roofline_pct", "-")] for r in rows])
    over = [r for r in rows if r.get("roofline_pct", 0) > 100]
    if any(r.get("int8") for r in over):  # integer kernels do several MACs per float FMA
        table += "\nabove 100 %: integer (int8) kernels run more MACs per cycle than the float32 peak measured here"
    if any(not r.get("int8") for r in over):  # a float file cannot beat the float peak: the peak was measured low
        table += ("\nabove 100 % on a float file: the float32 peak was measured while something else used the "
                  "CPU; rerun on an idle machine")
    return table
