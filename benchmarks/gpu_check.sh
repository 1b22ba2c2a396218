#!/usr/bin/env bash
# One prepared check on a CUDA machine: the tests on the CUDA device, then synthesis throughput of
# every method on the accelerator against the per-sample CPU references, and the Perlin + texture
# path part by part. Run from the repository root; fgad is read from the checkout (PYTHONPATH=.), not
# installed. Everything it prints is also written under $OUT (default: ./gpu-check).
#
# A machine without network and without kornia: download its wheels beside the checkout first,
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       kornia==0.9.0 kornia_rs==0.2.0
# and bring .whl along; this script installs whatever .whl holds into /tmp/site.
#
#   bash benchmarks/gpu_check.sh                 # tests + throughput, about 5 minutes on an H200
#   CHECK_TESTS=0 bash benchmarks/gpu_check.sh   # throughput only
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 CI=true HYPOTHESIS_PROFILE=ci

python3 - <<'EOF' 2>&1 | tee "$out/machine.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
EOF
status=0
if [ "${CHECK_TESTS:-1}" != 0 ]; then
    # every test that takes the `device` fixture runs once on "cuda" (test ids end in [cuda...])
    timeout 300 python3 -m pytest -q -x -k cuda -p no:cacheprovider tests 2>&1 | tee "$out/tests.txt"
    status=${PIPESTATUS[0]}
fi
timeout 240 python3 benchmarks/synthesis.py --device cuda --batch-sizes 16 64 256 --seconds 1 \
    2>&1 | tee "$out/synthesis.txt"
timeout 120 python3 benchmarks/synthesis_parts.py --device cuda --rounds 10 2>&1 | tee "$out/synthesis_parts.txt"
exit "$status"
