#!/usr/bin/env bash
# guixie builds itself from this tree and proves the fixpoint (docs/self-build.md): stage 1 is
# the guixie under test (target/debug/guixie, or $GUIXIE), stage 2 the guixie it built from
# guixie.scm, which must evaluate the recipe to the same derivation and rebuild it bit for
# bit. Then a second `self build` must build nothing. Uses a store of its own (removed
# afterwards unless $GUIXIE_SELF_CHECK_STORE names one to keep).
set -euo pipefail
cd "$(dirname "$0")/.."
guixie=${GUIXIE:-target/debug/guixie}
[ -x "$guixie" ] || cargo build -p guixie-cli --locked
if [ -n "${GUIXIE_SELF_CHECK_STORE:-}" ]; then
  store=$GUIXIE_SELF_CHECK_STORE
else
  store=$(mktemp -d)
  trap 'rm -rf "$store"' EXIT
fi
start=$(date +%s)
# -j 4: the 456 crate downloads overlap; each build is told it has every core.
if ! "$guixie" --store "$store" --json self check --source . -j 4 > "$store/self-check.json"; then
  cat "$store/self-check.json" >&2
  exit 1
fi
took=$(( $(date +%s) - start ))
again=$("$guixie" --store "$store" self build --source .)
python3 - "$store/self-check.json" "$again" "$took" <<'PY'
import json, sys
report, again, took = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
assert report["fixpoint"], report
assert report["stage2"]["drv"] == report["stage1"]["drv"], report
assert again == report["stage1"]["output"], (again, report)
print(f"self-check: fixpoint in {took} s")
print(f"  stage 1 drv     {report['stage1']['drv']}")
print(f"  stage 1 output  {report['stage1']['output']}  {report['stage1']['nar_hash']}")
print(f"  stage 2 drv     {report['stage2']['drv']} (same)")
print(f"  stage 2 rebuilt bit for bit in {report['stage2']['seconds']:.0f} s")
PY
