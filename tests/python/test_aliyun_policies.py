"""Issue 15: automatic snapshot policies through both Aliyun SDKs, with real bytes, moved by the
test-control admin API instead of the wall clock; and the admin API's other controls (failing,
holding and resetting) seen through ECS's own answers.

A policy takes a point of both its disks at each slot (SnapshotType auto, named for its slot,
listed by every dialect), keeps a restart between slots from losing or doubling a slot, prunes
its points past RetentionDays and never a manual one; bad input gets ECS's codes.
"""
import datetime
import json
import subprocess
import time

import requests
from aliyunsdkecs.request.v20140526 import (ApplyAutoSnapshotPolicyRequest, CancelAutoSnapshotPolicyRequest,
                                            CreateAutoSnapshotPolicyRequest, DeleteAutoSnapshotPolicyRequest,
                                            ModifyAutoSnapshotPolicyExRequest)
from alibabacloud_ecs20140526 import models as m

from conftest import ACCOUNTS, BIN, Server, single_server_only, pattern, read_all, write_at
from test_aliyun_restart import cinder, keystone_token
from test_aliyun import REGION, describe, new_volume, old_call, old_error, snapshot, suffix, tea, wait_snapshot

MIB = 1 << 20
TOKEN = "pytest-admin-token-0123456789"
ADMIN = f'[admin]\nenabled = true\ntoken = "{TOKEN}"\n'


