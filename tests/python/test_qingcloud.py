"""QingCloud IaaS through the vendor's own qingcloud-sdk and qingcloud-cli, against the real
`disksnap serve`: lifecycle with byte checks, every DescribeSnapshots filter, the vendor's delete
rule, recover/cease, jobs, tags, and the documented error codes."""
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from qingcloud.conn.auth import QuerySignatureAuthHandler
from qingcloud.iaas.connection import APIConnection
from qingcloud.misc.utils import wait_job

from conftest import ACCOUNTS, Server, pattern, write_at

MIB = 1 << 20


@pytest.fixture(scope="module")
def server():
    # A short recovery window so the test can see a deleted full point become ceased.
    s = Server(retention="8s")
    yield s
    s.stop()


def conn(server, account="alice", secret=None, **kw):
    key, sec = ACCOUNTS[account]["qingcloud"]
    return APIConnection(key, secret or sec, "pek3a", host=server.host, port=server.port, protocol="http", **kw)


def ok(r):
    assert r is not None, "the SDK returned None: the server answered a non-200 status"
    assert r["ret_code"] == 0, r
    return r


def wait(c, job_id, timeout=120):
    """Poll DescribeJobs quickly (wait_job sleeps 2 s per poll; it is exercised separately)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = ok(c.describe_jobs(jobs=[job_id]))["job_set"][0]
        if job["status"] not in ("pending", "working"):
            assert job["status"] == "successful", job
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


def snaps(c, **kw):
    return ok(c.describe_snapshots(**kw))


def ids_of(r):
    return [s["snapshot_id"] for s in r["snapshot_set"]]


@pytest.fixture(scope="module")
def world(server):
    """A volume with three points: full A, incremental B, incremental C, each after new bytes."""
    c = conn(server)
    r = ok(c.create_volumes(size=1, volume_name="data-disk"))
    vol = r["volumes"][0]
    assert wait_job(c, r["job_id"], timeout=60) is True  # the SDK's own waiter
    path = server.volume_path(vol)
    states, points = [], []
    for i, name in enumerate(["A", "B", "C"]):
        write_at(path, i * 64 * MIB, pattern(name, 3 * MIB))
        write_at(path, 700 * MIB + i * MIB, pattern(name + "tail", 4096))
        states.append(digest(path))
        r = ok(c.create_snapshots(resources=[vol], snapshot_name=f"point-{name}", is_full=1 if i == 0 else 0))
        assert len(r["snapshots"]) == 1 and r["snapshots"][0].startswith("ss-")
        wait(c, r["job_id"])
        points.append(r["snapshots"][0])
    return {"c": c, "vol": vol, "path": path, "states": states, "points": points}


def test_chain_fields_follow_the_seed(world):
    c, (a, b, cc) = world["c"], world["points"]
    r = snaps(c, snapshots=[a, b, cc], verbose=0)
    assert r["total_count"] == 3
    by = {s["snapshot_id"]: s for s in r["snapshot_set"]}
    full = by[a]
    assert full["snapshot_type"] == 1 and full["parent_id"] == "self" and full["root_id"] == a
    assert full["total_count"] == 3 and full["total_size"] >= full["size"] > 0
    assert full["lastest_snapshot_time"] == by[cc]["snapshot_time"]
    assert full["head_chain"] == 1 and full["is_head"] == 0
    assert by[b]["parent_id"] == a and by[cc]["parent_id"] == b and by[cc]["is_head"] == 1
    assert by[b]["snapshot_type"] == 0 and "total_size" not in by[b]
    for s in r["snapshot_set"]:
        assert s["status"] == "available" and s["transition_status"] == "" and s["is_taken"] == 1
        assert s["resource"] == {"resource_id": world["vol"], "resource_name": "data-disk", "resource_type": "volume"}
        datetime.datetime.strptime(s["create_time"], "%Y-%m-%dT%H:%M:%SZ")
        assert isinstance(s["size"], int) and s["sub_code"] == 0
    # Newest first.
    assert ids_of(snaps(c, resource_id=world["vol"])) == [cc, b, a]


def test_every_filter_and_paging(world):
    c, (a, b, cc), vol = world["c"], world["points"], world["vol"]
    assert ids_of(snaps(c, snapshots=[b])) == [b]
    assert set(ids_of(snaps(c, resource_id=vol))) == {a, b, cc}
    assert ids_of(snaps(c, resource_id=vol, snapshot_type=1)) == [a]
    assert set(ids_of(snaps(c, resource_id=vol, snapshot_type=0))) == {b, cc}
    assert set(ids_of(snaps(c, root_id=a))) == {a, b, cc}
    assert set(ids_of(snaps(c, resource_id=vol, status=["available"]))) == {a, b, cc}
    assert ids_of(snaps(c, resource_id=vol, status=["deleted"])) == []
    assert ids_of(snaps(c, search_word="point-B")) == [b]
    assert ids_of(snaps(c, search_word=cc[3:])) == [cc]
    assert set(ids_of(snaps(c, owner="usr-alice", resource_id=vol))) == {a, b, cc}
    assert ids_of(snaps(c, owner="usr-bob")) == []
    assert set(ids_of(snaps(c, resource_id=vol, is_manually=1))) == {a, b, cc}
    assert ids_of(snaps(c, resource_id=vol, is_manually=0)) == []
    # Paging: offset/limit walk the whole list once, total_count stays the full count.
    seen = []
    for off in range(0, 3):
        r = snaps(c, resource_id=vol, offset=off, limit=1)
        assert r["total_count"] == 3
        seen += ids_of(r)
    assert seen == [cc, b, a]
    # limit above 100 is clamped, not refused.
    assert snaps(c, resource_id=vol, limit=500)["total_count"] == 3


def test_tags_filter_and_verbose(world):
    c, (a, b, cc) = world["c"], world["points"]
    tag = ok(c.create_tag(tag_name="nightly"))["tag_id"]
    assert tag.startswith("tag-")
    ok(c.attach_tags(resource_tag_pairs=[{"tag_id": tag, "resource_type": "snapshot", "resource_id": b}]))
    assert ids_of(snaps(c, tags=[tag])) == [b]
    item = snaps(c, snapshots=[b], verbose=1)["snapshot_set"][0]
    assert item["tags"] == [{"tag_id": tag, "tag_name": "nightly"}]
    t = ok(c.describe_tags(tags=[tag], verbose=1))["tag_set"][0]
    assert t["tag_name"] == "nightly" and t["resource_count"] == 1
    assert t["resource_tag_pairs"] == [{"tag_id": tag, "resource_type": "snapshot", "resource_id": b}]
    ok(c.detach_tags(resource_tag_pairs=[{"tag_id": tag, "resource_type": "snapshot", "resource_id": b}]))
    assert ids_of(snaps(c, tags=[tag])) == []
    ok(c.delete_tags(tags=[tag]))
    assert ok(c.describe_tags(tags=[tag]))["total_count"] == 0


def test_rename_then_roll_back_restores_bytes(world):
    c, (a, b, cc), path = world["c"], world["points"], world["path"]
    ok(c.modify_snapshot_attributes(snapshot=b, snapshot_name="renamed", description="the B point"))
    s = snaps(c, snapshots=[b])["snapshot_set"][0]
    assert s["snapshot_name"] == "renamed" and s["description"] == "the B point"
    write_at(path, 10 * MIB, b"garbage" * 1000)
    for point, state in [(a, 0), (cc, 2), (b, 1)]:
        wait(c, ok(c.apply_snapshots(snapshots=[point]))["job_id"])
        assert digest(path) == world["states"][state], f"bytes after rolling back to {point}"


def test_volume_from_snapshot_has_the_points_bytes(server, world):
    c, (a, b, cc) = world["c"], world["points"]
    r = ok(c.create_volume_from_snapshot(snapshot=a, volume_name="from-A"))
    assert r["volume_id"].startswith("vol-")
    wait(c, r["job_id"])
    v = ok(c.describe_volumes(volumes=[r["volume_id"]]))["volume_set"][0]
    assert v["volume_name"] == "from-A" and v["status"] == "available" and v["size"] == 1
    assert digest(server.volume_path(r["volume_id"])) == world["states"][0]


def test_capture_image_from_a_system_disk_point(server):
    c = conn(server)
    inst = server.cli("instance", "create", "--name", "web")["id"]
    vol = server.cli("volume", "create", "--size-gib", "1", "--type", "system", "--instance", inst)
    vol = vol[0]["id"] if isinstance(vol, list) else vol["id"]
    path = server.volume_path(vol)
    write_at(path, 0, pattern("boot", 2 * MIB))
    want = digest(path)
    r = ok(c.create_snapshots(resources=[inst], snapshot_name="whole-instance", is_full=1))
    wait(c, r["job_id"])
    point = r["snapshots"][0]
    item = snaps(c, snapshots=[point])["snapshot_set"][0]
    assert item["resource"]["resource_type"] == "instance" and item["resource"]["resource_id"] == inst
    assert ids_of(snaps(c, resource_id=inst)) == [point]
    r = ok(c.capture_instance_from_snapshot(snapshot=point, image_name="golden"))
    wait(c, r["job_id"])
    img = ok(c.describe_images(images=[r["image_id"]]))["image_set"][0]
    assert img["image_name"] == "golden" and img["status"] == "available" and img["provider"] == "self"
    image_path = server.cli("image", "path", r["image_id"]).strip()
    assert digest(image_path) == want
    # A data-volume point cannot become an image: 1400 naming the point.
    data = ok(c.create_volumes(size=1))["volumes"][0]
    time.sleep(0.5)
    r = ok(c.create_snapshots(resources=[data], is_full=1))
    wait(c, r["job_id"])
    bad = c.capture_instance_from_snapshot(snapshot=r["snapshots"][0])
    assert bad["ret_code"] == 1400 and r["snapshots"][0] in bad["message"], bad
    ok(c.delete_images(images=[img["image_id"]]))


def test_delete_incremental_takes_later_points(server):
    c = conn(server)
    r = ok(c.create_volumes(size=1))
    vol = r["volumes"][0]
    wait(c, r["job_id"])
    path = server.volume_path(vol)
    pts = []
    for i in range(4):
        write_at(path, i * MIB, pattern(f"d{i}", MIB))
        r = ok(c.create_snapshots(resources=[vol], is_full=0))  # first is full: the volume has no chain
        wait(c, r["job_id"])
        pts.append(r["snapshots"][0])
    assert snaps(c, snapshots=[pts[0]])["snapshot_set"][0]["snapshot_type"] == 1
    job = wait(c, ok(c.delete_snapshots(snapshots=[pts[2]]))["job_id"])
    assert set(job["resource_ids"].split()) == {pts[2], pts[3]}
    live = ids_of(snaps(c, resource_id=vol, status=["available"]))
    assert live == [pts[1], pts[0]]
    # Deleted incrementals are ceased at once: listed only when asked for.
    assert set(ids_of(snaps(c, resource_id=vol, status=["ceased"]))) == {pts[2], pts[3]}
    assert snaps(c, snapshots=[pts[0]])["snapshot_set"][0]["total_count"] == 2
    # merge_action=commit deletes only the named point (SDK-only extension).
    wait(c, ok(c.delete_snapshots(snapshots=[pts[0]], merge_action="commit"))["job_id"])
    assert ids_of(snaps(c, resource_id=vol, status=["available"])) == [pts[1]]


def test_deleted_full_point_recover_then_cease(server):
    c = conn(server)
    r = ok(c.create_volumes(size=1))
    vol = r["volumes"][0]
    wait(c, r["job_id"])
    path = server.volume_path(vol)
    write_at(path, 0, pattern("keep", 2 * MIB))
    want = digest(path)
    r = ok(c.create_snapshots(resources=[vol], is_full=1))
    wait(c, r["job_id"])
    full = r["snapshots"][0]
    wait(c, ok(c.delete_snapshots(snapshots=[full]))["job_id"])
    assert ids_of(snaps(c, resource_id=vol)) == [full]  # listed unasked, as the doc example shows
    s = snaps(c, resource_id=vol, status=["deleted"])["snapshot_set"]
    assert [x["snapshot_id"] for x in s] == [full] and s[0]["status"] == "deleted"
    assert c.apply_snapshots(snapshots=[full])["ret_code"] == 1400
    # The SDK has no recover action: the operator's CLI brings it back within the window.
    server.cli("snapshot", "recover", full)
    assert snaps(c, snapshots=[full])["snapshot_set"][0]["status"] == "available"
    write_at(path, 0, b"\0" * (2 * MIB))
    wait(c, ok(c.apply_snapshots(snapshots=[full]))["job_id"])
    assert digest(path) == want
    # Deleted again, it is ceased once the 8 s window passes (the server checks every 5 s).
    wait(c, ok(c.delete_snapshots(snapshots=[full]))["job_id"])
    deadline = time.time() + 30
    while snaps(c, snapshots=[full], status=["ceased"])["total_count"] == 0:
        assert time.time() < deadline, "the deleted point was never ceased"
        time.sleep(0.5)
    assert snaps(c, resource_id=vol)["total_count"] == 0


def test_volume_actions(server):
    c = conn(server)
    r = ok(c.create_volumes(size=2, volume_name="v", count=2))
    assert len(r["volumes"]) == 2
    wait(c, r["job_id"])
    v1, v2 = r["volumes"]
    ok(c.modify_volume_attributes(volume=v1, volume_name="renamed", description="d"))
    assert ok(c.describe_volumes(volumes=[v1]))["volume_set"][0]["volume_name"] == "renamed"
    assert ok(c.describe_volumes(search_word="renamed"))["total_count"] == 1
    wait(c, ok(c.resize_volumes(volumes=[v1], size=3))["job_id"])
    assert ok(c.describe_volumes(volumes=[v1]))["volume_set"][0]["size"] == 3
    shrink = c.resize_volumes(volumes=[v1], size=1)
    assert shrink["ret_code"] in (1100, 1400), shrink
    inst = server.cli("instance", "create", "--name", "db")["id"]
    wait(c, ok(c.attach_volumes(volumes=[v2], instance=inst))["job_id"])
    v = ok(c.describe_volumes(volumes=[v2]))["volume_set"][0]
    assert v["status"] == "in-use" and v["instance"]["instance_id"] == inst
    assert ok(c.describe_volumes(instance_id=inst))["total_count"] == 1
    # An instance filter that names no instance (a volume id) matches nothing, not everything.
    assert ok(c.describe_volumes(instance_id=v1))["total_count"] == 0
    assert ok(c.describe_volumes(volumes=[v1, v2], status=["in-use"]))["total_count"] == 1
    busy = c.delete_volumes(volumes=[v2])
    assert busy["ret_code"] == 1400 and v2 in busy["message"], busy
    wait(c, ok(c.detach_volumes(volumes=[v2], instance=inst))["job_id"])
    wait(c, ok(c.delete_volumes(volumes=[v1, v2]))["job_id"])
    assert ok(c.describe_volumes(volumes=[v1, v2]))["total_count"] == 0


def test_jobs_list_and_filters(server, world):
    c = conn(server)
    r = ok(c.describe_jobs(job_action="CreateSnapshots", status=["successful"], limit=2))
    assert r["total_count"] >= 3 and len(r["job_set"]) == 2
    for j in r["job_set"]:
        assert j["job_action"] == "CreateSnapshots" and j["status"] == "successful"
        assert j["owner"] == "usr-alice" and j["error_codes"] == ""
    assert c.describe_jobs(status="nonsense")["ret_code"] == 1100


# ---- errors, through the SDK where it can send them, raw HTTP where it cannot -------------

def raw_get(server, params, secret=None, key="alice", method_name="HmacSHA256"):
    """A signed request built by the SDK's own signer, so only what a test changes differs."""
    k, s = ACCOUNTS[key]["qingcloud"]
    base = {"access_key_id": k, "signature_method": method_name, "signature_version": 1, "version": 1,
            "zone": "pek3a", "time_stamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base.update(params)
    handler = QuerySignatureAuthHandler(server.host, k, secret or s)
    qs, sig = handler._calc_signature(base, "GET", "/iaas/")
    url = f"{server.url}/iaas/?{qs}&signature={urllib.parse.quote_plus(sig)}"
    with urllib.request.urlopen(url) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def raw_post(server, params, key="alice"):
    """A signed form POST (a body up to 1 MiB holds lists no URL could)."""
    k, s = ACCOUNTS[key]["qingcloud"]
    base = {"access_key_id": k, "signature_method": "HmacSHA256", "signature_version": 1, "version": 1,
            "zone": "pek3a", "time_stamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base.update(params)
    qs, sig = QuerySignatureAuthHandler(server.host, k, s)._calc_signature(base, "POST", "/iaas/")
    body = f"{qs}&signature={urllib.parse.quote_plus(sig)}".encode()
    req = urllib.request.Request(f"{server.url}/iaas/", data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_any_search_word_and_long_lists_never_reach_the_database_as_errors(server, world):
    c = conn(server)
    a, b = world["points"][0], world["points"][1]
    # A NUL byte, FTS syntax and a long word are words like any other: they match or they don't.
    for word in ["\x00", "point-\x00", "po\x00int", '"*(NEAR', "x" * 5000]:
        r = ok(c.describe_snapshots(search_word=word))
        assert r["total_count"] == 0, (word[:10], r)
        assert ok(c.describe_volumes(search_word=word))["total_count"] == 0
    # Up to 1000 items per list are served; more is the caller's error (1100), never 5000.
    ids = [f"ss-{i:08d}" for i in range(998)] + [a, b]
    params = {"action": "DescribeSnapshots", **{f"snapshots.{i + 1}": v for i, v in enumerate(ids)}}
    r = raw_post(server, params)
    assert r["ret_code"] == 0 and r["total_count"] == 2, r
    for n in (1001, 34000):
        params = {"action": "DescribeSnapshots", **{f"snapshots.{i + 1}": f"ss-{i:08d}" for i in range(n)}}
        r = raw_post(server, params)
        assert r["ret_code"] == 1100 and "snapshots.n" in r["message"] and "1000" in r["message"], r
    params = {"action": "DescribeSnapshots", **{f"status.{i + 1}": "available" for i in range(1001)}}
    assert raw_post(server, params)["ret_code"] == 1100


def test_errors_have_the_documented_codes(server, world):
    c = conn(server)
    # Bad signature (wrong secret) and unknown key: 1200.
    assert conn(server, secret="not-the-secret").describe_snapshots()["ret_code"] == 1200
    r = APIConnection("QYNOSUCHKEY000000000", "x", "pek3a", host=server.host, port=server.port,
                      protocol="http").describe_snapshots()
    assert r["ret_code"] == 1200 and "QYNOSUCHKEY" in r["message"]
    # HmacSHA1 is accepted too.
    assert raw_get(server, {"action": "DescribeZones"}, method_name="HmacSHA1")["ret_code"] == 0
    # Expired time_stamp (5 minutes old) and an expires already past: 1300.
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    r = raw_get(server, {"action": "DescribeSnapshots", "time_stamp": old})
    assert r["ret_code"] == 1300 and r["message"].startswith("RequestExpired, "), r
    r = raw_get(server, {"action": "DescribeSnapshots", "expires": old})
    assert r["ret_code"] == 1300, r
    # A replayed req_id: 1300.
    assert raw_get(server, {"action": "DescribeZones", "req_id": "abc123"})["ret_code"] == 0
    assert raw_get(server, {"action": "DescribeZones", "req_id": "abc123"})["ret_code"] == 1300
    # Unknown action: 1101. Unknown zone and malformed values: 1100.
    assert raw_get(server, {"action": "RunInstances"})["ret_code"] == 1101
    assert raw_get(server, {"action": "DescribeSnapshots", "zone": "mars1"})["ret_code"] == 1100
    assert raw_get(server, {"action": "DescribeSnapshots", "limit": "ten"})["ret_code"] == 1100
    assert raw_get(server, {"action": "DescribeSnapshots", "status.1": "sleeping"})["ret_code"] == 1100
    assert raw_get(server, {"action": "ModifySnapshotAttributes"})["ret_code"] == 1100
    # Unknown ids: 2100 with the id in the message.
    r = c.apply_snapshots(snapshots=["ss-zzzzzzzz"])
    assert r["ret_code"] == 2100 and "ss-zzzzzzzz" in r["message"], r
    assert c.create_snapshots(resources=["vol-zzzzzzzz"])["ret_code"] == 2100
    # Wrong state: a volume held by a running job refuses a second byte-moving job: 1400.
    vol = world["vol"]
    first = ok(c.create_snapshots(resources=[vol]))
    again = c.create_snapshots(resources=[vol])
    wait(c, first["job_id"])
    if again["ret_code"] == 0:  # the first job can finish before the second request arrives
        wait(c, again["job_id"])
    else:
        assert again["ret_code"] == 1400 and vol in again["message"], again
    # Another account's snapshot is "not found", never visible.
    bob = conn(server, "bob")
    a = world["points"][0]
    assert snaps(bob, snapshots=[a])["total_count"] == 0
    r = bob.apply_snapshots(snapshots=[a])
    assert r["ret_code"] == 2100, r
    assert bob.delete_snapshots(snapshots=[a])["ret_code"] == 2100
    assert snaps(c, snapshots=[a])["snapshot_set"][0]["status"] == "available"


def test_post_form_is_accepted(server):
    k, s = ACCOUNTS["alice"]["qingcloud"]
    params = {"access_key_id": k, "signature_method": "HmacSHA256", "signature_version": 1, "version": 1,
              "zone": "pek3a", "action": "DescribeZones", "time_stamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    qs, sig = QuerySignatureAuthHandler(server.host, k, s)._calc_signature(params, "POST", "/iaas/")
    body = (qs + "&signature=" + urllib.parse.quote_plus(sig)).encode()
    req = urllib.request.Request(server.url + "/iaas/", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["ret_code"] == 0


# ---- the qingcloud CLI with a config file ----------------------------------------------------

def qcli(server, tmp_path, *args):
    k, s = ACCOUNTS["alice"]["qingcloud"]
    conf = tmp_path / "config.yaml"
    conf.write_text(yaml.safe_dump({"qy_access_key_id": k, "qy_secret_access_key": s, "zone": "pek3a",
                                    "host": server.host, "port": server.port, "protocol": "http"}))
    exe = os.path.join(os.path.dirname(sys.executable), "qingcloud")
    r = subprocess.run([exe, "iaas", *args, "-f", str(conf)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # The CLI prints the response dict as JSON (exit status 0 even when ret_code != 0).
    return json.loads(r.stdout)


def test_the_qingcloud_cli(server, world, tmp_path):
    c = conn(server)
    a, b, cc = world["points"]
    r = qcli(server, tmp_path, "describe-snapshots", "-n", f"{a},{b}", "-s", "available")
    assert r["ret_code"] == 0 and set(ids_of(r)) == {a, b}
    r = qcli(server, tmp_path, "describe-snapshots", "-r", world["vol"], "-t", "1")
    assert ids_of(r) == [a]
    r = qcli(server, tmp_path, "describe-snapshots", "-W", "point-A", "-L", "5")
    assert ids_of(r) == [a]
    r = qcli(server, tmp_path, "create-snapshots", "-r", world["vol"], "-N", "from-cli")
    assert r["ret_code"] == 0
    wait(c, r["job_id"])
    new = r["snapshots"][0]
    r = qcli(server, tmp_path, "modify-snapshot-attributes", "-s", new, "-N", "cli-renamed")
    assert r["ret_code"] == 0
    assert snaps(c, snapshots=[new])["snapshot_set"][0]["snapshot_name"] == "cli-renamed"
    r = qcli(server, tmp_path, "create-volume-from-snapshot", "-s", new)
    assert r["ret_code"] == 0
    wait(c, r["job_id"])
    r = qcli(server, tmp_path, "describe-jobs", "-j", r["job_id"])
    assert r["job_set"][0]["status"] == "successful"
    r = qcli(server, tmp_path, "delete-snapshots", "-s", new)
    assert r["ret_code"] == 0
    wait(c, r["job_id"])
    r = qcli(server, tmp_path, "apply-snapshots", "-s", "ss-zzzzzzzz")
    assert r["ret_code"] == 2100
    r = qcli(server, tmp_path, "describe-volumes", "-v", world["vol"])
    assert r["volume_set"][0]["volume_id"] == world["vol"]


def test_concurrent_keep_alive_connections(server):
    """The SDK pools connections; many clients in parallel must all be answered."""
    import concurrent.futures
    c = conn(server)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: conn(server).describe_zones(), range(32)))
    assert all(r["ret_code"] == 0 for r in results)
    assert ok(c.describe_zones())["zone_set"] == [{"zone_id": "pek3a", "status": "active"}]


# ---- one account, several dialects ----------------------------------------------------------

def aliyun_rpc(server, account, **params):
    """An Alibaba Cloud ECS RPC v1 call signed by hand (HMAC-SHA1, dialects.md §4.3): this suite's
    venv holds only QingCloud's SDK, and the stdlib is enough to sign."""
    import base64
    import hmac
    import uuid
    key, secret = ACCOUNTS[account]["aliyun"]
    q = {"Format": "JSON", "Version": "2014-05-26", "AccessKeyId": key, "SignatureMethod": "HMAC-SHA1",
         "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex, "RegionId": "cn-hangzhou",
         "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **params}
    enc = lambda s: urllib.parse.quote(str(s), safe="-_.~")
    canon = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(q.items()))
    sts = "GET&%2F&" + enc(canon)
    q["Signature"] = base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(), "sha1").digest()).decode()
    try:
        with urllib.request.urlopen(f"{server.url}/?{urllib.parse.urlencode(q)}") as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_disk_snapshotted_through_ecs_is_seen_through_qingcloud(server, world):
    c = conn(server)
    disk = "d-" + world["vol"].split("-", 1)[1]
    status, body = aliyun_rpc(server, "alice", Action="CreateSnapshot", DiskId=disk, SnapshotName="via-ecs")
    assert status == 200, body
    point = "ss-" + body["SnapshotId"].split("-", 1)[1]
    deadline = time.time() + 60
    while True:
        got = snaps(c, snapshots=[point])["snapshot_set"]
        if got and got[0]["status"] == "available":
            break
        assert time.time() < deadline, got
        time.sleep(0.2)
    assert got[0]["snapshot_name"] == "via-ecs" and got[0]["resource"]["resource_id"] == world["vol"]
    # The same id in either rendering, through either dialect; never to another account.
    status, body = aliyun_rpc(server, "alice", Action="DescribeSnapshots", SnapshotIds=json.dumps([point]))
    assert status == 200 and body["TotalCount"] == 1, body
    status, body = aliyun_rpc(server, "bob", Action="DescribeSnapshots", SnapshotIds=json.dumps([point]))
    assert status == 200 and body["TotalCount"] == 0, body
    assert snaps(conn(server, "bob"), snapshots=[point])["total_count"] == 0
