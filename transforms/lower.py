"""Lower a tidied QONNX graph to integer ops of the domain qonnx_spartan.ops.

Every tensor between ops becomes an integer tensor whose real scale only the host knows: the input Quant
becomes the host-side quantisation, the output's scale the host-side dequantisation (both kept in the
model's metadata, see qonnx_spartan.hostio).  A MatMul against quantised weights, with its bias Add, an
optional Relu and the activation Quant after them, becomes one IntLinear; with no Quant after it (the
model's last layer) the IntLinear outputs its accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.hostio import HostIO, TensorIO
from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.transforms.quant import constant_weights, node_label, quant_spec

#: Exported op types the lowering understands (Gemm is turned into MatMul + Add by Tidy).
SUPPORTED_OPS = ("Quant", "MatMul", "Add", "Relu", "Transpose")


@dataclass(frozen=True)
class IntTensor:
    """An integer tensor of the lowered graph: value = integer * scale, integer in [lo, hi]."""

    name: str
    scale: float
    dtype: IntType
    lo: int
    hi: int


#: Bias rounding may move the value before requantisation by at most this fraction of an output LSB.
BIAS_ERROR_LSB = 1 / 256
MAX_BIAS_FRACTION_BITS = 16


def fixed_point_bias(node, bias_in_acc_lsb: np.ndarray, ratio: float | None) -> tuple[int, np.ndarray]:
    """(f, integer bias at 2**-f accumulator LSBs): how a real-valued bias enters the accumulator.

    A bias that is a multiple of 2**-f is held exactly.  Otherwise it is held as the midpoint of the
    2**-f interval around it, one bit finer: the sum then never lands on a rounding boundary and stays on
    the same side of it as the exact sum, so for power-of-two rescaling the outputs equal Brevitas's
    exactly.  f grows until the midpoint is within BIAS_ERROR_LSB of an output LSB of the exact bias.
    An accumulator output (ratio None) has no rounding after it: the bias is rounded to its LSB."""
    if ratio is None:
        return 0, checked_bias(node, np.round(bias_in_acc_lsb))
    for f in range(MAX_BIAS_FRACTION_BITS + 1):
        scaled = bias_in_acc_lsb * 2**f
        if np.array_equal(scaled, np.round(scaled)):
            return f, checked_bias(node, scaled)
        if 0.5 * ratio / 2**f <= BIAS_ERROR_LSB or f == MAX_BIAS_FRACTION_BITS:
            return f + 1, checked_bias(node, 2 * np.floor(scaled) + 1)
    raise AssertionError("unreachable")


def checked_bias(node, bias: np.ndarray) -> np.ndarray:
    if np.abs(bias).max(initial=0) >= 2**31:
        raise SpartanError(f"{node_label(node)}: bias too large for the accumulator")
    return bias.astype(np.int64)


class LowerToIntegerOps(Transformation):
    def apply(self, model: ModelWrapper):
        return Lowering(model).run(), False


class Lowering:
    def __init__(self, model: ModelWrapper):
        self.model = model
        self.tensors: dict[str, IntTensor] = {}
        self.nodes = []
        self.consumed: set[str] = set()  # output tensors of exported nodes already lowered

    # -- graph walking helpers -----------------------------------------------------------------------
    def only_consumer(self, tensor: str, user):
        consumers = self.model.find_consumers(tensor) or []
        if len(consumers) > 1:
            raise SpartanError(f"{node_label(user)}: its output feeds {len(consumers)} nodes; only one is supported")
        return consumers[0] if consumers else None

    def activation(self, tensor: str, user) -> IntTensor:
        if tensor not in self.tensors:
            producer = self.model.find_producer(tensor)
            origin = f"from {node_label(producer)}" if producer is not None else "a float tensor"
            raise SpartanError(
                f"{node_label(user)}: input '{tensor}' ({origin}) is not quantised; "
                "put a QuantIdentity or quantised activation before it"
            )
        return self.tensors[tensor]

    # -- the walk ------------------------------------------------------------------------------------
    def run(self) -> ModelWrapper:
        graph = self.model.graph
        quants = [n for n in graph.node if n.op_type == "Quant"]
        if not quants:
            raise SpartanError(
                "the model has no Quant nodes: a float graph cannot run on integers; "
                "export a Brevitas model with brevitas.export.export_qonnx(..., dynamo=False)"
            )
        for node in graph.node:
            if node.op_type not in SUPPORTED_OPS:
                raise SpartanError(
                    f"{node_label(node)}: op type {node.op_type} is not supported "
                    f"(supported: {', '.join(SUPPORTED_OPS)}, Gemm)"
                )
        host_in = self.lower_input()
        for node in graph.node:
            if node.output[0] in self.consumed:
                continue
            if node.op_type == "MatMul":
                self.lower_linear(node)
            elif node.op_type == "Quant" and self.model.get_initializer(node.input[0]) is None:
                source = self.model.find_producer(node.input[0])
                what = node_label(source) if source is not None else f"input '{node.input[0]}'"
                raise SpartanError(f"{node_label(node)}: re-quantising the output of {what} is not supported")
            elif node.op_type in ("Add", "Relu"):
                raise SpartanError(f"{node_label(node)}: {node.op_type} outside a linear layer is not supported")
        out_name = graph.output[0].name
        if out_name not in self.tensors or not self.nodes:
            raise SpartanError(f"output '{out_name}': no integer layer produces it")
        return self.build(host_in, self.tensors[out_name])

    def lower_input(self) -> TensorIO:
        graph_in = self.model.graph.input[0]
        consumers = self.model.find_consumers(graph_in.name) or []
        if len(consumers) != 1 or consumers[0].op_type != "Quant":
            raise SpartanError(
                f"input '{graph_in.name}' must feed exactly one Quant node (an input QuantIdentity); "
                f"it feeds {', '.join(n.op_type for n in consumers) or 'nothing'}"
            )
        quant = consumers[0]
        spec = quant_spec(self.model, quant)
        self.consumed.add(quant.output[0])
        self.tensors[quant.output[0]] = IntTensor(quant.output[0], spec.scale, spec.dtype, spec.lo, spec.hi)
        shape = self.model.get_tensor_shape(graph_in.name)
        return TensorIO(quant.output[0], shape, spec.scale, spec.dtype, spec.lo, spec.hi)

    def lower_linear(self, matmul) -> None:
        model = self.model
        a_name, w_name = matmul.input
        if a_name not in self.tensors and w_name in self.tensors:
            raise SpartanError(f"{node_label(matmul)}: weights on the left of a MatMul are not supported")
        x = self.activation(a_name, matmul)
        weights = constant_weights(model, w_name, matmul)
        w = weights.values
        if w.ndim != 2:
            raise SpartanError(f"{node_label(matmul)}: weights of shape {list(w.shape)} are not a matrix")
        acc_scale = x.scale * weights.spec.scale
        bias_values = np.zeros(w.shape[1])
        relu = False
        out_quant = None
        fused = [matmul]
        nxt = self.only_consumer(matmul.output[0], matmul)
        if nxt is not None and nxt.op_type == "Add":
            other = nxt.input[1] if nxt.input[0] == fused[-1].output[0] else nxt.input[0]
            bias_values = self.float_bias(nxt, other, w.shape[1])
            fused.append(nxt)
            nxt = self.only_consumer(nxt.output[0], nxt)
        if nxt is not None and nxt.op_type == "Relu":
            relu = True
            fused.append(nxt)
            nxt = self.only_consumer(nxt.output[0], nxt)
        if nxt is not None and nxt.op_type == "Quant":
            out_quant = quant_spec(model, nxt)
            fused.append(nxt)
        elif nxt is not None:
            raise SpartanError(
                f"{node_label(nxt)}: its input '{fused[-1].output[0]}' is not re-quantised; put a quantised "
                f"activation (QuantReLU, QuantIdentity) after {node_label(fused[-1])}"
            )
        self.consumed.update(n.output[0] for n in fused)
        tail = fused[-1].output[0]

        ratio = acc_scale / out_quant.scale if out_quant is not None else None
        acc_shift, bias = fixed_point_bias(fused[1] if len(fused) > 1 else matmul, bias_values / acc_scale, ratio)
        acc_scale /= 2**acc_shift
        acc_lo, acc_hi = matmul_range(x.dtype, w * 2**acc_shift, bias)
        if out_quant is not None:
            rescale = Rescale.from_ratio(ratio / 2**acc_shift)
            lo, hi = (max(out_quant.lo, 0) if relu else out_quant.lo), out_quant.hi
            out = IntTensor(tail, out_quant.scale, out_quant.dtype, lo, hi)
        elif relu:
            rescale = Rescale(1, 0)
            out = IntTensor(tail, acc_scale, IntType.for_range(0, acc_hi), 0, acc_hi)
        else:
            rescale = None
            acc_type = IntType(True, max(bits_signed(acc_lo), bits_signed(acc_hi)))
            out = IntTensor(tail, acc_scale, acc_type, acc_lo, acc_hi)
        shape = model.get_tensor_shape(matmul.output[0])
        self.nodes.append(
            helper.make_node(
                "IntLinear",
                [x.name],
                [out.name],
                name=matmul.name,
                domain=DOMAIN,
                out_dtype=out.dtype.name,
                out_shape=[int(d) for d in shape],
                source=matmul.name,
                in_dtype=x.dtype.name,
                acc_shift=acc_shift,
                weights=helper.make_tensor("weights", TensorProto.INT64, list(w.shape), w.astype(np.int64).ravel().tolist()),
                bias=helper.make_tensor("bias", TensorProto.INT64, [len(bias)], bias.astype(np.int64).tolist()),
                requant=int(rescale is not None),
                multiplier=rescale.multiplier if rescale else 1,
                shift=rescale.shift if rescale else 0,
                out_lo=int(out.lo),
                out_hi=int(out.hi),
            )
        )
        self.tensors[out.name] = out

    def float_bias(self, add, tensor: str, n: int) -> np.ndarray:
        """The real-valued bias an Add contributes: a float constant or a quantised one."""
        model = self.model
        values = model.get_initializer(tensor)
        if values is None:
            producer = model.find_producer(tensor)
            if producer is None or producer.op_type != "Quant" or model.get_initializer(producer.input[0]) is None:
                raise SpartanError(f"{node_label(add)}: adding a non-constant tensor is not supported")
            spec = quant_spec(model, producer)
            values = spec.quantize(model.get_initializer(producer.input[0])) * spec.scale
            self.consumed.add(producer.output[0])
        values = np.asarray(values, dtype=np.float64)
        if values.size != n:
            raise SpartanError(f"{node_label(add)}: bias of shape {list(values.shape)} does not match {n} outputs")
        return values.reshape(n)

    # -- the new graph -------------------------------------------------------------------------------
    def build(self, host_in: TensorIO, out: IntTensor) -> ModelWrapper:
        old = self.model
        in_shape = host_in.shape
        out_shape = old.get_tensor_shape(old.graph.output[0].name)
        graph = helper.make_graph(
            self.nodes,
            "qonnx_spartan_integer",
            [helper.make_tensor_value_info(host_in.name, TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, out_shape)],
        )
        onnx_model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", old.model.opset_import[0].version), helper.make_opsetid(DOMAIN, 1)],
            producer_name="qonnx-spartan",
        )
        lowered = ModelWrapper(onnx_model)
        for t in self.tensors.values():
            if t.name == host_in.name or any(t.name in n.output for n in self.nodes):
                lowered.set_tensor_datatype(t.name, DataType[t.dtype.name])
        for n in self.nodes:
            lowered.set_tensor_shape(n.output[0], list(self.model.get_tensor_shape(n.output[0])))
        HostIO(host_in, TensorIO(out.name, out_shape, out.scale, out.dtype, out.lo, out.hi)).save(lowered)
        return lowered
