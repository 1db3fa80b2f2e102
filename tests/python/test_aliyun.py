"""Alibaba Cloud ECS dialect through the vendors' own SDKs (dialects.md §4):

- old SDK: aliyunsdkcore AcsClient + aliyunsdkecs request classes, `request.set_endpoint(...)`
  (RPC v1, HMAC-SHA1, POST with every parameter in the query);
- Tea SDK: alibabacloud_ecs20140526 Client with Config(endpoint=..., protocol='http'), default V3
  (ACS3-HMAC-SHA256, action in x-acs-action) and signature_algorithm='v2' (RPC v1).

A raw signer sends what the SDKs will not (GET, form bodies, XML errors, unsigned requests).
"""
import base64
import datetime
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkecs.request.v20140526 import (CreateSnapshotRequest, DeleteSnapshotRequest,
                                            DescribeSnapshotsRequest, ModifySnapshotAttributeRequest,
                                            ResetDiskRequest)
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as TeaClient
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils import Utils as TeaUtils

from conftest import ACCOUNTS, pattern, read_all, write_at

REGION = "cn-hangzhou"
MIB = 1 << 20


# ---------------------------------------------------------------- clients and helpers

def old_client(account="alice", secret=None):
    ak, sk = ACCOUNTS[account]["aliyun"]
    return AcsClient(ak, secret or sk, REGION)


def old_call(server, req_module, account="alice", secret=None, fmt=None, **setters):
    """Build aliyunsdkecs `<Action>Request`, call set_<Name>(value) for each keyword, send it."""
    cls = getattr(req_module, req_module.__name__.rsplit(".", 1)[-1])
    req = cls()
    req.set_endpoint(f"{server.host}:{server.port}")
    if fmt:
        req.set_accept_format(fmt)
    for k, v in setters.items():
        getattr(req, "set_" + k)(v)
    client = old_client(account, secret)
    if fmt:
        # do_action_with_exception forces Format=JSON; the deprecated do_action keeps the format
        # asked for (and sends the literal Format=None when none was)
        return client.do_action(req)
    return json.loads(client.do_action_with_exception(req))


def tea(server, account="alice", v2=False, secret=None):
    ak, sk = ACCOUNTS[account]["aliyun"]
    cfg = Config(access_key_id=ak, access_key_secret=secret or sk, region_id=REGION,
                 endpoint=f"{server.host}:{server.port}", protocol="http")
    if v2:
        cfg.signature_algorithm = "v2"
    return TeaClient(cfg)


def old_error(fn):
    with pytest.raises(ServerException) as e:
        fn()
    return e.value.get_error_code(), e.value.get_http_status()


def tea_error(fn):
    with pytest.raises(AlibabaCloudException) as e:
        fn()
    return e.value.code, e.value.status_code


def pe(s):
    return urllib.parse.quote(str(s), safe="~")


