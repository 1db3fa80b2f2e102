"""Shared parts of the reliability scripts (crash_trials.py, soak.py, diskfull.py).

Everything here drives the real binary: the `disksnap` command line with `--json`, and
`disksnap serve` through QingCloud's signed query API (signature v1, HmacSHA256, computed
here with the standard library so the scripts need no venv). Python 3.11 standard library only.

The after-the-fact checks (`check_data_dir`) are the heart: after a crash or a soak, a data dir
must hold no job left pending/working, no volume or snapshot in a transition, an index file for
every available point and a byte-exact restore of it, a passing `verify`, no `.tmp-` files, and
files that match the metadata.
"""
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import time
import tomllib
import urllib.parse
import urllib.request
import uuid

MIB = 1 << 20
GIB = 1 << 30
HASH_BLOCK = 64 * 1024


class CliError(Exception):
    def __init__(self, argv, rc, stdout, stderr):
        super().__init__(f"{' '.join(argv)} exited {rc}: {stderr.strip()[-400:]}")
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- content hashes

def content_hash(path):
    """SHA-256 of a file's bytes that reads only its data extents.

    Volumes are 1 GiB sparse files with a few MiB of data, and a restore writes zero blocks as
    holes, so hashing every byte would cost seconds per check. Instead the file is cut into
    64 KiB blocks; every block that is not all zero contributes (offset, bytes), and the size
    closes the hash. Two files get the same value exactly when they hold the same bytes.
    """
    h = hashlib.sha256()
    zero = bytes(HASH_BLOCK)
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: only a hole is left
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            start = data - data % HASH_BLOCK
            while start < hole:
                blk = os.pread(fd, HASH_BLOCK, start)
                if blk and blk != zero[:len(blk)]:
                    h.update(start.to_bytes(8, "little"))
                    h.update(blk)
                start += HASH_BLOCK
            pos = max(hole, start)
    h.update(b"size")
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def scribble(path, rng, mib, max_offset_mib=None):
    """Write `mib` MiB of random bytes in 1 MiB runs at random MiB-aligned offsets of a
    volume file (in place, the way a VM writes its disk)."""
    size = os.path.getsize(path)
    limit = (max_offset_mib * MIB if max_offset_mib else size) // MIB
    with open(path, "r+b") as f:
        for _ in range(mib):
            off = rng.randrange(0, max(1, limit)) * MIB
            os.pwrite(f.fileno(), rng.randbytes(MIB), off)
        os.fsync(f.fileno())


# --------------------------------------------------------------------------- the command line

