#!/usr/bin/env python3
"""Binary-cache serving and substitution, guixie beside the reference in one run.

Serving: the same closures are served by `guixie publish` and, as a static `file://` cache
(written by Nix's `nix copy --to file://`, uncompressed), by nginx. Each is fetched over one
connection (curl, keep-alive): every narinfo, then every NAR. Two closures: a few large
paths (512 MiB in all) and 400 small ones. Narinfo latency: the median of single requests on
one kept-alive connection.

Substitution: the 300-derivation synthetic graph's outputs, served by nginx, substituted by
`guixie build --substitute-urls` and by `nix copy --from`, each into an empty store.

Needs nginx and curl (installed with apt-get when missing) and nix-bin.
"""
import argparse, http.client, os, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIXIE = os.path.join(ROOT, "target", "release", "guixie")
GEN = os.path.join(ROOT, "bench", "gen-graph.py")
NIX_ENV = dict(os.environ, NIX_REMOTE="local")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=NIX_ENV, **kw).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def ensure_tools():
    """nginx (the reference server) and curl (the client), from Debian when missing."""
    missing = [pkg for pkg, exe in (("nginx-light", "/usr/sbin/nginx"), ("curl", "/usr/bin/curl"))
               if not os.path.exists(exe)]
    if not missing:
        return
    print(f"installing {' '.join(missing)}", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)


