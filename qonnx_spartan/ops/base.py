"""What every integer op of the qonnx_spartan.ops domain owns, side by side.

An op is a qonnx CustomOp: `execute_node` is its integer reference (numpy, exact), the specification its
hardware matches bit for bit.  Next to it the op states its resource model, its cycle count and the values
its VHDL template needs, so that adding an op means adding its folder (with the lowering pattern that
creates it), its template and one registry line (qonnx_spartan/ops/__init__.py).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass
from functools import lru_cache, wraps
from importlib.resources import files

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from qonnx_spartan.coefficients import fitted
from qonnx_spartan.intarith import IntType
from qonnx_spartan.memory import STYLES, Memory

#: The ONNX domain of the integer ops; qonnx imports this package to find them.
DOMAIN = "qonnx_spartan.ops"
#: Input ports of an op, in the order of its node inputs.
INPUT_PORTS = ("x", "z")
RESOURCES = ("LUT", "LUTRAM", "FF", "BRAM18", "DSP")


def op_node(op_type: str, inputs: list[str], out: str, name: str, out_type: IntType, out_shape, **attrs):
    """A node of one of this package's ops: its domain, its source (the model's node it lowers) and the
    output's type and shape, which every op declares, besides the op's own attributes."""
    return helper.make_node(
        op_type,
        list(inputs),
        [out],
        name=name,
        domain=DOMAIN,
        source=name,
        out_dtype=out_type.name,
        out_shape=[int(d) for d in out_shape],
        **attrs,
    )


def int_tensor(name: str, values) -> TensorProto:
    """An integer tensor attribute (weights, tables) of an op node."""
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


#: yosys synth_xilinx's DSP48E1 mapping (techlibs/common/mul2dsp.v with the xc7 limits): a 25 x 18 signed
#: multiplier; wider operands are cut into 17-bit unsigned slices (18 with a zero sign bit); products
#: under 9 bits or with an operand under 2 bits stay in logic (UG901 calls 4 x 4 and smaller small).
DSP_A_MAX, DSP_B_MAX, DSP_PARTIAL, DSP_MIN, DSP_Y_MIN = 25, 18, 18, 2, 9


def multiplier_dsps(a_bits: int, b_bits: int) -> int:
    """DSP48E1s of a signed a x b product as yosys maps it (unsigned operands count one bit more: the
    DSP48E1 multiplies signed numbers only)."""
    return _mul2dsp(max(a_bits, b_bits), min(a_bits, b_bits))


def _mul2dsp(a: int, b: int) -> int:
    """mul2dsp's recursion: A (the wider, after its swap) is sliced first, then B."""
    if a < DSP_MIN or b < DSP_MIN or a + b < DSP_Y_MIN:
        return 0
    step = DSP_PARTIAL - 1
    if a > DSP_A_MAX:
        n = (a - DSP_A_MAX + step - 1) // step
        return n * _mul2dsp(DSP_PARTIAL, b) + _mul2dsp(a - n * step, b)
    if b > DSP_B_MAX:
        n = (b - DSP_B_MAX + step - 1) // step
        return n * _mul2dsp(a, DSP_PARTIAL) + _mul2dsp(a, b - n * step)
    return 1


@lru_cache(maxsize=1)
def logic_products() -> dict[str, dict[str, int]]:
    """calibration/logic_products.py's table: the LUTs of each narrow product form a MAC keeps in logic
    ("luts") and of each wide one built in LUTs instead of DSPs ("forced_luts")."""
    return json.loads((files("qonnx_spartan") / "data" / "logic_products.json").read_text())


def forced_product_luts(a_width: int, b_width: int) -> int:
    """LUTs of a product wide enough for a DSP48E1 that is built in LUTs instead (templates/qs_mul_logic.vhd,
    mapped by yosys's booth), per signed operand widths as the entity takes them: the entity is kept as a
    module, so a constant operand is not folded into it, and calibration/logic_products.py measured each
    form in isolation.  KeyError: a form booth does not map (an operand under 4 bits), which stays on DSPs."""
    return logic_products()["forced_luts"][f"s{a_width}xs{b_width}"]


def can_force_logic(a_width: int, b_width: int) -> bool:
    """Whether a product of these signed widths takes DSPs and could be built in LUTs instead."""
    try:
        forced_product_luts(a_width, b_width)
    except KeyError:
        return False
    return multiplier_dsps(a_width, b_width) > 0


def multiplier_luts(a_bits: int, b_bits: int) -> int:
    """Partial-product bits of a product yosys keeps in logic (no DSP): what its LUTs grow with."""
    return 0 if multiplier_dsps(a_bits, b_bits) else a_bits * b_bits


def counter_bits(size: int) -> int:
    """Register bits of a counter over 0 .. size-1 (none when it never moves)."""
    return (size - 1).bit_length()


#: Results `node_memo` keeps per method: the searches revisit a few dozen node states.
NODE_MEMO_SIZE = 256