def raw_call(server, action, params=None, account="alice", method="GET", form=False, fmt=None, sign=True,
             secret=None, content_type="application/x-www-form-urlencoded"):
    """An RPC v1 request signed here, by GET query or POST form body. Returns (status, type, body)."""
    ak, sk = ACCOUNTS[account]["aliyun"]
    p = {"Action": action, "Version": "2014-05-26", "RegionId": REGION}
    if sign:
        p.update({"AccessKeyId": ak, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
                  "SignatureNonce": uuid.uuid4().hex,
                  "Timestamp": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")})
    if fmt:
        p["Format"] = fmt
    p.update(params or {})
    if sign:
        canon = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(p.items()))
        sts = f"{method}&%2F&{pe(canon)}"
        mac = hmac.new(((secret or sk) + "&").encode(), sts.encode(), hashlib.sha1).digest()
        p["Signature"] = base64.b64encode(mac).decode()
    encoded = urllib.parse.urlencode(p)
    if form:
        req = urllib.request.Request(server.url + "/", data=encoded.encode(), method=method,
                                     headers={"Content-Type": content_type} if content_type else {})
    else:
        req = urllib.request.Request(server.url + "/?" + encoded, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def describe(server, account="alice", **kw):
    """DescribeSnapshots through the Tea SDK (V3); returns the body as a dict."""
    kw.setdefault("region_id", REGION)
    return tea(server, account).describe_snapshots(m.DescribeSnapshotsRequest(**kw)).body.to_map()


def snap_ids(body):
    return [s["SnapshotId"] for s in body["Snapshots"]["Snapshot"]]


def wait_snapshot(server, sid, account="alice", timeout=60):
    deadline = time.time() + timeout
    while True:
        items = describe(server, account, snapshot_ids=json.dumps([sid]))["Snapshots"]["Snapshot"]
        if items and items[0]["Status"] == "accomplished":
            return items[0]
        assert time.time() < deadline, f"snapshot {sid} did not finish: {items}"
        time.sleep(0.1)


def disk(server, did, account="alice"):
    r = tea(server, account).describe_disks(m.DescribeDisksRequest(region_id=REGION, disk_ids=json.dumps([did])))
    disks = r.body.to_map()["Disks"]["Disk"]
    return disks[0] if disks else None


def wait_disk(server, did, account="alice", timeout=60):
    deadline = time.time() + timeout
    while True:
        d = disk(server, did, account)
        if d and d["Status"] in ("Available", "In_use"):
            return d
        assert time.time() < deadline, f"disk {did} did not settle: {d}"
        time.sleep(0.1)


def new_volume(server, kind="data", instance=None, account="alice"):
    args = ["volume", "create", "--size-gib", "1", "--type", kind]
    if instance:
        args += ["--instance", instance]
    out = server.cli(*args, account=account)
    vid = (out[0] if isinstance(out, list) else out)["id"]
    return "d-" + vid.split("-", 1)[1]


def suffix(any_id):
    return any_id.split("-", 1)[1]


def snapshot(server, did, account="alice", **kw):
    r = tea(server, account).create_snapshot(m.CreateSnapshotRequest(disk_id=did, **kw)).body.to_map()
    wait_snapshot(server, r["SnapshotId"], account)
    return r["SnapshotId"]


# ---------------------------------------------------------------- lifecycle

def test_lifecycle_with_byte_checks_old_and_tea(server):
    did = new_volume(server)
    path = server.volume_path(did)
    a, b = pattern("aliyun-a", 4 * MIB), pattern("aliyun-b", 4 * MIB)
    write_at(path, 0, a)

    # CreateSnapshot through the old SDK, with every field a client sets
    r = old_call(server, CreateSnapshotRequest, DiskId=did, SnapshotName="first-point", Description="before b",
                 RetentionDays=7, Tags=[{"Key": "team", "Value": "storage"}])
    s1 = r["SnapshotId"]
    assert s1.startswith("s-") and r["RequestId"]
    item = wait_snapshot(server, s1)
    assert item["SnapshotName"] == "first-point" and item["Description"] == "before b"
    assert (item["Progress"], item["RemainTime"], item["Available"]) == ("100%", 0, True)
    assert (item["SourceDiskId"], item["SourceDiskType"], item["SourceDiskSize"]) == (did, "data", "1")
    assert item["SnapshotLinkId"] == "sl-" + suffix(s1)
    assert (item["RetentionDays"], item["SnapshotType"], item["Usage"]) == (7, "user", "none")
    assert item["Tags"]["Tag"] == [{"TagKey": "team", "TagValue": "storage"}]
    assert item["RegionId"] == REGION
    datetime.datetime.strptime(item["CreationTime"], "%Y-%m-%dT%H:%M:%SZ")

    # the second point is incremental: same chain (SnapshotLinkId)
    write_at(path, 0, b)
    s2 = tea(server, v2=True).create_snapshot(m.CreateSnapshotRequest(disk_id=did)).body.to_map()["SnapshotId"]
    assert wait_snapshot(server, s2)["SnapshotLinkId"] == "sl-" + suffix(s1)

    # ModifySnapshotAttribute (old SDK): name, description, retention
    old_call(server, ModifySnapshotAttributeRequest, SnapshotId=s1, SnapshotName="renamed", Description="d2",
             RetentionDays=30)
    item = wait_snapshot(server, s1)
    assert (item["SnapshotName"], item["Description"], item["RetentionDays"]) == ("renamed", "d2", 30)

    # ResetDisk (old SDK) back to the first point: the bytes are a again
    old_call(server, ResetDiskRequest, DiskId=did, SnapshotId=s1)
    wait_disk(server, did)
    assert read_all(path)[:4 * MIB] == a

    # CreateDisk from the second point (Tea V3): the new disk holds b
    r = tea(server).create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION + "-a", snapshot_id=s2,
                                                    disk_name="restored")).body.to_map()
    d2 = r["DiskId"]
    got = wait_disk(server, d2)
    assert (got["DiskName"], got["Size"], got["Type"], got["ZoneId"]) == ("restored", 1, "data", REGION + "-a")
    assert read_all(server.volume_path(d2))[:4 * MIB] == b
    deadline = time.time() + 30
    while wait_snapshot(server, s2)["Usage"] != "disk":
        assert time.time() < deadline
        time.sleep(0.1)

    # the same points through disksnap's own CLI (same account, shared ids)
    listed = server.cli("snapshot", "list", "--volume", did)
    rows = listed["snapshots"] if isinstance(listed, dict) else listed
    assert {suffix(s["id"]) for s in rows} >= {suffix(s1), suffix(s2)}

    # DeleteSnapshot: a point a disk was made from needs Force
    assert old_error(lambda: old_call(server, DeleteSnapshotRequest, SnapshotId=s2)) == ("SnapshotCreatedDisk", 403)
    old_call(server, DeleteSnapshotRequest, SnapshotId=s2, Force=True)
    assert snap_ids(describe(server, disk_id=did)) == [s1]
    assert tea_error(lambda: tea(server).delete_snapshot(m.DeleteSnapshotRequest(snapshot_id=s2))) == \
        ("InvalidSnapshotId.NotFound", 404)
    # the other point still restores
    old_call(server, ResetDiskRequest, DiskId=did, SnapshotId=s1)
    wait_disk(server, did)
    assert read_all(path)[:4 * MIB] == a


