#!/usr/bin/env python3
"""tdspec against PyTorch in one sitting, on this machine: N training steps of the same spec
(tdspec's runtime vs the train.py that `tdspec emit` writes: same data, batch, optimizer and
thread count, evaluation once at the end), then the kernel yardsticks (`tdspec-runtime`'s bench
vs a PyTorch yardstick script, when one is named), then lint throughput (scripts/bench_lint.py).
Each training run is reported twice: the
median seconds per step once warm (from the `wall` clock both write to metrics.jsonl after every
step; the first --warm steps are left out), which is the training speed, and the whole process,
which adds start-up (PyTorch's import alone takes seconds) and the evaluation. Prints each time
and the ratio tdspec / PyTorch (below 1.0: tdspec is faster).

usage: python3 scripts/bench_vs_torch.py [--python VENV/bin/python] [--yardstick torch_reference.py]
                                          [--steps 30] [--threads 2] [--specs small_ddpm_mnist,...]
                                          [--lint-repeat 15]
Without --python only tdspec's side runs (the PyTorch side needs torch and safetensors).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "runtime" / "data" / "mnist-10k"


def timed(cmd, env, cwd=ROOT):
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stderr[-2000:]}")
    return wall, done.stdout


def per_step(run_dir, warm):
    """Median seconds per step after the first `warm` steps, from metrics.jsonl's wall clock."""
    walls = []
    with open(Path(run_dir) / "metrics.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if "wall" in rec and "step" in rec:
                walls.append((rec["step"], rec["wall"]))
    walls.sort()
    gaps = sorted(b[1] - a[1] for a, b in zip(walls, walls[1:]) if a[0] >= warm)
    if not gaps:
        sys.exit(f"{run_dir}: fewer than {warm + 2} steps logged; raise --steps")
    mid = len(gaps) // 2
    return gaps[mid] if len(gaps) % 2 else 0.5 * (gaps[mid - 1] + gaps[mid])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", help="a Python with torch and safetensors (the PyTorch side)")
    ap.add_argument("--yardstick", help="a PyTorch yardstick script with `bench --json`")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--specs", default="small_ddpm_mnist,small_odenet_mnist")
    ap.add_argument("--warm", type=int, default=3, help="first steps left out of the per-step median")
    ap.add_argument("--lint-repeat", type=int, default=15,
                    help="runs per lint figure (scripts/bench_lint.py, after the table); 0 skips it")
    a = ap.parse_args()

    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads), THREADS=str(a.threads), NO_COLOR="1")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "tdspec", "-p", "tdspec-runtime", "--bins"],
                   cwd=ROOT, check=True)
    tdspec = ROOT / "target" / "release" / "tdspec"
    cpu = platform.processor() or platform.machine()
    print(f"# {date.today()}, {os.cpu_count()} CPUs ({cpu}), {a.threads} threads, {a.steps} steps")
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="tdspec-bench-"))
    try:
        for name in a.specs.split(","):
            spec = ROOT / "specs" / f"{name}.tds"
            common = ["--steps", str(a.steps), "--data", f"mnist:{DATA}", "--eval-samples", "100"]
            ours, _ = timed([tdspec, "train", spec, "--out", scratch / f"{name}-tdspec",
                             "--eval-every", str(a.steps), *common], env)
            step_ours = per_step(scratch / f"{name}-tdspec", a.warm)
            theirs = step_theirs = None
            if a.python:
                pkg = scratch / f"{name}-pkg"
                timed([tdspec, "emit", spec, "-o", pkg], env)
                theirs, _ = timed([a.python, pkg / "train.py", "train", "--cpu", "--out",
                                   scratch / f"{name}-torch", "--log-every", str(a.steps),
                                   "--save-every", str(a.steps), *common], env)
                step_theirs = per_step(scratch / f"{name}-torch", a.warm)
            rows.append((f"train {name} (s/step, median once warm)", step_ours, step_theirs))
            rows.append((f"train {name} ({a.steps} steps, whole process, s)", ours, theirs))
        # Kernel yardsticks, forward + backward medians.
        _, out = timed(["cargo", "run", "--release", "-q", "-p", "tdspec-runtime", "--bin", "bench", "--", "--json"], env)
        ours = json.loads(out.strip().splitlines()[-1])
        theirs = {}
        if a.python and a.yardstick:
            _, out = timed([a.python, a.yardstick, "bench", "--json"], env)
            theirs = json.loads(out.strip().splitlines()[-1])
        for k, v in ours.items():
            if k == "threads" or k.endswith("_cpu"):
                continue
            rows.append((f"{k} (fwd+bwd, ms)", v, theirs.get(k)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'what':58} {'tdspec':>10} {'PyTorch':>10} {'ratio':>7}")
    for what, ours, theirs in rows:
        t = f"{theirs:10.3f}" if theirs is not None else f"{'-':>10}"
        r = f"{ours / theirs:7.2f}" if theirs else f"{'-':>7}"
        print(f"{what:58} {ours:10.3f} {t} {r}")
    # Lint throughput in the same sitting: whole `tdspec check` / `tdspec lint` processes over
    # 1,000 reference specs (lint uses every core; see scripts/bench_lint.py).
    if a.lint_repeat > 0:
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_lint.py"), "--copies", "1000",
                        "--repeat", str(a.lint_repeat)], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
