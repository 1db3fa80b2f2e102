"""Shared fixtures for the real-client tests: start the real `disksnap serve` on a free port
with a config of two accounts (alice, bob) holding keys for every dialect, and drive the same
data dir with the disksnap CLI where a test needs an operator action (instances, recover).

Only the standard library is used here: each dialect's suite runs in its own venv.
"""
import json
import os
import random
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

BIN = os.environ.get("DISKSNAP_BIN") or os.path.join(os.path.dirname(__file__), "../../target/release/disksnap")

# Test credentials (test values only). Tencent/Aliyun/Huawei key ids
# follow each vendor's shape.
ACCOUNTS = {
    "alice": {
        "qingcloud": ("QYALICEACCESSKEY0001", "alice-qingcloud-secret-key-0000000000001"),
        "aliyun": ("LTAIalice00000000001", "alice-aliyun-secret-000000000001"),
        "tencent": ("AKIDalice0000000000000000000000001", "alice-tencent-secret-00000000001"),
        "huawei": ("ALICEHUAWEIAK0000001", "alice-huawei-secret-0000000000000000000001"),
        "openstack": ("a11ce000000000000000000000000001", "alice", "alice", "alice-password"),
    },
    "bob": {
        "qingcloud": ("QYBOBACCESSKEY000002", "bob-qingcloud-secret-key-00000000000002"),
        "aliyun": ("LTAIbob0000000000002", "bob-aliyun-secret-00000000000002"),
        "tencent": ("AKIDbob00000000000000000000000002", "bob-tencent-secret-0000000000002"),
        "huawei": ("BOBHUAWEIAK000000002", "bob-huawei-secret-000000000000000000000002"),
        "openstack": ("b0b00000000000000000000000000002", "bob", "bob", "bob-password"),
    },
}


# The back ends a test server runs on (one pass of scripts/test.sh each):
#
# DISKSNAP_PYTEST_META=pg: every server keeps its metadata on PostgreSQL, in a database of its
#   own on the server DISKSNAP_TEST_PG_URL names (scripts/pg.sh start; eval "$(scripts/pg.sh env)").
#   Unset: SQLite in the data dir, the default.
# DISKSNAP_PYTEST_STORE=s3: every server keeps its packs and indexes in the S3 bucket the
#   DISKSNAP_TEST_S3_* variables name (scripts/rgw.sh start; eval "$(scripts/rgw.sh env)"), under
#   a prefix of its own (removed when the server stops). Unset: DATA/store, the default.
# DISKSNAP_PYTEST_CLUSTER=N (N >= 2; implies both of the above): a server is N `disksnap serve`
#   nodes (node-1 ... node-N, a data dir each) on one database and one S3 prefix, behind a proxy
#   (cluster_proxy.py) that sends each request to a node chosen at random. `url`, `port`,
#   `tls_url` and `tls_port` are the proxy's; `cli` and `volume_path` run on node-1's data dir.
CLUSTER = int(os.environ.get("DISKSNAP_PYTEST_CLUSTER") or 0)
if CLUSTER == 1 or CLUSTER < 0:
    raise RuntimeError("DISKSNAP_PYTEST_CLUSTER is a number of nodes, 2 or more")
META_ON_PG = os.environ.get("DISKSNAP_PYTEST_META") == "pg" or CLUSTER > 1
STORE_ON_S3 = os.environ.get("DISKSNAP_PYTEST_STORE") == "s3" or CLUSTER > 1


def single_server_only(reason):
    """For the few tests that are single-server by nature: a skip mark in cluster mode."""
    return pytest.mark.skipif(CLUSTER > 1, reason=f"single server only: {reason}")


def fresh_pg_database():
    """A new empty database on the test server; its URL for `database_url`."""
    base = os.environ.get("DISKSNAP_TEST_PG_URL")
    if not base:
        raise RuntimeError("DISKSNAP_PYTEST_META=pg needs DISKSNAP_TEST_PG_URL (scripts/pg.sh env)")
    name = f"pytest_{os.getpid()}_{time.time_ns() % 10**12}"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", base, "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return base.rsplit("/", 1)[0] + "/" + name


def s3_settings():
    vals = {k: os.environ.get(f"DISKSNAP_TEST_S3_{k}") for k in ("ENDPOINT", "BUCKET", "ACCESS_KEY", "SECRET_KEY")}
    missing = [k for k, v in vals.items() if not v]
    if missing:
        raise RuntimeError(f"DISKSNAP_PYTEST_STORE=s3 needs DISKSNAP_TEST_S3_{missing[0]} (scripts/rgw.sh env)")
    return vals


