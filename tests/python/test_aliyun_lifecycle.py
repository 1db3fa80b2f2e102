"""Issue 14 item 2: a disk's whole life as Terraform, Ansible or an SDK script drives it, through
both Aliyun SDKs against the real server: create → tag → resize → snapshot → a disk from the
snapshot → resource groups → delete, with ECS's error codes for what goes wrong.
"""
import json
import time

from aliyunsdkecs.request.v20140526 import (CreateDiskRequest, CreateSnapshotRequest, DeleteDiskRequest,
                                            DescribeDisksRequest, DescribeTagsRequest, JoinResourceGroupRequest,
                                            ListTagResourcesRequest, ModifyDiskAttributeRequest, ResizeDiskRequest,
                                            TagResourcesRequest, UntagResourcesRequest)
from alibabacloud_ecs20140526 import models as m

from test_aliyun import (REGION, disk, old_call, old_error, tea, tea_error, wait_disk, wait_snapshot)


def wait_gone(server, did, timeout=60):
    deadline = time.time() + timeout
    while disk(server, did) is not None:
        assert time.time() < deadline, f"disk {did} was not deleted"
        time.sleep(0.1)


def test_old_sdk_create_tag_resize_snapshot_delete(server):
    did = old_call(server, CreateDiskRequest, ZoneId=REGION + "-a", Size=1, DiskName="tf-data",
                   ClientToken="old-create-1")["DiskId"]
    assert old_call(server, CreateDiskRequest, ZoneId=REGION + "-a", Size=1, DiskName="tf-data",
                    ClientToken="old-create-1")["DiskId"] == did, "ClientToken answers the first disk"
    wait_disk(server, did)
    # tag, retag (one value per key), list
    old_call(server, TagResourcesRequest, ResourceType="disk", ResourceIds=[did],
             Tags=[{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "storage"}])
    old_call(server, TagResourcesRequest, ResourceType="disk", ResourceIds=[did], Tags=[{"Key": "env", "Value": "prod"}])
    got = old_call(server, ListTagResourcesRequest, ResourceType="disk", ResourceIds=[did])
    assert sorted((t["TagKey"], t["TagValue"]) for t in got["TagResources"]["TagResource"]) == \
        [("env", "prod"), ("team", "storage")]
    assert {t["ResourceId"] for t in got["TagResources"]["TagResource"]} == {did}
    tags = old_call(server, DescribeTagsRequest, ResourceType="disk", ResourceId=did)["Tags"]["Tag"]
    assert sorted(t["TagKey"] for t in tags) == ["env", "team"]
    old_call(server, UntagResourcesRequest, ResourceType="disk", ResourceIds=[did], TagKeys=["team"])
    assert [t["TagKey"] for t in disk(server, did)["Tags"]["Tag"]] == ["env"]
    # resize: grows only
    assert old_error(lambda: old_call(server, ResizeDiskRequest, DiskId=did, NewSize=1)) == \
        ("InvalidDiskSize.ValueNotSupported", 403)
    old_call(server, ResizeDiskRequest, DiskId=did, NewSize=3)
    assert wait_disk(server, did)["Size"] == 3
    old_call(server, ModifyDiskAttributeRequest, DiskId=did, DiskName="tf-data-2", Description="resized to 3")
    d = disk(server, did)
    assert (d["DiskName"], d["Description"]) == ("tf-data-2", "resized to 3")
    # snapshot, a disk from it, and the SnapshotId filter
    sid = old_call(server, CreateSnapshotRequest, DiskId=did, SnapshotName="before-delete")["SnapshotId"]
    wait_snapshot(server, sid)
    restored = old_call(server, CreateDiskRequest, ZoneId=REGION + "-a", SnapshotId=sid)["DiskId"]
    assert wait_disk(server, restored)["SourceSnapshotId"] == sid
    listed = old_call(server, DescribeDisksRequest, SnapshotId=sid)["Disks"]["Disk"]
    assert [x["DiskId"] for x in listed] == [restored]
    # resource group
    old_call(server, JoinResourceGroupRequest, ResourceType="disk", ResourceId=restored, ResourceGroupId="rg-old1")
    grouped = old_call(server, DescribeDisksRequest, ResourceGroupId="rg-old1")["Disks"]["Disk"]
    assert [(x["DiskId"], x["ResourceGroupId"]) for x in grouped] == [(restored, "rg-old1")]
    # delete both; the snapshot stays
    for x in (did, restored):
        old_call(server, DeleteDiskRequest, DiskId=x)
        wait_gone(server, x)
    assert old_error(lambda: old_call(server, DeleteDiskRequest, DiskId=did)) == ("InvalidDiskId.NotFound", 404)
    assert wait_snapshot(server, sid)["SnapshotId"] == sid


