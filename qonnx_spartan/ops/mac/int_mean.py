"""IntMean: the mean over time (ReduceMean), y[n] = requantize(sum_k x[k, n]) with 1/K in the rescale.

The MAC engine with B = 1: an adder and no multiplier.
"""

from __future__ import annotations


from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.ops.base import op_node
from qonnx_spartan.ops.mac.engine import B_IS_ONE, StridedMacOp


class IntMean(StridedMacOp):
    resource_group = "mean"
    b_source = B_IS_ONE

    @staticmethod
    def make_node(
        name: str,
        inp: str,
        out: str,
        in_type: IntType,
        features: int,
        steps: int,
        strides: tuple[int, int],
        rescale: Rescale | None,
        out_type: IntType,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
        offset: int = 0,
    ):
        """The node computing the `features` sums of `steps` terms each, read at strides (feature, step) from
        address `offset`, requantised by `rescale` (1/steps in it) and clipped to [out_lo, out_hi]; `rescale`
        None outputs the sums themselves."""
        return op_node(
            "IntMean",
            [inp],
            out,
            name,
            out_type,
            out_shape,
            in_dtype=in_type.name,
            loop_sizes=[1, 1, features, steps],
            a_stride=[0, 0, strides[0], strides[1]],
            **({"a_offset": offset} if offset else {}),
            y_stride=[0, 0, 1],
            multiplier=rescale.multiplier if rescale else 1,
            shift=rescale.shift if rescale else 0,
            **({"round_offset": rescale.offset, "tie_bits": rescale.tie_bits} if rescale and rescale.tie_bits else {}),
            out_lo=out_lo,
            out_hi=out_hi,
            **({} if rescale else {"requant": 0}),
        )

