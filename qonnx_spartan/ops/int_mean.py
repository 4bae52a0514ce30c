"""IntMean: the mean over time (ReduceMean), y[n] = requantize(sum_k x[k, n]) with 1/K in the rescale.

The MAC engine with B = 1: an adder and no multiplier.
"""

from __future__ import annotations

from qonnx_spartan.ops.mac import B_IS_ONE, MacOp


class IntMean(MacOp):
    resource_group = "mean"
    b_source = B_IS_ONE

    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "loop_sizes": ("ints", True, [1, 1, 1, 1]),  # H, M, N, K
            "a_stride": ("ints", True, [0, 0, 0, 1]),
            "y_stride": ("ints", True, [0, 0, 1]),
        }

    def loops(self):
        return tuple(self.get_nodeattr("loop_sizes"))

    def a_strides(self):
        return tuple(self.get_nodeattr("a_stride"))

    def y_strides(self):
        return tuple(self.get_nodeattr("y_stride"))
