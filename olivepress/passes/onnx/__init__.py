"""Passes that produce or transform ONNX models."""