def s3_request(method, key="", query=None, body=b""):
    """One request to the test bucket, signed (AWS SigV4) with the test keys: (status, body).
    The standard library only, so any suite's venv can read, damage and clean the store."""
    import datetime
    import hashlib
    import hmac
    import http.client
    import urllib.parse
    cfg = s3_settings()
    u = urllib.parse.urlsplit(cfg["ENDPOINT"])
    q = lambda v: urllib.parse.quote(v, safe="-_.~")
    path = "/" + cfg["BUCKET"] + ("/" + urllib.parse.quote(key, safe="-_.~/") if key else "")
    qs = "&".join(f"{q(k)}={q(v)}" for k, v in sorted((query or {}).items()))
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(body).hexdigest()
    headers = {"host": u.netloc, "x-amz-content-sha256": digest, "x-amz-date": amz}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, qs, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, digest])
    scope = f"{amz[:8]}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + cfg["SECRET_KEY"]).encode()
    for part in (amz[:8], "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={cfg['ACCESS_KEY']}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    try:
        conn.request(method, path + ("?" + qs if qs else ""), body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def s3_keys(prefix):
    """Every key under `prefix` in the test bucket."""
    import xml.etree.ElementTree as ET
    keys, token = [], None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        status, body = s3_request("GET", query=query)
        if status != 200:
            raise RuntimeError(f"S3 list {prefix}: {status} {body[:300]!r}")
        root = ET.fromstring(body)
        ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        keys += [c.findtext(f"{ns}Key") for c in root.iter(f"{ns}Contents")]
        token = root.findtext(f"{ns}NextContinuationToken")
        if root.findtext(f"{ns}IsTruncated") != "true" or not token:
            return keys


_HANDED_OUT = set()


def free_port():
    """A port free now, below the kernel's ephemeral range (32768 up here) and above the fixed
    ports scripts/test.sh gives PostgreSQL and the RGW (20000-27999): a port the kernel picked
    for us would be its own to pick again as the source of an outgoing connection (the cluster
    proxy opens one per request) before the server binds it ("Address already in use")."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(28000, max(low, 28001))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # a crowded range: let the kernel pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(listen, retention, extra="", tls_listen=None):
    out = [f'listen = "{listen}"', f'deleted_retention = "{retention}"', 'gc_grace = "10m"', extra, "",
           "[[zones]]", 'name = "pek3a"',
           'aliases = ["cn-hangzhou", "cn-hangzhou-a", "gz", "ap-guangzhou", "RegionOne", "ac1", "cn-north-4"]', ""]
    for name, k in ACCOUNTS.items():
        os_ = k["openstack"]
        out += [
            "[[accounts]]", f'name = "{name}"',
            f'qingcloud = {{ access_key_id = "{k["qingcloud"][0]}", secret_access_key = "{k["qingcloud"][1]}" }}',
            f'aliyun = {{ access_key_id = "{k["aliyun"][0]}", access_key_secret = "{k["aliyun"][1]}" }}',
            f'tencent = {{ secret_id = "{k["tencent"][0]}", secret_key = "{k["tencent"][1]}" }}',
            f'huawei = {{ access_key_id = "{k["huawei"][0]}", secret_access_key = "{k["huawei"][1]}" }}',
            f'openstack = {{ project_id = "{os_[0]}", project_name = "{os_[1]}", user = "{os_[2]}", password = "{os_[3]}" }}',
            "",
        ]
    if tls_listen:
        out.insert(1, f'tls_listen = "{tls_listen}"')
    return "\n".join(out)


class Server:
    """A running `disksnap serve` and the CLI on its data dir.

    With tls=True (the default) the same routes are served over HTTPS too, on `tls_port`
    (`tls_url`), with a development certificate whose CA is `ca_file` (use it as SSL_CERT_FILE).

    In cluster mode (DISKSNAP_PYTEST_CLUSTER=N) it is N nodes behind a proxy, as above; every
    node serves node-1's certificate, so `ca_file` is trusted whichever node answers.
    """

    def __init__(self, retention="2h", extra_config="", serve_args=(), tls=True):
        self.dir = tempfile.mkdtemp(prefix="disksnap-pytest-")
        self.host = "127.0.0.1"
        self.tls = tls
        self.serve_args = serve_args
        self.config = os.path.join(self.dir, "disksnap.toml")
        self.database_url = fresh_pg_database() if META_ON_PG else None
        # the server's own key prefix in the shared test bucket
        self.s3_prefix = f"pytest-{os.getpid()}-{time.time_ns() % 10**12}" if STORE_ON_S3 else None
        if CLUSTER > 1:
            from cluster_proxy import Proxy
            self.nodes = [{"name": f"node-{i + 1}", "data": os.path.join(self.dir, f"node-{i + 1}"),
                           "port": free_port(), "tls_port": free_port() if tls else None,
                           "log": os.path.join(self.dir, f"node-{i + 1}.log")} for i in range(CLUSTER)]
            self.data = self.nodes[0]["data"]
            tls_dir = os.path.join(self.data, "tls")
            seed = int.from_bytes(os.urandom(4), "big")
            self.proxy = Proxy([(n["name"], n["port"], n["tls_port"]) for n in self.nodes],
                               certfile=os.path.join(tls_dir, "server.pem") if tls else None,
                               keyfile=os.path.join(tls_dir, "server-key.pem") if tls else None,
                               cafile=os.path.join(tls_dir, "ca.pem") if tls else None,
                               log_path=os.path.join(self.dir, "proxy.log"), seed=seed)
            self.port, self.tls_port = self.proxy.port, self.proxy.tls_port
        else:
            self.nodes = [{"name": None, "data": os.path.join(self.dir, "data"), "port": free_port(),
                           "tls_port": free_port() if tls else None, "log": os.path.join(self.dir, "server.log")}]
            self.data = self.nodes[0]["data"]
            self.proxy = None
            self.port, self.tls_port = self.nodes[0]["port"], self.nodes[0]["tls_port"]
        self.url = f"http://{self.host}:{self.port}"
        self.tls_url = f"https://{self.host}:{self.tls_port}" if tls else None
        self.ca_file = os.path.join(self.data, "tls", "ca.pem") if tls else None
        if self.database_url:
            extra_config = f'database_url = "{self.database_url}"\n{extra_config}'
        text = config_text(f"{self.host}:{self.port}", retention, extra_config,
                           tls_listen=f"{self.host}:{self.tls_port}" if tls else None)
        if STORE_ON_S3:
            s3 = s3_settings()
            text += (f'\n[store]\nbackend = "s3"\nbucket = "{s3["BUCKET"]}"\nprefix = "{self.s3_prefix}"\n'
                     f'endpoint = "{s3["ENDPOINT"]}"\npath_style = true\nallow_http = true\n'
                     f'access_key_id = "{s3["ACCESS_KEY"]}"\nsecret_access_key = "{s3["SECRET_KEY"]}"\n')
        with open(self.config, "w") as f:
            f.write(text)
        self.logs = [open(n["log"], "ab") for n in self.nodes]
        self._start()
        if self.proxy:
            # the certificate files exist now (node-1 made them on its first start)
            self.proxy.start()

    def restart(self):
        """Stop the server (SIGTERM; every node in cluster mode) and start new processes on the
        same data dirs and config."""
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)
        self._start()

    def _spawn(self, i):
        n = self.nodes[i]
        args = [BIN, "--data-dir", n["data"], "--config", self.config, "serve"]
        if n["name"]:
            args += ["--node", n["name"], "--listen", f"{self.host}:{n['port']}"]
            if self.tls:
                args += ["--tls-listen", f"{self.host}:{n['tls_port']}"]
                if i > 0:
                    # node-1's certificate on every node: the client trusts one CA whichever answers
                    tls_dir = os.path.join(self.nodes[0]["data"], "tls")
                    args += ["--tls-cert", os.path.join(tls_dir, "server.pem"),
                             "--tls-key", os.path.join(tls_dir, "server-key.pem")]
        return subprocess.Popen([*args, *self.serve_args], stdout=self.logs[i], stderr=subprocess.STDOUT)

    def _wait(self, i, proc):
        n = self.nodes[i]
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}:{n['port']}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"disksnap serve {n['name'] or ''} did not start:\n" + self.server_log())
                time.sleep(0.05)
        while n["tls_port"]:
            try:
                socket.create_connection((self.host, n["tls_port"]), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("disksnap serve did not listen on TLS:\n" + self.server_log())
                time.sleep(0.05)

    def _start(self):
        self.procs = [None] * len(self.nodes)
        try:
            first = 0
            if self.tls and len(self.nodes) > 1 and not os.path.exists(os.path.join(self.data, "tls", "server-key.pem")):
                # node-1 first: it makes the certificate the others serve
                self.procs[0] = self._spawn(0)
                self._wait(0, self.procs[0])
                first = 1
            for i in range(first, len(self.nodes)):
                self.procs[i] = self._spawn(i)
            for i in range(first, len(self.nodes)):
                self._wait(i, self.procs[i])
        except BaseException:
            # one node did not start: stop the ones that did, or they outlive the test run
            for p in self.procs:
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            raise
        self.proc = self.procs[0]

    def server_log(self):
        out = []
        for n, log in zip(self.nodes, self.logs):
            if not log.closed:
                log.flush()
            with open(n["log"], "rb") as f:
                text = f.read().decode(errors="replace")[-5000:]
            out.append(f"--- {n['name']} ---\n{text}" if n["name"] else text)
        return "\n".join(out)

    def cli(self, *args, account="alice", check=True):
        """Run `disksnap --json …` on the same data dir; returns the parsed JSON (or None)."""
        r = subprocess.run([BIN, "--data-dir", self.data, "--config", self.config, "--account", account, "--json",
                            *args], capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise RuntimeError(f"disksnap {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        try:
            return json.loads(r.stdout) if r.stdout.strip() else None
        except json.JSONDecodeError:
            return r.stdout

    def volume_path(self, volume_id, account="alice"):
        out = self.cli("volume", "path", volume_id, account=account)
        return out["path"] if isinstance(out, dict) else str(out).strip()

    def meta_sql(self, sql, params=()):
        """Run one statement on the server's metadata behind its back (meta.db, or its
        PostgreSQL database): the rows it returns, as tuples of strings and ints. `?` marks
        parameters (int or str)."""
        if self.database_url:
            lit = lambda v: str(int(v)) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"
            parts = sql.split("?")
            assert len(parts) == len(params) + 1, sql
            text = parts[0] + "".join(lit(v) + rest for v, rest in zip(params, parts[1:]))
            r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.database_url,
                                "-c", text], capture_output=True, text=True, check=True)
            num = lambda v: int(v) if v.lstrip("-").isdigit() else v
            return [tuple(num(v) for v in line.split("\t")) for line in r.stdout.splitlines() if line]
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data, "meta.db"), timeout=30)
        try:
            with db:
                return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def store_object(self, key):
        """The bytes of a store object (`indexes/<id>.fidx`, `packs/...`): DATA/store or S3."""
        if self.s3_prefix:
            status, body = s3_request("GET", f"{self.s3_prefix}/{key}")
            assert status == 200, (key, status, body[:300])
            return body
        with open(os.path.join(self.data, "store", key), "rb") as f:
            return f.read()

    def put_store_object(self, key, data):
        """Replace a store object's bytes behind the server's back (a damaged store)."""
        if self.s3_prefix:
            status, body = s3_request("PUT", f"{self.s3_prefix}/{key}", body=data)
            assert status == 200, (key, status, body[:300])
            return
        with open(os.path.join(self.data, "store", key), "wb") as f:
            f.write(data)

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()
        # Each server holds volume files (GiBs, sparse): remove them unless asked to keep them
        # for a post-mortem (DISKSNAP_KEEP_TEST_DIRS=1). The S3 prefix too: the test RGW keeps
        # its objects in RAM.
        if not os.environ.get("DISKSNAP_KEEP_TEST_DIRS"):
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.s3_prefix:
                for key in s3_keys(self.s3_prefix + "/"):
                    s3_request("DELETE", key)
            if self.database_url:
                base = os.environ["DISKSNAP_TEST_PG_URL"]
                subprocess.run(["psql", "-q", base, "-c",
                                f"DROP DATABASE IF EXISTS {self.database_url.rsplit('/', 1)[1]} WITH (FORCE)"],
                               capture_output=True)
        if self.proxy:
            # A cluster pass must have spread the requests: with N nodes chosen at random, a
            # node that got none of 10N requests means the proxy is not balancing.
            counts = self.proxy.counts
            if sum(counts.values()) >= 10 * len(counts):
                assert all(counts.values()), f"requests per node: {counts}"


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def pattern(seed, size):
    """A reproducible, non-repeating byte pattern (compressible only a little)."""
    import hashlib
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 4
    return bytes(out[:size])


def write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_all(path):
    with open(path, "rb") as f:
        return f.read()
