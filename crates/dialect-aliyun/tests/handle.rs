//! `handle` end to end on a real service in a temp dir: requests signed here with the dialect's
//! own signing functions (checked against the vendor vectors in `signature.rs`), and hostile
//! input on every action that must never become a 5xx or a panic.

use axum::body::Body;
use axum::extract::Request;
use disksnap_api_common::encode::rfc3986;
use disksnap_api_common::sign::sha256_hex;
use disksnap_api_common::{ApiContext, KeyRing};
use disksnap_dialect_aliyun::signature::{
    rpc_signature, rpc_string_to_sign, v3_canonical_request, v3_signature, v3_string_to_sign,
};
use disksnap_dialect_aliyun::{handle, wants, Endpoint};
use disksnap_service::{Service, ServiceConfig};
use serde_json::Value;

async fn ctx(dir: &std::path::Path) -> ApiContext {
    let svc = Service::open(ServiceConfig::new(dir)).await.unwrap();
    let mut keys = KeyRing::default();
    keys.add(disksnap_dialect_aliyun::KEYS, "testid", "dev", "testsecret").unwrap();
    ApiContext::new(svc, keys)
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn nonce() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    t ^ ((N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u128) << 64)
}

/// An RPC v1 request: `extra` joins the standard parameters; signed with `secret`.
fn rpc(method: &str, action: &str, extra: &[(&str, &str)], secret: &str) -> Request {
    let mut p: Vec<(String, String)> = vec![
        ("Action".into(), action.into()),
        ("Version".into(), "2014-05-26".into()),
        ("AccessKeyId".into(), "testid".into()),
        ("SignatureMethod".into(), "HMAC-SHA1".into()),
        ("SignatureVersion".into(), "1.0".into()),
        ("SignatureNonce".into(), nonce()),
        ("Timestamp".into(), now()),
        ("Format".into(), "JSON".into()),
    ];
    for (k, v) in extra {
        p.retain(|(pk, _)| pk != k);
        p.push((k.to_string(), v.to_string()));
    }
    let sig = rpc_signature(secret, &rpc_string_to_sign(method, &p));
    p.push(("Signature".into(), sig));
    let q: Vec<String> = p.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect();
    axum::http::Request::builder()
        .method(method)
        .uri(format!("/?{}", q.join("&")))
        .header("host", "127.0.0.1:7480")
        .body(Body::empty())
        .unwrap()
}

/// Every header the Tea SDK sends with a V3 request, in the order it signs them.
const TEA_SIGNED: &str = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";

/// A V3 request as the Tea SDK sends it: action in headers, parameters in the query.
fn v3(action: &str, query: &[(&str, &str)], secret: &str) -> Request {
    v3_signing(action, query, secret, TEA_SIGNED)
}

/// A V3 request whose `Authorization` covers only the headers `signed` lists.
fn v3_signing(action: &str, query: &[(&str, &str)], secret: &str, signed: &str) -> Request {
    let headers = [
        ("host", "127.0.0.1:7480".to_string()),
        ("x-acs-action", action.to_string()),
        ("x-acs-version", "2014-05-26".to_string()),
        ("x-acs-date", now()),
        ("x-acs-signature-nonce", nonce()),
        ("x-acs-content-sha256", sha256_hex(b"")),
    ];
    let q: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = |n: &str| headers.iter().filter(|(k, _)| *k == n).map(|(_, v)| v.clone()).collect();
    let canonical = v3_canonical_request("POST", "/", &q, signed, lookup, &sha256_hex(b""));
    let sig = v3_signature(secret, &v3_string_to_sign(&canonical));
    let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", rfc3986(v))).collect();
    let mut b = axum::http::Request::builder().method("POST").uri(format!("/?{}", qs.join("&")));
    for (k, v) in &headers {
        b = b.header(*k, v);
    }
    b.header("authorization", format!("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed},Signature={sig}"))
        .body(Body::empty())
        .unwrap()
}

async fn send(ctx: &ApiContext, req: Request) -> (u16, String, Value) {
    assert!(wants(&req));
    let resp = handle(ctx.clone(), req).await;
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let v = serde_json::from_slice(&body).unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
    (status, ctype, v)
}

