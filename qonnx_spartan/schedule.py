"""When each layer starts: as early as its data allow, so that the layers' engines work at the same time.

Every layer has an engine of its own, and every engine runs a fixed schedule from its start pulse: its op's
traces (`read_trace`, `write_trace`) say in which cycle it reads and writes each address.  A layer may then
start before the layers it reads from are done, as long as

- every element it reads was written at least one clock edge before it reads it (read after write), and
- no other layer that reads one of its input buffers is busy (a buffer has one read port, which the top level
  gives to the busy reader): it starts once the earlier readers are done, unless it reads a copy of the
  buffer of its own (`read_copies`, which the lanes step gives it where that saves cycles).  Layers that share the rescale
  multiplier (requantiser.py) take it in turn the same way.

Layers are scheduled in node order, each at the earliest cycle the rules allow; an op without traces runs
alone.  Start cycles are constants of the design: the top level launches each layer at its cycle (a counter
from the first launch), so the cycle count stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_spartan.ops.base import INPUT_PORTS, KeyedMemo


@dataclass(frozen=True)
class Schedule:
    """Start and done cycles of each layer, counted from the first layer's start pulse."""

    starts: tuple[int, ...]
    dones: tuple[int, ...]

    @property
    def end(self) -> int:
        """The cycle of the last done pulse."""
        return max(self.dones)

    @property
    def overlaps(self) -> bool:
        """Whether a layer starts before the one before it is done (otherwise the layers run in turn and the
        top level launches each at the previous one's done pulse)."""
        return any(s <= d for s, d in zip(self.starts[1:], self.dones[:-1]))


def read_after_write(producer, consumer, port: str) -> int:
    """The least distance from the producer's start to the consumer's at which every element the consumer
    reads on `port` was written one edge before: max over reads of (write cycle - read cycle) + 1; with no
    traces, the consumer starts after the producer's done pulse."""
    writes, reads = producer.write_trace(), consumer.read_trace(port)
    if writes is None or reads is None:
        return producer.cycles() + 1
    written = np.full(int(max(writes.addresses.max(), reads.addresses.max())) + 1, -1, np.int64)
    np.maximum.at(written, writes.addresses, writes.cycles)
    written[written < 0] = producer.cycles()  # never written: after the done pulse, to be safe
    return int((written[reads.addresses] - reads.cycles).max()) + 1


#: Cycle counts and read-after-write distances by the nodes as serialised: the lanes step schedules one model
#: thousands of times, changing one layer at a time.
MEMO = KeyedMemo(4096)


def overlapped(design) -> Schedule:
    """Each layer at the earliest cycle the data and the buffers' read ports allow (see the module)."""
    layers = design.layers
    keys = [layer.op.onnx_node.SerializeToString() for layer in layers]
    cycles = [MEMO.get((key,), layer.op.cycles) for key, layer in zip(keys, layers)]
    sharing = set(design.shared_rescale.layers) if design.shared_rescale is not None else set()
    starts: list[int] = []
    for layer in layers:
        start = 0
        if layer.index in sharing:
            start = max([start, *(starts[i] + cycles[i] for i in sharing if i < layer.index)])
        for port, tensor in zip(INPUT_PORTS, layer.inputs):
            buffer = design.buffers[tensor]
            if (writer := buffer.writer) is not None:
                distance = MEMO.get(
                    (keys[writer], keys[layer.index], port),
                    lambda: read_after_write(layers[writer].op, layer.op, port),
                )
                start = max(start, starts[writer] + distance)
            if not design.reads_copy(layer.index, port):
                for reader, _ in design.shared_readers(buffer):
                    if reader < layer.index:
                        start = max(start, starts[reader] + cycles[reader])
        starts.append(start)
    return Schedule(tuple(starts), tuple(s + c for s, c in zip(starts, cycles)))
