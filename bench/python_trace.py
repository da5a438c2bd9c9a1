#!/usr/bin/env python3
"""What `guixie run --trace=python` costs on a call-heavy script (examples/agent's `calls`:
fib(N), 20000 method calls, a 20000-word sort keyed by a function of ours), beside the same
script in one run (docs/introspection.md):

  python3      Debian's /usr/bin/python3 (the interpreter the sandbox's toolchain holds)
               running the script directly on the host;
  +tracer      the same, with guixie's tracer loaded as `--trace=python` loads it (its
               .pth file in a user site), writing its file: the tracer's own cost;
  sandbox      `guixie shell -C ITEM -- ITEM/bin/calls`: the sandbox, no tracer;
  traced       `guixie run --trace=python ITEM/bin/calls`: sandbox, tracer, the report
               parsed and stored.

Medians of R alternating rounds, each with its ratio to python3 alone.

Usage: [GUIXIE=target/release/guixie] bench/python_trace.py [--runs R] [--n N]"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.environ.get("GUIXIE") or os.path.join(ROOT, "target", "release", "guixie")
PYTHON = "/usr/bin/python3"
TRACER = os.path.join(ROOT, "crates", "guixie-introspect", "python", "guixie_pytrace.py")


def timed(cmd, cwd, env=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {r.stderr[-3000:]}")
    return time.perf_counter() - t, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=25)
    args = ap.parse_args()
    if "GUIXIE" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-p", "guixie-cli", "--locked"],
                       cwd=ROOT, check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="guixie-python-trace-bench-")
    try:
        store = os.path.join(work, "store")
        cwd = os.path.join(work, "cwd")
        os.mkdir(cwd)
        g = [GUIXIE, "--store", store]
        _, out = timed(g + ["build", "-q", os.path.join(ROOT, "examples", "agent.scm")], cwd)
        item = out.strip()
        script = os.path.join(ROOT, "examples", "agent", "calls")
        minor = subprocess.run([PYTHON, "-c", "import sys; print(sys.version_info[1])"],
                               capture_output=True, text=True, check=True).stdout.strip()
        site = os.path.join(work, "user", "lib", f"python3.{minor}", "site-packages")
        os.makedirs(site)
        shutil.copy(TRACER, site)
        with open(os.path.join(site, "guixie_pytrace.pth"), "w") as f:
            f.write("import guixie_pytrace\n")
        traces = os.path.join(work, "traces")
        os.mkdir(traces)
        traced_env = dict(os.environ, PYTHONUSERBASE=os.path.join(work, "user"),
                          GUIXIE_PYTRACE_DIR=traces, GUIXIE_PYTRACE_MAX_CALLS="20000")
        n = str(args.n)
        commands = {
            "python3": ([PYTHON, script, n], None),
            "+tracer": ([PYTHON, script, n], traced_env),
            "sandbox": (g + ["shell", "-C", item, "--", f"{item}/bin/calls", n], None),
            "traced": (g + ["run", "--trace=python", f"{item}/bin/calls", n], None),
        }
        # The tracer's store item is made once, outside the figures.
        timed(commands["traced"][0], cwd)
        times = {k: [] for k in commands}
        for r in range(args.runs):
            for k, (cmd, env) in commands.items():
                times[k].append(timed(cmd, cwd, env)[0])
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
                  flush=True)
        base = statistics.median(times["python3"])
        print(f"calls fib({n}): python3 median {base:.3f} s; " + "; ".join(
            f"{k} {statistics.median(v):.3f} s ({statistics.median(v) / base:.1f}x)"
            for k, v in times.items() if k != "python3"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
