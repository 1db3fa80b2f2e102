#!/usr/bin/env python3
"""Load + soak: many clients mix every mutating QingCloud action with lists on one data dir
through `disksnap serve`, then everything is checked.

    bench/soak.py --disksnap target/release/disksnap [--clients 32] [--seconds 600]
                  [--volumes 8] [--data-mib 8] [--seed N] [--work DIR]

The clients share a few volumes (data disks, and system disks of instances for captures), so
jobs on one volume and one chain overlap all the time: snapshots (full and incremental) while
others delete points of the same chain, roll back, restore to new volumes or capture images,
plus volume create/resize/attach/detach/delete, renames, tags, and DescribeSnapshots/Volumes/
Jobs/Images/Tags with random filters. A client writes random bytes into a shared volume's file
(the way a VM writes its disk) holding that volume's write lock; snapshot requests hold its read
lock until their job ends, so the bytes of every point are known (the content hash at that
moment). Roll backs hold the write lock.

Checked while running: every answer is HTTP 200 with `ret_code` 0 or an expected refusal
(1400 busy/wrong state, 2100 a point or volume another client deleted, 2110, 5100 busy: retry), never 5000
or a transport error; every job ends (within 120 s) and a successful job's result is right
(a rolled back volume holds the point's bytes, a new volume or image holds the point's bytes);
listed snapshots are consistent (an `available` point was made by a known request; a point
whose delete succeeded is never shown `available` again).

Checked at the end, with the server stopped: no job pending/working, no volume or snapshot in a
transition, every available point has its index and restores byte-exact, `verify` passes, no
`.tmp-` files, files match the metadata (reliab.check_data_dir).

Report: requests, errors by code, p50/p99 per kind of request; stdout and WORK/soak-results.json.
Exit 0 if nothing failed. Python 3.11 standard library only.
"""
import argparse
import collections
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reliab import (Disksnap, Server, bare, check_data_dir, content_hash, log, scribble)  # noqa: E402

OK_REFUSALS = {1400, 2100, 2110, 5100}  # wrong state, gone, exists, busy (retry): a race the client lost
JOB_TIMEOUT = 120


