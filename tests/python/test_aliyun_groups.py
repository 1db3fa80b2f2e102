"""Aliyun snapshot-consistent groups and ResetDisks (issue 15) through both SDKs, with real bytes:
a group of two disks taken at one time, both disks written, ResetDisks -> both byte-exact; a
member whose stored data is damaged makes the whole ResetDisks fail and leaves both disks as they
were; DeleteSnapshotGroup deletes the members; bad input gets ECS's own codes.
"""
import json
import os
import time

from aliyunsdkecs.request.v20140526 import CreateSnapshotGroupRequest, ModifySnapshotGroupRequest
from alibabacloud_ecs20140526 import models as m

from conftest import pattern, read_all, write_at
from test_aliyun import (MIB, REGION, describe, new_volume, old_call, old_error, raw_call, suffix, tea, tea_error,
                         wait_disk)


def groups(server, account="alice", **kw):
    kw.setdefault("region_id", REGION)
    body = tea(server, account).describe_snapshot_groups(m.DescribeSnapshotGroupsRequest(**kw)).body.to_map()
    return body["SnapshotGroups"]["SnapshotGroup"]


def wait_group(server, gid, timeout=60):
    deadline = time.time() + timeout
    while True:
        found = groups(server, snapshot_group_id=[gid])
        if found and found[0]["Status"] == "accomplished":
            return found[0]
        assert time.time() < deadline, f"group {gid} did not finish: {found}"
        time.sleep(0.1)


def reset(server, pairs, v2=False):
    disks = [m.ResetDisksRequestDisk(disk_id=d, snapshot_id=s) for d, s in pairs]
    return tea(server, v2=v2).reset_disks(m.ResetDisksRequest(region_id=REGION, disk=disks)).body.to_map()


def test_group_of_two_disks_resets_both_byte_exact_or_neither(server):
    disks = [new_volume(server), new_volume(server)]
    paths = [server.volume_path(d) for d in disks]
    before = [pattern(f"group-before-{i}", 4 * MIB) for i in range(2)]
    after = [pattern(f"group-after-{i}", 4 * MIB) for i in range(2)]
    for p, a in zip(paths, before):
        write_at(p, 0, a)
        write_at(p, 512 * MIB, a[:MIB])

    # CreateSnapshotGroup through the old SDK (RPC v1), DiskId.N
    r = old_call(server, CreateSnapshotGroupRequest, DiskIds=disks, Name="consistent", Description="both disks")
    gid = r["SnapshotGroupId"]
    assert gid.startswith("ssg-") and r["RequestId"]
    g = wait_group(server, gid)
    assert (g["Name"], g["Description"], g["Status"], g["InstanceId"]) == ("consistent", "both disks", "accomplished", "")
    members = g["Snapshots"]["Snapshot"]
    assert [s["SourceDiskId"] for s in members] == disks
    assert all(s["Available"] and s["Progress"] == "100%" and s["SnapshotId"].startswith("s-") for s in members)
    snaps = [s["SnapshotId"] for s in members]
    # the members are ordinary snapshots, taken at one time
    times = {item["CreationTime"] for item in describe(server, snapshot_ids=json.dumps(snaps))["Snapshots"]["Snapshot"]}
    assert len(times) == 1, times

    for p, b in zip(paths, after):
        write_at(p, 0, b)
        write_at(p, 512 * MIB, b[:MIB])

    # One member's stored index is damaged: ResetDisks fails as a whole and changes neither disk.
    # (in DATA/store, or in the S3 bucket under the server's prefix: conftest.py)
    idx = "indexes/" + suffix(snaps[1]) + ".fidx"
    good = server.store_object(idx)
    server.put_store_object(idx, b"damaged")
    status, _, body = raw_call(server, "ResetDisks", {"Disk.1.DiskId": disks[0], "Disk.1.SnapshotId": snaps[0],
                                                      "Disk.2.DiskId": disks[1], "Disk.2.SnapshotId": snaps[1]})
    assert status == 500 and json.loads(body)["Code"] == "InternalError", body
    for d, p, b in zip(disks, paths, after):
        assert wait_disk(server, d)["Status"] == "Available"
        data = read_all(p)
        assert data[:4 * MIB] == b and data[512 * MIB:513 * MIB] == b[:MIB], "a failed ResetDisks changed a disk"
    assert not [n for n in os.listdir(os.path.dirname(paths[0])) if ".stage-" in n or n.startswith("rollback-")]

    # Repaired: ResetDisks (Tea V3) rolls both back, byte-exact.
    server.put_store_object(idx, good)
    out = reset(server, list(zip(disks, snaps)))
    progress = out["OperationProgressSet"]["OperationProgress"]
    assert [(p["OperationStatus"], p["RelatedItemSet"]["RelatedItem"][0]["Value"]) for p in progress] == \
        [("Success", d) for d in disks]
    for d, p, a in zip(disks, paths, before):
        wait_disk(server, d)
        data = read_all(p)
        assert data[:4 * MIB] == a and data[512 * MIB:513 * MIB] == a[:MIB]
        assert len(data) == 1 << 30

    # ModifySnapshotGroup (old SDK), then the filters of DescribeSnapshotGroups (Tea, RPC v1 signing)
    old_call(server, ModifySnapshotGroupRequest, SnapshotGroupId=gid, Name="renamed", Description="still both")
    assert [x["SnapshotGroupId"] for x in groups(server, name="renamed")] == [gid]
    assert groups(server, name="consistent") == []
    assert gid in [x["SnapshotGroupId"] for x in groups(server, status=["accomplished"])]
    assert gid not in [x["SnapshotGroupId"] for x in groups(server, status=["failed", "progressing"])]
    assert groups(server, account="bob", snapshot_group_id=[gid]) == []

    # DeleteSnapshotGroup (Tea V3): the group and its member snapshots are gone
    out = tea(server).delete_snapshot_group(m.DeleteSnapshotGroupRequest(region_id=REGION, snapshot_group_id=gid))
    items = out.body.to_map()["OperationProgressSet"]["OperationProgress"]
    assert sorted(i["RelatedItemSet"]["RelatedItem"][0]["Value"] for i in items) == sorted(snaps)
    assert all(i["OperationStatus"] == "Success" for i in items)
    assert groups(server, snapshot_group_id=[gid]) == []
    assert describe(server, snapshot_ids=json.dumps(snaps))["Snapshots"]["Snapshot"] == []


