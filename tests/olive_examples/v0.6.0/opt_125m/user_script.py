"""A stand-in for Olive's examples/opt_125m/user_script.py at v0.6.0, which imports olive (olive.constants) and
onnxruntime's transformers helpers and sizes its past key/values for OPT-125m: the same functions, by the same names
and signatures, for a tiny model without past key/values. Not Olive's file (see ../../README.md)."""

import torch

BATCH, SEQUENCE = 2, 8


def dummy_inputs(model):
    """Called with the model handle, as Olive called it: the export's example inputs, by input name."""
    return {"input_ids": torch.ones((BATCH, SEQUENCE), dtype=torch.int32),
            "attention_mask": torch.ones((BATCH, SEQUENCE), dtype=torch.int32)}


def get_io_config(model):
    """Called with the model handle: int32 token ids, as the original's (the default would be int64)."""
    return {"input_names": ["input_ids", "attention_mask"], "input_types": ["int32", "int32"],
            "output_names": ["logits"],
            "dynamic_axes": {"input_ids": {0: "batch_size", 1: "sequence_length"},
                             "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
                             "logits": {0: "batch_size", 1: "sequence_length"}}}


def create_dataloader(data_dir, batch_size, *args, **kwargs):
    """Olive's call: func(data_dir, batch_size, model_framework=...): batches of (inputs, label)."""
    inputs = {name: value.numpy() for name, value in dummy_inputs(None).items()}
    return [(inputs, torch.zeros(batch_size))]
