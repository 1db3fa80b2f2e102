//! The dialect end to end through its router (no network): signed requests in, envelopes out,
//! against a real service on a temp dir.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use disksnap_api_common::encode::rfc3986;
use disksnap_api_common::{ApiContext, KeyRing};
use disksnap_dialect_tencent::signature::{signature, string_to_sign, Params, SignatureMethod};
use disksnap_service::{Caller, CreateVolumes, Service, ServiceConfig, ZoneConfig};
use serde_json::Value;
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:7443";

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ApiContext,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServiceConfig::new(dir.path());
    cfg.chunk_size = Some(64 * 1024);
    cfg.zones = vec![ZoneConfig { name: "pek3a".into(), aliases: vec!["gz".into()] }];
    cfg.accounts = vec!["alice".into(), "bob".into()];
    let svc = Service::open(cfg).await.unwrap();
    let mut keys = KeyRing::default();
    keys.add(disksnap_dialect_tencent::KEYS, "AKIDalice", "alice", "alice-secret").unwrap();
    keys.add(disksnap_dialect_tencent::KEYS, "AKIDbob", "bob", "bob-secret").unwrap();
    Fixture { _dir: dir, ctx: ApiContext::new(svc, keys) }
}

fn nonce() -> String {
    (rand_u64() % 1_000_000_000_000 + 1).to_string()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish()
}

/// The SDK's parameters (common ones filled in unless given), signed with `secret`.
fn signed(method: &str, secret: &str, given: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = given.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let has = |pairs: &Vec<(String, String)>, k: &str| pairs.iter().any(|(x, _)| x == k);
    let now = chrono::Utc::now().timestamp().to_string();
    for (k, v) in [
        ("RequestClient", "SDK_PYTHON_2.0.15".to_string()),
        ("SecretId", "AKIDalice".to_string()),
        ("Nonce", nonce()),
        ("Timestamp", now),
        ("SignatureMethod", "HmacSHA256".to_string()),
    ] {
        if !has(&pairs, k) {
            pairs.push((k.to_string(), v));
        }
    }
    let params = Params::from_pairs(pairs.clone()).unwrap();
    let sm = SignatureMethod::from_param(params.raw("SignatureMethod"));
    let sig = signature(secret, sm, &string_to_sign(method, HOST, "/v2/index.php", &params));
    pairs.push(("Signature".into(), sig));
    pairs
}

fn encode(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&")
}

async fn send(ctx: &ApiContext, method: &str, pairs: &[(String, String)]) -> Value {
    let q = encode(pairs);
    let req = if method == "GET" {
        Request::get(format!("/v2/index.php?{q}")).header("host", HOST).body(Body::empty()).unwrap()
    } else {
        Request::builder()
            .method(method)
            .uri("/v2/index.php?ignored=1")
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(q))
            .unwrap()
    };
    let resp = disksnap_dialect_tencent::routes(ctx.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "errors are HTTP 200 too");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn call(ctx: &ApiContext, given: &[(&str, &str)]) -> Value {
    send(ctx, "GET", &signed("GET", "alice-secret", given)).await
}

