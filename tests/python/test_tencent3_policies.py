"""Issue 15: CBS 3.0 automatic snapshot policies through tencentcloud-sdk-python, with real bytes,
the clock moved by the test-control admin API: create a policy, bind two disks, two slots (a
restart between them), the points listed by every dialect as automatic, retention pruning the
oldest and never a manual point; bad input gets CBS's codes.
"""
import datetime
import os

import pytest
import requests

from conftest import ACCOUNTS, Server, pattern, write_at
from test_tencent3 import call, client, error, new_disk, snapshot

MIB = 1 << 20
TOKEN = "pytest-admin-token-0123456789"


@pytest.fixture(scope="module")
def server():
    s = Server(extra_config=f'[admin]\nenabled = true\ntoken = "{TOKEN}"\n')
    saved = {k: os.environ.pop(k, None) for k in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")}
    yield s
    for k, v in saved.items():
        if v is not None:
            os.environ[k] = v
    s.stop()


def admin(server, method, path, body=None):
    r = requests.request(method, f"{server.url}/admin/v1{path}", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def clock_now(server):
    return datetime.datetime.strptime(admin(server, "GET", "/state")["clock"]["now"], "%Y-%m-%dT%H:%M:%SZ")


def at(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def points(c, disk):
    r = call(c, "DescribeSnapshots", Filters=[{"Name": "disk-id", "Values": [disk]}], Limit=100)
    return r["SnapshotSet"]


def test_policy_slots_restart_retention_with_real_bytes(server):
    c = client(server, tls=False)
    d1, d2 = new_disk(c, name="p1"), new_disk(c, name="p2")
    path = lambda d: server.volume_path("vol-" + d.split("-", 1)[1])
    write_at(path(d1), 0, pattern(301, 4 * MIB))
    write_at(path(d2), 0, pattern(302, 4 * MIB))
    manual = snapshot(c, d1, "manual")["SnapshotId"]

    r = call(c, "CreateAutoSnapshotPolicy", AutoSnapshotPolicyName="tc-twice",
             Policy=[{"Hour": [2, 14], "DayOfWeek": [0, 1, 2, 3, 4, 5, 6]}], RetentionDays=1)
    pid = r["AutoSnapshotPolicyId"]
    assert pid.startswith("asp-") and r["NextTriggerTime"]
    call(c, "BindAutoSnapshotPolicy", AutoSnapshotPolicyId=pid, DiskIds=[d1, d2])
    (pol,) = call(c, "DescribeAutoSnapshotPolicies", AutoSnapshotPolicyIds=[pid])["AutoSnapshotPolicySet"]
    assert sorted(pol["DiskIdSet"]) == sorted([d1, d2])
    (sched,) = pol["Policy"]
    assert (sched["Hour"], sorted(sched["DayOfWeek"])) == ([2, 14], [0, 1, 2, 3, 4, 5, 6])
    assert (pol["RetentionDays"], pol["IsActivated"], pol["IsPermanent"]) == (1, True, False)
    assoc = call(c, "DescribeDiskAssociatedAutoSnapshotPolicy", DiskId=d1)
    assert [p["AutoSnapshotPolicyId"] for p in assoc["AutoSnapshotPolicySet"]] == [pid]
    disk = call(c, "DescribeDisks", DiskIds=[d1])["DiskSet"][0]
    assert disk["AutoSnapshotPolicyIds"] == [pid]

    now = clock_now(server)
    slot1 = min(t for t in (now.replace(hour=h, minute=0, second=0) + datetime.timedelta(days=dd)
                            for dd in (0, 1) for h in (2, 14)) if t > now)
    slot2 = slot1 + datetime.timedelta(hours=12)
    tag = lambda t: t.strftime("%Y%m%dT%H%MZ")
    fired = admin(server, "POST", "/clock", {"set": at(slot1 + datetime.timedelta(minutes=1))})["fired"]
    assert [f["slot"] for f in fired] == [at(slot1)]
    write_at(path(d1), 0, pattern(303, 4 * MIB))
    server.restart()
    assert admin(server, "POST", "/clock", {"advance": "1m"})["fired"] == [], "no double after the restart"
    fired = admin(server, "POST", "/clock", {"advance": "12h"})["fired"]
    assert [f["slot"] for f in fired] == [at(slot2)], "no loss after the restart"
    c = client(server, tls=False)
    for d in (d1, d2):
        names = sorted(s["SnapshotName"] for s in points(c, d) if s["SnapshotName"].startswith("auto-"))
        assert len(names) == 2 and tag(slot1) in names[0] and tag(slot2) in names[1], names

    # The bytes of slot 1 and 2 of disk 1 differ as the disk did; QingCloud shows them automatic
    k, sk = ACCOUNTS["alice"]["qingcloud"]
    tok = requests.post(f"{server.url}/v2/oauth2/token", auth=(k, sk),
                        data={"grant_type": "client_credentials"}).json()["access_token"]
    qs = requests.get(f"{server.url}/v2/zone/pek3a/volume_snapshots?limit=100",
                      headers={"Authorization": "Bearer " + tok}).json()
    rows = qs["snapshots"]
    by_name = {r["snapshot_name"]: r for r in rows}
    assert all(r["is_manually"] == 0 for n, r in by_name.items() if n.startswith("auto-"))
    assert by_name["manual"]["is_manually"] == 1
    s1 = [s for s in points(c, d1) if tag(slot1) in s["SnapshotName"]][0]["SnapshotId"]
    s2 = [s for s in points(c, d1) if tag(slot2) in s["SnapshotName"]][0]["SnapshotId"]
    for sid, seed in ((s1, 301), (s2, 303)):
        out = server.cli("snapshot", "to-volume", "ss-" + sid.split("-", 1)[1])  # waits for its job
        vid = (out[0] if isinstance(out, list) else out)["id"]
        with open(server.volume_path(vid), "rb") as f:
            assert f.read(4 * MIB) == pattern(seed, 4 * MIB)

    # Retention: a day after slot 1, its points go; the manual one stays
    admin(server, "POST", "/clock", {"advance": "13h"})
    for d in (d1, d2):
        names = [s["SnapshotName"] for s in points(c, d) if s["SnapshotName"].startswith("auto-")]
        assert len(names) == 2 and not any(tag(slot1) in n for n in names), names
    assert manual in [s["SnapshotId"] for s in points(c, d1)]

    # Modify (deactivate), unbind, delete
    call(c, "ModifyAutoSnapshotPolicyAttribute", AutoSnapshotPolicyId=pid, IsActivated=False)
    (pol,) = call(c, "DescribeAutoSnapshotPolicies", AutoSnapshotPolicyIds=[pid])["AutoSnapshotPolicySet"]
    assert pol["IsActivated"] is False
    call(c, "UnbindAutoSnapshotPolicy", AutoSnapshotPolicyId=pid, DiskIds=[d1])
    assert call(c, "DescribeDiskAssociatedAutoSnapshotPolicy", DiskId=d1)["AutoSnapshotPolicySet"] == []
    call(c, "DeleteAutoSnapshotPolicies", AutoSnapshotPolicyIds=[pid])
    assert call(c, "DescribeAutoSnapshotPolicies", AutoSnapshotPolicyIds=[pid])["TotalCount"] == 0


def test_bad_policy_input_gets_cbs_codes(server):
    c = client(server, tls=False)
    week = [0, 1, 2, 3, 4, 5, 6]
    assert error(c, "CreateAutoSnapshotPolicy", Policy=[{"Hour": [24], "DayOfWeek": week}]) == "InvalidParameterValue"
    assert error(c, "CreateAutoSnapshotPolicy", Policy=[{"Hour": [2], "DayOfWeek": [7]}]) == "InvalidParameterValue"
    assert error(c, "CreateAutoSnapshotPolicy", Policy=[{"Hour": [2], "DayOfMonth": [1]}]) == "UnsupportedOperation"
    pid = call(c, "CreateAutoSnapshotPolicy", AutoSnapshotPolicyName="taken",
               Policy=[{"Hour": [2], "DayOfWeek": week}])["AutoSnapshotPolicyId"]
    assert error(c, "CreateAutoSnapshotPolicy", AutoSnapshotPolicyName="taken",
                 Policy=[{"Hour": [3], "DayOfWeek": week}]) == "InvalidParameterValue"
    bob = client(server, account="bob", tls=False)
    theirs = new_disk(bob, name="bobs")
    mine = new_disk(c, name="mine")
    assert error(c, "BindAutoSnapshotPolicy", AutoSnapshotPolicyId=pid, DiskIds=[mine, theirs]) == \
        "InvalidDiskId.NotFound"
    assert call(c, "DescribeDiskAssociatedAutoSnapshotPolicy", DiskId=mine)["AutoSnapshotPolicySet"] == []
    assert error(bob, "BindAutoSnapshotPolicy", AutoSnapshotPolicyId=pid, DiskIds=[theirs]) == \
        "InvalidAutoSnapshotPolicyId.NotFound"
    assert error(c, "DeleteAutoSnapshotPolicies", AutoSnapshotPolicyIds=["asp-00000000"]) == \
        "InvalidAutoSnapshotPolicyId.NotFound"