def test_group_bad_input_gets_ecs_codes(server):
    d = new_volume(server)
    bobs = new_volume(server, account="bob")
    c = tea(server)
    req = m.CreateSnapshotGroupRequest
    assert tea_error(lambda: c.create_snapshot_group(req(region_id=REGION))) == ("MissingParameter", 400)
    assert tea_error(lambda: c.create_snapshot_group(req(region_id=REGION, disk_id=[d], exclude_disk_id=[d]))) == \
        ("InvalidParameter", 400)
    assert tea_error(lambda: c.create_snapshot_group(req(region_id=REGION, disk_id=[bobs]))) == \
        ("InvalidDiskId.NotFound", 404)
    assert tea_error(lambda: c.create_snapshot_group(req(region_id=REGION, instance_id="i-zzzzzzzz"))) == \
        ("InvalidInstanceId.NotFound", 404)
    assert tea_error(lambda: c.create_snapshot_group(req(region_id=REGION, disk_id=[d], name="1bad"))) == \
        ("InvalidParameter", 400)
    assert tea_error(lambda: c.create_snapshot_group(req(region_id="mars-1", disk_id=[d]))) == \
        ("InvalidRegionId.NotFound", 404)
    assert tea_error(lambda: c.describe_snapshot_groups(m.DescribeSnapshotGroupsRequest(
        region_id=REGION, status=["done"]))) == ("InvalidStatus.NotFound", 404)
    assert tea_error(lambda: c.delete_snapshot_group(m.DeleteSnapshotGroupRequest(
        region_id=REGION, snapshot_group_id="ssg-zzzzzzzz"))) == ("InvalidSnapshotGroupId.NotFound", 404)
    assert old_error(lambda: old_call(server, ModifySnapshotGroupRequest, SnapshotGroupId="ssg-zzzzzzzz",
                                      Name="x2")) == ("InvalidSnapshotGroupId.NotFound", 404)

    # a group of the disk, then ResetDisks with a snapshot of another disk, or a half pair
    gid = c.create_snapshot_group(req(region_id=REGION, disk_id=[d])).body.to_map()["SnapshotGroupId"]
    snap = wait_group(server, gid)["Snapshots"]["Snapshot"][0]["SnapshotId"]
    other = new_volume(server)
    assert tea_error(lambda: reset(server, [(other, snap)])) == ("InvalidParameter.Mismatch", 403)
    status, _, body = raw_call(server, "ResetDisks", {"Disk.1.DiskId": d})
    assert (status, json.loads(body)["Code"]) == (400, "MissingParameter"), body
    status, _, body = raw_call(server, "ResetDisks", {"Disk.1.DiskId": d, "Disk.1.SnapshotId": snap, "DryRun": "true"})
    assert (status, json.loads(body)["Code"]) == (400, "DryRunOperation"), body
    # bob neither sees nor deletes alice's group
    assert tea_error(lambda: tea(server, "bob").delete_snapshot_group(m.DeleteSnapshotGroupRequest(
        region_id=REGION, snapshot_group_id=gid))) == ("InvalidSnapshotGroupId.NotFound", 404)
    tea(server).delete_snapshot_group(m.DeleteSnapshotGroupRequest(region_id=REGION, snapshot_group_id=gid))
