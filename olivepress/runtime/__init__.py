"""Running exported models with ONNX Runtime GenAI."""
