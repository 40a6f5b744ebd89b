#!/usr/bin/env python3
"""Lint against check on the shapes that make the time accounting work hardest.

Builds the release binary and, for each family of generated models and each size, times
`tdspec check` and `tdspec lint` on the same file (whole processes, best of --repeat) and
prints the ratio and what lint reported. The families are the worst cases known: every
injection site's signal alive into every later norm (the accounting states a verdict for each
site at each norm, so its work grows as sites x norms until E303 stops it), sites without
norms, a residual per site, a finding with a fix at every site, a ConcatConv at every site
(each one's constant channel alive into every later norm), and a bias fix plus a positional
fix at every site.

    python3 scripts/lint_worst_case.py [--sizes 100,300,600,1000,2000] [--repeat 3]
"""
import argparse
import pathlib
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

HEAD = ("model worst {\n    input x: image[3, 8, 8]\n    time t: step(1000), per_sample\n"
        "    embed temb = sinusoidal(16) | linear(16)\n    h = x | conv(16, k = 3)\n")

FAMILIES = {
    "alive into every norm": "    h = h | group(4) | scale_shift(temb) | silu | conv(16, k = 3)\n",
    "alive, no norms": "    h = h | inject(temb) | silu\n",
    "residual per site": "    h = h + (h | group(4) | scale_shift(temb) | silu | conv(16, k = 3))\n",
    "a group fix per site": "    h = h + inject(temb)\n    h = h | group(8) | silu | conv(16, k = 3)\n",
    "ConcatConv per site": "    h = h | conv(16, k = 3, time = concat) | group(4) | silu\n",
    "bias and positional fix per site": "    h = h + inject(temb)\n    h = h | conv(16, k = 3) | instance | silu\n",
}


def best(cmd, repeat):
    times, out = [], ""
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        out = (r.stdout.strip().splitlines() or [""])[-1]
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,300,600,1000,2000", help="sites per model")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    exe = str(ROOT / "target" / "release" / "tdspec")
    print(f"{'family':<24}{'sites':>6}{'check s':>9}{'lint s':>9}{'ratio':>7}  lint says")
    worst = 0.0
    with tempfile.TemporaryDirectory() as d:
        for name, stage in FAMILIES.items():
            for n in [int(s) for s in a.sizes.split(",")]:
                p = pathlib.Path(d) / f"{n}.tds"
                p.write_text(HEAD + stage * n + "    return h | conv1(3)\n}\n")
                check, _ = best([exe, "check", str(p)], a.repeat)
                lint, said = best([exe, "lint", str(p)], a.repeat)
                said = "E303 (stopped)" if "E303" in said or "1 error" in said else said
                worst = max(worst, lint / check)
                print(f"{name:<24}{n:>6}{check:>9.3f}{lint:>9.3f}{lint / check:>6.1f}x  {said}")
    print(f"worst lint / check: {worst:.1f}x")


if __name__ == "__main__":
    main()
