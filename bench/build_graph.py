#!/usr/bin/env python3
"""Realise the synthetic graph (bench/gen-graph.py nix|scm N 3) from an
empty store, sandboxed, 2 jobs: guixie build beside Nix's nix-store -r (sandbox-paths
/bin/sh=/bin/busybox, as Nix's defaults give) in one run; checks both produce the same output
paths; prints times and the ratio. Then a no-op rebuild of the same graph with everything
valid.

Usage: bench/build_graph.py [--packages N] [--noop-packages M]"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")
GEN = os.path.join(ROOT, "bench", "gen-graph.py")
ENV = dict(os.environ, NIX_REMOTE="local")


def timed(cmd):
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {r.stderr[-2000:]}")
    return time.perf_counter() - start, r.stdout


def graph(work, n):
    nix_src, scm_src = os.path.join(work, f"g{n}.nix"), os.path.join(work, f"g{n}.scm")
    with open(nix_src, "w") as f:
        subprocess.run([sys.executable, GEN, "nix", str(n), "3"], stdout=f, check=True)
    with open(scm_src, "w") as f:
        subprocess.run([sys.executable, GEN, "scm", str(n), "3"], stdout=f, check=True)
    return nix_src, scm_src


def realise_once(work, run, packages):
    """One side-by-side run in fresh stores; returns (guixie s, nix s)."""
    nix_src, scm_src = graph(work, packages)
    g_root, n_root = os.path.join(work, f"guixie-{run}"), os.path.join(work, f"nix-{run}")
    # Instantiation is not part of the measurement on either side.
    _, drvs = timed([GUIXIE, "--store", g_root, "--store-dir", "/nix/store", "eval", scm_src])
    g_time, g_out = timed([GUIXIE, "--store", g_root, "--store-dir", "/nix/store", "build", "-q", "--no-attest", "-j", "2"] + drvs.split())
    _, ndrvs = timed(["nix-instantiate", "--store", f"local?root={n_root}", nix_src])
    n_time, n_out = timed(["nix-store", "--store", f"local?root={n_root}", "--option", "sandbox-paths", "/bin/sh=/bin/busybox",
                           "--max-jobs", "2", "-r"] + ndrvs.split())
    if sorted(g_out.split()) != sorted(n_out.split()):
        sys.exit("guixie and Nix built different output paths")
    return g_time, n_time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=300)
    ap.add_argument("--noop-packages", type=int, default=10000)
    # Stores are deleted only at the end: on ext4, creating files within minutes of deleting
    # many is 2-3x slower (see docs/benchmarks.md), which would penalise later runs.
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "guixie-cli"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="guixie-bench-build-")
    print(f"realise {args.packages} derivations, 2 jobs, sandboxed, empty store (same outputs on both sides)")
    ratios = []
    for run in range(args.runs):
        g_time, n_time = realise_once(work, run, args.packages)
        ratios.append(n_time / g_time)
        print(f"  run {run + 1}: guixie build {g_time:6.2f} s   nix-store -r {n_time:6.2f} s   ratio nix/guixie: {n_time / g_time:.2f}x")
    if args.runs > 1:
        print(f"  median ratio nix/guixie: {statistics.median(ratios):.2f}x   (target >= 5x)")

    _, noop_scm = graph(work, args.noop_packages)
    noop_root = os.path.join(work, "noop")
    _, drvs = timed([GUIXIE, "--store", noop_root, "--store-dir", "/nix/store", "eval", noop_scm])
    timed([GUIXIE, "--store", noop_root, "--store-dir", "/nix/store", "build", "-q", "--no-attest", "-j", "2"] + drvs.split())
    t, _ = timed([GUIXIE, "--store", noop_root, "--store-dir", "/nix/store", "build", "-q", "--no-attest"] + drvs.split())
    print(f"no-op rebuild of {args.noop_packages} valid derivations: {t * 1000:.0f} ms   (target <= 100 ms)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