#[tokio::test]
async fn signed_requests_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    for method in ["GET", "POST"] {
        let (status, ctype, v) = send(&c, rpc(method, "DescribeRegions", &[], "testsecret")).await;
        assert_eq!((status, ctype.as_str()), (200, "application/json;charset=utf-8"), "{v}");
        let rid = v["RequestId"].as_str().unwrap();
        assert_eq!(rid, rid.to_uppercase());
        assert_eq!(v["Regions"]["Region"][0]["RegionId"], "pek3a");
    }
    let (status, _, v) =
        send(&c, v3("DescribeSnapshots", &[("RegionId", "pek3a"), ("PageSize", "5")], "testsecret")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["TotalCount"].as_u64(), v["PageSize"].as_u64()), (Some(0), Some(5)));
    let (status, _, v) = send(&c, v3("DescribeSnapshots", &[("RegionId", "pek3a")], "wrong")).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("SignatureDoesNotMatch")));
    assert!(v["Message"].as_str().unwrap().contains("server string to sign is:ACS3-HMAC-SHA256\n"));
    let (status, _, v) =
        send(&c, rpc("POST", "DescribeRegions", &[("Timestamp", "2016-02-23T12:46:24Z")], "testsecret")).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("InvalidTimeStamp.Expired")));
    let (status, _, v) = send(&c, rpc("POST", "DescribeRegions", &[("Timestamp", "")], "testsecret")).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("IllegalTimestamp")));
    let (status, _, v) = send(&c, rpc("POST", "DescribeRegions", &[("Timestamp", "23/02/2016")], "testsecret")).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("InvalidTimeStamp.Format")));
    let fixed = [("SignatureNonce", "same-nonce")];
    assert_eq!(send(&c, rpc("POST", "DescribeRegions", &fixed, "testsecret")).await.0, 200);
    let (status, _, v) = send(&c, rpc("POST", "DescribeRegions", &fixed, "testsecret")).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("SignatureNonceUsed")));
    let (status, ctype, v) = send(&c, rpc("GET", "Nope", &[("Format", "XML")], "testsecret")).await;
    assert_eq!((status, ctype.as_str()), (404, "text/xml;charset=utf-8"));
    assert!(v.as_str().unwrap().contains("<Code>InvalidAction.NotFound</Code>"));
}

/// Hostile values for every parameter any action reads: each answer is a 4xx in the envelope.
#[tokio::test]
async fn hostile_input_never_breaks_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let hostile: &[(&str, &str)] = &[
        ("RegionId", "pek3a"),
        ("SnapshotIds", "[\"s-1\""),
        ("DiskIds", "{\"a\":1}"),
        ("SnapshotLinkIds", "[1,2]"),
        ("PageNumber", "-3"),
        ("PageSize", "99999999999999999999"),
        ("MaxResults", "0"),
        ("NextToken", "%%%"),
        ("Tag.0.Key", "k"),
        ("Tag.x.Value", "v"),
        ("Filter.1.Key", "CreationStartTime"),
        ("Filter.1.Value", "2017-13-45T99:99Z"),
        ("DiskId", "../../etc/passwd"),
        ("SnapshotId", "s-\u{0}\u{7f}"),
        ("InstanceId", "i-日本語"),
        ("RetentionDays", "1e9"),
        ("Size", "-1"),
        ("Force", "maybe"),
        ("DryRun", "2"),
        ("ZoneId", "mars-1x"),
        ("SnapshotName", "a"),
        ("ClientToken", "x".repeat(100).leak()),
        ("NewSize", "0"),
        ("ResourceType", "router"),
        ("ResourceId.1", "d-\u{0}"),
        ("ResourceId.x", "d-1"),
        ("ResourceGroupId", "rg-/../x"),
        ("ImageId", "m-1,,,m-2"),
        ("TagKey.1", "acs:x"),
        ("DiskIds.1", "d-1"),
    ];
    for e in Endpoint::ALL {
        // all at once, and each alone (so each is the first check to fail somewhere)
        let mut sets: Vec<Vec<(&str, &str)>> = vec![hostile.to_vec()];
        sets.extend(hostile.iter().map(|p| vec![("RegionId", "pek3a"), *p]));
        for set in sets {
            let (status, _, v) = send(&c, rpc("POST", e.name(), &set, "testsecret")).await;
            assert!(status < 500, "{} {set:?} → {status} {v}", e.name());
            if status >= 400 {
                assert!(v["Code"].is_string() && v["Message"].is_string() && v["RequestId"].is_string(), "{v}");
            }
        }
    }
    // unsigned, half-signed and malformed Authorization
    let bare = axum::http::Request::builder().uri("/?Action=DescribeRegions").body(Body::empty()).unwrap();
    assert_eq!(send(&c, bare).await.2["Code"], "IncompleteSignature");
    let bad_auth = axum::http::Request::builder()
        .method("POST")
        .uri("/")
        .header("x-acs-action", "DescribeRegions")
        .header("authorization", "ACS3-HMAC-SHA256 Credential")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&c, bad_auth).await.2["Code"], "IncompleteSignature");
    let form = axum::http::Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(vec![0xff, 0xfe, b'&', b'=', b'=']))
        .unwrap();
    assert_eq!(send(&c, form).await.0, 400);
}

