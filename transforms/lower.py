"""Lower a tidied QONNX graph to integer ops of the domain qonnx_spartan.ops.

Every tensor between ops becomes an integer tensor whose real scale only the host knows: the input Quant
becomes the host-side quantisation, the output's scale the host-side dequantisation (both kept in the
model's metadata, see qonnx_spartan.hostio).  Each pattern ends at the activation Quant that follows it:

    MatMul(x, Quant(W)) [Add bias] [Relu] Quant   -> IntLinear (no Quant at the graph output: accumulator)
    MatMul(a, b) [Mul c] Quant                    -> IntMatMul (heads and K^T as strided addressing)
    Add(a, b) Quant, Add(a, Quant(const)) Quant   -> IntAdd
    Softmax Quant                                 -> IntSoftmax
    BatchNormalization [Reshape] Quant            -> IntAffine
    ReduceMean Quant                              -> IntMean
    Reshape, Transpose                            -> views: address tables, no op (transforms/views.py)

The metadata key `qonnx_spartan.sources` keeps, for each buffer, the exported nodes (and their outputs) the
op writing it replaced, so a plan can name a layer by any of them (transforms/memory_style.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.hostio import HostIO, TensorIO
from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range
from qonnx_spartan.ops import DOMAIN, IntAdd, IntAffine, IntSoftmax
from qonnx_spartan.ops.base import int_tensor
from qonnx_spartan.transforms.quant import QuantSpec, constant_weights, node_label, quant_spec
from qonnx_spartan.transforms.views import affine_strides, apply_view, is_identity

#: Exported op types the lowering understands (Gemm is split into MatMul + Add by Tidy).
SUPPORTED_OPS = (
    "Quant",
    "MatMul",
    "Add",
    "Mul",
    "Relu",
    "Transpose",
    "Reshape",
    "Softmax",
    "BatchNormalization",
    "ReduceMean",
)

#: Ops that read an unquantised accumulator at its exact width: the MAC's result goes on unrounded to a
#: residual add, a mean or another MAC, and the first quantiser after them requantises it.
ACCUMULATOR_READERS = ("Add", "ReduceMean", "MatMul", "Reshape", "Transpose")
#: How each op the lowering does not map is refused: what to write instead.
REFUSED = {
    "LayerNormalization": "LayerNorm is not supported (it needs a division and a square root per row); use "
    "BatchNorm1d over the features, as arXiv 2410.03294 does",
    "Einsum": "only a two-operand Einsum that is a (batched) matrix product is supported; write it as torch.matmul",
    "Div": "only a division by a constant is supported",
    "Sub": "only a subtraction of a constant is supported",
    "Gelu": "GELU is not supported; use ReLU (QuantReLU)",
    "Conv": "convolutions are not supported; use QuantLinear over the features",
    "GlobalAveragePool": "only an average over the time axis of (batch, time, features) is supported",
    "AveragePool": "only an average over the whole time axis (AdaptiveAvgPool1d(1)) is supported",
    "ReduceSum": "only a sum over the time axis of (batch, time, features) is supported",
    "Squeeze": "only a Squeeze of a statically shaped tensor is supported",
    "Unsqueeze": "only an Unsqueeze of a statically shaped tensor is supported",
    "Identity": "an Identity at the graph output is not supported; end the model with a quantiser or a layer",
    "Gemm": "only Gemm with alpha = beta = 1 is supported",
}

#: Bias rounding may move the value before requantisation by at most this fraction of an output LSB.
BIAS_ERROR_LSB = 1 / 256
MAX_BIAS_FRACTION_BITS = 16
#: Metadata: {buffer tensor: names of the exported nodes and tensors its writer (or the host) replaced}.
SOURCES_KEY = "qonnx_spartan.sources"


def lowered_sources(model: ModelWrapper) -> dict[str, list[str]]:
    return json.loads(model.get_metadata_prop(SOURCES_KEY) or "{}")


@dataclass(frozen=True)
class IntTensor:
    """An integer tensor held in a buffer: value = integer * scale, integer in [lo, hi]."""

    name: str
    scale: float
    dtype: IntType
    lo: int
    hi: int
    shape: tuple[int, ...]


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


def float_constant(node, values: np.ndarray, out_scale: float) -> tuple[np.ndarray, float]:
    """(integers, scale) of an unquantised constant added to activations: at the output's scale over 2**f,
    with f the fewest fraction bits that hold it exactly or within BIAS_ERROR_LSB of an output LSB."""
    for f in range(MAX_BIAS_FRACTION_BITS + 1):
        scaled = values / (out_scale / 2**f)
        if np.array_equal(scaled, np.round(scaled)) or 0.5 / 2**f <= BIAS_ERROR_LSB:
            return checked_bias(node, np.round(scaled)), out_scale / 2**f
    raise AssertionError("unreachable")


def checked_bias(node, bias: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(bias)):
        raise SpartanError(f"{node_label(node)}: the bias has NaN or infinite values")
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
        self.views: dict[str, tuple[str, np.ndarray]] = {}  # view tensor -> (buffer tensor, address table)
        self.nodes = []
        self.consumed: set[str] = set()  # output tensors of exported nodes already lowered
        self.sources: dict[str, list[str]] = {}  # buffer tensor -> exported names its writer replaced
        self.scores: set[str] = set()  # attention scores kept unquantised for a softmax (softmax_scores)
        # each tensor's (first) producer, as find_producer's scan would find it; the lowering only reads the model
        self.producers = {tensor: node for node in reversed(model.graph.node) for tensor in node.output}

    # -- graph helpers -------------------------------------------------------------------------------
    def shape(self, tensor: str) -> tuple[int, ...]:
        shape = self.model.get_tensor_shape(tensor)
        if shape is None:  # shape inference could not follow the graph to it
            raise SpartanError(f"tensor '{tensor}': its shape is unknown")
        return tuple(int(d) for d in shape)

    def buffer_shape(self, tensor: str) -> tuple[int, ...]:
        """A tensor's shape as a buffer holds it: batch first.  A sequence-first tensor (QuantMultiheadAttention
        computes in (time, batch, features)) gets a batch dimension of 1 in front, the same elements in the
        same order, so that every op's leading dimension is the batch its reference runs over."""
        shape = self.shape(tensor)
        return shape if shape and shape[0] == 1 else (1, *shape)

    def only_consumer(self, tensor: str, user):
        consumers = self.model.find_consumers(tensor) or []
        if len(consumers) > 1:
            raise SpartanError(f"{node_label(user)}: its output feeds {len(consumers)} nodes; only one is supported")
        return consumers[0] if consumers else None

    def is_activation(self, tensor: str) -> bool:
        return tensor in self.tensors or tensor in self.views

    def operand(self, tensor: str, user) -> tuple[IntTensor, np.ndarray]:
        """The buffer behind an activation input and the address table of the view the op reads."""
        if tensor in self.tensors:
            t = self.tensors[tensor]
            return t, np.arange(int(np.prod(t.shape))).reshape(self.shape(tensor))
        if tensor in self.views:
            base, table = self.views[tensor]
            return self.tensors[base], table
        producer = self.producers.get(tensor)
        origin = f"from {node_label(producer)}" if producer is not None else "a float tensor"
        raise SpartanError(
            f"{node_label(user)}: input '{tensor}' ({origin}) is not quantised; "
            "put a QuantIdentity or quantised activation before it"
        )

    def contiguous(self, tensor: str, user) -> IntTensor:
        """An operand the op reads in buffer order (a view of it must not reorder elements)."""
        base, table = self.operand(tensor, user)
        if not is_identity(table):
            raise SpartanError(f"{node_label(user)}: reading a transposed view of '{base.name}' is not supported here")
        return base

    def constant(self, tensor: str):
        """(values, QuantSpec or None) of a constant input: an initializer or a Quant of one."""
        values = self.model.get_initializer(tensor)
        if values is not None:
            return np.asarray(values, dtype=np.float64), None
        producer = self.producers.get(tensor)
        if (
            producer is not None
            and producer.op_type == "Quant"
            and self.model.get_initializer(producer.input[0]) is not None
        ):
            spec = quant_spec(self.model, producer)
            floats = self.model.get_initializer(producer.input[0])
            if not np.all(np.isfinite(floats)):
                raise SpartanError(f"{node_label(producer)}: constant '{producer.input[0]}' has NaN or infinite values")
            self.consumed.add(producer.output[0])
            return spec.quantize(floats), spec
        return None, None

    def quant_after(self, node, allowed=(), open_end=False) -> tuple[list, QuantSpec | None]:
        """Follow single consumers through `allowed` op types to the activation Quant; returns the nodes
        passed (Quant last) and its spec, or the spec None when the chain reaches the graph output or, with
        `open_end`, an op that reads the unquantised result itself (an accumulator kept at its width)."""
        chain, current = [], node
        while True:
            nxt = self.only_consumer(current.output[0], current)
            if nxt is None:
                if current.output[0] != self.model.graph.output[0].name:
                    raise SpartanError(f"{node_label(current)}: its output is not used")
                return chain, None
            if nxt.op_type == "Quant":
                chain.append(nxt)
                return chain, quant_spec(self.model, nxt)
            if nxt.op_type not in allowed and open_end and nxt.op_type in ACCUMULATOR_READERS:
                return chain, None
            if nxt.op_type not in allowed:
                raise SpartanError(
                    f"{node_label(nxt)}: its input '{current.output[0]}' is not re-quantised; put a quantised "
                    f"activation (QuantIdentity, QuantReLU) after {node_label(current)}"
                )
            chain.append(nxt)
            current = nxt

    def finish(self, fused: list, out: IntTensor, node) -> None:
        """Record the integer op `node` replacing the exported nodes `fused`, producing `out`."""
        self.consumed.update(n.output[0] for n in fused)
        self.nodes.append(node)
        self.tensors[out.name] = out
        self.sources[out.name] = self.replaced_names(fused)

    def replaced_names(self, fused: list) -> list[str]:
        """Names of the exported nodes an op replaces and of their outputs: the fused chain and the constant
        paths feeding it (weight Quants and their Transposes, quantised constants)."""
        nodes, pending = {n.name: n for n in fused}, list(fused)
        while pending:
            for tensor in pending.pop().input:
                producer = self.producers.get(tensor)
                if producer is not None and producer.name not in nodes and not self.is_activation(tensor):
                    nodes[producer.name] = producer
                    pending.append(producer)
        return [name for n in nodes.values() for name in (n.name, *n.output)]

    # -- the walk ------------------------------------------------------------------------------------
    def run(self) -> ModelWrapper:
        graph = self.model.graph
        if not any(n.op_type == "Quant" for n in graph.node):
            raise SpartanError(
                "the model has no Quant nodes: a float graph cannot run on integers; "
                "export a Brevitas model with brevitas.export.export_qonnx(..., dynamo=False)"
            )
        for node in graph.node:
            if node.op_type in REFUSED and node.op_type not in SUPPORTED_OPS:
                raise SpartanError(f"{node_label(node)}: {REFUSED[node.op_type]}")
            if node.op_type not in SUPPORTED_OPS:
                raise SpartanError(
                    f"{node_label(node)}: op type {node.op_type} is not supported "
                    f"(supported: {', '.join(SUPPORTED_OPS)}, Gemm)"
                )
        for node in graph.node:
            if node.op_type == "Quant":
                quant_spec(self.model, node)  # every quantiser's parameters, before any pattern uses them
        host_in = self.lower_input()
        handlers = {
            "MatMul": self.lower_matmul,
            "Add": self.lower_add,
            "Softmax": self.lower_softmax,
            "BatchNormalization": self.lower_batchnorm,
            "ReduceMean": self.lower_mean,
            "Reshape": self.lower_view,
            "Transpose": self.lower_view,
        }
        for node in graph.node:
            if node.output[0] in self.consumed:
                continue
            if node.op_type in handlers:
                try:
                    handlers[node.op_type](node)
                except ValueError as e:  # the integer ops refuse constants they cannot represent (NaN, too large)
                    raise SpartanError(f"{node_label(node)}: {e}") from None
            elif node.op_type == "Quant" and self.model.get_initializer(node.input[0]) is None:
                self.lower_requant(node)
            elif node.op_type in ("Relu", "Mul"):
                raise SpartanError(
                    f"{node_label(node)}: a {node.op_type} here is not supported (only after a "
                    "linear layer or, for Mul by a constant, after a MatMul of two activations)"
                )
        out_name = graph.output[0].name
        if out_name in self.views and self.nodes:
            base, table = self.views[out_name]
            if not is_identity(table):
                raise SpartanError(
                    f"output '{out_name}': a transposed view of '{base}'; end the model with the layer's own layout"
                )
            return self.build(host_in, self.tensors[base], list(table.shape))
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
        self.sources[quant.output[0]] = self.replaced_names([quant])
        shape = self.buffer_shape(graph_in.name)
        self.tensors[quant.output[0]] = IntTensor(quant.output[0], spec.scale, spec.dtype, spec.lo, spec.hi, shape)
        return TensorIO(quant.output[0], list(shape), spec.scale, spec.dtype, spec.lo, spec.hi)

    def lower_view(self, node) -> None:
        if not self.is_activation(node.input[0]):
            return  # a view on the weights' path: read by constant_weights
        base, table = self.operand(node.input[0], node)
        self.views[node.output[0]] = (base.name, apply_view(table, node, self.shape(node.output[0])))

    # -- patterns ------------------------------------------------------------------------------------
    def lower_matmul(self, matmul) -> None:
        a_name, b_name = matmul.input
        if self.is_activation(a_name) and self.is_activation(b_name):
            self.lower_activation_matmul(matmul)
        elif self.is_activation(a_name):
            self.lower_linear(matmul)
        elif self.is_activation(b_name):
            raise SpartanError(
                f"{node_label(matmul)}: weights on the left of a MatMul are supported as a matrix only, not batched; "
                "write x @ W (QuantLinear)"
            )
        else:
            self.operand(a_name, matmul)  # raises: neither input is quantised

    def lower_linear(self, matmul) -> None:
        x, table = self.operand(matmul.input[0], matmul)
        weights = constant_weights(self.model, matmul.input[1], matmul)
        w = weights.values
        if w.ndim != 2:
            raise SpartanError(f"{node_label(matmul)}: weights of shape {list(w.shape)} are not a matrix")
        acc_scale = x.scale * weights.spec.scale
        bias_values = np.zeros(w.shape[1])
        fused = [matmul]
        nxt = self.only_consumer(matmul.output[0], matmul)
        if nxt is not None and nxt.op_type == "Add" and not all(self.is_activation(t) for t in nxt.input):
            other = nxt.input[1] if nxt.input[0] == matmul.output[0] else nxt.input[0]
            values, spec = self.constant(other)
            if values is None or values.size != w.shape[1]:
                raise SpartanError(f"{node_label(nxt)}: the bias must be a constant of {w.shape[1]} values")
            bias_values = values.reshape(-1) * (spec.scale if spec is not None else 1.0)
            fused.append(nxt)
        chain, out_quant = self.quant_after(fused[-1], allowed=("Relu", "Mul"), open_end=True)
        fused += chain
        relu = any(n.op_type == "Relu" for n in chain)
        factor = self.scalar_factor(fused, [n for n in chain if n.op_type == "Mul"])
        bias_values, acc_scale = bias_values * factor, acc_scale * factor  # (x W + b) c = x W c + b c

        ratio = acc_scale / out_quant.scale if out_quant is not None else self.downstream_ratio(fused[-1], acc_scale)
        acc_shift, bias = fixed_point_bias(fused[1] if len(fused) > 1 else matmul, bias_values / acc_scale, ratio)
        acc_scale /= 2**acc_shift
        acc_lo, acc_hi = matmul_range(x.dtype, w * 2**acc_shift, bias)
        tail = fused[-1].output[0]
        shape = self.buffer_shape(matmul.output[0])
        y_strides = None
        if out_quant is not None and not is_identity(table):
            # x read transposed (W @ x): the result is written in the layout of the views that read it
            rows = int(np.prod(self.shape(matmul.output[0])[:-1]))
            tail, y_strides, views = self.writer_view(fused[-1], (1, rows, w.shape[1]))
            fused += views
            shape = self.buffer_shape(tail)
        if out_quant is not None:
            rescale = Rescale.from_ratio(ratio / 2**acc_shift)
            lo = max(out_quant.lo, 0) if relu else out_quant.lo
            out = IntTensor(tail, out_quant.scale, out_quant.dtype, lo, out_quant.hi, shape)
        elif relu:
            if acc_hi >= 2**31:  # the clamp's bounds are VHDL integers
                raise SpartanError(
                    f"{node_label(matmul)}: its ReLU output needs {acc_hi.bit_length()} bits (at most 31 without a "
                    "quantiser); quantise it (QuantReLU)"
                )
            rescale = Rescale(1, 0)
            out = IntTensor(tail, acc_scale, IntType.for_range(0, acc_hi), 0, acc_hi, shape)
        else:
            rescale = None
            acc_type = IntType(True, max(bits_signed(acc_lo), bits_signed(acc_hi)))
            out = IntTensor(tail, acc_scale, acc_type, acc_lo, acc_hi, shape)
        node = helper.make_node(
            "IntLinear",
            [x.name],
            [out.name],
            name=matmul.name,
            domain=DOMAIN,
            source=matmul.name,
            out_dtype=out.dtype.name,
            out_shape=list(shape),
            in_dtype=x.dtype.name,
            acc_shift=acc_shift,
            weights=int_tensor("weights", w),
            bias=int_tensor("bias", bias),
            requant=int(rescale is not None),
            multiplier=rescale.multiplier if rescale else 1,
            shift=rescale.shift if rescale else 0,
            out_lo=int(out.lo),
            out_hi=int(out.hi),
            **({} if is_identity(table) else {"a_stride": self.row_strides(matmul, table)}),
            **({"y_stride": list(y_strides)} if y_strides else {}),
        )
        self.finish(fused, out, node)

    @staticmethod
    def row_strides(matmul, table: np.ndarray) -> list[int]:
        """(h, m, n, k) strides of a linear layer's input read through a view (a transposed x, as `W @ x`
        and Gemm's transA canonicalise): rows over every axis but the last, features over the last."""
        strides = affine_strides(table.reshape(1, -1, 1, table.shape[-1]))
        if strides is None:
            raise SpartanError(f"{node_label(matmul)}: its input is a reshape/transpose that is not a strided view")
        return [0, strides[1], 0, strides[3]]

    def lower_activation_matmul(self, matmul) -> None:
        a, a_table = self.operand(matmul.input[0], matmul)
        b, b_table = self.operand(matmul.input[1], matmul)
        if a.name == b.name:
            raise SpartanError(f"{node_label(matmul)}: both inputs read the buffer '{a.name}'; not supported")
        a_table, b_table = squeeze_batch(a_table), squeeze_batch(b_table)
        if a_table.ndim == 2:
            a_table, b_table = a_table[None], b_table[None]
        if a_table.ndim != 3 or b_table.ndim != 3 or a_table.shape[2] != b_table.shape[1]:
            raise SpartanError(
                f"{node_label(matmul)}: operands of shapes {list(a_table.shape)} and "
                f"{list(b_table.shape)} are not a (batched) matrix product this lowering maps"
            )
        heads, m, k = a_table.shape
        n = b_table.shape[2]
        a_str, b_str = affine_strides(a_table), affine_strides(b_table)
        if a_str is None or b_str is None:
            raise SpartanError(f"{node_label(matmul)}: an operand's reshape/transpose is not a strided view")
        scores = self.softmax_scores(matmul, a, b, k)
        if scores is not None:
            out, rescale, chain = scores
            node = self.matmul_node(matmul, a, b, out, rescale, heads, m, n, k, a_str, b_str, (m * n, n, 1))
            self.finish([matmul, *chain], out, node)
            self.scores.add(out.name)
            return
        chain, out_quant = self.quant_after(matmul, allowed=("Mul",))
        if out_quant is None:
            raise SpartanError(f"{node_label(matmul)}: a product of two activations must be quantised")
        factor = self.scalar_factor([matmul, *chain], chain[:-1])
        quant = chain[-1]
        out_name, y_table, view_nodes = self.writer_view(quant, (heads, m, n))
        shape = self.buffer_shape(out_name)
        out = IntTensor(out_name, out_quant.scale, out_quant.dtype, out_quant.lo, out_quant.hi, shape)
        rescale = Rescale.from_ratio(a.scale * b.scale * factor / out_quant.scale)
        node = self.matmul_node(matmul, a, b, out, rescale, heads, m, n, k, a_str, b_str, y_table)
        self.finish([matmul, *chain, *view_nodes], out, node)

    @staticmethod
    def matmul_node(matmul, a, b, out, rescale, heads, m, n, k, a_str, b_str, y_strides):
        return helper.make_node(
            "IntMatMul",
            [a.name, b.name],
            [out.name],
            name=matmul.name,
            domain=DOMAIN,
            source=matmul.name,
            out_dtype=out.dtype.name,
            out_shape=list(out.shape),
            in_dtype=a.dtype.name,
            b_dtype=b.dtype.name,
            loop_sizes=[heads, m, n, k],
            a_stride=[a_str[0], a_str[1], 0, a_str[2]],
            b_stride=[b_str[0], 0, b_str[2], b_str[1]],
            y_stride=list(y_strides),
            multiplier=rescale.multiplier,
            shift=rescale.shift,
            out_lo=out.lo,
            out_hi=out.hi,
        )

    def softmax_scores(self, matmul, a: IntTensor, b: IntTensor, k: int):
        """Attention scores a softmax reads unquantised (`softmax(q @ k^T / sqrt(d))`, QuantMultiheadAttention's
        default): (scores, rescale, fused Muls), or None when a quantiser follows the product.

        The exact product is as wide as its operands' sum of products, and a softmax table over that range
        cannot be built.  The scores are kept instead at a power-of-two scale of at most half the softmax
        output's LSB: rounding a score moves each softmax output by at most that scale (exp's relative
        change), i.e. by at most half an output LSB; the range is the product's exact bound, so nothing
        saturates, and the softmax table ends where exp rounds to 0 (IntSoftmax's clamp)."""
        chain, current = [], matmul
        while True:
            reader = self.only_consumer(current.output[0], current)
            if reader is None or reader.op_type not in ("Mul", "Softmax"):
                return None
            if reader.op_type == "Softmax":
                break
            chain.append(reader)
            current = reader
        after, out_quant = self.quant_after(reader)
        if out_quant is None:
            raise SpartanError(f"{node_label(reader)}: the softmax output must be quantised")
        factor = self.scalar_factor([matmul, *chain], chain)
        scale = 2.0 ** math.floor(math.log2(out_quant.scale / 2))
        ratio = a.scale * b.scale * factor / scale
        corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        lo, hi = int(np.round(k * min(corners) * ratio)), int(np.round(k * max(corners) * ratio))
        tail = current.output[0]
        dtype = IntType(True, max(bits_signed(lo), bits_signed(hi)))
        return IntTensor(tail, scale, dtype, lo, hi, self.buffer_shape(tail)), Rescale.from_ratio(ratio), chain

    def scalar_factor(self, chain: list, muls: list) -> float:
        """The product of the positive scalar constants the Muls of a chain multiply by."""
        factor = 1.0
        for mul in muls:
            previous = chain[chain.index(mul) - 1].output[0]
            values, spec = self.constant(mul.input[1] if mul.input[0] == previous else mul.input[0])
            if values is None or values.size != 1:
                raise SpartanError(f"{node_label(mul)}: only a Mul by a scalar constant is supported here")
            factor *= float(values.ravel()[0]) * (spec.scale if spec is not None else 1.0)
            if factor <= 0:
                raise SpartanError(f"{node_label(mul)}: a Mul by {factor:g} (not positive) is not supported here")
        return factor

    def downstream_ratio(self, node, acc_scale: float) -> float | None:
        """For an unquantised accumulator, the ratio its bias precision is chosen for: to the first quantiser
        downstream through single readers; None (the bias rounded to the accumulator's LSB) at the graph
        output, where nothing rounds it, and when another MAC reads it: fraction bits would widen that MAC's
        operand and bias beyond its 32-bit literals, and half an LSB of this accumulator is far below the
        LSB of any quantiser after the next MAC."""
        current = node
        while True:
            nxt = self.only_consumer(current.output[0], current)
            if nxt is None:
                return None
            if nxt.op_type == "Quant":
                return acc_scale / quant_spec(self.model, nxt).scale
            if nxt.op_type not in ("Add", "ReduceMean", "Mul", "Reshape", "Transpose", "Relu"):
                return None
            current = nxt

    def writer_view(self, quant, logical: tuple[int, int, int]):
        """Where an op writes its (H, M, N) result: in the layout after the Reshape/Transpose chain that
        alone reads it, when that is a strided permutation (then its reader reads contiguously)."""
        table = np.arange(int(np.prod(self.shape(quant.output[0])))).reshape(self.shape(quant.output[0]))
        chain, current = [], quant
        while True:
            consumers = self.model.find_consumers(current.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type not in ("Reshape", "Transpose"):
                break
            current = consumers[0]
            table = apply_view(table, current, self.shape(current.output[0]))
            chain.append(current)
        position = np.empty(table.size, dtype=np.int64)
        position[table.ravel()] = np.arange(table.size)  # where each result element lands
        strides = affine_strides(position.reshape(logical))
        if chain and strides is not None:
            return chain[-1].output[0], strides, chain
        h, m, n = logical
        return quant.output[0], (m * n, n, 1), []

    def lower_add(self, add) -> None:
        a_name, b_name = add.input
        chain, out_quant = self.quant_after(add)
        if out_quant is None:
            raise SpartanError(f"{node_label(add)}: the sum must be quantised")
        shape = self.buffer_shape(chain[-1].output[0])
        if self.is_activation(a_name) and self.is_activation(b_name):
            a, b = self.contiguous(a_name, add), self.contiguous(b_name, add)
            if a.name == b.name:
                raise SpartanError(f"{node_label(add)}: adding a tensor to itself is not supported")
            a_shape, b_shape = self.shape(a_name), self.shape(b_name)  # as read: a buffer may be reshaped
            if a_shape != b_shape:
                raise SpartanError(
                    f"{node_label(add)}: broadcasting {list(a_shape)} + {list(b_shape)} is not supported"
                )
            inputs, b_type, b_scale, const = [a.name, b.name], b.dtype, b.scale, None
        else:
            act, other = (a_name, b_name) if self.is_activation(a_name) else (b_name, a_name)
            a = self.contiguous(act, add)
            values, spec = self.constant(other)
            if values is None:
                raise SpartanError(f"{node_label(add)}: the constant added must be quantised (a Quant of a constant)")
            if spec is None:  # a float constant (a positional buffer added as it is): held like a bias
                values, b_scale = float_constant(add, values, out_quant.scale)
            else:
                b_scale = spec.scale
            while values.ndim > len(shape) - 1 and values.shape[0] == 1:
                values = values[0]  # a (1, T, D) buffer such as pe.unsqueeze(0)
            try:
                const = np.broadcast_to(values, shape[1:]).astype(np.int64)
            except ValueError:
                raise SpartanError(
                    f"{node_label(add)}: a constant of shape {list(values.shape)} does not broadcast to the "
                    f"activations' {list(shape[1:])}"
                ) from None
            inputs, b_type = [a.name], IntType.for_range(int(const.min()), int(const.max()))
        out = IntTensor(chain[-1].output[0], out_quant.scale, out_quant.dtype, out_quant.lo, out_quant.hi, shape)
        node = IntAdd.make_node(
            add.name,
            inputs,
            out.name,
            a.dtype,
            a.scale,
            b_type,
            b_scale,
            out.dtype,
            out.scale,
            out.lo,
            out.hi,
            list(shape),
            const=const,
        )
        self.finish([add, *chain], out, node)

    def lower_requant(self, quant) -> None:
        """A Quant of quantised activations (QuantMultiheadAttention's input quantisers, a QuantIdentity after
        a quantised layer): the same integers when it keeps the scale and the range fits, else a rescale."""
        base, table = self.operand(quant.input[0], quant)
        spec = quant_spec(self.model, quant)
        if spec.scale == base.scale and spec.lo <= base.lo and base.hi <= spec.hi:
            self.views[quant.output[0]] = (base.name, table)
            self.consumed.add(quant.output[0])
            return
        if not is_identity(table):
            raise SpartanError(
                f"{node_label(quant)}: re-quantising a transposed view of '{base.name}' is not supported; "
                "quantise before the view"
            )
        shape = self.buffer_shape(quant.output[0])
        out = IntTensor(quant.output[0], spec.scale, spec.dtype, spec.lo, spec.hi, shape)
        node = IntAffine.make_node(
            quant.name, base.name, out.name, base.dtype, base.scale, 1.0, 0.0, out.dtype, out.scale, out.lo, out.hi, shape
        )
        self.finish([quant], out, node)

    def lower_softmax(self, softmax) -> None:
        x = self.contiguous(softmax.input[0], softmax)
        axis = get_by_name(softmax.attribute, "axis")
        rank = len(self.shape(softmax.input[0]))
        if axis is not None and axis.i not in (-1, rank - 1):
            raise SpartanError(f"{node_label(softmax)}: softmax over axis {axis.i}; only the last axis is supported")
        chain, out_quant = self.quant_after(softmax)
        if out_quant is None:
            raise SpartanError(f"{node_label(softmax)}: the softmax output must be quantised")
        out = IntTensor(
            chain[-1].output[0],
            out_quant.scale,
            out_quant.dtype,
            max(out_quant.lo, 0),
            out_quant.hi,
            self.buffer_shape(chain[-1].output[0]),
        )
        node = IntSoftmax.make_node(
            softmax.name,
            x.name,
            out.name,
            x.dtype,
            x.scale,
            out.dtype,
            out.scale,
            out.lo,
            out.hi,
            list(out.shape),
            clamp=x.name in self.scores,
        )
        self.finish([softmax, *chain], out, node)

    def lower_batchnorm(self, bn) -> None:
        x = self.contiguous(bn.input[0], bn)
        in_shape = self.shape(bn.input[0])
        if len(in_shape) != 2:
            raise SpartanError(
                f"{node_label(bn)}: BatchNorm over an input of shape {list(in_shape)}; "
                "normalise (rows, features) as BatchNorm1d over the last axis"
            )
        params = [self.model.get_initializer(t) for t in bn.input[1:5]]
        if any(p is None for p in params):
            raise SpartanError(f"{node_label(bn)}: BatchNorm parameters must be constants (export in eval mode)")
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        eps = get_by_name(bn.attribute, "epsilon")
        var = var + (eps.f if eps is not None else 1e-5)
        if not all(np.all(np.isfinite(p)) for p in (gamma, beta, mean, var)) or np.any(var <= 0):
            raise SpartanError(f"{node_label(bn)}: BatchNorm parameters must be finite, with a positive variance")
        gain = gamma / np.sqrt(var)
        chain, out_quant = self.quant_after(bn, allowed=("Reshape",))
        if out_quant is None:
            raise SpartanError(f"{node_label(bn)}: the BatchNorm output must be quantised")
        shape = self.buffer_shape(chain[-1].output[0])
        out = IntTensor(chain[-1].output[0], out_quant.scale, out_quant.dtype, out_quant.lo, out_quant.hi, shape)
        node = IntAffine.make_node(
            bn.name,
            x.name,
            out.name,
            x.dtype,
            x.scale,
            gain,
            beta - gain * mean,
            out.dtype,
            out.scale,
            out.lo,
            out.hi,
            list(shape),
        )
        self.finish([bn, *chain], out, node)

    def lower_mean(self, reduce) -> None:
        """A mean over any axes of any strided view: the kept elements are the N outputs, the reduced ones
        the K terms of each sum (the mean over time of (batch, time, features), or of its transpose)."""
        x, table = self.operand(reduce.input[0], reduce)
        axes_attr = get_by_name(reduce.attribute, "axes")
        if axes_attr is not None:
            axes = list(axes_attr.ints)
        elif len(reduce.input) > 1 and self.model.get_initializer(reduce.input[1]) is not None:
            axes = [int(a) for a in self.model.get_initializer(reduce.input[1]).ravel()]
        else:
            axes = []
        rank = table.ndim
        axes = sorted({a % rank for a in axes}) or list(range(rank))
        kept = [d for d in range(rank) if d not in axes]
        steps = int(np.prod([table.shape[a] for a in axes]))
        features = int(np.prod([table.shape[d] for d in kept]))
        strides = affine_strides(np.transpose(table, kept + axes).reshape(1, 1, features, steps))
        if strides is None:
            raise SpartanError(
                f"{node_label(reduce)}: ReduceMean over axes {axes} of {list(table.shape)} reads a view "
                "that is not strided; average over the time axis of (batch, time, features)"
            )
        chain, out_quant = self.quant_after(reduce, allowed=("Mul",), open_end=True)
        factor = self.scalar_factor([reduce, *chain], [n for n in chain if n.op_type == "Mul"])
        scale = x.scale / steps * factor
        tail = chain[-1].output[0] if chain else reduce.output[0]
        shape = self.buffer_shape(tail)
        if out_quant is not None:
            out = IntTensor(tail, out_quant.scale, out_quant.dtype, out_quant.lo, out_quant.hi, shape)
            # with power-of-two scales the ratio is 2**e / steps, and a sum's mean can be an exact tie, which
            # Brevitas rounds half to even: rounded exactly over every reachable sum (float scales: closest M, s)
            exact = Fraction(x.scale) * Fraction(factor) / Fraction(out_quant.scale) / steps
            sums = (steps * x.dtype.lo, steps * x.dtype.hi)
            rescale = Rescale.for_fraction(exact, *sums) or Rescale.from_ratio(scale / out_quant.scale)
        else:  # the sum itself, 1/steps in its scale: exact
            lo, hi = x.lo * steps, x.hi * steps
            out = IntTensor(tail, scale, IntType(True, max(bits_signed(lo), bits_signed(hi))), lo, hi, shape)
            rescale = None
        node = helper.make_node(
            "IntMean",
            [x.name],
            [out.name],
            name=reduce.name,
            domain=DOMAIN,
            source=reduce.name,
            out_dtype=out.dtype.name,
            out_shape=list(shape),
            in_dtype=x.dtype.name,
            loop_sizes=[1, 1, features, steps],
            a_stride=[0, 0, strides[2], strides[3]],
            y_stride=[0, 0, 1],
            multiplier=rescale.multiplier if rescale else 1,
            shift=rescale.shift if rescale else 0,
            **({"round_offset": rescale.offset, "tie_bits": rescale.tie_bits} if rescale and rescale.tie_bits else {}),
            out_lo=out.lo,
            out_hi=out.hi,
            **({} if rescale else {"requant": 0}),
        )
        self.finish([reduce, *chain], out, node)

    # -- the new graph -------------------------------------------------------------------------------
    def build(self, host_in: TensorIO, out: IntTensor, host_shape: list[int] | None = None) -> ModelWrapper:
        old = self.model
        graph = helper.make_graph(
            self.nodes,
            "qonnx_spartan_integer",
            [helper.make_tensor_value_info(host_in.name, TensorProto.FLOAT, host_in.shape)],
            [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, list(out.shape))],
        )
        onnx_model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", old.model.opset_import[0].version), helper.make_opsetid(DOMAIN, 1)],
            producer_name="qonnx-spartan",
        )
        lowered = ModelWrapper(onnx_model)
        lowered.set_tensor_datatype(host_in.name, DataType[host_in.dtype.name])
        for n in self.nodes:
            t = self.tensors[n.output[0]]
            lowered.set_tensor_datatype(t.name, DataType[t.dtype.name])
            if t.name != out.name:
                lowered.set_tensor_shape(t.name, list(t.shape))
        host_out = TensorIO(out.name, host_shape or list(out.shape), out.scale, out.dtype, out.lo, out.hi)
        HostIO(host_in, host_out).save(lowered)
        lowered.set_metadata_prop(SOURCES_KEY, json.dumps(self.sources))
        return lowered


def squeeze_batch(table: np.ndarray) -> np.ndarray:
    """Drop the leading batch dimension of 1 from an operand's address table."""
    return table[0] if table.ndim >= 3 and table.shape[0] == 1 else table
