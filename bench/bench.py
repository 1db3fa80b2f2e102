#!/usr/bin/env python3
"""disksnap benchmark: disksnap and its peers side by side on one image (see ../README or
/work/shared/design/performance.md for the workload and the targets).

Normally started by bench/run.sh, which installs the peers and builds the binary:

    bench.py --disksnap target/release/disksnap --tools ../shared/tools --work bench-work \
             [--size-gib 4] [--runs 1] [--keep] [--chunk-sizes 16,32,64,128,256] [--no-disksnap]
             [--cache warm|cold|both] [--s3]

Every timed command runs as a direct child; os.wait4 on its pid gives that child's own
rusage (user+sys CPU, peak RSS including any children it reaped). A `sync` runs before every
timed command (untimed) and right after it (timed, reported as "flush") so one tool's
writeback never lands on the next one's clock.

Cache conditions (--cache, default both: the whole comparison runs once per condition):
  warm  the source of every operation is read once just before it;
  cold  `sync; echo 3 > /proc/sys/vm/drop_caches` (untimed) before every timed operation
        (needs root). Ratios are only ever taken within one condition of one run.

--s3 runs disksnap's series a second time (rows `disksnap-s3`) with its store in a real Ceph RGW
that the bench starts with scripts/rgw.sh on its own directory and ports (stopped at exit), and
counts the PUTs of the full snapshot from RGW's own perf counter (rgw.put, read from the radosgw
admin socket before and after). Python 3.11 standard library only.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

MIB = 1 << 20
GIB = 1 << 30
# coreutils 9 reflinks by default where it can (XFS, btrfs: bench/ctb.sh), which copies nothing;
# the peer is a real copy of the bytes
CP_FULL = ["cp", "--sparse=always", "--reflink=never"]
MUTATE_SEED = 42          # mutate.py's default: every copy gets the same bytes
ROLLBACK_CHANGE_SEED = 4242  # the 16 MiB change made before the rollback
FIELDS = ("wall", "cpu", "flush", "rss_mib", "store", "growth", "alloc", "puts", "objects")
DROP_CACHES = "/proc/sys/vm/drop_caches"


def drop_caches():
    """`sync; echo 3 > /proc/sys/vm/drop_caches`: page cache, dentries and inodes."""
    os.sync()
    with open(DROP_CACHES, "w") as f:
        f.write("3\n")


class BenchError(Exception):
    """The environment or a peer failed: the run cannot go on."""


class DisksnapFailure(Exception):
    """disksnap failed a command or a correctness check: its remaining steps are skipped."""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def tail(text, n=15):
    lines = text.strip().splitlines()
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- processes

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(argv, cwd=None, env=None, timeout=600.0):
    """Run argv to completion; return its rc, wall time, child CPU time and peak RSS.

    CPU comes from os.wait4 on the child (user+sys, including what it reaped). Peak RSS comes
    from GNU time's %M, because wait4's ru_maxrss is polluted: a forked child inherits this
    Python process's RSS high-water mark and the kernel carries it across exec, so a 2 MiB
    `cp` would read as ~40 MiB. GNU time forks the real command from a ~1 MiB process.
    """
    argv = [str(a) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss_file:
        full = ([GNU_TIME, "-f", "%M", "-o", rss_file.name, "--"] if GNU_TIME else []) + argv
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(full, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err, start_new_session=True)
        except OSError as e:
            raise BenchError(f"cannot start {full[0]}: {e}") from e
        timed_out = threading.Event()
        done = threading.Event()

        def kill():
            if not done.is_set():
                timed_out.set()
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            done.set()
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        rss_kib = None
        if GNU_TIME:
            lines = rss_file.read().strip().splitlines()
            if lines and lines[-1].strip().isdigit():
                rss_kib = int(lines[-1])
        else:
            rss_kib = ru.ru_maxrss   # an upper bound (see above)
        out.seek(0)
        err.seek(0)
        return {
            "argv": argv,
            "rc": p.returncode,
            "wall": wall,
            "cpu": ru.ru_utime + ru.ru_stime,
            "rss_kib": rss_kib,
            "out": out.read().decode(errors="replace"),
            "err": err.read().decode(errors="replace"),
            "timed_out": timed_out.is_set(),
        }


def describe(r):
    why = "timed out" if r["timed_out"] else f"exit {r['rc']}"
    # a new disksnap data dir prints generated dev credentials on stderr: keep them out of reports
    err = "\n".join(l for l in r["err"].splitlines()
                    if not re.search(r"secret|password|access_key|credentials", l, re.I))
    return (f"`{' '.join(r['argv'])}` {why}\n  stdout: {tail(r['out'], 5) or '-'}\n"
            f"  stderr: {tail(err) or '-'}")


def parse_json(text):
    """The JSON object a command printed (the last one if it printed several lines)."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    dec = json.JSONDecoder()
    found = None
    for m in re.finditer(r"(?m)^[{\[]", text):
        try:
            found, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
    if found is None:
        raise ValueError("no JSON object in output")
    return found


# --------------------------------------------------------------------------- files

def read_through(path, digest=None):
    """Read a whole file (warms the page cache); return its SHA-256 if asked."""
    h = hashlib.sha256() if digest else None
    buf = bytearray(16 * MIB)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if h:
                h.update(view[:n])
    return h.hexdigest() if h else None


def sha256(path):
    return read_through(path, digest=True)


def warm(path):
    read_through(path)


def allocated(path):
    return os.stat(path).st_blocks * 512


def du_sb(*paths):
    """Sum of `du -sb` over paths (apparent bytes; hard links once)."""
    paths = [str(p) for p in paths if os.path.exists(p)]
    if not paths:
        return 0
    out = subprocess.run(["du", "-sbc", *paths], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path))


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


def fmt(v, scale=1.0, prec=2):
    if v is None:
        return "-"
    return f"{v / scale:.{prec}f}"


# --------------------------------------------------------------------------- S3 (Ceph RGW)

