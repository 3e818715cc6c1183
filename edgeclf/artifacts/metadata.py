"""TFLite model metadata (the schema MediaPipe Tasks and the TFLite Support library read).

Written with flatbuffers from the schema mediapipe ships, since mediapipe's own writer is broken
in 1.2.x. The metadata table goes into the model's `metadata` list as "TFLITE_METADATA"; its
associated files (labels.txt) are appended to the model as a ZIP archive, as the format requires.
"""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import flatbuffers
import numpy as np

from ..errors import EdgeclfError
from ..models.preprocess import Preprocess

METADATA_NAME = "TFLITE_METADATA"
LABELS_FILE = "labels.txt"
CUSTOM_NAME = "edgeclf"


@lru_cache(maxsize=1)
def metadata_schema() -> ModuleType:
    """mediapipe's generated metadata schema, loaded by file so mediapipe's runtime is not imported."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeclfError("writing .tflite metadata needs the mediapipe package; pip install mediapipe")
    path = Path(list(spec.submodule_search_locations)[0]) / "tasks/metadata/metadata_schema_py_generated.py"
    mspec = importlib.util.spec_from_file_location("edgeclf_tflite_metadata_schema", path)
    module = importlib.util.module_from_spec(mspec)  # type: ignore[arg-type]
    mspec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def fit_description(pre: Preprocess) -> str:
    """How a client must fit an image to this model's input, in one sentence (resize mode included)."""
    if pre.resize == "squash":
        return (f"resize=squash: the whole image resized to {pre.size}x{pre.size} (aspect ratio not kept), "
                "as MediaPipe ImageClassifier does by default; (x - mean) / std is applied inside the model.")
    return (f"resize=crop: the centre square of side {pre.crop_pct:g} x the shorter side, resized to "
            f"{pre.size}x{pre.size}; with MediaPipe pass ImageProcessingOptions(region_of_interest=that square) "
            "or accuracy drops; (x - mean) / std is applied inside the model.")


def build_metadata(name: str, description: str, version: str, labels: list[str], pre: Preprocess,
                   input_dtype: str, author: str = "edgeclf", custom: dict | None = None,
                   score_threshold: float | None = None) -> bytes:
    """The ModelMetadata flatbuffer (file identifier M001) of an image classifier.

    `custom` (JSON-able) is stored as the subgraph's "edgeclf" custom metadata: the exact
    preprocessing, so the file alone is enough to run it the way it was trained. A
    `score_threshold` becomes the output's ScoreThresholdingOptions, which MediaPipe's
    ImageClassifier applies unless the app sets its own: below it, no category is returned.
    """
    m = metadata_schema()
    inp = m.TensorMetadataT()
    inp.name = "image"
    inp.description = f"RGB image, {pre.size}x{pre.size}, {input_dtype} pixels 0..255; {fit_description(pre)}"
    inp.content = m.ContentT()
    inp.content.contentProperties = m.ImagePropertiesT()
    inp.content.contentProperties.colorSpace = m.ColorSpaceType.RGB
    inp.content.contentPropertiesType = m.ContentProperties.ImageProperties
    # The model normalizes internally, so what a client must apply is the identity.
    norm = m.ProcessUnitT()
    norm.optionsType = m.ProcessUnitOptions.NormalizationOptions
    norm.options = m.NormalizationOptionsT()
    norm.options.mean = [0.0, 0.0, 0.0]
    norm.options.std = [1.0, 1.0, 1.0]
    inp.processUnits = [norm]
    inp.stats = m.StatsT()
    inp.stats.max, inp.stats.min = [255.0], [0.0]
    out = m.TensorMetadataT()
    out.name = "probability"
    out.description = f"Probabilities of the {len(labels)} labels."
    out.content = m.ContentT()
    out.content.contentProperties = m.FeaturePropertiesT()
    out.content.contentPropertiesType = m.ContentProperties.FeatureProperties
    out.stats = m.StatsT()
    out.stats.max, out.stats.min = [1.0], [0.0]
    labels_file = m.AssociatedFileT()
    labels_file.name = LABELS_FILE
    labels_file.description = "Labels for the categories the model classifies, one per line, in output order."
    labels_file.type = m.AssociatedFileType.TENSOR_AXIS_LABELS
    out.associatedFiles = [labels_file]
    if score_threshold:
        unit = m.ProcessUnitT()
        unit.optionsType = m.ProcessUnitOptions.ScoreThresholdingOptions
        unit.options = m.ScoreThresholdingOptionsT()
        unit.options.globalScoreThreshold = float(score_threshold)
        out.processUnits = [unit]
    sub = m.SubGraphMetadataT()
    sub.inputTensorMetadata, sub.outputTensorMetadata = [inp], [out]
    if custom is not None:
        entry = m.CustomMetadataT()
        entry.name = CUSTOM_NAME
        entry.data = list(json.dumps(custom, sort_keys=True).encode())
        sub.customMetadata = [entry]
    model = m.ModelMetadataT()
    model.name, model.description, model.version, model.author = name, description, version, author
    model.subgraphMetadata = [sub]
    model.minParserVersion = "1.0.0"
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"M001")
    return bytes(b.Output())


