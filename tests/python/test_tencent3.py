"""Tencent Cloud API 3.0 for CBS (2017-03-12) through the vendor's own SDK
(tencentcloud-sdk-python-cbs, typed models) and CLI (tccli), over HTTPS and HTTP.

The SDK reaches disksnap through `HttpProfile(endpoint="127.0.0.1:<port>")` (in place of
cbs.tencentcloudapi.com) and trusts disksnap's development CA through `certification`; tccli
takes `--endpoint` (used as given) and, over HTTPS, trusts certifi's bundle only, so the tccli
test appends the development CA to that bundle in the suite's own venv.
"""
import json
import os
import subprocess
import sys
import time
import types

import pytest
from tencentcloud.cbs.v20170312 import cbs_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
import tencentcloud.common.abstract_client as abstract_client

from conftest import ACCOUNTS, Server, pattern, read_all, write_at

MIB = 1 << 20
GIB = 1 << 30
REGION = "ap-guangzhou"  # an alias of the test config's zone pek3a


@pytest.fixture(scope="module")
def server():
    s = Server(extra_config='test_rollback_delay = "2s"')
    saved = {k: os.environ.pop(k, None) for k in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")}
    yield s
    for k, v in saved.items():
        if v is not None:
            os.environ[k] = v
    s.stop()


def client(server, account="alice", tls=True, method="POST", sign="TC3-HMAC-SHA256", secret_id=None,
           secret_key=None, token=None, region=REGION):
    sid, key = ACCOUNTS[account]["tencent"]
    port = server.tls_port if tls else server.port
    hp = HttpProfile(protocol="https" if tls else "http", endpoint=f"127.0.0.1:{port}", reqMethod=method,
                     certification=server.ca_file if tls else None)
    cp = ClientProfile(httpProfile=hp, signMethod=sign)
    return cbs_client.CbsClient(credential.Credential(secret_id or sid, secret_key or key, token), region, cp)


def call(c, action, **params):
    """One action through the SDK's typed request and response models; the response as a dict."""
    req = getattr(models, action + "Request")()
    req.from_json_string(json.dumps(params))
    resp = getattr(c, action)(req)
    return json.loads(resp.to_json_string())


def error(c, action, **params):
    with pytest.raises(TencentCloudSDKException) as e:
        call(c, action, **params)
    assert e.value.requestId, "every error carries the RequestId"
    return e.value.code


def wait(fn, pred, what, timeout=60):
    deadline = time.time() + timeout
    while True:
        r = fn()
        if pred(r):
            return r
        assert time.time() < deadline, f"{what}: {r}"
        time.sleep(0.1)


def disk_of(c, disk):
    r = call(c, "DescribeDisks", DiskIds=[disk])
    return r["DiskSet"][0] if r["DiskSet"] else None


def wait_disk(c, disk, state="UNATTACHED", size=None):
    return wait(lambda: disk_of(c, disk), lambda d: d and d["DiskState"] == state and (size is None or d["DiskSize"] == size),
                f"{disk} never became {state}")


def snap_of(c, snap):
    r = call(c, "DescribeSnapshots", SnapshotIds=[snap])
    return r["SnapshotSet"][0] if r["SnapshotSet"] else None


def wait_snap(c, snap, state="NORMAL"):
    return wait(lambda: snap_of(c, snap), lambda s: s and s["SnapshotState"] == state, f"{snap} never became {state}")


def new_disk(c, size=1, name="data", **extra):
    r = call(c, "CreateDisks", Placement={"Zone": "pek3a"}, DiskChargeType="POSTPAID_BY_HOUR",
             DiskType="CLOUD_PREMIUM", DiskSize=size, DiskName=name, **extra)
    (disk,) = r["DiskIdSet"]
    assert disk.startswith("disk-")
    wait_disk(c, disk)
    return disk


def snapshot(c, disk, name, **extra):
    snap = call(c, "CreateSnapshot", DiskId=disk, SnapshotName=name, **extra)["SnapshotId"]
    assert snap.startswith("snap-")
    return wait_snap(c, snap)


@pytest.mark.parametrize("tls", [True, False], ids=["https", "http"])
def test_whole_lifecycle(server, tls):
    c = client(server, tls=tls)
    disk = new_disk(c, name=f"lifecycle-{tls}")
    path = server.volume_path(disk)
    a = pattern(f"tencent3-a-{tls}", 4 * MIB)
    write_at(path, 0, a)
    write_at(path, 512 * MIB, a)

    s1 = snapshot(c, disk, "before", Tags=[{"Key": "env", "Value": f"t{tls}"}])
    # Every documented field with its documented type.
    assert s1["DiskId"] == disk and s1["SnapshotName"] == "before" and s1["SnapshotState"] == "NORMAL"
    assert s1["Percent"] == 100 and s1["DiskSize"] == 1 and s1["DiskUsage"] == "DATA_DISK"
    assert s1["Placement"]["Zone"] == "pek3a" and s1["Placement"]["ProjectId"] == 0
    assert s1["IsPermanent"] is True and s1["DeadlineTime"] is None and s1["Encrypt"] is False
    assert s1["Tags"] == [{"Key": "env", "Value": f"t{tls}"}]
    assert s1["SnapshotType"] == "PRIVATE_SNAPSHOT" and s1["ImageCount"] == 0 and s1["CopyFromRemote"] is False
    time.strptime(s1["CreateTime"], "%Y-%m-%d %H:%M:%S")
    # The same snapshot, same id, in the disksnap CLI (and so in API v2 and every other dialect).
    listed = server.cli("snapshot", "list", "--id", s1["SnapshotId"])
    assert [x["id"].split("-", 1)[1] for x in listed["snapshots"]] == [s1["SnapshotId"].split("-", 1)[1]]

    b = pattern(f"tencent3-b-{tls}", 4 * MIB)
    write_at(path, 0, b)
    s2 = snapshot(c, disk, "middle")
    s3 = snapshot(c, disk, "after")
    ids = [s1["SnapshotId"], s2["SnapshotId"], s3["SnapshotId"]]

    def listing(**params):
        r = call(c, "DescribeSnapshots", **params)
        return r["TotalCount"], [s["SnapshotId"] for s in r["SnapshotSet"]]

    by_disk = {"Name": "disk-id", "Values": [disk]}
    assert listing(Filters=[by_disk], Order="ASC") == (3, ids)
    assert listing(Filters=[by_disk]) == (3, ids[::-1])  # newest first by default
    for f, want in [
        ({"Name": "snapshot-id", "Values": [ids[1]]}, [ids[1]]),
        ({"Name": "snapshot-name", "Values": ["before", "after"]}, [ids[0], ids[2]]),
        ({"Name": "snapshot-state", "Values": ["NORMAL"]}, ids),
        ({"Name": "snapshot-state", "Values": ["CREATING"]}, []),
        ({"Name": "disk-usage", "Values": ["DATA_DISK"]}, ids),
        ({"Name": "disk-usage", "Values": ["SYSTEM_DISK"]}, []),
        ({"Name": "project-id", "Values": ["0"]}, ids),
        ({"Name": "project-id", "Values": ["7"]}, []),
        ({"Name": "zone", "Values": ["pek3a"]}, ids),
        ({"Name": "encrypt", "Values": ["FALSE"]}, ids),
        ({"Name": "encrypt", "Values": ["TRUE"]}, []),
        ({"Name": "tag-key", "Values": ["env"]}, [ids[0]]),
        ({"Name": "tag-value", "Values": [f"t{tls}"]}, [ids[0]]),
        ({"Name": "tag:env", "Values": [f"t{tls}"]}, [ids[0]]),
        ({"Name": "tag:env", "Values": ["other"]}, []),
    ]:
        assert listing(Filters=[by_disk, f], Order="ASC") == (len(want), want), f
    pages = [listing(Filters=[by_disk], Order="ASC", OrderField="CREATE_TIME", Offset=i, Limit=1) for i in range(4)]
    assert pages == [(3, [ids[0]]), (3, [ids[1]]), (3, [ids[2]]), (3, [])]
    assert listing(SnapshotIds=ids[:2], Order="ASC") == (2, ids[:2])

    # Apply: the disk holds the first snapshot's bytes again.
    call(c, "ApplySnapshot", SnapshotId=ids[0], DiskId=disk)
    wait_disk(c, disk)
    wait_snap(c, ids[0])
    assert read_all(path)[:4 * MIB] == a

    # A disk from the snapshot holds the same bytes; then it grows.
    copy = call(c, "CreateDisks", Placement={"Zone": "pek3a"}, DiskChargeType="POSTPAID_BY_HOUR",
                DiskType="CLOUD_PREMIUM", SnapshotId=ids[0], DiskName="copy")["DiskIdSet"][0]
    d = wait_disk(c, copy)
    assert d["DiskSize"] == 1 and d["DiskUsage"] == "DATA_DISK" and d["Portable"] is True
    copy_bytes = read_all(server.volume_path(copy))
    assert copy_bytes[:4 * MIB] == a and copy_bytes[512 * MIB:512 * MIB + 4 * MIB] == a
    call(c, "ResizeDisk", DiskId=copy, DiskSize=2)
    wait_disk(c, copy, size=2)
    assert os.path.getsize(server.volume_path(copy)) == 2 * GIB

    call(c, "ModifySnapshotAttribute", SnapshotId=ids[1], SnapshotName="renamed")
    assert snap_of(c, ids[1])["SnapshotName"] == "renamed"
    call(c, "ModifySnapshotAttribute", SnapshotId=ids[1], IsPermanent=False, Deadline="2099-01-01T00:00:00+00:00")
    assert snap_of(c, ids[1])["IsPermanent"] is False
    call(c, "ModifyDiskAttributes", DiskIds=[copy], DiskName="copy-2")
    assert disk_of(c, copy)["DiskName"] == "copy-2"
    overview = call(c, "DescribeSnapshotOverview")
    assert overview["TotalNums"] >= 3 and isinstance(overview["TotalSize"], float)

    # Attach to an instance (made with the disksnap CLI: no API creates one), then detach.
    inst = "ins-" + server.cli("instance", "create", "--name", f"vm-{tls}")["id"].split("-", 1)[1]
    call(c, "AttachDisks", InstanceId=inst, DiskIds=[copy])
    d = disk_of(c, copy)
    assert (d["DiskState"], d["Attached"], d["InstanceId"]) == ("ATTACHED", True, inst)
    r = call(c, "DescribeDisks", Filters=[{"Name": "instance-id", "Values": [inst]}])
    assert [x["DiskId"] for x in r["DiskSet"]] == [copy]
    assert error(c, "TerminateDisks", DiskIds=[copy]) == "ResourceInUse"
    call(c, "DetachDisks", DiskIds=[copy], InstanceId=inst)
    assert disk_of(c, copy)["DiskState"] == "UNATTACHED"
    # The same body as the TerminateDisks above: in the same second its signature would be the
    # same (X-TC-Action is not signed) and refused as a replay.
    time.sleep(1.1)
    assert error(c, "DetachDisks", DiskIds=[copy]) == "UnsupportedOperation.StateError"
    assert disk_of(c, disk)["SnapshotCount"] == 3

    call(c, "DeleteSnapshots", SnapshotIds=ids[1:])
    assert listing(Filters=[by_disk])[0] == 1
    call(c, "TerminateDisks", DiskIds=[disk, copy])
    wait(lambda: call(c, "DescribeDisks", DiskIds=[disk, copy])["TotalCount"], lambda n: n == 0, "disks not terminated")


def test_describe_disks_filters_and_paging(server):
    c = client(server)
    d1 = new_disk(c, name="f-one", Tags=[{"Key": "team", "Value": "red"}])
    d2 = new_disk(c, name="f-two")
    mine = {"Name": "disk-id", "Values": [d1, d2]}

    def listing(*filters, **params):
        r = call(c, "DescribeDisks", Filters=[mine, *filters], Order="ASC", **params)
        return r["TotalCount"], [d["DiskId"] for d in r["DiskSet"]]

    assert listing() == (2, [d1, d2])
    assert listing(Limit=1, Offset=1) == (2, [d2])
    assert listing({"Name": "disk-name", "Values": ["f-two"]}) == (1, [d2])
    assert listing({"Name": "disk-state", "Values": ["UNATTACHED"]}) == (2, [d1, d2])
    assert listing({"Name": "disk-usage", "Values": ["SYSTEM_DISK"]}) == (0, [])
    assert listing({"Name": "portable", "Values": ["TRUE"]}) == (2, [d1, d2])
    assert listing({"Name": "disk-charge-type", "Values": ["PREPAID"]}) == (0, [])
    assert listing({"Name": "zone", "Values": ["pek3a"]}) == (2, [d1, d2])
    assert listing({"Name": "tag:team", "Values": ["red"]}) == (1, [d1])
    assert listing({"Name": "tag-key", "Values": ["team"]}) == (1, [d1])
    call(c, "TerminateDisks", DiskIds=[d1, d2])


def test_v1_signature_forms(server):
    """HmacSHA1 / HmacSHA256 (SignatureMethod) in a GET query or a POST form, on both listeners."""
    for tls, method, sign in [(True, "GET", "HmacSHA256"), (False, "POST", "HmacSHA1"), (True, "POST", "HmacSHA1")]:
        c = client(server, tls=tls, method=method, sign=sign)
        assert call(c, "DescribeSnapshots", Limit=1)["TotalCount"] >= 0
        assert error(client(server, tls=tls, method=method, sign=sign, secret_key="wrong"),
                     "DescribeSnapshots") == "AuthFailure.SignatureFailure"
    # TC3 in a GET query, too.
    c = client(server, tls=False, method="GET")
    assert call(c, "DescribeDisks", Filters=[{"Name": "zone", "Values": ["pek3a"]}], Limit=5)["TotalCount"] >= 0


def captured(c):
    """Make the client keep the last request it sent, to send it again byte for byte."""
    sent = []
    real = c.request.send_request

    def send(req):
        sent.append(req)
        return real(req)
    c.request.send_request = send
    return sent, real


def test_authentication_failures(server):
    c = client(server)
    assert error(client(server, secret_key="wrong-key"), "DescribeSnapshots") == "AuthFailure.SignatureFailure"
    assert error(client(server, secret_id="AKIDnobody000000000000000000000000"),
                 "DescribeSnapshots") == "AuthFailure.SecretIdNotFound"
    assert error(client(server, token="temporary"), "DescribeSnapshots") == "AuthFailure.TokenFailure"
    assert error(client(server, region="mars-1"), "DescribeSnapshots") == "UnsupportedRegion"

    # A client clock an hour behind: the signature is right, the timestamp outside the window.
    real_time = abstract_client.time
    abstract_client.time = types.SimpleNamespace(time=lambda: real_time.time() - 3600, sleep=real_time.sleep)
    try:
        assert error(c, "DescribeSnapshots") == "AuthFailure.SignatureExpire"
        assert error(client(server, sign="HmacSHA256"), "DescribeSnapshots") == "AuthFailure.SignatureExpire"
    finally:
        abstract_client.time = real_time

    # Replays: the same signed request again is refused (TC3: a changing action; v1: any, by Nonce).
    disk = new_disk(c, name="replay")
    snap = snapshot(c, disk, "r")["SnapshotId"]
    for signer in (c, client(server, sign="HmacSHA1")):
        sent, real = captured(signer)
        call(signer, "ModifySnapshotAttribute", SnapshotId=snap, SnapshotName="once")
        again = json.loads(real(sent[-1]).content)
        assert again["Response"]["Error"]["Code"] == "LimitExceeded.ReplayAttack", again
    call(c, "TerminateDisks", DiskIds=[disk])


def test_unknown_ids_other_accounts_and_bad_parameters(server):
    alice, bob = client(server), client(server, account="bob")
    disk = new_disk(alice, name="private")
    snap = snapshot(alice, disk, "private")["SnapshotId"]
    # Another account's resources do not exist for bob.
    assert call(bob, "DescribeSnapshots", SnapshotIds=[snap])["TotalCount"] == 0
    assert call(bob, "DescribeDisks", DiskIds=[disk])["TotalCount"] == 0
    assert error(bob, "ModifySnapshotAttribute", SnapshotId=snap, SnapshotName="x") == "InvalidSnapshotId.NotFound"
    assert error(bob, "DeleteSnapshots", SnapshotIds=[snap]) == "InvalidSnapshotId.NotFound"
    assert error(bob, "ResizeDisk", DiskId=disk, DiskSize=5) == "InvalidDiskId.NotFound"
    assert error(bob, "TerminateDisks", DiskIds=[disk]) == "InvalidDiskId.NotFound"
    assert error(bob, "CreateSnapshot", DiskId=disk) == "InvalidDiskId.NotFound"
    assert error(bob, "CreateDisks", Placement={"Zone": "pek3a"}, DiskChargeType="POSTPAID_BY_HOUR",
                 DiskType="CLOUD_PREMIUM", SnapshotId=snap) == "InvalidSnapshotId.NotFound"
    # Unknown ids.
    assert error(alice, "ApplySnapshot", SnapshotId="snap-zzzzzzzz", DiskId=disk) == "InvalidSnapshotId.NotFound"
    assert error(alice, "ResizeDisk", DiskId="disk-zzzzzzzz", DiskSize=5) == "InvalidDiskId.NotFound"
    assert error(alice, "AttachDisks", InstanceId="ins-zzzzzzzz", DiskIds=[disk]) == "InvalidInstanceId.NotFound"
    assert error(alice, "ResizeDisk", DiskId="not an id", DiskSize=5) == "InvalidParameterValue"
    # Bad parameters.
    assert error(alice, "DescribeSnapshots", Limit=101) == "InvalidParameterValue.LimitExceeded"
    assert error(alice, "DescribeSnapshots", Filters=[{"Name": "colour", "Values": ["red"]}]) == "InvalidFilter"
    assert error(alice, "DescribeSnapshots", SnapshotIds=[snap],
                 Filters=[{"Name": "disk-id", "Values": [disk]}]) == "InvalidParameter"
    assert error(alice, "DescribeSnapshots", Order="UP") == "InvalidParameterValue"
    assert error(alice, "CreateSnapshot") == "MissingParameter"
    assert error(alice, "CreateDisks", Placement={"Zone": "pek3a"}, DiskChargeType="PREPAID",
                 DiskType="CLOUD_PREMIUM", DiskSize=10) == "UnsupportedOperation"
    assert error(alice, "ResizeDisk", DiskId=disk, DiskSize=1) == "InvalidParameterValue"  # cannot shrink
    other = new_disk(alice, name="other")
    assert error(alice, "ApplySnapshot", SnapshotId=snap, DiskId=other) == "InvalidParameterValue"
    call(alice, "TerminateDisks", DiskIds=[disk, other], DeleteSnapshot=1)
    assert call(alice, "DescribeSnapshots", SnapshotIds=[snap])["TotalCount"] == 0


def trust_dev_ca_for_tccli(server):
    """tccli verifies HTTPS against certifi's bundle and has no option for another CA, so a
    private endpoint's CA goes into that bundle: what an operator of a private cloud does for
    tccli (this venv is the test's own)."""
    import certifi
    bundle = certifi.where()
    with open(server.ca_file) as f:
        ca = f.read()
    with open(bundle) as f:
        known = ca.strip() in f.read()
    if not known:
        with open(bundle, "a") as f:
            f.write("\n# disksnap test development CA\n" + ca)


def tccli(server, *args, env_keys=False, account="alice", tls=False):
    sid, key = ACCOUNTS[account]["tencent"]
    env = dict(os.environ, HOME=server.dir)
    if tls:
        trust_dev_ca_for_tccli(server)
    endpoint = server.tls_url if tls else f"http://127.0.0.1:{server.port}"
    cmd = [os.path.join(os.path.dirname(sys.executable), "tccli"), "cbs", *args, "--region", REGION,
           "--endpoint", endpoint]
    if env_keys:
        env.update(TENCENTCLOUD_SECRET_ID=sid, TENCENTCLOUD_SECRET_KEY=key)
    else:
        cmd += ["--secretId", sid, "--secretKey", key]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    return r


def test_tccli(server):
    c = client(server)
    disk = new_disk(c, name="cli")
    r = tccli(server, "CreateSnapshot", "--DiskId", disk, "--SnapshotName", "from-cli")
    assert r.returncode == 0, r.stderr + r.stdout
    snap = json.loads(r.stdout)["SnapshotId"]
    wait_snap(c, snap)
    r = tccli(server, "DescribeSnapshots", "--Filters", json.dumps([{"Name": "disk-id", "Values": [disk]}]),
              env_keys=True)
    assert r.returncode == 0, r.stderr + r.stdout
    out = json.loads(r.stdout)
    assert out["TotalCount"] == 1 and out["SnapshotSet"][0]["SnapshotName"] == "from-cli"
    # An error reaches the CLI user with its code.
    r = tccli(server, "DescribeSnapshots", "--SnapshotIds", '["snap-zzzzzzzz"]', account="bob")
    assert r.returncode == 0 and json.loads(r.stdout)["TotalCount"] == 0
    r = tccli(server, "ResizeDisk", "--DiskId", disk, "--DiskSize", "5", account="bob")
    assert r.returncode != 0 and "InvalidDiskId.NotFound" in (r.stdout + r.stderr)
    # The same CLI over HTTPS.
    r = tccli(server, "DescribeSnapshots", "--SnapshotIds", json.dumps([snap]), tls=True)
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads(r.stdout)["SnapshotSet"][0]["SnapshotId"] == snap
    r = tccli(server, "ModifySnapshotAttribute", "--SnapshotId", snap, "--SnapshotName", "renamed-over-tls", tls=True)
    assert r.returncode == 0, r.stderr + r.stdout
    assert call(c, "DescribeSnapshots", SnapshotIds=[snap])["SnapshotSet"][0]["SnapshotName"] == "renamed-over-tls"
    call(c, "TerminateDisks", DiskIds=[disk], DeleteSnapshot=1)
