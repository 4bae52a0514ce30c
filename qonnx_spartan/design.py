"""The hardware structure of a lowered model: its layers in order, and the buffers between them.

The estimator and the VHDL backend both read the design through this one view, so they cannot disagree on
what is built.  Each layer writes one buffer and reads one or more; schedule.py says when each runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qonnx_spartan.hostio import HostIO
from qonnx_spartan.memory import Memory, input_buffer_style
from qonnx_spartan.ops.base import INPUT_PORTS, SpartanOp
from qonnx_spartan.requantiser import SharedRescale, shared_rescale
from qonnx_spartan.schedule import Schedule, overlapped



@dataclass
class Buffer:
    tensor: str
    memory: Memory
    writer: int | None  # index of the writing layer; None for the input loader
    readers: list[tuple[int, str]] = field(default_factory=list)  # (layer index, port)


@dataclass
class Layer:
    index: int
    name: str
    op: SpartanOp
    inputs: list[str]  # tensor names, in port order
    output: str


class Design:
    def __init__(self, model: ModelWrapper):
        self.model = model
        self.io = HostIO.load(model)
        self.layers = [
            Layer(i, node.name, getCustomOp(node), list(node.input), node.output[0])
            for i, node in enumerate(model.graph.node)
        ]
        self.buffers: dict[str, Buffer] = {
            self.io.input.name: Buffer(
                self.io.input.name,
                Memory(self.io.input.count, self.io.input.dtype.bits, input_buffer_style(model)),
                None,
            )
        }
        for layer in self.layers:
            self.buffers[layer.output] = Buffer(layer.output, layer.op.output_buffer(), layer.index)
        for layer in self.layers:
            for port, tensor in zip(INPUT_PORTS, layer.inputs):
                self.buffers[tensor].readers.append((layer.index, port))

    @property
    def shared_rescale(self) -> SharedRescale | None:
        """The rescale multiplier the top level holds for the layers that share it (requantiser.py)."""
        return shared_rescale([layer.op for layer in self.layers])

    def reads_copy(self, index: int, port: str) -> bool:
        """Whether layer `index` reads input `port` from a copy of its own (SpartanOp.read_copies)."""
        return port in self.layers[index].op.read_copies()

    def shared_readers(self, buffer: Buffer) -> list[tuple[int, str]]:
        """The readers of the buffer's own read port: those without a copy."""
        return [(i, port) for i, port in buffer.readers if not self.reads_copy(i, port)]

    @property
    def input_buffer(self) -> Buffer:
        return self.buffers[self.io.input.name]

    @property
    def output_buffers(self) -> list[Buffer]:
        """The buffers the top level streams out, one per graph output, in the graph's order."""
        return [self.buffers[o.name] for o in self.io.outputs]

    @cached_property
    def schedule(self) -> Schedule:
        """Each layer's start and done cycle (schedule.py): as early as its data allow."""
        return overlapped(self)

    def cycles(self) -> int:
        """Cycles per inference as the test bench counts them, first input beat to last output beat: one beat
        per input element, a cycle to launch the first layer, the layers until the last done pulse, then two
        cycles per output element (read, send), the outputs one after another."""
        return self.top_cycles() + self.schedule.end

    def top_cycles(self) -> int:
        """The cycles outside the layers' schedule: the input beats, the first launch, the output's reads and
        sends."""
        return self.io.input.count + 1 + 2 * self.io.output_count
