"""Table functions (templates/table.vhd.j2): any unary elementwise function between two quantisers as one
ROM indexed by the input integer.  The lowering pattern is in lower.py, the float functions in functions.py."""

from qonnx_spartan.ops.table.int_table import IntTable

OPS = (IntTable,)
