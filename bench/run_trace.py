#!/usr/bin/env python3
"""What `guixie run --trace=TOOL` costs, beside the same program untraced in the same
sandbox, in one run (docs/introspection.md). The program is examples/buggy.scm's `busy`
(recursive fib(34), CPU-bound) and `leak`; untraced is `guixie shell --container` running it
(the same sandbox, no tool); each tool's figure includes all its runs (valgrind: memcheck and
callgrind; perf: stat and record, then the flame graph) and storing the report. Medians of R
alternating rounds, with each tool's ratio to the untraced run.

Usage: [GUIXIE=target/release/guixie] bench/run_trace.py [--runs R]"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.environ.get("GUIXIE") or os.path.join(ROOT, "target", "release", "guixie")
TOOLS = ["valgrind", "gdb", "perf"]


def timed(cmd, cwd, ok=(0, 139)):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode not in ok:
        sys.exit(f"{' '.join(cmd)}: {r.stderr[-3000:]}")
    return time.perf_counter() - t, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if "GUIXIE" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-p", "guixie-cli", "--locked"],
                       cwd=ROOT, check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="guixie-run-trace-bench-")
    try:
        store = os.path.join(work, "store")
        cwd = os.path.join(work, "cwd")
        os.mkdir(cwd)
        g = [GUIXIE, "--store", store]
        buggy = os.path.join(ROOT, "examples", "buggy.scm")
        _, out = timed(g + ["build", "-q", buggy], cwd)
        item = out.strip()
        for program in ["busy", "leak"]:
            path = f"{item}/bin/{program}"
            # The tools' store items are made once, outside the figures.
            for tool in TOOLS:
                timed(g + ["run", f"--trace={tool}", path], cwd)
            times = {"untraced": []} | {t: [] for t in TOOLS}
            for r in range(args.runs):
                times["untraced"].append(
                    timed(g + ["shell", "-C", item, "--", path], cwd)[0])
                for tool in TOOLS:
                    times[tool].append(timed(g + ["run", f"--trace={tool}", path], cwd)[0])
                print(f"{program} round {r + 1}: " +
                      ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
            base = statistics.median(times["untraced"])
            print(f"{program}: untraced median {base:.2f} s; " + "; ".join(
                f"{t} {statistics.median(times[t]):.2f} s ({statistics.median(times[t]) / base:.1f}x)"
                for t in TOOLS))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
