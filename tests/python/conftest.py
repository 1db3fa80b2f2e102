"""Shared fixtures for the real-client tests: start the real `disksnap serve` on a free port
with a config of two accounts (alice, bob) holding keys for every dialect, and drive the same
data dir with the disksnap CLI where a test needs an operator action (instances, recover).

Only the standard library is used here: each dialect's suite runs in its own venv.
"""
import json
import os
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


# DISKSNAP_PYTEST_META=pg: every server keeps its metadata on PostgreSQL, in a database of its
# own on the server DISKSNAP_TEST_PG_URL names (scripts/pg.sh start; eval "$(scripts/pg.sh env)").
# Unset: SQLite in the data dir, the default.
META_ON_PG = os.environ.get("DISKSNAP_PYTEST_META") == "pg"


def fresh_pg_database():
    """A new empty database on the test server; its URL for `database_url`."""
    base = os.environ.get("DISKSNAP_TEST_PG_URL")
    if not base:
        raise RuntimeError("DISKSNAP_PYTEST_META=pg needs DISKSNAP_TEST_PG_URL (scripts/pg.sh env)")
    name = f"pytest_{os.getpid()}_{time.time_ns() % 10**12}"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", base, "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return base.rsplit("/", 1)[0] + "/" + name


def free_port():
    with socket.socket() as s:
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
    """

    def __init__(self, retention="2h", extra_config="", serve_args=(), tls=True):
        self.dir = tempfile.mkdtemp(prefix="disksnap-pytest-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.tls_port = free_port() if tls else None
        self.tls_url = f"https://{self.host}:{self.tls_port}" if tls else None
        self.ca_file = os.path.join(self.data, "tls", "ca.pem") if tls else None
        self.config = os.path.join(self.dir, "disksnap.toml")
        if META_ON_PG:
            extra_config = f'database_url = "{fresh_pg_database()}"\n{extra_config}'
        with open(self.config, "w") as f:
            f.write(config_text(f"{self.host}:{self.port}", retention, extra_config,
                                tls_listen=f"{self.host}:{self.tls_port}" if tls else None))
        self.serve_args = serve_args
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self._start()

    def restart(self):
        """Stop the server (SIGTERM) and start a new process on the same data dir and config."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._start()

    def _start(self):
        self.proc = subprocess.Popen(
            [BIN, "--data-dir", self.data, "--config", self.config, "serve", *self.serve_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("disksnap serve did not start:\n" + self.server_log())
                time.sleep(0.05)
        while self.tls_port:
            try:
                socket.create_connection((self.host, self.tls_port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("disksnap serve did not listen on TLS:\n" + self.server_log())
                time.sleep(0.05)

    def server_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")[-5000:]

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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        # Each server holds volume files (GiBs, sparse): remove them unless asked to keep them
        # for a post-mortem (DISKSNAP_KEEP_TEST_DIRS=1).
        if not os.environ.get("DISKSNAP_KEEP_TEST_DIRS"):
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


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
