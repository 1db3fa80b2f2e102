#!/usr/bin/env python3
"""Crash trials: `kill -9` at a uniform random moment of each job kind, through the command
line and through the server, then check that the data dir recovered completely.

    bench/crash_trials.py --disksnap target/release/disksnap [--trials 100] [--data-mib 64]
                          [--modes cli,server] [--kinds snap_full,...] [--seed N] [--work DIR]

Each trial, on one data dir shared by the whole run:
1. a fresh volume (a system disk of an instance for `capture`) gets `--data-mib` MiB of random
   bytes, a full snapshot, a quarter more, an incremental, and a quarter more again; the
   content hash of the volume is recorded before each snapshot (the writer is quiescent), so
   every point's expected bytes are known;
2. the job under test starts: through the command line (`disksnap snapshot create …`) or
   through `disksnap serve` (QingCloud's signed API: CreateSnapshots, DeleteSnapshots,
   ApplySnapshots, CreateVolumeFromSnapshot, CaptureInstanceFromSnapshot);
3. after a delay drawn uniformly from [0, T], T being how long the same kind took unharmed
   (measured once per kind and mode, that run checked too), the process gets SIGKILL;
4. recovery: the next command (or a restarted server) fails or resumes the interrupted job;
5. checks: no job left pending/working, no volume or snapshot in a transition, every available
   point of the trial has its index and restores byte-exact, the result of the job under test
   is all-or-nothing (a rollback leaves the volume at its old or its new bytes, never between;
   a new volume or image holds the point's bytes exactly), `verify` passes, no `.tmp-` files,
   files match the metadata. A final check restores every point left in the data dir.

Exit 0 when every check of every trial passed, 1 otherwise. Results: stdout and
WORK/crash-results.json. Python 3.11 standard library only.
"""
import argparse
import collections
import json
import os
import random
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reliab import (MIB, CliError, Disksnap, Server, bare, check_data_dir, content_hash, log,  # noqa: E402
                    scribble, tmp_files)

KINDS = ["snap_full", "snap_incr", "delete", "rollback", "to_volume", "capture", "import"]
SERVER_KINDS = {"snap_full", "snap_incr", "delete", "rollback", "to_volume", "capture"}