def unpack_model(model_bytes: bytes) -> Any:
    """The .tflite as schema.ModelT with every buffer inline, ready to edit and repack."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the bytes are not a model
        raise EdgeclfError(f"not a valid .tflite flatbuffer ({exc})") from None
    # Writers such as ai-edge-quantizer store weights after the flatbuffer and point at them by
    # offset; a repacked flatbuffer moves everything, so those bytes are inlined first.
    for b in model.buffers or []:
        if (b.offset or 0) > 1:
            b.data = np.frombuffer(model_bytes, np.uint8, count=int(b.size), offset=int(b.offset))
            b.offset, b.size = 0, 0
    return model


def pack_model(model: Any) -> bytes:
    """Serialize a schema.ModelT back to .tflite bytes."""
    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def attach_metadata(model_bytes: bytes, metadata: bytes, labels: list[str]) -> bytes:
    """The model with `metadata` added as TFLITE_METADATA (replacing any) and labels.txt zip-appended."""
    from ai_edge_litert import schema_py_generated as schema

    model = unpack_model(model_bytes)
    buf = schema.BufferT()
    buf.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers = list(model.buffers or []) + [buf]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [md for md in (model.metadata or []) if _name(md) != METADATA_NAME] + [entry]
    out = io.BytesIO(pack_model(model))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:
        # A fixed date, not now: the same run exported twice gives the same bytes (checksums, caches, diffs).
        entry = zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0))
        entry.external_attr = 0o644 << 16  # rw-r--r-- where the file is unzipped, as writestr(name) would give
        z.writestr(entry, "\n".join(labels) + "\n")
    return out.getvalue()


def _name(md: Any) -> str:
    n = md.name
    return n.decode() if isinstance(n, bytes) else str(n)


def read_metadata(model_bytes: bytes) -> tuple[dict, dict[str, bytes]]:
    """(ModelMetadata as a dict of its main fields, {associated file name: bytes}) of a .tflite."""
    from ai_edge_litert import schema_py_generated as schema

    m = metadata_schema()
    model = schema.Model.GetRootAs(model_bytes, 0)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name().decode() == METADATA_NAME:
            data = model.Buffers(md.Buffer()).DataAsNumpy().tobytes()
            meta = m.ModelMetadataT.InitFromPackedBuf(bytearray(data), 0)
            break
    else:
        raise EdgeclfError("this .tflite has no TFLITE_METADATA; re-export it with edgeclf export")
    files: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as z:
            files = {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile:
        pass
    sub = meta.subgraphMetadata[0]
    dec = lambda s: s.decode() if isinstance(s, bytes) else s  # noqa: E731
    info = {"name": dec(meta.name), "description": dec(meta.description), "version": dec(meta.version),
            "author": dec(meta.author), "min_parser_version": dec(meta.minParserVersion),
            "input": dec(sub.inputTensorMetadata[0].name), "output": dec(sub.outputTensorMetadata[0].name),
            "normalization": {"mean": list(sub.inputTensorMetadata[0].processUnits[0].options.mean),
                              "std": list(sub.inputTensorMetadata[0].processUnits[0].options.std)},
            "associated_files": [dec(f.name) for f in sub.outputTensorMetadata[0].associatedFiles or []]}
    for c in sub.customMetadata or []:
        if dec(c.name) == CUSTOM_NAME:
            info["custom"] = json.loads(bytes(bytearray(c.data)).decode())
    return info, files
