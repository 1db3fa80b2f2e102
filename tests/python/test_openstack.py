"""OpenStack Cinder / Keystone / Huawei EVS through the vendors' own clients: the openstack CLI,
openstacksdk, python-cinderclient (with keystoneauth1 password auth against disksnap's built-in
Keystone) and huaweicloudsdkevs (AK/SK, SDK-HMAC-SHA256). Bytes are checked through the raw
volume files after a revert, a rollback and a volume made from a snapshot."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ACCOUNTS, Server, pattern, read_all, write_at

from cinderclient import client as cinder_client
from cinderclient import exceptions as cinder_exc
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from keystoneauth1.identity import v3
import openstack
from openstack import exceptions as sdk_exc

MIB = 1 << 20
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
BIN_DIR = os.path.dirname(sys.executable)


def bare(uuid):
    """The internal id behind a Cinder UUID (dialect-openstack.md §1), for the disksnap CLI."""
    n = int(uuid.split("-")[-1], 16)
    out = ""
    for _ in range(8):
        n, r = divmod(n, 36)
        out = ALPHABET[r] + out
    return out


def password_auth(server, who="alice", password=None):
    pid, pname, user, pw = ACCOUNTS[who]["openstack"]
    return v3.Password(auth_url=f"{server.url}/identity/v3", username=user, password=password or pw,
                       project_name=pname, user_domain_name="Default", project_domain_name="Default")


def cinder(server, who="alice", version="3.65", password=None):
    sess = ks_session.Session(auth=password_auth(server, who, password))
    return cinder_client.Client(version, session=sess)


def sdk(server, who="alice"):
    pid, pname, user, pw = ACCOUNTS[who]["openstack"]
    return openstack.connect(auth_url=f"{server.url}/identity/v3", username=user, password=pw, project_name=pname,
                             user_domain_name="Default", project_domain_name="Default", region_name="RegionOne")


def wait_status(get, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        obj = get()
        if obj.status == want:
            return obj
        assert obj.status not in ("error",), obj
        assert time.time() < deadline, f"still {obj.status}, wanted {want}"
        time.sleep(0.2)


def wait_gone(get, exc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            get()
        except exc:
            return
        time.sleep(0.2)
    raise AssertionError("still there")


@pytest.fixture(scope="module")
def clouds(server, tmp_path_factory):
    d = tmp_path_factory.mktemp("os")
    pid, pname, user, pw = ACCOUNTS["alice"]["openstack"]
    path = d / "clouds.yaml"
    path.write_text(f"""clouds:
  disksnap:
    auth_type: password
    auth: {{auth_url: {server.url}/identity/v3, username: {user}, password: {pw}, project_name: {pname},
           user_domain_name: Default, project_domain_name: Default}}
    region_name: RegionOne
    interface: public