#[tokio::test]
async fn authentication_failures_have_their_codes() {
    let f = fixture().await;
    let ok = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("Region", "gz")]).await;
    assert_eq!(ok["code"], 0, "{ok}");
    assert_eq!(ok["totalCount"], 0);

    let bad = send(&f.ctx, "GET", &signed("GET", "wrong-secret", &[("Action", "DescribeSnapshots")])).await;
    assert_eq!(bad["code"], 4100, "{bad}");
    assert_eq!(bad["codeDesc"], "AuthFailure");
    let unknown = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("SecretId", "AKIDnobody")]).await;
    assert_eq!(unknown["code"], 4104, "{unknown}");
    let pairs = signed("GET", "alice-secret", &[("Action", "DescribeSnapshots"), ("Nonce", "4242")]);
    assert_eq!(send(&f.ctx, "GET", &pairs).await["code"], 0);
    let replay = send(&f.ctx, "GET", &pairs).await;
    assert_eq!((replay["code"].clone(), replay["codeDesc"].clone()), (4500.into(), "NonceUsed".into()), "{replay}");
    let stale = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("Timestamp", "1465185768")]).await;
    assert_eq!((stale["code"].clone(), stale["codeDesc"].clone()), (4500.into(), "RequestExpired".into()));
    let token = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("Token", "t")]).await;
    assert_eq!(token["code"], 4105);
    let action = call(&f.ctx, &[("Action", "RunInstances")]).await;
    assert_eq!(action["code"], 6100);
    let no_action = call(&f.ctx, &[("limit", "1")]).await;
    assert_eq!(no_action["code"], 4000);
    let region = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("Region", "mars")]).await;
    assert_eq!(region["code"], 4000);
    let mut no_nonce = signed("GET", "alice-secret", &[("Action", "DescribeSnapshots")]);
    no_nonce.retain(|(k, _)| k != "Nonce");
    assert_eq!(send(&f.ctx, "GET", &no_nonce).await["code"], 4000);
    let put = send(&f.ctx, "PUT", &signed("PUT", "alice-secret", &[("Action", "DescribeSnapshots")])).await;
    assert_eq!(put["code"], 4000, "{put}");
    // POST: form body, signed with POST; HmacSHA1 when SignatureMethod says so.
    let post = signed("POST", "alice-secret", &[("Action", "DescribeSnapshots"), ("SignatureMethod", "HmacSHA1")]);
    assert_eq!(send(&f.ctx, "POST", &post).await["code"], 0);
}

#[tokio::test]
async fn parameters_are_checked() {
    let f = fixture().await;
    for (k, v) in [("limit", "0"), ("limit", "x"), ("offset", "-1"), ("diskType", "swap"), ("snapshotIds.0", "nope")] {
        let r = call(&f.ctx, &[("Action", "DescribeSnapshots"), (k, v)]).await;
        assert_eq!(r["code"], 9003, "{k}={v}: {r}");
        assert!(r["message"].as_str().unwrap().contains(k.split('.').next().unwrap()), "{r}");
    }
    let r = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("limit", "1000")]).await;
    assert_eq!(r["code"], 0, "a limit above 100 is clamped: {r}");
    let r = call(&f.ctx, &[("Action", "CreateSnapshot")]).await;
    assert_eq!(r["code"], 9003);
    let r = call(&f.ctx, &[("Action", "ModifySnapshot"), ("snapshotId", "snap-zzzzzzzz"), ("snapshotName", "x")]).await;
    assert_eq!((r["code"].clone(), r["codeDesc"].clone()), (5000.into(), "ResourceNotFound".into()), "{r}");
    let long = "x".repeat(61);
    let r =
        call(&f.ctx, &[("Action", "ModifySnapshot"), ("snapshotId", "snap-zzzzzzzz"), ("snapshotName", &long)]).await;
    assert_eq!(r["code"], 9003);
    let r = call(&f.ctx, &[("Action", "CreateCbsStorages"), ("zoneId", "100001"), ("storageSize", "15")]).await;
    assert_eq!(r["code"], 9003);
    let r = call(&f.ctx, &[("Action", "CreateCbsStorages"), ("zoneId", "7"), ("storageSize", "10")]).await;
    assert_eq!(r["code"], 9003);
}

