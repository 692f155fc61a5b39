#!/usr/bin/env bash
# GPU figures at 7B scale in one run (see benchmarks/gpu.py): QLoRA training packed / grouped vs max-length,
# generation batched vs one at a time (bf16, 4-bit), embedding batched vs one at a time.
#   bash benchmarks/gpu.sh            # one GPU, no network; figures in benchmarks/gpu-figures.txt
#   bash benchmarks/gpu.sh --tiny     # the same steps on a tiny model on the CPU, to check the script
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
python3 -m benchmarks.gpu "$@"
