"""Give the exported Quant nodes the bit widths a plan asks for, before the lowering.

The scales follow Brevitas's own parametrisation, so a model exported at 8 bits and annotated to 6 gets
the quantisers a 6-bit export of the same weights would have:

- a weight quantiser is re-quantised from the float weights the graph keeps: scale = max|w| / int_scale
  (IntScaling: 2^(b-1)-1 for narrow signed weights) for a float scale; for a power-of-two scale
  (Int8WeightPerTensorFixedPoint) the threshold max|w| is rounded up to a power of two and divided by
  2^(b-1) (PowerOfTwoIntScaling), so the scale stays a power of two;
- an activation quantiser keeps the range its calibration found, threshold = scale × int_scale at the
  exported width, and spreads the new width over it (a power-of-two scale stays one).

Signedness and narrow range are kept.  Bias quantisers are left alone: the lowering takes any bias scale.
"""

from __future__ import annotations

import math

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import max_int, min_int
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveStaticGraphInputs

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.plan import Namespace, Plan, quantiser_proxy
from qonnx_spartan.transforms.quant import QuantSpec, node_label, quant_spec

#: The plan field that sets each kind of quantiser.
FIELDS = {"weight": "weight_bits", "act": "act_bits"}


def quantiser_kind(model: ModelWrapper, quant) -> str:
    """What the node quantises (weight, bias or act), from the Brevitas proxy it is named after; a Quant
    not named by Brevitas quantises weights when its input is a constant."""
    proxy = quantiser_proxy(quant.name)
    if proxy is None:
        return "weight" if model.get_initializer(quant.input[0]) is not None else "act"
    return {"weight_quant": "weight", "bias_quant": "bias"}.get(proxy, "act")


def int_scale(spec: QuantSpec, bits: int, po2: bool) -> int:
    """Brevitas's threshold / scale at `bits`: PowerOfTwoIntScaling for power-of-two scales, else IntScaling."""
    if po2:
        return int(max_int(spec.signed, False, bits)) + 1
    return int(-min_int(spec.signed, spec.narrow, bits)) if spec.signed else int(max_int(False, spec.narrow, bits))


def new_scale(model: ModelWrapper, quant, kind: str, bits: int) -> float:
    spec = quant_spec(model, quant)
    po2 = math.frexp(spec.scale)[0] == 0.5
    if kind == "act":
        return spec.scale * int_scale(spec, spec.bits, po2) / int_scale(spec, bits, po2)
    floats = model.get_initializer(quant.input[0])
    if floats is None:
        raise SpartanError(f"{node_label(quant)}: its weights are not constant, so they cannot be re-quantised")
    top = np.float32(np.abs(floats).max())
    if top == 0:
        return spec.scale
    if po2:
        return 2.0 ** math.ceil(math.log2(top)) / int_scale(spec, bits, po2)
    return float(top / np.float32(int_scale(spec, bits, po2)))  # in float32, as Brevitas computes it


def set_constant_input(model: ModelWrapper, quant, index: int, suffix: str, value: float) -> None:
    """Give the node its own initializer for input `index`: the exporter shares equal constants."""
    old = model.get_initializer(quant.input[index])
    name = f"{quant.name or quant.output[0]}_{suffix}"
    model.set_initializer(name, np.full_like(old, value, dtype=np.float32))
    quant.input[index] = name


class AnnotateBitwidths(Transformation):
    """Check that every key of the plan names something in the model, then set its bit widths."""

    def __init__(self, plan: Plan):
        super().__init__()
        self.plan = plan

    def apply(self, model: ModelWrapper):
        # the default exporter also declares its constants as graph inputs: without them first, a replaced
        # scale would leave an input behind that nothing feeds (Tidy removes them the same way)
        model = model.transform(RemoveStaticGraphInputs(), make_deepcopy=False, cleanup=False)
        names = Namespace(name for node in model.graph.node for name in (node.name, *node.output))
        names.check(self.plan)
        quants = [node for node in model.graph.node if node.op_type == "Quant"]
        chosen: dict[str, tuple[int, str, str]] = {}  # Quant output -> (bits, kind, plan key)
        for key, entry in self.plan.items():
            for kind, field in FIELDS.items():
                bits = getattr(entry, field)
                if bits is None:
                    continue
                named = [
                    q for q in quants if quantiser_kind(model, q) == kind and names.selects(key, (q.name, *q.output))
                ]
                if not named:
                    raise SpartanError(f"{self.plan.where(key)}: {field} is set, but it names no {kind} quantiser")
                for quant in named:
                    earlier = chosen.setdefault(quant.output[0], (bits, kind, key))
                    if earlier[0] != bits:
                        raise SpartanError(
                            f"{self.plan.where(key)}: {field} {bits} contradicts entry '{earlier[2]}' "
                            f"({earlier[0]} bits) for {node_label(quant)}"
                        )
        for quant in quants:
            if quant.output[0] in chosen:
                bits, kind, _ = chosen[quant.output[0]]
                scale = new_scale(model, quant, kind, bits)
                set_constant_input(model, quant, 1, "scale", scale)
                set_constant_input(model, quant, 3, "bit_width", bits)
        return model, False
