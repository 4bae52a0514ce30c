"""Choose, per memory, block RAM or distributed RAM (LUTRAM).

`AnnotateMemoryStyle("block" | "distributed")` puts every memory in one style; "auto" puts a memory in
block RAM when it fills at least a quarter of a RAMB18 (4,608 bits) and in LUTs otherwise, which keeps
small buffers from wasting a whole block.  The graph input's buffer has no producing op, so its style is
kept in the model's metadata.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qonnx_spartan.errors import SpartanError
from qonnx_spartan.hostio import HostIO
from qonnx_spartan.memory import INPUT_STYLE_KEY, STYLES

AUTO_BLOCK_BITS = 18 * 1024 // 4
MEMORY_CHOICES = (*STYLES, "auto")


def pick_style(choice: str, depth: int, width: int) -> str:
    if choice == "auto":
        return "block" if depth * width >= AUTO_BLOCK_BITS else "distributed"
    return choice


class AnnotateMemoryStyle(Transformation):
    def __init__(self, choice: str = "auto"):
        super().__init__()
        if choice not in MEMORY_CHOICES:
            raise SpartanError(f"memory style '{choice}' is not one of {', '.join(MEMORY_CHOICES)}")
        self.choice = choice

    def apply(self, model: ModelWrapper):
        io = HostIO.load(model)
        model.set_metadata_prop(INPUT_STYLE_KEY, pick_style(self.choice, io.input.count, io.input.dtype.bits))
        for node in model.graph.node:
            op = getCustomOp(node)
            memories = {"out": op.output_buffer(), **op.weight_memories()}
            for role, mem in memories.items():
                op.set_memory_style(role, pick_style(self.choice, mem.depth, mem.width))
        return model, False