/// A V3 signature that leaves out a header the scheme requires signed (the date and nonce, so
/// that fresh ones could be swapped in to replay it; or the action) is refused before the
/// action runs, naming what to sign.
#[tokio::test]
async fn v3_must_sign_the_date_the_nonce_and_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let q = [("RegionId", "pek3a")];
    assert_eq!(send(&c, v3_signing("DescribeRegions", &q, "testsecret", TEA_SIGNED)).await.0, 200);
    for missing in
        ["x-acs-date", "x-acs-signature-nonce", "x-acs-action", "x-acs-version", "host", "x-acs-content-sha256"]
    {
        let signed: Vec<&str> = TEA_SIGNED.split(';').filter(|h| *h != missing).collect();
        let (status, _, v) = send(&c, v3_signing("DescribeRegions", &q, "testsecret", &signed.join(";"))).await;
        assert_eq!((status, v["Code"].as_str()), (400, Some("IncompleteSignature")), "{missing}: {v}");
        assert!(v["Message"].as_str().unwrap().contains(missing), "{v}");
    }
}

/// `/` is shared with Cinder's version list: a request is Aliyun's when it names an action in
/// the query, the `x-acs-action` header or a form body, whatever its Content-Type claims.
#[tokio::test]
async fn root_routes_by_what_the_request_is() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let cinder = |_req: Request| async { axum::response::IntoResponse::into_response("cinder") };
    let text = |resp: axum::response::Response| async move {
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    // A signed RPC form, sent with a Content-Type that says JSON or XML, or with none.
    for ctype in [Some("application/json"), Some("text/xml"), None] {
        let form = rpc("POST", "DescribeRegions", &[], "testsecret").uri().query().unwrap().to_string();
        let mut b = axum::http::Request::builder().method("POST").uri("/").header("host", "127.0.0.1:7480");
        if let Some(t) = ctype {
            b = b.header("content-type", t);
        }
        let req = b.body(Body::from(form.clone())).unwrap();
        let (status, body) = text(disksnap_dialect_aliyun::serve_root(c.clone(), req, cinder).await).await;
        assert_eq!(status, 200, "{ctype:?}: {body}");
        assert!(body.contains("\"RegionId\":\"pek3a\""), "{ctype:?}: {body}");
    }
    // An unsigned form naming an action is still Aliyun's, refused in its envelope.
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/json")
        .body(Body::from("Action=DescribeRegions&RegionId=pek3a"))
        .unwrap();
    let (status, body) = text(disksnap_dialect_aliyun::serve_root(c.clone(), req, cinder).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("IncompleteSignature"), "{body}");
    // Neither: a JSON body, a body naming no action, a bare GET go to the other answer.
    for (method, body) in [("POST", "{\"Action\":\"DescribeRegions\"}"), ("POST", "a=1&b=2"), ("GET", "")] {
        let req = axum::http::Request::builder()
            .method(method)
            .uri("/")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        assert_eq!(text(disksnap_dialect_aliyun::serve_root(c.clone(), req, cinder).await).await.1, "cinder", "{body}");
    }
}

