"""Per-tensor Quants moved before the views and scalar maps between them and the op that computes.

`(p @ v).transpose(1, 2).reshape(B, T, D)` followed by a quantiser, heads split with `.view` before the
quantiser, QuantMultiheadAttention's `q / sqrt(d)` after its reshapes: between an op and its Quant stand
Reshapes, Transposes, ReLUs and multiplications by positive scalar constants.  Views only move elements
and a per-tensor Quant rounds each element alone, so the chain reorders to
op -> [ReLU / scalar Mul] -> Quant -> views: the lowering sees the op's own pattern, and the views become
addressing of the quantised buffer (or the layout the op writes).  A BatchNormalization followed only by
Reshapes is left as it is: the lowering reads that chain itself.  The graph input read through views
alone into a Quant (a first QuantConv1d or QuantLinear with its own input_quant, on `x.transpose(1, 2)`)
becomes input -> Quant -> views: the host quantises the input, and the views are addressing of its buffer.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.transforms.rewrite import VIEW_OPS, constant_operand, forget_shapes, only_consumer, producer


def data_index(model: ModelWrapper, node) -> int | None:
    """The input a chain passes through `node` on, if the node may stand between an op and its Quant."""
    if node.op_type in VIEW_OPS or node.op_type == "Relu":
        return 0
    if node.op_type == "Mul":
        operand = constant_operand(model, node)
        if operand is not None and operand[1] > 0:
            return operand[0]
    return None


def per_tensor(model: ModelWrapper, quant) -> bool:
    scale = model.get_initializer(quant.input[1]) if len(quant.input) > 1 else None
    return scale is not None and scale.size == 1


class QuantBeforeViews(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        inputs = {i.name for i in model.graph.input}
        for quant in list(model.graph.node):
            if quant.op_type != "Quant" or model.get_initializer(quant.input[0]) is not None:
                continue
            if not per_tensor(model, quant):
                continue
            chain, tensor = [], quant.input[0]
            while True:
                node = producer(model, tensor)
                if node is None or data_index(model, node) is None:
                    break
                if only_consumer(model, tensor) is not (chain[0] if chain else quant):
                    break
                chain.insert(0, node)
                tensor = node.input[data_index(model, node)]
            source = producer(model, tensor)
            if not any(n.op_type in VIEW_OPS for n in chain):
                continue
            if only_consumer(model, tensor) is not chain[0]:
                continue  # a tensor read elsewhere too
            if source is None and (tensor not in inputs or any(n.op_type not in VIEW_OPS for n in chain)):
                continue  # a constant, or a float map of the graph input (the host quantises the input alone)
            batchnorm = source is not None and source.op_type == "BatchNormalization"
            if batchnorm and all(n.op_type == "Reshape" for n in chain):
                continue
            self.reorder(model, chain, quant, tensor)
            changed = True
        return model, changed

    @staticmethod
    def reorder(model: ModelWrapper, chain: list, quant, start: str) -> None:
        """Rewire `start` -> chain -> quant as start -> scalar maps -> quant -> views; the last node writes
        the Quant's old output, so every reader is unchanged."""
        old = [*chain, quant]
        order = [n for n in chain if n.op_type not in VIEW_OPS] + [quant] + [n for n in chain if n.op_type in VIEW_OPS]
        outputs = [n.output[0] for n in old]
        indices = [data_index(model, n) if n is not quant else 0 for n in order]
        previous = start
        for node, index, output in zip(order, indices, outputs):
            node.input[index] = previous
            node.output[0] = output
            previous = output
        forget_shapes(model, outputs[:-1])