class KeyedMemo:
    """Results by key, the oldest dropped past `size`: the searches and the lanes step ask the same pure
    questions of the same node states again and again (keyed by the nodes as serialised)."""

    def __init__(self, size: int):
        self.size, self.results = size, {}

    def get(self, key, compute):
        if key not in self.results:
            if len(self.results) >= self.size:
                self.results.pop(next(iter(self.results)))
            self.results[key] = compute()
        return self.results[key]

    def clear(self) -> None:
        self.results.clear()


def node_memo(method):
    """Keep a method's result by the op's node as serialised, for results that are pure functions of the
    node's attributes: the searches ask fresh op objects over the same nodes again and again, and each
    would decode the weights anew.  Setting an attribute changes the key.  The result is a dict, copied."""
    memo = KeyedMemo(NODE_MEMO_SIZE)

    @wraps(method)
    def memoized(self) -> dict:
        return dict(memo.get(self.onnx_node.SerializeToString(), lambda: method(self)))

    memoized.cache_clear = memo.clear  # for timing from cold (benchmarks/estimator.py)
    return memoized


def op_memo(method):
    """Keep a method's result on the op object until it sets an attribute: derived values such as the loops
    and the accumulator's width are asked for dozens of times per estimate.  For immutable results."""

    @wraps(method)
    def memoized(self):
        derived = self.__dict__.setdefault("_derived", {})
        if method.__name__ not in derived:
            derived[method.__name__] = method(self)
        return derived[method.__name__]

    return memoized


@dataclass(frozen=True)
class Trace:
    """Addresses and, for each, the cycle after the start pulse in which an engine touches it."""

    addresses: np.ndarray
    cycles: np.ndarray


def streamed(count: int, latency: int) -> tuple[Trace, Trace]:
    """The read and write traces of an engine that reads element i in cycle 1 + i and writes it `latency`
    cycles later, in address order (the elementwise and table engines)."""
    index = np.arange(count, dtype=np.int64)
    return Trace(index, index + 1), Trace(index, index + 1 + latency)


def pass_traces(addresses: np.ndarray, cycles: np.ndarray, latency: int) -> tuple[Trace, Trace]:
    """The read and write traces of an engine that reads each row in passes, (rows, passes, length) arrays of
    addresses and read cycles, and writes each element in its last pass, `latency` cycles after reading it
    (the softmax and LayerNorm engines)."""
    return (
        Trace(addresses.ravel(), cycles.ravel()),
        Trace(addresses[:, -1].ravel(), cycles[:, -1].ravel() + latency),
    )


def add_resources(*parts: dict[str, int]) -> dict[str, int]:
    return {r: sum(int(p.get(r, 0)) for p in parts) for r in RESOURCES}