# ---------------------------------------------------------------- DescribeSnapshots filters

@pytest.fixture(scope="module")
def estate(server):
    """An instance with a system and a data disk, snapshotted; one tagged snapshot; an image and a
    disk made from the system point; a lone data disk."""
    inst = server.cli("instance", "create", "--name", "web")
    iid = "i-" + suffix(inst["id"])
    sys_d = new_volume(server, "system", instance=inst["id"])
    data_d = new_volume(server, "data", instance=inst["id"])
    lone = new_volume(server)
    t0 = datetime.datetime.utcnow() - datetime.timedelta(minutes=1)
    s_sys = snapshot(server, sys_d, snapshot_name="sys-point")
    s_data = snapshot(server, data_d, snapshot_name="data-point")
    s_tag = snapshot(server, lone, snapshot_name="tagged", tag=[m.CreateSnapshotRequestTag(key="env", value="prod")])
    img = tea(server).create_image(m.CreateImageRequest(region_id=REGION, snapshot_id=s_sys, image_name="golden"))
    assert img.body.to_map()["ImageId"].startswith("m-")
    deadline = time.time() + 60
    while wait_snapshot(server, s_sys)["Usage"] != "image":
        assert time.time() < deadline
        time.sleep(0.1)
    d = tea(server).create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION, snapshot_id=s_sys))
    wait_disk(server, d.body.to_map()["DiskId"])
    while wait_snapshot(server, s_sys)["Usage"] != "image_disk":
        assert time.time() < deadline
        time.sleep(0.1)
    return dict(iid=iid, sys=sys_d, data=data_d, lone=lone, s_sys=s_sys, s_data=s_data, s_tag=s_tag, t0=t0)


