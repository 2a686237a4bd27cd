#!/usr/bin/env bash
# One-shot GPU check on a fresh machine that reaches only the package registries (target: <= 8 minutes).
#
#   scripts/gpu_check.sh OUTDIR
#
# 1. a virtual environment ($GPU_CHECK_VENV, default .venv-gpu) with the CUDA build of the pinned torch (PyPI's
#    torch==2.13.0 wheel, built for CUDA 13, which brings triton==3.7.1; set TORCH_INDEX_URL to use another index,
#    e.g. https://download.pytorch.org/whl/cu128 for an older driver) and the project with its "triton" extra;
# 2. the Triton scan tests on CUDA (pytest tests/test_scan_triton.py, JUnit XML in OUTDIR);
# 3. python -m restore_core.gpu_check OUTDIR: scan equivalence on CUDA (triton, chunked, mamba-ssm when it
#    imports; float32 and bfloat16), the scan benchmark on the GPU, 20 bf16-autocast training steps of each
#    paper preset, and the quick MambaIR ablation as a timing; results in OUTDIR/gpu_check.json.
# GPU_CHECK_SKIP_INSTALL=1 reuses the environment as it is (a re-run). GPU_CHECK_BUDGET_S (default 480) bounds
# the whole run. Everything printed goes to OUTDIR/gpu_check.log too. Exit status: that of the Python check, or of the first
# setup step that failed; 4 if the Triton tests failed (the Python check still runs).
set -uo pipefail

OUT=${1:?usage: scripts/gpu_check.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
step() { echo "== [$(elapsed) s] $*"; }

step "gpu_check in $ROOT -> $OUT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo no-git))"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  DRIVER_MAJOR=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1 | cut -d. -f1)
  if [ -z "${TORCH_INDEX_URL:-}" ] && [ "${DRIVER_MAJOR:-0}" -lt 580 ]; then
    echo "warning: driver $DRIVER_MAJOR < 580 may not run PyPI's CUDA 13 torch; set TORCH_INDEX_URL" \
         "(e.g. https://download.pytorch.org/whl/cu128) if CUDA is unavailable below"
  fi
else
  echo "warning: nvidia-smi not found"
fi

VENV=${GPU_CHECK_VENV:-$ROOT/.venv-gpu}
PY=${PYTHON:-python3}
step "virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || exit 1
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q)
if [ -n "${GPU_CHECK_SKIP_INSTALL:-}" ]; then
  step "GPU_CHECK_SKIP_INSTALL set: using $VENV as it is (a re-run)"
else
  step "torch==2.13.0 (CUDA build)"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" torch==2.13.0 --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple || exit 1
  else
    "${PIP[@]}" torch==2.13.0 || exit 1
  fi
  step "the project with the triton extra, pytest"
  "${PIP[@]}" -e "$ROOT[triton]" pytest pytest-timeout || exit 1
fi
if ! "$VENV/bin/python" - <<'EOF'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device visible to torch: nothing to check beyond the environment")
print("device:", torch.cuda.get_device_name())
EOF
then
  (cd "$ROOT" && "$VENV/bin/python" -m restore_core.gpu_check "$OUT" --steps env)
  exit 3
fi

step "Triton scan tests on CUDA"
TESTS_RC=0
(cd "$ROOT" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/test_scan_triton.py \
   --junitxml "$OUT/pytest_scan_triton.xml") || TESTS_RC=4

# Steps start only within the budget left minus 90 s; a step still running at the budget's end is stopped
# (what finished is already in gpu_check.json).
LEFT=$(( BUDGET_S - $(elapsed) ))
[ "$LEFT" -gt 120 ] || LEFT=120
step "python -m restore_core.gpu_check (steps start within $(( LEFT - 90 )) s, stopped after ${LEFT} s)"
(cd "$ROOT" && timeout -k 10 "$LEFT" "$VENV/bin/python" -m restore_core.gpu_check "$OUT" --budget-s $(( LEFT - 90 )))
RC=$?
step "done: gpu_check exit $RC, Triton tests exit $TESTS_RC; results in $OUT/gpu_check.json"
[ "$RC" -ne 0 ] && exit "$RC"
exit "$TESTS_RC"