class Rgw:
    """A throwaway Ceph RGW started by scripts/rgw.sh on the bench's own directory and ports
    (never the test run's /tmp/disksnap-rgw, 17480, 46789), and the few S3 calls the bench needs
    (curl's own SigV4, as rgw.sh does)."""
    ACCESS_KEY = "DISKSNAPTESTACCESS01"          # rgw.sh's fixed test keys (loopback only)
    SECRET_KEY = "disksnap-test-secret-key-0123456789abcdef"
    EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    def __init__(self, script, directory, port, mon_port, mem_mib, store, bucket="disksnap-bench"):
        self.script, self.dir, self.port, self.bucket = script, os.path.abspath(directory), port, bucket
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DISKSNAP_")}
        self.env.update({"DISKSNAP_RGW_DIR": self.dir, "DISKSNAP_RGW_PORT": str(port),
                         "DISKSNAP_RGW_MON_PORT": str(mon_port), "DISKSNAP_RGW_MEM_MIB": str(mem_mib),
                         "DISKSNAP_RGW_BUCKET": bucket, "DISKSNAP_RGW_STORE": store})
        self.started = False

    def start(self):
        log(f"starting Ceph RGW ({self.script} start; {self.dir}, port {self.port})")
        self.started = True
        p = subprocess.run([self.script, "start"], env=self.env, capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise BenchError(f"rgw.sh start failed (exit {p.returncode}): {tail(p.stderr)}")
        log(tail(p.stderr, 1))

    def stop(self):
        if not self.started:
            return
        self.started = False
        p = subprocess.run([self.script, "stop"], env=self.env, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            print(f"rgw.sh stop failed: {tail(p.stderr)}", file=sys.stderr)
        else:
            log("Ceph RGW stopped")

    def store_toml(self, prefix):
        return (f'\n[store]\nbackend = "s3"\nbucket = "{self.bucket}"\nprefix = "{prefix}"\n'
                f'endpoint = "{self.endpoint}"\npath_style = true\nallow_http = true\n'
                f'access_key_id = "{self.ACCESS_KEY}"\nsecret_access_key = "{self.SECRET_KEY}"\n')

    def _s3(self, method, path):
        p = subprocess.run(["curl", "-s", "--max-time", "60", "-X", method, "-w", "\n%{http_code}",
                            "-H", f"x-amz-content-sha256: {self.EMPTY_SHA}",
                            "--aws-sigv4", "aws:amz:us-east-1:s3",
                            "--user", f"{self.ACCESS_KEY}:{self.SECRET_KEY}", self.endpoint + path],
                           capture_output=True, text=True, timeout=120)
        body, _, code = p.stdout.rpartition("\n")
        return code, body

    def objects(self, prefix):
        """[(key, size)] under prefix/ (ListObjectsV2, paged with start-after)."""
        out, after = [], None
        while True:
            q = f"list-type=2&prefix={urllib.parse.quote(prefix + '/', safe='')}"
            if after:
                q += f"&start-after={urllib.parse.quote(after, safe='')}"
            code, body = self._s3("GET", f"/{self.bucket}?{q}")
            if code != "200":
                raise DisksnapFailure(f"S3 list of {prefix}/ answered HTTP {code}: {body[:300]}")
            root = ET.fromstring(body)
            ns = {"s": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
            pre = "s:" if ns else ""
            page = [(c.findtext(f"{pre}Key", namespaces=ns), int(c.findtext(f"{pre}Size", "0", namespaces=ns)))
                    for c in root.findall(f"{pre}Contents", ns)]
            out += page
            if root.findtext(f"{pre}IsTruncated", "false", namespaces=ns) != "true" or not page:
                return out
            after = page[-1][0]

    def size(self, prefix):
        return sum(s for _, s in self.objects(prefix))

    def delete_prefix(self, prefix):
        try:
            for key, _ in self.objects(prefix):
                self._s3("DELETE", f"/{self.bucket}/{urllib.parse.quote(key, safe='/')}")
        except (DisksnapFailure, OSError, subprocess.SubprocessError, ET.ParseError) as e:
            print(f"deleting s3://{self.bucket}/{prefix}/ failed: {e}", file=sys.stderr)

    def puts(self):
        """RGW's own count of object PUTs (perf counter rgw.put: PutObject and multipart part
        uploads) since it started, from the radosgw admin socket; None if unreadable."""
        asok = os.path.join(self.dir, "run", "client.rgw.0.asok")
        try:
            p = subprocess.run(["ceph", "--admin-daemon", asok, "perf", "dump", "rgw"],
                               capture_output=True, text=True, timeout=60)
            return int(json.loads(p.stdout)["rgw"]["put"])
        except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
            return None


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.tools = os.path.abspath(a.tools)
        self.mkdisk = os.path.join(self.tools, "mkdisk.py")
        self.mutate_py = os.path.join(self.tools, "mutate.py")
        self.bin = os.path.abspath(a.disksnap) if a.disksnap else None
        self.timeout = a.timeout or (120 + 150 * a.size_gib)
        self.failures = []
        self.cache = "warm"      # the condition of the comparison now running
        self.rgw = None          # an Rgw with --s3
        # DISKSNAP_CONFIG / DISKSNAP_DATA_DIR from the caller's shell must not redirect the bench
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DISKSNAP_")}
        self.env.update({
            "RESTIC_PASSWORD": "disksnap-bench",
            "RESTIC_CACHE_DIR": os.path.join(self.work, "cache", "restic"),
            "BORG_PASSPHRASE": "disksnap-bench",
            "BORG_BASE_DIR": os.path.join(self.work, "cache", "borg"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        })

    # ---- bookkeeping
    def fail(self, msg):
        bar = "!" * 78
        text = f"\n{bar}\nFAIL: {msg}\n{bar}\n"
        print(text, file=sys.stderr, flush=True)
        if not sys.stdout.isatty():      # stdout is a log: put it there too
            print(text, flush=True)
        self.failures.append(msg)

    def measure(self, rows, tool, op, argv, cwd=None, warm_path=None, **extra):
        """Time one command (warm: read the source; cold: drop the caches; then sync before,
        timed sync after) and record a row."""
        if self.cache == "cold":
            drop_caches()
        elif warm_path:
            warm(warm_path)
        os.sync()
        r = run(argv, cwd=cwd, env=self.env, timeout=self.timeout)
        t = time.perf_counter()
        os.sync()
        flush = time.perf_counter() - t
        row = {"cache": self.cache, "tool": tool, "op": op, "wall": r["wall"], "cpu": r["cpu"], "flush": flush,
               "rss_mib": None if r["rss_kib"] is None else r["rss_kib"] / 1024,
               "store": None, "growth": None, "alloc": None, "ok": r["rc"] == 0 and not r["timed_out"], "note": ""}
        row.update(extra)
        rows.append(row)
        log(f"{self.cache:4} {tool:11} {op:16} {r['wall']:8.2f} s wall {r['cpu']:8.2f} s CPU "
            f"{fmt(row['rss_mib'], prec=1):>7} MiB RSS  flush {flush:.2f} s"
            + ("" if row["ok"] else "   [FAILED]"))
        return r, row

    def untimed(self, argv, cwd=None, what=None):
        r = run(argv, cwd=cwd, env=self.env, timeout=self.timeout)
        if r["rc"] != 0 or r["timed_out"]:
            raise BenchError(f"{what or 'command'} failed: {describe(r)}")
        return r

    def mutate(self, img, pattern, seed=MUTATE_SEED):
        r = run([sys.executable, self.mutate_py, img, pattern, "--seed", seed],
                env=self.env, timeout=self.timeout)
        if r["rc"] != 0:
            raise BenchError(f"mutate.py failed: {describe(r)}")
        m = re.search(r"sha256 ([0-9a-f]{64})", r["out"])
        if not m:
            raise BenchError(f"mutate.py printed no sha256: {r['out']!r}")
        return m.group(1)

    # ---- the image
    def make_image(self):
        os.makedirs(self.work, exist_ok=True)
        img = os.path.join(self.work, "src.img")
        meta_path = img + ".json"
        want = {"size_gib": self.a.size_gib, "seed": "default"}
        if os.path.exists(img) and os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if {k: meta.get(k) for k in want} == want and os.path.getsize(img) == self.a.size_gib * GIB:
                log(f"reusing {img}; checking its sha256")
                if sha256(img) == meta["sha256"]:
                    return img, meta["sha256"]
                log("sha256 differs; rebuilding")
        log(f"building the {self.a.size_gib} GiB image with mkdisk.py")
        for p in (img, meta_path):
            if os.path.exists(p):
                os.unlink(p)
        r = run([sys.executable, self.mkdisk, img, "--size-gib", self.a.size_gib],
                env=self.env, timeout=self.timeout * 2)
        if r["rc"] != 0:
            raise BenchError(f"mkdisk.py failed: {describe(r)}")
        m = re.search(r"sha256 ([0-9a-f]{64})", r["out"])
        if not m:
            raise BenchError(f"mkdisk.py printed no sha256: {r['out']!r}")
        log(r["out"].strip().splitlines()[0])
        digest = sha256(img)
        if digest != m.group(1):
            raise BenchError(f"image sha256 {digest} != mkdisk's {m.group(1)}")
        with open(meta_path, "w") as f:
            json.dump(dict(want, sha256=digest), f)
        return img, digest

    # ---- disksnap
    def ds(self, data, *args, json_out=True):
        argv = [self.bin, "--data-dir", data] + (["--json"] if json_out else []) + [str(a) for a in args]
        return argv

    def ds_untimed(self, data, *args, json_out=True):
        r = run(self.ds(data, *args, json_out=json_out), env=self.env, timeout=self.timeout)
        if r["rc"] != 0 or r["timed_out"]:
            raise DisksnapFailure(describe(r))
        return r

    def ds_timed(self, rows, data, op, *args, warm_path=None, tool="disksnap", **extra):
        r, row = self.measure(rows, tool, op, self.ds(data, *args), warm_path=warm_path, **extra)
        if not row["ok"]:
            raise DisksnapFailure(describe(r))
        return r, row

    def ds_json(self, r):
        try:
            obj = parse_json(r["out"])
        except ValueError as e:
            raise DisksnapFailure(f"`{' '.join(r['argv'])}`: {e}; stdout was: {tail(r['out'], 5)!r}")
        return obj

    def ds_volume_path(self, data, vol_id, obj=None):
        if isinstance(obj, dict) and obj.get("path"):
            p = obj["path"]
            for cand in ([p] if os.path.isabs(p) else [os.path.abspath(p), os.path.join(data, p)]):
                if os.path.exists(cand):
                    return cand
            raise DisksnapFailure(f"volume {vol_id}: JSON \"path\" {p!r} does not exist")
        r = self.ds_untimed(data, "volume", "path", vol_id, json_out=False)
        path = r["out"].strip().splitlines()[-1].strip() if r["out"].strip() else ""
        if not os.path.isabs(path) or not os.path.exists(path):
            raise DisksnapFailure(f"`volume path {vol_id}` printed {r['out']!r}, not an existing absolute path")
        return path

    def ds_import(self, rows, data, img, name, tool="disksnap"):
        r, row = self.ds_timed(rows, data, "import", "volume", "import", img, "--name", name,
                               warm_path=img, tool=tool)
        obj = self.ds_json(r)
        if not isinstance(obj, dict) or "id" not in obj:
            raise DisksnapFailure(f"`volume import` JSON has no \"id\": {obj!r}")
        path = self.ds_volume_path(data, obj["id"], obj)
        row["alloc"] = allocated(path)
        return obj["id"], path

    def ds_snapshot(self, rows, data, op, vol_id, vol_path, name, tool="disksnap"):
        r, row = self.ds_timed(rows, data, op, "snapshot", "create", vol_id, "--name", name,
                               warm_path=vol_path, tool=tool)
        obj = self.ds_json(r)
        try:
            snaps = obj["snapshots"]
            snap_id = snaps[0]["id"]
        except (KeyError, IndexError, TypeError):
            raise DisksnapFailure(f"`snapshot create` JSON has no snapshots[0].id: {tail(r['out'], 5)}")
        job = obj.get("job") if isinstance(obj, dict) else None
        state = str((job or {}).get("state", (job or {}).get("status", ""))).lower()
        if any(w in state for w in ("fail", "error", "cancel")):
            raise DisksnapFailure(f"`snapshot create` job ended {state!r}: {job!r}")
        row["note"] = f"{snap_id}" + (f" job {state}" if state else "")
        return snap_id, row

    @staticmethod
    def ds_store_dir(data):
        """The dir holding chunks/ and indexes/: DATA itself, or the child of DATA that does
        (the engine's store.toml marks it; today that is DATA/store)."""
        cands = [data] + sorted(os.path.join(data, d) for d in os.listdir(data)) if os.path.isdir(data) else []
        for d in cands:
            if os.path.isdir(os.path.join(d, "indexes")) and (
                    os.path.isdir(os.path.join(d, "packs")) or os.path.isdir(os.path.join(d, "chunks"))):
                return d
        return None

    def ds_store(self, data, vol_paths=()):
        """Bytes of the local store: packs (or the older chunk files), indexes, store.toml."""
        store = self.ds_store_dir(data)
        if store:
            return du_sb(*(os.path.join(store, n) for n in ("packs", "chunks", "indexes", "store.toml")))
        # fallback: the whole data dir minus the top-level dir(s) holding the volumes
        vol_dirs = set()
        for p in vol_paths:
            rel = os.path.relpath(os.path.realpath(p), os.path.realpath(data))
            if not rel.startswith(".."):
                vol_dirs.add(os.path.join(data, rel.split(os.sep)[0]))
        return du_sb(data) - (du_sb(*vol_dirs) if vol_dirs else 0)

    # ---- one run of the side-by-side comparison
    def check(self, tool, what, path, want, row=None):
        got = sha256(path)
        if got != want:
            msg = f"{tool} {what}: sha256 of {path} is {got}, expected {want}"
            if row is not None:
                row["ok"] = False
                row["note"] = (row["note"] + " sha256 MISMATCH").strip()
            if tool.startswith("disksnap"):
                raise DisksnapFailure(msg)
            self.fail(msg)
        elif row is not None:
            row["note"] = (row["note"] + " sha256 ok").strip()

    def run_compare(self, k, src, src_sha, cache):
        self.cache = cache
        R = os.path.join(self.work, f"run-{k}-{cache}")
        rmtree(R)
        os.makedirs(R)
        rmtree(os.path.join(self.work, "cache"))
        rows = []
        info = {"sha256": {"source": src_sha}, "cache": cache}
        peer = os.path.join(R, "peer.img")
        restic_repo = os.path.join(R, "restic-repo")
        borg_repo = os.path.join(R, "borg-repo")
        check = self.check

        # ---------------- full
        log(f"run {k} ({cache}): full snapshot / backup / copy of the {self.a.size_gib} GiB image")
        cp_out = os.path.join(R, "cp.img")
        r, row = self.measure(rows, "cp --sparse", "full", CP_FULL + [src, cp_out], warm_path=src)
        if not row["ok"]:
            raise BenchError(describe(r))
        row["alloc"] = row["store"] = allocated(cp_out)
        check("cp", "copy", cp_out, src_sha, row)
        os.rename(cp_out, peer)          # the copy becomes the peers' working image
        info["source_alloc"] = allocated(peer)

        qc = os.path.join(R, "img.qcow2")
        r, row = self.measure(rows, "qemu-img", "full", ["qemu-img", "convert", "-O", "qcow2", src, qc],
                              warm_path=src)
        if not row["ok"]:
            raise BenchError(describe(r))
        row["store"] = row["alloc"] = allocated(qc)
        os.unlink(qc)

        self.untimed(["restic", "-r", restic_repo, "init"], what="restic init")
        r, row = self.measure(rows, "restic", "full", ["restic", "-r", restic_repo, "backup", "peer.img"],
                              cwd=R, warm_path=peer)
        if not row["ok"]:
            raise BenchError(describe(r))
        row["store"] = du_sb(restic_repo)

        self.untimed(["borg", "init", "-e", self.a.borg_encryption, borg_repo], what="borg init")
        borg_create = ["borg", "create", "--chunker-params", "fixed,4194304", "--compression", "zstd,1"]
        r, row = self.measure(rows, "borg", "full", borg_create + [f"{borg_repo}::full", "peer.img"],
                              cwd=R, warm_path=peer)
        if not row["ok"]:
            raise BenchError(describe(r))
        row["store"] = du_sb(borg_repo)

        # ---------------- incrementals
        for pattern in ("scattered", "clustered"):
            op = f"incr {pattern}"
            log(f"run {k} ({cache}): {pattern} change, then incremental")
            want = self.mutate(peer, pattern)
            info["sha256"][pattern] = want
            for tool, argv in (("restic", ["restic", "-r", restic_repo, "backup", "peer.img"]),
                               ("borg", borg_create + [f"{borg_repo}::{pattern}", "peer.img"])):
                repo = restic_repo if tool == "restic" else borg_repo
                before = du_sb(repo)
                r, row = self.measure(rows, tool, op, argv, cwd=R, warm_path=peer)
                if not row["ok"]:
                    raise BenchError(describe(r))
                row["store"] = du_sb(repo)
                row["growth"] = row["store"] - before
        info["source_alloc_latest"] = allocated(peer)
        latest_sha = info["sha256"]["clustered"]

        # ---------------- restore
        log(f"run {k} ({cache}): restore the latest point to a new file")
        tgt = os.path.join(R, "restic-restore")
        r, row = self.measure(rows, "restic", "restore",
                              ["restic", "-r", restic_repo, "restore", "latest", "--target", tgt])
        if not row["ok"]:
            raise BenchError(describe(r))
        found = [os.path.join(d, f) for d, _, fs in os.walk(tgt) for f in fs if f == "peer.img"]
        if len(found) != 1:
            raise BenchError(f"restic restore: expected one peer.img under {tgt}, found {found}")
        row["alloc"] = allocated(found[0])
        check("restic", "restore", found[0], latest_sha, row)
        rmtree(tgt)

        tgt = os.path.join(R, "borg-restore")
        os.makedirs(tgt)
        r, row = self.measure(rows, "borg", "restore",
                              ["borg", "extract", "--sparse", f"{borg_repo}::clustered"], cwd=tgt)
        if not row["ok"]:
            raise BenchError(describe(r))
        out = os.path.join(tgt, "peer.img")
        row["alloc"] = allocated(out)
        check("borg", "extract", out, latest_sha, row)
        rmtree(tgt)

        # ---------------- verify
        log(f"run {k} ({cache}): verify")
        r, row = self.measure(rows, "restic", "verify", ["restic", "-r", restic_repo, "check", "--read-data"])
        row["note"] = "check --read-data"
        if not row["ok"]:
            self.fail(f"restic check --read-data: {describe(r)}")
        # the peers are done: their repos and image make room for disksnap's data dirs
        if not (self.a.keep and k == self.a.runs):
            for p in (restic_repo, borg_repo):
                rmtree(p)
            os.unlink(peer)

        # ---------------- disksnap: the same series on the local store, then (--s3) on RGW
        if self.bin is not None:
            self.ds_series(rows, k, R, "disksnap", src, src_sha, info)
            if self.rgw is not None:
                self.ds_series(rows, k, R, "disksnap-s3", src, src_sha, info, s3=self.rgw)
                self.ds_s3_signed_full(rows, k, R, src, src_sha)

        if not (self.a.keep and k == self.a.runs):   # only the last run's dir is ever kept
            rmtree(R)
        return rows, info

    def ds_series(self, rows, k, R, tool, src, src_sha, info, s3=None):
        """import, full, incr scattered, incr clustered (the peers' exact changes: checked by
        sha256), restore to a new volume, roll back after a 16 MiB change, verify."""
        data = os.path.join(R, f"{tool}-data")
        prefix = None
        latest_sha = info["sha256"]["clustered"]
        vol = {}

        def store_size():
            return s3.size(prefix) if s3 else self.ds_store(data, [vol["path"]])
        if s3:
            prefix = f"bench-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-run{k}-{self.cache}"
        log(f"run {k} ({self.cache}): {tool}" + (f" (store s3://{s3.bucket}/{prefix})" if s3 else ""))
        try:
            if s3:
                self.ds_untimed(data, "init", json_out=False)
                with open(os.path.join(data, "disksnap.toml"), "a") as f:
                    f.write(s3.store_toml(prefix))
            # full
            vol["id"], vol["path"] = self.ds_import(rows, data, src, "bench", tool=tool)
            self.check(tool, "imported volume", vol["path"], src_sha)
            puts0 = s3.puts() if s3 else None
            sid, row = self.ds_snapshot(rows, data, "full", vol["id"], vol["path"], "full", tool=tool)
            row["store"] = store_size()
            if s3:
                puts1 = s3.puts()
                row["puts"] = None if puts0 is None or puts1 is None else puts1 - puts0
                row["objects"] = len(s3.objects(prefix))
                row["note"] += f" PUTs {row['puts'] if row['puts'] is not None else '?'} (rgw.put)" \
                               f", {row['objects']} objects"
            vol["snaps"] = [sid]
            # compact: re-encode the full snapshot's chunks with the store's dictionary (the old
            # packs go at once: nothing else runs), then the store's size again
            r, row = self.ds_timed(rows, data, "compact", "compact", "--grace", "0s", tool=tool)
            row["store"] = store_size()
            obj = self.ds_json(r)
            if isinstance(obj, dict):
                row["note"] = f"dictionary {obj.get('dictionary')}, {obj.get('reencoded_chunks')} chunks re-encoded"
            # incrementals
            for pattern in ("scattered", "clustered"):
                op = f"incr {pattern}"
                got = self.mutate(vol["path"], pattern)
                if got != info["sha256"][pattern]:
                    raise DisksnapFailure(f"volume file after `mutate.py {pattern}` has sha256 {got}, "
                                          f"the peers' image had {info['sha256'][pattern]}")
                before = store_size()
                sid, row = self.ds_snapshot(rows, data, op, vol["id"], vol["path"], pattern, tool=tool)
                row["store"] = store_size()
                row["growth"] = row["store"] - before
                vol["snaps"].append(sid)
            # restore
            r, row = self.ds_timed(rows, data, "restore", "snapshot", "to-volume", vol["snaps"][-1],
                                   "--name", "restored", tool=tool)
            obj = self.ds_json(r)
            if not isinstance(obj, dict) or "id" not in obj:
                raise DisksnapFailure(f"`snapshot to-volume` JSON has no \"id\": {tail(r['out'], 5)}")
            path = self.ds_volume_path(data, obj["id"], obj)
            row["alloc"] = allocated(path)
            self.check(tool, "to-volume", path, latest_sha, row)
            os.unlink(path)      # room; the volume row stays (nothing later reads it)
            # rollback
            changed = self.mutate(vol["path"], "scattered", seed=ROLLBACK_CHANGE_SEED)
            if changed == latest_sha:
                raise BenchError("the rollback change changed nothing")
            r, row = self.ds_timed(rows, data, "rollback", "snapshot", "rollback", vol["snaps"][-1], tool=tool)
            path = self.ds_volume_path(data, vol["id"])
            if path != vol["path"]:
                row["note"] = f"volume path moved to {path}"
                vol["path"] = path
            self.check(tool, "rollback", path, latest_sha, row)
            # verify
            r, row = self.ds_timed(rows, data, "verify", "verify", tool=tool)
            obj = self.ds_json(r)
            if isinstance(obj, dict):
                row["note"] = " ".join(f"{k}={obj[k]}" for k in ("ok", "checked_chunks") if k in obj)
                if obj.get("ok") is False or obj.get("bad_chunks"):
                    row["ok"] = False
                    raise DisksnapFailure(f"`verify` exited 0 but reports bad chunks: {tail(r['out'], 8)}")
        except DisksnapFailure as e:
            self.fail(f"{tool}: {e}")
        finally:
            if s3 and prefix:
                s3.delete_prefix(prefix)     # the RGW keeps objects in RAM
            if not (self.a.keep and k == self.a.runs):
                rmtree(data)

    def ds_s3_signed_full(self, rows, k, R, src, src_sha):
        """The S3 full snapshot again with `sign_payload = true`: each body's SHA-256 in its
        signature, the default over plain http to another host (the bench's RGW is on loopback,
        where the default leaves it out). It costs a SHA-256 pass over every byte on both ends,
        and here the RGW shares disksnap's 2 cores."""
        tool, s3 = "disksnap-s3-signed", self.rgw
        data = os.path.join(R, f"{tool}-data")
        prefix = f"bench-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-run{k}-{self.cache}-signed"
        log(f"run {k} ({self.cache}): {tool} (store s3://{s3.bucket}/{prefix})")
        try:
            self.ds_untimed(data, "init", json_out=False)
            with open(os.path.join(data, "disksnap.toml"), "a") as f:
                f.write(s3.store_toml(prefix) + "sign_payload = true\n")
            vid, path = self.ds_import(rows, data, src, "bench", tool=tool)
            self.check(tool, "imported volume", path, src_sha)
            self.ds_snapshot(rows, data, "full", vid, path, "full", tool=tool)
        except DisksnapFailure as e:
            self.fail(f"{tool}: {e}")
        finally:
            s3.delete_prefix(prefix)
            if not (self.a.keep and k == self.a.runs):
                rmtree(data)

    # ---- one run of the chunk-size sweep
    def run_sweep(self, k, src, src_sha):
        R = os.path.join(self.work, f"sweep-{k}")
        rmtree(R)
        os.makedirs(R)
        rows, sweep = [], []
        cp_out = os.path.join(R, "cp.img")
        r, row = self.measure(rows, "cp --sparse", "full", CP_FULL + [src, cp_out], warm_path=src)
        if not row["ok"]:
            raise BenchError(describe(r))
        row["alloc"] = row["store"] = allocated(cp_out)
        os.unlink(cp_out)
        want = None
        for n in self.a.chunk_sizes:
            tool = f"disksnap/{n}K"
            data = os.path.join(R, f"data-{n}")
            log(f"sweep {k}: chunk size {n} KiB")
            try:
                self.ds_untimed(data, "init", "--chunk-size-kib", n, json_out=False)
                vid, path = self.ds_import(rows, data, src, "bench", tool=tool)
                if sha256(path) != src_sha:
                    raise DisksnapFailure(f"imported volume {path} differs from {src}")
                _, full = self.ds_snapshot(rows, data, "full", vid, path, "full", tool=tool)
                full["store"] = self.ds_store(data, [path])
                got = self.mutate(path, "scattered")
                if want is None:
                    want = got
                elif got != want:
                    raise DisksnapFailure(f"volume after mutate.py scattered: {got}, earlier sizes gave {want}")
                _, inc = self.ds_snapshot(rows, data, "incr scattered", vid, path, "scattered", tool=tool)
                inc["store"] = self.ds_store(data, [path])
                inc["growth"] = inc["store"] - full["store"]
                store = self.ds_store_dir(data) or data
                idx = os.path.join(store, "indexes")
                chunks = os.path.join(store, "chunks")
                sweep.append({
                    "chunk_kib": n, "full_wall": full["wall"], "full_cpu": full["cpu"],
                    "full_rss_mib": full["rss_mib"], "incr_wall": inc["wall"], "incr_cpu": inc["cpu"],
                    "incr_rss_mib": inc["rss_mib"], "store_full": full["store"], "growth": inc["growth"],
                    "index_per_snapshot": du_sb(idx) / 2 if os.path.isdir(idx) else None,
                    "chunk_files": count_files(chunks) if os.path.isdir(chunks) else None,
                })
            except DisksnapFailure as e:
                self.fail(f"disksnap ({n} KiB chunks): {e}")
            finally:
                rmtree(data)     # ~1.5x the image each: never kept
        rmtree(R)
        return rows, sweep


# --------------------------------------------------------------------------- reporting

def median_rows(runs):
    """Rows of several runs -> one row per (tool, op) with the median of each figure."""
    if len(runs) == 1:
        return runs[0]
    out, order = {}, []
    for rows in runs:
        for r in rows:
            key = (r.get("cache", "warm"), r["tool"], r["op"])
            if key not in out:
                out[key] = []
                order.append(key)
            out[key].append(r)
    merged = []
    for key in order:
        group = out[key]
        m = dict(group[0])
        for f in FIELDS:
            vals = [g[f] for g in group if g.get(f) is not None]
            m[f] = statistics.median(vals) if vals else None
        m["ok"] = all(g["ok"] for g in group)
        m["n"] = len(group)
        merged.append(m)
    return merged


def median_sweep(runs):
    if len(runs) == 1:
        return runs[0]
    by = {}
    for rows in runs:
        for r in rows:
            by.setdefault(r["chunk_kib"], []).append(r)
    out = []
    for n in sorted(by):
        m = {}
        for f in by[n][0]:
            vals = [g[f] for g in by[n] if g.get(f) is not None]
            m[f] = statistics.median(vals) if vals else None
        m["chunk_kib"] = n
        out.append(m)
    return out


def rows_table(rows):
    head = ("cache", "tool", "operation", "wall s", "CPU s", "flush s", "RSS MiB", "store MiB", "growth MiB",
            "out alloc MiB", "notes")
    lines = []
    for r in rows:
        lines.append((r.get("cache", "warm"), r["tool"], r["op"], fmt(r["wall"]), fmt(r["cpu"]), fmt(r["flush"]),
                      fmt(r["rss_mib"], prec=1), fmt(r["store"], MIB, 1), fmt(r["growth"], MIB, 1),
                      fmt(r["alloc"], MIB, 1), ("" if r["ok"] else "FAILED ") + r.get("note", "")))
    return table(head, lines, left=(0, 1, 2))


def table(head, lines, left=(0, 1)):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)] if lines else [len(h) for h in head]
    def line(cells):
        return "  ".join(str(c).ljust(w) if i in left or i == len(cells) - 1 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep] + [line(l) for l in lines])


def get(rows, tool, op, field="wall", cache=None):
    for r in rows:
        if r["tool"] == tool and r["op"] == op and r["ok"] and (cache is None or r.get("cache", "warm") == cache):
            return r.get(field)
    return None


def targets(rows, info, cache="warm", size_gib=4):
    """Each ratio of performance.md's Targets section within one cache condition:
    (cache, figure, value, target text, verdict, detail)."""
    out = []

    def ratio(figure, num, den, limit, detail=""):
        if num is None or den is None or den == 0:
            out.append({"figure": figure, "value": None, "target": f"<= {limit:.3g}",
                        "result": "n/a", "detail": detail or "not measured (a side is missing)"})
            return
        v = num / den
        out.append({"figure": figure, "value": v, "target": f"<= {limit:.3g}",
                    "result": "PASS" if v <= limit else "MISS",
                    "detail": detail or f"{num:.2f} / {den:.2f}"})

    g = lambda t, o, f="wall": get(rows, t, o, f, cache)
    cp_durable = None
    if g("cp --sparse", "full") is not None:
        cp_durable = g("cp --sparse", "full") + (g("cp --sparse", "full", "flush") or 0)
    ratio("full snapshot / restic full", g("disksnap", "full"), g("restic", "full"), 1 / 3)
    ratio("full snapshot / borg full", g("disksnap", "full"), g("borg", "full"), 1 / 2)
    ratio("full snapshot / cp --sparse=always (+its flush)", g("disksnap", "full"), cp_durable, 1.5,
          None if g("disksnap", "full") is None or cp_durable is None else
          f"{g('disksnap', 'full'):.2f} / ({g('cp --sparse', 'full'):.2f} + {g('cp --sparse', 'full', 'flush'):.2f} flush)")
    for p in ("scattered", "clustered"):
        ratio(f"incremental ({p}) / restic incremental", g("disksnap", f"incr {p}"),
              g("restic", f"incr {p}"), 1 / 10)
    ds_grow, rs_grow = g("disksnap", "incr scattered", "growth"), g("restic", "incr scattered", "growth")
    ratio("store growth, scattered incr / restic growth", ds_grow, rs_grow, 1 / 4,
          None if ds_grow is None or rs_grow is None else f"{ds_grow / MIB:.1f} MiB / {rs_grow / MIB:.1f} MiB")
    ds_st, rs_st = g("disksnap", "full", "store"), g("restic", "full", "store")
    ratio("store size after full / restic repo size", ds_st, rs_st, 1.0,
          None if ds_st is None or rs_st is None else f"{ds_st / MIB:.1f} MiB / {rs_st / MIB:.1f} MiB")
    dc_st = g("disksnap", "compact", "store")
    ratio("store size after full + compact / restic repo size", dc_st, rs_st, 1.0,
          None if dc_st is None or rs_st is None else
          f"{dc_st / MIB:.1f} MiB / {rs_st / MIB:.1f} MiB; compact took {fmt(g('disksnap', 'compact'), 1, 2)} s")
    # A restore is compared durable against durable, like the full against cp: disksnap's ends
    # with an fsync (its own flush is ~0), restic's bytes are still in the page cache when it
    # exits and its "flush" (the sync after it) is what writing them costs.
    def durable(tool, op):
        wall = g(tool, op)
        return None if wall is None else wall + (g(tool, op, "flush") or 0)

    def durable_detail(op):
        if durable("disksnap", op) is None or durable("restic", "restore") is None:
            return None
        return (f"{durable('disksnap', op):.2f} / ({g('restic', 'restore'):.2f} + "
                f"{g('restic', 'restore', 'flush') or 0:.2f} flush)")
    ratio("restore to a new volume / restic restore (+its flush)", durable("disksnap", "restore"),
          durable("restic", "restore"), 1 / 2.5, durable_detail("restore"))
    # "sparse": the restore keeps most of the source's holes as holes. A dense restore keeps none;
    # one that skips all-zero chunks keeps ~90 % (a 4 KiB write into a hole costs a whole chunk).
    alloc, src_alloc, size = g("disksnap", "restore", "alloc"), info.get("source_alloc_latest"), info.get("size")
    target = "keeps >= 50 % of source holes"
    if alloc is None or not src_alloc or not size or size <= src_alloc:
        out.append({"figure": "restored volume is sparse", "value": None, "target": target,
                    "result": "n/a", "detail": "not measured"})
    else:
        v = max(0.0, (size - alloc) / (size - src_alloc))
        out.append({"figure": "restored volume is sparse", "value": v, "target": target,
                    "result": "PASS" if v >= 0.5 else "MISS",
                    "detail": f"{alloc / MIB:.1f} MiB allocated of {size / MIB:.0f} MiB; source image {src_alloc / MIB:.1f} MiB"})
    ratio("rollback after a 16 MiB change / restic restore (+its flush)", durable("disksnap", "rollback"),
          durable("restic", "restore"), 1 / 10, durable_detail("rollback"))
    if any(r["tool"] == "disksnap-s3" and r.get("cache", "warm") == cache for r in rows):
        ratio("S3: full snapshot / local full", g("disksnap-s3", "full"), g("disksnap", "full"), 2)
        ratio("S3, sign_payload = true: full snapshot / local full", g("disksnap-s3-signed", "full"),
              g("disksnap", "full"), 2)
        ratio("S3: restore / local restore", g("disksnap-s3", "restore"), g("disksnap", "restore"), 1.5)
        puts, objs = g("disksnap-s3", "full", "puts"), g("disksnap-s3", "full", "objects")
        if puts is None:
            out.append({"figure": "S3: PUTs per 4 GiB full snapshot", "value": None, "target": "<= 300",
                        "result": "n/a", "detail": f"rgw.put counter unreadable; {objs} objects under the prefix"
                                                   " after the full (a lower bound)" if objs is not None else "not measured"})
        else:
            v = puts * 4 / size_gib
            out.append({"figure": "S3: PUTs per 4 GiB full snapshot", "value": v, "target": "<= 300",
                        "result": "PASS" if v <= 300 else "MISS",
                        "detail": f"{puts:.0f} PUTs (RGW perf counter rgw.put) for a {size_gib} GiB full"
                                  + (f"; {objs:.0f} objects under the prefix after it" if objs is not None else "")})
        s3_st, ds_st2, rs_st2 = g("disksnap-s3", "full", "store"), g("disksnap", "full", "store"), g("restic", "full", "store")
        ratio("S3: store size after full / restic repo size", s3_st, rs_st2, 1.0,
              None if s3_st is None or rs_st2 is None else
              f"{s3_st / MIB:.1f} MiB / {rs_st2 / MIB:.1f} MiB (local store {fmt(ds_st2, MIB, 1)} MiB)")
    ds_rows = [r for r in rows if r["tool"].startswith("disksnap") and r.get("cache", "warm") == cache
               and r.get("rss_mib") is not None]
    if ds_rows:
        peak = max(ds_rows, key=lambda r: r["rss_mib"])
        out.append({"figure": "peak RSS over disksnap's operations", "value": peak["rss_mib"], "target": "<= 100 MiB",
                    "result": "PASS" if peak["rss_mib"] <= 100 else "MISS",
                    "detail": f"{peak['rss_mib']:.1f} MiB in `{peak['tool']} {peak['op']}`"})
    else:
        out.append({"figure": "peak RSS over disksnap's operations", "value": None, "target": "<= 100 MiB",
                    "result": "n/a", "detail": "not measured"})
    for t in out:
        t["cache"] = cache
    return out


def targets_table(ts):
    lines = [(t.get("cache", "-"), t["figure"], "-" if t["value"] is None else f"{t['value']:.3f}", t["target"],
              t["result"], t["detail"]) for t in ts]
    lines.append(("-", "DescribeSnapshots, 100 000 snapshots", "-", "p99 <= 5 ms; >= 5000 req/s", "-",
                  "not measured here: bench/api.sh"))
    return table(("cache", "figure", "ratio", "target", "result", "detail"), lines, left=(0, 1))


def sweep_table(sweep, cp_wall):
    head = ("chunk KiB", "full s", "full CPU s", "full/cp", "incr s", "store MiB", "incr growth MiB",
            "index KiB/snap", "chunk files", "RSS MiB")
    lines = []
    for s in sweep:
        lines.append((s["chunk_kib"], fmt(s["full_wall"]), fmt(s["full_cpu"]),
                      fmt(s["full_wall"] / cp_wall if cp_wall else None),
                      fmt(s["incr_wall"]), fmt(s["store_full"], MIB, 1), fmt(s["growth"], MIB, 1),
                      fmt(s["index_per_snapshot"], 1024, 1),
                      "-" if s["chunk_files"] is None else int(s["chunk_files"]),
                      fmt(max((v for v in (s["full_rss_mib"], s["incr_rss_mib"]) if v is not None), default=None), prec=1)))
    return table(head, lines)


def versions(bin_path):
    v = {"python": platform.python_version(), "kernel": platform.release(), "cpus": os.cpu_count()}
    for name, argv in (("restic", ["restic", "version"]), ("borg", ["borg", "--version"]),
                       ("qemu-img", ["qemu-img", "--version"]), ("cp", ["cp", "--version"]),
                       ("disksnap", [bin_path, "--version"] if bin_path else None)):
        if not argv:
            continue
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            v[name] = (p.stdout.strip() or p.stderr.strip()).splitlines()[0] if p.returncode == 0 else "?"
        except (OSError, subprocess.TimeoutExpired, IndexError):
            v[name] = "?"
    return v


# --------------------------------------------------------------------------- main

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(root, "bench-work"), help="work dir (default: REPO/bench-work)")
    ap.add_argument("--size-gib", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1, help="repeat N times, report medians")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (images, repos, data dirs)")
    ap.add_argument("--chunk-sizes", default=None,
                    help="comma list of KiB (e.g. 16,32,64,128,256): run the chunk-size sweep instead")
    ap.add_argument("--disksnap", default=os.path.join(root, "target", "release", "disksnap"))
    ap.add_argument("--no-disksnap", action="store_true", help="peers only (disksnap rows show n/a)")
    ap.add_argument("--tools", default=os.path.join(os.path.dirname(root), "shared", "tools"),
                    help="dir holding mkdisk.py and mutate.py (default: REPO/../shared/tools)")
    ap.add_argument("--borg-encryption", default="none", help="borg init -e MODE (default none)")
    ap.add_argument("--timeout", type=float, default=None, help="per-command limit in s (default 120+150*GiB)")
    ap.add_argument("--cache", choices=("warm", "cold", "both"), default="both",
                    help="page cache before each timed operation: warm (source read first), cold "
                         "(sync; echo 3 > /proc/sys/vm/drop_caches; needs root), both (default: the "
                         "whole comparison once per condition)")
    ap.add_argument("--s3", action="store_true",
                    help="also run disksnap's series with its store in a Ceph RGW the bench starts "
                         "(scripts/rgw.sh) and stops at exit; rows disksnap-s3")
    ap.add_argument("--rgw-dir", default="/tmp/disksnap-bench-rgw",
                    help="the bench's RGW directory (default /tmp/disksnap-bench-rgw; not the tests')")
    ap.add_argument("--rgw-port", type=int, default=27480, help="the bench's RGW S3 port (default 27480)")
    ap.add_argument("--rgw-mon-port", type=int, default=47789,
                    help="the bench's Ceph monitor port (default 47789, and +1)")
    ap.add_argument("--rgw-store", choices=("bluestore", "memstore"), default="bluestore",
                    help="the RGW's OSD store: bluestore (default: a sparse file in --rgw-dir, a real "
                         "OSD's store) or memstore (RAM; on this VM each fresh page of it costs the OSD "
                         "a host fault, which the S3 rows would be charged for)")
    ap.add_argument("--rgw-mem-mib", type=int, default=16384,
                    help="the OSD store's size: bluestore's sparse file or memstore's RAM (default "
                         "16384; a 4 GiB run stores ~2.5 GiB per cache condition)")
    a = ap.parse_args()
    a.caches = ["warm", "cold"] if a.cache == "both" else [a.cache]
    if a.s3 and (a.no_disksnap or a.chunk_sizes):
        ap.error("--s3 needs disksnap and the comparison (not --no-disksnap, not --chunk-sizes)")
    if a.chunk_sizes:
        a.caches = a.caches[:1]
    if a.chunk_sizes:
        a.chunk_sizes = [int(x) for x in a.chunk_sizes.replace(" ", "").split(",") if x]
    if a.no_disksnap:
        a.disksnap = None
        if a.chunk_sizes:
            ap.error("--chunk-sizes needs disksnap")
    elif not (os.path.isfile(a.disksnap) and os.access(a.disksnap, os.X_OK)):
        ap.error(f"no disksnap binary at {a.disksnap} (build it, or pass --no-disksnap)")
    if a.runs < 1 or a.size_gib < 1:
        ap.error("--runs and --size-gib must be >= 1")
    for t in ("mkdisk.py", "mutate.py"):
        if not os.path.isfile(os.path.join(a.tools, t)):
            ap.error(f"{t} not found in {a.tools} (pass --tools)")
    needed = ["cp", "du"] + ([] if a.chunk_sizes else ["restic", "borg", "qemu-img"])
    missing = [t for t in needed if shutil.which(t) is None]
    if missing:
        ap.error(f"missing tools: {' '.join(missing)} (bench/run.sh installs them)")

    if "cold" in a.caches:
        try:
            drop_caches()
        except OSError as e:
            ap.error(f"--cache cold needs to write {DROP_CACHES} (root): {e}")
    rgw_script = os.path.join(root, "scripts", "rgw.sh")
    if a.s3 and not os.access(rgw_script, os.X_OK):
        ap.error(f"--s3 needs {rgw_script}")

    b = Bench(a)
    t_start = time.time()
    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
               "size_gib": a.size_gib, "runs": a.runs, "mode": "chunk-sizes" if a.chunk_sizes else "compare",
               "borg_encryption": a.borg_encryption, "caches": a.caches, "s3": a.s3}
    report = []
    code = 0
    all_rows, all_sweeps, infos = [], [], []
    try:
        os.makedirs(b.work, exist_ok=True)
        for name in os.listdir(b.work):      # leftovers of an earlier --keep: room for this run
            if re.fullmatch(r"(run|sweep)-\d+(-warm|-cold)?|cache|bin", name):
                rmtree(os.path.join(b.work, name))
        if b.bin:
            # test one build: a rebuild during the run must not swap the binary between runs
            os.makedirs(os.path.join(b.work, "bin"), exist_ok=True)
            frozen = os.path.join(b.work, "bin", "disksnap")
            shutil.copy2(b.bin, frozen)
            results["disksnap_binary"] = {"path": b.bin, "sha256": sha256(frozen),
                                          "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(b.bin)))}
            b.bin = frozen
        results["versions"] = versions(b.bin)
        have_img = os.path.exists(os.path.join(b.work, "src.img"))
        per_gib = 2 if a.chunk_sizes else 7     # measured: ~24 GiB per 4 GiB compare run
        need = (per_gib + (0 if have_img else 1)) * a.size_gib * GIB
        free = shutil.disk_usage(b.work).free
        if free < need:
            raise BenchError(f"{free / GIB:.1f} GiB free under {b.work}, a run needs ~{need / GIB:.0f} GiB")
        src, src_sha = b.make_image()
        if a.s3:
            b.rgw = Rgw(rgw_script, a.rgw_dir, a.rgw_port, a.rgw_mon_port, a.rgw_mem_mib, a.rgw_store)
            b.rgw.start()
        results["image"] = {"path": src, "sha256": src_sha, "size": os.path.getsize(src),
                            "allocated": allocated(src)}
        for k in range(1, a.runs + 1):
            if a.chunk_sizes:
                b.cache = a.caches[0]
                rows, sweep = b.run_sweep(k, src, src_sha)
                all_sweeps.append(sweep)
            else:
                rows = []
                for cache in a.caches:
                    r_rows, info = b.run_compare(k, src, src_sha, cache)
                    info["size"] = os.path.getsize(src)
                    infos.append(info)
                    rows += r_rows
                    if b.failures:
                        break
            all_rows.append(rows)
            if b.failures:
                break
    except BenchError as e:
        b.fail(str(e))
        code = 2
    except KeyboardInterrupt:
        b.fail("interrupted")
        code = 130
    finally:
        if b.rgw is not None:
            b.rgw.stop()
    if len(all_rows) < a.runs and all_rows:
        report.append(f"(only {len(all_rows)} of {a.runs} runs completed)")
    if a.chunk_sizes and all_sweeps:
        rows, sweep = median_rows(all_rows), median_sweep(all_sweeps)
        cp_wall = get(rows, "cp --sparse", "full")
        cp_flush = get(rows, "cp --sparse", "full", "flush") or 0
        results.update(rows=rows, per_run=all_rows, sweep=sweep, sweep_per_run=all_sweeps)
        report += [rows_table(rows), "",
                   f"chunk-size sweep (scattered change; cp --sparse=always took {fmt(cp_wall)} s "
                   f"+ {fmt(cp_flush)} s flush):", sweep_table(sweep, (cp_wall or 0) + cp_flush)]
    elif infos:
        rows = median_rows(all_rows)
        ts = [t for c in a.caches
              for t in targets(rows, next((i for i in infos if i["cache"] == c), infos[0]), c, a.size_gib)]
        results.update(rows=rows, per_run=all_rows, info=infos, targets=ts)
        report += [rows_table(rows), "", "targets (performance.md), ratios within one cache condition of this run"
                   + (" (of the medians):" if len(all_rows) > 1 else ":"), targets_table(ts)]
    results["failures"] = b.failures
    results["elapsed_s"] = time.time() - t_start
    title = (f"disksnap bench: {a.size_gib} GiB image, {a.runs} run(s), cache {'+'.join(a.caches)}"
             + (", local + S3 (Ceph RGW) store" if a.s3 else "")
             + (" (medians)" if a.runs > 1 else "") + f", {results['started']}, "
             f"{results['elapsed_s']:.0f} s total")
    vers = results.get("versions", {})
    meta = "; ".join(f"{k} {vers[k]}" for k in ("disksnap", "restic", "borg", "qemu-img") if k in vers)
    text = "\n".join([title, meta, f"borg init -e {a.borg_encryption}; cp/qemu-img flush = the sync after them", ""]
                     + report
                     + ([""] + [f"FAIL: {f.splitlines()[0]}" for f in b.failures] if b.failures else []))
    print("\n" + text)
    os.makedirs(b.work, exist_ok=True)
    with open(os.path.join(b.work, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    with open(os.path.join(b.work, "results.txt"), "w") as f:
        f.write(text + "\n")
    if not a.keep:
        for name in os.listdir(b.work):
            if name not in ("results.json", "results.txt"):
                p = os.path.join(b.work, name)
                rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    print(f"\nresults: {os.path.join(b.work, 'results.json')}")
    if b.failures:
        code = code or 1
    sys.exit(code)


if __name__ == "__main__":
    main()
