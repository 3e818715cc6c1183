"""PyTorch → .tflite: litert-torch converts in float32, ai-edge-quantizer quantizes, metadata goes in.

| --quantize | weights | activations | how |
|---|---|---|---|
| float32 | float32 | float32 | litert-torch |
| float16 | float16 | float32 | ai-edge-quantizer FLOAT_CASTING (weights dequantized at load) |
| dynamic | int8 | float32 (int8 matmuls at run time) | ai-edge-quantizer dynamic_wi8_afp32 |
| int8 | int8 | int8 | ai-edge-quantizer static_wi8_ai8, calibrated on training images |

The graph takes raw pixels 0..255, which is what MediaPipe's ImageClassifier feeds. With
`--io uint8` (default) the normalization is carried by the uint8 input tensor's quantization
parameters and folded into the stem (fold.py), and one QUANTIZE/DEQUANTIZE op at the graph's
edge replaces a float CAST/SUB/MUL prologue; a full-integer model's int8 output is requantized to
uint8. With `--io float32` the graph casts and normalizes float pixels itself.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .._io import quiet_fds, write_bytes
from .int8_layers import SAMPLES, keep_float_recipe, layer_errors, write_report
from ..errors import EdgeclfError
from ..params import Options, check
from ..litert import convert
from ..models.builder import Classifier
from ..models.preprocess import Preprocess
from ..models.deploy import Deployable

QUANTIZE = ("float32", "float16", "dynamic", "int8")


def check_quantize(names: list[str]) -> None:
    """Every --quantize name for .tflite, checked before the first file is trained for or written."""
    for q in names:
        check("--quantize", q, Options(*QUANTIZE))
IO_TYPES = ("uint8", "float32")


def convert_float(model: Classifier, pre: Preprocess, io: str = "uint8") -> bytes:
    """The float32 .tflite bytes of model + preprocessing, NHWC pixels in, probabilities out."""
    dtype = torch.uint8 if io == "uint8" else torch.float32
    return convert(Deployable(model, pre).eval(), torch.zeros(1, pre.size, pre.size, 3, dtype=dtype))


def _recipe(quantize: str):
    from ai_edge_quantizer import qtyping, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if quantize == "dynamic":
        return recipe.dynamic_wi8_afp32()
    if quantize == "int8":
        return recipe.static_wi8_ai8()
    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=AlgorithmName.FLOAT_CASTING)
    return rm.get_quantization_recipe()


def quantize_tflite(float_bytes: bytes, quantize: str, calibration: np.ndarray | None = None,
                    keep_float: Sequence[str] = ()) -> bytes:
    """Quantize float32 .tflite bytes; `calibration` (uint8 or float NHWC images) is needed for int8.

    `keep_float` names the output tensors (float graph's names) of ops left in float.
    """
    if quantize == "float32":
        return float_bytes
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer

    with tempfile.TemporaryDirectory() as tmp, quiet_fds():
        src, dst = Path(tmp) / "f.tflite", Path(tmp) / "q.tflite"
        src.write_bytes(float_bytes)
        qt = quantizer.Quantizer(str(src))
        qt.load_quantization_recipe(keep_float_recipe(_recipe(quantize), keep_float))
        if quantize == "int8":
            if calibration is None or not len(calibration):
                raise EdgeclfError("int8 export needs calibration images; the run's training split provides them")
            sigs = Interpreter(model_path=str(src)).get_signature_list()
            key = next(iter(sigs))
            name = sigs[key]["inputs"][0]
            data = {key: [{name: x[None]} for x in calibration]}
            result = qt.quantize(qt.calibrate(data, num_threads=os.cpu_count() or 1))
        else:
            result = qt.quantize()
        result.export_model(str(dst), overwrite=True)
        return dst.read_bytes()


def _opcode(model: Any, builtin: int) -> int:
    from ai_edge_litert import schema_py_generated as schema

    for i, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == builtin:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = builtin, min(builtin, 127), 2
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def retype_io(model_bytes: bytes, io: str, input_qparams: tuple[float, int] | None = None) -> bytes:
    """Wrap int8 graph inputs/outputs into `io` (uint8: requantize with zero point +128; float32: (de)quantize).

    `input_qparams` (scale, zero point) give the uint8 input its own meaning instead, e.g. raw pixels
    whose real value is (x - m0) / s0; the QUANTIZE op then requantizes into the int8 input's scale.
    """
    from ai_edge_litert import schema_py_generated as schema

    from ..artifacts.metadata import pack_model, unpack_model

    model = unpack_model(model_bytes)
    T = schema.TensorType
    target = T.UINT8 if io == "uint8" else T.FLOAT32
    changed = False
    sg = model.subgraphs[0]

    def twin(idx: int, qparams: tuple[float, int] | None = None) -> int:
        old = sg.tensors[idx]
        new = schema.TensorT()
        new.shape, new.shapeSignature, new.type = old.shape, old.shapeSignature, target
        new.name = (old.name.decode() if isinstance(old.name, bytes) else old.name) + f"_{io}"
        new.buffer = 0  # buffer 0 is the empty sentinel every model has
        if io == "uint8":
            q = schema.QuantizationParametersT()
            if qparams:
                q.scale, q.zeroPoint = [float(qparams[0])], [int(qparams[1])]
            else:
                q.scale = list(old.quantization.scale)
                q.zeroPoint = [int(z) + 128 for z in old.quantization.zeroPoint]
            new.quantization = q
        sg.tensors.append(new)
        return len(sg.tensors) - 1

    def op(code: int, i: int, o: int):
        x = schema.OperatorT()
        x.opcodeIndex, x.inputs, x.outputs = code, [i], [o]
        return x

    quant = _opcode(model, schema.BuiltinOperator.QUANTIZE)
    dequant = _opcode(model, schema.BuiltinOperator.DEQUANTIZE)
    remap: dict[int, int] = {}
    for pos, idx in enumerate(list(sg.inputs)):
        if sg.tensors[idx].type == T.INT8:
            new = twin(idx, input_qparams if io == "uint8" else None)
            sg.operators.insert(0, op(quant, new, idx))
            sg.inputs[pos], remap[idx], changed = new, new, True
        elif sg.tensors[idx].type == T.FLOAT32 and io == "uint8" and input_qparams:
            new = twin(idx, input_qparams)  # one DEQUANTIZE replaces CAST + SUB + MUL
            sg.operators.insert(0, op(dequant, new, idx))
            sg.inputs[pos], remap[idx], changed = new, new, True
    for pos, idx in enumerate(list(sg.outputs)):
        if sg.tensors[idx].type == T.INT8:
            new = twin(idx)
            sg.operators.append(op(quant if io == "uint8" else dequant, idx, new))
            sg.outputs[pos], remap[idx], changed = new, new, True
    io_tensors = set(sg.inputs) | set(sg.outputs)
    for idx, t in enumerate(sg.tensors):
        # The converter names every tensor by its full PyTorch module path (~0.5 KB each): a third of
        # a small model's file. Inside the graph nothing reads them; the inputs and outputs keep theirs.
        if idx not in io_tensors and len(t.name or b"") > 16:
            t.name, changed = f"t{idx}", True
    if not changed:
        return model_bytes
    for sig in model.signatureDefs or []:
        for t in list(sig.inputs or []) + list(sig.outputs or []):
            t.tensorIndex = remap.get(t.tensorIndex, t.tensorIndex)
    return pack_model(model)


def swap_weights(graph: bytes, old: list[np.ndarray], new: list[np.ndarray]) -> bytes | None:
    """`graph` with each constant holding old[i] set to new[i] (same shape); None where any old[i] is not found
    in exactly one constant, or one constant would take two.

    Converting a model costs ~15 s even for a small one (litert-torch traces it); a model that differs
    from a converted one only in weight values need not be converted again.
    """
    from ..artifacts.metadata import pack_model, unpack_model

    model = unpack_model(graph)
    consts: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for t in model.subgraphs[0].tensors:
        data = model.buffers[t.buffer].data if t.buffer else None
        if data is not None and t.type == 0 and len(data) == 4 * int(np.prod(t.shape)):  # 0: FLOAT32
            consts.setdefault(tuple(t.shape), []).append((t.buffer, np.frombuffer(bytes(data), np.float32)))
    taken: set[int] = set()
    pairs = [(o, n) for o, n in zip(old, new) if not np.array_equal(o, n)]
    if not pairs:
        return graph
    for o, n in pairs:
        tol = 1e-6 * float(np.abs(o).max())
        found = {b for b, v in consts.get(o.shape, []) if np.allclose(v, o.ravel(), rtol=1e-4, atol=tol)}
        if len(found) != 1 or found & taken:
            return None
        taken |= found
        model.buffers[found.pop()].data = np.frombuffer(n.astype(np.float32).tobytes(), np.uint8)
    return pack_model(model)


def _settings(m: torch.nn.Module) -> list[tuple[str, Any]]:
    """A module's plain settings (stride, groups, a residual flag...): what its forward reads besides tensors."""
    plain = (bool, int, float, str, tuple, type(None))
    return sorted((k, v) for k, v in vars(m).items() if not k.startswith("_") and k != "training"
                  and isinstance(v, plain))


def graph_key(model: torch.nn.Module, how: tuple[Any, ...]) -> str:
    """Digest of everything a conversion of `model` depends on: `how` it is wrapped and fed, every module's type and
    settings, every tensor's name, dtype, shape and bytes."""
    from .rounding import hash_tensors

    h = hashlib.sha256(repr(how).encode())
    for name, m in model.named_modules():
        h.update(f"{name}:{type(m).__module__}.{type(m).__qualname__}:{_settings(m)!r}".encode())
    hash_tensors(h, model.state_dict().items())
    return h.hexdigest()


# An int8 export is checked and may be exported again (the second rounding, re-calibration, ops kept in float):
# every try quantizes the same float graph, and converting it costs 15-30 s (litert-torch traces the model).
_CONVERTED: dict[str, bytes] = {}
_KEEP_CONVERTED = 2


def _converted(to_graph: Callable[[Classifier], bytes], model: Classifier, how: tuple[Any, ...]) -> bytes:
    """`to_graph(model)`, converted once per process for the same model, weights and wrapping."""
    key = graph_key(model, how)
    if key not in _CONVERTED:
        graph = to_graph(model)
        while len(_CONVERTED) >= _KEEP_CONVERTED:
            _CONVERTED.pop(next(iter(_CONVERTED)))
        _CONVERTED[key] = graph
    return _CONVERTED[key]


def _graphs(to_graph: Callable[[Classifier], bytes], model: Classifier, inputs: np.ndarray | None,
            gptq: bool, equalize: bool, window: bool, how: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """(float graph to quantize, its float reference): the model's own graph, with its ReLU6 channels scaled
    (equalize.py) if `equalize`, and the graph to quantize with GPTQ-rounded weights (rounding.py) if `gptq`;
    either needs `inputs` (the model's NHWC inputs). `how` names the wrapping `to_graph` applies (graph_key)."""
    graph = _converted(to_graph, model, how)
    if not (gptq or equalize) or inputs is None or not len(inputs):
        return graph, graph
    from .rounding import deployed_constants, int8_copies

    x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).permute(0, 3, 1, 2)
    scaled, rounded = int8_copies(model, x, equalize, gptq, window)
    own = deployed_constants(model)
    swapped = swap_weights(graph, own, deployed_constants(rounded))
    reference = swap_weights(graph, own, deployed_constants(scaled))
    # A copy whose weights could not be written into the graph is converted itself, and only that one (~15 s);
    # not kept: two such copies would push the model's own graph, the one every try reuses, out of _CONVERTED.
    return (swapped if swapped is not None else to_graph(rounded),
            reference if reference is not None else to_graph(scaled))


def _folded(model: Classifier, pre: Preprocess, quantize: str, calibration: np.ndarray | None,
            keep_float: Sequence[str] = (), gptq: bool = True, equalize: bool = True,
            window: bool = False) -> tuple[bytes, bytes, bytes, np.ndarray | None]:
    """uint8-input graph whose input tensor's quantization does the normalization (see fold.py).

    The float graph is converted with a float input u = (x - m0) / s0 and quantized; the uint8
    input (scale 1/s0, zero point m0) then feeds it through one QUANTIZE (int8) or DEQUANTIZE op.
    Returns (file bytes, the float graph the quantized one is compared with, the quantized graph before the
    uint8 wrapping, calibration in u).
    """
    from .fold import fold_normalization
    from ..models.deploy import Prenormalized

    if quantize == "int8" and (calibration is None or not len(calibration)):
        raise EdgeclfError("int8 export needs calibration images; the run's training split provides them")
    folded, m0, s0 = fold_normalization(model, pre)
    u = None if calibration is None else (calibration.astype(np.float32) - m0) / s0
    pixels = torch.zeros(1, pre.size, pre.size, 3)
    # Rounded after the fold: the stem's weights are rounded as the graph holds them.
    int8 = quantize == "int8"
    to_quantize, float_bytes = _graphs(lambda m: convert(Prenormalized(m).eval(), pixels), folded, u,
                                       int8 and gptq, int8 and equalize, window, ("prenormalized", pre.size))
    q = quantize_tflite(to_quantize, quantize, u, keep_float)
    return retype_io(q, "uint8", input_qparams=(1.0 / s0, m0)), float_bytes, q, u


def to_tflite(model: Classifier, pre: Preprocess, dest: str | os.PathLike[str], quantize: str = "float32",
              io: str = "uint8", labels: list[str] | None = None, calibration: np.ndarray | None = None,
              name: str = "edgeclf classifier", description: str = "", version: str = "1",
              score_threshold: float | None = None, keep_float: Sequence[str] = (),
              report: str | os.PathLike[str] | None = None, gptq: bool = True, equalize: bool = True,
              window: bool = False) -> Path:
    """Convert, quantize, add metadata (with labels) and write `dest` atomically.

    int8 only: `keep_float` leaves the ops producing those tensors in float; `report` is a CSV
    path for the error each op adds against the float graph quantized (int8_layers.py); `gptq` rounds the
    weights by their effect on each layer's output (rounding.py) instead of to the nearest step;
    `equalize` scales ReLU6 channels to fill their int8 range (equalize.py).
    """
    if quantize not in QUANTIZE:
        raise EdgeclfError(f"--quantize {quantize} is not supported for .tflite; use one of {', '.join(QUANTIZE)}")
    if io not in IO_TYPES:
        raise EdgeclfError(f"--io {io} is not supported; use one of {', '.join(IO_TYPES)}")
    if quantize != "int8":
        keep_float, report = (), None
    if io == "uint8":
        data, float_bytes, q, calib = _folded(model, pre, quantize, calibration, keep_float, gptq, equalize, window)
    else:
        calib = calibration
        normalized = None if calibration is None else (
            (calibration.astype(np.float32) - np.float32(pre.mean)) / np.float32(pre.std))
        int8 = quantize == "int8"
        to_quantize, float_bytes = _graphs(lambda m: convert_float(m, pre, io), model, normalized,
                                           int8 and gptq, int8 and equalize, window,
                                           ("deployable", io, sorted(pre.to_dict().items())))
        q = data = quantize_tflite(to_quantize, quantize, calibration, keep_float)
        if quantize == "int8":
            data = retype_io(data, io)
    if report is not None and calib is not None:
        write_report(report, layer_errors(float_bytes, q, calib[:SAMPLES]))
    if labels:
        from ..artifacts.metadata import attach_metadata, build_metadata

        custom = {"preprocess": pre.to_dict(), "classes": labels, "quantize": quantize, "io": io,
                  "score_threshold": score_threshold}
        data = attach_metadata(data, build_metadata(name, description, version, labels, pre, io, custom=custom,
                                                    score_threshold=score_threshold), labels)
    write_bytes(dest, data)
    return Path(dest)
