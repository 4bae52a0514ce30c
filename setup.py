"""The packages: every package under qonnx_spartan/ (each op folder, study/), found, and the two top-level
folders pyproject.toml's package-dir maps into it, which a find cannot see under their installed names."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["qonnx_spartan*"]), "qonnx_spartan.transforms", "qonnx_spartan.templates"])
