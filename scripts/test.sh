#!/usr/bin/env bash
# The test command: set up (GHDL, .venv) and run the whole test suite, GHDL and yosys tests included.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO"
exec python -m pytest -rs -q "$@"