def test_every_describe_snapshots_filter(server, estate):
    e = estate
    ours = {e["s_sys"], e["s_data"], e["s_tag"]}
    ids = lambda **kw: set(snap_ids(describe(server, page_size=100, **kw)))  # noqa: E731

    assert ids(instance_id=e["iid"]) == {e["s_sys"], e["s_data"]}
    assert ids(disk_id=e["data"]) == {e["s_data"]}
    assert ids(snapshot_ids=json.dumps([e["s_sys"], e["s_tag"], "s-zzzzzzzz"])) == {e["s_sys"], e["s_tag"]}
    assert ids(snapshot_ids="[]") == set()
    assert ids(snapshot_link_id="sl-" + suffix(e["s_tag"])) == {e["s_tag"]}
    assert ids(snapshot_name="data-point") == {e["s_data"]}
    assert ours <= ids(status="accomplished") and ours <= ids(status="all")
    assert ids(status="failed") == set() and not (ours & ids(status="progressing"))
    assert ours <= ids(snapshot_type="user") and ids(snapshot_type="auto") == set()
    assert e["s_sys"] in ids(source_disk_type="System") and not ({e["s_data"], e["s_tag"]} & ids(source_disk_type="System"))
    assert {e["s_data"], e["s_tag"]} <= ids(source_disk_type="data") and e["s_sys"] not in ids(source_disk_type="DATA")
    assert ids(usage="image_disk") == {e["s_sys"]}
    assert {e["s_data"], e["s_tag"]} <= ids(usage="none") and e["s_sys"] not in ids(usage="none")
    assert e["s_sys"] not in ids(usage="image") | ids(usage="disk")
    assert ids(encrypted=True) == set() and ours <= ids(encrypted=False)
    assert ours <= ids(category="standard") and ids(category="flash") == set()
    assert ids(kmskey_id="0e478b7a-4262-4802-b8cb-00d3fb40826X") == set()
    assert ids(resource_group_id="rg-finance") == set()
    assert ids(tag=[m.DescribeSnapshotsRequestTag(key="env", value="prod")]) == {e["s_tag"]}
    assert ids(tag=[m.DescribeSnapshotsRequestTag(key="env")]) == {e["s_tag"]}
    assert ids(tag=[m.DescribeSnapshotsRequestTag(key="env", value="dev")]) == set()
    start = e["t0"].strftime("%Y-%m-%dT%H:%MZ")
    future = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%MZ")
    F = m.DescribeSnapshotsRequestFilter
    assert ours <= ids(filter=[F(key="CreationStartTime", value=start), F(key="CreationEndTime", value=future)])
    assert ids(filter=[F(key="CreationStartTime", value=future)]) == set()
    assert ids(filter=[F(key="CreationEndTime", value=start)]) & ours == set()
    # the same filters through the old SDK (True/False booleans, RPC v1)
    body = old_call(server, DescribeSnapshotsRequest, InstanceId=e["iid"], SourceDiskType="data", Encrypted=False,
                    Filter1Key="CreationStartTime", Filter1Value=start, PageSize=50)
    assert snap_ids(body) == [e["s_data"]]
    body = old_call(server, DescribeSnapshotsRequest, Tags=[{"Key": "env", "Value": "prod"}], Usage="none")
    assert snap_ids(body) == [e["s_tag"]]

    # refusals, each with its documented code and status
    bad = lambda **kw: tea_error(lambda: describe(server, **kw))  # noqa: E731
    assert bad(snapshot_ids="s-1,s-2") == ("InvalidSnapshotIds.Malformed", 403)
    assert bad(status="done") == ("InvalidStatus.NotFound", 404)
    assert bad(snapshot_type="manual") == ("InvalidSnapshotType.NotFound", 404)
    assert bad(source_disk_type="root") == ("InvalidSourceDiskType", 404)
    assert bad(usage="everything") == ("InvalidUsage", 404)
    assert bad(filter=[F(key="Size", value="1")]) == ("InvalidFilterKey.NotFound", 404)
    assert bad(filter=[F(key="CreationStartTime", value="last week")]) == ("InvalidFilterValue", 404)
    assert bad(tag=[m.DescribeSnapshotsRequestTag(value="prod")]) == ("InvalidTag.Mismatch", 400)
    assert bad(dry_run=True) == ("DryRunOperation", 400)
    assert bad(region_id="mars-1") == ("InvalidRegionId.NotFound", 404)


