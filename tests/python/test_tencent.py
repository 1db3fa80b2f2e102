"""Tencent Cloud CBS API v2 through the vendor's own SDK (qcloudapi-sdk-python 2.0.15), over TLS.

The SDK reaches disksnap through a module name it does not know plus `endpoint` (its
`snapshot`/`cbs` modules hard-code the vendor's hosts), trusts disksnap's development CA through
SSL_CERT_FILE, and returns raw response bytes (never parsed, never raising on API errors: every
error is HTTP 200 with `code` != 0). See shared/design/dialects.md §5.
"""
import json
import os
import random
import time

import pytest
from QcloudApi.qcloudapi import QcloudApi

from conftest import ACCOUNTS, Server, pattern, read_all, write_at

MIB = 1 << 20
ROLLBACK_DELAY = 4  # seconds each rollback is held, so `rollbacking` can be observed


@pytest.fixture(scope="module")
def server():
    s = Server(extra_config=f'test_rollback_delay = "{ROLLBACK_DELAY}s"')
    old = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "https_proxy", "HTTPS_PROXY")}
    os.environ["SSL_CERT_FILE"] = s.ca_file
    os.environ.pop("https_proxy", None)  # the SDK would tunnel to <host>:443 through it
    os.environ.pop("HTTPS_PROXY", None)
    yield s
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    s.stop()


def client(server, account="alice", method="GET", sign="HmacSHA256", secret_id=None, secret_key=None,
           region="gz"):
    sid, key = ACCOUNTS[account]["tencent"]
    config = {"secretId": secret_id or sid, "secretKey": secret_key or key, "method": method,
              "SignatureMethod": sign, "endpoint": f"127.0.0.1:{server.tls_port}"}
    if region:
        config["Region"] = region
    return QcloudApi("snapshotlocal", config)


def call(api, action, **params):
    raw = api.call(action, params)
    body = json.loads(raw)
    assert isinstance(body["code"], int), body
    return body


def ok(api, action, **params):
    body = call(api, action, **params)
    assert body["code"] == 0, body
    return body


def bare(id_):
    return id_.split("-", 1)[1]


def new_volume(server, account="alice", kind="data", size=1):
    v = server.cli("volume", "create", "--size-gib", str(size), "--type", kind, account=account)
    return "disk-" + bare(v["id"]), v["path"]


def wait_snapshot(api, snap, status="normal", timeout=60):
    deadline = time.time() + timeout
    while True:
        r = ok(api, "DescribeSnapshots", snapshotIds=[snap])
        if r["snapshotSet"] and r["snapshotSet"][0]["snapshotStatus"] == status:
            return r["snapshotSet"][0]
        assert time.time() < deadline, f"{snap} never became {status}: {r}"
        time.sleep(0.1)


def wait_storage(api, disk, status="normal", timeout=60):
    deadline = time.time() + timeout
    while True:
        r = ok(api, "DescribeCbsStorages", storageIds=[disk])
        if r["storageSet"] and r["storageSet"][0]["storageStatus"] == status:
            return r["storageSet"][0]
        assert time.time() < deadline, f"{disk} never became {status}: {r}"
        time.sleep(0.1)


def snapshot_of(api, disk, name="s"):
    snap = ok(api, "CreateSnapshot", storageId=disk, snapshotName=name)["snapshotId"]
    wait_snapshot(api, snap)
    return snap


def test_health_over_tls(server):
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=server.ca_file)
    body = json.loads(urllib.request.urlopen(server.tls_url + "/healthz", context=ctx, timeout=5).read())
    assert body["status"] == "ok"


