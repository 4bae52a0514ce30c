"""IntConv1d: a Conv1d with zero padding, y[t, n] = requantize(2**f * sum_{j,c} x[t*stride + j - pad, c] *
W[j, c, n] + b[n]), as an IntLinear whose rows overlap and whose reads outside the input are 0.

The lowering (ops/mac/lower.py) makes every Conv1d a linear layer over strided rows of its (time,
channels) buffer: k = j*C + c reads address t*stride*C + k, the kernel's taps over all channels in a row
(a dilation is a kernel with zero taps between).  Without padding that is an IntLinear (`a_stride`).  With
padding, A's addresses run over the padded tensor, pad*C zeros before the buffer and as many after as the
last window needs: `read_window` tells the template which addresses hold the buffer, and the others read as
0 (the read is masked, not the memory extended).

Its logic is a linear layer's (coefficient group "linear") plus the window's two comparisons and the
subtraction of its start, measured apart (calibration/conv_padding.py: PAD_LUTS).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from qonnx_spartan.intarith import IntType, Rescale
from qonnx_spartan.ops.mac.engine import last_address
from qonnx_spartan.ops.mac.int_linear import IntLinear

#: LUTs of the padding window (two comparisons of A's address, the subtraction of the window's start):
#: calibration/conv_padding.py measured 12-17 beyond the linear estimate over 5-9 address bits, 15 on average.
PAD_LUTS = 15


class IntConv1d(IntLinear):
    def get_nodeattr_types(self):
        return {
            **super().get_nodeattr_types(),
            "pad_before": ("i", True, 0),  # zero elements before the buffer in A's address space (pad*C)
            "in_elements": ("i", True, 0),  # elements of the input buffer (one batch item)
        }

    @staticmethod
    def make_node(
        name: str,
        inp: str,
        out: str,
        in_type: IntType,
        weights: np.ndarray,
        bias: np.ndarray,
        acc_shift: int,
        rescale: Rescale | None,
        out_type: IntType,
        out_lo: int,
        out_hi: int,
        out_shape: list[int],
        a_stride: list[int],
        y_stride: list[int] | None,
        pad_before: int,
        in_elements: int,
    ):
        """IntLinear.make_node's node (x read at `a_stride` over the padded addresses) with the window of
        addresses pad_before .. pad_before + in_elements - 1 that hold the buffer."""
        node = IntLinear.make_node(
            name, inp, out, in_type, weights, bias, acc_shift, rescale, out_type, out_lo, out_hi, out_shape,
            a_stride=a_stride, y_stride=y_stride,
        )
        node.op_type = "IntConv1d"
        window = {"pad_before": int(pad_before), "in_elements": int(in_elements)}
        node.attribute.extend(helper.make_attribute(key, value) for key, value in window.items())
        return node

    def a_operand(self, x: np.ndarray) -> np.ndarray:
        before = self.get_nodeattr("pad_before")
        after = max(0, last_address(self.loops(), self.a_strides()) + 1 - before - x.shape[1])
        return np.pad(x, ((0, 0), (before, after)))

    def read_window(self) -> dict:
        before = self.get_nodeattr("pad_before")
        return {"lo": before, "hi": before + self.get_nodeattr("in_elements")}

    def exact_resources(self) -> dict[str, int]:
        """The linear layer's (its products in LUTs among them), and the padding window's LUTs (measured apart)
        and its flag's flip-flop."""
        resources = super().exact_resources()
        return {**resources, "LUT": resources.get("LUT", 0) + PAD_LUTS, "FF": resources.get("FF", 0) + 1}