def test_paging_both_ways(server):
    did = new_volume(server)
    made = [snapshot(server, did, snapshot_name=f"p{i}") for i in range(5)]
    newest_first = list(reversed(made))
    pages = []
    for n in (1, 2, 3):
        b = describe(server, disk_id=did, page_number=n, page_size=2)
        assert (b["TotalCount"], b["PageNumber"], b["PageSize"]) == (5, n, 2)
        pages += snap_ids(b)
    assert pages == newest_first
    # NextToken / MaxResults, through the old SDK
    seen, token = [], None
    while True:
        kw = {"DiskId": did, "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        b = old_call(server, DescribeSnapshotsRequest, **kw)
        seen += snap_ids(b)
        token = b["NextToken"]
        if not token:
            break
    assert seen == newest_first
    assert describe(server, disk_id=did, page_size=500)["PageSize"] == 100
    assert tea_error(lambda: describe(server, next_token="not-a-token")) == ("InvalidParameter", 400)


def test_xml_success_and_error(server, estate):
    xml = old_call(server, DescribeSnapshotsRequest, fmt="XML", DiskId=estate["lone"])
    root = ET.fromstring(xml)
    assert root.tag == "DescribeSnapshotsResponse"
    assert root.findtext("TotalCount") == "1" and root.findtext("RequestId")
    snaps = root.findall("Snapshots/Snapshot")
    assert [s.findtext("SnapshotId") for s in snaps] == [estate["s_tag"]]
    assert snaps[0].findtext("Tags/Tag/TagKey") == "env"
    # do_action() without a format sends Format=None: JSON
    assert json.loads(old_call(server, DescribeSnapshotsRequest, fmt="None", DiskId=estate["lone"]))["TotalCount"] == 1
    status, ctype, body = raw_call(server, "DeleteSnapshot", {"SnapshotId": "s-zzzzzzzz"}, fmt="XML")
    assert (status, ctype) == (404, "text/xml;charset=utf-8")
    err = ET.fromstring(body)
    assert err.tag == "Error" and err.findtext("Code") == "InvalidSnapshotId.NotFound" and err.findtext("RequestId")
    status, ctype, body = raw_call(server, "DescribeRegions", fmt="xml")
    assert (status, ctype) == (200, "text/xml;charset=utf-8")
    assert ET.fromstring(body).findtext("Regions/Region/RegionId") == REGION


# ---------------------------------------------------------------- transport and negatives

def test_get_form_body_and_unsigned(server, estate):
    status, ctype, body = raw_call(server, "DescribeSnapshots", {"DiskId": estate["lone"]})
    assert (status, ctype) == (200, "application/json;charset=utf-8")
    assert snap_ids(json.loads(body)) == [estate["s_tag"]]
    status, _, body = raw_call(server, "DescribeSnapshots", {"DiskId": estate["lone"]}, method="POST", form=True)
    assert status == 200 and snap_ids(json.loads(body)) == [estate["s_tag"]]
    # `/` is Cinder's version list too: a form body naming an action is Aliyun's whatever its
    # Content-Type claims (or with none).
    for ctype in ("application/json", "application/xml", "text/plain", None):
        status, _, body = raw_call(server, "DescribeSnapshots", {"DiskId": estate["lone"]}, method="POST", form=True,
                                   content_type=ctype)
        assert status == 200 and snap_ids(json.loads(body)) == [estate["s_tag"]], (ctype, body)
    status, _, body = raw_call(server, "DescribeSnapshots", method="POST", form=True, sign=False,
                               content_type="application/json")
    assert (status, json.loads(body)["Code"]) == (400, "IncompleteSignature"), body
    # neither: Cinder's version list
    req = urllib.request.Request(server.url + "/", data=b'{"Action": "DescribeSnapshots"}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 300 and "versions" in json.loads(e.value.read())
    status, _, body = raw_call(server, "DescribeSnapshots", sign=False)
    assert (status, json.loads(body)["Code"]) == (400, "IncompleteSignature")
    status, _, body = raw_call(server, "RunInstances")
    assert (status, json.loads(body)["Code"]) == (404, "InvalidAction.NotFound")
    status, _, body = raw_call(server, "DescribeSnapshots", {"Version": "2099-01-01"})
    assert (status, json.loads(body)["Code"]) == (404, "InvalidAction.NotFound")
    status, _, body = raw_call(server, "DescribeSnapshots", fmt="YAML")
    assert (status, json.loads(body)["Code"]) == (400, "InvalidParameter.Format")
    status, _, body = raw_call(server, "DescribeSnapshots", {"SignatureMethod": "HMAC-MD5"})
    assert (status, json.loads(body)["Code"]) == (400, "InvalidSignatureMethod")
    # the error envelope
    status, _, body = raw_call(server, "DescribeSnapshots", {"SnapshotIds": "nope"})
    e = json.loads(body)
    assert status == 403 and set(e) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert e["HostId"] == f"{server.host}:{server.port}"


def test_forged_signature_and_unknown_key(server):
    bad = "not-the-secret"
    # the old SDK finds its own string to sign after "server string to sign is:" and so
    # reports the wrong secret as InvalidAccessKeySecret: proof the server signed the same bytes
    assert old_error(lambda: old_call(server, DescribeSnapshotsRequest, secret=bad)) == \
        ("InvalidAccessKeySecret", 400)
    req = lambda c: c.describe_snapshots(m.DescribeSnapshotsRequest(region_id=REGION))  # noqa: E731
    assert tea_error(lambda: req(tea(server, secret=bad))) == ("SignatureDoesNotMatch", 400)
    assert tea_error(lambda: req(tea(server, v2=True, secret=bad))) == ("SignatureDoesNotMatch", 400)
    status, _, body = raw_call(server, "DescribeSnapshots", secret=bad)
    msg = json.loads(body)["Message"]
    assert status == 400 and msg.startswith("Specified signature is not matched with our calculation. "
                                            "server string to sign is:GET&%2F&AccessKeyId%3D")
    ACCOUNTS["ghost"] = {"aliyun": ("LTAIghost00000000000", "x")}
    try:
        assert old_error(lambda: old_call(server, DescribeSnapshotsRequest, account="ghost")) == \
            ("InvalidAccessKeyId.NotFound", 404)
        assert tea_error(lambda: req(tea(server, account="ghost"))) == ("InvalidAccessKeyId.NotFound", 404)
    finally:
        del ACCOUNTS["ghost"]


def test_replayed_nonce(server, monkeypatch):
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: "fixed-nonce-old-sdk")
    old_call(server, DescribeSnapshotsRequest)
    assert old_error(lambda: old_call(server, DescribeSnapshotsRequest)) == ("SignatureNonceUsed", 400)
    monkeypatch.setattr(TeaUtils, "get_nonce", staticmethod(lambda: "fixed-nonce-tea"))
    c = tea(server)
    c.describe_regions(m.DescribeRegionsRequest())
    assert tea_error(lambda: c.describe_regions(m.DescribeRegionsRequest())) == ("SignatureNonceUsed", 400)
    c2 = tea(server, v2=True)
    monkeypatch.setattr(TeaUtils, "get_nonce", staticmethod(lambda: "fixed-nonce-tea-v2"))
    c2.describe_regions(m.DescribeRegionsRequest())
    assert tea_error(lambda: c2.describe_regions(m.DescribeRegionsRequest())) == ("SignatureNonceUsed", 400)


def test_stale_timestamp(server, monkeypatch):
    stale = (datetime.datetime.utcnow() - datetime.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: stale)
    assert old_error(lambda: old_call(server, DescribeSnapshotsRequest)) == ("InvalidTimeStamp.Expired", 400)
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: stale))
    req = lambda c: c.describe_regions(m.DescribeRegionsRequest())  # noqa: E731
    assert tea_error(lambda: req(tea(server))) == ("InvalidTimeStamp.Expired", 400)
    assert tea_error(lambda: req(tea(server, v2=True))) == ("InvalidTimeStamp.Expired", 400)
    status, _, body = raw_call(server, "DescribeRegions", {"Timestamp": "yesterday"})
    assert (status, json.loads(body)["Code"]) == (400, "InvalidTimeStamp.Format")