class Trials:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = os.path.abspath(args.work)
        self.data = os.path.join(self.work, "data")
        if os.path.exists(self.data):
            shutil.rmtree(self.data)
        os.makedirs(self.work, exist_ok=True)
        self.ds = Disksnap(args.disksnap, self.data)
        self.ds.run("init")
        # Deleted points release their data at once, so the store does not grow trial after trial.
        self.ds.configure(tls_listen=None, deleted_retention="1s")
        self.expected = {}        # bare snapshot id -> content hash
        self.durations = {}       # (mode, kind) -> seconds it took unharmed
        self.results = []
        self.instance = self.ds.json("instance", "create", "--name", "crash")["id"]
        self.server_log = os.path.join(self.work, "server.log")
        open(self.server_log, "w").close()
        self.import_src = os.path.join(self.work, "import-src.img")
        with open(self.import_src, "wb") as f:
            f.truncate(1 << 30)
        scribble(self.import_src, self.rng, args.data_mib, max_offset_mib=args.spread_mib)
        self.import_hash = content_hash(self.import_src)

    # ---------------------------------------------------------------- one trial

    def setup_volume(self, kind):
        a = self.args
        extra = ["--type", "system", "--instance", self.instance] if kind == "capture" else []
        vol = self.ds.json("volume", "create", "--size-gib", 1, "--name", f"t-{kind}", *extra)
        path = vol["path"]
        scribble(path, self.rng, a.data_mib, a.spread_mib)
        h0 = content_hash(path)
        full = self.ds.json("snapshot", "create", vol["id"], "--full", "--name", "full")["snapshots"][0]
        self.expected[bare(full["id"])] = h0
        scribble(path, self.rng, max(1, a.data_mib // 4), a.spread_mib)
        h1 = content_hash(path)
        incr = self.ds.json("snapshot", "create", vol["id"], "--name", "incr")["snapshots"][0]
        self.expected[bare(incr["id"])] = h1
        scribble(path, self.rng, max(1, a.data_mib // 4), a.spread_mib)
        return vol, [full["id"], incr["id"]], content_hash(path)

    def start_cli(self, kind, vol, points):
        target = self.rng.choice(points)
        argv = {
            "snap_full": ["snapshot", "create", vol["id"], "--full", "--name", "under-test"],
            "snap_incr": ["snapshot", "create", vol["id"], "--name", "under-test"],
            "delete": ["snapshot", "delete", target],
            "rollback": ["snapshot", "rollback", target],
            "to_volume": ["snapshot", "to-volume", target, "--name", "restored"],
            "capture": ["snapshot", "capture", target, "--name", "captured"],
            "import": ["volume", "import", self.import_src, "--name", "imported"],
        }[kind]
        return target, self.ds.popen(*argv)

    def api_call(self, qc, kind, vol, target):
        if kind in ("snap_full", "snap_incr"):
            return qc.call("CreateSnapshots", resources=[vol["id"]], is_full=int(kind == "snap_full"),
                           snapshot_name="under-test")
        if kind == "delete":
            return qc.call("DeleteSnapshots", snapshots=[target])
        if kind == "rollback":
            return qc.call("ApplySnapshots", snapshots=[target])
        if kind == "to_volume":
            return qc.call("CreateVolumeFromSnapshot", snapshot=target, volume_name="restored")
        if kind == "capture":
            return qc.call("CaptureInstanceFromSnapshot", snapshot=target, image_name="captured")
        raise ValueError(kind)

    def run_trial(self, n, mode, kind, kill):
        ds = self.ds
        t_start = time.time()
        vol, points, h_now = self.setup_volume(kind)
        jobs_before = {j["id"] for j in ds.jobs()}
        vols_before = {v["id"] for v in ds.volumes()}
        imgs_before = {i["id"] for i in ds.images()}
        snaps_before = {s["id"] for s in ds.snapshots("--volume", vol["id"])}
        delay = None
        outcome = {}
        recovery_note = ""
        if mode == "cli":
            target, proc = self.start_cli(kind, vol, points)
            t0 = time.perf_counter()
            if kill:
                delay = self.rng.uniform(0, self.durations[(mode, kind)])
                try:
                    proc.wait(timeout=delay)
                    outcome["ended_before_kill"] = True
                except Exception:
                    os.kill(proc.pid, 9)
                    proc.wait()
                    outcome["ended_before_kill"] = False
            else:
                out, err = proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"unharmed {kind} failed: {err.strip()[-300:]}")
                self.durations[(mode, kind)] = time.perf_counter() - t0
            # The first command after the crash recovers (and waits for resumed jobs).
            p = ds.run("job", "list", "--status", "pending,working")
            recovery_note = " ".join(l for l in p.stderr.splitlines() if "interrupted" in l)
        else:
            target = self.rng.choice(points)
            srv = Server(ds, self.server_log).start()
            qc = srv.client()
            answer = {}
            t0 = time.perf_counter()

            def send():
                try:
                    answer["r"] = self.api_call(qc, kind, vol, target)
                except Exception as e:  # the server died under the request
                    answer["e"] = str(e)
            th = threading.Thread(target=send, daemon=True)
            th.start()
            if kill:
                delay = self.rng.uniform(0, self.durations[(mode, kind)])
                time.sleep(delay)
                srv.kill9()
                th.join(10)
                outcome["answered"] = "r" in answer
            else:
                th.join(60)
                r = answer.get("r") or {}
                if r.get("ret_code") != 0:
                    srv.stop()
                    raise RuntimeError(f"unharmed {kind} failed through the API: {answer}")
                qc.wait_jobs_idle()
                self.durations[(mode, kind)] = time.perf_counter() - t0
                srv.stop()
            if kill:
                # Restart: the server recovers interrupted jobs first; wait for resumed ones.
                log_size = os.path.getsize(self.server_log)
                srv = Server(ds, self.server_log).start()
                if not srv.client().wait_jobs_idle(120):
                    outcome["recovery_timeout"] = True
                srv.stop()
                with open(self.server_log, errors="replace") as f:
                    f.seek(log_size)
                    recovery_note = " ".join(strip_ansi(l).strip()[-160:] for l in f if "recovered job" in l)
        new_jobs = [j for j in ds.jobs() if j["id"] not in jobs_before]
        outcome["jobs"] = [f"{j['action']}:{j['status']}" for j in new_jobs]
        outcome["recovered"] = recovery_note
        failures = self.check_result(kind, vol, target, h_now, new_jobs, vols_before, imgs_before, snaps_before)
        trial_points = {bare(s["id"]) for s in ds.snapshots("--volume", vol["id"])}
        f2, counts = check_data_dir(ds, self.expected, restore_points=trial_points)
        failures += f2
        # Keep the data dir small: the trial's volumes and images go; points stay until the final
        # check. A GC with no grace (no job runs now) clears what this trial left, so the next
        # trial reports only its own leftovers.
        self.cleanup(vol, vols_before, imgs_before)
        ds.run("gc", "--grace", "0s")
        res = dict(n=n, mode=mode, kind=kind, killed=kill, delay=delay, T=self.durations.get((mode, kind)),
                   seconds=round(time.time() - t_start, 2), failures=failures, restored=counts["restored"],
                   orphan_indexes=counts["orphan_indexes"], **outcome)
        res["class"] = classify(res)
        self.results.append(res)
        status = "ok" if not failures else f"FAIL ({len(failures)})"
        log(f"trial {n:3d} {mode:6s} {kind:9s} "
            f"{'kill at %.3fs of %.3fs' % (delay, res['T']) if kill else 'unharmed %.3fs' % res['T']:28s} "
            f"{res['class']:28s} {status}")
        for f in failures:
            log(f"    - {f}")
        return res

    def check_result(self, kind, vol, target, h_before, new_jobs, vols_before, imgs_before, snaps_before):
        """All-or-nothing checks of the job under test."""
        ds = self.ds
        failures = []
        job = new_jobs[-1] if new_jobs else None
        if kind in ("snap_full", "snap_incr"):
            for s in ds.snapshots("--volume", vol["id"]):
                if s["id"] not in snaps_before:
                    # The volume did not change since h_before: a point that exists holds those bytes.
                    self.expected[bare(s["id"])] = h_before
                    if s["status"] == "available" and job and job["status"] != "successful":
                        failures.append(f"new point {s['id']} is available but its job is {job['status']}")
        elif kind == "rollback":
            got = content_hash(vol["path"])
            want = self.expected[bare(target)]
            if job and job["status"] == "successful":
                if got != want:
                    failures.append("rollback job successful but the volume does not hold the point's bytes")
            elif job:
                failures.append(f"rollback job ended {job['status']}: a roll back must resume after a crash")
            elif got != h_before:
                failures.append("no rollback job, yet the volume's bytes changed")
        elif kind in ("to_volume", "import"):
            want = self.expected[bare(target)] if kind == "to_volume" else self.import_hash
            for v in ds.volumes():
                if v["id"] in vols_before:
                    continue
                if v["status"] not in ("available", "in-use"):
                    failures.append(f"new volume {v['id']} is {v['status']}")
                elif content_hash(v["path"]) != want:
                    failures.append(f"new volume {v['id']} does not hold the expected bytes")
                if job and job["status"] != "successful":
                    failures.append(f"new volume {v['id']} exists but its job is {job['status']}")
        elif kind == "capture":
            for i in ds.images():
                if i["id"] in imgs_before:
                    continue
                if i.get("status") == "available" and content_hash(i["path"]) != self.expected[bare(target)]:
                    failures.append(f"image {i['id']} does not hold the point's bytes")
        elif kind == "delete":
            st = {s["id"]: s["status"] for s in ds.snapshots("--volume", vol["id"])}
            if job and job["status"] == "successful" and st.get(target) == "available":
                failures.append(f"delete job successful but {target} is still available")
        return failures

    def cleanup(self, vol, vols_before, imgs_before):
        ds = self.ds
        for i in ds.images():
            if i["id"] not in imgs_before:
                ds.run("image", "delete", i["id"], check=False)
        gone = [v["id"] for v in ds.volumes() if v["id"] not in vols_before or v["id"] == vol["id"]]
        for v in gone:
            p = ds.run("volume", "detach", v, check=False)
            p = ds.run("volume", "delete", v, check=False)
            if p.returncode != 0:
                log(f"    (could not delete {v}: {p.stderr.strip()[-200:]})")

    # ---------------------------------------------------------------- the run

    def run(self):
        a = self.args
        pairs = [(m, k) for m in a.modes for k in a.kinds if m == "cli" or k in SERVER_KINDS]
        n = 0
        # One unharmed run per pair measures T (and is checked like any trial).
        for mode, kind in pairs:
            self.run_trial(n, mode, kind, kill=False)
            n += 1
        killed = 0
        order = []
        while len(order) < a.trials:
            order += pairs
        for mode, kind in order[:a.trials]:
            self.run_trial(n, mode, kind, kill=True)
            n += 1
            killed += 1
        log("final check: every point left in the data dir restores byte-exact")
        final, counts = check_data_dir(self.ds, self.expected)
        for f in final:
            log(f"    - {f}")
        return self.report(final, counts)

    def report(self, final, counts):
        killed = [r for r in self.results if r["killed"]]
        by = collections.defaultdict(collections.Counter)
        for r in killed:
            by[(r["mode"], r["kind"])][r["class"]] += 1
        failed = [r for r in self.results if r["failures"]]
        lines = [f"crash trials: {len(killed)} killed + {len(self.results) - len(killed)} unharmed runs, "
                 f"{len(failed)} with failures; final check of {counts['restored']} points: "
                 f"{'ok' if not final else f'{len(final)} failures'}"]
        lines.append(f"{'mode':6s} {'kind':9s} {'T s':>6s}  outcomes")
        for (mode, kind), c in sorted(by.items()):
            lines.append(f"{mode:6s} {kind:9s} {self.durations[(mode, kind)]:6.2f}  "
                         + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
        fails = collections.Counter()
        for r in self.results:
            for f in r["failures"]:
                fails[normalise(f)] += 1
        for f in final:
            fails["final: " + normalise(f)] += 1
        if fails:
            lines.append("failures by kind:")
            lines += [f"  {v:4d} x {k}" for k, v in fails.most_common()]
        print("\n".join(lines), flush=True)
        with open(os.path.join(self.work, "crash-results.json"), "w") as f:
            json.dump(dict(results=self.results, final=final, durations={f"{m}/{k}": v for (m, k), v in
                                                                          self.durations.items()},
                           summary=lines), f, indent=1)
        return 0 if not failed and not final else 1


def classify(r):
    """One word for what the kill did: before the job existed, after it ended, or mid-job
    (then how recovery ended it)."""
    if not r["killed"]:
        return "unharmed"
    jobs = r.get("jobs") or []
    if not jobs:
        return "killed before the job"
    status = jobs[-1].split(":")[1]
    if r.get("ended_before_kill"):
        return f"ended before kill ({status})"
    if r.get("recovered"):
        rec = r["recovered"]
        how = "failed+undone" if ("failed" in rec) else "resumed"
        return f"mid-job: {how} -> {status}"
    return f"job ended before kill ({status})"


def strip_ansi(s):
    import re
    return re.sub(r"\x1b\[[0-9;]*m", "", s)


def normalise(f):
    """A failure message without its ids, to count kinds of failure."""
    import re
    f = re.sub(r"\b(ss|vol|j|img|i)-[0-9a-z]{8}\b", r"\1-…", f)
    f = re.sub(r"\d+ chunk .tmp- files, \d+ .pending pins, \d+ other \(e.g. [^)]*\)", "chunk/pin temp files", f)
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--disksnap", default=os.path.join(os.path.dirname(__file__), "..", "target", "release",
                                                       "disksnap"))
    ap.add_argument("--work", default=os.path.join(os.path.dirname(__file__), "..", "bench-work", "crash"))
    ap.add_argument("--trials", type=int, default=100, help="killed trials (plus one unharmed run per kind)")
    ap.add_argument("--data-mib", type=int, default=64, help="random MiB written to each trial's volume")
    ap.add_argument("--spread-mib", type=int, default=512, help="writes land in the first N MiB")
    ap.add_argument("--modes", default="cli,server", type=lambda s: s.split(","))
    ap.add_argument("--kinds", default=",".join(KINDS), type=lambda s: s.split(","))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    log(f"crash trials: {a.trials} kills, modes {a.modes}, kinds {a.kinds}, {a.data_mib} MiB per volume, "
        f"seed {a.seed}, work {a.work}")
    t = Trials(a)
    rc = t.run()
    log(f"done in {time.time() - START:.0f}s")
    sys.exit(rc)


START = time.time()
if __name__ == "__main__":
    main()
