#!/usr/bin/env python3
"""Evaluating a module of N Guix-style packages (generated) beside the synthetic graph of N
derivations, with guixie: cold (empty store), and re-eval (--no-eval-cache, everything
evaluated again). Both lower to N .drv files.

The Guix-style module uses what Guix's package modules use: `define-module` with
`#:use-module ((guix licenses) #:prefix license:)`, `package` with fields that use earlier
fields, G-expression arguments with `modify-phases`, `this-package-input`, inputs as lists of
packages, every tenth package a variant made with `package/inherit` + `modify-inputs` +
`substitute-keyword-arguments`. There is no Nix peer for this (Nix reads no Guix files): the
figure to compare is guixie's own on the synthetic graph.

Usage: bench/eval_guix_style.py [--packages N] [--runs R]"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")
GEN = os.path.join(ROOT, "bench", "gen-graph.py")


def guix_style(n):
    out = ["(define-module (bench many)",
           "  #:use-module (guix packages)",
           "  #:use-module (guix gexp)",
           "  #:use-module (guix utils)",
           "  #:use-module (guix build-system gnu)",
           "  #:use-module ((guix licenses) #:prefix license:))", ""]
    for i in range(n):
        deps = [d for d in (i - 1, i - 7, i // 2) if 0 <= d < i]
        deps = sorted(set(deps))[:3]
        inputs = " ".join(f"p{d}" for d in deps)
        if i % 10 == 9 and deps:
            out.append(f"""(define-public p{i}
  (package/inherit p{deps[0]}
    (name "p{i}")
    (inputs (modify-inputs (package-inputs p{deps[0]})
              (append {inputs})))
    (arguments
     (substitute-keyword-arguments (package-arguments p{deps[0]})
       ((#:make-flags flags #~'()) #~(cons "V={i}" #$flags))))))
""")
            continue
        use = f'(string-append #$(this-package-input "p{deps[0]}") "/lib")' if deps else '"none"'
        out.append(f"""(define-public p{i}
  (package
    (name "p{i}")
    (version "1.{i}")
    (source #f)
    (build-system gnu-build-system)
    (inputs (list {inputs}))
    (arguments
     (list #:tests? #f
           #:make-flags #~(list (string-append "PREFIX=" #$output) {use})
           #:phases #~(modify-phases %standard-phases
                        (delete 'configure)
                        (add-after 'install 'note
                          (lambda _ (display "{i}"))))))
    (synopsis (string-append name " " version))
    (description (string-append "Package " name "."))
    (license license:expat)
    (home-page (string-append "https://example.org/" name))))
""")
    out.append("(list " + " ".join(f"p{i}" for i in range(n)) + ")")
    return "\n".join(out) + "\n"


def run(cmd, env):
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    return time.perf_counter() - start, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not os.path.exists(GUIXIE):
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="guixie-eval-guix-style-")
    try:
        mod = os.path.join(work, "bench", "many.scm")
        os.makedirs(os.path.dirname(mod))
        with open(mod, "w") as f:
            f.write(guix_style(args.packages))
        graph = os.path.join(work, "graph.scm")
        with open(graph, "w") as f:
            f.write(subprocess.run([sys.executable, GEN, "scm", str(args.packages), "3"],
                                   check=True, capture_output=True, text=True).stdout)
        results = {}
        for label, target, extra in (("guix-style", mod, ["-L", work]), ("synthetic", graph, [])):
            cold, reeval = [], []
            for r in range(args.runs):
                store = os.path.join(work, f"store-{label}-{r}")
                env = dict(os.environ, GUIXIE_STORE=store)
                t, out = run([GUIXIE] + extra + ["eval", target], env)
                lines = out.split()
                if len(lines) != args.packages:
                    sys.exit(f"{label}: {len(lines)} .drv paths, expected {args.packages}")
                cold.append(t)
                t, _ = run([GUIXIE] + extra + ["eval", "--no-eval-cache", target], env)
                reeval.append(t)
                subprocess.run(["chmod", "-R", "u+w", store], check=False)
                shutil.rmtree(store, ignore_errors=True)
            results[label] = (statistics.median(cold), statistics.median(reeval))
        print(f"{args.packages} packages, median of {args.runs}")
        print(f"{'file':12} {'cold s':>8} {'re-eval s':>10}")
        for label, (c, e) in results.items():
            print(f"{label:12} {c:8.3f} {e:10.3f}")
        g, s = results["guix-style"], results["synthetic"]
        print(f"guix-style / synthetic: cold {g[0] / s[0]:.2f}x, re-eval {g[1] / s[1]:.2f}x")
    finally:
        subprocess.run(["chmod", "-R", "u+w", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