def test_unknown_ids_wrong_state_and_parameters(server, estate):
    c = tea(server)
    assert tea_error(lambda: c.delete_snapshot(m.DeleteSnapshotRequest(snapshot_id="s-zzzzzzzz"))) == \
        ("InvalidSnapshotId.NotFound", 404)
    assert tea_error(lambda: c.reset_disk(m.ResetDiskRequest(disk_id="d-zzzzzzzz", snapshot_id=estate["s_tag"]))) == \
        ("InvalidDiskId.NotFound", 404)
    assert tea_error(lambda: c.create_snapshot(m.CreateSnapshotRequest(disk_id="d-nonsense"))) == \
        ("InvalidDiskId.NotFound", 404)
    # a disk is reset only to its own points
    assert old_error(lambda: old_call(server, ResetDiskRequest, DiskId=estate["data"], SnapshotId=estate["s_tag"])) \
        == ("InvalidParameter.Mismatch", 403)
    assert tea_error(lambda: c.reset_disk(m.ResetDiskRequest(disk_id=estate["lone"], snapshot_id=estate["s_tag"],
                                                             dry_run=True))) == ("DryRunOperation", 400)
    # a point an image and a disk were made from needs Force
    assert tea_error(lambda: c.delete_snapshot(m.DeleteSnapshotRequest(snapshot_id=estate["s_sys"]))) == \
        ("SnapshotCreatedDisk", 403)
    assert tea_error(lambda: c.create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION,
                                                               snapshot_id=estate["s_sys"], size=0))) \
        == ("InvalidParameter", 400)
    assert tea_error(lambda: c.create_disk(m.CreateDiskRequest(region_id=REGION, zone_id="eu-west-1a",
                                                               snapshot_id=estate["s_sys"]))) \
        == ("InvalidZoneId.NotFound", 404)
    assert tea_error(lambda: c.create_image(m.CreateImageRequest(region_id=REGION, snapshot_id=estate["s_sys"],
                                                                 image_name="golden"))) \
        == ("InvalidImageName.Duplicated", 400)
    assert old_error(lambda: old_call(server, CreateSnapshotRequest)) == ("MissingParameter", 400)
    assert old_error(lambda: old_call(server, CreateSnapshotRequest, DiskId=estate["lone"], SnapshotName="auto_x")) \
        == ("InvalidSnapshotName.Malformed", 400)
    assert old_error(lambda: old_call(server, CreateSnapshotRequest, DiskId=estate["lone"], RetentionDays=0)) \
        == ("InvalidParameter", 400)


