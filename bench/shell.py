#!/usr/bin/env python3
"""`guixie shell` start-up, beside `nix shell`, in one run.

With everything built and the file unchanged, each command enters an environment and runs
`true`; the figure is the median wall time of --runs runs, after one warm-up.

- guixie shell examples/hello.scm -- true: the issue's target (<= 50 ms). The file is
  evaluated again only if it or an input changed (the evaluation cache).
- guixie shell STORE-PATH -- true, and nix shell STORE-PATH -c true: the same work for both
  (a store path in a store that is not at its logical directory, entered through a user or
  mount namespace: guixie's view, Nix's chroot store).

Everything lives in a throw-away directory; the Nix store is a chroot store inside it.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")


def run(cmd, env):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def median_ms(cmd, env, runs):
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    if not os.path.exists(GUIXIE):
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="guixie-shell-bench-")
    try:
        env = dict(os.environ, GUIXIE_STORE=os.path.join(work, "store"), NIX_REMOTE="local")
        hello = os.path.join(ROOT, "examples", "hello.scm")
        out = run([GUIXIE, "build", "-q", "-j", "2", hello], env).strip()
        tree = os.path.join(work, "tree", "bin")
        os.makedirs(tree)
        with open(os.path.join(tree, "hi"), "w") as f:
            f.write("#!/bin/sh\necho hi\n")
        os.chmod(os.path.join(tree, "hi"), 0o755)
        nix_store = f"local?root={work}/nix"
        nix_path = run(["nix-store", "--store", nix_store, "--add", os.path.dirname(tree)], env).strip()
        nix = ["nix", "--extra-experimental-features", "nix-command", "--store", nix_store]
        file_ms = median_ms([GUIXIE, "shell", hello, "--", "true"], env, args.runs)
        path_ms = median_ms([GUIXIE, "shell", out, "--", "true"], env, args.runs)
        nix_ms = median_ms(nix + ["shell", nix_path, "-c", "true"], env, args.runs)
        print(f"median of {args.runs} runs, everything built:")
        print(f"  guixie shell examples/hello.scm -- true: {file_ms:6.1f} ms   (target <= 50 ms)")
        print(f"  guixie shell STORE-PATH -- true:         {path_ms:6.1f} ms")
        print(f"  nix shell STORE-PATH -c true:            {nix_ms:6.1f} ms   ratio nix/guixie: {nix_ms / path_ms:.2f}x")
    finally:
        subprocess.run(["chmod", "-R", "u+w", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
