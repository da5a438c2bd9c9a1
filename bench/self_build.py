#!/usr/bin/env python3
"""What building guixie with guixie costs, beside a plain `cargo build --release` of the same
tree, in one run (docs/self-build.md). Measured, medians of R alternating rounds:
- cargo: `cargo build --release --offline -p guixie-cli --locked` in a fresh target
  directory (the crates already in ~/.cargo, as a developer's machine has them);
- guixie: `guixie build --check` of the self-build's derivation, which rebuilds it from
  scratch in the sandbox with its inputs (crates, Rust, toolchain) already in the store;
- no-op: `guixie self build` when nothing changed (evaluation from the cache, the output
  valid; target <= 1 s).
Both build a snapshot of the committed tree (`git archive HEAD`). The first, cold
`guixie self build` (crate downloads, vendoring, toolchain copies, build) is
reported once. Usage: [GUIXIE=target/debug/guixie] bench/self_build.py [--runs R]"""
import argparse, os, shutil, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# $GUIXIE: another build of guixie to drive the runs (it only orchestrates: the measured
# build is cargo's, in the sandbox).
GUIXIE = os.environ.get("GUIXIE") or os.path.join(ROOT, "target", "release", "guixie")


def timed(cmd, **kw):
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {out.stderr[-3000:]}")
    return time.perf_counter() - t, out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if "GUIXIE" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-p", "guixie-cli", "--locked"],
                       cwd=ROOT, check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="guixie-self-bench-")
    try:
        # Both build one snapshot of the committed tree: edits made meanwhile reach neither.
        src = os.path.join(work, "src")
        os.mkdir(src)
        archive = subprocess.run(["git", "-C", ROOT, "archive", "HEAD"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
        store = os.path.join(work, "store")
        g = [GUIXIE, "--store", store]
        cold, out = timed(g + ["--json", "self", "build", "--source", src, "-j", "4"])
        import json
        built = json.loads(out)
        print(f"cold self build (downloads, vendoring, toolchains, build): {cold:.0f} s")
        cargo_times, guixie_times = [], []
        for r in range(args.runs):
            target = os.path.join(work, f"target-{r}")
            t, _ = timed(["cargo", "build", "--release", "--offline", "-p", "guixie-cli",
                          "--locked", "--target-dir", target], cwd=src)
            shutil.rmtree(target)
            cargo_times.append(t)
            t, _ = timed(g + ["build", "--check", "--quiet", built["drv"]])
            guixie_times.append(t)
            print(f"round {r + 1}: cargo {cargo_times[-1]:.0f} s, guixie {guixie_times[-1]:.0f} s")
        noop = [timed(g + ["self", "build", "--source", src])[0] for _ in range(7)]
        c, s = statistics.median(cargo_times), statistics.median(guixie_times)
        print(f"cargo build --release: {c:.0f} s (median of {args.runs})")
        print(f"guixie sandboxed build: {s:.0f} s (median of {args.runs})")
        print(f"ratio guixie/cargo: {s / c:.2f} (target <= 1.5)")
        print(f"no-op self build: {statistics.median(noop) * 1000:.0f} ms (median of 7; target <= 1 s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
