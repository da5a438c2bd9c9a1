#!/usr/bin/env python3
"""Fetching through guixie's peer-to-peer network, beside `guixie publish` over HTTP, in one run.

Three builder stores build and attest the same outputs and run `guixie node`; a consumer node
with a trust policy over the three (k = 1 unless said) fetches them. Figures are medians of
--runs runs, each with a fresh consumer store; node start-up and connection are not timed.

- BLAKE3 verification: guixie's receiving side (every 16 KiB chunk group checked against the
  root, one core: crates/guixie-content/examples/verify_rate.rs) beside b3sum and sha256sum
  hashing the same amount from memory (page cache) on one core.
- A 1 GiB NAR (a file of zeros) from one peer and from three at once: the time for the
  consumer's loopback cache to answer the narinfo, which it does once the quorum decided, the
  NAR was fetched and verified and the path imported. Once as fast as loopback and the two
  cores allow, and once with each peer's upload capped (`guixie node --max-upload`, --upload,
  default 50M bytes/s), as a peer's uplink would be on a real network.
- The same NAR through `guixie publish` (HTTP) into a fresh store with `guixie build`.
- A cold fetch of a small package (300 KB) through the network.
- The 300-derivation synthetic graph's outputs: `guixie build` through the consumer node's
  cache, and through `guixie publish` of one builder.

Everything lives in a throw-away directory (about 8 GiB at the peak).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")
GIB = 1 << 30


def guixie(store, origin, *args, **kw):
    env = dict(os.environ, GUIXIE_LOG_ORIGIN=origin)
    return subprocess.run([GUIXIE, "--store", store, *args], check=True, capture_output=True,
                          text=True, env=env, **kw).stdout


class Node:
    def __init__(self, store, origin, args):
        env = dict(os.environ, GUIXIE_LOG_ORIGIN=origin)
        self.log = open(store + ".node.log", "w")
        self.proc = subprocess.Popen([GUIXIE, "--store", store, "node", *args], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env)
        self.addr = self.http = self.key = None
        while self.key is None:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"node at {store} exited; see {store}.node.log")
            k, _, v = line.strip().partition(": ")
            if k == "listening":
                self.addr = v
            elif k == "http":
                self.http = v
            elif k == "cache-key":
                self.key = v

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


class Publisher:
    def __init__(self, store, key_file):
        self.proc = subprocess.Popen([GUIXIE, "--store", store, "publish", "--listen", "127.0.0.1:0",
                                      "--key", key_file], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def narinfo(http, path):
    h = os.path.basename(path).split("-")[0]
    with urllib.request.urlopen(f"{http}/{h}.narinfo", timeout=600) as r:
        assert r.status == 200, r.status


def verify_rates():
    out = subprocess.run(["cargo", "run", "--release", "--locked", "-q", "-p", "guixie-content",
                          "--example", "verify_rate", "1024"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    ours = float(out.split(": ")[1].split(" MB/s")[0])
    peers = {}
    with tempfile.NamedTemporaryFile() as f:
        f.write(os.urandom(256 << 20))
        f.flush()
        for tool, cmd in [("b3sum", ["b3sum", "--num-threads", "1", f.name]), ("sha256sum", ["sha256sum", f.name])]:
            if shutil.which(cmd[0]):
                subprocess.run(cmd, check=True, capture_output=True)
                t = min(timed(lambda: subprocess.run(cmd, check=True, capture_output=True)) for _ in range(3))
                peers[tool] = (256 << 20) / t / 1e6
    return ours, peers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--graph", type=int, default=300)
    ap.add_argument("--upload", default="50M", help="each peer's upload cap for the capped runs")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    ours, peers = verify_rates()
    print(f"BLAKE3 verification (receiving side, one core): {ours:.0f} MB/s   (target >= 1000 MB/s)")
    for tool, rate in peers.items():
        print(f"  {tool} (one core, from memory): {rate:.0f} MB/s   ratio guixie/{tool}: {ours / rate:.2f}x")

    work = tempfile.mkdtemp(prefix="guixie-p2p-bench-")
    nodes = []
    try:
        pkgs = os.path.join(work, "pkgs.scm")
        with open(pkgs, "w") as f:
            f.write(f'(derivation "big" "/bin/sh" \'("-c" "head -c {GIB} /dev/zero > $out"))\n')
        graph = os.path.join(work, "graph.scm")
        with open(graph, "w") as f:
            f.write(subprocess.run(["python3", os.path.join(ROOT, "bench", "gen-graph.py"), "scm",
                                    str(args.graph), "3"], check=True, capture_output=True, text=True).stdout)
        small_file = os.path.join(work, "small.scm")
        with open(small_file, "w") as f:
            # 300 KB of fixed bytes: every builder makes the same output.
            f.write('(derivation "small" "/bin/sh" \'("-c" "head -c 300000 /dev/zero > $out"))\n')
        builders, identities = [], []
        for n in "abc":
            store = os.path.join(work, n)
            origin = f"{n}.bench/log"
            outs = {}
            for file in [pkgs, small_file, graph]:
                drvs = guixie(store, origin, "eval", file).split()
                for o in guixie(store, origin, "build", "-q", "-j", "2", *drvs).split():
                    outs.setdefault(file, []).append(o)
            identities.append(json.loads(guixie(store, origin, "trust", "identity", "--name", n)))
            builders.append((store, origin, outs))
        big = builders[0][2][pkgs][0]
        small = builders[0][2][small_file][0]
        policy = os.path.join(work, "policy.json")
        with open(policy, "w") as f:
            json.dump({"k": 1, "builders": identities}, f)
        nodes = [Node(s, o, ["--listen", "/ip4/127.0.0.1/tcp/0"]) for s, o, _ in builders]

        def consumer(tag, peers):
            store = os.path.join(work, f"consumer-{tag}")
            shutil.rmtree(store, ignore_errors=True)
            args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0", "--policy", policy]
            for p in peers:
                args += ["--peer", p.addr]
            node = Node(store, f"{tag}.bench/log", args)
            time.sleep(1.5)  # connected and greeted
            return store, node

        def fetch(tag, peers, path):
            store, node = consumer(tag, peers)
            try:
                return timed(lambda: narinfo(node.http, path))
            except Exception:
                print(open(store + ".node.log").read(), file=sys.stderr)
                raise
            finally:
                node.stop()
                shutil.rmtree(store, ignore_errors=True)

        one = [fetch("one", nodes[:1], big) for _ in range(args.runs)]
        three = [fetch("three", nodes, big) for _ in range(args.runs)]
        keyf = os.path.join(work, "pub.sec")
        subprocess.run([GUIXIE, "key", "generate", "bench-1", "--secret-key-file", keyf, "--public-key-file",
                        keyf + ".pub"], check=True)
        pub_key = open(keyf + ".pub").read().strip()
        publisher = Publisher(builders[0][0], keyf)

        def via_publish(files):
            store = os.path.join(work, "plain")
            shutil.rmtree(store, ignore_errors=True)
            drvs = []
            for file in files:
                drvs += guixie(store, "plain.bench/log", "eval", file).split()
            t = timed(lambda: guixie(store, "plain.bench/log", "build", "-q", "--substitute-urls",
                                     publisher.url, "--trusted-key", pub_key, *drvs))
            shutil.rmtree(store, ignore_errors=True)
            return t

        http_big = [via_publish([pkgs]) for _ in range(args.runs)]
        cold_small = [fetch("small", nodes, small) for _ in range(args.runs)]

        def graph_via_node():
            store, node = consumer("graph", nodes)
            try:
                drvs = guixie(store, "graph.bench/log", "eval", graph).split()
                return timed(lambda: guixie(store, "graph.bench/log", "build", "-q", "--substitute-urls", node.http,
                                            "--trusted-key", node.key, *drvs))
            finally:
                node.stop()
                shutil.rmtree(store, ignore_errors=True)

        graph_node = [graph_via_node() for _ in range(args.runs)]
        graph_http = [via_publish([graph]) for _ in range(args.runs)]
        publisher.stop()
        for n in nodes:
            n.stop()
        nodes = [Node(s, o, ["--listen", "/ip4/127.0.0.1/tcp/0", "--max-upload", args.upload])
                 for s, o, _ in builders]
        one_capped = [fetch("one-capped", nodes[:1], big) for _ in range(args.runs)]
        three_capped = [fetch("three-capped", nodes, big) for _ in range(args.runs)]
        m = statistics.median
        print(f"median of {args.runs} runs:")
        print(f"  1 GiB NAR from 1 peer:   {m(one):6.2f} s  ({GIB / m(one) / 1e6:.0f} MB/s)")
        print(f"  1 GiB NAR from 3 peers:  {m(three):6.2f} s  ({GIB / m(three) / 1e6:.0f} MB/s)"
              f"   ratio 1 peer/3 peers: {m(one) / m(three):.2f}x   (target >= 1.5x)")
        print(f"  with each peer's upload capped at {args.upload}B/s:")
        print(f"    1 GiB NAR from 1 peer:   {m(one_capped):6.2f} s  ({GIB / m(one_capped) / 1e6:.0f} MB/s)")
        print(f"    1 GiB NAR from 3 peers:  {m(three_capped):6.2f} s  ({GIB / m(three_capped) / 1e6:.0f} MB/s)"
              f"   ratio 1 peer/3 peers: {m(one_capped) / m(three_capped):.2f}x   (target >= 1.5x)")
        print(f"  1 GiB NAR through guixie publish (HTTP): {m(http_big):6.2f} s   ratio network(3)/http: {m(three) / m(http_big):.2f}x")
        print(f"  cold fetch of a 300 KB package through the network: {m(cold_small):6.3f} s   (target <= 0.5 s; guix-p2p: 27 s)")
        print(f"  {args.graph}-derivation graph through the network: {m(graph_node):6.2f} s")
        print(f"  {args.graph}-derivation graph through guixie publish:  {m(graph_http):6.2f} s   ratio network/http: {m(graph_node) / m(graph_http):.2f}x")
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
