"""Export a trained run to the files that ship in an app: .tflite (LiteRT) and .onnx."""
