"""Lowering pattern of the table functions (registered in PATTERNS, walked by transforms/lower.py):

    Quant(x) -> f(x) -> Quant   with f any graph of the elementwise ops of functions.py over x and scalar
                                constants (Gelu or its Erf decomposition, x * sigmoid(x), HardSwish, ...)
                                -> one IntTable per output quantiser

The walk reaches the function's first node in graph order; the pattern takes every elementwise node that
depends on x alone (and constants) up to the quantisers after them, evaluates that graph on every value
x can hold and quantises the results: the ROM's words.  A Relu or Mul a MAC has taken in never gets here.
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.ops.table.functions import FUNCTIONS, evaluate
from qonnx_spartan.ops.table.int_table import IntTable, bit_patterns
from qonnx_spartan.transforms.lower import IntTensor, Lowering, Pattern
from qonnx_spartan.transforms.quant import node_label, quant_spec


def function_input(lowering: Lowering, node) -> str:
    """The one quantised activation the function's first node reads (its other inputs are constants)."""
    activations = {t for t in node.input if t and lowering.is_activation(t)}
    if len(activations) != 1:
        if not activations:
            lowering.operand(node.input[0], node)  # names where the unquantised input comes from
        raise SpartanError(
            f"{node_label(node)}: an elementwise function of {len(activations)} quantised tensors; "
            "only a function of one tensor (between two quantisers) has a table"
        )
    return activations.pop()


def function_graph(lowering: Lowering, x: str, start) -> tuple[list, list]:
    """(the elementwise nodes computing from x and scalar constants alone, in graph order; the Quants of
    their results).  Every value they compute must end at a Quant: a table holds quantised words only."""
    nodes, computed, quants = [], set(), []
    for node in lowering.model.graph.node:
        reads_result = any(t in computed for t in node.input)
        if node.output[0] in lowering.consumed or not (reads_result or x in node.input):
            continue
        if node.op_type == "Quant":
            if reads_result:
                quants.append(node)
        elif node.op_type in FUNCTIONS and all(
            t in ("", x) or t in computed or is_scalar(lowering, t) for t in node.input
        ):
            nodes.append(node)
            computed.update(node.output)
        elif reads_result:
            raise SpartanError(
                f"{node_label(node)}: reads the unquantised result of an elementwise function; put a quantiser "
                "(QuantIdentity) between them"
            )
    if start not in nodes:
        raise SpartanError(
            f"{node_label(start)}: an elementwise function has a table only when it reads one quantised tensor "
            "and scalar constants"
        )
    if computed & {o.name for o in lowering.model.graph.output}:
        raise SpartanError(f"{node_label(nodes[-1])}: the function's result must be quantised")
    return nodes, quants


def is_scalar(lowering: Lowering, tensor: str) -> bool:
    values = lowering.model.get_initializer(tensor)
    return values is not None and np.asarray(values).size == 1


def scalar(lowering: Lowering, tensor: str) -> np.float64:
    return np.float64(np.asarray(lowering.model.get_initializer(tensor)).ravel()[0])


def lower_table(lowering: Lowering, start) -> None:
    x_name = function_input(lowering, start)
    x = lowering.contiguous(x_name, start)
    nodes, quants = function_graph(lowering, x_name, start)
    patterns = bit_patterns(x.dtype)
    # the input's real values as Brevitas holds them: the integer times the float32 scale, in float32
    values = {x_name: (patterns.astype(np.float32) * np.float32(x.scale)).astype(np.float64)}
    for node in nodes:
        inputs = [values[t] if t in values else scalar(lowering, t) if t else None for t in node.input]
        values[node.output[0]] = evaluate(node, inputs)
    for quant in quants:
        spec = quant_spec(lowering.model, quant)
        # the quantiser as torch runs it on the float32 result: round(y / scale) half to even, clamped
        y = values[quant.input[0]].astype(np.float32)
        if np.any(np.isnan(y)):
            raise SpartanError(f"{node_label(quant)}: the function is not a number for some input value")
        with np.errstate(over="ignore"):
            words = np.clip(np.round(y / np.float32(spec.scale)), spec.lo, spec.hi).astype(np.int64)
        shape = lowering.buffer_shape(quant.output[0])
        out = IntTensor.quantised(quant.output[0], spec, shape)
        name = start.name if len(quants) == 1 else quant.name  # several quantisers: a layer each
        node = IntTable.make_node(name, x.name, out.name, x.dtype, out.dtype, words, list(shape))
        lowering.finish([*nodes, quant], out, node)


#: Every function op type starts the pattern but Add, IntAdd's; a Relu or scalar Mul that follows a MAC is
#: the MAC's (consumed before the walk gets here), met elsewhere it is a function too.
PATTERNS = tuple(Pattern(op_type, lower_table) for op_type in FUNCTIONS if op_type != "Add")
