"""Reshape and Transpose of integer tensors as addressing: a view is a table of buffer addresses.

Applying the exported view ops to an iota array over the buffer gives, for every element of the viewed
tensor, the address it is read from.  An op that loops over the view reads it through strides when that
table is affine, so splitting attention heads and transposing K cost no hardware.
"""

from __future__ import annotations

import numpy as np
from qonnx.util.basic import get_by_name


def apply_view(table: np.ndarray, node, out_shape) -> np.ndarray:
    """The address table after one Reshape or Transpose node."""
    if node.op_type == "Reshape":
        return table.reshape(out_shape)
    perm = get_by_name(node.attribute, "perm")
    return np.transpose(table, list(perm.ints) if perm is not None else None)


def affine_strides(table: np.ndarray) -> tuple[int, ...] | None:
    """Strides s with table[i] = table[0] + sum(i_d * s_d) for every index, or None; offset must be 0."""
    if table.size == 0 or table.flat[0] != 0:
        return None
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
    return tuple(strides) if np.array_equal(predicted, table) else None


def is_identity(table: np.ndarray) -> bool:
    return np.array_equal(table.ravel(), np.arange(table.size))
