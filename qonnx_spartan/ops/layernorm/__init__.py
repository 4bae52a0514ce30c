"""The integer LayerNorm (templates/layernorm.vhd.j2); its lowering pattern is in lower.py."""

from qonnx_spartan.ops.layernorm.int_layernorm import IntLayerNorm

OPS = (IntLayerNorm,)
