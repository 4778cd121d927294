"""Passes that run on PyTorch / Hugging Face models."""
