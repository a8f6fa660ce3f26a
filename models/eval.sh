#!/usr/bin/env bash
# npm run model:eval — re-evaluates the committed model; rewrites models/EVAL.md and models/eval.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 models/pipeline.py eval "$@"