def start_nginx(work, docroot):
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  fastcgi_temp_path {work}/nginx-fastcgi;
  uwsgi_temp_path {work}/nginx-uwsgi;
  scgi_temp_path {work}/nginx-scgi;
  types {{ text/x-nix-narinfo narinfo; }}
  server {{ listen 127.0.0.1:{port}; root {docroot}; }}
}}
""")
    p = subprocess.Popen(["/usr/sbin/nginx", "-c", conf], stderr=subprocess.DEVNULL)
    wait_for(port)
    return p, f"http://127.0.0.1:{port}"


def start_publish(store):
    p = subprocess.Popen([GUIXIE, "--store", store, "--store-dir", "/nix/store", "publish",
                          "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    url = p.stdout.readline().strip()
    return p, url


def curl_all(urls, work, name):
    """Fetches every URL over one connection; returns (seconds, bytes)."""
    cfg = os.path.join(work, f"{name}.curl")
    with open(cfg, "w") as f:
        for u in urls:
            f.write(f'url = "{u}"\noutput = "/dev/null"\n')
    start = time.perf_counter()
    out = subprocess.run(["curl", "-sS", "--fail", "-K", cfg, "-w", "%{size_download}\n"],
                         check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, sum(int(x) for x in out.split())


def nar_urls(base, hash_parts):
    """The narinfos' URLs and their NARs' URLs (read from the narinfos)."""
    conn = http.client.HTTPConnection(base.split("//")[1])
    nars = []
    for h in hash_parts:
        conn.request("GET", f"/{h}.narinfo")
        text = conn.getresponse().read().decode()
        url = next(l.split(": ", 1)[1] for l in text.splitlines() if l.startswith("URL: "))
        nars.append(f"{base}/{url}")
    conn.close()
    return [f"{base}/{h}.narinfo" for h in hash_parts], nars


def narinfo_latency(base, hash_parts, repeat=3):
    host = base.split("//")[1]
    conn = http.client.HTTPConnection(host)
    times = []
    for _ in range(repeat):
        for h in hash_parts:
            start = time.perf_counter()
            conn.request("GET", f"/{h}.narinfo")
            conn.getresponse().read()
            times.append(time.perf_counter() - start)
    conn.close()
    return statistics.median(times)


def make_closures(work, store):
    """Large: 4 files of 128 MiB of random bytes; small: 400 files of a few KiB."""
    paths = {"large": [], "small": []}
    src = os.path.join(work, "src")
    os.makedirs(src)
    for i in range(4):
        f = os.path.join(src, f"large-{i}")
        with open(f, "wb") as out:
            out.write(os.urandom(128 << 20))
        paths["large"].append(run([GUIXIE, "--store", store, "--store-dir", "/nix/store", "store", "add", f]).strip())
        os.remove(f)
    for i in range(400):
        f = os.path.join(src, f"small-{i}")
        with open(f, "wb") as out:
            out.write(os.urandom(1024 + (i * 37) % 7000))
        paths["small"].append(run([GUIXIE, "--store", store, "--store-dir", "/nix/store", "store", "add", f]).strip())
    return paths


def serving(args, work):
    store = os.path.join(work, "guixie")
    closures = make_closures(work, store)
    pub, pub_url = start_publish(store)
    cache = os.path.join(work, "static-cache")
    try:
        everything = closures["large"] + closures["small"]
        # The static cache: what `nix copy --to file://` writes, as nginx serves it.
        run(["nix", "--extra-experimental-features", "nix-command", "copy", "--no-check-sigs",
             "--from", pub_url, "--to", f"file://{cache}?compression=none"] + everything)
        nginx, nginx_url = start_nginx(work, cache)
        try:
            print("serving one connection, every narinfo then every NAR (median of "
                  f"{args.runs}); guixie publish vs nginx on a static cache")
            for name, paths in closures.items():
                hashes = [os.path.basename(p)[:32] for p in paths]
                results = {}
                for side, base in (("guixie", pub_url), ("nginx", nginx_url)):
                    infos, nars = nar_urls(base, hashes)
                    secs = []
                    for _ in range(args.runs):
                        t, n = curl_all(infos + nars, work, side)
                        secs.append(t)
                    results[side] = (statistics.median(secs), n)
                g, x = results["guixie"], results["nginx"]
                print(f"  {name:5} ({len(paths)} paths, {g[1] / 1e6:7.1f} MB): guixie {g[0]:6.3f} s "
                      f"({g[1] / g[0] / 1e6:7.1f} MB/s), nginx {x[0]:6.3f} s "
                      f"({x[1] / x[0] / 1e6:7.1f} MB/s)   guixie/nginx throughput: {x[0] / g[0] * 100:.0f}%   (target >= 50%)")
            hashes = [os.path.basename(p)[:32] for p in closures["small"][:200]]
            lg, ln = narinfo_latency(pub_url, hashes), narinfo_latency(nginx_url, hashes)
            print(f"  narinfo median latency: guixie {lg * 1e6:.0f} us, nginx {ln * 1e6:.0f} us, "
                  f"ratio {lg / ln:.2f}x   (target <= 1.3x)")
        finally:
            nginx.terminate()
            nginx.wait()
    finally:
        pub.terminate()
        pub.wait()


def substitution(args, work):
    """The synthetic graph's outputs from one nginx-served cache, into empty stores."""
    graph_nix, graph_scm = os.path.join(work, "g.nix"), os.path.join(work, "g.scm")
    for form, path in (("nix", graph_nix), ("scm", graph_scm)):
        with open(path, "w") as f:
            subprocess.run([sys.executable, GEN, form, str(args.packages), "3"], stdout=f, check=True)
    built = os.path.join(work, "built")
    uri = f"local?root={built}"
    drvs = run(["nix-instantiate", "--store", uri, graph_nix]).split()
    outs = run(["nix-store", "--store", uri, "--option", "sandbox-paths", "/bin/sh=/bin/busybox",
                "--max-jobs", "2", "-r"] + drvs).split()
    sk, pk = os.path.join(work, "k.sec"), os.path.join(work, "k.pub")
    run(["nix-store", "--generate-binary-cache-key", "bench-1", sk, pk])
    public = open(pk).read().strip()
    cache = os.path.join(work, "graph-cache")
    run(["nix", "--extra-experimental-features", "nix-command", "copy", "--from", uri, "--to",
         f"file://{cache}?compression=none&secret-key={sk}"] + outs)
    nginx, url = start_nginx(work, cache)
    try:
        g_times, n_times = [], []
        for r in range(args.runs):
            ours = os.path.join(work, f"sub-guixie-{r}")
            ds = run([GUIXIE, "--store", ours, "--store-dir", "/nix/store", "eval", graph_scm]).split()
            start = time.perf_counter()
            run([GUIXIE, "--store", ours, "--store-dir", "/nix/store", "build", "-q", "--no-attest",
                 "--substitute-urls", url, "--trusted-key", public] + ds)
            g_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            run(["nix", "--extra-experimental-features", "nix-command", "copy", "--from", url,
                 "--to", f"local?root={work}/sub-nix-{r}", "--option", "trusted-public-keys", public] + outs)
            n_times.append(time.perf_counter() - start)
        g, n = statistics.median(g_times), statistics.median(n_times)
        print(f"substitute the {args.packages}-derivation graph's outputs from nginx (median of {args.runs}): "
              f"guixie build {g:.2f} s, nix copy {n:.2f} s   ratio nix/guixie: {n / g:.2f}x   (target >= 2x)")
    finally:
        nginx.terminate()
        nginx.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--packages", type=int, default=300)
    args = ap.parse_args()
    ensure_tools()
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "guixie-cli"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="guixie-bench-cache-")
    # nginx's workers run as an unprivileged user: they must reach the static cache.
    os.chmod(work, 0o755)
    try:
        serving(args, work)
        substitution(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
