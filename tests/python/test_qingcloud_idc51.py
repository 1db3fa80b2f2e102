"""51idc REST at the HTTP level (there is no 51idc Python SDK or CLI): the OAuth2 token flow,
every endpoint of seed 004 plus the job and volume endpoints, the error statuses and bodies of
dialects.md §3.6, and the same account's snapshots seen through QingCloud and 51idc."""
import base64
import time

import pytest
import requests
from qingcloud.iaas.connection import APIConnection

from conftest import ACCOUNTS, pattern, write_at

MIB = 1 << 20


def token(server, account="alice"):
    k, s = ACCOUNTS[account]["qingcloud"]
    r = requests.post(f"{server.url}/v2/oauth2/token", auth=(k, s), data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and isinstance(body["access_token"], str) and body["expires_in"] > 0
    return {"Authorization": f'{body["token_type"]} {body["access_token"]}'}


def api(server, method, path, h, **kw):
    return requests.request(method, f"{server.url}/v2/zone/pek3a{path}", headers=h, **kw)


def wait(server, h, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = api(server, "GET", f"/job/{job_id}", h)
        assert r.status_code == 200, r.text
        j = r.json()
        if j["status"] not in ("pending", "working"):
            assert j["status"] == "successful", j
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def qc(server, account="alice"):
    k, s = ACCOUNTS[account]["qingcloud"]
    return APIConnection(k, s, "pek3a", host=server.host, port=server.port, protocol="http")


@pytest.fixture(scope="module")
def vol(server):
    c = qc(server)
    r = c.create_volumes(size=1, volume_name="rest-disk")
    vol = r["volumes"][0]
    deadline = time.time() + 60
    while c.describe_jobs(jobs=[r["job_id"]])["job_set"][0]["status"] != "successful":
        assert time.time() < deadline
        time.sleep(0.1)
    return vol


def test_token_flow_and_failures(server):
    h = token(server)
    assert api(server, "GET", "/volume_snapshots", h).status_code == 200
    k, s = ACCOUNTS["alice"]["qingcloud"]
    # Wrong secret, unknown key: 401 invalid_client. Other grant: 400 unsupported_grant_type.
    r = requests.post(f"{server.url}/v2/oauth2/token", auth=(k, "wrong"), data={"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(f"{server.url}/v2/oauth2/token", auth=("nobody", s), data={"grant_type": "client_credentials"})
    assert r.status_code == 401
    r = requests.post(f"{server.url}/v2/oauth2/token", auth=(k, s), data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    # Missing or unknown token: 401 + WWW-Authenticate: Bearer and the error body.
    for bad in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}]:
        r = api(server, "GET", "/volume_snapshots", bad)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", r.text
        assert r.json()["error"]["code"] == "1200"
    # The SDK re-sends with a second Authorization header added: the last one counts.
    sess = requests.Session()
    req = requests.Request("GET", f"{server.url}/v2/zone/pek3a/volume_snapshots").prepare()
    good = h["Authorization"]
    import http.client
    conn = http.client.HTTPConnection(server.host, server.port)
    conn.putrequest("GET", "/v2/zone/pek3a/volume_snapshots")
    conn.putheader("Authorization", "Bearer stale-token")
    conn.putheader("Authorization", good)
    conn.endheaders()
    assert conn.getresponse().status == 200
    del sess, req


def test_token_expires(server):
    # Tokens expire after the configured lifetime; a fresh server with a 1 s lifetime shows it.
    from conftest import Server
    s = Server(extra_config='token_lifetime = "1s"')
    try:
        h = token(s)
        assert api(s, "GET", "/volume_snapshots", h).status_code == 200
        time.sleep(1.5)
        r = api(s, "GET", "/volume_snapshots", h)
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    finally:
        s.stop()


def test_every_endpoint(server, vol):
    h = token(server)
    path = server.volume_path(vol)
    write_at(path, 0, pattern("rest-a", 2 * MIB))
    # create (JSON body) -> Job
    r = api(server, "POST", "/volume_snapshots", h, json={"resources": [vol], "snapshot_name": "r1", "is_full": 1})
    assert r.status_code == 200, r.text
    job = r.json()
    for f in ["job_id", "id_prefix", "action", "request_id", "status", "create_time", "begin_time",
              "finished_time", "extra", "zone", "resource_ids", "error"]:
        assert f in job, f
    assert job["id_prefix"] == "j-" and job["action"] == "CreateSnapshots" and job["zone"] == "pek3a"
    assert job["request_id"] == r.headers["x-request-id"]
    full = job["resource_ids"][0]
    done = wait(server, h, job["job_id"])
    assert done["finished_time"] and done["error"] is None and done["request_id"] == job["request_id"]
    write_at(path, 0, pattern("rest-b", 2 * MIB))
    r = api(server, "POST", "/volume_snapshots", h, json={"resources": [vol], "snapshot_name": "r-2"})
    inc = r.json()["resource_ids"][0]
    wait(server, h, r.json()["job_id"])
    # list with filters (comma lists, repeated keys), default limit 10
    r = api(server, "GET", "/volume_snapshots", h, params={"snapshots": f"{full},{inc}"})
    body = r.json()
    assert body["total_count"] == 2 and [s["snapshot_id"] for s in body["snapshots"]] == [inc, full]
    item = body["snapshots"][1]
    assert item["snapshot_type"] == 1 and item["parent_id"] == "self" and item["total_count"] == 2
    assert item["resource"]["resource_id"] == vol
    r = api(server, "GET", f"/volume_snapshots?status=available&status=deleted&resource_id={vol}&snapshot_type=0", h)
    assert [s["snapshot_id"] for s in r.json()["snapshots"]] == [inc]
    assert api(server, "GET", "/volume_snapshots", h, params={"root_id": full, "limit": 1, "offset": 1}).json()[
        "snapshots"][0]["snapshot_id"] == full
    # search_word also matches ids: "r-2" cannot occur in one (ss-<8 alphanumerics>), "r2" can
    assert api(server, "GET", "/volume_snapshots", h, params={"search_word": "r-2"}).json()["total_count"] == 1
    # apply -> bytes back
    r = api(server, "POST", "/volume_snapshots/apply", h, json={"snapshots": [full]})
    assert r.status_code == 200 and r.json()["action"] == "ApplySnapshots"
    wait(server, h, r.json()["job_id"])
    with open(path, "rb") as f:
        assert f.read(2 * MIB) == pattern("rest-a", 2 * MIB)
    # create_volume -> a new volume with the point's bytes
    r = api(server, "POST", "/volume_snapshots/create_volume", h, json={"snapshot": inc, "volume_name": "copy"})
    j = wait(server, h, r.json()["job_id"])
    new_vol = j["resource_ids"][0]
    assert new_vol.startswith("vol-")
    with open(server.volume_path(new_vol), "rb") as f:
        assert f.read(2 * MIB) == pattern("rest-b", 2 * MIB)
    r = api(server, "GET", "/volumes", h, params={"volumes": f"{vol},{new_vol}", "volume_type": "PERFORMANCE"})
    assert r.json()["total_count"] == 2 and {v["volume_type"] for v in r.json()["volumes"]} == {"PERFORMANCE"}
    # capture_instance needs a system-disk point: a data point is 409 with code 1400
    r = api(server, "POST", "/volume_snapshots/capture_instance", h, json={"snapshot": inc, "image_name": "x"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "1400"
    # delete the full point (comma-joined ids allowed): the whole chain goes, as in QingCloud
    r = api(server, "DELETE", f"/volume_snapshots/{full}", h)
    j = wait(server, h, r.json()["job_id"])
    assert set(j["resource_ids"]) == {full, inc}
    r = api(server, "GET", "/volume_snapshots", h, params={"snapshots": full, "status": "deleted"})
    assert r.json()["total_count"] == 1


def test_errors(server, vol):
    h = token(server)
    r = api(server, "POST", "/volume_snapshots", h, json={"snapshot_name": "no resources"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "1100"
    assert r.json()["error"]["message"].startswith("InvalidParameter, ")
    r = api(server, "POST", "/volume_snapshots", {**h, "Content-Type": "application/json"}, data="{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "1100"
    r = requests.get(f"{server.url}/v2/zone/mars/volume_snapshots", headers=h)
    assert r.status_code == 400 and "mars" in r.json()["error"]["message"]
    r = api(server, "GET", "/no_such_thing", h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "1101"
    r = api(server, "PUT", "/volume_snapshots", h)
    assert r.status_code in (404, 405) and r.json()["error"]["code"] == "1101"
    r = api(server, "POST", "/volume_snapshots/apply", h, json={"snapshots": ["ss-zzzzzzzz"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "2100"
    r = api(server, "GET", "/job/j-zzzzzzzz", h)
    assert r.status_code == 404
    r = api(server, "GET", "/volume_snapshots", h, params={"limit": "many"})
    assert r.status_code == 400
    # Paths the router cannot take apart still answer in 51idc's envelope: a segment that is not
    # UTF-8, an empty id (never Cinder's itemNotFound from the /v2/{project} routes).
    for method, path, status, code in [
        ("GET", "/v2/zone/%ff/volume_snapshots", 400, "1100"),
        ("DELETE", "/v2/zone/pek3a/volume_snapshots/%ff%fe", 400, "1100"),
        ("DELETE", "/v2/zone/pek3a/volume_snapshots/", 400, "1100"),
        ("GET", "/v2/zone/pek3a/job/", 400, "1100"),
        ("GET", "/v2/zone//volume_snapshots", 400, "1100"),
        ("GET", "/v2/zone/pek3a/", 404, "1101"),
        ("GET", "/v2/zone/", 404, "1101"),
    ]:
        r = requests.request(method, server.url + path, headers=h)
        assert r.status_code == status, (method, path, r.text)
        assert r.headers["Content-Type"] == "application/json", (method, path, r.headers)
        assert set(r.json()) == {"error"} and r.json()["error"]["code"] == code, (method, path, r.text)


def test_any_search_word_and_long_lists(server, vol):
    h = token(server)
    for word in ["\x00", "r\x00", "ab\x00cd", '"*(NEAR', "x" * 5000]:
        r = api(server, "GET", "/volume_snapshots", h, params={"search_word": word})
        assert r.status_code == 200 and r.json()["total_count"] == 0, (word[:10], r.text)
        r = api(server, "GET", "/volumes", h, params={"search_word": word})
        assert r.status_code == 200 and r.json()["total_count"] == 0, (word[:10], r.text)
    ids = [f"ss-{i:08d}" for i in range(1000)]
    r = api(server, "GET", "/volume_snapshots", h, params={"snapshots": ",".join(ids)})
    assert r.status_code == 200 and r.json()["total_count"] == 0, r.text
    for n in (1001, 34000):
        ids = [f"ss-{i:08d}" for i in range(n)]
        r = api(server, "POST", "/volume_snapshots/apply", h, json={"snapshots": ids})
        assert r.status_code == 400 and r.json()["error"]["code"] == "1100", r.text
        assert "1000" in r.json()["error"]["message"]


def test_one_account_many_dialects_and_isolation(server, vol):
    # Made through QingCloud, seen through 51idc; bob sees it through neither.
    c = qc(server)
    r = c.create_snapshots(resources=[vol], snapshot_name="cross", is_full=1)
    point = r["snapshots"][0]
    h = token(server)
    wait(server, h, r["job_id"])
    got = api(server, "GET", "/volume_snapshots", h, params={"snapshots": point}).json()["snapshots"]
    assert [s["snapshot_name"] for s in got] == ["cross"]
    hb = token(server, "bob")
    assert api(server, "GET", "/volume_snapshots", hb, params={"snapshots": point}).json()["total_count"] == 0
    r = api(server, "DELETE", f"/volume_snapshots/{point}", hb)
    assert r.status_code == 404
    r = api(server, "POST", "/volume_snapshots", h, json={"resources": [vol]})
    wait(server, h, r.json()["job_id"])
    assert qc(server, "bob").describe_snapshots(snapshots=[point])["total_count"] == 0
    assert api(server, "GET", f"/job/{r.json()['job_id']}", hb).status_code == 404
