"""The checkpoint formats olivepress writes (torch-free, so that pass configs can check against them)."""

# quantization_config.quant_method -> the bit widths its layout holds and the GenAI builder reads
FORMAT_BITS = {"awq": (4,), "gptq": (4, 8)}
FORMATS = tuple(FORMAT_BITS)

# the format each algorithm writes; RTN needs none of its own: gptq holds it exactly
CHECKPOINT_FORMATS = {"rtn": "gptq", "awq": "awq", "gptq": "gptq"}
