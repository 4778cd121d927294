"""The pass registry: built-ins, installed plugins (entry points), and 'package.module:Class' names."""

from collections.abc import Callable, Iterator
from typing import TypeVar

from olivepress.errors import OlivepressError
from olivepress.passes.base import Pass
from olivepress.passes.vendors import vendor_of
from olivepress.plugins import Registry, subclass_of

P = TypeVar("P", bound=type[Pass])

ENTRY_POINT_GROUP = "olivepress.passes"

BUILTIN_PASSES = (
    "olivepress.passes.onnx.model_builder:ModelBuilder",
    "olivepress.passes.onnx.conversion:OnnxConversion",
    "olivepress.passes.onnx.transformers_optimization:OrtTransformersOptimization",
    "olivepress.passes.onnx.quantization:OnnxDynamicQuantization",
    "olivepress.passes.onnx.quantization:OnnxMatMulNBits",
    "olivepress.passes.onnx.float16:OnnxFloatToFloat16",
    "olivepress.passes.onnx.extract_adapters:ExtractAdapters",
    "olivepress.passes.onnx.static_quantization:OnnxStaticQuantization",
    "olivepress.passes.onnx.static_quantization:OnnxQuantization",
    "olivepress.passes.onnx.graph_surgeries:GraphSurgeries",
    "olivepress.passes.onnx.weight_only:OnnxBlockWiseRtnQuantization",
    "olivepress.passes.onnx.weight_only:OnnxHqqQuantization",
    "olivepress.passes.onnx.weight_only:OnnxKQuantQuantization",
    "olivepress.passes.onnx.mnb_to_qdq:MatMulNBitsToQDQ",
    "olivepress.passes.onnx.metadata:AddOliveMetadata",
    "olivepress.passes.onnx.fixed_shape:DynamicToFixedShape",
    "olivepress.passes.onnx.peephole:OnnxPeepholeOptimizer",
    "olivepress.passes.onnx.session_tuning:OrtSessionParamsTuning",
    "olivepress.passes.onnx.split:SplitModel",
    "olivepress.passes.onnx.compose:ComposeOnnxModels",
    "olivepress.passes.onnx.static_llm:StaticLLM",
    "olivepress.passes.pytorch.lora:LoRA",
    "olivepress.passes.pytorch.lora:QLoRA",
    "olivepress.passes.pytorch.lora:DoRA",
    "olivepress.passes.pytorch.merge_adapter:MergeAdapterWeights",
    "olivepress.passes.pytorch.quantize:AWQ",
    "olivepress.passes.pytorch.quantize:GPTQ",
    "olivepress.passes.pytorch.quantize:RTN",
    "olivepress.passes.pytorch.quarot:QuaRot",
    "olivepress.passes.pytorch.selective_mixed_precision:SelectiveMixedPrecision",
    "olivepress.passes.pytorch.capture_split_info:CaptureSplitInfo",
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
        """Built-ins, every installed plugin (one that fails to load is skipped with a warning) and the passes
        registered in this process."""
        registry = cls.installed()
        for pass_class in _IN_PROCESS.values():
            registry.add(pass_class.name, pass_class)
        return registry

    @classmethod
    def installed(cls) -> "PassRegistry":
        """Built-ins plus every installed plugin."""
        registry = cls.builtin()
        registry.with_entry_points()
        return registry

    def get(self, name: str) -> type[Pass]:
        """The pass registered as `name`; an Olive vendor pass no plugin provides is refused naming its SDK."""
        try:
            return super().get(name)
        except OlivepressError:
            vendor = vendor_of(name)
            if vendor is None:
                raise
            raise OlivepressError(vendor.refusal(name)) from None

    def __iter__(self) -> Iterator[type[Pass]]:
        return iter(sorted((item for _, item in self.items()), key=lambda cls: cls.name))

    def __reduce__(self) -> tuple[Callable[[tuple[str, ...]], "PassRegistry"], tuple[tuple[str, ...]]]:
        """Sent to another process (a search worker) as references that process imports. Passes registered in
        this process are left out: another process cannot import a notebook's or a test module's classes, and
        they run on the local system only."""
        in_process = set(_IN_PROCESS.values())
        return _registry_of, (tuple(f"{cls.__module__}:{cls.__qualname__}" for cls in self if cls not in in_process),)


def _registry_of(references: tuple[str, ...]) -> PassRegistry:
    registry = PassRegistry()
    for reference in references:
        pass_class = registry.load(reference)
        registry.add(pass_class.name, pass_class)
    return registry


_IN_PROCESS: dict[str, type[Pass]] = {}  # by register_pass, by lower-cased name


def register_pass(pass_class: P) -> P:
    """Make a pass class defined in this process (a notebook, a test module) usable by its `name` in documents, as a
    plugin's entry point does; returns the class, so that it serves as a decorator. Registering the name again
    replaces the earlier class (a notebook cell run twice); a built-in's or a plugin's name is refused."""
    try:
        subclass_of(Pass)(pass_class)
    except TypeError as error:
        raise OlivepressError(f"{pass_class!r} is not a pass type: {error}") from None
    PassRegistry.installed().add(pass_class.name, pass_class)  # raises when a built-in or a plugin has the name
    _IN_PROCESS[pass_class.name.lower()] = pass_class
    return pass_class
