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
"""

from __future__ import annotations

import numpy as np

from qonnx_spartan.intarith import Rescale, bits_signed, requantize
from qonnx_spartan.ops.base import SpartanOp, multiplier_dsps, multiplier_luts

#: Cycles from the last issue to the done pulse with one lane: read, product, accumulate, rescale,
#: saturate/write.
PIPELINE_TAIL = 5
B_FROM_ROM, B_FROM_PORT, B_IS_ONE = "rom", "port", "one"


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
            "acc_shift": ("i", False, 0),  # f: fractional accumulator bits below the product's LSB
            "out_lo": ("i", False, 0),
            "out_hi": ("i", False, 0),
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

    def groups(self) -> int:
        """Groups of P output features per dot-product row: the issue loop steps over them, not over n."""
        return -(-self.loops()[2] // self.lanes())

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
        return Rescale(self.get_nodeattr("multiplier"), self.get_nodeattr("shift"))

    def acc_range(self) -> tuple[int, int]:
        """Exact bound of every partial sum: each product's range contains 0, so sums of them stay
        between the sums of the extremes."""
        k = self.loops()[3]
        a, (b_lo, b_hi) = self.in_type(), self.b_range()
        corners = [a.lo * b_lo, a.lo * b_hi, a.hi * b_lo, a.hi * b_hi]
        lo, hi = k * min(corners + [0]) * 2**self.acc_shift, k * max(corners + [0]) * 2**self.acc_shift
        bias = self.bias()
        if bias is not None:
            lo, hi = lo + int(min(bias.min(), 0)), hi + int(max(bias.max(), 0))
        return lo, hi

    def acc_bits(self) -> int:
        return max(bits_signed(v) for v in self.acc_range())

    # -- the integer reference -----------------------------------------------------------------------
    def execute_node(self, context, graph):
        node = self.onnx_node
        x = self.as_int(context[node.input[0]])
        batch = x.shape[0]
        x = x.reshape(batch, -1)
        loops = self.loops()
        a = x[:, stride_addresses(loops, self.a_strides())]
        b = self.b_operand(context)
        if b.ndim == 2:
            b = b[:, stride_addresses(loops, self.b_strides())]
        elif b.size > 1:
            b = b[stride_addresses(loops, self.b_strides())][None]
        acc = (a * b).sum(axis=-1) * 2**self.acc_shift
        if self.bias() is not None:
            acc = acc + self.bias()
        if self.get_nodeattr("requant"):
            acc = requantize(acc, self.rescale(), self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))
        out_shape = self.get_nodeattr("out_shape")
        y = np.zeros((batch, int(np.prod(out_shape[1:], dtype=np.int64))), dtype=np.int64)
        y[:, stride_addresses(loops[:3], self.y_strides()).ravel()] = acc.reshape(batch, -1)
        context[node.output[0]] = y.reshape(batch, *out_shape[1:]).astype(np.float32)

    # -- hardware ------------------------------------------------------------------------------------
    def cycles(self) -> int:
        """One (group, k) step issued per cycle, then the pipeline; the last group's lanes after its first
        leave the shared rescale one per cycle (earlier groups drain while the next one accumulates)."""
        h, m, n, k = self.loops()
        lanes, groups = self.lanes(), self.groups()
        last_group_lanes = n - (groups - 1) * lanes
        return h * m * groups * k + PIPELINE_TAIL + last_group_lanes - 1

    def logic_resources(self) -> dict[str, int]:
        x = self.in_type()
        x_bits = x.bits + (0 if x.signed else 1)
        b_bits = self.b_bits() + (0 if self.b_signed() else 1)  # the signed widths the template multiplies
        acc_bits = self.acc_bits()
        lanes = self.lanes()
        multiplies = self.b_source != B_IS_ONE
        rescale = self.rescale()
        rescales = bool(self.get_nodeattr("requant")) and rescale.multiplier > 1
        product = (x_bits, b_bits) if multiplies else (1, 1)
        scale = (acc_bits, rescale.multiplier_bits + 1) if rescales else (1, 1)
        out_bits = self.out_type().bits
        counters = 4 * 8 + 3 * 12
        # per lane a product register and an accumulator; lanes past the first also a hold register
        # feeding the shared rescale through a multiplexer
        hold_bits = (lanes - 1) * acc_bits
        ff = counters + lanes * (x_bits + self.b_bits() + acc_bits) + hold_bits + acc_bits + out_bits + 16
        lut = counters + lanes * acc_bits + hold_bits
        lut += lanes * multiplier_luts(*product) + multiplier_luts(*scale)
        bias = self.bias()
        lut += out_bits * 2 + (len(bias) if bias is not None else 0)
        dsp = lanes * multiplier_dsps(*product) + multiplier_dsps(*scale)
        return {"LUT": lut, "FF": ff, "DSP": dsp}

    def template_context(self) -> dict:
        x, rescale = self.in_type(), self.rescale()
        h, m, n, k = self.loops()
        lanes, groups = self.lanes(), self.groups()
        a_strides, b_strides = self.a_strides(), self.b_strides()
        # the lanes of a group share one read of A; B's n-stride is the stride of its words over groups
        assert lanes == 1 or a_strides[2] == 0, "lanes need A independent of n"
        issue = (h, m, groups, k)
        bias = self.bias()
        context = {
            "loops": dict(zip("hmnk", (h, m, n, k))),
            "lanes": lanes,
            "groups": groups,
            # a loop of one step never moves its address: its stride is irrelevant, and may not fit
            "a_strides": {d: s if size > 1 else 0 for d, s, size in zip("hmgk", a_strides, issue)},
            "b_strides": {d: s if size > 1 else 0 for d, s, size in zip("hmgk", b_strides, issue)},
            "y_strides": {d: s if size > 1 else 0 for d, s, size in zip("hmn", self.y_strides(), (h, m, n))},
            "b_source": self.b_source,
            "x_bits": x.bits,
            "x_signed": x.signed,
            "b_bits": self.b_bits(),
            "b_signed": self.b_signed(),
            "acc_bits": self.acc_bits(),
            "acc_shift": self.acc_shift,
            "bias": None if bias is None else self.bias_by_group(bias).tolist(),
            "requant": bool(self.get_nodeattr("requant")),
            "multiplier": rescale.multiplier,
            "multiplier_bits": rescale.multiplier_bits,
            "shift": rescale.shift,
            **self.output_context(),
        }
        memories = self.weight_memories()
        if "w" in memories:
            context["b_abits"] = memories["w"].address_bits
        return context

    def bias_by_group(self, bias: np.ndarray) -> np.ndarray:
        """(groups, lanes): the bias of output feature g*P + p; lanes past N are never written, 0."""
        n, lanes, groups = self.loops()[2], self.lanes(), self.groups()
        padded = np.zeros(groups * lanes, dtype=np.int64)
        padded[:n] = bias
        return padded.reshape(groups, lanes)

    def b_signed(self) -> bool:
        """Whether B's memory word is signed (weights are stored signed; a buffer as its type says)."""
        return True
