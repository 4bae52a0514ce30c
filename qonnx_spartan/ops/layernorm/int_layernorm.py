"""IntLayerNorm: y = Quant(gamma * (x - mean) / sqrt(var + eps) + beta) over the last axis, in integers.

Per row of C inputs x (scale s):
    S = sum x,  d_i = C*x_i - S  (C times the deviation, exact),  W = sum d_i**2  (= C**3 var / s**2)
    so (x_i - mean) / sqrt(var + eps) = sqrt(C) * d_i / sqrt(W + eps*C**3/s**2).
The square root and the division are restoring (shift and subtract, one bit per cycle, no multiplier):
    Wf = W * 4**f + E            E = round(eps*C**3/s**2 * 4**f): eps to 2**-12 of the smallest W of a row
                                 that is not constant
    q  = isqrt(Wf * 4**g)        g: q has at least 17 bits for every row that is not constant
    r  = 2**D // q               D: r has at least 16 significant bits at the largest q
    z  = (d_i * r) >> k          k = D - g - f - Z: z = sqrt(C)-scaled normalised value with Z = 16
                                 fraction bits, |z| < 2**Z
    y  = clip(round_half_even((z * G[c] + B[c]) / 2**shift))   G = gamma*sqrt(C)/s_y/2**Z, B = beta/s_y
so the error against the real LayerNorm is about 2**-16 of a normalised unit, far below an output LSB.
The restoring methods cost two subtractors and shift registers, where Newton steps need multipliers (DSPs)
at every step and a table over W's range would need a normalisation (a priority encoder and barrel
shifters) to stay small: for the few rows of a time-series model the bit-serial cycles are cheap.

Hardware, per row: a pass that sums x, a pass that sums d**2, the square root (one cycle per root bit) and
the division (one per quotient bit), and a pass that writes y; each pass waits for its pipeline to drain,
so the cycle count is fixed.
"""

from __future__ import annotations

import math

import numpy as np

from qonnx_spartan.intarith import MULTIPLIER_BITS, IntType, bits_signed, shift_round_half_even
from qonnx_spartan.ops.base import SpartanOp, Trace, counter_bits, int_tensor, multiplier_dsps, op_node, pass_traces
from qonnx_spartan.ops.elementwise.engine import fixed_point
from qonnx_spartan.rom_cells import table_luts

#: Fraction bits of the normalised value z (sqrt(C)-scaled): its rounding is 2**-16 of a unit.
Z_BITS = 16
#: Bits the root q keeps at the least variance of a row that is not constant, and the quotient at the most.
ROOT_BITS, QUOTIENT_BITS = 17, 16
#: The offsets are VHDL integer literals: 32-bit two's complement.
OFFSET_LIMIT = 2**31
#: Every intermediate stays below this in the int64 reference.
INT64_LIMIT = 1 << 62
#: Cycles a pass waits after its last read: the sum pass (read, accumulate), the variance pass (read,
#: deviation, square, accumulate) and the output pass (read, deviation, d*r, shift, z*G+B, write).
SUM_TAIL, SQUARE_TAIL, OUTPUT_TAIL = 2, 4, 6


def isqrt(values: np.ndarray) -> np.ndarray:
    return np.array([math.isqrt(int(v)) for v in np.ravel(values)], dtype=np.int64).reshape(np.shape(values))


