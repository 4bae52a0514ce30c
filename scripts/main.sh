#!/usr/bin/env bash
# The main job: set up, then build, simulate and report the embedded default example end to end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO"
exec python examples/main_job.py "$@"
