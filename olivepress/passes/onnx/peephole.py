"""OnnxPeepholeOptimizer: onnxscript's optimizer (constant folding, dead code, redundant ops) plus Olive's fusion of a
Reshape whose result is only flattened by the next Reshape."""

import importlib.util

import numpy as np

from olivepress.errors import OlivepressError
from olivepress.models.handles import OnnxModel
from olivepress.passes.base import Pass, PassContext
from olivepress.passes.onnx.model_files import ExternalDataOptions, copy_side_files, load_onnx, save_onnx
from olivepress.passes.onnx.surgeons import GraphIndex


class OnnxPeepholeOptimizerConfig(ExternalDataOptions):
    pass


class OnnxPeepholeOptimizer(Pass[OnnxModel, OnnxPeepholeOptimizerConfig]):
    name = "OnnxPeepholeOptimizer"
    description = "Fold constants, drop dead and redundant nodes (onnxscript's optimizer) and fuse Reshape chains."
    version = "1"
    accepts = ("onnx",)
    produces = "onnx"
    Config = OnnxPeepholeOptimizerConfig

    def run(self, model: OnnxModel, config: OnnxPeepholeOptimizerConfig, context: PassContext) -> OnnxModel:
        if importlib.util.find_spec("onnxscript") is None:
            raise OlivepressError("OnnxPeepholeOptimizer needs the onnxscript package, which is not installed: "
                                  "pip install 'olivepress[dynamo]'")
        import onnxscript

        proto = load_onnx(model)
        nodes_before = len(proto.graph.node)
        optimized = onnxscript.optimizer.optimize(proto)
        fused = fuse_flattening_reshapes(optimized)
        context.metrics.update({"nodes_before": nodes_before, "nodes_after": len(optimized.graph.node),
                                "fused_reshapes": fused})
        save_onnx(optimized, context.output_dir, model.onnx_file_name, config)
        copy_side_files(model, context.output_dir)
        return OnnxModel(path=context.output_dir, onnx_file_name=model.onnx_file_name, adapters=model.adapters)


def fuse_flattening_reshapes(proto) -> int:
    """Reshape(Reshape(x, s), [-1]) -> Reshape(x, [-1]) where the first Reshape feeds nothing else."""
    index = GraphIndex(proto.graph)
    fused = 0
    for node in proto.graph.node:
        first = index.producer.get(node.input[0]) if node.op_type == "Reshape" else None
        target = index.array(node.input[1]) if first is not None else None
        if first is None or first.op_type != "Reshape" or target is None or not np.array_equal(target, [-1]) \
                or len(index.consumers[first.output[0]]) != 1 or first.output[0] in index.outputs:
            continue
        node.input[0] = first.input[0]
        fused += 1
    if fused:
        used = {name for node in proto.graph.node for name in node.input} | index.outputs
        kept = [node for node in proto.graph.node if any(output in used for output in node.output)]
        del proto.graph.node[:]
        proto.graph.node.extend(kept)
        GraphIndex(proto.graph).drop_unused_initializers()
    return fused
