"""The exported elementwise functions in float64, as torch computes them.

A table's words are the output quantiser applied to these values, so they follow torch's formulas where
an ONNX op's own definition rounds otherwise: torch's hardsigmoid is relu6(x + 3) / 6, which ONNX writes
HardSigmoid(alpha = 1/6, beta = 1/2), and alpha's float32 rounding would move exact ties (x = 0.75 gives
0.625 in torch, 0.625000001 from alpha * x + beta); HardSwish likewise.  Transcendental functions are
evaluated in float64 and rounded to float32 once (torch's float32 results are within an ulp of that).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from qonnx.util.basic import get_by_name
from scipy.special import erf, expit

#: float32 1/6, as the exporters write torch's hardsigmoid and hardswish slopes.
SIXTH = float(np.float32(1 / 6))


def attribute(node, name: str, default):
    a = get_by_name(node.attribute, name)
    if a is None:
        return default
    return a.s.decode() if a.type == a.STRING else a.f if a.type == a.FLOAT else a.i


def hard_sigmoid(node, x):
    alpha, beta = attribute(node, "alpha", 0.2), attribute(node, "beta", 0.5)
    if np.float32(alpha) == np.float32(SIXTH) and beta == 0.5:
        return np.clip(x + 3.0, 0.0, 6.0) / 6.0  # torch's relu6(x + 3) / 6
    return np.clip(alpha * x + beta, 0.0, 1.0)


def gelu(node, x):
    if attribute(node, "approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2)))


def clip(node, x, lo=None, hi=None):
    """Clip's bounds are inputs from opset 11 (None where absent), attributes before."""
    lo = attribute(node, "min", -np.inf) if lo is None else lo
    hi = attribute(node, "max", np.inf) if hi is None else hi
    return np.clip(x, lo, hi)


#: op type -> f(node, *inputs) over float64 arrays (constants broadcast).  Div and Sub by constants are Mul
#: and Add by then (transforms/scalar_arithmetic.py); by activations they are refused.
FUNCTIONS: dict[str, Callable] = {
    "Relu": lambda node, x: np.maximum(x, 0.0),
    "LeakyRelu": lambda node, x: np.where(x >= 0, x, attribute(node, "alpha", 0.01) * x),
    "Elu": lambda node, x: np.where(x > 0, x, attribute(node, "alpha", 1.0) * np.expm1(x)),
    "Sigmoid": lambda node, x: expit(x),
    "Tanh": lambda node, x: np.tanh(x),
    "Exp": lambda node, x: np.exp(x),
    "Erf": lambda node, x: erf(x),
    "Softplus": lambda node, x: np.logaddexp(x, 0.0),
    "Mish": lambda node, x: x * np.tanh(np.logaddexp(x, 0.0)),  # torch's x * tanh(softplus(x)), opset 18
    "HardSigmoid": hard_sigmoid,
    "HardSwish": lambda node, x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,  # torch's x * relu6(x + 3) / 6
    "Gelu": gelu,
    "Clip": clip,
    "Neg": lambda node, x: -x,
    "Abs": lambda node, x: np.abs(x),
    "Log": lambda node, x: np.log(x),
    "Sqrt": lambda node, x: np.sqrt(x),
    "Reciprocal": lambda node, x: 1.0 / x,
    "Max": lambda node, *xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    "Min": lambda node, *xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
    # torch.onnx's softplus: Where(x > threshold, x, Softplus(x)); conditions are 0 or 1
    "Greater": lambda node, a, b: (a > b).astype(np.float64),
    "Less": lambda node, a, b: (a < b).astype(np.float64),
    "GreaterOrEqual": lambda node, a, b: (a >= b).astype(np.float64),
    "LessOrEqual": lambda node, a, b: (a <= b).astype(np.float64),
    "Where": lambda node, c, a, b: np.where(c != 0, a, b),
    "Mul": lambda node, a, b: a * b,
    "Add": lambda node, a, b: a + b,
    "Pow": lambda node, a, b: np.power(a, b),
}


def evaluate(node, inputs: list[np.ndarray]) -> np.ndarray:
    """One exported node over float64 inputs."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.asarray(FUNCTIONS[node.op_type](node, *inputs), dtype=np.float64)