def test_full_lifecycle_with_byte_checks(server):
    api = client(server)
    disk, path = new_volume(server)
    a = pattern("tencent-a", 4 * MIB)
    write_at(path, 0, a)
    write_at(path, 512 * MIB, a)

    snap = ok(api, "CreateSnapshot", storageId=disk, snapshotName="before")["snapshotId"]
    assert snap.startswith("snap-")
    item = wait_snapshot(api, snap)
    assert item == {
        "snapshotId": snap, "storageId": disk, "snapshotName": "before", "snapshotStatus": "normal",
        "projectId": 0, "percent": 100, "storageSize": 1, "createTime": item["createTime"], "diskType": "data",
    }
    time.strptime(item["createTime"], "%Y-%m-%d %H:%M:%S")
    # The disksnap CLI (and so every dialect of this account) sees the same snapshot.
    listed = server.cli("snapshot", "list", "--id", snap)
    assert [bare(s["id"]) for s in listed["snapshots"]] == [bare(snap)]

    # Names travel raw through the signature: spaces, '&', '=', '+', '%' and non-ASCII included.
    odd = "夜间 备份 a&b=c+d%20_x"
    ok(api, "ModifySnapshot", snapshotId=snap, snapshotName=odd)
    assert wait_snapshot(api, snap)["snapshotName"] == odd
    ok(client(server, method="POST"), "ModifySnapshot", snapshotId=snap, snapshotName="renamed")
    assert wait_snapshot(api, snap)["snapshotName"] == "renamed"
    unnamed = ok(api, "CreateSnapshot", storageId=disk)["snapshotId"]
    assert wait_snapshot(api, unnamed)["snapshotName"] == "未命名"
    ok(api, "DeleteSnapshot", snapshotIds=[unnamed])

    b = pattern("tencent-b", 4 * MIB)
    write_at(path, 0, b)
    write_at(path, 512 * MIB, b)

    # Roll back: `rollbacking` while it runs (held ROLLBACK_DELAY s by the test config).
    r = ok(api, "ApplySnapshot", snapshotId=snap, storageId=disk)
    assert isinstance(r["detail"]["requestId"], int) and r["detail"]["requestId"] > 0
    assert ok(api, "DescribeSnapshots", snapshotIds=[snap])["snapshotSet"][0]["snapshotStatus"] == "rollbacking"
    assert ok(api, "DescribeCbsStorages", storageIds=[disk])["storageSet"][0]["storageStatus"] == "rollback"
    busy = call(api, "ApplySnapshot", snapshotId=snap, storageId=disk)
    assert busy["code"] == 16005, busy
    busy = call(api, "CreateSnapshot", storageId=disk)
    assert busy["code"] == 16005, busy
    busy = call(api, "DeleteSnapshot", snapshotIds=[snap])
    assert busy["code"] == 5100 and busy["detail"][snap]["code"] == 16005, busy
    wait_snapshot(api, snap, "normal", timeout=60)
    wait_storage(api, disk, "normal")
    data = read_all(path)
    assert data[:4 * MIB] == a and data[512 * MIB:516 * MIB] == a

    # A new disk from the snapshot: the snapshot's bytes, at its size or larger.
    r = ok(api, "CreateCbsStorages", snapshotId=snap, zoneId=100001, payMode="prePay", storageType="cloudBasic",
           goodsNum=1, period=1)
    (copy,) = r["storageIds"]
    assert copy.startswith("disk-")
    st = wait_storage(api, copy)
    assert st["storageSize"] == 1 and st["diskType"] == "data" and st["portable"] == 1 and st["zoneId"] == 100001
    copy_path = server.volume_path(copy)
    data = read_all(copy_path)
    assert data[:4 * MIB] == a and data[512 * MIB:516 * MIB] == a and len(data) == 1 << 30
    r = ok(api, "CreateCbsStorages", snapshotId=snap, zoneId=100001, storageSize=10)
    (big,) = r["storageIds"]
    assert wait_storage(api, big)["storageSize"] == 10
    big_path = server.volume_path(big)
    assert os.path.getsize(big_path) == 10 << 30
    with open(big_path, "rb") as f:
        assert f.read(4 * MIB) == a
        f.seek(512 * MIB)
        assert f.read(4 * MIB) == a

    # Blank disks too.
    r = ok(api, "CreateCbsStorages", zoneId=100001, storageSize=20, goodsNum=2, payMode="prePay")
    assert len(r["storageIds"]) == 2
    for d in r["storageIds"]:
        assert wait_storage(api, d)["storageSize"] == 20

    # Delete: one good id, one unknown → partial success with each id's outcome.
    r = call(api, "DeleteSnapshot", snapshotIds=[snap, "snap-zzzzzzzz"])
    assert r["code"] == 5400, r
    assert r["detail"][snap] == {"code": 0, "message": "return successfully!"}
    assert r["detail"]["snap-zzzzzzzz"] == {"code": 16003, "message": "snap not exist"}
    assert ok(api, "DescribeSnapshots", snapshotIds=[snap])["totalCount"] == 0