def test_tea_sdk_create_tag_resize_snapshot_delete(server):
    for v2 in (False, True):
        c = tea(server, v2=v2)
        did = c.create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION, size=1, disk_name="ansible",
                                                resource_group_id="rg-tea1")).body.to_map()["DiskId"]
        wait_disk(server, did)
        c.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="disk", resource_id=[did],
                                              tag=[m.TagResourcesRequestTag(key="owner", value="ops")]))
        got = c.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="disk",
                                                             resource_id=[did])).body.to_map()
        assert [(t["TagKey"], t["TagValue"]) for t in got["TagResources"]["TagResource"]] == [("owner", "ops")]
        c.resize_disk(m.ResizeDiskRequest(disk_id=did, new_size=2, type="offline"))
        assert wait_disk(server, did)["Size"] == 2
        c.modify_disk_attribute(m.ModifyDiskAttributeRequest(disk_ids=[did], description="via DiskIds.N"))
        assert disk(server, did)["Description"] == "via DiskIds.N"
        ids = {x["DiskId"] for x in c.describe_disks(m.DescribeDisksRequest(
            region_id=REGION, resource_group_id="rg-tea1")).body.to_map()["Disks"]["Disk"]}
        assert did in ids
        sid = c.create_snapshot(m.CreateSnapshotRequest(disk_id=did, snapshot_name="tea-snap")).body.to_map()["SnapshotId"]
        wait_snapshot(server, sid)
        c.untag_resources(m.UntagResourcesRequest(region_id=REGION, resource_type="disk", resource_id=[did], all=True))
        assert disk(server, did)["Tags"]["Tag"] == []
        c.delete_disk(m.DeleteDiskRequest(disk_id=did))
        wait_gone(server, did)
        assert tea_error(lambda: c.delete_disk(m.DeleteDiskRequest(disk_id=did))) == ("InvalidDiskId.NotFound", 404)


def test_negatives_with_ecs_codes(server):
    c = tea(server)
    did = c.create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION, size=1)).body.to_map()["DiskId"]
    wait_disk(server, did)
    cases = [
        (lambda: c.resize_disk(m.ResizeDiskRequest(disk_id="d-zzzzzzzz", new_size=2)), ("InvalidDiskId.NotFound", 404)),
        (lambda: c.resize_disk(m.ResizeDiskRequest(disk_id=did, new_size=1)), ("InvalidDiskSize.ValueNotSupported", 403)),
        (lambda: c.resize_disk(m.ResizeDiskRequest(disk_id=did, new_size=2, type="sideways")), ("InvalidParameter", 400)),
        (lambda: c.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="router", resource_id=[did],
                                                       tag=[m.TagResourcesRequestTag(key="k", value="v")])),
         ("InvalidResourceType.NotFound", 404)),
        (lambda: c.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="disk", resource_id=["d-zzzzzzzz"],
                                                       tag=[m.TagResourcesRequestTag(key="k", value="v")])),
         ("InvalidResourceId.NotFound", 404)),
        (lambda: c.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="disk", resource_id=[did],
                                                       tag=[m.TagResourcesRequestTag(key="aliyun-x", value="v")])),
         ("InvalidTagKey.Malformed", 400)),
        (lambda: c.join_resource_group(m.JoinResourceGroupRequest(region_id=REGION, resource_type="disk", resource_id=did,
                                                                  resource_group_id="not a group")),
         ("InvalidResourceGroupId.Malformed", 400)),
        (lambda: c.attach_disk(m.AttachDiskRequest(instance_id="i-zzzzzzzz", disk_id=did)), ("InvalidInstanceId.NotFound", 404)),
        (lambda: c.delete_image(m.DeleteImageRequest(region_id=REGION, image_id="m-zzzzzzzz")), ("InvalidImageId.NotFound", 404)),
    ]
    for call, want in cases:
        assert tea_error(call) == want
    # another account's disk is not found
    assert tea_error(lambda: tea(server, "bob").delete_disk(m.DeleteDiskRequest(disk_id=did))) == \
        ("InvalidDiskId.NotFound", 404)
    # attached: DeleteDisk refused until detached
    iid = "i-" + server.cli("instance", "create", "--name", "vm-lifecycle")["id"].split("-", 1)[1]
    c.attach_disk(m.AttachDiskRequest(instance_id=iid, disk_id=did))
    assert disk(server, did)["Status"] == "In_use"
    assert tea_error(lambda: c.delete_disk(m.DeleteDiskRequest(disk_id=did))) == ("IncorrectDiskStatus", 403)
    c.detach_disk(m.DetachDiskRequest(instance_id=iid, disk_id=did))
    c.delete_disk(m.DeleteDiskRequest(disk_id=did))
    wait_gone(server, did)


