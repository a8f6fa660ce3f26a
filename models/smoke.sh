#!/usr/bin/env bash
# The training recipe end to end on ~20 corpus clips (load -> 1 step -> export -> parity) into a temp
# dir, so the pipeline cannot rot. Never touches the committed model.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
python3 models/pipeline.py smoke --out "$out"