def test_describe_snapshots_filters_and_paging(server):
    api = client(server)
    d1, _ = new_volume(server)
    d2, _ = new_volume(server)
    root, _ = new_volume(server, kind="system")
    s1 = [snapshot_of(api, d1, f"d1-{i}") for i in range(3)]
    s2 = snapshot_of(api, d2, "d2")
    sr = snapshot_of(api, root, "root")
    mine = [d1, d2, root]

    def ids(r):
        return [s["snapshotId"] for s in r["snapshotSet"]]

    r = ok(api, "DescribeSnapshots", storageIds=mine, limit=100)
    assert r["totalCount"] == 5 and sorted(ids(r)) == sorted(s1 + [s2, sr])
    # storageIds.n (0-based, as the SDK numbers lists)
    r = ok(api, "DescribeSnapshots", storageIds=[d1])
    assert r["totalCount"] == 3 and set(ids(r)) == set(s1)
    assert ids(r) == list(reversed(s1)), "newest first"
    # snapshotIds.n
    r = ok(api, "DescribeSnapshots", snapshotIds=[s1[0], s2])
    assert sorted(ids(r)) == sorted([s1[0], s2])
    # diskType
    r = ok(api, "DescribeSnapshots", storageIds=mine, diskType="root")
    assert ids(r) == [sr] and r["snapshotSet"][0]["diskType"] == "root"
    r = ok(api, "DescribeSnapshots", storageIds=mine, diskType="data")
    assert r["totalCount"] == 4 and sr not in ids(r)
    # projectId: everything is in the default project 0
    assert ok(api, "DescribeSnapshots", storageIds=mine, projectId=0)["totalCount"] == 5
    assert ok(api, "DescribeSnapshots", storageIds=mine, projectId=1001)["totalCount"] == 0
    # offset / limit
    p1 = ok(api, "DescribeSnapshots", storageIds=mine, offset=0, limit=2)
    p2 = ok(api, "DescribeSnapshots", storageIds=mine, offset=2, limit=2)
    p3 = ok(api, "DescribeSnapshots", storageIds=mine, offset=4, limit=2)
    assert [len(p["snapshotSet"]) for p in (p1, p2, p3)] == [2, 2, 1]
    assert all(p["totalCount"] == 5 for p in (p1, p2, p3))
    assert sorted(ids(p1) + ids(p2) + ids(p3)) == sorted(s1 + [s2, sr])
    assert len(ok(api, "DescribeSnapshots", limit=1)["snapshotSet"]) == 1
    assert ok(api, "DescribeSnapshots", storageIds=mine, limit=1000)["totalCount"] == 5, "clamped, not refused"
    # Default page size 20
    assert len(ok(api, "DescribeSnapshots")["snapshotSet"]) <= 20
    # Combined filters are ANDed
    r = ok(api, "DescribeSnapshots", storageIds=[d1, root], diskType="data", snapshotIds=[s1[1], sr])
    assert ids(r) == [s1[1]]
    # Region: a known alias works; POST with a form body and HmacSHA1 too
    assert ok(client(server, region="ap-guangzhou"), "DescribeSnapshots", storageIds=[d2])["totalCount"] == 1
    post = client(server, method="POST", sign="HmacSHA1", region=None)
    assert ids(ok(post, "DescribeSnapshots", storageIds=[d2])) == [s2]


