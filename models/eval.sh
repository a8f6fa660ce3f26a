#!/usr/bin/env bash
# npm run model:eval — re-evaluates the committed model; rewrites models/EVAL.md and models/eval.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# The evaluation's codec table runs G.729 through Belledonne's bcg729 (Debian package libbcg729-0).
python3 -c 'import ctypes; ctypes.CDLL("libbcg729.so.0")' 2>/dev/null || { echo "the evaluation needs libbcg729 (apt-get install libbcg729-0)"; exit 2; }
python3 models/pipeline.py eval "$@"
