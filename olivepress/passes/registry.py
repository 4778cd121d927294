"""The one pass registry: built-ins, installed plugins (entry points), and 'package.module:Class' names."""

import importlib
import importlib.metadata
from collections.abc import Iterable, Iterator

from olivepress.config.base import did_you_mean
from olivepress.errors import OlivepressError
from olivepress.log import logger
from olivepress.passes.base import Pass

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


def import_pass(reference: str) -> type[Pass]:
    """Import 'package.module:Class' and check that it is a Pass."""
    module_name, _, class_name = reference.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise OlivepressError(f"cannot import pass '{reference}': {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise OlivepressError(f"'{reference}' is not a subclass of olivepress.passes.base.Pass")
    return cls


class PassRegistry:
    """Pass classes by name (case-insensitive)."""

    def __init__(self, passes: Iterable[type[Pass]] = ()):
        self._by_name: dict[str, type[Pass]] = {}
        for cls in passes:
            self.add(cls)

    @classmethod
    def builtin(cls) -> "PassRegistry":
        return cls(import_pass(ref) for ref in BUILTIN_PASSES)

    @classmethod
    def default(cls) -> "PassRegistry":
        """Built-ins plus every installed plugin; a plugin that fails to load is skipped with a warning."""
        registry = cls.builtin()
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                registry.add(import_pass(entry_point.value))
            except OlivepressError as error:
                logger.warning("skipping pass plugin '%s': %s", entry_point.name, error)
        return registry

    def add(self, cls: type[Pass]) -> None:
        existing = self._by_name.get(cls.name.lower())
        if existing is not None and existing is not cls:
            raise OlivepressError(
                f"pass name '{cls.name}' is taken by both {existing.__module__}.{existing.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}"
            )
        self._by_name[cls.name.lower()] = cls

    def get(self, type_name: str) -> type[Pass]:
        if ":" in type_name:
            return import_pass(type_name)
        cls = self._by_name.get(type_name.lower())
        if cls is None:
            names = [p.name for p in self]
            raise OlivepressError(f"unknown pass type '{type_name}'{did_you_mean(type_name, names)}")
        return cls

    def __iter__(self) -> Iterator[type[Pass]]:
        return iter(sorted(self._by_name.values(), key=lambda cls: cls.name))
