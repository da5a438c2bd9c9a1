#!/usr/bin/env python3
"""Instantiate the synthetic graph (bench/gen-graph.py nix|scm N 3) to
.drv files: guixie eval beside nix-instantiate, cold (empty store) and warm (all .drv files
already valid). guixie's warm run answers from its evaluation cache (the file is unchanged);
"re-eval" is a warm run with --no-eval-cache, which evaluates everything again as Nix does.
Prints time, peak RSS and ratios; checks that both list the same .drv paths.

Usage: bench/eval_graph.py [--packages N] [--runs R]"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")
GEN = os.path.join(ROOT, "bench", "gen-graph.py")


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, NIX_REMOTE="local"))
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {err.decode()[-2000:]}")
    return elapsed, out.decode()


def peak_rss(cmd):
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True,
                       env=dict(os.environ, NIX_REMOTE="local"))
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "guixie-cli"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="guixie-bench-eval-")
    nix_src, scm_src = os.path.join(work, "graph.nix"), os.path.join(work, "graph.scm")
    with open(nix_src, "w") as f:
        subprocess.run([sys.executable, GEN, "nix", str(args.packages), "3"], stdout=f, check=True)
    with open(scm_src, "w") as f:
        subprocess.run([sys.executable, GEN, "scm", str(args.packages), "3"],
                       stdout=f, check=True)

    def guixie_cmd(root, cache=True):
        return [GUIXIE, "--store", root, "--store-dir", "/nix/store", "eval", scm_src] + \
            ([] if cache else ["--no-eval-cache"])

    def nix_cmd(root, cache=True):
        return ["nix-instantiate", "--store", f"local?root={root}", nix_src]

    results = {}
    for tool, make in (("guixie", guixie_cmd), ("nix", nix_cmd)):
        cold, warm, reeval, outs = [], [], [], set()
        for i in range(args.runs):
            root = os.path.join(work, f"{tool}-{i}")
            t, out = run(make(root))
            cold.append(t)
            outs.add(out)
            t, out = run(make(root))
            warm.append(t)
            outs.add(out)
            t, out = run(make(root, cache=False))
            reeval.append(t)
            outs.add(out)
        results[tool] = (statistics.median(cold), statistics.median(warm),
                         peak_rss(make(os.path.join(work, f"{tool}-rss"))), outs, statistics.median(reeval))
    if results["guixie"][3] != results["nix"][3]:
        sys.exit("guixie and nix-instantiate printed different .drv paths")
    print(f"{args.packages} packages, median of {args.runs}; identical .drv paths on both sides")
    print(f"{'tool':8} {'cold s':>8} {'warm s':>8} {'re-eval s':>9} {'peak RSS':>9}")
    for tool in ("guixie", "nix"):
        c, w, rss, _, r = results[tool]
        print(f"{tool:8} {c:8.3f} {w:8.3f} {r:9.3f} {rss:7.1f}MiB")
    g, n = results["guixie"], results["nix"]
    print(f"ratio nix/guixie: cold {n[0] / g[0]:.2f}x, warm {n[1] / g[1]:.2f}x, "
          f"re-eval {n[4] / g[4]:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
