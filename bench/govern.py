#!/usr/bin/env python3
"""What governance costs: an instance of 3 members (2 of 3) with N applied trust-policy
proposals (each proposed, voted by two members, applied: 4N journal entries) and one applied
extension. Measured in one run, medians of R:
- `govern status` (replays the whole journal, checking every signature), per entry;
- `guixie eval` of a one-derivation file in that store, which needs the accepted extensions:
  as usual (the journal unchanged since the last evaluation: its hash finds them in
  extensions.cache), and after each accepted document (the cache removed: the journal is
  replayed), beside the same evaluation with the extension's link set aside (no
  governance): the ratio is what governance adds to an evaluation.
There is no peer to compare with (neither Nix nor Guix has a quorum); the figures are guixie's
own. Usage: bench/govern.py [--proposals N] [--runs R]"""
import argparse, json, os, shutil, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")


def run(store, *args):
    out = subprocess.run([GUIXIE, "--store", store, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"guixie {' '.join(args)}: {out.stderr}")
    return out.stdout


def timed(store, *args, runs, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        run(store, *args)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proposals", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "guixie-cli"],
                   cwd=ROOT, check=True)
    d = tempfile.mkdtemp(prefix="guixie-govern-bench-")
    try:
        store = os.path.join(d, "store")
        keys = []
        for name in ["alice", "bob", "carol"]:
            sec, pub = os.path.join(d, name + ".sec"), os.path.join(d, name + ".pub")
            run(store, "key", "generate", name, "--secret-key-file", sec, "--public-key-file", pub)
            keys.append((sec, pub))
        state = os.path.join(d, "state.json")
        run(store, "govern", "state", "--instance", "bench", "--threshold", "2",
            *sum((["--member", p] for _, p in keys), []), "-o", state)
        for sec, _ in keys[:2]:
            run(store, "govern", "sign", state, "--key", sec)
        run(store, "govern", "init", state)
        ext = os.path.join(d, "ext")
        os.makedirs(ext)
        with open(os.path.join(ext, "hello.scm"), "w") as f:
            f.write("(define-module (guixie ext hello))\n(define-public (shout s) (string-upcase s))\n")
        with open(os.path.join(ext, "guixie.scm"), "w") as f:
            f.write("""(use-modules (guix packages) (guix gexp) (guix build-system trivial))
(package (name "hello-ext") (version "1") (source #f) (build-system trivial-build-system)
  (arguments (list #:modules '((guix build utils)) #:builder
    #~(begin (use-modules (guix build utils))
        (let ((dir (string-append #$output "/share/guixie/ext")))
          (mkdir-p dir)
          (copy-file #$(local-file "hello.scm") (string-append dir "/hello.scm"))))))
  (synopsis "x") (description "x") (license #f) (home-page #f))
""")
        run(store, "govern", "propose", "extension", "hello", "--source", ext, "--key", keys[0][0])
        for sec, _ in keys[:2]:
            run(store, "govern", "approve", "0", "--source", ext, "--key", sec)
        run(store, "govern", "apply", "0", "--source", ext)
        t0 = time.perf_counter()
        for i in range(1, a.proposals + 1):
            run(store, "govern", "propose", "trust-policy", "--builder", keys[2][1], "-k", "1",
                "--key", keys[i % 2][0])
            for sec, _ in keys[:2]:
                run(store, "govern", "approve", str(i), "--key", sec)
            run(store, "govern", "apply", str(i))
        setup = time.perf_counter() - t0
        entries = sum(1 for _ in open(os.path.join(store, "var/guixie/govern/journal.jsonl")))
        status = timed(store, "govern", "status", runs=a.runs)
        user = os.path.join(d, "user.scm")
        with open(user, "w") as f:
            f.write('(builtins-derivation `((name . "x") (system . "x86_64-linux")'
                    ' (builder . "/bin/sh") (args "-c" "echo > $out")))\n')
        args = ("eval", "--no-eval-cache", user)
        with_ext = timed(store, *args, runs=a.runs)
        cache = os.path.join(store, "var/guixie/govern/extensions.cache")
        miss = timed(store, *args, runs=a.runs,
                     before=lambda: os.path.exists(cache) and os.remove(cache))
        link = os.path.join(store, "var/guixie/govern/extensions/hello")
        aside = os.path.join(d, "hello-link-aside")
        os.rename(link, aside)
        try:
            without = timed(store, *args, runs=a.runs)
        finally:
            os.rename(aside, link)
        print(json.dumps({
            "proposals": a.proposals, "journal_entries": entries,
            "setup_seconds": round(setup, 2),
            "status_seconds": round(status, 4),
            "status_per_entry_us": round(status / entries * 1e6, 1),
            "eval_with_extension_seconds": round(with_ext, 4),
            "eval_with_extension_journal_replayed_seconds": round(miss, 4),
            "eval_without_governance_replay_seconds": round(without, 4),
            "eval_ratio": round(with_ext / without, 3),
        }, indent=2))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
