"""Lower a tidied QONNX graph to integer ops of the domain qonnx_spartan.ops.

Every tensor between ops becomes an integer tensor whose real scale only the host knows: the input Quant
becomes the host-side quantisation, the output's scale the host-side dequantisation (both kept in the
model's metadata, see qonnx_spartan.hostio).  The walk hands each node to the pattern registered for its
op type: each op folder registers the patterns that create its ops (qonnx_spartan/ops/<folder>/lower.py),
and Reshape, Transpose, Gather and Slice are views, address tables and no op (transforms/views.py).  A
pattern ends at the activation Quant after it.

The metadata key `qonnx_spartan.sources` keeps, for each buffer, the exported nodes (and their outputs) the
op writing it replaced, so a plan can name a layer by any of them (transforms/memory_style.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qonnx_spartan import ops
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.hostio import HostIO, TensorIO
from qonnx_spartan.intarith import IntType
from qonnx_spartan.ops import DOMAIN
from qonnx_spartan.transforms.quant import QuantSpec, node_label, quant_spec
from qonnx_spartan.transforms.views import apply_view, is_identity


@dataclass(frozen=True)
class Pattern:
    """A lowering pattern: the walk hands `lower(lowering, node)` every node of type `op_type` not yet
    lowered, and `lower` records the integer op replacing the chain that starts there (Lowering.finish).
    `absorbs` names the op types the chain takes in that no pattern starts at, with where they may stand
    (one met elsewhere is refused with it); `reads_accumulator` says that the op reads an unquantised MAC
    result at its exact width (the MAC's result then goes on unrounded, and the first quantiser after it
    requantises it)."""

    op_type: str
    lower: Callable
    absorbs: dict[str, str] = field(default_factory=dict)
    reads_accumulator: bool = False


@lru_cache(maxsize=1)
def registered_patterns() -> dict[str, Pattern]:
    """Every pattern by the op type it starts at: the views' and the op folders'."""
    patterns: dict[str, Pattern] = {}
    for pattern in (*VIEW_PATTERNS, *ops.patterns()):
        if pattern.op_type in patterns:
            raise AssertionError(f"two lowering patterns start at {pattern.op_type}")
        patterns[pattern.op_type] = pattern
    return patterns


def absorbed_op_types() -> dict[str, str]:
    """Op types only taken in by patterns, with where they may stand."""
    where: dict[str, list[str]] = {}
    for pattern in registered_patterns().values():
        for op_type, text in pattern.absorbs.items():
            where.setdefault(op_type, []).append(text)
    return {op_type: "; ".join(texts) for op_type, texts in where.items()}


def reads_accumulator(op_type: str) -> bool:
    """Whether an op of this type reads an unquantised accumulator at its exact width."""
    pattern = registered_patterns().get(op_type)
    return pattern is not None and pattern.reads_accumulator


def supported_op_types() -> list[str]:
    """Exported op types the lowering understands (Gemm is split into MatMul + Add by Tidy)."""
    return sorted({*registered_patterns(), *absorbed_op_types()})


#: The ops that read a selection of a buffer (a view smaller than it): the views themselves, a linear layer
#: and a mean (from an offset, `a_offset` of the MAC ops), and a Quant that keeps the scale (it passes the
#: view on).
READS_SELECTIONS = ("Reshape", "Transpose", "Gather", "Slice", "MatMul", "Gemm", "Quant", "ReduceMean")

#: How each op the lowering does not map is refused: what to write instead.
REFUSED = {
    "Einsum": "only a two-operand Einsum that is a (batched) matrix product is supported; write it as torch.matmul",
    "Div": "only a division by a constant is supported",
    "Sub": "only a subtraction of a constant is supported",
    "GlobalAveragePool": "only an average over the time axis of (batch, time, features) is supported",
    "AveragePool": "only an average over the whole time axis (AdaptiveAvgPool1d(1)) is supported",
    "ReduceSum": "only a sum over the time axis of (batch, time, features) is supported",
    "Squeeze": "only a Squeeze of a statically shaped tensor is supported",
    "Unsqueeze": "only an Unsqueeze of a statically shaped tensor is supported",
    "Identity": "an Identity at the graph output is not supported; end the model with a quantiser or a layer",
    "Gemm": "only Gemm with alpha = beta = 1 is supported",
    # a Conv1d's padding_mode "circular" exports as Slice + Concat (TorchScript) or Pad (the default exporter)
    "Pad": "padding as an op of its own (F.pad, or a Conv1d with padding_mode 'circular', 'reflect' or "
    "'replicate') has no integer form; pad with zeros inside the Conv1d (padding=..., padding_mode='zeros')",
    "Concat": "joining activations (torch.cat: a class token, or a Conv1d with padding_mode 'circular') has no "
    "integer form; pool over time instead of a class token (x.mean(dim=1)), pad a Conv1d with zeros "
    "(padding_mode='zeros')",
    "ReduceMax": "a max over time (x.max(dim=1), AdaptiveMaxPool1d) has no integer form here; average instead "
    "(x.mean(dim=1), AdaptiveAvgPool1d(1))",
    "GlobalMaxPool": "a max over time (AdaptiveMaxPool1d(1)) has no integer form here; average instead "
    "(AdaptiveAvgPool1d(1), x.mean(dim=1))",
    "MaxPool": "max pooling (MaxPool1d) has no integer form here; average over time (AdaptiveAvgPool1d(1)) or "
    "downsample with a strided QuantConv1d",
}

#: Bias rounding may move the value before requantisation by at most this fraction of an output LSB.
BIAS_ERROR_LSB = 1 / 256
#: The same for the bias of an unquantised accumulator (a QuantLinear without output quantiser) whose ratio
#: to the quantiser after it is not a power of two: its error reaches the sum of the add or mean after it
#: unrounded, beside terms held to IntAdd's TERM_ERROR_LSB.  With power-of-two scales the midpoint rule
#: already rounds as the exact bias would, and BIAS_ERROR_LSB is kept.
ACCUMULATOR_BIAS_ERROR_LSB = 1 / 4096
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

    @staticmethod
    def quantised(name: str, spec: QuantSpec, shape: tuple[int, ...]) -> "IntTensor":
        """The tensor a Quant writes: its scale, type and integer range."""
        return IntTensor(name, spec.scale, spec.dtype, spec.lo, spec.hi, shape)


def fixed_point_bias(
    node, bias_in_acc_lsb: np.ndarray, ratio: float | None, bound: float = BIAS_ERROR_LSB
) -> tuple[int, np.ndarray]:
    """(f, integer bias at 2**-f accumulator LSBs): how a real-valued bias enters the accumulator.

    A bias that is a multiple of 2**-f is held exactly.  Otherwise it is held as the midpoint of the
    2**-f interval around it, one bit finer: the sum then never lands on a rounding boundary and stays on
    the same side of it as the exact sum, so for power-of-two rescaling the outputs equal Brevitas's
    exactly.  f grows until the midpoint is within `bound` of an output LSB of the exact bias.
    An accumulator output (ratio None) has no rounding after it: the bias is rounded to its LSB."""
    if ratio is None:
        return 0, checked_bias(node, np.round(bias_in_acc_lsb))
    for f in range(MAX_BIAS_FRACTION_BITS + 1):
        scaled = bias_in_acc_lsb * 2**f
        if np.array_equal(scaled, np.round(scaled)):
            return f, checked_bias(node, scaled)
        if 0.5 * ratio / 2**f <= bound or f == MAX_BIAS_FRACTION_BITS:
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
        self.scores: set[str] = set()  # attention scores kept unquantised for a softmax (mac/lower.py)
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
            buffer = self.tensors[base]
            if table.size < np.prod(buffer.shape) and user.op_type not in READS_SELECTIONS:
                raise SpartanError(
                    f"{node_label(user)}: reads a selection (x[:, -1], x[:, a:b]) of {self.described(base)}, which "
                    "only a linear layer or a mean reads; index after this op, or right before a QuantLinear"
                )
            return buffer, table
        producer = self.producers.get(tensor)
        origin = f"from {node_label(producer)}" if producer is not None else "a float tensor"
        raise SpartanError(
            f"{node_label(user)}: input '{tensor}' ({origin}) is not quantised; "
            "put a QuantIdentity or quantised activation before it"
        )

    def described(self, buffer: str) -> str:
        """A buffer as a message names it: by the node that writes it (the default exporter's tensor names say
        little)."""
        writer = self.producers.get(buffer)
        return f"the output of {node_label(writer)}" if writer is not None else f"'{buffer}'"

    def contiguous(self, tensor: str, user) -> IntTensor:
        """An operand the op reads in buffer order (a view of it must not reorder elements)."""
        base, table = self.operand(tensor, user)
        if not is_identity(table):
            raise SpartanError(
                f"{node_label(user)}: reads a transposed view of {self.described(base.name)}, but it reads its input "
                "in order; transpose after this op instead, or move the transpose up to the output of the Conv1d, "
                "linear layer or matrix product that makes the tensor (which then writes it in that order)"
            )
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
                if all(current.output[0] != o.name for o in self.model.graph.output):
                    raise SpartanError(f"{node_label(current)}: its output is not used")
                return chain, None
            if nxt.op_type == "Quant":
                chain.append(nxt)
                return chain, quant_spec(self.model, nxt)
            if nxt.op_type not in allowed and open_end and reads_accumulator(nxt.op_type):
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

    # -- the walk ------------------------------------------------------------------------------------
    def run(self) -> ModelWrapper:
        graph = self.model.graph
        if not any(n.op_type == "Quant" for n in graph.node):
            raise SpartanError(
                "the model has no Quant nodes: a float graph cannot run on integers; "
                "export a Brevitas model with brevitas.export.export_qonnx(..., dynamo=False)"
            )
        supported, absorbed = supported_op_types(), absorbed_op_types()
        for node in graph.node:
            if node.op_type in REFUSED and node.op_type not in supported:
                raise SpartanError(f"{node_label(node)}: {REFUSED[node.op_type]}")
            if node.op_type not in supported:
                raise SpartanError(
                    f"{node_label(node)}: op type {node.op_type} is not supported "
                    f"(supported: {', '.join(supported)}, Gemm)"
                )
        for node in graph.node:
            if node.op_type == "Quant":
                quant_spec(self.model, node)  # every quantiser's parameters, before any pattern uses them
        host_in = self.lower_input()
        patterns = registered_patterns()
        for node in graph.node:
            if node.output[0] in self.consumed:
                continue
            if node.op_type in patterns:
                try:
                    patterns[node.op_type].lower(self, node)
                except ValueError as e:  # the integer ops refuse constants they cannot represent (NaN, too large)
                    raise SpartanError(f"{node_label(node)}: {e}") from None
            elif node.op_type in absorbed:
                raise SpartanError(
                    f"{node_label(node)}: a {node.op_type} here is not supported (only after {absorbed[node.op_type]})"
                )
        return self.build(host_in, [self.graph_output(o.name) for o in graph.output])

    def graph_output(self, name: str) -> tuple[IntTensor, list[int]]:
        """The integer tensor a graph output streams, and its shape as the host sees it (an identity view of
        the tensor, e.g. a squeeze, keeps the tensor's order)."""
        if self.producers.get(name) is None:
            raise SpartanError(
                f"output '{name}' is a constant (a QuantTensor returned by forward exports its scale, zero point "
                "and bit width as outputs); return plain tensors (return_quant_tensor=False)"
            )
        written = {n.output[0] for n in self.nodes}
        if name in self.views and self.views[name][0] in written:
            base, table = self.views[name]
            if not is_identity(table):
                raise SpartanError(
                    f"output '{name}': a transposed view of '{base}'; end the model with the layer's own layout"
                )
            return self.tensors[base], list(table.shape)
        if name not in written:
            raise SpartanError(
                f"output '{name}': no integer layer writes it (a value inside a layer, or the input); "
                "return a quantiser's output or a layer's"
            )
        return self.tensors[name], list(self.tensors[name].shape)

    def lower_input(self) -> TensorIO:
        graph_in = self.model.graph.input[0]
        normalising, affine = self.input_affine(graph_in.name)
        consumers = self.model.find_consumers(normalising[-1].output[0] if normalising else graph_in.name) or []
        if len(consumers) == 1 and consumers[0].op_type in ("Add", "Mul", "Sub", "Div"):
            raise SpartanError(
                f"{node_label(consumers[0])}: the model computes on its input before the first quantiser with "
                "something other than constants (input normalisation such as (x - mean) / std is taken); "
                "normalise the data before the model, and start forward with the input QuantIdentity"
            )
        if len(consumers) != 1 or consumers[0].op_type != "Quant":
            raise SpartanError(
                f"input '{graph_in.name}' must feed exactly one Quant node (an input QuantIdentity); "
                f"it feeds {', '.join(n.op_type for n in consumers) or 'nothing'}"
            )
        quant = consumers[0]
        spec = quant_spec(self.model, quant)
        self.consumed.update(n.output[0] for n in [*normalising, quant])
        self.sources[quant.output[0]] = self.replaced_names([*normalising, quant])
        shape = self.buffer_shape(graph_in.name)
        self.tensors[quant.output[0]] = IntTensor(quant.output[0], spec.scale, spec.dtype, spec.lo, spec.hi, shape)
        return TensorIO(quant.output[0], list(shape), spec.scale, spec.dtype, spec.lo, spec.hi, affine)

    def input_affine(self, graph_in: str) -> tuple[list, tuple | None]:
        """The Adds and Muls by constants between the graph input and its quantiser (`(x - mean) / std` in
        forward: Sub and Div are Add and Mul by then), and the per-element (gain, offset) they compose, which
        the host applies before it quantises (hostio.TensorIO `affine`); ([], None) when there are none."""
        shape = self.model.get_tensor_shape(graph_in)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            return [], None  # not a static shape: no normalisation is taken, the input must feed its Quant
        gain, offset = np.ones(shape), np.zeros(shape)
        chain, current = [], graph_in
        while True:
            consumers = self.model.find_consumers(current) or []
            if len(consumers) != 1 or consumers[0].op_type not in ("Add", "Mul"):
                break
            node = consumers[0]
            other = node.input[1] if node.input[0] == current else node.input[0]
            values = self.model.get_initializer(other)
            if values is None or not np.all(np.isfinite(values)):
                break
            try:
                values = np.broadcast_to(np.asarray(values, dtype=np.float64), shape)
            except ValueError:
                break
            if node.op_type == "Add":
                offset = offset + values
            else:
                gain, offset = gain * values, offset * values
            chain.append(node)
            current = node.output[0]
        if not chain:
            return [], None
        return chain, (tuple(gain[0].ravel().tolist()), tuple(offset[0].ravel().tolist()))

    def lower_view(self, node) -> None:
        if not self.is_activation(node.input[0]):
            return  # a view on the weights' path: read by constant_weights
        base, table = self.operand(node.input[0], node)
        constants = []
        for name in node.input[1:]:  # a Gather's indices, a Slice's bounds
            values = self.model.get_initializer(name) if name else None  # as stored: Slice's INT64_MAX ends
            if name and values is None:
                raise SpartanError(f"{node_label(node)}: indexing an activation by another tensor is not supported")
            constants.append(None if values is None else values.astype(np.int64))
        self.views[node.output[0]] = (base.name, apply_view(table, node, self.shape(node.output[0]), constants))

    # -- the new graph -------------------------------------------------------------------------------
    def build(self, host_in: TensorIO, outputs: list[tuple[IntTensor, list[int]]]) -> ModelWrapper:
        """The integer graph: the lowered nodes, the host's input, and one graph output per exported one (the
        hardware streams each from its own buffer, so two outputs may not be one tensor)."""
        seen = {}
        for (out, _), exported in zip(outputs, self.model.graph.output):
            if out.name in seen:
                raise SpartanError(
                    f"outputs '{seen[out.name]}' and '{exported.name}' are the same values; return the tensor once"
                )
            seen[out.name] = exported.name
        old = self.model
        graph = helper.make_graph(
            self.nodes,
            "qonnx_spartan_integer",
            [helper.make_tensor_value_info(host_in.name, TensorProto.FLOAT, host_in.shape)],
            [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, list(out.shape)) for out, _ in outputs],
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
            if t.name not in seen:
                lowered.set_tensor_shape(t.name, list(t.shape))
        host_outs = tuple(TensorIO(out.name, shape, out.scale, out.dtype, out.lo, out.hi) for out, shape in outputs)
        HostIO(host_in, host_outs).save(lowered)
        lowered.set_metadata_prop(SOURCES_KEY, json.dumps(self.sources))
        return lowered


VIEW_PATTERNS = (
    Pattern("Reshape", Lowering.lower_view, reads_accumulator=True),
    Pattern("Transpose", Lowering.lower_view, reads_accumulator=True),
    Pattern("Gather", Lowering.lower_view, reads_accumulator=True),
    Pattern("Slice", Lowering.lower_view, reads_accumulator=True),
)