def test_describe_cbs_storages_filters(server):
    api = client(server)
    d1, _ = new_volume(server, size=2)
    root, _ = new_volume(server, kind="system")
    mine = [d1, root]
    r = ok(api, "DescribeCbsStorages", storageIds=mine)
    assert r["totalCount"] == 2
    by_id = {s["storageId"]: s for s in r["storageSet"]}
    assert by_id[d1]["storageSize"] == 2 and by_id[d1]["diskType"] == "data" and by_id[d1]["portable"] == 1
    assert by_id[root]["diskType"] == "root" and by_id[root]["portable"] == 0
    for s in by_id.values():
        assert s["storageStatus"] == "normal" and s["storageType"] == "cloudBasic" and s["payMode"] == "postPay"
        assert s["zoneId"] == 100001 and s["uInstanceId"] == "" and s["attached"] == 0 and s["snapshotAbility"] == 1
        time.strptime(s["createTime"], "%Y-%m-%d %H:%M:%S")
    assert [s["storageId"] for s in ok(api, "DescribeCbsStorages", storageIds=mine, diskType="root")["storageSet"]] == [root]
    assert [s["storageId"] for s in ok(api, "DescribeCbsStorages", storageIds=mine, portable=1)["storageSet"]] == [d1]
    assert ok(api, "DescribeCbsStorages", storageIds=mine, zoneId=100001)["totalCount"] == 2
    assert ok(api, "DescribeCbsStorages", storageIds=mine, zoneId=100099)["totalCount"] == 0
    assert ok(api, "DescribeCbsStorages", storageIds=mine, storageStatus=["normal"])["totalCount"] == 2
    assert ok(api, "DescribeCbsStorages", storageIds=mine, storageStatus=["rollback"])["totalCount"] == 0
    assert ok(api, "DescribeCbsStorages", storageIds=mine, payMode="prePay")["totalCount"] == 0
    p1 = ok(api, "DescribeCbsStorages", storageIds=mine, limit=1)
    p2 = ok(api, "DescribeCbsStorages", storageIds=mine, limit=1, offset=1)
    assert p1["totalCount"] == p2["totalCount"] == 2
    assert {p1["storageSet"][0]["storageId"], p2["storageSet"][0]["storageId"]} == set(mine)
    # CreateCbsStorages refuses a root-disk snapshot
    sr = snapshot_of(api, root)
    r = call(api, "CreateCbsStorages", snapshotId=sr, zoneId=100001)
    assert r["code"] == 16007, r


def test_authentication_failures(server):
    r = call(client(server, secret_key="not-the-secret"), "DescribeSnapshots", limit=1)
    assert (r["code"], r["codeDesc"]) == (4100, "AuthFailure"), r
    r = call(client(server, secret_id="AKIDnobody000000000000000000000000"), "DescribeSnapshots")
    assert (r["code"], r["codeDesc"]) == (4104, "SecretIdNotFound"), r
    api = client(server)
    nonce = random.randint(1, 2 ** 62)
    assert call(api, "DescribeSnapshots", Nonce=nonce)["code"] == 0
    r = call(api, "DescribeSnapshots", Nonce=nonce)
    assert (r["code"], r["codeDesc"]) == (4500, "NonceUsed"), r
    # The same nonce is fine for another SecretId.
    assert call(client(server, account="bob"), "DescribeSnapshots", Nonce=nonce)["code"] == 0
    r = call(api, "DescribeSnapshots", Timestamp=int(time.time()) - 3600)
    assert (r["code"], r["codeDesc"]) == (4500, "RequestExpired"), r
    r = call(api, "DescribeSnapshots", Timestamp=int(time.time()) + 3600)
    assert r["code"] == 4500, r
    r = call(api, "RunInstances")
    assert r["code"] == 6100, r
    r = call(client(server, region="mars"), "DescribeSnapshots")
    assert r["code"] == 4000, r


def test_unknown_ids_and_bad_parameters(server):
    api = client(server)
    unknown = "snap-zzzzzzzz"
    for action, params in [
        ("ModifySnapshot", {"snapshotId": unknown, "snapshotName": "x"}),
        ("ApplySnapshot", {"snapshotId": unknown, "storageId": "disk-zzzzzzzz"}),
        ("CreateSnapshot", {"storageId": "disk-zzzzzzzz"}),
        ("CreateCbsStorages", {"snapshotId": unknown, "zoneId": 100001}),
    ]:
        r = call(api, action, **params)
        assert (r["code"], r["codeDesc"]) == (5000, "ResourceNotFound"), (action, r)
    r = call(api, "DeleteSnapshot", snapshotIds=[unknown])
    assert r["code"] == 5100 and r["detail"][unknown]["code"] == 16003, r
    for action, params in [
        ("DescribeSnapshots", {"limit": 0}),
        ("DescribeSnapshots", {"diskType": "ssd"}),
        ("DescribeSnapshots", {"snapshotIds": ["not an id"]}),
        ("CreateSnapshot", {}),
        ("ModifySnapshot", {"snapshotId": unknown}),
        ("ModifySnapshot", {"snapshotId": unknown, "snapshotName": "x" * 61}),
        ("ApplySnapshot", {"snapshotId": unknown}),
        ("DeleteSnapshot", {}),
        ("CreateCbsStorages", {"storageSize": 10}),
        ("CreateCbsStorages", {"zoneId": 100001, "storageSize": 15}),
        ("CreateCbsStorages", {"zoneId": 100001}),
    ]:
        r = call(api, action, **params)
        assert (r["code"], r["codeDesc"]) == (9003, "InvalidParameter"), (action, params, r)
        assert r["message"], r
    # ApplySnapshot rolls a disk back only to its own snapshots.
    d1, _ = new_volume(server)
    d2, _ = new_volume(server)
    snap = snapshot_of(api, d1)
    r = call(api, "ApplySnapshot", snapshotId=snap, storageId=d2)
    assert r["code"] == 9003 and d1 in r["message"], r


