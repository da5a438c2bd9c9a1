#!/usr/bin/env python3
"""What `guixie build --trace=strace` costs, beside the same rebuild untraced, in one run
(docs/introspection.md). Both rebuild already-built targets in the sandbox and compare them
with the store: untraced `guixie build --check`, traced `guixie build --trace=strace` (strace
from outside the sandbox, filtered in the kernel with --seccomp-bpf, then the trace parsed,
judged and stored as a report). Workloads: examples/hello.scm (gnu-build-system: configure,
gcc, make check, install) and the 300-derivation synthetic graph (bench/gen-graph.py scm 300
3, every derivation a target). Also plain `strace -f` of everything (no filter) on hello, the
cost the filter avoids. Medians of R alternating rounds; target: traced <= 1.3x.

Usage: [GUIXIE=target/release/guixie] bench/trace_overhead.py [--runs R] [--packages N]"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.environ.get("GUIXIE") or os.path.join(ROOT, "target", "release", "guixie")
GEN = os.path.join(ROOT, "bench", "gen-graph.py")


def timed(cmd, ok=(0,)):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in ok:
        sys.exit(f"{' '.join(cmd)}: {r.stderr[-3000:]}")
    return time.perf_counter() - t, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--packages", type=int, default=300)
    args = ap.parse_args()
    if "GUIXIE" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-p", "guixie-cli", "--locked"],
                       cwd=ROOT, check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="guixie-trace-bench-")
    try:
        graph = os.path.join(work, "graph.scm")
        with open(graph, "w") as f:
            subprocess.run([sys.executable, GEN, "scm", str(args.packages), "3"], stdout=f,
                           check=True)
        hello = os.path.join(ROOT, "examples", "hello.scm")
        store = os.path.join(work, "store")
        g = [GUIXIE, "--store", store]
        workloads = {"hello": [hello], f"graph of {args.packages}": None}
        _, drvs = timed(g + ["eval", graph])
        workloads[f"graph of {args.packages}"] = drvs.split()
        for targets in workloads.values():
            timed(g + ["build", "-q", "-j", "2"] + targets)
        strace = shutil.which("strace")
        for name, targets in workloads.items():
            plain, traced, unfiltered = [], [], []
            for r in range(args.runs):
                plain.append(timed(g + ["build", "--check", "-q"] + targets)[0])
                traced.append(timed(g + ["build", "--trace=strace", "-q"] + targets)[0])
                if name == "hello":
                    out = os.path.join(work, "unfiltered.strace")
                    unfiltered.append(timed([strace, "-f", "-q", "-o", out] + g +
                                            ["build", "--check", "-q"] + targets)[0])
                    os.unlink(out)
                print(f"{name} round {r + 1}: untraced {plain[-1]:.2f} s, traced "
                      f"{traced[-1]:.2f} s" + (f", plain strace -f {unfiltered[-1]:.2f} s"
                                               if unfiltered else ""), flush=True)
            p, t = statistics.median(plain), statistics.median(traced)
            line = f"{name}: untraced {p:.2f} s, --trace=strace {t:.2f} s, ratio {t / p:.2f}"
            if unfiltered:
                u = statistics.median(unfiltered)
                line += f"; plain strace -f of everything {u:.2f} s, ratio {u / p:.2f}"
            print(line + f" (medians of {args.runs})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
