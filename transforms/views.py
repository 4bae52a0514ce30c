"""Reshape, Transpose, Gather and Slice of integer tensors as addressing: a view is a table of buffer addresses.

Applying the exported view ops to an iota array over the buffer gives, for every element of the viewed
tensor, the address it is read from.  An op that loops over the view reads it through strides when that
table is affine, so splitting attention heads and transposing K cost no hardware; a linear layer reads a
selected time step (`x[:, -1]`) or a slice of them from an offset.
"""

from __future__ import annotations

import numpy as np
from qonnx.util.basic import get_by_name


def apply_view(table: np.ndarray, node, out_shape, constants: list | None = None) -> np.ndarray:
    """The address table after one Reshape, Transpose, Gather or Slice node (`constants`: the node's
    constant inputs after the data, e.g. the time step of `x[:, -1]` or the bounds of `x[:, -4:]`)."""
    if node.op_type == "Reshape":
        return table.reshape(out_shape)
    if node.op_type == "Gather":
        axis = get_by_name(node.attribute, "axis")
        return np.take(table, constants[0], axis=axis.i if axis is not None else 0)
    if node.op_type == "Slice":
        starts, ends, *rest = constants
        axes = rest[0] if rest and rest[0] is not None else range(len(starts))
        steps = rest[1] if len(rest) > 1 and rest[1] is not None else [1] * len(starts)
        index = [slice(None)] * table.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[int(axis)] = slice(int(start), int(end), int(step))
        return table[tuple(index)]
    perm = get_by_name(node.attribute, "perm")
    return np.transpose(table, list(perm.ints) if perm is not None else None)


def affine_strides(table: np.ndarray) -> tuple[int, ...] | None:
    """Strides s with table[i] = sum(i_d * s_d) for every index, or None (a view from address 0)."""
    found = offset_strides(table)
    return found[1] if found is not None and found[0] == 0 else None


def offset_strides(table: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """(offset, strides s) with table[i] = offset + sum(i_d * s_d) for every index, or None."""
    if table.size == 0:
        return None
    offset = int(table.flat[0])
    table = table - offset
    strides = []
    for axis, size in enumerate(table.shape):
        if size == 1:
            strides.append(0)
            continue
        index = [0] * table.ndim
        index[axis] = 1
        strides.append(int(table[tuple(index)]))
    grids = np.meshgrid(*(np.arange(n) for n in table.shape), indexing="ij")
    predicted = sum(g * s for g, s in zip(grids, strides))
    return (offset, tuple(strides)) if np.array_equal(predicted, table) else None


def is_identity(table: np.ndarray) -> bool:
    return np.array_equal(table.ravel(), np.arange(table.size))