def test_another_accounts_snapshot_is_not_found(server, estate):
    theirs = estate["s_tag"]
    assert describe(server, account="bob", snapshot_ids=json.dumps([theirs]))["TotalCount"] == 0
    assert old_error(lambda: old_call(server, DeleteSnapshotRequest, account="bob", SnapshotId=theirs)) == \
        ("InvalidSnapshotId.NotFound", 404)
    assert tea_error(lambda: tea(server, "bob").reset_disk(m.ResetDiskRequest(disk_id=estate["lone"],
                                                                               snapshot_id=theirs))) \
        == ("InvalidDiskId.NotFound", 404)
    assert tea_error(lambda: tea(server, "bob").create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION,
                                                                                 snapshot_id=theirs))) \
        == ("InvalidSnapshotId.NotFound", 404)
    # still alice's
    assert snap_ids(describe(server, snapshot_ids=json.dumps([theirs]))) == [theirs]


def test_links_usage_disks_regions_zones(server, estate):
    c = tea(server)
    links = c.describe_snapshot_links(m.DescribeSnapshotLinksRequest(
        region_id=REGION, disk_ids=json.dumps([estate["lone"], estate["data"]]))).body.to_map()
    got = {l["SourceDiskId"]: l for l in links["SnapshotLinks"]["SnapshotLink"]}
    assert set(got) == {estate["lone"], estate["data"]} and links["TotalCount"] == 2
    assert got[estate["lone"]]["SnapshotLinkId"] == "sl-" + suffix(estate["s_tag"])
    assert (got[estate["lone"]]["TotalCount"], got[estate["lone"]]["SourceDiskSize"]) == (1, 1)
    assert got[estate["data"]]["InstanceId"] == estate["iid"]
    usage = c.describe_snapshots_usage(m.DescribeSnapshotsUsageRequest(region_id=REGION)).body.to_map()
    total = describe(server, page_size=1)["TotalCount"]
    assert usage["SnapshotCount"] == total and usage["SnapshotSize"] >= 0
    disks = c.describe_disks(m.DescribeDisksRequest(region_id=REGION, instance_id=estate["iid"])).body.to_map()
    by_type = {d["Type"]: d for d in disks["Disks"]["Disk"]}
    assert set(by_type) == {"system", "data"} and by_type["system"]["Status"] == "In_use"
    assert by_type["system"]["Attachments"]["Attachment"][0]["InstanceId"] == estate["iid"]
    regions = c.describe_regions(m.DescribeRegionsRequest()).body.to_map()["Regions"]["Region"]
    assert [r["RegionId"] for r in regions] == [REGION]
    zones = c.describe_zones(m.DescribeZonesRequest(region_id=REGION)).body.to_map()["Zones"]["Zone"]
    assert [z["ZoneId"] for z in zones] == [REGION + "-a"]


def test_retention_days_release_the_point(server):
    """RetentionDays sets the point's expiry from its creation time; when that passes the server
    (or `disksnap maintain`) releases it. Days cannot pass in a test: the expiry the dialect
    stored is checked, then moved into the past in the database (meta.db or PostgreSQL)."""
    did = new_volume(server)
    keep = snapshot(server, did, snapshot_name="kept")
    short = snapshot(server, did, snapshot_name="short", retention_days=2)
    assert wait_snapshot(server, short)["RetentionDays"] == 2
    times = "SELECT create_time, expire_time FROM snapshots WHERE id = ?"
    ((create, expire),) = server.meta_sql(times, (suffix(short),))
    assert expire - create == 2 * 86400 * 1000
    # ModifySnapshotAttribute moves it (counted from creation, as ECS documents)
    old_call(server, ModifySnapshotAttributeRequest, SnapshotId=short, RetentionDays=1)
    ((create, expire),) = server.meta_sql(times, (suffix(short),))
    assert expire - create == 86400 * 1000
    server.meta_sql("UPDATE snapshots SET expire_time = 1 WHERE id = ?", (suffix(short),))
    server.cli("maintain")
    assert snap_ids(describe(server, disk_id=did)) == [keep]
    assert tea_error(lambda: tea(server).delete_snapshot(m.DeleteSnapshotRequest(snapshot_id=short))) == \
        ("InvalidSnapshotId.NotFound", 404)


def test_wrong_state_while_a_snapshot_is_progressing(server):
    """While a point of 128 MiB of fresh data is being captured, the disk takes no second
    snapshot and the point cannot be used yet."""
    did = new_volume(server)
    write_at(server.volume_path(did), 0, pattern("busy", 128 * MIB))
    c = tea(server)
    sid = c.create_snapshot(m.CreateSnapshotRequest(disk_id=did)).body.to_map()["SnapshotId"]
    assert tea_error(lambda: c.create_snapshot(m.CreateSnapshotRequest(disk_id=did))) == \
        ("IncorrectDiskStatus.CreatingSnapshot", 403)
    assert old_error(lambda: old_call(server, ResetDiskRequest, DiskId=did, SnapshotId=sid)) == \
        ("InvalidSnapshotId.NotReady", 403)
    item = describe(server, snapshot_ids=json.dumps([sid]))["Snapshots"]["Snapshot"][0]
    if item["Status"] == "progressing":
        assert item["Progress"] != "100%" and item["Available"] is False
        assert snap_ids(describe(server, disk_id=did, status="progressing")) == [sid]
    wait_snapshot(server, sid)
    assert snap_ids(describe(server, disk_id=did, status="progressing")) == []



