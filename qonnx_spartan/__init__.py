"""qonnx-spartan: quantised Transformers from Brevitas/QONNX to bit-exact VHDL for small Spartan-7 FPGAs."""

__version__ = "0.1.0"
