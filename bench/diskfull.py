#!/usr/bin/env python3
"""Disk-full test: a data dir on a small loop-mounted ext4 file system (needs root), filled
up, then snapshot jobs through the command line and through the server.

    sudo bench/diskfull.py --disksnap target/release/disksnap [--fs-mib 128] [--work DIR]

Expected: a snapshot job that meets a full disk fails cleanly, shows an error code that says
so (QingCloud DescribeJobs `error_codes` 5200, the CLI's job error text), leaves nothing
half-done (no point in `creating`, the volume free, no `.tmp-` files), and once space is freed
a later snapshot works and restores byte-exact; `verify` passes. Also checked: a data dir
that is 100 % full (the metadata database cannot grow either) still ends the job: the command
returns within 60 s rather than waiting for ever.

Exit 0 when every check passed. Python 3.11 standard library only; mkfs.ext4 and mount.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reliab import MIB, Disksnap, Server, bare, check_data_dir, content_hash, log, scribble, tmp_files  # noqa: E402

FAILURES = []


def check(cond, what):
    log(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        FAILURES.append(what)
    return cond


def fill(mnt, leave_kib):
    """Fill the file system, leaving about `leave_kib` KiB free."""
    path = os.path.join(mnt, "filler")
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    want = max(0, free - leave_kib * 1024)
    with open(path, "ab") as f:
        try:
            os.posix_fallocate(f.fileno(), os.path.getsize(path), want)
        except OSError:
            pass
    # posix_fallocate may fall short by the file's own metadata blocks: top up byte-wise.
    chunk = bytes(64 * 1024)
    with open(path, "ab") as f:
        while os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize > leave_kib * 1024 + 64 * 1024:
            try:
                f.write(chunk)
                f.flush()
            except OSError:
                break
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def free_space(mnt):
    p = os.path.join(mnt, "filler")
    if os.path.exists(p):
        os.remove(p)
    os.sync()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--disksnap", default=os.path.join(here, "..", "target", "release", "disksnap"))
    ap.add_argument("--work", default=os.path.join(here, "..", "bench-work", "diskfull"))
    ap.add_argument("--fs-mib", type=int, default=128)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("diskfull.py needs root (mkfs.ext4 + mount -o loop); skipped", file=sys.stderr)
        sys.exit(77)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    img, mnt = os.path.join(work, "fs.img"), os.path.join(work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["umount", mnt], capture_output=True)
    with open(img, "wb") as f:
        f.truncate(a.fs_mib * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", img], check=True)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True)
    t0 = time.time()
    try:
        run(a, mnt, work)
    finally:
        subprocess.run(["umount", mnt], capture_output=True)
        os.remove(img)
    log(f"disk-full test: {'ok' if not FAILURES else f'{len(FAILURES)} failures'} in {time.time() - t0:.0f}s")
    for f in FAILURES:
        log(f"  - {f}")
    sys.exit(1 if FAILURES else 0)


def run(a, mnt, work):
    rng = random.Random(7)
    data = os.path.join(mnt, "data")
    ds = Disksnap(a.disksnap, data)
    ds.run("init")
    ds.configure(tls_listen=None)
    vol = ds.json("volume", "create", "--size-gib", 1, "--name", "full-test")
    path = vol["path"]
    expected = {}
    scribble(path, rng, 16, 128)
    h = content_hash(path)
    s1 = ds.json("snapshot", "create", vol["id"])["snapshots"][0]
    expected[bare(s1["id"])] = h
    # 16 MiB of new random bytes: the next snapshot needs ~16 MiB the disk will not have.
    scribble(path, rng, 16, 128)
    h2 = content_hash(path)

    # 1. Command line, 1 MiB left: the chunk store runs out, the metadata still commits.
    left = fill(mnt, 1024)
    log(f"file system filled: {left // 1024} KiB left")
    t = time.time()
    p = ds.run("snapshot", "create", vol["id"], check=False, timeout=120)
    check(p.returncode != 0, f"CLI snapshot on a full disk fails (exit {p.returncode}, {time.time() - t:.1f}s)")
    err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    log(f"      CLI said: {err[:300]}")
    check("space" in err.lower(), "the CLI's error names the lack of space")
    jobs = ds.jobs()
    j = jobs[0]
    check(j["action"] == "CreateSnapshots" and j["status"] == "failed", f"the job is failed ({j['status']})")
    log(f"      job error: {j.get('error')}")
    snaps = ds.snapshots("--volume", vol["id"])
    check(all(s["status"] in ("available",) for s in snaps) and len(snaps) == 1,
          f"no half-made point ({[(s['id'], s['status']) for s in snaps]})")
    v = ds.json("volume", "show", vol["id"])
    check(v["transition"] == "", f"the volume is free ({v['transition'] or '-'})")
    tmps = tmp_files(data)
    check(not tmps, f"no temp files left ({len(tmps)}: {[os.path.basename(t) for t in tmps[:3]]})")

    # 2. Through the server: DescribeJobs shows the failure with an error code.
    srv = Server(ds, os.path.join(work, "server.log")).start()
    try:
        qc = srv.client()
        r = qc.call("CreateSnapshots", resources=[vol["id"]], snapshot_name="api-full")
        check(r.get("ret_code") == 0, f"CreateSnapshots accepted the job ({r.get('ret_code')})")
        job_id = r.get("job_id")
        qc.wait_jobs_idle(60)
        jr = qc.call("DescribeJobs", jobs=[job_id])
        item = (jr.get("job_set") or [{}])[0]
        log(f"      DescribeJobs: status={item.get('status')} error_codes={item.get('error_codes')!r}")
        check(item.get("status") == "failed", "the API job is failed")
        check(str(item.get("error_codes")) == "5200",
              "DescribeJobs shows error_codes 5200 (insufficient resources) for a job failed by a full disk")
        sr = qc.call("DescribeSnapshots", resource_id=vol["id"], status=["pending"])
        check(sr.get("ret_code") == 0 and sr.get("total_count") == 0,
              f"no point left creating through the API ({sr.get('ret_code')}, {sr.get('total_count')})")
    finally:
        srv.stop()
    tmps = tmp_files(data)
    check(not tmps, f"no temp files left after the API job ({len(tmps)})")

    # 3. 100 % full: the metadata database cannot record the end either; the command must end.
    fill(mnt, 0)
    t = time.time()
    try:
        p = ds.run("snapshot", "create", vol["id"], check=False, timeout=60)
        check(p.returncode != 0, f"CLI snapshot on a 100 % full disk ends with an error ({time.time() - t:.1f}s): "
                                 f"{(p.stderr.strip().splitlines() or [''])[-1][:200]}")
    except subprocess.TimeoutExpired:
        check(False, "CLI snapshot on a 100 % full disk did not end within 60 s")

    # 4. Space back: recovery ends anything left, a new snapshot works and restores exactly.
    free_space(mnt)
    open_jobs = ds.jobs("pending,working")
    check(not open_jobs, f"no job left pending/working once space is back ({[j['id'] for j in open_jobs]})")
    s2 = ds.json("snapshot", "create", vol["id"])["snapshots"][0]
    check(s2["status"] == "available", "a snapshot after freeing space works")
    expected[bare(s2["id"])] = h2
    failures, counts = check_data_dir(ds, expected, workers=1)
    for f in failures:
        check(False, f"data dir check: {f}")
    check(counts["restored"] == 2, f"both points restore byte-exact ({counts['restored']})")


if __name__ == "__main__":
    main()
