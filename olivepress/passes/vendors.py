"""Olive's vendor passes: the SDK each needs and the plugin package that would provide it. olivepress ships none of
them; a document naming one is refused with this table's line, unless an installed plugin registers the name."""

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class VendorPasses:
    patterns: tuple[str, ...]  # Olive's pass type names, shell-style
    sdk: str  # the vendor SDK and its pip packages
    plugin: str  # the olivepress plugin package that would register them

    def refusal(self, pass_type: str) -> str:
        return (f"pass type '{pass_type}' needs {self.sdk}, which olivepress does not ship; a plugin package such as "
                f"'{self.plugin}' would provide it through the 'olivepress.passes' entry point "
                "(see docs/writing-passes.md)")


VENDOR_PASSES = (
    VendorPasses(("OpenVINO*",), "Intel OpenVINO (pip: openvino, nncf, optimum-intel)", "olivepress-openvino"),
    VendorPasses(("Quark*",), "AMD Quark (pip: amd-quark)", "olivepress-quark"),
    VendorPasses(("Vitis*", "Ryzen*"), "the AMD Ryzen AI / Vitis AI SDK (onnxruntime-vitisai)", "olivepress-ryzenai"),
    VendorPasses(("QNN*", "Qairt*", "SNPE*"), "the Qualcomm AI Engine Direct (QNN / QAIRT) SDK", "olivepress-qnn"),
    VendorPasses(("NVModelOpt*",), "NVIDIA TensorRT Model Optimizer (pip: nvidia-modelopt)", "olivepress-modelopt"),
    VendorPasses(("Inc*",), "Intel Neural Compressor (pip: neural-compressor)", "olivepress-inc"),
    VendorPasses(("EPContextBinaryGenerator",),
                 "an execution provider that compiles EPContext binaries (QNN, OpenVINO or VitisAI onnxruntime builds)",
                 "olivepress-epcontext"),
)


def vendor_of(pass_type: str) -> VendorPasses | None:
    """The vendor entry whose patterns match `pass_type` (case-insensitively, as pass types are looked up)."""
    lowered = pass_type.lower()
    return next((vendor for vendor in VENDOR_PASSES
                 if any(fnmatchcase(lowered, pattern.lower()) for pattern in vendor.patterns)), None)
