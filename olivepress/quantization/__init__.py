"""Weight-only quantization in torch (RTN, AWQ, GPTQ) into checkpoints the ONNX Runtime GenAI builder reads.

The modules, in the order data flows through them: `layers` finds the decoder layers and their
linears, `layerwise` calibrates one decoder layer at a time, `rtn` / `awq` / `gptq` turn a float
weight into a `QuantizedWeight`, `packing` lays it out as the awq or gptq checkpoint format,
`qlinear` runs it in torch, and `checkpoint` writes and reads the Hugging Face folder.
"""
