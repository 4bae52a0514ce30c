"""The multiply-accumulate engine shared by IntLinear, IntMatMul and IntMean.

    y[h, m, n] = requantize(2**f * sum_k A[h, m, n, k] * B[h, m, n, k] + bias[n])

over four nested loops (h, m, n outer, k innermost).  Each operand is read from memory at
base + h*s_h + m*s_m + n*s_n + k*s_k and the result written at h*t_h + m*t_m + n*t_n: strides are how
reshapes and transposes (attention heads, K^T) cost no hardware.  B is a weight ROM, a second buffer, or
the constant 1 (a plain sum).  The pipeline (read, product, accumulate, rescale, saturate, write) runs
back-to-back dot products without bubbles.

Lanes: with B from a ROM, P output features (a group n = g*P .. g*P + P-1) are computed in parallel from
one read of A, the ROM word holding their P weights; the issue loop steps over groups instead of n.  Each
lane has its own product and accumulator; a completed group's sums then leave through one shared
rescale/saturate/write pipeline, one per cycle (the output buffer has one write port, and the
requantisation multiplier is not replicated).  They must drain before the next group completes K cycles
later, so an op clamps its lanes to min(P, K, N) (more than N would idle, more than K would need a stall),
which keeps the cycle count data-independent.  Lanes change only the schedule, never the numbers.
Two lanes may share one DSP48E1 (`dsp_pairs`, docs/architecture.md), and the last lanes may multiply in
LUTs (`logic_lanes`).
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType, Rescale, bits_signed, requantize
from qonnx_spartan.memory import address_bits
from qonnx_spartan.ops.base import (
    SpartanOp,
    Trace,
    counter_bits,
    forced_product_luts,
    logic_products,
    multiplier_dsps,
    multiplier_luts,
    op_memo,
)
from qonnx_spartan.rom_cells import table_luts

#: Cycles from the last issue to the done pulse with one lane: read, product, accumulate, rescale,
#: saturate/write.
PIPELINE_TAIL = 5
B_FROM_ROM, B_FROM_PORT, B_IS_ONE = "rom", "port", "one"
#: LUTs of the operand stage's control when only pairs need it (calibration/dsp_pairs.py)
PAIR_STAGE_LUTS = 4


def address_generator(strides, sizes, width: int) -> tuple[int, int]:
    """(register bits, adder bits) of a strided address generator: a base register per loop level, which
    synthesis removes only while no loop at or above its level ever steps (yosys keeps a register that
    can only reload itself or zero), and an adder per level that moves (size > 1 and a stride)."""
    steps = [size > 1 for size in sizes]
    kept = [any(steps[: i + 1]) for i in range(len(steps))]
    # adding a constant leaves its trailing zero bits alone: a stride of 8 adds over width - 3 bits
    adders = [max(0, width - (s & -s).bit_length() + 1) for size, s in zip(sizes, strides) if size > 1 and s != 0]
    return width * sum(kept), sum(adders)


def logic_product_luts(x: IntType, b_bits: int, b_signed: bool) -> int:
    """LUTs of a lane's product when it stays out of the DSPs, as calibration/logic_products.py measured
    each operand form in isolation (the engine registers the operands and the product, so the multiplier
    maps the same in place)."""
    key = f"{'s' if x.signed else 'u'}{x.bits}x{'s' if b_signed else 'u'}{b_bits}"
    return logic_products()["luts"][key]


def requantiser_features(scale_bits: int, shift: int | None, on_dsp: bool, out_bits: int) -> dict[str, float]:
    """Rounding (shift_round_half_even over the shifted-out bits) and saturation (compares over the kept
    bits) of the output stage; yosys folds part of it into a DSP that computes the rescale, so the two
    cases are weighed apart.  `shift` None: the accumulator is the output, registered as it is (no
    rounding, no saturation: templates/mac.vhd.j2), so its bits weigh nothing here."""
    kind = "dsp" if on_dsp else "logic"
    kept, dropped = (scale_bits - shift, shift) if shift is not None else (0, 0)
    return {f"round_{kind}_bits": kept, f"shift_{kind}_bits": dropped, "out_bits": out_bits if shift is not None else 0}


def last_address(loops, strides) -> int:
    """The largest address strided loops reach (strides are not negative)."""
    return sum((size - 1) * stride for size, stride in zip(loops, strides))


def stride_addresses(loops, strides) -> np.ndarray:
    """Flat addresses of every (h, m, n, k) or (h, m, n) point for the given strides."""
    grids = np.meshgrid(*(np.arange(n) for n in loops), indexing="ij")
    return sum(g * s for g, s in zip(grids, strides)).astype(np.int64)


class MacOp(SpartanOp):
    """Requantisation and strided loops common to the MAC-engine ops; subclasses say where B comes from."""

    template = "mac.vhd.j2"
    b_source = B_FROM_ROM

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "in_dtype": ("s", True, ""),
            "requant": ("i", False, 1),  # 0: the output is the accumulator itself
            "multiplier": ("i", False, 1),
            "shift": ("i", False, 0),
            # an exact rescale by p/q (Rescale.for_fraction): added to the rounding half; bits the tie test skips
            "round_offset": ("i", False, 0),
            "tie_bits": ("i", False, 0),
            "acc_shift": ("i", False, 0),  # f: fractional accumulator bits below the product's LSB
            "out_lo": ("i", False, 0),
            "out_hi": ("i", False, 0),
            # lanes whose product, wide enough for a DSP48E1, is built in LUTs (the last ones of a group):
            # the lanes step asks for them when DSPs run out before LUTs (templates/qs_mul_logic.vhd)
            "logic_lanes": ("i", False, 0),
            # pairs of DSP lanes that share one DSP48E1 (lanes 2j and 2j + 1, the first ones of a group): the
            # lanes step asks for them when DSPs run out (dsp_pairs())
            "dsp_pairs": ("i", False, 0),
            # the rescale multiplies on the top level's one multiplier, shared by the layers (requantiser.py):
            # the lanes step asks for it when DSPs run out
            "shared_rescale": ("i", False, 0),
            # A's first address in its buffer, added to every read (a selected time step, x[:, -1])
            "a_offset": ("i", False, 0),
        }

    # -- the loops, per subclass ---------------------------------------------------------------------
    def loops(self) -> tuple[int, int, int, int]:
        """(H, M, N, K)."""
        raise NotImplementedError

    def a_strides(self) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def b_strides(self) -> tuple[int, int, int, int]:
        return (0, 0, 0, 0)

    def y_strides(self) -> tuple[int, int, int]:
        h, m, n, _ = self.loops()
        return (m * n, n, 1)

    def bias(self) -> np.ndarray | None:
        return None

    def lanes(self) -> int:
        """Effective lanes P (output features in parallel): one unless B is a ROM that holds P per word."""
        return 1

    def requested_lanes(self) -> int:
        """The `lanes` attribute of an op that has lanes (IntLinear, IntMatMul), checked."""
        requested = self.get_nodeattr("lanes")
        if requested < 1:
            raise SpartanError(f"node {self.onnx_node.name}: lanes must be at least 1, not {requested}")
        return requested

    def next_lanes(self, after: int | None = None) -> int | None:
        """The next lane count after `after` (default the current count) that takes a group off each row
        (counts in between only shorten the last group); None with one group."""
        n = self.loops()[2]
        groups = -(-n // (after or self.lanes()))
        return None if groups == 1 else -(-n // (groups - 1))

    @op_memo
    def groups(self) -> int:
        """Groups of P output features per dot-product row: the issue loop steps over them, not over n."""
        return -(-self.loops()[2] // self.lanes())

    def a_offset(self) -> int:
        """The first address of A's view in its buffer (a selected time step): added to every address the
        generator makes."""
        return self.get_nodeattr("a_offset")

    def a_operand(self, x: np.ndarray) -> np.ndarray:
        """A as the address generator sees it, (batch, elements): the buffer (a convolution's zero padding
        around it, IntConv1d)."""
        return x

    def read_window(self) -> dict | None:
        """The addresses A's generator reaches that hold the buffer, when others read as 0 (padding):
        {"lo", "hi"} with the buffer at lo .. hi - 1; None when every address is the buffer's."""
        return None

    def b_operand(self, context) -> np.ndarray:
        """B's values, flattened per batch item: (batch, elements), or (elements,) when constant."""
        return np.ones(1, dtype=np.int64)

    def b_range(self) -> tuple[int, int]:
        return (1, 1)

    def b_bits(self) -> int:
        """Width of B as a signed number."""
        return 2

    # -- derived -------------------------------------------------------------------------------------
    @property
    def acc_shift(self) -> int:
        return self.get_nodeattr("acc_shift")

    def rescale(self) -> Rescale:
        return Rescale(*(self.get_nodeattr(a) for a in ("multiplier", "shift", "round_offset", "tie_bits")))

    def acc_range(self) -> tuple[int, int]:
        """Exact bound of every partial sum: each product's range contains 0, so sums of them, from the
        start value on, stay between the sums of the extremes."""
        k = self.loops()[3]
        a, (b_lo, b_hi) = self.in_type(), self.b_range()
        corners = [a.lo * b_lo, a.lo * b_hi, a.hi * b_lo, a.hi * b_hi]
        lo, hi = k * min(corners + [0]) * 2**self.acc_shift, k * max(corners + [0]) * 2**self.acc_shift
        start = self.start_values()
        if start is not None:
            lo, hi = lo + int(start.min()), hi + int(start.max())
        return lo, hi

    @op_memo
    def rounding_half(self) -> tuple[int, int]:
        """Where the half that rounds the rescale (2**(s-1)) is added: (to the accumulator's start, to the
        rescale's product).  With it added, the output stage rounds half to even by flooring and clearing
        bit 0 on a tie (`shift_rounded` in templates/qs_arith.vhd): no incrementer and no sticky bit.  A
        power-of-two rescale takes it in the start value (no adder at all), a multiplier on its DSP's
        post-adder, with the offset of an exact rescale by p/q (`Rescale.for_fraction`)."""
        rescale = self.rescale()
        shift, multiplier = rescale.shift, rescale.multiplier
        if not self.get_nodeattr("requant") or shift == 0:
            return (0, 0)
        half = 1 << (shift - 1)
        return (half // multiplier, 0) if half % multiplier == 0 else (0, half + rescale.offset)

    def start_values(self) -> np.ndarray | None:
        """(N,): what each output feature's accumulator starts from - its bias, plus the rounding half of a
        power-of-two rescale; None when that is 0 throughout without a bias."""
        bias, half = self.bias(), self.rounding_half()[0]
        if bias is None:
            return None if half == 0 else np.full(self.loops()[2], half, dtype=np.int64)
        return bias + half

    @op_memo
    def acc_bits(self) -> int:
        return max(bits_signed(v) for v in self.acc_range())

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        node = self.onnx_node
        x = self.as_int(context[node.input[0]])
        batch = x.shape[0]
        x = x.reshape(batch, -1)
        loops = self.loops()
        a = self.a_operand(x)[:, self.a_offset() + stride_addresses(loops, self.a_strides())]
        b = self.b_operand(context)
        if b.ndim == 2:
            b = b[:, stride_addresses(loops, self.b_strides())]
        elif b.size > 1:
            b = b[stride_addresses(loops, self.b_strides())][None]
        # exact while acc * M fits int64, and an accumulator output the 53 bits of a float64 container
        lo, hi = self.acc_range()
        requant = self.get_nodeattr("requant")
        if max(-lo, hi) * (self.rescale().multiplier if requant else 1) >= (2**63 if requant else 2**53):
            raise SpartanError(f"node '{node.name}': a {self.acc_bits()}-bit accumulator is too wide for the reference")
        acc = (a * b).sum(axis=-1) * 2**self.acc_shift
        if self.bias() is not None:
            acc = acc + self.bias()
        if requant:
            acc = requantize(acc, self.rescale(), self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))
        out_shape = self.get_nodeattr("out_shape")
        y = np.zeros((batch, int(np.prod(out_shape[1:], dtype=np.int64))), dtype=np.int64)
        y[:, stride_addresses(loops[:3], self.y_strides()).ravel()] = acc.reshape(batch, -1)
        # float64 containers: an accumulator output may exceed 2**24, where float32 stops being exact
        context[node.output[0]] = y.reshape(batch, *out_shape[1:]).astype(np.float64)

    # -- hardware ------------------------------------------------------------------------------------
    def cycles(self) -> int:
        """One (group, k) step issued per cycle, then the pipeline (a stage more with products in LUTs:
        their operands are registered first); the last group's lanes after its first leave the shared
        rescale one per cycle (earlier groups drain while the next one accumulates)."""
        h, m, n, k = self.loops()
        lanes, groups = self.lanes(), self.groups()
        last_group_lanes = n - (groups - 1) * lanes
        return h * m * groups * k + PIPELINE_TAIL + self.operand_stage() + last_group_lanes - 1

    def read_trace(self, port: str) -> Trace:
        """Step i of the issue loop (h, m, g, k) presents its addresses in cycle 1 + i: A's (padding reads
        no address of the buffer), or B's for each lane, lane p at lane 0's plus p n-strides (its copy)."""
        h, m, n, k = self.loops()
        issue = (h, m, self.groups(), k)
        if port == "x":
            addresses = stride_addresses(issue, self.a_strides()).ravel()
            cycles = 1 + np.arange(addresses.size, dtype=np.int64)
            window = self.read_window()
            if window is not None:
                inside = (addresses >= window["lo"]) & (addresses < window["hi"])
                return Trace(addresses[inside] - window["lo"], cycles[inside])
            return Trace(addresses + self.a_offset(), cycles)
        lanes, strides = self.lanes(), list(self.b_strides())
        lane_stride = strides[2]
        if lanes > 1:
            strides[2] *= lanes
        first = stride_addresses(issue, strides).ravel()
        cycles = 1 + np.arange(first.size, dtype=np.int64)
        return Trace(
            np.concatenate([first + p * lane_stride for p in range(lanes)]), np.tile(cycles, lanes)
        )

    def write_trace(self) -> Trace:
        """Group j (over h, m, g) ends its last step in cycle (j + 1) K; lane p's result is written
        PIPELINE_TAIL (and the operand stage) + p cycles later, for the lanes that are outputs."""
        h, m, n, k = self.loops()
        lanes, groups = self.lanes(), self.groups()
        j = np.arange(h * m * groups, dtype=np.int64).reshape(h, m, groups, 1)
        p = np.arange(lanes, dtype=np.int64)
        cycles = (j + 1) * k + PIPELINE_TAIL + self.operand_stage() + p
        feature = (j % groups) * lanes + p
        t_h, t_m, t_n = self.y_strides()
        addresses = np.arange(h).reshape(h, 1, 1, 1) * t_h + np.arange(m).reshape(1, m, 1, 1) * t_m + feature * t_n
        outputs = np.broadcast_to(feature < n, cycles.shape)
        return Trace(addresses[outputs], cycles[outputs])

    # The three MAC ops share these features but each has its own coefficient group (resource_group): they
    # instantiate the template with different operands (a ROM, a buffer, the constant 1) and strides.

    def signed_widths(self) -> tuple[int, int]:
        """Widths of A and B as the template multiplies them: signed, unsigned ones a bit wider."""
        x = self.in_type()
        b_bits = self.b_bits() + (0 if self.b_signed() else 1) if self.b_source != B_IS_ONE else 1
        return x.bits + (0 if x.signed else 1), b_bits

    def rescales(self) -> bool:
        """Whether the output stage really multiplies: a power-of-two multiplier (1, 2, 4 ...) is a shift,
        which synthesis makes of it (no DSP)."""
        multiplier = self.rescale().multiplier
        return bool(self.get_nodeattr("requant")) and multiplier & (multiplier - 1) != 0

    def dsps(self) -> int:
        x_bits, b_bits = self.signed_widths()
        product = multiplier_dsps(x_bits, b_bits) if self.wide_product() else 0
        own_scale = self.rescales() and not self.shares_rescale()
        scale = multiplier_dsps(self.acc_bits(), self.rescale().multiplier_bits + 1) if own_scale else 0
        return (self.dsp_lanes() - self.dsp_pairs()) * product + scale

    def shares_rescale(self) -> bool:
        """Whether the rescale multiplies on the shared multiplier (requantiser.py): asked for, and a
        multiply a DSP48E1 would do."""
        return bool(self.get_nodeattr("shared_rescale")) and self.scale_on_dsp()

    @op_memo
    def pair_widths(self) -> tuple[int, int]:
        """(PS, HW) of a pair's packed operand B_hi' * 2**PS + B_lo: PS bits hold any product A * B_lo, so the
        DSP's low PS bits are that product and the bits above it A * B_hi less its borrow; B_hi' = B_hi - 1
        when B_lo < 0 (the borrow of B_lo's sign extension), HW bits."""
        x, (lo, hi) = self.in_type(), self.b_range()
        corners = [x.lo * lo, x.lo * hi, x.hi * lo, x.hi * hi]
        return max(bits_signed(min(corners)), bits_signed(max(corners))), max(bits_signed(lo - 1), bits_signed(hi))

    def can_pair(self) -> bool:
        """Whether two lanes' products fit one DSP48E1: both from a ROM word, each product one DSP's, A times
        the packed operand still one DSP's as yosys maps it, and accumulators in the fabric already (a pair
        cannot accumulate in its DSP's P register: the low sums would carry into the high ones; a layer
        whose accumulators are their DSPs' would pay about 100 LUTs per pair, as much as a lane in LUTs)."""
        if self.b_source != B_FROM_ROM or not self.wide_product() or self.accumulator_in_dsp():
            return False
        x_bits, b_bits = self.signed_widths()
        return multiplier_dsps(x_bits, b_bits) == 1 and multiplier_dsps(x_bits, sum(self.pair_widths())) == 1

    def dsp_pairs(self) -> int:
        """Pairs of DSP lanes sharing one DSP48E1: the requested ones, as many as the DSP lanes make."""
        return min(self.get_nodeattr("dsp_pairs"), self.dsp_lanes() // 2) if self.can_pair() else 0

    def operand_stage(self) -> bool:
        """Whether the operands are registered before the products (a stage, one cycle): for products in LUTs,
        which must start from a register, and for pairs, whose packed operand is computed on the way."""
        return self.logic_lanes() > 0 or self.dsp_pairs() > 0

    def wide_product(self) -> bool:
        """Whether the product is wide enough for yosys to give it DSP48E1s (multiplier_dsps)."""
        return self.b_source != B_IS_ONE and multiplier_dsps(*self.signed_widths()) > 0

    def logic_lanes(self) -> int:
        """Lanes whose wide product is built in LUTs (qs_mul_logic): the requested ones, at most all."""
        return min(self.get_nodeattr("logic_lanes"), self.lanes()) if self.wide_product() else 0

    def dsp_lanes(self) -> int:
        """Lanes whose product is a DSP48E1's (none when the product is narrow, or B = 1)."""
        return self.lanes() - self.logic_lanes() if self.wide_product() else 0

    def product_on_dsp(self) -> bool:
        """Whether the first lane's product is a DSP48E1's (not logic, and not the plain sum of B = 1)."""
        return self.dsp_lanes() > 0

    def exact_resources(self) -> dict[str, int]:
        """The DSPs, and the LUTs and registers of wide products built in logic: each such lane's multiplier as
        calibration/logic_products.py measured it, its accumulator's adder, one LUT per bit above acc_shift
        (the bits a DSP's post-adder would have summed), its product and accumulator registers, and the
        operand stage before them; and what a pair of lanes on one DSP48E1 adds (calibration/dsp_pairs.py)."""
        resources = super().exact_resources()
        if self.logic_lanes():
            lane = forced_product_luts(*self.signed_widths()) + self.acc_bits() - self.acc_shift
            resources["LUT"] = self.logic_lanes() * lane
        if self.dsp_pairs():
            # per pair, the high product's borrow given back (an adder over the product's bits, the packed
            # operand's decrement merged into it but for a bit), and the operand stage's control when no
            # lane in LUTs needs that stage: measured by calibration/dsp_pairs.py
            stage = 0 if self.logic_lanes() else PAIR_STAGE_LUTS
            resources["LUT"] = resources.get("LUT", 0) + self.dsp_pairs() * (sum(self.signed_widths()) - 1) + stage
        if self.operand_stage():
            resources["FF"] = self.logic_lane_registers() + self.operand_stage_registers()
        if self.shares_rescale() and self.lanes() == 1:
            # the operand sent to the shared multiplier, 0 while there is none: a LUT per bit (with lanes, the
            # gate joins the multiplexer that picks the lane, which feeds an own rescale's DSP too)
            resources["LUT"] = resources.get("LUT", 0) + self.acc_bits()
        return resources

    def operand_stage_registers(self) -> int:
        """Flip-flops of the stage that registers the operands: its flags and its group tag; with products in
        LUTs, A and their B fields too (a DSP lane's field, a pair's packed operand, and A when only DSPs read
        it become the DSPs' input registers, as measured with pairs alone)."""
        if not self.operand_stage():
            return 0
        operands = self.signed_widths()[0] + self.logic_lanes() * self.b_bits() if self.logic_lanes() else 0
        return 3 + self.group_tag_bits() + operands

    def scale_on_dsp(self) -> bool:
        """Whether the rescale multiplies in a DSP48E1."""
        return self.rescales() and multiplier_dsps(self.acc_bits(), self.rescale().multiplier_bits + 1) > 0

    def accumulator_in_dsp(self) -> bool:
        """Whether each lane's accumulator is its product DSP's P register.  yosys's xilinx_dsp makes the
        accumulator's adder the DSP's post-adder only when the product enters it unshifted (acc_shift 0)
        and the sum fits the 48-bit P; otherwise the register and its adder stay in the fabric (synth keeps
        the accumulator out of a rescale DSP, see qonnx_spartan/synth.py)."""
        return self.product_on_dsp() and self.acc_shift == 0 and self.acc_bits() <= 48

    def low_bit_registers(self, registers: list[range]) -> int:
        """Flip-flops kept of the bits below acc_shift of registers that each hold the sums of the given
        lanes.  The product enters acc_shift bits up, so those bits only ever hold the lanes' start values: a bit
        that is 0 for every group and lane it holds stays 0 and synthesis drops it, and bits that take the
        same pattern over the groups and lanes are merged (measured by signal in the netlists)."""
        table = self.start_table()
        if table is None:
            return 0
        patterns = {
            ((table[:, list(lanes)] >> bit) & 1).tobytes() for lanes in registers for bit in range(self.acc_shift)
        }
        return sum(1 for pattern in patterns if any(pattern))

    def accumulator_register_bits(self, lanes: range | None = None) -> int:
        """Accumulator flip-flops of the given lanes (all by default): each lane's bits from acc_shift up,
        and their low bits."""
        lanes = range(self.lanes()) if lanes is None else lanes
        return len(lanes) * (self.acc_bits() - self.acc_shift) + self.low_bit_registers(
            [range(p, p + 1) for p in lanes]
        )

    def sum_register_bits(self, lanes: range) -> int:
        """Flip-flops of a register that takes the sums of the given lanes (hold, and a rescale in logic)."""
        return self.acc_bits() - self.acc_shift + self.low_bit_registers([lanes])

    def wrap_compare_bits(self) -> int:
        """Bits of the loop counters whose wrap needs a comparison: a counter over a power of two wraps by
        itself, and synthesis drops its compare (power-of-two layers cost visibly less logic)."""
        h, m, n, k = self.loops()
        sizes = (h, m, self.groups(), k, n)
        return sum(counter_bits(size) for size in sizes if size & (size - 1))

    def drain_counter_bits(self) -> int:
        """Flip-flops that count a finished group's lanes out through the rescale: hold_left (0 .. P-1) and
        acc_lanes, which only varies when the last group is short, and then as one bit in yosys's netlists
        (both measured by signal in the calibration designs' netlists)."""
        lanes, n = self.lanes(), self.loops()[2]
        if lanes == 1:
            return 0
        last_group_lanes = n - (self.groups() - 1) * lanes
        return (lanes - 1).bit_length() + (last_group_lanes != lanes)

    def address_generators(self) -> list[tuple[int, int]]:
        """(register bits, adder bits) of the A, B (when read) and output address generators."""
        h, m, n, k = self.loops()
        issue = (h, m, self.groups(), k)
        generators = [address_generator(self.a_strides(), issue, self.x_abits())]
        offset = self.a_offset()
        if offset:  # the offset's adder on the read address, over the bits above its trailing zeros
            registers, adders = generators[0]
            generators[0] = (registers, adders + self.x_abits() - (offset & -offset).bit_length() + 1)
        if self.b_source != B_IS_ONE:
            generators.append(address_generator(self.b_strides(), issue, self.b_abits()))
        generators.append(address_generator(self.y_strides(), (h, m, n), self.output_buffer().address_bits))
        return generators

    def output_head_zero_bits(self) -> int:
        """Bits of the output address generator's h-level register (y_h) that stay 0: it only ever adds the
        h stride to itself, so its bits below the stride's lowest set bit never change, and synthesis drops
        them (the registers below it and the input generators' keep theirs; measured by signal)."""
        h = self.loops()[0]
        stride = self.y_strides()[0]
        if h == 1 or stride == 0:
            return 0
        return min((stride & -stride).bit_length() - 1, self.output_buffer().address_bits)

    def group_tag_bits(self) -> int:
        """Bits of each group tag the pipeline carries (g1, g2): they select a start value or the lanes."""
        table = self.start_table()
        varying_start = table is not None and bool(np.any(table != table[0]))
        return counter_bits(self.groups()) if varying_start or self.lanes() > 1 else 0

    def registers(self) -> dict[str, int]:
        """The template's flip-flops, by signal, as synthesis keeps them: DSP registers (a product's M, an
        accumulator's P, the rescale's output) and bits that never change are not counted."""
        h, m, n, k = self.loops()
        lanes, groups = self.lanes(), self.groups()
        issue = (h, m, groups, k)
        x_bits, b_bits = self.signed_widths()
        out_bits = self.out_type().bits
        multiplies = self.b_source != B_IS_ONE
        group_bits = self.group_tag_bits()
        generators = self.address_generators()
        y_abits = self.output_buffer().address_bits
        return {
            "flags": 11,  # running, v1, v2, first1, first2, last1, last2, acc_valid, scaled_valid, out_we, done
            "issue_counters": sum(counter_bits(size) for size in issue),
            "output_counters": counter_bits(n) + counter_bits(m) + counter_bits(h * m * n + 1),
            "address_bases": sum(g[0] for g in generators) - self.output_head_zero_bits(),
            "write_address": y_abits if h * m * n > 1 else 0,  # one output: a constant address
            "group_tags": 2 * group_bits,
            "products": (lanes - self.dsp_lanes()) * (x_bits + b_bits if multiplies else x_bits),
            # the DSP lanes' accumulators may be their DSP's P register; the logic lanes' are in the fabric
            "accumulators": self.accumulator_register_bits(range(self.dsp_lanes(), lanes))
            if self.accumulator_in_dsp()
            else self.accumulator_register_bits(),
            # hold[p] takes lane p's sum and shifts down those of lanes p+1 ..
            "hold": sum(self.sum_register_bits(range(p, lanes)) for p in range(1, lanes)) + self.drain_counter_bits(),
            # a power-of-two rescale is wiring: the register holds the sums as they are
            "scaled": 0 if self.scale_on_dsp() else self.sum_register_bits(range(lanes)),
            "out_data": out_bits,
        }

    def logic_lane_registers(self) -> int:
        """Flip-flops of the lanes whose wide products are built in LUTs: product and accumulator."""
        lanes, logic = self.lanes(), self.logic_lanes()
        if not logic:
            return 0
        return logic * sum(self.signed_widths()) + self.accumulator_register_bits(range(lanes - logic, lanes))

    def resource_features(self) -> dict[str, float]:
        lanes = self.lanes()
        registers = self.registers()
        # the registers of lanes with wide products in LUTs are counted exactly (exact_resources)
        per_lane = registers["products"] + registers["accumulators"] - self.logic_lane_registers()
        extra_lane_registers = registers["hold"] + per_lane * (lanes - 1) / lanes
        x_bits, b_bits = self.signed_widths()
        acc_bits, out_bits = self.acc_bits(), self.out_type().bits
        multiplies = self.b_source != B_IS_ONE
        product_bits = x_bits + b_bits if multiplies else x_bits
        on_dsp, scale_on_dsp = self.product_on_dsp(), self.scale_on_dsp()
        # the fitted features describe the DSP lanes (or all lanes of a narrow product); wide products
        # built in logic are counted exactly (exact_resources)
        fitted_lanes = lanes - self.logic_lanes()
        scale_bits = self.scaled_bits()
        rescale = self.rescale()
        generators = self.address_generators()
        acc_in_dsp = self.accumulator_in_dsp()
        # the start values (biases) selected by group: an accumulator bit's LUT6 takes the bit, the product's
        # bit and `first`, so a group index of up to 3 bits selects the start value in the same LUT (one-lane
        # layers with 2-3 index bits came out 3-6 LUTs over with the table weighed); a wider index makes the
        # selection logic of its own, whose LUTs follow the table's content (`table_luts`)
        table = self.start_table()
        bias_luts = 0 if table is None or counter_bits(self.groups()) <= 3 else table_luts(table, acc_bits)
        acc_logic_bits = 0 if acc_in_dsp else fitted_lanes * (acc_bits - self.acc_shift)
        narrow = multiplies and not on_dsp and not self.wide_product()
        product_luts = logic_product_luts(self.in_type(), self.b_bits(), self.b_signed()) if narrow else 0
        return {
            "one": 1,
            # the registers of the lanes beyond the first are weighed apart: a one-lane count is close to
            # exact, the further lanes' is not (yosys drops some of their accumulator and hold bits)
            "register_bits": sum(registers.values()) - self.logic_lane_registers() - extra_lane_registers,
            "lane_register_bits": extra_lane_registers,
            "counter_bits": registers["issue_counters"] + registers["output_counters"],
            "wrap_compare_bits": self.wrap_compare_bits(),
            "address_register_bits": registers["address_bases"],
            "address_adder_bits": sum(g[1] for g in generators),
            "product_logic_bits": 0 if on_dsp or self.wide_product() else lanes * product_bits,
            "product_luts": product_luts,
            # further lanes multiply the same A: synthesis shares work between them (the 10-16-lane layers of
            # 2-5-bit designs were 10-23 LUTs over with every lane counted as a product apart)
            "lane_product_luts": (lanes - 1) * product_luts,
            "product_dsp_bits": fitted_lanes * product_bits if on_dsp else 0,
            # the product enters shifted by acc_shift: the adder spans the bits above it
            "acc_logic_bits": acc_logic_bits,
            # measured, not explained: layers whose lane count is not a power of two take more LUTs per
            # accumulator bit (3, 5 and 7 lanes came out 3-10 LUTs under per layer, 4 and 8 lanes 3 over)
            "uneven_lanes_acc_bits": acc_logic_bits if lanes & (lanes - 1) else 0,
            "acc_dsp_bits": fitted_lanes * acc_bits if acc_in_dsp else 0,
            "hold_bits": (lanes - 1) * acc_bits,
            "bias_table_luts": bias_luts,
            "scale_logic_bits": 0 if scale_on_dsp else scale_bits,
            "scale_dsp_bits": scale_bits if scale_on_dsp else 0,
            "scale_multiplier_luts": multiplier_luts(acc_bits, rescale.multiplier_bits + 1) if self.rescales() else 0,
            # the output stage reads the rescaled sum from the tie bits up (templates/mac.vhd.j2)
            **requantiser_features(
                scale_bits - rescale.tie_bits,
                rescale.shift - rescale.tie_bits if self.get_nodeattr("requant") else None,
                scale_on_dsp,
                out_bits,
            ),
        }

    def scaled_bits(self) -> int:
        """Width of the rescaled sum: the product's, and at least two bits above the shifted-out ones."""
        if not self.get_nodeattr("requant"):
            return self.acc_bits()
        rescale = self.rescale()
        return max(self.acc_bits() + rescale.multiplier_bits + 1, rescale.shift + 2)

    def x_abits(self) -> int:
        """Address bits of A's buffer: wide enough for every address the loops read."""
        return address_bits(self.a_offset() + last_address(self.loops(), self.a_strides()) + 1)

    def b_abits(self) -> int:
        memories = self.weight_memories()
        if "w" in memories:
            return memories["w"].address_bits
        return address_bits(last_address(self.loops(), self.b_strides()) + 1)

    def template_context(self) -> dict:
        x, rescale = self.in_type(), self.rescale()
        h, m, n, k = self.loops()
        lanes, groups = self.lanes(), self.groups()
        a_strides, b_strides = self.a_strides(), self.b_strides()
        # the lanes of a group share one read of A; B's n-stride is the stride of its words over groups
        assert lanes == 1 or a_strides[2] == 0, "lanes need A independent of n"
        issue = (h, m, groups, k)
        table = self.start_table()
        context = {
            "loops": dict(zip("hmnk", (h, m, n, k))),
            "lanes": lanes,
            "groups": groups,
            # a loop of one step never moves its address: its stride is irrelevant, and may not fit
            "a_strides": {d: s if size > 1 else 0 for d, s, size in zip("hmgk", a_strides, issue)},
            "b_strides": {d: s if size > 1 else 0 for d, s, size in zip("hmgk", b_strides, issue)},
            "y_strides": {d: s if size > 1 else 0 for d, s, size in zip("hmn", self.y_strides(), (h, m, n))},
            "b_source": self.b_source,
            "a_offset": self.a_offset(),
            "logic_lanes": self.logic_lanes(),
            "operand_stage": self.operand_stage(),
            "pairs": self.dsp_pairs(),
            "pair_widths": self.pair_widths() if self.dsp_pairs() else None,
            "x_bits": x.bits,
            "x_signed": x.signed,
            "b_bits": self.b_bits(),
            "b_signed": self.b_signed(),
            "acc_bits": self.acc_bits(),
            "acc_shift": self.acc_shift,
            "start": None if table is None else table.tolist(),
            "has_bias": self.bias() is not None,
            "round_start": self.rounding_half()[0],
            "round_product": self.rounding_half()[1],
            "round_offset": rescale.offset,
            "tie_bits": rescale.tie_bits,
            "requant": bool(self.get_nodeattr("requant")),
            "multiplier": rescale.multiplier,
            "multiplier_bits": rescale.multiplier_bits,
            "shift": rescale.shift,
            "scaled_bits": self.scaled_bits(),
            "shared_rescale": self.shares_rescale(),
            "copies": None,  # copies of B's buffer for lanes (IntMatMul)
            "window": self.read_window(),
            "a_abits": self.x_abits(),
            **self.output_context(),
        }
        memories = self.weight_memories()
        if "w" in memories:
            context["b_abits"] = memories["w"].address_bits
        return context

    @op_memo
    def start_table(self) -> np.ndarray | None:
        """(groups, lanes): the start value of output feature g*P + p (lanes past N are never written and
        repeat the rounding half, so a constant column stays constant); None when there is none.
        Read-only: it is kept (op_memo)."""
        start = self.start_values()
        if start is None:
            return None
        n, lanes, groups = self.loops()[2], self.lanes(), self.groups()
        padded = np.full(groups * lanes, self.rounding_half()[0], dtype=np.int64)
        padded[:n] = start
        table = padded.reshape(groups, lanes)
        table.flags.writeable = False
        return table

    def b_signed(self) -> bool:
        """Whether B's memory word is signed (weights are stored signed; a buffer as its type says)."""
        return True


class StridedMacOp(MacOp):
    """A MAC op whose loops and strides are node attributes, set by its lowering pattern (the attention
    products and the mean); IntLinear derives its own from the weights."""

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "loop_sizes": ("ints", True, [1, 1, 1, 1]),  # H, M, N, K
            "a_stride": ("ints", True, [0, 0, 0, 1]),  # over h, m, n, k
            "y_stride": ("ints", True, [0, 0, 1]),  # over h, m, n
        }

    def loops(self):
        return tuple(self.get_nodeattr("loop_sizes"))

    def a_strides(self):
        return tuple(self.get_nodeattr("a_stride"))

    def y_strides(self):
        return tuple(self.get_nodeattr("y_stride"))
