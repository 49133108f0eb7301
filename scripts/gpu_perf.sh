#!/usr/bin/env bash
# The one prepared GPU measurement (performance issue): every figure in one call, written
# under $OUT (the device tool's folder that comes back) or results/perf elsewhere.
#
#   bash scripts/gpu_perf.sh                      # on a CUDA machine, from the repo root
#
# It installs nothing: it needs python3 with torch, timm, numpy, scikit-learn, pyyaml and
# tabulate (the device image has them; Snakemake is not needed) and runs the suite from the
# source tree. Checked here on CPU with torch 2.11.0, the device image's version.
# Measurement phases start only within PERF_BUDGET_S seconds (default 330: with compile
# times and the estimate the whole script stays under 8 minutes); a phase not started is
# listed as skipped, and perf.json is rewritten after every phase, so a cut-short run keeps
# what it measured. PERF_ARGS replaces the measurement arguments and PERF_CONFIG the config
# to estimate (tests use a tiny CPU run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/perf}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
CONFIG=${PERF_CONFIG:-workflows/config/paper.yaml}
PERF_ARGS=${PERF_ARGS:-"--device cuda --n 25000 --epochs 2 --budget-s ${PERF_BUDGET_S:-330}"}
t0=$(date +%s)
{
    echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo no-git)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
        2>/dev/null || echo "nvidia-smi: not available"
    "$PYTHON" -c "import torch, timm, numpy; print('torch', torch.__version__, '| timm',
timm.__version__, '| numpy', numpy.__version__)"
    # shellcheck disable=SC2086  # PERF_ARGS is a list of arguments
    "$PYTHON" -m benchmark perf $PERF_ARGS --json "$OUT/perf.json"
    status=$?
    if [ -f "$OUT/perf.json" ]; then
        "$PYTHON" -m benchmark perf --targets --measured "$OUT/perf.json" \
            --estimate "$CONFIG"
        for variant in compiled cudagraphs; do
            "$PYTHON" -m benchmark perf --measured "$OUT/perf.json" --variant "$variant" \
                --estimate "$CONFIG" || true
        done
    fi
    echo "== whole script: $(( $(date +%s) - t0 )) s"
    exit "$status"
} 2>&1 | tee "$OUT/perf.log"