class Disksnap:
    """The `disksnap` command line on one data dir."""

    def __init__(self, binary, data_dir):
        self.bin = str(binary)
        self.data_dir = str(data_dir)
        self.env = dict(os.environ, DISKSNAP_DATA_DIR=self.data_dir, DISKSNAP_LOG="warn")
        self.env.pop("DISKSNAP_CONFIG", None)

    def argv(self, *args):
        return [self.bin, "--json", *[str(a) for a in args]]

    def run(self, *args, check=True, timeout=600):
        argv = self.argv(*args)
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise CliError(argv, p.returncode, p.stdout, p.stderr)
        return p

    def json(self, *args, timeout=600):
        p = self.run(*args, timeout=timeout)
        return json.loads(p.stdout) if p.stdout.strip() else None

    def popen(self, *args):
        return subprocess.Popen(self.argv(*args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def all_pages(self, what, key, *args):
        out, offset = [], 0
        while True:
            page = self.json(what, "list", *args, "--offset", offset, "--limit", 100)
            out += page[key]
            offset += len(page[key])
            if not page[key] or offset >= page["total_count"]:
                return out

    def snapshots(self, *args):
        # every status, deleted and ceased included
        return self.all_pages("snapshot", "snapshots", "--status",
                              "creating,available,deleted,ceased", *args)

    def volumes(self):
        return self.all_pages("volume", "volumes")

    def jobs(self, status=None):
        extra = ["--status", status] if status else []
        return self.all_pages("job", "jobs", *extra)

    def images(self):
        return self.all_pages("image", "images")

    def configure(self, **settings):
        """Rewrite top-level settings of the generated config (`None` removes one). The
        scripts drop `tls_listen` (a fixed port other servers on the machine may hold)."""
        path = os.path.join(self.data_dir, "disksnap.toml")
        with open(path) as f:
            lines = f.read().splitlines()
        head = [l for l in lines[:next((i for i, l in enumerate(lines) if l.startswith("[")), len(lines))]]
        rest = lines[len(head):]
        keep = [l for l in head if l.split("=")[0].strip() not in settings]
        for k, v in settings.items():
            if v is not None:
                keep.append(f"{k} = {json.dumps(v)}")
        with open(path, "w") as f:
            f.write("\n".join(keep + [""] + rest) + "\n")

    def keys(self):
        with open(os.path.join(self.data_dir, "disksnap.toml"), "rb") as f:
            cfg = tomllib.load(f)
        q = cfg["accounts"][0]["qingcloud"]
        return q["access_key_id"], q["secret_access_key"]


# --------------------------------------------------------------------------- the server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`disksnap serve` on a free port; started and stopped (or killed) by the scripts."""

    def __init__(self, ds, log_path):
        self.ds = ds
        self.log_path = log_path
        self.proc = None
        self.port = None

    def start(self, timeout=60):
        self.port = free_port()
        logf = open(self.log_path, "ab")
        env = dict(self.ds.env, DISKSNAP_LOG="info")
        self.proc = subprocess.Popen([self.ds.bin, "serve", "--listen", f"127.0.0.1:{self.port}"],
                                     env=env, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"disksnap serve exited {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"disksnap serve did not answer /healthz in {timeout}s")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise RuntimeError("disksnap serve did not stop on SIGTERM")

    def client(self):
        ak, sk = self.ds.keys()
        return QingCloud(f"127.0.0.1:{self.port}", ak, sk)


def qc_quote(s):
    return urllib.parse.quote(str(s), safe="-_.~")


class QingCloud:
    """QingCloud IaaS signed query API (dialects.md §2.3), one keep-alive-less call at a time."""

    def __init__(self, addr, ak, sk, zone="pek3a", timeout=60):
        self.addr, self.ak, self.sk, self.zone, self.timeout = addr, ak, sk, zone, timeout

    def call(self, action, **params):
        flat = {}
        for k, v in params.items():
            if isinstance(v, (list, tuple)):
                for i, item in enumerate(v, 1):
                    flat[f"{k}.{i}"] = item
            elif v is not None:
                flat[k] = v
        flat.update(action=action, zone=self.zone, access_key_id=self.ak, signature_method="HmacSHA256",
                    signature_version=1, version=1, req_id=uuid.uuid4().hex,
                    time_stamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        qs = "&".join(f"{qc_quote(k)}={qc_quote(v)}" for k, v in sorted(flat.items()))
        sig = base64.b64encode(hmac.new(self.sk.encode(), f"GET\n/iaas/\n{qs}".encode(),
                                        hashlib.sha256).digest()).decode()
        url = f"http://{self.addr}/iaas/?{qs}&signature={urllib.parse.quote_plus(sig)}"
        with urllib.request.urlopen(url, timeout=self.timeout) as r:
            return json.loads(r.read())

    def wait_jobs_idle(self, timeout=120):
        """Until DescribeJobs shows nothing pending or working."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.call("DescribeJobs", status=["pending", "working"], limit=100)
            if r.get("ret_code") == 0 and r.get("total_count", 1) == 0:
                return True
            time.sleep(0.2)
        return False


# --------------------------------------------------------------------------- checks

def bare(id_):
    return id_.split("-", 1)[1] if "-" in id_ else id_


def tmp_files(data_dir):
    """Temp files of writes in progress anywhere under the store (chunks, indexes), plus
    pending pins: after recovery, with no job running, there must be none."""
    found = []
    for root, _dirs, files in os.walk(os.path.join(data_dir, "store")):
        for f in files:
            if f.startswith(".tmp-") or ".pending" in f or ".tmp" in f:
                found.append(os.path.join(root, f))
    return found


def check_data_dir(ds, expected, restore_points=None, workers=3):
    """Check a data dir with no process running on it. `expected` maps bare snapshot id ->
    content hash recorded when the point was taken. Restores every available point in
    `restore_points` (bare ids; default: every available point) and compares.

    Returns a list of failure strings (empty: all good) and a dict of counts."""
    failures, counts = [], {"restored": 0, "orphan_indexes": 0}
    # Any command recovers first; this one also lets resumed jobs finish.
    open_jobs = ds.jobs("pending,working")
    for j in open_jobs:
        failures.append(f"job {j['id']} ({j['action']}) left {j['status']} after recovery")
    vols = ds.volumes()
    snaps = ds.snapshots()
    images = ds.images()
    for v in vols:
        if v["transition"] or v["status"] not in ("available", "in-use"):
            failures.append(f"volume {v['id']} left {v['status']}/{v['transition'] or '-'}")
        if not os.path.exists(v["path"]):
            failures.append(f"volume {v['id']} has no file {v['path']}")
    for s in snaps:
        if s["transition"] or s["status"] not in ("available", "deleted", "ceased"):
            failures.append(f"snapshot {s['id']} left {s['status']}/{s['transition'] or '-'}")
    idx_dir = os.path.join(ds.data_dir, "store", "indexes")
    index_files = {f[:-5] for f in os.listdir(idx_dir) if f.endswith(".fidx")}
    need_index = {bare(s["id"]) for s in snaps if s["status"] in ("available", "deleted")}
    for b in sorted(need_index - index_files):
        # A deleted point whose recovery window passed between the listing and now was
        # ceased (and its index released) by the command that ran in between: not a fault.
        now = ds.json("snapshot", "show", f"ss-{b}")
        if now["status"] == "ceased":
            continue
        failures.append(f"snapshot ss-{b} is listed {[s['status'] for s in snaps if bare(s['id']) == b][0]} but has no index file")
    counts["orphan_indexes"] = len(index_files - need_index)
    # files == metadata: every volume/image file belongs to a row
    vol_files = {os.path.basename(v["path"]) for v in vols}
    for f in os.listdir(os.path.join(ds.data_dir, "volumes")):
        # `<volume file>.points/` holds a volume's kept point clone (reflink file systems)
        owner = f[: -len(".points")] if f.endswith(".points") else f
        if owner not in vol_files:
            failures.append(f"volumes/{f} belongs to no volume")
    img_files = {os.path.basename(i.get("path", "")) for i in images}
    img_dir = os.path.join(ds.data_dir, "images")
    if os.path.isdir(img_dir):
        for f in os.listdir(img_dir):
            if f not in img_files:
                failures.append(f"images/{f} belongs to no image")
    for i in images:
        if i.get("status") not in ("available",):
            failures.append(f"image {i['id']} left {i.get('status')}")
        elif not os.path.exists(i["path"]):
            failures.append(f"image {i['id']} has no file")
    tmps = tmp_files(ds.data_dir)
    if tmps:
        chunk_tmp = sum(1 for t in tmps if "/chunks/" in t)
        pins = sum(1 for t in tmps if t.endswith(".pending"))
        failures.append(f"temp files left: {chunk_tmp} chunk .tmp- files, {pins} .pending pins, "
                        f"{len(tmps) - chunk_tmp - pins} other (e.g. {os.path.relpath(tmps[0], ds.data_dir)})")
    # byte-exact restores, a few at a time (each is a command of its own on the data dir)
    todo = []
    for s in snaps:
        b = bare(s["id"])
        if s["status"] != "available" or (restore_points is not None and b not in restore_points):
            continue
        if b not in index_files:
            continue  # already reported
        if b not in expected:
            failures.append(f"snapshot {s['id']} is available but no content was recorded for it")
            continue
        todo.append(s["id"])

    def restore_one(sid):
        try:
            v = ds.json("snapshot", "to-volume", sid, "--name", "check")
        except CliError as e:
            return f"restore of {sid} failed: {e}"
        got = content_hash(v["path"])
        ds.run("volume", "delete", v["id"])
        if got != expected[bare(sid)]:
            return f"snapshot {sid} restores to different bytes than were snapshotted"
        return None

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for r in pool.map(restore_one, todo):
            counts["restored"] += 1
            if r:
                failures.append(r)
    v = ds.run("verify", check=False)
    rep = json.loads(v.stdout) if v.stdout.strip() else {}
    if v.returncode != 0 or not rep.get("ok"):
        failures.append(f"verify failed: {v.stdout.strip()[:300]} {v.stderr.strip()[:300]}")
    return failures, counts