class SpartanOp(CustomOp):
    """Base of the integer ops: output type, output buffer style, and the name of the source node."""

    #: File name of the op's Jinja2 template in qonnx_spartan/templates (the registry refuses an op without one).
    template: str = ""

    def get_nodeattr_types(self):
        return {
            # storage type of the output tensor (INTb / UINTb)
            "out_dtype": ("s", True, ""),
            # where the output buffer lives
            "out_mem_style": ("s", False, "distributed", set(STYLES)),
            # shape of the output tensor, batch dimension first
            "out_shape": ("ints", True, []),
            # name of the exported node this op was lowered from (survives renaming)
            "source": ("s", False, ""),
            # set by EstimateResources: resources (JSON) with the output buffer, and cycles
            "res_estimate": ("s", False, ""),
            "cycles_estimate": ("i", False, 0),
            # [words, bits] of a copy of the buffer the input port reads, held by the top level for this
            # layer alone (read_copies); set by the lanes step
            "x_copy": ("ints", False, []),
            "z_copy": ("ints", False, []),
        }

    def get_nodeattr(self, name):
        """Attributes are read many times per estimate (weights are decoded from the protobuf on every
        read): each op object keeps what it decoded until it sets the attribute itself."""
        cache = self.__dict__.setdefault("_attributes", {})
        if name not in cache:
            cache[name] = super().get_nodeattr(name)
        return cache[name]

    def set_nodeattr(self, name, value):
        super().set_nodeattr(name, value)
        self.__dict__.get("_attributes", {}).pop(name, None)
        self.__dict__.pop("_derived", None)  # what op_memo kept may follow from this attribute

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op(self.get_nodeattr("out_shape"))

    # -- types ---------------------------------------------------------------------------------------
    def out_type(self) -> IntType:
        return IntType.from_name(self.get_nodeattr("out_dtype"))

    def in_type(self) -> IntType:
        """Type of the (first) input, for ops that declare `in_dtype`."""
        return IntType.from_name(self.get_nodeattr("in_dtype"))

    def output_context(self) -> dict:
        """Template values of the output word: its saturation bounds, width and signedness."""
        out = self.out_type()
        return {
            "out_lo": self.get_nodeattr("out_lo"),
            "out_hi": self.get_nodeattr("out_hi"),
            "out_bits": out.bits,
            "out_signed": out.signed,
        }

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType[self.get_nodeattr("out_dtype")])

    def verify_node(self):
        return []

    # -- the integer reference -----------------------------------------------------------------------
    @abstractmethod
    def execute_node(self, context, graph): ...

    @staticmethod
    def as_int(a) -> np.ndarray:
        """Integer view of a tensor held in a float container, refusing values that are not integers."""
        a = np.asarray(a)
        ints = np.rint(a).astype(np.int64)
        if not np.array_equal(ints, a):
            raise ValueError("integer op received a non-integer tensor")
        return ints

    def input_as_output(self, context, index: int = 0) -> np.ndarray:
        """Input `index` as an op that reads element i of it for output element i sees it: the buffer's
        elements in address order, shaped like one batch item of the output.  A buffer keeps the shape of
        the tensor its writer produced, and the lowering lets an op read it through any view that keeps the
        order (a merge of heads, a sequence-first tensor transposed back), so its shape is not the reader's."""
        x = self.as_int(context[self.onnx_node.input[index]])
        return x.reshape(x.shape[0], *self.get_nodeattr("out_shape")[1:])

    # -- hardware ------------------------------------------------------------------------------------
    def output_buffer(self) -> Memory:
        """The buffer the op writes (the design instantiates it; its style is the op's out_mem_style)."""
        count = int(np.prod(self.get_nodeattr("out_shape"), dtype=np.int64))
        return Memory(count, self.out_type().bits, self.get_nodeattr("out_mem_style"))

    def weight_memories(self) -> dict[str, Memory]:
        """Read-only memories the op owns, by role; a role's style is the attribute `<role>_mem_style`."""
        return {}

    def set_memory_style(self, role: str, style: str) -> None:
        """Place the memory `role` ("out" for the output buffer, or a weight memory's role)."""
        self.set_nodeattr(f"{role}_mem_style", style)

    def rom_words(self, role: str) -> list[int]:
        """Contents of the weight memory `role`, one integer per word."""
        raise KeyError(role)

    #: The coefficient group of the op's engine (qonnx_spartan/coefficients.py; the registry refuses an op
    #: without one, the estimator one the coefficients lack).
    resource_group: str = ""

    @abstractmethod
    def resource_features(self) -> dict[str, float]:
        """Structural quantities the engine's LUT and FF grow with (memories excluded): register, adder and
        counter bits of the generated VHDL, as its template builds it."""

    @abstractmethod
    def dsps(self) -> int:
        """DSP48E1s of the engine, exactly as yosys maps its multipliers (multiplier_dsps)."""

    def exact_resources(self) -> dict[str, int]:
        """What the engine uses that is counted, not fitted: its DSPs (and any LUTs used as shift registers)."""
        return {"DSP": self.dsps()}

    def buffer_copies(self) -> list[Memory]:
        """Copies of an input buffer the engine holds to read it at several addresses per cycle (lanes on
        the attention products, ops/mac/int_matmul.py)."""
        return []

    def read_copies(self) -> dict[str, Memory]:
        """By input port, the copy of its buffer the top level keeps for this layer alone (in LUTRAM, written
        with the buffer): the layer reads it while other layers read the buffer (qonnx_spartan/schedule.py)."""
        copies = {}
        for port in INPUT_PORTS:
            if geometry := self.get_nodeattr(f"{port}_copy"):
                words, bits = geometry
                copies[port] = Memory(words, bits, "distributed")
        return copies

    def shares_rescale(self) -> bool:
        """Whether the engine's rescale multiplies on the top level's shared multiplier (requantiser.py; the
        MAC engine's option)."""
        return False

    def logic_resources(self, coefficients=None) -> dict[str, int]:
        """LUT and FF of the engine from its features, and its exact DSP count."""
        return add_resources(
            fitted(self.resource_group, self.resource_features(), coefficients), self.exact_resources()
        )

    @abstractmethod
    def cycles(self) -> int:
        """Clock cycles from the start pulse to the done pulse, exactly as the hardware takes them."""

    # -- the schedule (qonnx_spartan/schedule.py): when the engine touches which address -----------------
    def read_trace(self, port: str) -> Trace | None:
        """Every address the engine reads on input `port` that it uses, and the cycle after its start pulse
        whose clock edge samples it; None when the engine does not say, so that it runs alone (it starts
        after the layers it reads from are done, and its readers start after it is done)."""
        return None

    def write_trace(self) -> Trace | None:
        """Every address the engine writes and the cycle after its start pulse whose clock edge writes it;
        None as for `read_trace`."""
        return None

    @abstractmethod
    def template_context(self) -> dict:
        """Values the op's template needs, besides the names the backend gives it."""
