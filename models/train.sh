#!/usr/bin/env bash
# npm run model:train — regenerates models/voiceguard-detector.{onnx,json}, EVAL.md, eval.json and the
# test fixtures from scratch on CPU (2 cores: 7.5 minutes measured on a fresh machine on 2026-11-30,
# 15-25 minutes on the slower VM of earlier sessions).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_ARGS=(); [ -d /opt/pypi/simple ] && PIP_ARGS=(--index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple)
python3 -m pip install -q "${PIP_ARGS[@]}" -r models/requirements.txt
for tool in espeak-ng flite sox ffmpeg; do command -v "$tool" >/dev/null || { echo "model:train needs $tool (apt-get install espeak-ng flite sox ffmpeg)"; exit 2; }; done
# The evaluation's codec table runs G.729 through Belledonne's bcg729 (Debian package libbcg729-0).
python3 -c 'import ctypes; ctypes.CDLL("libbcg729.so.0")' 2>/dev/null || { echo "the evaluation needs libbcg729 (apt-get install libbcg729-0)"; exit 2; }
# glibc hands buffers above its mmap threshold back to the kernel on every free, and the next batch faults
# them in again page by page: on this VM a training step then spent about 30% of its CPU time in the kernel
# and took 0.32 s instead of 0.12 s (EXPERIMENTS.md, twenty-ninth round). Keeping them in the heap changes
# no result (the same losses at each of the 17 logged steps checked, 0-800), only the time.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-1073741824}" MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-268435456}"
# The shipped recipe (model 1.2.0; 1.2.1 is its re-fit, `pipeline.py recal`): more human languages, and ChatTTS trained on in part (its other voices
# and script held out and reported apart). Chosen on three to five seeds per recipe: models/EXPERIMENTS.md, fourth round.
python3 models/pipeline.py all --extra-human --seen-systems chattts "$@"
