"""Stage select: declarative selections, the safe expression language, ONNX models, efficiency maps."""
