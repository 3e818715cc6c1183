"""Read the weights of a MobileNet / EfficientNet-Lite out of a `.tflite` file into edgeclf's builder.

Google published MobileNet V1's ImageNet weights only as TensorFlow checkpoints and TFLite files;
no PyPI package ships them. A `.tflite` graph is a list of operators over constant tensors, so the
convolutions of the file, taken in order, are matched one for one against the convolutions of the
builder's module, checked (kind, kernel, channels, stride, fused activation), dequantized and
copied. The file's BatchNorm is already folded into conv weight + bias; we load the bias into an
identity BatchNorm, so fine-tuning still has a BatchNorm to adapt.

The flatbuffer is parsed with the schema module LiteRT ships (`ai_edge_litert.schema_py_generated`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ModelError

if TYPE_CHECKING:
    from .builder import Backbone

_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "UINT8": np.uint8, "INT8": np.int8, "INT32": np.int32,
           "INT16": np.int16, "INT64": np.int64}
_ACTS = {0: "none", 1: "relu", 3: "relu6"}  # TFLite ActivationFunctionType → our activation names
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_POOLS = ("AVERAGE_POOL_2D", "MEAN")


@dataclass
class FileConv:
    """One convolution (or fully connected layer) of the file, dequantized to float32, PyTorch layout."""

    index: int  # operator index in the graph, for error messages
    op: str
    weight: np.ndarray  # OIHW (conv), [C, 1, kH, kW] (depthwise), [out, in] (fully connected)
    bias: np.ndarray | None
    stride: int
    padding: str  # "same" (TF SAME), "sym" (explicit symmetric PAD + VALID), "valid"
    act: str

    def describe(self) -> str:
        """'DEPTHWISE_CONV_2D #3 (3x3x32, stride 2, relu6)' — how error messages name a layer."""
        o, i, *k = self.weight.shape
        if not k:
            shape = f"{i}->{o}"
        elif self.op == "CONV_2D":
            shape = f"{k[0]}x{k[1]}, {i}->{o}"
        else:
            shape = f"{k[0]}x{k[1]}x{o}"
        return f"{self.op} #{self.index} ({shape}, stride {self.stride}, {self.act})"


@dataclass
class TfliteGraph:
    """What edgeclf takes from a `.tflite` file: its convolutions before and after the global pool, its input."""

    path: Path
    body: list[FileConv]
    classifier: list[FileConv]
    input_shape: tuple[int, ...]
    input_type: str
    mean: float | None  # input normalization from the input quantization (None: float input or in-graph)
    std: float | None
    pooled: bool  # a global pool separates features from classifier


def _enum_names(enum: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def read_graph(path: str | os.PathLike[str]) -> TfliteGraph:
    """Parse a `.tflite` file into its convolutions (dequantized) and input normalization; one-line errors."""
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite file (no TFL3 identifier); pass a .tflite model or a .pth checkpoint")
    try:
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
        graph = model.subgraphs[0]
        tensors, buffers = graph.tensors, model.buffers
    except Exception:  # noqa: BLE001 - the flatbuffer reader raises anything on damaged input
        raise ModelError(f"{path} is truncated or damaged (its TFLite flatbuffer cannot be read); "
                         "download it again") from None
    ops = _enum_names(schema.BuiltinOperator)
    types = _enum_names(schema.TensorType)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producer: dict[int, Any] = {o: op for op in graph.operators for o in op.outputs}

    def opname(op: Any) -> str:
        return ops.get(codes[op.opcodeIndex], "CUSTOM")

    def const(t_index: int) -> np.ndarray:
        """A constant tensor as float32, following DEQUANTIZE ops (float16 and weight-only int8 files)."""
        op = producer.get(t_index)
        if op is not None and opname(op) == "DEQUANTIZE":
            return const(op.inputs[0])
        t = tensors[t_index]
        data = buffers[t.buffer].data if t.buffer < len(buffers) else None
        if data is None or op is not None:
            raise ModelError(f"{path}: weight tensor {t.name.decode(errors='replace')!r} is not a constant")
        tname = types.get(t.type, str(t.type))
        if tname not in _DTYPES:
            raise ModelError(f"{path}: weight tensor {t.name.decode(errors='replace')!r} has unsupported type {tname}")
        arr = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=_DTYPES[tname])
        try:
            arr = arr.reshape([int(d) for d in t.shape])
        except ValueError:
            raise ModelError(f"{path} is truncated or damaged (tensor {t.name.decode(errors='replace')!r} holds "
                             f"{arr.size} values for shape {list(t.shape)})") from None
        return _dequantize(arr, t.quantization)

    def padding_of(op: Any, options: Any) -> str:
        if getattr(options, "padding", 1) == schema.Padding.SAME:
            return "same"
        src = producer.get(op.inputs[0])
        if src is not None and opname(src) in ("PAD", "PADV2"):
            pads = const(src.inputs[1]).astype(int)
            if pads.ndim != 2 or (pads[:, 0] > pads[:, 1]).any():
                return "asym"
            # TF SAME puts the odd pixel after (bottom/right): Keras' ZeroPadding2D + VALID is that too.
            return "sym" if (pads[:, 0] == pads[:, 1]).all() else "same"
        return "valid"

    body: list[FileConv] = []
    classifier: list[FileConv] = []
    pooled = False
    for i, op in enumerate(graph.operators):
        name = opname(op)
        if name in _POOLS:
            pooled = True
        if name not in _CONVS:
            continue
        opts = op.builtinOptions
        w = const(op.inputs[1])
        b = const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if name == "CONV_2D":
            w = w.transpose(0, 3, 1, 2)  # OHWI → OIHW
        elif name == "DEPTHWISE_CONV_2D":
            w = w.transpose(3, 0, 1, 2)  # 1HW(C·m) → (C·m)1HW
        stride = int(getattr(opts, "strideH", 1) or 1)
        act = _ACTS.get(getattr(opts, "fusedActivationFunction", 0), f"activation {opts.fusedActivationFunction}")
        conv = FileConv(i, name, np.ascontiguousarray(w, dtype=np.float32),
                        None if b is None else b.astype(np.float32), stride,
                        padding_of(op, opts) if name != "FULLY_CONNECTED" else "valid", act)
        (classifier if pooled else body).append(conv)
    if not body:
        raise ModelError(f"{path} has no convolutions; it is not an image classifier backbone")
    inp = tensors[graph.inputs[0]]
    itype = types.get(inp.type, str(inp.type))
    mean = std = None
    q = inp.quantization
    src = graph.operators[body[0].index].inputs[0]
    while producer.get(src) is not None and opname(producer[src]) in ("PAD", "PADV2", "DEQUANTIZE", "QUANTIZE"):
        src = producer[src].inputs[0]
    # Only when the pixels reach the first convolution through nothing but padding and (de)quantization
    # is the input quantization the normalization (Google's files; edgeclf's uint8 exports, which fold it
    # into the stem). A float-input graph normalizes in ops of its own or outside the file.
    direct = src == graph.inputs[0]
    if direct and itype in ("UINT8", "INT8") and q is not None and q.scale is not None and len(q.scale):
        # real = (q - zero_point) * scale, and a uint8 pixel p is fed as q = p (uint8) or p - 128 (int8).
        zp = float(q.zeroPoint[0]) + (128.0 if itype == "INT8" else 0.0)
        mean, std = zp, 1.0 / float(q.scale[0])
    return TfliteGraph(path, body, classifier, tuple(int(d) for d in inp.shape), itype, mean, std, pooled)


def _dequantize(arr: np.ndarray, q: Any) -> np.ndarray:
    if arr.dtype in (np.float32, np.float16) or q is None or q.scale is None or not len(q.scale):
        return arr.astype(np.float32)
    scale = np.asarray(q.scale, dtype=np.float64)
    zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], dtype=np.float64)
    if scale.size > 1:  # per-channel: broadcast along the quantized dimension
        shape = [1] * arr.ndim
        shape[q.quantizedDimension] = scale.size
        scale = scale.reshape(shape)
        if zp.size > 1:
            zp = zp.reshape(shape)
    return ((arr.astype(np.float64) - zp) * scale).astype(np.float32)


def _our_convs(bb: "Backbone") -> list[tuple[str, torch.nn.Module]]:
    """The builder's convolutions in graph order, with the ConvBnAct (or SE) that owns each."""
    out: list[tuple[str, torch.nn.Module]] = [("stem", bb.stem)]
    for i, blk in enumerate(bb.blocks):
        if blk.se is not None:
            raise ModelError("importing squeeze-excite blocks (MobileNetV3) from .tflite is not supported; "
                             "supported: MobileNet V1, V2 and EfficientNet-Lite")
        for part in ("expand", "dw", "project"):
            m = getattr(blk, part)
            if m is not None:
                out.append((f"block {i} {part}", m))
    if isinstance(bb.head, torch.nn.Sequential):
        out.append(("head conv", bb.head))
    return out


