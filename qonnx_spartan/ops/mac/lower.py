"""Lowering patterns of the MAC engine's ops (registered in PATTERNS, walked by transforms/lower.py):

    MatMul(x, Quant(W)) [Add bias] [Relu] [Mul c] [Quant]  -> IntLinear (no Quant after it: its accumulator)
    MatMul(a, b) [Mul c] Quant                             -> IntMatMul (heads and K^T as strided addressing)
    MatMul(a, b) [Mul c] Softmax                           -> IntMatMul (scores at half the softmax output's LSB)
    ReduceMean over any strided view [Mul c] [Quant]       -> IntMean
    Conv (1-D, groups 1) [Relu] [Mul c] [Quant]            -> IntLinear over overlapping rows; IntConv1d with padding

Each pattern ends at the activation Quant after it, or at the reader of an unquantised accumulator.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import partial

import numpy as np
from qonnx.util.basic import get_by_name

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.intarith import IntType, Rescale, bits_signed, matmul_range
from qonnx_spartan.ops.elementwise.lower import batchnorm_affine
from qonnx_spartan.ops.mac.int_conv1d import IntConv1d
from qonnx_spartan.ops.mac.int_linear import IntLinear
from qonnx_spartan.ops.mac.int_matmul import IntMatMul
from qonnx_spartan.ops.mac.int_mean import IntMean
from qonnx_spartan.transforms.lower import (
    ACCUMULATOR_BIAS_ERROR_LSB,
    BIAS_ERROR_LSB,
    IntTensor,
    Lowering,
    Pattern,
    fixed_point_bias,
)
from qonnx_spartan.transforms.quant import constant_weights, node_label, quant_spec
from qonnx_spartan.transforms.views import affine_strides, apply_view, is_identity, offset_strides


def lower_matmul(lowering: Lowering, matmul) -> None:
    a_name, b_name = matmul.input
    if lowering.is_activation(a_name) and lowering.is_activation(b_name):
        lower_activation_matmul(lowering, matmul)
    elif lowering.is_activation(a_name):
        lower_linear(lowering, matmul)
    elif lowering.is_activation(b_name):
        raise SpartanError(
            f"{node_label(matmul)}: weights on the left of a MatMul are supported as a matrix only, not batched; "
            "write x @ W (QuantLinear)"
        )
    else:
        lowering.operand(a_name, matmul)  # raises: neither input is quantised


def lower_linear(lowering: Lowering, matmul) -> None:
    x, table = lowering.operand(matmul.input[0], matmul)
    weights = constant_weights(lowering.model, matmul.input[1], matmul)
    w = weights.values
    if w.ndim != 2:
        raise SpartanError(f"{node_label(matmul)}: weights of shape {list(w.shape)} are not a matrix")
    bias_values = np.zeros(w.shape[1])
    fused = [matmul]
    nxt = lowering.only_consumer(matmul.output[0], matmul)
    if nxt is not None and nxt.op_type == "Add" and not all(lowering.is_activation(t) for t in nxt.input):
        other = nxt.input[1] if nxt.input[0] == matmul.output[0] else nxt.input[0]
        values, spec = lowering.constant(other)
        if values is None or values.size != w.shape[1]:
            raise SpartanError(f"{node_label(nxt)}: the bias must be a constant of {w.shape[1]} values")
        bias_values = values.reshape(-1) * (spec.scale if spec is not None else 1.0)
        fused.append(nxt)

    def write(tail_node, quantised: bool):
        if quantised and not is_identity(table):
            # x read transposed (W @ x): the result is written in the layout of the views that read it
            rows = int(np.prod(lowering.shape(matmul.output[0])[:-1]))
            return writer_view(lowering, tail_node, (1, rows, w.shape[1]))
        return tail_node.output[0], None, []

    a_offset, a_stride = (0, None) if is_identity(table) else row_strides(matmul, table)
    make = partial(IntLinear.make_node, a_stride=a_stride, a_offset=a_offset)
    emit_linear(lowering, fused, x, w, weights.spec.scale, bias_values, write, make)


def emit_linear(lowering: Lowering, fused: list, x: IntTensor, w, w_scale: float, bias_values, write, make_node, **how):
    """The linear layer of the exported nodes `fused` (its product and bias), through the Relu, scalar Muls
    and Quant after them: bias precision, rescale and output type; `write(tail node, quantised)` says where
    the result goes ((tensor, y_stride or None, views taken in)), `make_node` makes the op with `how`."""
    matmul = fused[0]
    acc_scale = x.scale * w_scale
    chain, out_quant = lowering.quant_after(fused[-1], allowed=("Relu", "Mul"), open_end=True)
    fused = fused + chain
    relu = any(n.op_type == "Relu" for n in chain)
    factor = lowering.scalar_factor(fused, [n for n in chain if n.op_type == "Mul"])
    bias_values, acc_scale = bias_values * factor, acc_scale * factor  # (x W + b) c = x W c + b c

    if out_quant is not None:
        ratio, bound = acc_scale / out_quant.scale, BIAS_ERROR_LSB
    else:  # an accumulator: finer where the scales are not powers of two (ACCUMULATOR_BIAS_ERROR_LSB)
        ratio = downstream_ratio(lowering, fused[-1], acc_scale)
        float_ratio = ratio is not None and math.frexp(ratio)[0] != 0.5
        bound = ACCUMULATOR_BIAS_ERROR_LSB if float_ratio else BIAS_ERROR_LSB
    acc_shift, bias = fixed_point_bias(fused[1] if len(fused) > 1 else matmul, bias_values / acc_scale, ratio, bound)
    acc_scale /= 2**acc_shift
    acc_lo, acc_hi = matmul_range(x.dtype, w * 2**acc_shift, bias)
    tail, y_strides, views = write(fused[-1], out_quant is not None)
    fused += views
    shape = lowering.buffer_shape(tail if views else matmul.output[0])
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
    node = make_node(
        matmul.name,
        x.name,
        out.name,
        x.dtype,
        w,
        bias,
        acc_shift,
        rescale,
        out.dtype,
        out.lo,
        out.hi,
        shape,
        y_stride=y_strides,
        **how,
    )
    lowering.finish(fused, out, node)


def lower_conv(lowering: Lowering, conv) -> None:
    """A Conv over (batch, channels, time) with a 3-D weight (a QuantConv1d, groups 1) as a linear layer over
    overlapping rows of its input: output step t reads k = j*C + c at t*stride*s_t + k*s_c, which is affine
    when a time step's channels are contiguous (s_t = C*s_c: the usual x.transpose(1, 2) of a (B, T, C)
    tensor), or for a kernel of one tap.  A dilation is a kernel with zero taps between; padding makes it an
    IntConv1d (reads outside the input are 0), none an IntLinear."""
    x, table = lowering.operand(conv.input[0], conv)
    weights = constant_weights(lowering.model, conv.input[1], conv)
    w = weights.values
    attr = {a.name: a for a in conv.attribute}
    if w.ndim != 3 or table.ndim != 3 or table.shape[0] != 1:
        raise SpartanError(f"{node_label(conv)}: only a Conv1d ((batch, channels, time), 3-D weight) is supported")
    if "group" in attr and attr["group"].i != 1:
        raise SpartanError(
            f"{node_label(conv)}: a grouped or depthwise Conv1d (groups={attr['group'].i}) is not supported; "
            "write groups=1, or one QuantConv1d per group"
        )
    n_out, channels, taps = w.shape
    stride = attr["strides"].ints[0] if "strides" in attr else 1
    dilation = attr["dilations"].ints[0] if "dilations" in attr else 1
    steps = table.shape[2]
    span = (taps - 1) * dilation + 1  # the kernel with its dilation's zero taps
    pad_lo, pad_hi = conv_pads(conv, attr, steps, span, stride)
    out_steps = (steps + pad_lo + pad_hi - span) // stride + 1
    strides = affine_strides(table)
    if strides is None:
        raise SpartanError(f"{node_label(conv)}: its input is a reshape/transpose that is not a strided view")
    s_c, s_t = strides[1] or 1, strides[2]
    if span > 1 and s_t != channels * s_c:
        raise SpartanError(
            f"{node_label(conv)}: a Conv1d reads a time step's channels together; give it x.transpose(1, 2) of a "
            "(batch, time, channels) tensor (its input here is channel-major)"
        )
    if (pad_lo or pad_hi) and (s_c != 1 or table.size != np.prod(x.shape)):
        raise SpartanError(
            f"{node_label(conv)}: padding is supported for a Conv1d reading a whole (time, channels) buffer"
        )
    expanded = np.zeros((n_out, channels, span), dtype=np.int64)
    expanded[:, :, ::dilation] = w
    matrix = expanded.transpose(2, 1, 0).reshape(span * channels, n_out)  # row k = j*C + c
    bias_values = np.zeros(n_out)
    if len(conv.input) > 2 and conv.input[2]:
        values, spec = lowering.constant(conv.input[2])
        if values is None or values.size != n_out:
            raise SpartanError(f"{node_label(conv)}: the bias must be a constant of {n_out} values")
        bias_values = values.reshape(-1) * (spec.scale if spec is not None else 1.0)

    time_major = []  # the quantised result held time-major for the Conv1d layers that read it

    def write(tail_node, quantised: bool):
        """The (N, T') result written in the layout of the views that alone read it (time-major after the
        usual transpose back); time-major too, in a buffer of its own, when only Conv1d layers read it (a
        stack of Conv1d: each reads a time step's channels together); else as the Conv's (batch, channels,
        time)."""
        chain, position = view_positions(lowering, tail_node)
        strides = affine_strides(position.reshape(1, n_out, out_steps).transpose(0, 2, 1))
        if chain and strides is not None:
            return chain[-1].output[0], strides, chain
        tail = tail_node.output[0]
        readers = lowering.model.find_consumers(tail) or []
        outputs = {o.name for o in lowering.model.graph.output}
        if quantised and readers and all(r.op_type == "Conv" for r in readers) and tail not in outputs:
            time_major.append(tail)
            return f"{tail}_time_major", (0, n_out, 1), []
        return tail, (0, 1, out_steps), []

    a_stride = [0, stride * s_t, 0, s_c]
    if pad_lo or pad_hi:
        make = partial(IntConv1d.make_node, pad_before=pad_lo * channels, in_elements=table.size)
    else:
        make = IntLinear.make_node
    emit_linear(lowering, [conv], x, matrix, weights.spec.scale, bias_values, write, make, a_stride=a_stride)
    for tail in time_major:  # its readers see the (batch, channels, time) tensor as a view of that buffer
        table = np.arange(n_out * out_steps).reshape(1, out_steps, n_out).transpose(0, 2, 1)
        lowering.views[tail] = (f"{tail}_time_major", table)


def conv_pads(conv, attr: dict, steps: int, span: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of the time axis: the `pads` attribute, or what `auto_pad` asks for (the
    TorchScript exporter writes `padding="same"` as SAME_UPPER: the output has ceil(steps / stride) steps,
    an odd total padding's extra step after the input, before it for SAME_LOWER)."""
    auto = attr["auto_pad"].s.decode() if "auto_pad" in attr else "NOTSET"
    if auto in ("", "NOTSET"):
        return tuple(attr["pads"].ints) if "pads" in attr else (0, 0)
    if auto == "VALID":
        return 0, 0
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise SpartanError(f"{node_label(conv)}: auto_pad {auto} is not a padding; give the padding explicitly")
    total = max((-(-steps // stride) - 1) * stride + span - steps, 0)
    small, large = total // 2, total - total // 2
    return (small, large) if auto == "SAME_UPPER" else (large, small)


def row_strides(matmul, table: np.ndarray) -> tuple[int, list[int]]:
    """(offset, (h, m, n, k) strides) of a linear layer's input read through a view (a transposed x, as
    `W @ x` and Gemm's transA canonicalise; a selected time step, `x[:, -1]`): rows over every axis but the
    last, features over the last."""
    found = offset_strides(table.reshape(1, -1, 1, table.shape[-1]))
    if found is None:
        raise SpartanError(f"{node_label(matmul)}: its input is a reshape/transpose/index that is not a strided view")
    offset, strides = found
    return offset, [0, strides[1], 0, strides[3]]


def lower_activation_matmul(lowering: Lowering, matmul) -> None:
    a, a_table = lowering.operand(matmul.input[0], matmul)
    b, b_table = lowering.operand(matmul.input[1], matmul)
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
    scores = softmax_scores(lowering, matmul, a, b, k)
    if scores is not None:
        out, rescale, chain = scores
        node = matmul_node(matmul, a, b, out, rescale, heads, m, n, k, a_str, b_str, (m * n, n, 1))
        lowering.finish([matmul, *chain], out, node)
        lowering.scores.add(out.name)
        return
    chain, out_quant = lowering.quant_after(matmul, allowed=("Mul",))
    if out_quant is None:
        raise SpartanError(f"{node_label(matmul)}: a product of two activations must be quantised")
    factor = lowering.scalar_factor([matmul, *chain], chain[:-1])
    quant = chain[-1]
    out_name, y_table, view_nodes = writer_view(lowering, quant, (heads, m, n))
    shape = lowering.buffer_shape(out_name)
    out = IntTensor.quantised(out_name, out_quant, shape)
    rescale = Rescale.from_ratio(a.scale * b.scale * factor / out_quant.scale)
    node = matmul_node(matmul, a, b, out, rescale, heads, m, n, k, a_str, b_str, y_table)
    lowering.finish([matmul, *chain, *view_nodes], out, node)


def matmul_node(matmul, a: IntTensor, b: IntTensor, out: IntTensor, rescale, heads, m, n, k, a_str, b_str, y_strides):
    """The IntMatMul of operands read at strides (h, m, k) and (h, k, n), written at y_strides (h, m, n)."""
    return IntMatMul.make_node(
        matmul.name,
        [a.name, b.name],
        out.name,
        a.dtype,
        b.dtype,
        [heads, m, n, k],
        [a_str[0], a_str[1], 0, a_str[2]],
        [b_str[0], 0, b_str[2], b_str[1]],
        y_strides,
        rescale,
        out.dtype,
        out.lo,
        out.hi,
        out.shape,
        b_depth=int(np.prod(b.shape[1:], dtype=np.int64)),
    )


def softmax_scores(lowering: Lowering, matmul, a: IntTensor, b: IntTensor, k: int):
    """Attention scores a softmax reads unquantised (`softmax(q @ k^T / sqrt(d))`, QuantMultiheadAttention's
    default): (scores, rescale, fused Muls), or None when a quantiser follows the product.

    The exact product is as wide as its operands' sum of products, and a softmax table over that range
    cannot be built.  The scores are kept instead at a power-of-two scale of at most half the softmax
    output's LSB: rounding a score moves each softmax output by at most that scale (exp's relative
    change), i.e. by at most half an output LSB; the range is the product's exact bound, so nothing
    saturates, and the softmax table ends where exp rounds to 0 (IntSoftmax's clamp)."""
    chain, current = [], matmul
    while True:
        reader = lowering.only_consumer(current.output[0], current)
        if reader is None or reader.op_type not in ("Mul", "Softmax"):
            return None
        if reader.op_type == "Softmax":
            break
        chain.append(reader)
        current = reader
    after, out_quant = lowering.quant_after(reader)
    if out_quant is None:
        raise SpartanError(f"{node_label(reader)}: the softmax output must be quantised")
    factor = lowering.scalar_factor([matmul, *chain], chain)
    scale = 2.0 ** math.floor(math.log2(out_quant.scale / 2))
    ratio = a.scale * b.scale * factor / scale
    corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    lo, hi = int(np.round(k * min(corners) * ratio)), int(np.round(k * max(corners) * ratio))
    tail = current.output[0]
    dtype = IntType(True, max(bits_signed(lo), bits_signed(hi)))
    return IntTensor(tail, scale, dtype, lo, hi, lowering.buffer_shape(tail)), Rescale.from_ratio(ratio), chain


def downstream_ratio(lowering: Lowering, node, acc_scale: float) -> float | None:
    """For an unquantised accumulator, the ratio its bias precision is chosen for: to the first quantiser
    downstream through single readers; None (the bias rounded to the accumulator's LSB) at the graph
    output, where nothing rounds it, and when another MAC reads it: fraction bits would widen that MAC's
    operand and bias beyond its 32-bit literals, and half an LSB of this accumulator is far below the
    LSB of any quantiser after the next MAC."""
    current, scale = node, acc_scale
    while True:
        nxt = lowering.only_consumer(current.output[0], current)
        if nxt is None:
            return None
        if nxt.op_type == "Quant":
            return scale / quant_spec(lowering.model, nxt).scale
        if nxt.op_type == "BatchNormalization":  # an error reaches the quantiser through the largest gain
            scale *= float(np.abs(batchnorm_affine(lowering.model, nxt)[0]).max())
        elif nxt.op_type not in ("Add", "ReduceMean", "Mul", "Reshape", "Transpose", "Relu"):
            return None
        current = nxt


def view_positions(lowering: Lowering, node) -> tuple[list, np.ndarray]:
    """(the Reshape/Transpose chain that alone reads a node's output, where each element of that output
    lands after it)."""
    table = np.arange(int(np.prod(lowering.shape(node.output[0])))).reshape(lowering.shape(node.output[0]))
    chain, current = [], node
    while True:
        consumers = lowering.model.find_consumers(current.output[0]) or []
        if len(consumers) != 1 or consumers[0].op_type not in ("Reshape", "Transpose"):
            break
        current = consumers[0]
        table = apply_view(table, current, lowering.shape(current.output[0]))
        chain.append(current)
    position = np.empty(table.size, dtype=np.int64)
    position[table.ravel()] = np.arange(table.size)  # where each result element lands
    return chain, position


def writer_view(lowering: Lowering, quant, logical: tuple[int, int, int]):
    """Where an op writes its (H, M, N) result: in the layout after the Reshape/Transpose chain that
    alone reads it, when that is a strided permutation (then its reader reads contiguously)."""
    chain, position = view_positions(lowering, quant)
    strides = affine_strides(position.reshape(logical))
    if chain and strides is not None:
        return chain[-1].output[0], strides, chain
    h, m, n = logical
    return quant.output[0], (m * n, n, 1), []


def lower_mean(lowering: Lowering, reduce) -> None:
    """A mean over any axes of any strided view: the kept elements are the N outputs, the reduced ones
    the K terms of each sum (the mean over time of (batch, time, features), or of its transpose)."""
    x, table = lowering.operand(reduce.input[0], reduce)
    axes_attr = get_by_name(reduce.attribute, "axes")
    if axes_attr is not None:
        axes = list(axes_attr.ints)
    elif len(reduce.input) > 1 and lowering.model.get_initializer(reduce.input[1]) is not None:
        axes = [int(a) for a in lowering.model.get_initializer(reduce.input[1]).ravel()]
    else:
        axes = []
    rank = table.ndim
    axes = sorted({a % rank for a in axes}) or list(range(rank))
    kept = [d for d in range(rank) if d not in axes]
    steps = int(np.prod([table.shape[a] for a in axes]))
    features = int(np.prod([table.shape[d] for d in kept]))
    found = offset_strides(np.transpose(table, kept + axes).reshape(1, 1, features, steps))
    offset, strides = found or (0, None)
    if strides is None:
        raise SpartanError(
            f"{node_label(reduce)}: ReduceMean over axes {axes} of {list(table.shape)} reads a view "
            "that is not strided; average over the time axis of (batch, time, features)"
        )
    chain, out_quant = lowering.quant_after(reduce, allowed=("Mul",), open_end=True)
    factor = lowering.scalar_factor([reduce, *chain], [n for n in chain if n.op_type == "Mul"])
    scale = x.scale / steps * factor
    tail = chain[-1].output[0] if chain else reduce.output[0]
    shape = lowering.buffer_shape(tail)
    if out_quant is not None:
        out = IntTensor.quantised(tail, out_quant, shape)
        # with power-of-two scales the ratio is 2**e / steps, and a sum's mean can be an exact tie, which
        # Brevitas rounds half to even: rounded exactly over every reachable sum (float scales: closest M, s)
        exact = Fraction(x.scale) * Fraction(factor) / Fraction(out_quant.scale) / steps
        sums = (steps * x.dtype.lo, steps * x.dtype.hi)
        rescale = Rescale.for_fraction(exact, *sums) or Rescale.from_ratio(scale / out_quant.scale)
    else:  # the sum itself, 1/steps in its scale: exact, as wide as the engine's accumulator (over x's type)
        lo, hi = x.dtype.lo * steps, x.dtype.hi * steps
        out = IntTensor(tail, scale, IntType(True, max(bits_signed(lo), bits_signed(hi))), lo, hi, shape)
        rescale = None
    node = IntMean.make_node(
        reduce.name, x.name, out.name, x.dtype, features, steps, strides[2:], rescale, out.dtype, out.lo, out.hi, shape,
        offset,
    )
    lowering.finish([reduce, *chain], out, node)


def squeeze_batch(table: np.ndarray) -> np.ndarray:
    """Drop the leading batch dimension of 1 from an operand's address table."""
    return table[0] if table.ndim >= 3 and table.shape[0] == 1 else table


PATTERNS = (
    Pattern(
        "MatMul",
        lower_matmul,
        absorbs={"Relu": "a linear layer", "Mul": "a linear layer or a MatMul of two activations, by a constant"},
        reads_accumulator=True,
    ),
    Pattern("ReduceMean", lower_mean, absorbs={"Mul": "a ReduceMean, by a constant"}, reads_accumulator=True),
    Pattern("Conv", lower_conv, absorbs={"Relu": "a Conv1d", "Mul": "a Conv1d, by a constant"}),
)