""")
    return str(path)


def osc(clouds, *args, version=None, check=True):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds, OS_CLOUD="disksnap")
    cmd = [os.path.join(BIN_DIR, "openstack")]
    if version:
        cmd += ["--os-volume-api-version", version]
    r = subprocess.run(cmd + list(args), env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
    if r.stdout.strip().startswith(("{", "[")):
        return json.loads(r.stdout)
    return r


def test_openstack_cli_volume_and_snapshot_commands(server, clouds):
    vol = osc(clouds, "volume", "create", "--size", "1", "cli-vol", "-f", "json")
    assert vol["size"] == 1 and vol["name"] == "cli-vol"
    assert vol["id"].startswith("d15c0001-")
    c = cinder(server)
    wait_status(lambda: c.volumes.get(vol["id"]), "available")
    path = server.volume_path(bare(vol["id"]))
    first = pattern("cli-1", 4 * MIB)
    write_at(path, 0, first)

    snap = osc(clouds, "volume", "snapshot", "create", "--volume", "cli-vol", "--description", "one", "cli-snap",
               "-f", "json")
    assert snap["status"] == "creating" and snap["volume_id"] == vol["id"]
    wait_status(lambda: c.volume_snapshots.get(snap["id"]), "available")

    listed = osc(clouds, "volume", "snapshot", "list", "-f", "json")
    assert [s["ID"] for s in listed] == [snap["id"]]
    assert listed[0]["Status"] == "available"
    shown = osc(clouds, "volume", "snapshot", "show", "cli-snap", "-f", "json")
    assert shown["description"] == "one" and shown["size"] == 1

    osc(clouds, "volume", "snapshot", "set", "--name", "cli-snap2", "--description", "two", "--property", "k=v",
        "cli-snap")
    shown = osc(clouds, "volume", "snapshot", "show", snap["id"], "-f", "json")
    assert shown["name"] == "cli-snap2" and shown["description"] == "two" and shown["properties"] == {"k": "v"}

    # Overwrite the volume; a volume made from the snapshot has the first bytes.
    write_at(path, 0, pattern("cli-2", 4 * MIB))
    restored = osc(clouds, "volume", "create", "--snapshot", "cli-snap2", "cli-restored", "-f", "json")
    assert restored["snapshot_id"] == snap["id"]
    wait_status(lambda: c.volumes.get(restored["id"]), "available")
    data = read_all(server.volume_path(bare(restored["id"])))
    assert len(data) == 1 << 30 and data[:4 * MIB] == first

    # Revert (microversion 3.40) brings the first bytes back in place.
    osc(clouds, "volume", "revert", "cli-snap2", version="3.40")
    wait_status(lambda: c.volumes.get(vol["id"]), "available")
    wait_status(lambda: c.volume_snapshots.get(snap["id"]), "available")
    assert read_all(path)[:4 * MIB] == first

    osc(clouds, "volume", "snapshot", "delete", "cli-snap2")
    wait_gone(lambda: c.volume_snapshots.get(snap["id"]), cinder_exc.NotFound)
    assert osc(clouds, "volume", "snapshot", "list", "-f", "json") == []
    r = osc(clouds, "volume", "snapshot", "show", "no-such-snap", check=False)
    assert r.returncode != 0
    for v in (vol, restored):
        osc(clouds, "volume", "delete", v["id"])
        wait_gone(lambda: c.volumes.get(v["id"]), cinder_exc.NotFound)


@pytest.fixture(scope="module")
def five(server):
    """A volume with five snapshots (names s0..s4, s0 oldest), via cinderclient."""
    c = cinder(server)
    vol = c.volumes.create(1, name="five")
    wait_status(lambda: c.volumes.get(vol.id), "available")
    snaps = []
    for i in range(5):
        s = c.volume_snapshots.create(vol.id, name=f"s{i}", metadata={"i": str(i)})
        wait_status(lambda: c.volume_snapshots.get(s.id), "available")
        snaps.append(s)
        time.sleep(0.01)
    yield vol, snaps
    for s in snaps:
        try:
            c.volume_snapshots.delete(s.id)
        except cinder_exc.ClientException:
            pass


def test_cinderclient_list_with_search_opts_limit_marker(server, five):
    vol, snaps = five
    c = cinder(server)
    newest_first = [s.id for s in reversed(snaps)]
    got = c.volume_snapshots.list(detailed=True, search_opts={"volume_id": vol.id, "status": "available"})
    assert [s.id for s in got] == newest_first
    assert got[0]._info["os-extended-snapshot-attributes:project_id"] == ACCOUNTS["alice"]["openstack"][0]
    assert got[0]._info["os-extended-snapshot-attributes:progress"] == "100%"
    assert got[0].consumes_quota is True  # 3.65
    page = c.volume_snapshots.list(detailed=True, limit=2)
    assert [s.id for s in page] == newest_first[:2]
    after = c.volume_snapshots.list(detailed=True, limit=2, marker=page[-1].id)
    assert [s.id for s in after] == newest_first[2:4]
    assert [s.name for s in c.volume_snapshots.list(search_opts={"name": "s3"})] == ["s3"]
    asc = c.volume_snapshots.list(detailed=False, sort="name:asc")
    assert [s.name for s in asc] == ["s0", "s1", "s2", "s3", "s4"]
    assert "os-extended-snapshot-attributes:progress" not in asc[0]._info
    # Offset (EVS) after the marker.
    raw = c.client.get(f"/snapshots/detail?limit=2&offset=1")[1]
    assert [s["id"] for s in raw["snapshots"]] == newest_first[1:3]
    assert "marker=" in raw["snapshots_links"][0]["href"]
    with pytest.raises(cinder_exc.BadRequest) as e:
        c.volume_snapshots.list(search_opts={"bogus": "1"})
    assert e.value.code == 400
    with pytest.raises(cinder_exc.NotFound):
        c.volume_snapshots.list(marker="d15c0002-0000-4000-8000-000000000001")
    with pytest.raises(cinder_exc.BadRequest):
        c.client.get("/snapshots?sort=bogus:asc")


def test_cinderclient_metadata(server, five):
    _, snaps = five
    c = cinder(server)
    s = snaps[0]
    assert c.volume_snapshots.get(s.id).metadata == {"i": "0"}
    c.volume_snapshots.set_metadata(s, {"a": "1", "b": "2"})
    assert c.volume_snapshots.get(s.id).metadata == {"i": "0", "a": "1", "b": "2"}
    c.volume_snapshots.delete_metadata(s, ["a"])
    assert c.volume_snapshots.get(s.id).metadata == {"i": "0", "b": "2"}
    c.volume_snapshots.update_all_metadata(s, {"only": "x"})
    assert c.volume_snapshots.get(s.id).metadata == {"only": "x"}
    raw = c.client.get(f"/snapshots/{s.id}/metadata/only")[1]
    assert raw == {"meta": {"only": "x"}}
    with pytest.raises(cinder_exc.NotFound):
        c.client.get(f"/snapshots/{s.id}/metadata/nope")
    with pytest.raises(cinder_exc.BadRequest):
        c.volume_snapshots.set_metadata(s, {"__system__enableActive": "true"})


def test_openstacksdk_pages_through_snapshots(server, five):
    _, snaps = five
    conn = sdk(server)
    got = [s.id for s in conn.block_storage.snapshots(limit=2)]
    assert got == [s.id for s in reversed(snaps)]
    one = conn.block_storage.get_snapshot(snaps[1].id)
    assert one.name == "s1" and one.status == "available"
    with pytest.raises(sdk_exc.ResourceNotFound):
        conn.block_storage.get_snapshot("d15c0002-0000-4000-8000-0000000000aa")
    conn.close()


def test_cinderclient_revert_and_volume_from_snapshot_bytes(server):
    c = cinder(server, version="3.40")
    vol = c.volumes.create(1, name="rev")
    wait_status(lambda: c.volumes.get(vol.id), "available")
    path = server.volume_path(bare(vol.id))
    a, b, cbytes = pattern("rev-a", 3 * MIB), pattern("rev-b", 3 * MIB), pattern("rev-c", 3 * MIB)
    write_at(path, 5 * MIB, a)
    s1 = c.volume_snapshots.create(vol.id, name="one")
    wait_status(lambda: c.volume_snapshots.get(s1.id), "available")
    write_at(path, 5 * MIB, b)
    s2 = c.volume_snapshots.create(vol.id, name="two")
    wait_status(lambda: c.volume_snapshots.get(s2.id), "available")
    write_at(path, 5 * MIB, cbytes)

    # Not the newest snapshot: Cinder's 400.
    with pytest.raises(cinder_exc.BadRequest) as e:
        c.volumes.revert_to_snapshot(vol, s1)
    assert e.value.code == 400 and "not the latest" in str(e.value)
    c.volumes.revert_to_snapshot(vol, s2)
    wait_status(lambda: c.volumes.get(vol.id), "available")
    wait_status(lambda: c.volume_snapshots.get(s2.id), "available")
    assert read_all(path)[5 * MIB:8 * MIB] == b

    # A bigger volume from the older snapshot holds its bytes.
    v2 = c.volumes.create(2, snapshot_id=s1.id, name="from-one", description="grown")
    got = wait_status(lambda: c.volumes.get(v2.id), "available")
    assert got.size == 2 and got.description == "grown" and got.snapshot_id == s1.id
    data = read_all(server.volume_path(bare(v2.id)))
    assert len(data) == 2 << 30 and data[5 * MIB:8 * MIB] == a
    big = cinder(server, version="3.40")
    s_big = big.volume_snapshots.get(s1.id)
    assert s_big.size == 1

    # Below 3.40 revert does not exist.
    old = cinder(server, version="3.39")
    with pytest.raises(cinder_exc.NotFound):
        old.client.post(f"/volumes/{vol.id}/action", body={"revert": {"snapshot_id": s2.id}})
    # Deleting a volume with snapshots is refused; extend works.
    with pytest.raises(cinder_exc.BadRequest):
        c.volumes.delete(vol)
    c.volumes.extend(vol, 3)
    assert wait_status(lambda: c.volumes.get(vol.id), "available").size == 3
    with pytest.raises(cinder_exc.BadRequest):
        c.volumes.revert_to_snapshot(vol, s2)  # sizes now differ


def test_negative_cases_are_the_clients_own_exceptions(server, five):
    _, snaps = five
    # Bad password: keystoneauth's Unauthorized (401), before any Cinder call.
    with pytest.raises(ks_exc.Unauthorized) as e:
        cinder(server, password="wrong").volume_snapshots.list()
    assert e.value.http_status == 401
    with pytest.raises(ks_exc.Unauthorized):
        sdk_bad = openstack.connect(auth_url=f"{server.url}/identity/v3", username="alice", password="nope",
                                    project_name="alice", user_domain_name="Default",
                                    project_domain_name="Default")
        list(sdk_bad.block_storage.snapshots())
    # Unknown id.
    c = cinder(server)
    with pytest.raises(cinder_exc.NotFound) as e:
        c.volume_snapshots.get("d15c0002-0000-4000-8000-000000000abc")
    assert e.value.code == 404
    # Another project's snapshot is not found; its URL is forbidden.
    bob = cinder(server, who="bob")
    bvol = bob.volumes.create(1, name="bob")
    wait_status(lambda: bob.volumes.get(bvol.id), "available")
    bsnap = bob.volume_snapshots.create(bvol.id, name="bobs")
    wait_status(lambda: bob.volume_snapshots.get(bsnap.id), "available")
    with pytest.raises(cinder_exc.NotFound):
        c.volume_snapshots.get(bsnap.id)
    with pytest.raises(cinder_exc.NotFound):
        c.volume_snapshots.delete(bsnap.id)
    assert bsnap.id not in [s.id for s in c.volume_snapshots.list()]
    token = c.client.session.get_token()
    bob_pid = ACCOUNTS["bob"]["openstack"][0]
    req = urllib.request.Request(f"{server.url}/v3/{bob_pid}/snapshots", headers={"X-Auth-Token": token})
    with pytest.raises(urllib.error.HTTPError) as he:
        urllib.request.urlopen(req)
    assert he.value.code == 403 and "forbidden" in json.loads(he.value.read())
    # A bad microversion.
    with pytest.raises(cinder_exc.ClientException) as e:
        c.client.get("/snapshots", headers={"OpenStack-API-Version": "volume 3.99"})
    assert e.value.code == 406


def test_expired_token_is_401_and_clients_reauthenticate():
    s = Server(extra_config='token_lifetime = "2s"')
    try:
        auth = password_auth(s)
        sess = ks_session.Session(auth=auth)
        token = sess.get_token()
        time.sleep(2.5)
        pid = ACCOUNTS["alice"]["openstack"][0]
        stale = cinder_client.Client("3.0", session=ks_session.Session(
            auth=token_endpoint.Token(f"{s.url}/v3/{pid}", token)))
        with pytest.raises(cinder_exc.Unauthorized) as e:
            stale.volume_snapshots.list()
        assert e.value.code == 401
        # A password session notices the expiry and logs in again by itself.
        assert cinder(s).volume_snapshots.list() == []
    finally:
        s.stop()


# ---------------------------------------------------------------- Huawei EVS (huaweicloudsdkevs)

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions as hw_exc
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkevs.v2 import (EvsClient, ListSnapshotsRequest, CreateSnapshotRequest, CreateSnapshotRequestBody,
                                  CreateSnapshotOption, ShowSnapshotRequest, UpdateSnapshotRequest,
                                  UpdateSnapshotRequestBody, UpdateSnapshotOption, RollbackSnapshotRequest,
                                  RollbackSnapshotRequestBody, RollbackSnapshotOption, DeleteSnapshotRequest)


def evs(server, who="alice", secret=None):
    ak, sk = ACCOUNTS[who]["huawei"]
    cred = BasicCredentials(ak, secret or sk, ACCOUNTS[who]["openstack"][0])
    return (EvsClient.new_builder().with_http_config(HttpConfig.get_default_config()).with_credentials(cred)
            .with_endpoints([server.url]).build())


def test_huaweicloudsdkevs_cloudsnapshots(server):
    c = cinder(server)
    vol = c.volumes.create(1, name="evs-vol")
    wait_status(lambda: c.volumes.get(vol.id), "available")
    path = server.volume_path(bare(vol.id))
    first = pattern("evs-1", 2 * MIB)
    write_at(path, 0, first)
    client = evs(server)
    created = client.create_snapshot(CreateSnapshotRequest(body=CreateSnapshotRequestBody(snapshot=CreateSnapshotOption(
        volume_id=vol.id, force=False, metadata={"k": "v"}, description="d", name="evs-a"))))
    sid = created.snapshot.id
    assert created.snapshot.status == "creating" and created.snapshot.volume_id == vol.id
    wait_status(lambda: client.show_snapshot(ShowSnapshotRequest(snapshot_id=sid)).snapshot, "available")
    others = []
    for i in range(2):
        r = client.create_snapshot(CreateSnapshotRequest(body=CreateSnapshotRequestBody(
            snapshot=CreateSnapshotOption(volume_id=vol.id, name=f"evs-{i}"))))
        wait_status(lambda: client.show_snapshot(ShowSnapshotRequest(snapshot_id=r.snapshot.id)).snapshot,
                    "available")
        others.append(r.snapshot.id)

    everything = client.list_snapshots(ListSnapshotsRequest(volume_id=vol.id))
    assert everything.count == 3
    ids = [s.id for s in everything.snapshots]
    assert ids == [others[1], others[0], sid]
    page = client.list_snapshots(ListSnapshotsRequest(volume_id=vol.id, offset=1, limit=1))
    assert page.count == 3 and [s.id for s in page.snapshots] == [ids[1]]
    assert "offset=2" in page.snapshots_links[0].href
    assert client.list_snapshots(ListSnapshotsRequest(name="evs-a")).snapshots[0].metadata == {"k": "v"}

    shown = client.show_snapshot(ShowSnapshotRequest(snapshot_id=sid)).snapshot
    assert shown.name == "evs-a" and shown.description == "d" and shown.size == 1
    upd = client.update_snapshot(UpdateSnapshotRequest(snapshot_id=sid, body=UpdateSnapshotRequestBody(
        snapshot=UpdateSnapshotOption(name="evs-renamed", description="new"))))
    assert upd.snapshot.name == "evs-renamed" and upd.snapshot.description == "new"

    # Roll back to the oldest (EVS allows any available snapshot of the source disk).
    write_at(path, 0, pattern("evs-2", 2 * MIB))
    rb = client.rollback_snapshot(RollbackSnapshotRequest(snapshot_id=sid, body=RollbackSnapshotRequestBody(
        rollback=RollbackSnapshotOption(volume_id=vol.id))))
    assert rb.rollback.volume_id == vol.id
    wait_status(lambda: c.volumes.get(vol.id), "available")
    wait_status(lambda: client.show_snapshot(ShowSnapshotRequest(snapshot_id=sid)).snapshot, "available")
    assert read_all(path)[:2 * MIB] == first
    with pytest.raises(hw_exc.ClientRequestException) as e:
        client.rollback_snapshot(RollbackSnapshotRequest(snapshot_id=sid, body=RollbackSnapshotRequestBody(
            rollback=RollbackSnapshotOption(volume_id="d15c0001-0000-4000-8000-000000000001"))))
    assert e.value.status_code == 400 and e.value.error_code == "EVS.4000"

    for i in [sid] + others:
        client.delete_snapshot(DeleteSnapshotRequest(snapshot_id=i))
    wait_gone(lambda: client.show_snapshot(ShowSnapshotRequest(snapshot_id=sid)), hw_exc.ClientRequestException)
    with pytest.raises(hw_exc.ClientRequestException) as e:
        client.show_snapshot(ShowSnapshotRequest(snapshot_id=sid))
    assert e.value.status_code == 404 and e.value.error_code == "EVS.4040"
    with pytest.raises(hw_exc.ClientRequestException) as e:
        client.list_snapshots(ListSnapshotsRequest(limit=0))
    assert e.value.status_code == 400

    # Forged signature (wrong SK) and another account's key for this project.
    with pytest.raises(hw_exc.ClientRequestException) as e:
        evs(server, secret="forged-secret").list_snapshots(ListSnapshotsRequest())
    assert e.value.status_code == 401 and e.value.error_code == "APIGW.0301"
    bob_ak, bob_sk = ACCOUNTS["bob"]["huawei"]
    cross = (EvsClient.new_builder().with_http_config(HttpConfig.get_default_config())
             .with_credentials(BasicCredentials(bob_ak, bob_sk, ACCOUNTS["alice"]["openstack"][0]))
             .with_endpoints([server.url]).build())
    with pytest.raises(hw_exc.ClientRequestException) as e:
        cross.list_snapshots(ListSnapshotsRequest())
    assert e.value.status_code == 403


def test_v2_cinder_paths_speak_evs(server):
    c = cinder(server)
    vol = c.volumes.create(1, name="v2-vol")
    wait_status(lambda: c.volumes.get(vol.id), "available")
    s = c.volume_snapshots.create(vol.id, name="v2-snap")
    wait_status(lambda: c.volume_snapshots.get(s.id), "available")
    token = c.client.session.get_token()
    pid = ACCOUNTS["alice"]["openstack"][0]

    def get(path):
        req = urllib.request.Request(f"{server.url}/v2/{pid}{path}", headers={"X-Auth-Token": token})
        with urllib.request.urlopen(req) as r:
            assert "OpenStack-API-Version" not in r.headers
            return json.loads(r.read())

    body = get("/snapshots/detail?limit=1&offset=0&name=v2-snap")
    assert [x["id"] for x in body["snapshots"]] == [s.id]
    with pytest.raises(urllib.error.HTTPError) as e:
        get("/snapshots/d15c0002-0000-4000-8000-000000000abc")
    assert e.value.code == 404
    assert json.loads(e.value.read())["itemNotFound"]["code"] == "EVS.4040"
    # Versions and the root.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{server.url}/")
    assert e.value.code == 300 and json.loads(e.value.read())["versions"][0]["id"] == "v3.0"
    c.volume_snapshots.delete(s.id)


def uuid_of(kind_tag, disksnap_id):
    """The Cinder UUID of a disksnap id such as `vol-k3x9a0b2` (dialect-openstack.md §1)."""
    n = 0
    for ch in disksnap_id.split("-")[-1]:
        n = n * 36 + ALPHABET.index(ch)
    return f"{kind_tag}-0000-4000-8000-{n:012x}"


def test_instance_points_and_in_use_volumes(server):
    """Snapshots made elsewhere (the disksnap CLI, an instance's disks) show up in both APIs;
    attached volumes need force below 3.66; EVS marks an instance's system-disk point."""
    inst = server.cli("instance", "create", "--name", "vm")
    sys_vol = server.cli("volume", "create", "--size-gib", "1", "--type", "system", "--instance", inst["id"])
    data_vol = server.cli("volume", "create", "--size-gib", "1", "--instance", inst["id"])
    server.cli("snapshot", "create", "--instance", inst["id"], "--name", "vm-point")
    c = cinder(server)
    sys_id, data_id = uuid_of("d15c0001", sys_vol["id"]), uuid_of("d15c0001", data_vol["id"])
    v = c.volumes.get(sys_id)
    assert v.status == "in-use" and v.bootable == "true" and v.attachments[0]["server_id"].startswith("d15c0003-")
    points = c.volume_snapshots.list(search_opts={"name": "vm-point"})
    assert sorted(p.volume_id for p in points) == sorted([sys_id, data_id])
    assert all("__system__enableActive" not in p.metadata for p in points)
    marks = {s.volume_id: s.metadata["__system__enableActive"]
             for s in evs(server).list_snapshots(ListSnapshotsRequest(name="vm-point")).snapshots}
    assert marks == {sys_id: "true", data_id: "false"}
    # In use: cinderclient below 3.66 sends force=false → 400; force=True is accepted.
    with pytest.raises(cinder_exc.BadRequest):
        c.volume_snapshots.create(data_id, name="no-force")
    forced = c.volume_snapshots.create(data_id, force=True, name="forced")
    wait_status(lambda: c.volume_snapshots.get(forced.id), "available")
    at366 = cinder(server, version="3.66")
    s = at366.volume_snapshots.create(data_id, name="no-force-needed")
    wait_status(lambda: at366.volume_snapshots.get(s.id), "available")
    # In use: revert is a 409 (Cinder's rule: the volume must be available).
    c40 = cinder(server, version="3.40")
    with pytest.raises(cinder_exc.ClientException) as e:
        c40.volumes.revert_to_snapshot(c40.volumes.get(data_id), s)
    assert e.value.code == 409


def test_cinder_cli(server):
    pid, pname, user, pw = ACCOUNTS["alice"]["openstack"]
    env = dict(os.environ, OS_AUTH_URL=f"{server.url}/identity/v3", OS_USERNAME=user, OS_PASSWORD=pw,
               OS_PROJECT_NAME=pname, OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
               OS_VOLUME_API_VERSION="3.65")

    def run(*args, check=True):
        r = subprocess.run([os.path.join(BIN_DIR, "cinder"), *args], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 or not check, f"cinder {' '.join(args)}: {r.stderr}"
        return r

    run("create", "--name", "cli2-vol", "1")
    c = cinder(server)
    vol = [v for v in c.volumes.list() if v.name == "cli2-vol"][0]
    wait_status(lambda: c.volumes.get(vol.id), "available")
    run("snapshot-create", "--name", "cli2-snap", vol.id)
    snap = [s for s in c.volume_snapshots.list() if s.name == "cli2-snap"][0]
    wait_status(lambda: c.volume_snapshots.get(snap.id), "available")
    out = run("snapshot-list", "--volume-id", vol.id).stdout
    assert snap.id in out and "available" in out
    assert "cli2-snap" in run("snapshot-show", "cli2-snap").stdout
    run("snapshot-metadata", "cli2-snap", "set", "x=y")
    assert c.volume_snapshots.get(snap.id).metadata == {"x": "y"}
    run("revert-to-snapshot", "cli2-snap")
    wait_status(lambda: c.volumes.get(vol.id), "available")
    r = run("snapshot-show", "d15c0002-0000-4000-8000-00000000dead", check=False)
    assert r.returncode != 0 and "could not be found" in r.stderr.lower() or "No snapshot" in r.stderr
    run("snapshot-delete", "cli2-snap")
    wait_gone(lambda: c.volume_snapshots.get(snap.id), cinder_exc.NotFound)
