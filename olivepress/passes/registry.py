"""The pass registry: built-ins, installed plugins (entry points), and 'package.module:Class' names."""

from collections.abc import Iterator

from olivepress.passes.base import Pass
from olivepress.plugins import Registry, subclass_of

ENTRY_POINT_GROUP = "olivepress.passes"

BUILTIN_PASSES = (
    "olivepress.passes.onnx.model_builder:ModelBuilder",
    "olivepress.passes.onnx.conversion:OnnxConversion",
    "olivepress.passes.onnx.transformers_optimization:OrtTransformersOptimization",
    "olivepress.passes.onnx.quantization:OnnxDynamicQuantization",
    "olivepress.passes.onnx.quantization:OnnxMatMulNBits",
    "olivepress.passes.onnx.float16:OnnxFloatToFloat16",
    "olivepress.passes.onnx.extract_adapters:ExtractAdapters",
    "olivepress.passes.pytorch.lora:LoRA",
    "olivepress.passes.pytorch.lora:QLoRA",
    "olivepress.passes.pytorch.lora:DoRA",
    "olivepress.passes.pytorch.merge_adapter:MergeAdapterWeights",
    "olivepress.passes.pytorch.quantize:AWQ",
    "olivepress.passes.pytorch.quantize:GPTQ",
    "olivepress.passes.pytorch.quantize:RTN",
)


def _declared_name(cls: type[Pass]) -> str:
    return cls.name


def import_pass(reference: str) -> type[Pass]:
    """Import 'package.module:Class' and check that it is a Pass."""
    return PassRegistry().load(reference)


class PassRegistry(Registry[type[Pass]]):
    """Pass classes by their declared name (case-insensitive)."""

    def __init__(self) -> None:
        super().__init__("pass type", ENTRY_POINT_GROUP, subclass_of(Pass), name_of=_declared_name)

    @classmethod
    def builtin(cls) -> "PassRegistry":
        registry = cls()
        registry.register_all((reference.partition(":")[2], reference) for reference in BUILTIN_PASSES)
        return registry

    @classmethod
    def default(cls) -> "PassRegistry":
        """Built-ins plus every installed plugin; a plugin that fails to load is skipped with a warning."""
        registry = cls.builtin()
        registry.with_entry_points()
        return registry

    def __iter__(self) -> Iterator[type[Pass]]:
        return iter(sorted((item for _, item in self.items()), key=lambda cls: cls.name))