/// An instance filter naming something that is not an instance id (a disk's `d-…`) matches
/// nothing, as an unparseable disk id does, on disks and on snapshots.
#[tokio::test]
async fn a_non_instance_id_as_instance_filter_matches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let dev = disksnap_service::Caller::new("dev");
    let (job, v) = c
        .service
        .create_volumes(
            &dev,
            disksnap_service::CreateVolumes { name: "d".into(), size_gib: 1, count: 1, ..Default::default() },
        )
        .await
        .unwrap();
    c.service.wait_job(&dev, &job.id).await.unwrap();
    let disk = format!("d-{}", v[0].id);
    let (job, _) = c
        .service
        .create_snapshots(&dev, disksnap_service::CreateSnapshots { volumes: vec![disk.clone()], ..Default::default() })
        .await
        .unwrap();
    c.service.wait_job(&dev, &job.id).await.unwrap();
    let q = |extra: &[(&'static str, String)]| {
        let mut p: Vec<(&str, String)> = vec![("RegionId", "pek3a".into())];
        p.extend(extra.iter().cloned());
        p
    };
    let call = |action: &'static str, p: Vec<(&'static str, String)>| {
        let c = c.clone();
        async move {
            let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(&c, rpc("POST", action, &refs, "testsecret")).await
        }
    };
    for action in ["DescribeDisks", "DescribeSnapshots"] {
        let (status, _, all) = call(action, q(&[])).await;
        assert_eq!((status, all["TotalCount"].as_u64()), (200, Some(1)), "{action}: {all}");
    }
    for bad in [disk.clone(), "vol-zzzz".into(), "i-".into()] {
        let (status, _, v) = call("DescribeDisks", q(&[("InstanceId", bad.clone())])).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["TotalCount"].as_u64(), Some(0), "DescribeDisks InstanceId={bad}: {v}");
        let (status, _, v) = call("DescribeSnapshots", q(&[("InstanceId", bad.clone())])).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["TotalCount"].as_u64(), Some(0), "DescribeSnapshots InstanceId={bad}: {v}");
    }
}

/// One call of `action` with `extra` (RegionId added), RPC v1 signed.
async fn act(c: &ApiContext, action: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut p = vec![("RegionId", "pek3a")];
    p.extend_from_slice(extra);
    let (status, _, v) = send(c, rpc("POST", action, &p, "testsecret")).await;
    (status, v)
}

fn code(v: &Value) -> &str {
    v["Code"].as_str().unwrap_or("")
}

