"""Two-operand Einsum as views around a batched MatMul.

Attention written `torch.einsum("blhe,bshe->bhls", q, k)` and `einsum("bhls,bshd->blhd", p, v)` (the
TinyTransformer4TS code) is a MatMul over the batch letters with the operands transposed into
(batch, free, contracted) and (batch, contracted, free) order; any two-operand contraction whose every
letter is a batch, a free or a contracted letter is, with Reshapes where several letters merge.  The
views are addressing for the lowering, so the product runs on the MAC engine like a written MatMul.
The MatMul keeps the Einsum's name (plans find it by module scope).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from qonnx_spartan.transforms.rewrite import reshape_node, replace_node, transpose_node


def parse(equation: str) -> tuple[str, str, str] | None:
    """(a, b, out) letters of a two-operand equation with an explicit output, or None."""
    equation = equation.replace(" ", "")
    if "->" not in equation or "." in equation:
        return None
    inputs, out = equation.split("->")
    operands = inputs.split(",")
    if len(operands) != 2:
        return None
    a, b = operands
    if any(len(set(t)) != len(t) for t in (a, b, out)) or not set(out) <= set(a) | set(b):
        return None
    return a, b, out


class EinsumToMatMul(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Einsum":
                continue
            equation = get_by_name(node.attribute, "equation")
            letters = parse(equation.s.decode() if equation is not None else "")
            shapes = [model.get_tensor_shape(t) for t in node.input]
            if letters is None or len(node.input) != 2 or any(s is None for s in shapes):
                continue
            new = self.rewrite(model, node, *letters, *shapes)
            if new is not None:
                replace_node(model, node, new)
                changed = True
        return model, changed

    def rewrite(self, model, node, a, b, out, shape_a, shape_b):
        batch = [c for c in out if c in a and c in b]
        contract = [c for c in a if c in b and c not in out]
        free_a = [c for c in a if c not in b]
        free_b = [c for c in b if c not in a]
        if any(c not in out for c in free_a + free_b):
            return None  # a letter summed within one operand: not a product
        sizes_a, sizes_b = dict(zip(a, shape_a)), dict(zip(b, shape_b))
        size = {**sizes_a, **sizes_b}
        if any(sizes_a[c] != sizes_b[c] for c in batch + contract):
            return None  # broadcasting over a letter
        base = node.name
        nodes = []

        def tensor():
            return f"{base}_out{len(nodes)}"

        def arrange(src, have, want, merged):
            """Transpose `src` from letters `have` to `want`, then Reshape to the sizes `merged` if they differ."""
            perm = [have.index(c) for c in want]
            if perm != list(range(len(perm))):
                dst = tensor()
                nodes.append(transpose_node(f"{base}_transpose_{len(nodes)}", src, dst, perm))
                src = dst
            if merged != [size[c] for c in want]:
                dst = tensor()
                nodes.append(reshape_node(model, f"{base}_reshape_{len(nodes)}", src, dst, merged))
                src = dst
            return src

        def prod(letters):
            return int(np.prod([size[c] for c in letters]))

        lead = [size[c] for c in batch]
        left = arrange(node.input[0], a, batch + free_a + contract, lead + [prod(free_a), prod(contract)])
        right = arrange(node.input[1], b, batch + contract + free_b, lead + [prod(contract), prod(free_b)])
        have = batch + free_a + free_b
        perm = [have.index(c) for c in out]
        unmerged = [size[c] for c in have]
        needs_reshape = unmerged != lead + [prod(free_a), prod(free_b)]
        needs_transpose = perm != list(range(len(perm)))
        product = tensor() if needs_reshape or needs_transpose else node.output[0]
        nodes.append(helper.make_node("MatMul", [left, right], [product], name=base))
        if needs_reshape:
            dst = tensor() if needs_transpose else node.output[0]
            nodes.append(reshape_node(model, f"{base}_unmerge", product, dst, unmerged))
            product = dst
        if needs_transpose:
            nodes.append(transpose_node(f"{base}_transpose_out", product, node.output[0], perm))
        return nodes