def match(graph: TfliteGraph, backbone: "Backbone", model_name: str) -> tuple[dict[str, torch.Tensor], str]:
    """Map the file's convolutions onto `backbone`: (its state dict, the padding the file was trained with).

    Raises a one-line ModelError naming the first layer that does not match.
    """
    if not graph.pooled:
        raise ModelError(f"{graph.path.name} has no global average pool: it is not an image classifier backbone "
                         "(a detection or segmentation model?)")
    ours = _our_convs(backbone)
    first = graph.body[0].weight.shape[0]
    width_hint = ""
    if first != ours[0][1].conv.out_channels and len(graph.body) == len(ours):
        width_hint = (f"; its stem has {first} channels where {model_name} has {ours[0][1].conv.out_channels}: "
                      "the file is another width multiplier")
    if len(graph.body) != len(ours):
        raise ModelError(f"{graph.path.name} does not match {model_name}: it has {len(graph.body)} convolutions "
                         f"before the pool, {model_name} has {len(ours)}{width_hint}")
    state: dict[str, torch.Tensor] = {}
    paddings: set[str] = set()
    prefix = {id(m): n for n, m in backbone.named_modules()}
    for k, ((where, mod), fc) in enumerate(zip(ours, graph.body)):
        conv, act = mod.conv, type(mod.act).__name__.lower()
        want = tuple(conv.weight.shape)
        expected_act = {"relu6": "relu6", "relu": "relu", "identity": "none"}.get(act, act)
        problem = None
        if fc.op == "FULLY_CONNECTED":
            problem = "a fully connected layer"
        elif (fc.op == "DEPTHWISE_CONV_2D") != (conv.groups > 1 and conv.groups == conv.in_channels):
            problem = "a depthwise convolution" if fc.op == "DEPTHWISE_CONV_2D" else "a full convolution"
        elif tuple(fc.weight.shape) != want:
            problem = f"weights of shape {tuple(fc.weight.shape)}, expected {want}"
        elif fc.stride != conv.stride[0]:
            problem = f"stride {fc.stride}, expected {conv.stride[0]}"
        elif fc.act != expected_act:
            problem = f"activation {fc.act}, expected {expected_act}"
        if problem:
            raise ModelError(f"{graph.path.name} does not match {model_name} at layer {k} ({where}): the file has "
                             f"{fc.describe()} — {problem}{width_hint}")
        if conv.kernel_size[0] > 1 and fc.stride > 1:
            paddings.add(fc.padding)
        name = prefix[id(mod)]
        bias = fc.bias if fc.bias is not None else np.zeros(want[0], np.float32)
        state[f"{name}.conv.weight"] = torch.from_numpy(fc.weight.copy())
        # BatchNorm as identity + the file's folded bias: y = (x - 0) / sqrt(var + eps) * 1 + b with var + eps = 1.
        state[f"{name}.bn.weight"] = torch.ones(want[0])
        state[f"{name}.bn.bias"] = torch.from_numpy(bias.copy())
        state[f"{name}.bn.running_mean"] = torch.zeros(want[0])
        state[f"{name}.bn.running_var"] = torch.full((want[0],), 1.0 - mod.bn.eps)
    bad = paddings - {"same", "sym"}
    if bad or len(paddings) > 1:
        raise ModelError(f"{graph.path.name} pads its strided convolutions in a way edgeclf does not build "
                         f"({', '.join(sorted(paddings))})")
    return state, (paddings.pop() if paddings else "same")


def signature(convs: list[Any]) -> tuple[tuple[int, ...], ...]:
    """Weight shapes in order (FileConv or our ConvBnAct modules): what a file must share with an architecture."""
    return tuple(tuple(c.weight.shape) if isinstance(c, FileConv) else tuple(c[1].conv.weight.shape) for c in convs)


def our_signature(backbone: "Backbone") -> tuple[tuple[int, ...], ...]:
    """The weight-shape signature of a built backbone (SE architectures have none)."""
    try:
        return signature(_our_convs(backbone))
    except ModelError:
        return ()


def classifier_state(graph: TfliteGraph, num_features: int, layers: list[FileConv] | None = None
                     ) -> dict[str, torch.Tensor] | None:
    """The file's ImageNet classifier as a Linear state dict, when it is one layer on the pooled features."""
    layers = graph.classifier if layers is None else layers
    if len(layers) != 1:
        return None
    fc = layers[0]
    w = fc.weight.reshape(fc.weight.shape[0], -1)
    if w.shape[1] != num_features:
        return None
    b = fc.bias if fc.bias is not None else np.zeros(w.shape[0], np.float32)
    return {"weight": torch.from_numpy(w.copy()), "bias": torch.from_numpy(b.copy())}