def admin(server, method, path, body=None):
    r = requests.request(method, f"{server.url}/admin/v1{path}", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def clock_now(server):
    return datetime.datetime.strptime(admin(server, "GET", "/state")["clock"]["now"], "%Y-%m-%dT%H:%M:%SZ")


def at(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def auto_points(server, disk_id, account="alice"):
    body = describe(server, account, disk_id=disk_id, snapshot_type="auto", page_size=100)
    return sorted(body["Snapshots"]["Snapshot"], key=lambda s: s["SnapshotName"])


def restored_bytes(server, sid, size):
    """The first `size` bytes of a new volume from the point (the CLI waits for its job)."""
    out = server.cli("snapshot", "to-volume", "s-" + suffix(sid))
    vid = (out[0] if isinstance(out, list) else out)["id"]
    with open(server.volume_path(vid), "rb") as f:
        return f.read(size)


def test_a_policy_through_both_sdks_with_real_bytes_a_restart_and_retention():
    server = Server(extra_config=ADMIN, tls=False)
    try:
        d1, d2 = new_volume(server), new_volume(server)
        p1, p2 = server.volume_path("vol-" + suffix(d1)), server.volume_path("vol-" + suffix(d2))
        a1, a2 = pattern(151, 4 * MIB), pattern(152, 4 * MIB)
        write_at(p1, 0, a1)
        write_at(p2, 0, a2)
        manual = snapshot(server, d1, snapshot_name="manual-point")

        # Create (old SDK, lowerCamel parameters), read back (Tea SDK)
        pid = old_call(server, CreateAutoSnapshotPolicyRequest, timePoints='["2","14"]',
                       repeatWeekdays='["1","2","3","4","5","6","7"]', retentionDays=1,
                       autoSnapshotPolicyName="twice-daily")["AutoSnapshotPolicyId"]
        assert pid.startswith("sp-")
        c = tea(server)
        pol = c.describe_auto_snapshot_policy_ex(m.DescribeAutoSnapshotPolicyExRequest(
            region_id=REGION, auto_snapshot_policy_id=pid)).body.to_map()
        (item,) = pol["AutoSnapshotPolicies"]["AutoSnapshotPolicy"]
        assert (item["AutoSnapshotPolicyName"], json.loads(item["TimePoints"]), item["RetentionDays"]) == (
            "twice-daily", ["2", "14"], 1)
        assert json.loads(item["RepeatWeekdays"]) == [str(d) for d in range(1, 8)]
        assert item["DiskNums"] == 0

        # Apply to both disks (Tea SDK): DescribeDisks shows and filters by the policy
        c.apply_auto_snapshot_policy(m.ApplyAutoSnapshotPolicyRequest(
            region_id=REGION, auto_snapshot_policy_id=pid, disk_ids=json.dumps([d1, d2])))
        disks = c.describe_disks(m.DescribeDisksRequest(region_id=REGION, auto_snapshot_policy_id=pid)).body.to_map()
        assert sorted(d["DiskId"] for d in disks["Disks"]["Disk"]) == sorted([d1, d2])
        assert all(d["AutoSnapshotPolicyId"] == pid and d["EnableAutoSnapshot"] for d in disks["Disks"]["Disk"])
        pol = c.describe_auto_snapshot_policy_ex(m.DescribeAutoSnapshotPolicyExRequest(region_id=REGION)).body.to_map()
        assert pol["AutoSnapshotPolicies"]["AutoSnapshotPolicy"][0]["DiskNums"] == 2

        # Slot 1: move the clock to just past the next of 02:00 / 14:00
        now = clock_now(server)
        slot1 = min(t for t in (now.replace(hour=h, minute=0, second=0) + datetime.timedelta(days=dd)
                                for dd in (0, 1) for h in (2, 14)) if t > now)
        fired = admin(server, "POST", "/clock", {"set": at(slot1 + datetime.timedelta(minutes=1))})["fired"]
        assert [f["slot"] for f in fired] == [at(slot1)], fired
        assert len(fired[0]["snapshots"]) == 2
        first = {d: auto_points(server, d) for d in (d1, d2)}
        assert all(len(v) == 1 for v in first.values()), first
        for d, (s,) in first.items():
            assert s["SnapshotType"] == "auto" and s["Status"] == "accomplished"
            assert slot1.strftime("%Y%m%dT%H%MZ") in s["SnapshotName"], s["SnapshotName"]
            assert s["SourceDiskId"] == d

        # New bytes on disk 1, then a restart between the slots: no slot lost, none doubled
        b1 = pattern(153, 4 * MIB)
        write_at(p1, 0, b1)
        server.restart()
        assert clock_now(server) >= slot1, "the moved clock outlives the restart"
        assert admin(server, "POST", "/clock", {"advance": "1m"})["fired"] == []
        fired = admin(server, "POST", "/clock", {"advance": "12h"})["fired"]
        slot2 = slot1 + datetime.timedelta(hours=12)
        assert [f["slot"] for f in fired] == [at(slot2)], fired
        second = {d: auto_points(server, d) for d in (d1, d2)}
        assert all(len(v) == 2 for v in second.values()), second

        # The bytes of each point are the disk's at its slot
        s1 = [s for s in second[d1] if slot1.strftime("%Y%m%dT%H%MZ") in s["SnapshotName"]][0]
        s2 = [s for s in second[d1] if slot2.strftime("%Y%m%dT%H%MZ") in s["SnapshotName"]][0]
        assert restored_bytes(server, s1["SnapshotId"], 4 * MIB) == a1
        assert restored_bytes(server, s2["SnapshotId"], 4 * MIB) == b1
        assert restored_bytes(server, second[d2][0]["SnapshotId"], 4 * MIB) == a2

        # Listed through the other dialects as automatic: Cinder (name), 51idc/QingCloud
        # (is_manually 0), the CLI (origin auto)
        k, sk = ACCOUNTS["alice"]["qingcloud"]
        tok = requests.post(f"{server.url}/v2/oauth2/token", auth=(k, sk),
                            data={"grant_type": "client_credentials"}).json()["access_token"]
        qs = requests.get(f"{server.url}/v2/zone/pek3a/volume_snapshots?limit=100",
                          headers={"Authorization": "Bearer " + tok}).json()
        rows = qs["snapshots"]
        by_id = {r.get("snapshot_id"): r for r in rows}
        assert by_id["ss-" + suffix(s1["SnapshotId"])]["is_manually"] == 0, rows
        assert by_id["ss-" + suffix(manual)]["is_manually"] == 1
        ks = keystone_token(server)
        cinder_names = {x["name"] for x in cinder(server, ks, "GET", "/snapshots/detail").json()["snapshots"]}
        assert {s1["SnapshotName"], s2["SnapshotName"], "manual-point"} <= cinder_names, cinder_names
        listed = server.cli("snapshot", "list", "--volume", "vol-" + suffix(d1))["snapshots"]
        origins = {s["id"]: s["origin"] for s in listed}
        assert origins["ss-" + suffix(s1["SnapshotId"])] == "auto" and origins["ss-" + suffix(manual)] == "user"

        # Past retention (1 day): slot 1's points are pruned at slot 3, the manual one stays
        fired = admin(server, "POST", "/clock", {"advance": "13h"})["fired"]
        assert [f["slot"] for f in fired] == [at(slot1 + datetime.timedelta(days=1))], fired
        third = {d: auto_points(server, d) for d in (d1, d2)}
        for d, pts in third.items():
            names = [s["SnapshotName"] for s in pts]
            assert len(pts) == 2 and not any(slot1.strftime("%Y%m%dT%H%MZ") in n for n in names), names
        user = describe(server, disk_id=d1, snapshot_type="user")["Snapshots"]["Snapshot"]
        assert [s["SnapshotId"] for s in user] == [manual]

        # Cancel (old SDK) and delete: the disks follow no policy any more, the points stay
        old_call(server, CancelAutoSnapshotPolicyRequest, diskIds=json.dumps([d1, d2]))
        disks = c.describe_disks(m.DescribeDisksRequest(region_id=REGION, auto_snapshot_policy_id=pid)).body.to_map()
        assert disks["Disks"]["Disk"] == []
        old_call(server, DeleteAutoSnapshotPolicyRequest, autoSnapshotPolicyId=pid)
        assert len(auto_points(server, d1)) == 2
    finally:
        server.stop()


def test_bad_policy_input_gets_ecs_codes():
    server = Server(extra_config=ADMIN, tls=False)
    try:
        days = '["1","2","3","4","5","6","7"]'
        bad = lambda **kw: old_error(lambda: old_call(server, CreateAutoSnapshotPolicyRequest, **kw))
        assert bad(timePoints='["24"]', repeatWeekdays=days, retentionDays=7) == ("InvalidTimePoints.Malformed", 400)
        assert bad(timePoints='2', repeatWeekdays=days, retentionDays=7) == ("InvalidTimePoints.Malformed", 400)
        assert bad(timePoints='["2"]', repeatWeekdays='["8"]', retentionDays=7) == (
            "InvalidRepeatWeekdays.Malformed", 400)
        assert bad(timePoints='["2"]', repeatWeekdays='["Mon"]', retentionDays=7) == (
            "InvalidRepeatWeekdays.Malformed", 400)
        assert bad(timePoints='["2"]', repeatWeekdays=days, retentionDays=0) == ("InvalidRetentionDays.Malformed", 400)
        ok = dict(timePoints='["2"]', repeatWeekdays=days, retentionDays=7)
        pid = old_call(server, CreateAutoSnapshotPolicyRequest, autoSnapshotPolicyName="nightly", **ok)[
            "AutoSnapshotPolicyId"]
        assert bad(autoSnapshotPolicyName="nightly", **ok) == ("InvalidAutoSnapshotPolicyName.Duplicated", 400)
        # another account's disk is not found, and nothing is bound
        mine, theirs = new_volume(server), new_volume(server, account="bob")
        code = old_error(lambda: old_call(server, ApplyAutoSnapshotPolicyRequest, autoSnapshotPolicyId=pid,
                                          diskIds=json.dumps([mine, theirs])))
        assert code == ("InvalidDiskId.NotFound", 404)
        assert tea(server).describe_disks(m.DescribeDisksRequest(
            region_id=REGION, auto_snapshot_policy_id=pid)).body.to_map()["Disks"]["Disk"] == []
        # bob cannot see or change alice's policy
        code = old_error(lambda: old_call(server, ModifyAutoSnapshotPolicyExRequest, account="bob",
                                          autoSnapshotPolicyId=pid, timePoints='["3"]'))
        assert code == ("InvalidAutoSnapshotPolicyId.NotFound", 404)
        code = old_error(lambda: old_call(server, ModifyAutoSnapshotPolicyExRequest, autoSnapshotPolicyId=pid,
                                          timePoints='["-1"]'))
        assert code == ("InvalidTimePoints.Malformed", 400)
    finally:
        server.stop()


@single_server_only("holds and injected failures are per server process and in memory (README, test control): "
                   "the node that takes the hold is not the one that runs the job")
def test_admin_controls_fail_hold_and_reset_as_ecs_shows_them():
    server = Server(extra_config=ADMIN, tls=False)
    try:
        d = new_volume(server)
        c = tea(server)
        # held: the snapshot shows progressing until released
        admin(server, "POST", "/jobs/hold", {"kind": "create-snapshots"})
        sid = c.create_snapshot(m.CreateSnapshotRequest(disk_id=d)).body.to_map()["SnapshotId"]
        time.sleep(1)
        (s,) = describe(server, snapshot_ids=json.dumps([sid]))["Snapshots"]["Snapshot"]
        assert s["Status"] == "progressing"
        assert admin(server, "GET", "/state")["control"]["holds"] == ["create-snapshots"]
        admin(server, "POST", "/jobs/release", {})
        wait_snapshot(server, sid)
        # failing: the next snapshot job fails and is undone (the point never shows)
        admin(server, "POST", "/jobs/fail", {"kind": "create-snapshots", "count": 1, "error": "injected"})
        gone = c.create_snapshot(m.CreateSnapshotRequest(disk_id=d)).body.to_map()["SnapshotId"]
        deadline = time.time() + 30
        while describe(server, snapshot_ids=json.dumps([gone]))["Snapshots"]["Snapshot"]:
            assert time.time() < deadline
            time.sleep(0.1)
        jobs = server.cli("job", "list", "--status", "failed")["jobs"]
        assert any(j.get("error") == "injected" for j in jobs), jobs
        # the next one works again
        snapshot(server, d)
        # the CLI speaks to the same API; reset empties the account
        r = subprocess.run([BIN, "--config", server.config, "--data-dir", server.data, "--account", "alice",
                            "admin", "reset"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert describe(server)["Snapshots"]["Snapshot"] == []
        assert c.describe_disks(m.DescribeDisksRequest(region_id=REGION)).body.to_map()["Disks"]["Disk"] == []
        # no token, no admin
        r = requests.get(f"{server.url}/admin/v1/state")
        assert r.status_code == 401
    finally:
        server.stop()
