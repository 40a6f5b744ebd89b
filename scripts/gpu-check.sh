#!/usr/bin/env bash
# GPU check of tdspec's CUDA backend, run on a GPU machine that has no Rust toolchain and no
# network, from the bundle scripts/build-cuda.sh makes (dist/gpu-bundle/). Prints and, when $OUT
# is set, writes to $OUT/gpu-check.txt:
#   1. nvidia-smi (GPU, driver: the bundle's PTX and NVRTC are CUDA 13.0, so the driver must be
#      580 or newer),
#   2. CPU-vs-CUDA parity of one forward + backward on reference specs (tdspec gpu-parity:
#      max relative differences of outputs, loss and parameter gradients; tolerance 1e-3),
#   3. a short training run on CUDA (tdspec train ... --device cuda --steps 20),
#   4. the three yardstick workloads (tdspec gpu-bench) on CUDA and the CPU, and the same three
#      in PyTorch on CUDA when `python3 -c "import torch"` works, with the ratios.
# Every step has its own timeout; the whole check stays under 5 minutes.
#
# Usage: scripts/gpu-check.sh [BUNDLE_DIR]   (default: the script's own folder when it holds
#        tdspec.xz, else <repo>/dist/gpu-bundle)
# Environment: OUT (results folder), PYTHON (default python3), TDSPEC_CUBLAS_DIR (a folder with
#        libcublas.so.13 and libcublasLt.so.13, when automatic detection fails), QUICK=1 (fewer
#        parity specs).
set -uo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -ge 1 ]; then
  BUNDLE=$(cd "$1" && pwd)
elif [ -f "$HERE/tdspec.xz" ]; then
  BUNDLE=$HERE
else
  BUNDLE=$(cd "$HERE/.." && pwd)/dist/gpu-bundle
fi
PY=${PYTHON:-python3}
if [ -n "${OUT:-}" ] && [ -z "${GPU_CHECK_TEED:-}" ]; then
  # Re-run under tee so the results also land in $OUT/gpu-check.txt (complete when we exit).
  mkdir -p "$OUT"
  GPU_CHECK_TEED=1 bash "${BASH_SOURCE[0]}" "$BUNDLE" 2>&1 | tee "$OUT/gpu-check.txt"
  exit "${PIPESTATUS[0]}"
fi
FAILS=()
say() { printf '\n=== %s (t+%ss)\n' "$*" "$(($(date +%s) - T0))"; }
failed() { FAILS+=("$1"); echo "!!! FAILED: $1"; }

say "tdspec gpu-check, bundle $BUNDLE"
[ -f "$BUNDLE/tdspec.xz" ] || { echo "error: no bundle at $BUNDLE (run scripts/build-cuda.sh on the build machine and carry dist/gpu-bundle)"; exit 2; }
uname -a
cat /etc/os-release 2>/dev/null | grep PRETTY_NAME
ldd --version 2>/dev/null | head -1   # the binary needs glibc >= 2.34
nproc

# --- 1. The GPU --------------------------------------------------------------------------------
say "1. nvidia-smi"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
else
  failed "nvidia-smi not found (no NVIDIA driver?)"
fi

# --- 2. Unpack the bundle -----------------------------------------------------------------------
# The binary and NVRTC travel xz-compressed (the device tool carries at most 64 MiB). Unpack into
# a scratch folder; fall back to Python's lzma when the xz tool is missing.
say "2. unpack"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tdspec-gpu.XXXXXX")
unxz_to() { # unxz_to FILE.xz DEST
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"; fi
}
untar_xz() { # untar_xz FILE.tar.xz DESTDIR
  mkdir -p "$2" && if command -v xz >/dev/null; then tar -xJf "$1" -C "$2"
  else "$PY" -c 'import tarfile,sys; tarfile.open(sys.argv[1],"r:xz").extractall(sys.argv[2])' "$1" "$2"; fi
}
(cd "$BUNDLE" && sha256sum -c --quiet SHA256SUMS) || failed "bundle checksums"
mkdir -p "$WORK/lib"
unxz_to "$BUNDLE/tdspec.xz" "$WORK/tdspec" && chmod +x "$WORK/tdspec"
unxz_to "$BUNDLE/lib/libnvrtc.so.13.xz" "$WORK/lib/libnvrtc.so.13"
unxz_to "$BUNDLE/lib/libnvrtc-builtins.so.13.0.xz" "$WORK/lib/libnvrtc-builtins.so.13.0"
TDSPEC=$WORK/tdspec
echo "unpacked into $WORK"