/// A disk's whole life as a Terraform/SDK workflow drives it: create, tag, resize, snapshot,
/// a disk from the snapshot (SourceSnapshotId, the SnapshotId filter), resource groups, attach
/// and detach, delete; every refusal with ECS's code; and ClientToken answers that outlive the
/// service (a second service on the same data directory, as after a restart).
#[tokio::test]
async fn a_disk_from_create_to_delete() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let (s, v) = act(
        &c,
        "CreateDisk",
        &[("ZoneId", "pek3a"), ("Size", "1"), ("DiskName", "data1"), ("ClientToken", "t-create")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let disk = v["DiskId"].as_str().unwrap().to_string();
    let d = disk.as_str();

    // tags, both APIs
    let (s, v) = act(
        &c,
        "TagResources",
        &[("ResourceType", "disk"), ("ResourceId.1", d), ("Tag.1.Key", "env"), ("Tag.1.Value", "dev")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = act(
        &c,
        "TagResources",
        &[("ResourceType", "disk"), ("ResourceId.1", d), ("Tag.1.Key", "env"), ("Tag.1.Value", "prod")],
    )
    .await;
    assert!(v["Code"].is_null(), "{v}");
    let (_, v) =
        act(&c, "AddTags", &[("ResourceType", "disk"), ("ResourceId", d), ("Tag.1.Key", "team"), ("Tag.1.Value", "a")])
            .await;
    assert!(v["Code"].is_null(), "{v}");
    let (_, v) = act(&c, "ListTagResources", &[("ResourceType", "disk"), ("ResourceId.1", d)]).await;
    let rows = v["TagResources"]["TagResource"].as_array().unwrap().clone();
    let pairs: Vec<(String, String)> =
        rows.iter().map(|r| (r["TagKey"].as_str().unwrap().into(), r["TagValue"].as_str().unwrap().into())).collect();
    assert_eq!(pairs, vec![("env".into(), "prod".into()), ("team".into(), "a".into())], "one value per key: {v}");
    assert_eq!(rows[0]["ResourceId"], d);
    assert_eq!(rows[0]["ResourceType"], "disk");
    let (_, v) = act(&c, "DescribeTags", &[("ResourceType", "disk"), ("Tag.1.Key", "env")]).await;
    assert_eq!(v["Tags"]["Tag"][0]["ResourceTypeCount"]["Disk"], 1, "{v}");
    let (_, v) = act(&c, "DescribeDisks", &[("Tag.1.Key", "env"), ("Tag.1.Value", "prod")]).await;
    assert_eq!(v["TotalCount"], 1, "{v}");
    let (_, v) =
        act(&c, "UntagResources", &[("ResourceType", "disk"), ("ResourceId.1", d), ("TagKey.1", "team")]).await;
    assert!(v["Code"].is_null(), "{v}");
    let (_, v) = act(&c, "RemoveTags", &[("ResourceType", "disk"), ("ResourceId", d), ("Tag.1.Key", "env")]).await;
    assert!(v["Code"].is_null(), "{v}");
    let (_, v) = act(&c, "ListTagResources", &[("ResourceType", "disk"), ("ResourceId.1", d)]).await;
    assert_eq!(v["TagResources"]["TagResource"].as_array().unwrap().len(), 0, "{v}");
    for (extra, want) in [
        (vec![("ResourceType", "router"), ("ResourceId.1", d), ("Tag.1.Key", "k")], "InvalidResourceType.NotFound"),
        (
            vec![("ResourceType", "disk"), ("ResourceId.1", "d-zzzzzzzz"), ("Tag.1.Key", "k")],
            "InvalidResourceId.NotFound",
        ),
        (vec![("ResourceType", "disk"), ("ResourceId.1", d), ("Tag.1.Key", "acs:k")], "InvalidTagKey.Malformed"),
        (vec![("ResourceType", "disk"), ("ResourceId.1", d)], "MissingParameter"),
        (vec![("ResourceId.1", d), ("Tag.1.Key", "k")], "MissingParameter"),
    ] {
        let (s, v) = act(&c, "TagResources", &extra).await;
        assert_eq!((s >= 400, code(&v)), (true, want), "{extra:?}: {v}");
    }

    // resize: grows only, ECS's code for anything else
    for bad in ["1", "0", "abc", "99999999"] {
        let (s, v) = act(&c, "ResizeDisk", &[("DiskId", d), ("NewSize", bad)]).await;
        assert_eq!((s, code(&v)), (403, "InvalidDiskSize.ValueNotSupported"), "NewSize={bad}: {v}");
    }
    let (s, v) = act(&c, "ResizeDisk", &[("DiskId", d), ("NewSize", "2"), ("Type", "sideways")]).await;
    assert_eq!((s, code(&v)), (400, "InvalidParameter"), "{v}");
    let (s, v) = act(&c, "ResizeDisk", &[("DiskId", "d-zzzzzzzz"), ("NewSize", "2")]).await;
    assert_eq!((s, code(&v)), (404, "InvalidDiskId.NotFound"), "{v}");
    let (s, v) = act(&c, "ResizeDisk", &[("DiskId", d), ("NewSize", "2")]).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = act(&c, "DescribeDisks", &[("DiskIds", &format!("[\"{d}\"]"))]).await;
    assert_eq!(v["Disks"]["Disk"][0]["Size"], 2, "{v}");
    let (s, v) =
        act(&c, "ModifyDiskAttribute", &[("DiskId", d), ("DiskName", "renamed"), ("Description", "about it")]).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = act(&c, "ModifyDiskAttribute", &[("DiskId", d), ("DiskName", "1bad")]).await;
    assert_eq!((s, code(&v)), (400, "InvalidDiskName.Malformed"), "{v}");
    let (_, v) = act(&c, "DescribeDisks", &[("DiskName", "renamed")]).await;
    assert_eq!(v["Disks"]["Disk"][0]["Description"], "about it", "{v}");

    // snapshot, then a disk from it: SourceSnapshotId and the SnapshotId filter
    let (s, v) =
        act(&c, "CreateSnapshot", &[("DiskId", d), ("SnapshotName", "first"), ("ResourceGroupId", "rg-aaa1")]).await;
    assert_eq!(s, 200, "{v}");
    let snap = v["SnapshotId"].as_str().unwrap().to_string();
    c.service.wait_idle().await;
    let (s, v) = act(&c, "CreateDisk", &[("ZoneId", "pek3a"), ("SnapshotId", &snap)]).await;
    assert_eq!(s, 200, "{v}");
    let restored = v["DiskId"].as_str().unwrap().to_string();
    c.service.wait_idle().await;
    let (_, v) = act(&c, "DescribeDisks", &[("SnapshotId", &snap)]).await;
    assert_eq!(v["TotalCount"], 1, "{v}");
    assert_eq!(v["Disks"]["Disk"][0]["DiskId"], restored.as_str());
    assert_eq!(v["Disks"]["Disk"][0]["SourceSnapshotId"], snap.as_str());
    let (_, v) = act(&c, "DescribeDisks", &[("SnapshotId", "s-zzzzzzzz")]).await;
    assert_eq!(v["TotalCount"], 0, "{v}");

    // resource groups: on create and by JoinResourceGroup; the filters follow
    let (_, v) = act(&c, "DescribeSnapshots", &[("ResourceGroupId", "rg-aaa1")]).await;
    assert_eq!(v["TotalCount"], 1, "{v}");
    assert_eq!(v["Snapshots"]["Snapshot"][0]["ResourceGroupId"], "rg-aaa1");
    let (s, v) = act(
        &c,
        "JoinResourceGroup",
        &[("ResourceType", "disk"), ("ResourceId", &restored), ("ResourceGroupId", "rg-bbb2")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = act(&c, "DescribeDisks", &[("ResourceGroupId", "rg-bbb2")]).await;
    assert_eq!(
        (v["TotalCount"].as_u64(), v["Disks"]["Disk"][0]["ResourceGroupId"].as_str()),
        (Some(1), Some("rg-bbb2")),
        "{v}"
    );
    let (_, v) = act(&c, "DescribeDisks", &[("ResourceGroupId", "rg-bbb2"), ("DiskIds", &format!("[\"{d}\"]"))]).await;
    assert_eq!(v["TotalCount"], 0, "{v}");
    // A page's groups are read in one batch: each item shows its own (or none).
    let (_, v) = act(&c, "DescribeDisks", &[("DiskIds", &format!("[\"{d}\", \"{restored}\"]"))]).await;
    let shown: std::collections::BTreeMap<&str, &str> = v["Disks"]["Disk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["DiskId"].as_str().unwrap(), x["ResourceGroupId"].as_str().unwrap()))
        .collect();
    assert_eq!(shown, [(d, ""), (restored.as_str(), "rg-bbb2")].into_iter().collect(), "{v}");
    let (_, v) = act(&c, "DescribeSnapshots", &[]).await;
    for x in v["Snapshots"]["Snapshot"].as_array().unwrap() {
        let want = if x["SnapshotId"] == snap.as_str() { "rg-aaa1" } else { "" };
        assert_eq!(x["ResourceGroupId"], want, "{v}");
    }
    let (s, v) = act(
        &c,
        "JoinResourceGroup",
        &[("ResourceType", "disk"), ("ResourceId", &restored), ("ResourceGroupId", "group one")],
    )
    .await;
    assert_eq!((s, code(&v)), (400, "InvalidResourceGroupId.Malformed"), "{v}");

    // attach to an instance, then DeleteDisk refuses until it is detached
    let dev = disksnap_service::Caller::new("dev");
    let inst = c.service.create_instance(&dev, None, "vm").await.unwrap();
    let inst = format!("i-{}", inst.id);
    let (s, v) = act(&c, "AttachDisk", &[("InstanceId", &inst), ("DiskId", d)]).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = act(&c, "AttachDisk", &[("InstanceId", &inst), ("DiskId", d)]).await;
    assert_eq!((s, code(&v)), (403, "IncorrectDiskStatus"), "{v}");
    let (s, v) = act(&c, "DeleteDisk", &[("DiskId", d)]).await;
    assert_eq!((s, code(&v)), (403, "IncorrectDiskStatus"), "{v}");
    let (s, v) = act(&c, "DetachDisk", &[("InstanceId", &inst), ("DiskId", &restored)]).await;
    assert_eq!((s, code(&v)), (403, "IncorrectDiskStatus"), "{v}");
    let (s, v) = act(&c, "AttachDisk", &[("InstanceId", "i-zzzzzzzz"), ("DiskId", d)]).await;
    assert_eq!((s, code(&v)), (404, "InvalidInstanceId.NotFound"), "{v}");
    let (s, v) = act(&c, "DetachDisk", &[("InstanceId", &inst), ("DiskId", d)]).await;
    assert_eq!(s, 200, "{v}");

    // ClientToken: the same answer after a restart (a new service on the same directory)
    drop(c);
    let c = ctx(dir.path()).await;
    let (s, v) = act(
        &c,
        "CreateDisk",
        &[("ZoneId", "pek3a"), ("Size", "1"), ("DiskName", "data1"), ("ClientToken", "t-create")],
    )
    .await;
    assert_eq!((s, v["DiskId"].as_str()), (200, Some(d)), "{v}");

    // delete: gone from the list, then not found; the snapshot stays
    let (s, v) = act(&c, "DeleteDisk", &[("DiskId", d)]).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = act(&c, "DescribeDisks", &[("DiskIds", &format!("[\"{d}\"]"))]).await;
    assert_eq!(v["TotalCount"], 0, "{v}");
    let (s, v) = act(&c, "DeleteDisk", &[("DiskId", d)]).await;
    assert_eq!((s, code(&v)), (404, "InvalidDiskId.NotFound"), "{v}");
    let (_, v) = act(&c, "DescribeSnapshots", &[("SnapshotIds", &format!("[\"{snap}\"]"))]).await;
    assert_eq!(v["TotalCount"], 1, "{v}");
}

/// Issue 11: Aliyun's own prefix of another kind names nothing, as ECS answers any id it does
/// not hold. Read as any prefix, `s-<a disk's suffix>` as a DiskId found that disk (and a
/// snapshot was taken of it), `d-<a snapshot's suffix>` found the snapshot.
#[tokio::test]
async fn own_prefix_of_another_kind_names_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let dev = disksnap_service::Caller::new("dev");
    let (job, v) = c
        .service
        .create_volumes(
            &dev,
            disksnap_service::CreateVolumes { name: "d".into(), size_gib: 1, count: 1, ..Default::default() },
        )
        .await
        .unwrap();
    c.service.wait_job(&dev, &job.id).await.unwrap();
    let vol = v[0].id.clone();
    let (job, snaps) = c
        .service
        .create_snapshots(&dev, disksnap_service::CreateSnapshots { volumes: vec![vol.clone()], ..Default::default() })
        .await
        .unwrap();
    c.service.wait_job(&dev, &job.id).await.unwrap();
    let snap = snaps[0].id.clone();
    let (s_vol, d_snap) = (format!("s-{vol}"), format!("d-{snap}"));
    for (action, extra, want) in [
        ("CreateSnapshot", vec![("DiskId", s_vol.as_str())], "InvalidDiskId.NotFound"),
        (
            "ModifySnapshotAttribute",
            vec![("SnapshotId", d_snap.as_str()), ("Description", "x")],
            "InvalidSnapshotId.NotFound",
        ),
        ("DeleteSnapshot", vec![("SnapshotId", d_snap.as_str())], "InvalidSnapshotId.NotFound"),
    ] {
        let (status, v) = act(&c, action, &extra).await;
        assert_eq!((status, code(&v)), (404, want), "{action} {extra:?}: {v}");
    }
    let ids = serde_json::json!([d_snap]).to_string();
    for (action, extra) in [
        ("DescribeSnapshots", vec![("DiskId", s_vol.as_str())]),
        ("DescribeSnapshots", vec![("SnapshotIds", ids.as_str())]),
        ("DescribeDisks", vec![("DiskIds", &*serde_json::json!([s_vol]).to_string().leak())]),
    ] {
        let (status, v) = act(&c, action, &extra).await;
        assert_eq!((status, v["TotalCount"].as_u64()), (200, Some(0)), "{action} {extra:?}: {v}");
    }
    // nothing was taken of the disk; its own id still works
    let (_, v) = act(&c, "DescribeSnapshots", &[("DiskId", format!("d-{vol}").as_str())]).await;
    assert_eq!(v["TotalCount"].as_u64(), Some(1), "{v}");
}

/// Issue 16: DescribeSnapshots is kept in the service's page cache without its request id;
/// every answer carries its own request id, in JSON and XML, and a write (a name, a resource
/// group, a new snapshot) is in the very next list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_the_next_cached_snapshot_list() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path()).await;
    let (s, v) = act(&c, "CreateDisk", &[("ZoneId", "pek3a"), ("Size", "1")]).await;
    assert_eq!(s, 200, "{v}");
    let disk = v["DiskId"].as_str().unwrap().to_string();
    c.service.wait_idle().await;
    let (s, v) = act(&c, "CreateSnapshot", &[("DiskId", &disk), ("SnapshotName", "first")]).await;
    assert_eq!(s, 200, "{v}");
    let snap = v["SnapshotId"].as_str().unwrap().to_string();
    c.service.wait_idle().await;
    let list = [("DiskId", disk.as_str())];
    let (_, first) = act(&c, "DescribeSnapshots", &list).await;
    let (_, again) = act(&c, "DescribeSnapshots", &list).await;
    assert_eq!(first["Snapshots"]["Snapshot"][0]["SnapshotName"], "first", "{first}");
    assert_eq!(first["TotalCount"], 1, "{first}");
    let id = |v: &Value| v["RequestId"].as_str().unwrap().to_string();
    assert!(!id(&first).is_empty() && id(&first) != id(&again), "a request id per answer: {first} {again}");
    let without_id = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("RequestId");
        v
    };
    assert_eq!(without_id(&first), without_id(&again));

    let (s, v) = act(&c, "ModifySnapshotAttribute", &[("SnapshotId", &snap), ("SnapshotName", "renamed")]).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = act(&c, "DescribeSnapshots", &list).await;
    assert_eq!(v["Snapshots"]["Snapshot"][0]["SnapshotName"], "renamed", "the name is in the next list: {v}");

    let group = [("ResourceType", "snapshot"), ("ResourceId", snap.as_str()), ("ResourceGroupId", "rg-ccc3")];
    let (s, v) = act(&c, "JoinResourceGroup", &group).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = act(&c, "DescribeSnapshots", &list).await;
    assert_eq!(v["Snapshots"]["Snapshot"][0]["ResourceGroupId"], "rg-ccc3", "the group is in the next list: {v}");

    let (s, v) = act(&c, "CreateSnapshot", &[("DiskId", &disk), ("SnapshotName", "second")]).await;
    assert_eq!(s, 200, "{v}");
    c.service.wait_idle().await;
    let (_, v) = act(&c, "DescribeSnapshots", &list).await;
    assert_eq!(v["TotalCount"], 2, "the new snapshot is in the next list: {v}");

    // XML: the same page, the request id in its element, each answer its own
    let xml = [("DiskId", disk.as_str()), ("Format", "XML")];
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let mut p = vec![("RegionId", "pek3a")];
        p.extend_from_slice(&xml);
        let (status, ctype, v) = send(&c, rpc("POST", "DescribeSnapshots", &p, "testsecret")).await;
        assert_eq!((status, ctype.as_str()), (200, "text/xml;charset=utf-8"));
        bodies.push(v.as_str().unwrap().to_string());
    }
    for b in &bodies {
        assert!(b.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeSnapshotsResponse>"), "{b}");
        assert!(b.contains("<TotalCount>2</TotalCount>") && b.contains("<SnapshotName>renamed</SnapshotName>"), "{b}");
        assert!(!b.contains("disksnap-request-id"), "{b}");
    }
    let rid = |b: &str| b.split("<RequestId>").nth(1).unwrap().split("</RequestId>").next().unwrap().to_string();
    assert_ne!(rid(&bodies[0]), rid(&bodies[1]));
    assert_eq!(bodies[0].replace(&rid(&bodies[0]), ""), bodies[1].replace(&rid(&bodies[1]), ""));
}
