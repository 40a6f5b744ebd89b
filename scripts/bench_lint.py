#!/usr/bin/env python3
"""Lint throughput as a user sees it: whole `tdspec lint DIR` processes.

Builds the release binary, writes N copies of the reference specs (specs/*.tds) into a temporary
directory, and times `tdspec check` and `tdspec lint` (text output, fixes computed) over them,
best of --repeat runs; then one model with 10 and 100 injection sites, each with its own fix, to
show how lint grows with the sites. Prints wall times and specs per second.

    python3 scripts/bench_lint.py [--copies 1000] [--repeat 3]
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def best(cmd, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return min(times)


def sites(n, stage):
    s = ("model sites {\n    input x: image[3, 16, 16]\n    time t: step(1000), per_sample\n"
         "    embed temb = sinusoidal(32) | linear(64) | silu | linear(64)\n"
         "    h = x | conv(32, k = 3)\n")
    s += stage * n
    return s + "    return h | conv1(3)\n}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=1000, help="specs to lint (default 1000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    exe = str(ROOT / "target" / "release" / "tdspec")
    refs = sorted((ROOT / "specs").glob("*.tds"))
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.copies):
            src = refs[i % len(refs)]
            (pathlib.Path(d) / f"{i:05}_{src.name}").write_text(src.read_text())
        files = sorted(str(p) for p in pathlib.Path(d).glob("*.tds"))
        check = best([exe, "check", *files], a.repeat)
        lint = best([exe, "lint", d], a.repeat)
        print(f"{'what':<58}{'wall s':>9}{'specs/s':>10}")
        print(f"{f'check {a.copies} reference specs':<58}{check:>9.3f}{a.copies / check:>10.0f}")
        print(f"{f'lint {a.copies} reference specs (fixes included)':<58}{lint:>9.3f}{a.copies / lint:>10.0f}")
        stages = {
            "group fix at each site": "    h = h + inject(temb)\n    h = h | group(8) | silu | conv(32, k = 3)\n",
            "positional fix at each site": "    h = h + inject(temb)\n    h = h | instance | silu | conv(32, k = 3)\n",
            "positional ConcatConv fix at each site": "    h = h | conv(32, k = 3, time = concat) | group(8) | silu\n",
        }
        for what, stage in stages.items():
            row = []
            for n in (10, 100):
                p = pathlib.Path(d) / f"sites_{n}.tds"
                p.write_text(sites(n, stage))
                row.append((best([exe, "check", str(p)], a.repeat), best([exe, "lint", str(p)], a.repeat)))
            (c10, l10), (c100, l100) = row
            print(f"{f'{what}: lint 10 / 100 sites (check)':<58}"
                  f"  {l10:.3f} / {l100:.3f} s ({c10:.3f} / {c100:.3f}); 100/10: {l100 / l10:.1f}x")
    print(f"machine: {os.cpu_count()} logical cores; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