# dfdx hands NVRTC two include folders as absolute paths of the build machine (the CUDA headers
# for cuda_fp16.h, and its build OUT_DIR with the .cuh helpers); recreate them at those paths.
# Existing files are left alone (this may be the build machine itself).
# shellcheck disable=SC1091
. "$BUNDLE/paths.env"
for pair in "$CUDA_INCLUDE_DIR:cuda-include.tar.xz:cuda_fp16.h" "$DFDX_OUT_DIR:dfdx-cuh.tar.xz:cuda_utils.cuh"; do
  dir=${pair%%:*}; rest=${pair#*:}; tarball=${rest%%:*}; probe=${rest#*:}
  if [ -f "$dir/$probe" ]; then
    echo "include dir present: $dir"
  elif untar_xz "$BUNDLE/$tarball" "$dir" 2>/dev/null && [ -f "$dir/$probe" ]; then
    echo "include dir recreated: $dir"
  else
    failed "cannot create $dir (needs write access to that absolute path; NVRTC-compiled ops will fail)"
  fi
done

# --- 3. Run-time libraries ----------------------------------------------------------------------
# libcuda.so.1 comes from the driver. cuBLAS/cuBLASLt 13 are too large to ship (~600 MB): use a
# PyTorch cu13 install's copy (site-packages/nvidia/cu13/lib), the nvidia-cublas wheel's, or a
# system CUDA 13 toolkit. The bundled NVRTC 13.0 goes first on the path.
say "3. libraries"
find_cublas() {
  local d sp
  for d in ${TDSPEC_CUBLAS_DIR:-}; do [ -e "$d/libcublas.so.13" ] && { echo "$d"; return; }; done
  for sp in $("$PY" -c 'import site,sys; print("\n".join(site.getsitepackages()+[site.getusersitepackages()]+sys.path))' 2>/dev/null); do
    for d in "$sp/nvidia/cu13/lib" "$sp/nvidia/cublas/lib" "$sp/torch/lib"; do
      [ -e "$d/libcublas.so.13" ] && { echo "$d"; return; }
    done
  done
  for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/libcublas.so.13" ] && { echo "$d"; return; }
  done
  d=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 /{print $NF; exit}')
  [ -n "$d" ] && dirname "$d"
}
CUBLAS_DIR=$(find_cublas || true)
if [ -n "$CUBLAS_DIR" ]; then
  echo "cuBLAS 13: $CUBLAS_DIR"
  export LD_LIBRARY_PATH="$WORK/lib:$CUBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  failed "no libcublas.so.13 found (install PyTorch cu13 or nvidia-cublas 13, or set TDSPEC_CUBLAS_DIR)"
  export LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
ldd "$TDSPEC" | grep -E 'cuda|nvrtc|cublas|not found'
if ldd "$TDSPEC" | grep -q 'not found'; then
  failed "missing shared libraries; the remaining steps cannot run"
  echo; echo "FAILED: ${FAILS[*]}"; exit 1
fi
"$TDSPEC" --version

# Specs: the bundle's copies (the repository's specs/ when run from a checkout works too).
SPECS=$BUNDLE/specs
[ -d "$SPECS" ] || SPECS=$(cd "$HERE/.." && pwd)/specs

# --- 4. Parity ----------------------------------------------------------------------------------
# One forward + backward per spec on the CPU and on CUDA with the same weights, input and time
# values. Together the specs use every op of the Kernels trait: conv (strided, grouped 1x1),
# group/instance/batch norm with fused activations, attention, avg-pool, upsampling, time-channel
# concat, channel offsets, scale-shift, ODE solvers (RK4, dopri5).
say "4. parity cpu vs cuda (tolerance 1e-3 relative)"
PARITY_SPECS=(small_odenet_mnist odenet_mnist_batchnorm odenet_mnist_instance small_ddpm_mnist
  small_ddpm_mnist_scale_shift odenet_cifar10 ddpm_cifar10)
[ "${QUICK:-0}" = 1 ] && PARITY_SPECS=(small_odenet_mnist small_ddpm_mnist)
args=()
for s in "${PARITY_SPECS[@]}"; do [ -f "$SPECS/$s.tds" ] && args+=("$SPECS/$s.tds"); done
timeout 120 "$TDSPEC" gpu-parity "${args[@]}" --device cuda --tol 1e-3 || failed "parity (exit $?)"

# --- 5. Training on CUDA ------------------------------------------------------------------------
say "5. training 20 steps on cuda (small_ddpm_mnist, embedded MNIST subset)"
timeout 45 "$TDSPEC" train "$SPECS/small_ddpm_mnist.tds" --device cuda --steps 20 \
  --eval-samples 200 --out "$WORK/run-cuda" || failed "train on cuda (exit $?)"
[ -f "$WORK/run-cuda/metrics.jsonl" ] && tail -n 2 "$WORK/run-cuda/metrics.jsonl"

# --- 6. Yardstick workloads ---------------------------------------------------------------------
say "6. yardstick: tdspec on cuda and cpu, PyTorch on cuda (fwd+bwd median ms)"
TD_CUDA=$(timeout 45 "$TDSPEC" gpu-bench --device cuda --json) || failed "gpu-bench cuda (exit $?)"
echo "tdspec cuda: $TD_CUDA"
TD_CPU=$(timeout 30 "$TDSPEC" gpu-bench --device cpu --json) || echo "(tdspec cpu bench skipped or timed out)"
echo "tdspec cpu:  $TD_CPU"
TORCH=""
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  TORCH=$(cd "$BUNDLE/bench" && timeout 45 "$PY" - <<'PYEOF'
# The three workloads of torch_reference.py, on CUDA, synchronized around each timing.
import json, statistics, time, torch, torch.nn as nn, torch.nn.functional as F
from torch_models import ODEfunc, Res
torch.manual_seed(0)
dev = torch.device("cuda")
def median_ms(fn, n=30, warm=3):
    for _ in range(warm): fn()
    torch.cuda.synchronize(); ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)
conv, gn = nn.Conv2d(33, 32, 3, 1, 1).to(dev), nn.GroupNorm(8, 32).to(dev)
x, y = torch.randn(32, 32, 16, 16, device=dev), torch.randn(32, 32, 16, 16, device=dev)
def concat_block():
    tt = torch.ones_like(x[:, :1]) * 0.5
    F.mse_loss(F.relu(gn(conv(torch.cat([tt, x], 1)))), y).backward()
f, h = ODEfunc(64).to(dev), torch.randn(128, 64, 6, 6, device=dev)
t5 = torch.tensor(0.5, device=dev)
def odefunc(): f(t5, h).square().mean().backward()
r, xr, te = Res(128, 128, 512, 0.1).to(dev), torch.randn(32, 128, 32, 32, device=dev), torch.randn(32, 512, device=dev)
def resblock(): r(xr, te).square().mean().backward()
res = {"concat_conv_gn_relu_b32_c32_16x16": median_ms(concat_block),
       "odenet_func_b128_c64_6x6": median_ms(odefunc),
       "ddpm_resblock_b32_c128_32x32": median_ms(resblock, n=10)}
res = {k: round(v, 3) for k, v in res.items()}
res["torch"] = torch.__version__; res["torch_cuda"] = torch.version.cuda
res["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32; res["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
res["gpu"] = torch.cuda.get_device_name(0)
print(json.dumps(res))
PYEOF
  ) || failed "PyTorch cuda bench (exit $?)"
  echo "torch cuda:  $TORCH"
else
  echo "PyTorch with CUDA not available to $PY: no PyTorch comparison"
fi
# Ratio table (tdspec / PyTorch; > 1 means tdspec is slower).
"$PY" - "$TD_CUDA" "$TD_CPU" "$TORCH" <<'PYEOF' 2>/dev/null || true
import json, sys
def load(s):
    try: return json.loads(s)
    except Exception: return {}
cu, cpu, th = (load(a) for a in sys.argv[1:4])
names = ["concat_conv_gn_relu_b32_c32_16x16", "odenet_func_b128_c64_6x6", "ddpm_resblock_b32_c128_32x32"]
print(f"{'workload':36} {'tdspec cuda':>12} {'tdspec cpu':>11} {'torch cuda':>11} {'cuda/torch':>11}")
for n in names:
    a, b, c = cu.get(n), cpu.get(n), th.get(n)
    f = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "-"
    ratio = f"{a / c:.2f}x" if isinstance(a, (int, float)) and isinstance(c, (int, float)) and c > 0 else "-"
    print(f"{n:36} {f(a):>12} {f(b):>11} {f(c):>11} {ratio:>11}")
PYEOF

say "done"
if [ ${#FAILS[@]} -eq 0 ]; then
  echo "gpu-check: ALL PASSED"
  exit 0
else
  echo "gpu-check: FAILED: ${FAILS[*]}"
  exit 1
fi