class RWLock:
    """Many readers or one writer (snapshot requests read a volume's bytes, writes and roll
    backs change them)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.readers = 0
        self.writer = False

    def acquire_read(self):
        with self.cond:
            while self.writer:
                self.cond.wait()
            self.readers += 1

    def release_read(self):
        with self.cond:
            self.readers -= 1
            self.cond.notify_all()

    def acquire_write(self):
        with self.cond:
            while self.writer or self.readers:
                self.cond.wait()
            self.writer = True

    def release_write(self):
        with self.cond:
            self.writer = False
            self.cond.notify_all()


class Soak:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.data = os.path.join(self.work, "data")
        if os.path.exists(self.data):
            shutil.rmtree(self.data)
        os.makedirs(self.work, exist_ok=True)
        self.ds = Disksnap(a.disksnap, self.data)
        self.ds.run("init")
        # Deleted full points cease after 20 s, so the server's ceasing tick races the clients too.
        self.ds.configure(tls_listen=None, deleted_retention="20s")
        self.lock = threading.Lock()          # guards the tables below
        self.expected = {}                    # bare snapshot id -> content hash
        self.deleted = {}                     # bare id whose delete job succeeded -> when (a counter)
        self.clock = 0                        # counts successful deletes
        self.snap_volume = {}                 # bare snapshot id -> shared volume id
        self.vol_hash = {}                    # shared volume id -> current content hash
        self.vol_lock = {}
        self.vol_path = {}
        self.system = set()                   # shared volumes that are system disks
        self.instances = []
        self.lat = collections.defaultdict(list)    # action -> [seconds]
        self.codes = collections.Counter()          # (action, ret_code or error) -> n
        self.failures = []
        self.seen = set()
        self.checks = collections.Counter()
        self.stop = threading.Event()
        rng = random.Random(a.seed)
        for i in range(a.volumes):
            system = i < max(1, a.volumes // 4)
            extra = []
            if system:
                inst = self.ds.json("instance", "create", "--name", f"soak-{i}")["id"]
                self.instances.append(inst)
                extra = ["--type", "system", "--instance", inst]
            v = self.ds.json("volume", "create", "--size-gib", 1, "--name", f"shared-{i}", *extra)
            scribble(v["path"], rng, a.data_mib, 256)
            self.vol_path[v["id"]] = v["path"]
            self.vol_hash[v["id"]] = content_hash(v["path"])
            self.vol_lock[v["id"]] = RWLock()
            if system:
                self.system.add(v["id"])
        self.spare_instance = self.ds.json("instance", "create", "--name", "spare")["id"]
        self.server = Server(self.ds, os.path.join(self.work, "server.log"))

    # ------------------------------------------------------------------ requests

    def fail(self, msg):
        """Record a failure; the same message (same ids) is recorded once, however often a
        list shows it again."""
        with self.lock:
            if msg in self.seen:
                return
            self.seen.add(msg)
            self.failures.append(f"{time.strftime('%H:%M:%S')} {msg}")
        log(f"FAIL {msg}")

    def call(self, qc, action, **params):
        t0 = time.perf_counter()
        try:
            r = qc.call(action, **params)
        except Exception as e:  # transport error, timeout, non-JSON
            dt = time.perf_counter() - t0
            with self.lock:
                self.lat[action].append(dt)
                self.codes[(action, f"transport: {type(e).__name__}")] += 1
            self.fail(f"{action}: {type(e).__name__}: {e}")
            return None
        dt = time.perf_counter() - t0
        code = r.get("ret_code")
        with self.lock:
            self.lat[action].append(dt)
            self.codes[(action, code)] += 1
        if code == 0:
            return r
        if code not in OK_REFUSALS:
            self.fail(f"{action} {params} -> {code} {r.get('message', '')[:200]}")
        return None

    def wait_job(self, qc, job_id, what):
        deadline = time.time() + JOB_TIMEOUT
        while time.time() < deadline:
            r = self.call(qc, "DescribeJobs", jobs=[job_id])
            if r and r.get("job_set"):
                st = r["job_set"][0]["status"]
                if st in ("successful", "failed"):
                    return st
            time.sleep(0.1)
        self.fail(f"job {job_id} ({what}) did not end within {JOB_TIMEOUT}s")
        return None

    def pick_point(self, rng, system=None):
        with self.lock:
            pts = [b for b in self.expected if b not in self.deleted
                   and (system is None or (self.snap_volume.get(b) in self.system) == system)]
        return rng.choice(pts) if pts else None

    # ------------------------------------------------------------------ actions

    def act_write(self, qc, rng):
        v = rng.choice(list(self.vol_path))
        lk = self.vol_lock[v]
        lk.acquire_write()
        try:
            scribble(self.vol_path[v], rng, rng.randint(1, 2), 256)
            self.vol_hash[v] = content_hash(self.vol_path[v])
        finally:
            lk.release_write()

    def act_snapshot(self, qc, rng):
        v = rng.choice(list(self.vol_path))
        lk = self.vol_lock[v]
        lk.acquire_read()
        try:
            h = self.vol_hash[v]
            r = self.call(qc, "CreateSnapshots", resources=[v], is_full=int(rng.random() < 0.2),
                          snapshot_name=f"soak-{rng.randrange(1000)}")
            if not r:
                return
            for s in r.get("snapshots", []):
                with self.lock:
                    self.expected[bare(s)] = h
                    self.snap_volume[bare(s)] = v
            self.wait_job(qc, r["job_id"], "CreateSnapshots")
        finally:
            lk.release_read()

    def act_delete(self, qc, rng):
        b = self.pick_point(rng)
        if not b:
            return
        commit = rng.random() < 0.5
        r = self.call(qc, "DeleteSnapshots", snapshots=[f"ss-{b}"], merge_action="commit" if commit else None)
        if not r:
            return
        if self.wait_job(qc, r["job_id"], "DeleteSnapshots") == "successful":
            with self.lock:
                self.clock += 1
                self.deleted[b] = self.clock
            # The point is gone from `available` now (with its later points unless commit).
            d = self.call(qc, "DescribeSnapshots", snapshots=[f"ss-{b}"], status=["available"])
            self.checks["deleted point re-listed"] += 1
            if d and d.get("total_count"):
                self.fail(f"ss-{b}: its delete job succeeded but DescribeSnapshots still shows it available")

    def act_rollback(self, qc, rng):
        b = self.pick_point(rng)
        if not b:
            return
        v = self.snap_volume[b]
        lk = self.vol_lock[v]
        lk.acquire_write()
        try:
            r = self.call(qc, "ApplySnapshots", snapshots=[f"ss-{b}"])
            if not r:
                return
            st = self.wait_job(qc, r["job_id"], "ApplySnapshots")
            got = content_hash(self.vol_path[v])
            self.vol_hash[v] = got
            self.checks["rollback bytes"] += 1
            if st == "successful" and got != self.expected[b]:
                self.fail(f"rollback to ss-{b} successful but {v} does not hold the point's bytes")
        finally:
            lk.release_write()

    def act_to_volume(self, qc, rng):
        b = self.pick_point(rng, system=False)
        if not b:
            return
        r = self.call(qc, "CreateVolumeFromSnapshot", snapshot=f"ss-{b}", volume_name="soak-restored")
        if not r:
            return
        st = self.wait_job(qc, r["job_id"], "CreateVolumeFromSnapshot")
        vid = r["volume_id"]
        if st == "successful":
            path = os.path.join(self.data, "volumes", f"{bare(vid)}.img")
            self.checks["restored volume bytes"] += 1
            if content_hash(path) != self.expected[b]:
                self.fail(f"volume {vid} from ss-{b} does not hold the point's bytes")
            d = self.call(qc, "DeleteVolumes", volumes=[vid])
            if d:
                self.wait_job(qc, d["job_id"], "DeleteVolumes")

    def act_capture(self, qc, rng):
        b = self.pick_point(rng, system=True)
        if not b:
            return
        r = self.call(qc, "CaptureInstanceFromSnapshot", snapshot=f"ss-{b}", image_name="soak-image")
        if not r:
            return
        st = self.wait_job(qc, r["job_id"], "CaptureInstanceFromSnapshot")
        if st == "successful":
            imgs = self.ds_images_path(r["image_id"])
            self.checks["image bytes"] += 1
            if imgs is None or content_hash(imgs) != self.expected[b]:
                self.fail(f"image {r['image_id']} from ss-{b} does not hold the point's bytes")
            self.call(qc, "DeleteImages", images=[r["image_id"]])

    def ds_images_path(self, image_id):
        d = os.path.join(self.data, "images")
        for f in os.listdir(d):
            if f.startswith(bare(image_id)):
                return os.path.join(d, f)
        return None

    def act_volume_life(self, qc, rng):
        """CreateVolumes, ModifyVolumeAttributes, ResizeVolumes, Attach/Detach, DeleteVolumes."""
        r = self.call(qc, "CreateVolumes", size=1, volume_name="soak-tmp", count=1)
        if not r:
            return
        self.wait_job(qc, r["job_id"], "CreateVolumes")
        vid = r["volumes"][0]
        self.call(qc, "ModifyVolumeAttributes", volume=vid, volume_name="soak-tmp-renamed")
        if rng.random() < 0.5:
            rz = self.call(qc, "ResizeVolumes", volumes=[vid], size=2)
            if rz:
                self.wait_job(qc, rz["job_id"], "ResizeVolumes")
        if rng.random() < 0.5:
            at = self.call(qc, "AttachVolumes", volumes=[vid], instance=self.spare_instance)
            if at:
                self.call(qc, "DetachVolumes", volumes=[vid], instance=self.spare_instance)
        d = self.call(qc, "DeleteVolumes", volumes=[vid])
        if d:
            self.wait_job(qc, d["job_id"], "DeleteVolumes")

    def act_modify_snapshot(self, qc, rng):
        b = self.pick_point(rng)
        if b:
            self.call(qc, "ModifySnapshotAttributes", snapshot=f"ss-{b}",
                      snapshot_name=f"renamed-{rng.randrange(1000)}", description="soak")

    def act_tags(self, qc, rng):
        r = self.call(qc, "CreateTag", tag_name=f"soak-{rng.randrange(10**9)}")
        if not r:
            return
        tag = r["tag_id"]
        b = self.pick_point(rng)
        if b:
            pair = {"resource_tag_pairs.1.tag_id": tag, "resource_tag_pairs.1.resource_type": "snapshot",
                    "resource_tag_pairs.1.resource_id": f"ss-{b}"}
            self.call(qc, "AttachTags", **pair)
            self.call(qc, "DetachTags", **pair)
        self.call(qc, "DeleteTags", tags=[tag])

    def act_list(self, qc, rng):
        kind = rng.randrange(6)
        if kind <= 1:
            params = rng.choice([{}, {"status": ["available"]}, {"snapshot_type": rng.randint(0, 1)},
                                 {"resource_id": rng.choice(list(self.vol_path))}, {"search_word": "soak"}])
            # Only deletes that succeeded before this request was sent count against its answer.
            with self.lock:
                sent_at = self.clock
            r = self.call(qc, "DescribeSnapshots", limit=100, verbose=rng.randint(0, 1), **params)
            if r:
                self.check_snapshot_list(r, sent_at)
        elif kind == 2:
            self.call(qc, "DescribeVolumes", limit=100)
        elif kind == 3:
            self.call(qc, "DescribeJobs", limit=50, status=rng.choice([None, ["working"], ["failed"]]))
        elif kind == 4:
            self.call(qc, "DescribeImages", limit=20)
        else:
            self.call(qc, "DescribeTags", limit=20)

    def check_snapshot_list(self, r, sent_at):
        for s in r.get("snapshot_set", []):
            b = bare(s["snapshot_id"])
            self.checks["listed snapshots"] += 1
            if s["status"] == "available":
                with self.lock:
                    known = b in self.expected
                    gone = self.deleted.get(b, sent_at + 1) <= sent_at
                if not known:
                    # Its CreateSnapshots answer may still be on its way to the client that
                    # sent it (a fast job ends before that client records the point).
                    time.sleep(2)
                    with self.lock:
                        known = b in self.expected
                if not known:
                    self.fail(f"DescribeSnapshots shows {s['snapshot_id']} available; no request made it")
                if gone and s.get("status") == "available":
                    # a delete job of it succeeded earlier; unless a later recover (none here)
                    self.fail(f"DescribeSnapshots shows {s['snapshot_id']} available after its delete succeeded")
                if s.get("is_taken") not in (1, True):
                    self.fail(f"{s['snapshot_id']} available but is_taken={s.get('is_taken')}")

    # ------------------------------------------------------------------ the run

    ACTIONS = [("write", 14), ("snapshot", 16), ("delete", 12), ("rollback", 5), ("to_volume", 4),
               ("capture", 2), ("volume_life", 3), ("modify_snapshot", 3), ("tags", 2), ("list", 41)]

    def client(self, n, qc):
        rng = random.Random(self.a.seed * 1000 + n)
        names = [a for a, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        while not self.stop.is_set():
            act = rng.choices(names, weights)[0]
            try:
                getattr(self, f"act_{act}")(qc, rng)
            except Exception as e:  # a bug in this script or an unexpected answer shape
                self.fail(f"client {n} {act}: {type(e).__name__}: {e}")
                time.sleep(0.5)

    def run(self):
        a = self.a
        self.server.start()
        qc = self.server.client()
        log(f"soak: {a.clients} clients for {a.seconds}s on {len(self.vol_path)} shared volumes")
        threads = [threading.Thread(target=self.client, args=(i, self.server.client()), daemon=True)
                   for i in range(a.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        while time.time() - t0 < a.seconds:
            time.sleep(min(30, a.seconds - (time.time() - t0)) if a.seconds > time.time() - t0 else 0)
            with self.lock:
                n = sum(len(v) for v in self.lat.values())
            log(f"  {time.time() - t0:5.0f}s: {n} requests, {len(self.failures)} failures")
        self.stop.set()
        for t in threads:
            t.join(JOB_TIMEOUT + 30)
        elapsed = time.time() - t0
        log("clients stopped; waiting for jobs, then checking for stuck transitions")
        if not qc.wait_jobs_idle(JOB_TIMEOUT):
            self.fail("jobs still pending/working 120 s after the clients stopped")
        time.sleep(1)
        vols = qc.call("DescribeVolumes", limit=100, offset=0)
        for v in vols.get("volume_set", []):
            if v.get("transition_status"):
                self.fail(f"volume {v['volume_id']} stuck in {v['transition_status']} with no job running")
        snaps = qc.call("DescribeSnapshots", limit=100, status=["pending", "creating", "available", "deleted"])
        for s in snaps.get("snapshot_set", []):
            if s.get("transition_status"):
                self.fail(f"snapshot {s['snapshot_id']} stuck in {s['transition_status']}")
        self.server.stop()
        log("server stopped; checking the data dir (restoring every available point)")
        final, counts = check_data_dir(self.ds, self.expected)
        for f in final:
            self.fail(f"final check: {f}")
        return self.report(elapsed, counts)

    def report(self, elapsed, counts):
        all_lat = sorted(x for v in self.lat.values() for x in v)
        total = len(all_lat)
        lines = [f"soak: {self.a.clients} clients, {elapsed:.0f} s, {total} requests "
                 f"({total / elapsed:.1f}/s), {len(self.failures)} failures; final check restored "
                 f"{counts['restored']} points"]

        def pct(xs, p):
            if not xs:
                return 0.0
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000

        lines.append(f"{'action':30s} {'requests':>8s} {'p50 ms':>8s} {'p99 ms':>8s}  answers")
        for action in sorted(self.lat, key=lambda k: -len(self.lat[k])):
            codes = {c: n for (act, c), n in self.codes.items() if act == action}
            lines.append(f"{action:30s} {len(self.lat[action]):8d} {pct(self.lat[action], 50):8.1f} "
                         f"{pct(self.lat[action], 99):8.1f}  "
                         + ", ".join(f"{c}:{n}" for c, n in sorted(codes.items(), key=lambda x: str(x[0]))))
        lines.append(f"{'all':30s} {total:8d} {pct(all_lat, 50):8.1f} {pct(all_lat, 99):8.1f}")
        by_code = collections.Counter()
        for (_, c), n in self.codes.items():
            by_code[c] += n
        lines.append("answers by ret_code: " + ", ".join(f"{c}: {n}" for c, n in sorted(by_code.items(),
                                                                                      key=lambda x: str(x[0]))))
        lines.append("checks made: " + ", ".join(f"{k} {v}" for k, v in sorted(self.checks.items())))
        kinds = collections.Counter(normalise(f) for f in self.failures)
        if kinds:
            lines.append("failures by kind:")
            lines += [f"  {n:5d} x {k}" for k, n in kinds.most_common(40)]
        print("\n".join(lines), flush=True)
        with open(os.path.join(self.work, "soak-results.json"), "w") as f:
            json.dump(dict(summary=lines, failures=self.failures,
                           codes={f"{a}|{c}": n for (a, c), n in self.codes.items()}), f, indent=1)
        return 0 if not self.failures else 1


def normalise(f):
    import re
    f = re.sub(r"^\d\d:\d\d:\d\d ", "", f)
    f = re.sub(r"\b(ss|vol|j|img|i|tag)-[0-9a-z]{8}\b", r"\1-…", f)
    f = re.sub(r"\{[^}]*\}", "{…}", f)
    return f[:200]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--disksnap", default=os.path.join(here, "..", "target", "release", "disksnap"))
    ap.add_argument("--work", default=os.path.join(here, "..", "bench-work", "soak"))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--volumes", type=int, default=8, help="shared volumes (a quarter are system disks)")
    ap.add_argument("--data-mib", type=int, default=8, help="random MiB in each shared volume at the start")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    log(f"soak seed {a.seed}")
    sys.exit(Soak(a).run())


if __name__ == "__main__":
    main()