class IntLayerNorm(SpartanOp):
    template = "layernorm.vhd.j2"
    resource_group = "layernorm"

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "in_dtype": ("s", True, ""),
            "eps_term": ("i", True, 0),  # E
            "eps_bits": ("i", True, 0),  # f
            "root_shift": ("i", True, 0),  # g
            "quotient_bits": ("i", True, 0),  # D
            "z_shift": ("i", True, 0),  # k
            "mult": ("t", True, np.zeros(1, dtype=np.int64)),  # G per channel
            "offset": ("t", True, np.zeros(1, dtype=np.int64)),  # B per channel
            "shift": ("i", True, 0),
            "out_lo": ("i", True, 0),
            "out_hi": ("i", True, 0),
        }

    @staticmethod
    def make_node(
        name: str,
        inp: str,
        out: str,
        in_type: IntType,
        in_scale: float,
        gamma: np.ndarray,
        beta: np.ndarray,
        eps: float,
        out_type: IntType,
        out_scale: float,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
    ):
        """The node for a LayerNorm over the last axis (C = out_shape[-1] channels) of integers with scale
        in_scale, quantised to out_type with scale out_scale and clipped to [out_lo, out_hi]."""
        c = int(out_shape[-1])
        gamma = np.broadcast_to(np.asarray(gamma, dtype=np.float64), (c,))
        beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), (c,))
        if not (np.all(np.isfinite(gamma)) and np.all(np.isfinite(beta)) and eps >= 0 and in_scale > 0):
            raise ValueError(f"{name}: gamma, beta and eps must be finite (eps not negative)")
        if c < 2:
            raise ValueError(f"{name}: a LayerNorm over one channel is its beta; normalise two or more")
        span = in_type.hi - in_type.lo
        w_min, w_max = c * (c - 1), c * (c * span) ** 2  # the least W of a row that is not constant, the most
        eps_real = eps * c**3 / in_scale**2
        f = max(0, math.ceil(math.log2(2**11 / w_min) / 2)) if eps_real > 0 else 0
        e = int(round(eps_real * 4**f))
        g = max(0, ROOT_BITS - math.isqrt(w_min * 4**f + e).bit_length())
        q_max = math.isqrt((w_max * 4**f + e) * 4**g)
        d_bits = QUOTIENT_BITS + q_max.bit_length()
        k = d_bits - g - f - Z_BITS
        if k < 0 or e >= 2**31 or (w_max * 4**f + e) * 4**g >= INT64_LIMIT:
            raise ValueError(
                f"{name}: a LayerNorm over {c} channels of {in_type.name} is too wide for the integer datapath"
            )
        (mult, offset), shift = fixed_point(
            (gamma * math.sqrt(c) / out_scale / 2**Z_BITS, 2**MULTIPLIER_BITS), (beta / out_scale, OFFSET_LIMIT)
        )
        return op_node(
            "IntLayerNorm",
            [inp],
            out,
            name,
            out_type,
            out_shape,
            in_dtype=in_type.name,
            eps_term=e,
            eps_bits=f,
            root_shift=g,
            quotient_bits=d_bits,
            z_shift=k,
            mult=int_tensor("mult", mult),
            offset=int_tensor("offset", offset),
            shift=shift,
            out_lo=int(out_lo),
            out_hi=int(out_hi),
        )

    # -- geometry ------------------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return int(self.get_nodeattr("out_shape")[-1])

    @property
    def rows(self) -> int:
        return int(np.prod(self.get_nodeattr("out_shape")[1:-1], dtype=np.int64))

    def mult(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("mult"), dtype=np.int64)

    def offsets(self) -> np.ndarray:
        return np.asarray(self.get_nodeattr("offset"), dtype=np.int64)

    def bounds(self) -> dict[str, int]:
        """The largest magnitude of each value the hardware holds, from the input range."""
        c, x = self.channels, self.in_type()
        f, g, e = (self.get_nodeattr(a) for a in ("eps_bits", "root_shift", "eps_term"))
        d_max = c * (x.hi - x.lo)
        w_max = c * d_max**2
        radicand = (w_max * 4**f + e) * 4**g
        q_min = math.isqrt(e * 4**g)  # a constant row: W = 0
        q_nonconst = math.isqrt((c * (c - 1) * 4**f + e) * 4**g)
        quotient = (1 << self.get_nodeattr("quotient_bits")) // max(q_nonconst, 1)
        return {
            "sum": max(abs(c * x.lo), abs(c * x.hi)),
            "deviation": d_max,
            "w": w_max,
            "radicand": radicand,
            "root": math.isqrt(radicand),
            "quotient": quotient,
            "constant_root": q_min,
            "z": 1 << Z_BITS,
            "product": d_max * quotient,
            "scaled": (1 << Z_BITS) * int(np.abs(self.mult()).max()) + int(np.abs(self.offsets()).max()),
        }

    def widths(self) -> dict[str, int]:
        """Bits of the hardware's registers (signed where the value is)."""
        b = self.bounds()
        return {
            "sum_bits": bits_signed(b["sum"]),
            "d_bits": bits_signed(b["deviation"]),
            "w_bits": b["w"].bit_length(),
            "radicand_bits": b["radicand"].bit_length() + b["radicand"].bit_length() % 2,  # whole bit pairs
            "root_bits": b["root"].bit_length(),
            "quotient_bits_width": b["quotient"].bit_length(),
            "operand_bits": max(bits_signed(b["deviation"]), b["quotient"].bit_length() + 1),  # d or r, signed
            "z_bits": Z_BITS + 1,
            "product_bits": bits_signed(b["product"]),
            "scaled_bits": max(bits_signed(b["scaled"]), self.get_nodeattr("shift") + 2),
        }

    # -- the integer reference -----------------------------------------------------------------------
    def normalised(self, x: np.ndarray) -> np.ndarray:
        """z for every element of rows x (..., C)."""
        c = self.channels
        f, g, e, k = (self.get_nodeattr(a) for a in ("eps_bits", "root_shift", "eps_term", "z_shift"))
        s = x.sum(axis=-1, keepdims=True)
        d = c * x - s
        w = (d * d).sum(axis=-1, keepdims=True)
        q = isqrt((w * 4**f + e) * 4**g)
        quotient_max = (1 << self.widths()["quotient_bits_width"]) - 1
        r = np.where(q > 0, (1 << self.get_nodeattr("quotient_bits")) // np.maximum(q, 1), quotient_max)
        r = np.minimum(r, quotient_max)  # a constant row (d = 0): the divider's quotient saturates
        return (d * r) >> k

    def execute_node(self, context, graph):
        x = self.input_as_output(context)
        z = self.normalised(x)
        y = shift_round_half_even(z * self.mult() + self.offsets(), self.get_nodeattr("shift"))
        y = np.clip(y, self.get_nodeattr("out_lo"), self.get_nodeattr("out_hi"))
        context[self.onnx_node.output[0]] = y.astype(np.float32)

    # -- hardware ------------------------------------------------------------------------------------
    def root_steps(self) -> int:
        return self.widths()["radicand_bits"] // 2

    def row_cycles(self) -> int:
        c, w = self.channels, self.widths()
        return 3 * c + SUM_TAIL + SQUARE_TAIL + OUTPUT_TAIL + self.root_steps() + w["quotient_bits_width"]

    def cycles(self) -> int:
        return self.rows * self.row_cycles()

    def row_passes(self) -> tuple[np.ndarray, np.ndarray]:
        """(addresses, cycles) of channel i of row r in each pass that reads it: the sum pass, the square pass
        and the output pass, at row cycles i, + C + SUM_TAIL, and after the root and the division."""
        c, rows, w = self.channels, self.rows, self.widths()
        square = c + SUM_TAIL
        output = square + c + SQUARE_TAIL + self.root_steps() + w["quotient_bits_width"]
        element = np.arange(rows * c, dtype=np.int64).reshape(rows, 1, c)
        passes = np.array([0, square, output], dtype=np.int64).reshape(1, 3, 1)
        first = 1 + np.arange(rows, dtype=np.int64).reshape(rows, 1, 1) * self.row_cycles() + element % c
        return np.broadcast_to(element, (rows, 3, c)), first + passes

    def read_trace(self, port: str) -> Trace:
        return pass_traces(*self.row_passes(), OUTPUT_TAIL)[0]

    def write_trace(self) -> Trace:
        """The output pass's channel i is written OUTPUT_TAIL cycles after its read, in address order."""
        return pass_traces(*self.row_passes(), OUTPUT_TAIL)[1]

    def products(self) -> list[tuple[int, int]]:
        """Signed operand widths of the template's multipliers: d times d or r (one multiplier for the square
        pass's d * d and the output pass's d * r, which never overlap: the DSPs of d * d are saved for a
        multiplexer on the second operand) and z * G; C * x is a product by a constant."""
        w = self.widths()
        mult_bits = max(bits_signed(int(v)) for v in self.mult())
        return [(w["d_bits"], w["operand_bits"]), (w["z_bits"], mult_bits)]

    def dsps(self) -> int:
        """The products' DSPs; C * x takes one only when C is not a power of two (a shift) and the product
        reaches 9 bits (the calibration's 2-bit x times 24 stayed in logic)."""
        x, c = self.in_type(), self.channels
        scale = 0 if c & (c - 1) == 0 else multiplier_dsps(x.bits + (0 if x.signed else 1), c.bit_length() + 1)
        return scale + sum(multiplier_dsps(*p) for p in self.products())

    def exact_resources(self) -> dict[str, int]:
        """The DSPs, and the SRLs yosys makes of the channel index's delay line (one LUTRAM per bit, measured
        on every calibration design)."""
        srl = counter_bits(self.channels)
        return {"DSP": self.dsps(), "LUTRAM": srl, "LUT": srl}

    def registers(self) -> int:
        """Flip-flops synthesis keeps of the template's: control and counters, the passes' tags, the row's
        sum and squares, the root's and the divider's registers, the output pipeline.  d and the multiplier's
        second operand become the DSP's A and B registers and `scaled` its P register (on DSPs), and the
        radicand's low 2g bits are always 0 (loaded 0, shifted in 0): yosys keeps none of them in the fabric
        (the single-op designs' netlists)."""
        w, c = self.widths(), self.channels
        qb = w["root_bits"]
        shared, scale = (multiplier_dsps(*p) > 0 for p in self.products())
        control = 3 + counter_bits(self.row_cycles()) + counter_bits(self.rows) + counter_bits(c)  # running, we, done
        tags = 12 + 2 * counter_bits(c)  # sum1 .. out5, first1 .. first3, ch1 and ch4 (ch2, ch3: an SRL)
        operands = 0 if shared else w["d_bits"] + w["operand_bits"]  # d, d or r
        row = w["sum_bits"] + operands + 2 * w["w_bits"]  # sum, d*d, W
        radicand = w["radicand_bits"] - 2 * self.get_nodeattr("root_shift")
        root = radicand + (qb + 4) + qb + (qb + 1) + w["quotient_bits_width"]
        output = w["product_bits"] + w["z_bits"] + (0 if scale else w["scaled_bits"]) + self.out_type().bits
        addresses = 2 * self.output_buffer().address_bits + counter_bits(self.rows * c)  # row base, out_addr, index
        return control + tags + row + root + output + addresses

    def resource_features(self) -> dict[str, float]:
        """Registers (counted), the adders and subtractors (sum, squares, root, divider, deviation, counters),
        the shared multiplier's operand multiplexer (d or r), the radicand's loading shift register, the
        output's rounding and saturation, and the per-channel G and B selected by channel: logic whose LUTs
        follow the tables' content."""
        w = self.widths()
        qb = w["root_bits"]
        adders = w["sum_bits"] + w["w_bits"] + (qb + 4) + (qb + 1) + w["d_bits"]
        mult_bits = max(bits_signed(int(v)) for v in self.mult())
        tables = table_luts(self.mult()[:, None], mult_bits) + table_luts(self.offsets()[:, None], w["scaled_bits"])
        return {
            "one": 1,
            "register_bits": self.registers(),
            "adder_bits": adders + counter_bits(self.row_cycles()) + counter_bits(self.channels),
            "operand_bits": w["operand_bits"],
            "radicand_bits": w["radicand_bits"],
            "round_bits": w["scaled_bits"],
            "table_luts": tables,
        }

    def template_context(self) -> dict:
        x = self.in_type()
        return {
            **self.widths(),
            "rows": self.rows,
            "channels": self.channels,
            "x_bits": x.bits,
            "x_signed": x.signed,
            "eps_term": self.get_nodeattr("eps_term"),
            "eps_bits": self.get_nodeattr("eps_bits"),
            "root_shift": self.get_nodeattr("root_shift"),
            "quotient_exponent": self.get_nodeattr("quotient_bits"),
            "root_steps": self.root_steps(),
            "z_shift": self.get_nodeattr("z_shift"),
            "mults": [int(v) for v in self.mult()],
            "offsets": [int(v) for v in self.offsets()],
            "mult_bits": max(bits_signed(int(v)) for v in self.mult()),
            "shift": self.get_nodeattr("shift"),
            "row_cycles": self.row_cycles(),
            **self.output_context(),
        }