def test_create_disk_finishes_size_description_attachment_and_tags(server, estate):
    c = tea(server)
    r = c.create_disk(m.CreateDiskRequest(
        region_id=REGION, snapshot_id=estate["s_tag"], instance_id=estate["iid"], size=2, disk_name="bigger",
        description="from the tagged point", tag=[m.CreateDiskRequestTag(key="owner", value="ops")])).body.to_map()
    did = r["DiskId"]
    deadline = time.time() + 60
    while True:
        d = disk(server, did)
        if d and d["Status"] == "In_use" and d["Size"] == 2 and d["Description"]:
            break
        assert time.time() < deadline, d
        time.sleep(0.2)
    assert (d["InstanceId"], d["DiskName"], d["Description"]) == (estate["iid"], "bigger", "from the tagged point")
    assert d["Tags"]["Tag"] == [{"TagKey": "owner", "TagValue": "ops"}]
    # DescribeDisks filters
    dd = lambda **kw: {x["DiskId"] for x in c.describe_disks(m.DescribeDisksRequest(  # noqa: E731
        region_id=REGION, **kw)).body.to_map()["Disks"]["Disk"]}
    assert dd(disk_name="bigger") == {did}
    assert did in dd(status="In_use") and did not in dd(status="Available")
    assert did in dd(disk_type="data") and did not in dd(disk_type="system")
    assert dd(tag=[m.DescribeDisksRequestTag(key="owner", value="ops")]) == {did}
    assert dd(disk_ids="[]") == set()
    # a blank disk needs a Size; a snapshot's disk cannot be smaller than the snapshot
    assert tea_error(lambda: c.create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION))) == \
        ("MissingParameter", 400)
    blank = c.create_disk(m.CreateDiskRequest(region_id=REGION, zone_id=REGION + "-b", size=3)).body.to_map()
    assert wait_disk(server, blank["DiskId"])["Size"] == 3


def test_client_token_makes_creates_idempotent(server):
    did = new_volume(server)
    first = old_call(server, CreateSnapshotRequest, DiskId=did, ClientToken="nightly-2026-11-23")["SnapshotId"]
    again = old_call(server, CreateSnapshotRequest, DiskId=did, ClientToken="nightly-2026-11-23")["SnapshotId"]
    assert first == again
    wait_snapshot(server, first)
    assert snap_ids(describe(server, disk_id=did)) == [first]
    links = tea(server).describe_snapshot_links(m.DescribeSnapshotLinksRequest(
        region_id=REGION, snapshot_link_ids=json.dumps(["sl-" + suffix(first)]), max_results=1)).body.to_map()
    assert [l["SnapshotLinkId"] for l in links["SnapshotLinks"]["SnapshotLink"]] == ["sl-" + suffix(first)]
    assert links["PageSize"] == 10  # MaxResults below 10 is raised to 10


def test_a_chain_outlives_its_deleted_full_point(server):
    did = new_volume(server)
    s1 = snapshot(server, did)
    write_at(server.volume_path(did), 0, pattern("later", MIB))
    s2 = snapshot(server, did)
    c = tea(server)
    links = lambda: c.describe_snapshot_links(m.DescribeSnapshotLinksRequest(  # noqa: E731
        region_id=REGION, disk_ids=json.dumps([did]))).body.to_map()
    c.delete_snapshot(m.DeleteSnapshotRequest(snapshot_id=s1))
    assert snap_ids(describe(server, disk_id=did)) == [s2]
    got = links()
    assert got["TotalCount"] == 1
    assert [(l["SnapshotLinkId"], l["TotalCount"]) for l in got["SnapshotLinks"]["SnapshotLink"]] == \
        [("sl-" + suffix(s1), 1)]
    assert snap_ids(describe(server, snapshot_link_id="sl-" + suffix(s1))) == [s2]
    c.delete_snapshot(m.DeleteSnapshotRequest(snapshot_id=s2))
    got = links()
    assert (got["TotalCount"], got["SnapshotLinks"]["SnapshotLink"]) == (0, [])
