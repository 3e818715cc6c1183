"""Export a trained run to the files that ship in an app: .tflite (LiteRT) and .onnx."""

from .._callable import make_callable

make_callable(__name__, "edgeclf.export.exporter", "export")
