#!/usr/bin/env python3
"""NAR sha256 of a warm tree (a copy of /usr/include, ~8k files / ~120 MB) and of a single
2 GiB file: guixie beside Nix's nix-hash in one run. Prints time, throughput (NAR bytes/s),
peak RSS and the ratio; checks that both print the same hash.

Usage: bench/nar_hash.py [--runs N] [--workdir DIR]   (builds guixie in release mode first)"""
import argparse, os, shutil, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")


def run(cmd):
    """Wall time, peak RSS (KiB) and stdout of one run, measured on the child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, NIX_REMOTE="local"))
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{cmd} failed: {err.decode()}")
    return elapsed, usage.ru_maxrss, out.decode().strip()


def measure(cmd, runs):
    run(cmd)  # warm the page cache and the binary
    samples = [run(cmd) for _ in range(runs)]
    times = [s[0] for s in samples]
    return statistics.median(times), max(s[1] for s in samples), samples[0][2]


def prepare(workdir):
    os.makedirs(workdir, exist_ok=True)
    tree = os.path.join(workdir, "include")
    if not os.path.isdir(tree):
        shutil.copytree("/usr/include", tree, symlinks=True)
    big = os.path.join(workdir, "big.bin")
    if not os.path.exists(big) or os.path.getsize(big) != 2 << 30:
        with open("/dev/urandom", "rb") as src, open(big, "wb") as dst:
            for _ in range(2048):
                dst.write(src.read(1 << 20))
    return [("tree (/usr/include copy)", tree), ("single 2 GiB file", big)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/guixie-bench-nar")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "guixie-cli"], cwd=ROOT, check=True)
    print(f"{'input':26} {'tool':8} {'median s':>9} {'GB/s':>6} {'peak RSS':>9}  ratio (nix/guixie)")
    for label, path in prepare(args.workdir):
        nar_size = int(subprocess.run([GUIXIE, "--json", "hash", "path", path], capture_output=True,
                                      check=True, text=True).stdout.split('"narSize":')[1].split(",")[0].split("}")[0])
        g_t, g_rss, g_out = measure([GUIXIE, "hash", "path", "--to", "nix32", path], args.runs)
        n_t, n_rss, n_out = measure(["nix-hash", "--type", "sha256", "--base32", path], args.runs)
        if g_out != n_out:
            sys.exit(f"hash mismatch on {path}: guixie {g_out} nix {n_out}")
        for tool, t, rss in (("guixie", g_t, g_rss), ("nix-hash", n_t, n_rss)):
            print(f"{label:26} {tool:8} {t:9.3f} {nar_size / t / 1e9:6.2f} {rss / 1024:7.1f}MiB")
        print(f"{'':26} ratio: guixie is {n_t / g_t:.2f}x nix-hash ({nar_size / 1e6:.0f} MB of NAR)")


if __name__ == "__main__":
    main()