def test_another_accounts_snapshot_is_not_found(server):
    alice, bob = client(server), client(server, account="bob")
    disk, _ = new_volume(server)
    snap = snapshot_of(alice, disk)
    assert ok(bob, "DescribeSnapshots", snapshotIds=[snap])["totalCount"] == 0
    assert ok(bob, "DescribeCbsStorages", storageIds=[disk])["totalCount"] == 0
    for action, params in [
        ("ModifySnapshot", {"snapshotId": snap, "snapshotName": "mine"}),
        ("ApplySnapshot", {"snapshotId": snap, "storageId": disk}),
        ("CreateSnapshot", {"storageId": disk}),
        ("CreateCbsStorages", {"snapshotId": snap, "zoneId": 100001}),
    ]:
        r = call(bob, action, **params)
        assert r["code"] == 5000, (action, r)
    r = call(bob, "DeleteSnapshot", snapshotIds=[snap])
    assert r["code"] == 5100 and r["detail"][snap]["code"] == 16003, r
    # Untouched for alice.
    assert wait_snapshot(alice, snap)["snapshotName"] == "s"


def qingcloud_describe_snapshots(server, snapshot_ids, account="alice"):
    """DescribeSnapshots through the QingCloud dialect, signed by hand (dialects.md §2.3) so this
    suite needs no second SDK. Returns None when this build does not serve /iaas/ yet."""
    import base64
    import hashlib
    import hmac
    import urllib.error
    import urllib.parse
    import urllib.request
    key_id, secret = ACCOUNTS[account]["qingcloud"]
    params = {"action": "DescribeSnapshots", "zone": "pek3a", "access_key_id": key_id,
              "signature_method": "HmacSHA256", "signature_version": "1", "version": "1",
              "time_stamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for i, s in enumerate(snapshot_ids, 1):
        params[f"snapshots.{i}"] = s
    qs = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                  for k, v in sorted(params.items()))
    sig = base64.b64encode(hmac.new(secret.encode(), f"GET\n/iaas/\n{qs}".encode(), hashlib.sha256).digest())
    url = f"{server.url}/iaas/?{qs}&signature={urllib.parse.quote_plus(sig.decode())}"
    try:
        return json.loads(urllib.request.urlopen(url, timeout=10).read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def test_same_snapshot_through_qingcloud(server):
    """One snapshot, one account: listed by Tencent (`snap-…`), the disksnap CLI and QingCloud
    (`ss-…`), all with the same id suffix."""
    api = client(server)
    disk, _ = new_volume(server)
    snap = snapshot_of(api, disk, "cross")
    cli = server.cli("snapshot", "list", "--id", snap)
    assert [s["id"] for s in cli["snapshots"]] == ["ss-" + bare(snap)]
    assert cli["snapshots"][0]["name"] == "cross"
    # Tencent accepts the QingCloud rendering of the id too.
    r = ok(api, "DescribeSnapshots", snapshotIds=["ss-" + bare(snap)])
    assert [s["snapshotId"] for s in r["snapshotSet"]] == [snap]
    qc = qingcloud_describe_snapshots(server, ["ss-" + bare(snap)])
    if qc is None:
        pytest.skip("this build does not serve the QingCloud dialect (/iaas/) yet")
    assert qc["ret_code"] == 0, qc
    assert [s["snapshot_id"] for s in qc["snapshot_set"]] == ["ss-" + bare(snap)]
    assert qc["snapshot_set"][0]["snapshot_name"] == "cross"