def test_images_and_snapshot_tags_both_sdks(server):
    from aliyunsdkecs.request.v20140526 import (DeleteImageRequest, DescribeImagesRequest,
                                                ModifyImageAttributeRequest)
    from test_aliyun import new_volume, snapshot
    sys_disk = new_volume(server, "system")
    sid = snapshot(server, sys_disk, snapshot_name="sys-for-image")
    c = tea(server)
    img = c.create_image(m.CreateImageRequest(region_id=REGION, snapshot_id=sid, image_name="lifecycle-img")) \
        .body.to_map()["ImageId"]
    deadline = time.time() + 60
    while True:
        got = old_call(server, DescribeImagesRequest, ImageId=img, Status="Creating,Available")["Images"]["Image"]
        if got and got[0]["Status"] == "Available":
            break
        assert time.time() < deadline, got
        time.sleep(0.1)
    assert got[0]["DiskDeviceMappings"]["DiskDeviceMapping"][0]["SnapshotId"] == sid
    by_name = c.describe_images(m.DescribeImagesRequest(region_id=REGION, image_name="lifecycle-img")).body.to_map()
    assert [i["ImageId"] for i in by_name["Images"]["Image"]] == [img]
    old_call(server, ModifyImageAttributeRequest, ImageId=img, ImageName="renamed-img")
    c.join_resource_group(m.JoinResourceGroupRequest(region_id=REGION, resource_type="image", resource_id=img,
                                                     resource_group_id="rg-img1"))
    grouped = c.describe_images(m.DescribeImagesRequest(region_id=REGION, resource_group_id="rg-img1")).body.to_map()
    assert [(i["ImageId"], i["ImageName"], i["ResourceGroupId"]) for i in grouped["Images"]["Image"]] == \
        [(img, "renamed-img", "rg-img1")]
    # snapshots take tags through the same APIs
    c.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="snapshot", resource_id=[sid],
                                          tag=[m.TagResourcesRequestTag(key="backup", value="weekly")]))
    rows = old_call(server, ListTagResourcesRequest, ResourceType="snapshot", Tags=[{"Key": "backup", "Value": "weekly"}])
    assert [(r["ResourceId"], r["TagValue"]) for r in rows["TagResources"]["TagResource"]] == [(sid, "weekly")]
    old_call(server, DeleteImageRequest, ImageId=img)
    assert c.describe_images(m.DescribeImagesRequest(region_id=REGION, image_id=img)).body.to_map()["TotalCount"] == 0
    assert old_error(lambda: old_call(server, DeleteImageRequest, ImageId=img)) == ("InvalidImageId.NotFound", 404)
