"""Metrics and evaluators: measuring a model (PyTorch or ONNX) on data, goals, and the evaluation cache."""
