"""Issue 14 item 4: nothing a client relies on lives only in one process's memory. One server is
stopped and started again on the same data dir; afterwards every fact a client was given still
holds: 51idc OAuth2 and Keystone tokens (valid until they expire), the request id a 51idc job
was made by, an Aliyun ClientToken's first answer, a Cinder status override, and which snapshot
a disk was made from (Aliyun `SourceSnapshotId`, Cinder `snapshot_id`).

It lives in the Aliyun suite for its venv (the Aliyun SDK, and `requests` for the REST APIs).
"""
import time

import requests
from aliyunsdkecs.request.v20140526 import CreateDiskRequest

from conftest import ACCOUNTS, Server
from test_aliyun import REGION, old_call, wait_disk, wait_snapshot, snapshot


def oauth2_token(server):
    k, s = ACCOUNTS["alice"]["qingcloud"]
    r = requests.post(f"{server.url}/v2/oauth2/token", auth=(k, s), data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def keystone_token(server):
    pid, _, user, password = ACCOUNTS["alice"]["openstack"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"id": pid}}}}
    r = requests.post(f"{server.url}/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return {"X-Auth-Token": r.headers["X-Subject-Token"]}


def cinder(server, h, method, path, **kw):
    pid = ACCOUNTS["alice"]["openstack"][0]
    return requests.request(method, f"{server.url}/v3/{pid}{path}", headers=h, **kw)


def test_tokens_client_tokens_overrides_and_sources_survive_a_restart():
    server = Server(tls=False)
    try:
        out = server.cli("volume", "create", "--size-gib", "1", "--type", "data")
        vol = (out[0] if isinstance(out, list) else out)["id"]
        disk = "d-" + vol.split("-", 1)[1]
        # 51idc: a token and a job made by a request
        bearer = oauth2_token(server)
        r = requests.post(f"{server.url}/v2/zone/pek3a/volume_snapshots", headers=bearer,
                          json={"resources": [vol], "snapshot_name": "before-restart"})
        assert r.status_code in (200, 201, 202), r.text
        job = r.json()
        made_by = r.headers["x-request-id"]
        assert job["request_id"] == made_by
        deadline = time.time() + 60
        while requests.get(f"{server.url}/v2/zone/pek3a/job/{job['job_id']}", headers=bearer).json()["status"] in (
                "pending", "working"):
            assert time.time() < deadline
            time.sleep(0.1)
        # Aliyun: a disk from a snapshot, with a ClientToken
        sid = snapshot(server, disk, snapshot_name="aliyun-point")
        first = old_call(server, CreateDiskRequest, ZoneId=REGION + "-a", SnapshotId=sid,
                         ClientToken="restart-token-1")["DiskId"]
        assert wait_disk(server, first)["SourceSnapshotId"] == sid
        # Keystone: a token; Cinder: a status override on the snapshot
        ks = keystone_token(server)
        snaps = cinder(server, ks, "GET", "/snapshots/detail").json()["snapshots"]
        uuid = next(s["id"] for s in snaps if s["name"] == "aliyun-point")
        r = cinder(server, ks, "POST", f"/snapshots/{uuid}/action", json={"os-reset_status": {"status": "error"}})
        assert r.status_code == 202, r.text
        assert cinder(server, ks, "GET", f"/snapshots/{uuid}").json()["snapshot"]["status"] == "error"

        server.restart()

        # tokens still valid
        r = requests.get(f"{server.url}/v2/zone/pek3a/volume_snapshots", headers=bearer)
        assert r.status_code == 200, r.text
        r = cinder(server, ks, "GET", f"/snapshots/{uuid}")
        assert r.status_code == 200, r.text
        # the override still shows
        assert r.json()["snapshot"]["status"] == "error"
        # the job still names the request that made it
        j = requests.get(f"{server.url}/v2/zone/pek3a/job/{job['job_id']}", headers=bearer).json()
        assert (j["status"], j["request_id"]) == ("successful", made_by), j
        # the ClientToken answers the first disk, not a new one
        again = old_call(server, CreateDiskRequest, ZoneId=REGION + "-a", SnapshotId=sid,
                         ClientToken="restart-token-1")["DiskId"]
        assert again == first
        # the disk still knows its snapshot, in both dialects
        assert wait_disk(server, first)["SourceSnapshotId"] == sid
        vols = cinder(server, ks, "GET", "/volumes/detail").json()["volumes"]
        assert [v["snapshot_id"] for v in vols if v["snapshot_id"]] == [uuid], vols
        assert wait_snapshot(server, sid)["SnapshotId"] == sid
    finally:
        server.stop()