/// A list of up to 1 000 ids is served; a longer one is 9003 naming the parameter (34 000 ids
/// once reached the database and came back as 5000, "too many SQL variables").
#[tokio::test]
async fn long_id_lists_are_served_up_to_the_maximum_then_refused() {
    let f = fixture().await;
    for (key, prefix) in [("snapshotIds", "snap"), ("storageIds", "disk")] {
        let ids: Vec<(String, String)> =
            (0..20_000).map(|i| (format!("{key}.{i}"), format!("{prefix}-{i:08}"))).collect();
        for (n, want) in [(1000, 0), (1001, 9003), (20_000, 9003)] {
            let mut given: Vec<(&str, &str)> = vec![("Action", "DescribeSnapshots")];
            given.extend(ids[..n].iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let r = send(&f.ctx, "POST", &signed("POST", "alice-secret", &given)).await;
            assert_eq!(r["code"], want, "{key} x{n}: {}", r["message"]);
            if want != 0 {
                assert!(r["message"].as_str().unwrap().contains(key), "{r}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_lifecycle_through_the_router() {
    let f = fixture().await;
    let svc = &f.ctx.service;
    let alice = Caller::new("alice");
    let (job, vols) = svc.create_volumes(&alice, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    svc.wait_job(&alice, &job.id).await.unwrap();
    let disk = format!("disk-{}", vols[0].id);

    let r = call(&f.ctx, &[("Action", "CreateSnapshot"), ("storageId", &disk), ("snapshotName", "nightly")]).await;
    assert_eq!(r["code"], 0, "{r}");
    let snap = r["snapshotId"].as_str().unwrap().to_string();
    assert!(snap.starts_with("snap-"));
    let busy = call(&f.ctx, &[("Action", "CreateSnapshot"), ("storageId", &disk)]).await;
    assert!(busy["code"] == 0 || busy["code"] == 16027, "{busy}");
    for _ in 0..100 {
        let r = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("snapshotIds.0", &snap)]).await;
        if r["snapshotSet"][0]["snapshotStatus"] == "normal" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = call(&f.ctx, &[("Action", "DescribeSnapshots"), ("snapshotIds_0", &snap)]).await;
    let item = &r["snapshotSet"][0];
    assert_eq!(item["snapshotStatus"], "normal", "{r}");
    assert_eq!(item["storageId"], disk.as_str());
    assert_eq!(item["snapshotName"], "nightly");
    assert_eq!(item["diskType"], "data");
    assert_eq!(item["storageSize"], 1);
    assert_eq!(item["percent"], 100);
    assert_eq!(item["projectId"], 0);
    assert_eq!(item["createTime"].as_str().unwrap().len(), 19);

    // Bob does not see it, and cannot touch it.
    let bob = send(
        &f.ctx,
        "GET",
        &signed(
            "GET",
            "bob-secret",
            &[("SecretId", "AKIDbob"), ("Action", "DescribeSnapshots"), ("snapshotIds.0", &snap)],
        ),
    )
    .await;
    assert_eq!(bob["totalCount"], 0, "{bob}");

    let r = call(&f.ctx, &[("Action", "DescribeCbsStorages"), ("storageIds.0", &disk)]).await;
    assert_eq!(r["storageSet"][0]["storageStatus"], "normal", "{r}");
    assert_eq!(r["storageSet"][0]["zoneId"], 100001);
    assert_eq!(r["storageSet"][0]["portable"], 1);

    let r = call(&f.ctx, &[("Action", "DeleteSnapshot"), ("snapshotIds.0", &snap), ("snapshotIds.1", "aasd")]).await;
    assert_eq!(r["code"], 5400, "{r}");
    assert_eq!(r["detail"][&snap]["code"], 0);
    assert_eq!(r["detail"]["aasd"]["code"], 16003);
    assert_eq!(r["detail"]["aasd"]["message"], "snap not exist");
    let r = call(&f.ctx, &[("Action", "DescribeSnapshots")]).await;
    assert_eq!(r["totalCount"], 0, "a deleted point is not listed: {r}");
}

/// Hostile values never panic or leave the envelope: every answer is HTTP 200 JSON with a code.
#[tokio::test]
async fn garbage_is_answered_in_the_envelope() {
    let f = fixture().await;
    let huge = "9".repeat(40);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("Action", "DescribeCbsStorages"), ("zoneId", "-9223372036854775808")],
        vec![("Action", "CreateCbsStorages"), ("zoneId", "-9223372036854775808"), ("storageSize", "10")],
        vec![("Action", "DescribeSnapshots"), ("limit", &huge)],
        vec![("Action", "DescribeSnapshots"), ("offset", "9223372036854775807")],
        vec![("Action", "DescribeSnapshots"), ("snapshotIds.99999999999999999999999", "snap-zzzzzzzz")],
        vec![("Action", "DescribeSnapshots"), ("snapshotIds.x", "snap-zzzzzzzz")],
        vec![("Action", "DeleteSnapshot"), ("snapshotIds.0", "\u{0}\u{ffff}%zz")],
        vec![("Action", "CreateCbsStorages"), ("zoneId", "100001"), ("storageSize", "10"), ("goodsNum", &huge)],
        vec![("Action", "ApplySnapshot"), ("snapshotId", "snap-zzzzzzzz"), ("storageId", "\u{7f}")],
        vec![("Action", "DescribeSnapshots"), ("Timestamp", &huge)],
        vec![("Action", "DescribeSnapshots"), ("Timestamp", "-99999999999999")],
        vec![("Action", "DescribeSnapshots"), ("Nonce", "0")],
        vec![("Action", "DescribeSnapshots"), ("Nonce", &huge)],
    ];
    for c in cases {
        let r = call(&f.ctx, &c).await;
        let code = r["code"].as_i64().unwrap_or_else(|| panic!("{c:?}: {r}"));
        assert_ne!(code, 6000, "{c:?}: {r}");
        if code != 0 {
            assert!(!r["message"].as_str().unwrap().is_empty(), "{c:?}: {r}");
        }
    }
    // Unsigned junk straight into the router.
    for uri in ["/v2/index.php", "/v2/index.php?%%%", "/v2/index.php?Action", "/v2/index.php?&&&=&="] {
        let req = Request::get(uri).header("host", HOST).body(Body::empty()).unwrap();
        let resp = disksnap_dialect_tencent::routes(f.ctx.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value =
            serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
        assert_eq!(body["code"], 4000, "{uri}: {body}");
    }
    let req = Request::post("/v2/index.php")
        .header("host", HOST)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let resp = disksnap_dialect_tencent::routes(f.ctx.clone()).oneshot(req).await.unwrap();
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["code"], 4000, "{body}");
}

/// Issue 16: DescribeSnapshots' body is kept in the service's page cache; a rename, a new
/// snapshot and a deletion are each in the very next list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_the_next_cached_snapshot_list() {
    let f = fixture().await;
    let svc = &f.ctx.service;
    let alice = Caller::new("alice");
    let (job, vols) = svc.create_volumes(&alice, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    svc.wait_job(&alice, &job.id).await.unwrap();
    let disk = format!("disk-{}", vols[0].id);
    let r = call(&f.ctx, &[("Action", "CreateSnapshot"), ("storageId", &disk), ("snapshotName", "one")]).await;
    assert_eq!(r["code"], 0, "{r}");
    let snap = r["snapshotId"].as_str().unwrap().to_string();
    svc.wait_idle().await;
    let list = [("Action", "DescribeSnapshots"), ("storageIds.0", disk.as_str())];
    let first = call(&f.ctx, &list).await;
    assert_eq!(first, call(&f.ctx, &list).await, "the same answer, from the cache");
    assert_eq!(
        (first["totalCount"].clone(), first["snapshotSet"][0]["snapshotName"].clone()),
        (1.into(), "one".into())
    );
    let r = call(&f.ctx, &[("Action", "ModifySnapshot"), ("snapshotId", &snap), ("snapshotName", "renamed")]).await;
    assert_eq!(r["code"], 0, "{r}");
    let r = call(&f.ctx, &list).await;
    assert_eq!(r["snapshotSet"][0]["snapshotName"], "renamed", "the name is in the next list: {r}");
    let r = call(&f.ctx, &[("Action", "CreateSnapshot"), ("storageId", &disk), ("snapshotName", "two")]).await;
    assert_eq!(r["code"], 0, "{r}");
    svc.wait_idle().await;
    let r = call(&f.ctx, &list).await;
    assert_eq!(r["totalCount"], 2, "the new snapshot is in the next list: {r}");
    let r = call(&f.ctx, &[("Action", "DeleteSnapshot"), ("snapshotIds.0", &snap)]).await;
    assert_eq!(r["code"], 0, "{r}");
    let r = call(&f.ctx, &list).await;
    assert_eq!(r["totalCount"], 1, "the deletion is in the next list: {r}");
    assert_eq!(r["snapshotSet"][0]["snapshotName"], "two", "{r}");
}
