//! The dialect end to end on `/` (no network): signed requests in, envelopes out, against a real
//! service on a temp dir; and what is not ours goes to the next dialect.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use disksnap_api_common::encode::rfc3986;
use disksnap_api_common::{ApiContext, KeyRing};
use disksnap_dialect_tencent3::signature::{
    canonical_request, scope_date, tc3_signature, tc3_string_to_sign, v1_signature, v1_string_to_sign, V1Method,
};
use disksnap_service::{Service, ServiceConfig, ZoneConfig};
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
    cfg.zones = vec![ZoneConfig { name: "pek3a".into(), aliases: vec!["ap-guangzhou".into()] }];
    cfg.accounts = vec!["alice".into(), "bob".into()];
    let svc = Service::open(cfg).await.unwrap();
    let mut keys = KeyRing::default();
    keys.add(disksnap_dialect_tencent3::KEYS, "AKIDalice", "alice", "alice-secret").unwrap();
    keys.add(disksnap_dialect_tencent3::KEYS, "AKIDbob", "bob", "bob-secret").unwrap();
    Fixture { _dir: dir, ctx: ApiContext::new(svc, keys) }
}

fn root(ctx: ApiContext) -> Router {
    Router::new().route(
        "/",
        any(move |req: Request| {
            let ctx = ctx.clone();
            disksnap_dialect_tencent3::serve_root(ctx, req, |_req| async {
                (StatusCode::IM_A_TEAPOT, "next").into_response()
            })
        }),
    )
}

/// A TC3-signed POST as the SDK builds it.
fn tc3(action: &str, body: &str, secret_id: &str, secret: &str, ts: i64) -> Request {
    let date = scope_date(chrono::DateTime::from_timestamp(ts, 0).unwrap());
    let headers =
        vec![("content-type".to_string(), "application/json".to_string()), ("host".to_string(), HOST.to_string())];
    let canonical = canonical_request("POST", "/", "", &headers, body.as_bytes());
    let sig = tc3_signature(secret, &date, "cbs", &tc3_string_to_sign(&ts.to_string(), &date, "cbs", &canonical));
    Request::post("/")
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("x-tc-action", action)
        .header("x-tc-version", "2017-03-12")
        .header("x-tc-region", "ap-guangzhou")
        .header("x-tc-timestamp", ts.to_string())
        .header(
            "authorization",
            format!("TC3-HMAC-SHA256 Credential={secret_id}/{date}/cbs/tc3_request, SignedHeaders=content-type;host, Signature={sig}"),
        )
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn send(ctx: &ApiContext, req: Request) -> (StatusCode, Value) {
    let resp = root(ctx.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    if status == StatusCode::IM_A_TEAPOT {
        return (status, Value::Null);
    }
    assert_eq!(ct.as_deref(), Some("application/json"), "the SDK reads errors only under exactly this type");
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn code(v: &Value) -> &str {
    v["Response"]["Error"]["Code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn tc3_requests_and_their_refusals() {
    let f = fixture().await;
    let (st, ok) = send(&f.ctx, tc3("DescribeSnapshots", "{}", "AKIDalice", "alice-secret", now())).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ok["Response"]["TotalCount"], 0, "{ok}");
    assert!(ok["Response"]["RequestId"].as_str().is_some_and(|r| r.len() == 36));

    let (_, bad) = send(&f.ctx, tc3("DescribeSnapshots", "{}", "AKIDalice", "wrong", now())).await;
    assert_eq!(code(&bad), "AuthFailure.SignatureFailure", "{bad}");
    let (_, unknown) = send(&f.ctx, tc3("DescribeSnapshots", "{}", "AKIDnobody", "x", now())).await;
    assert_eq!(code(&unknown), "AuthFailure.SecretIdNotFound");
    let (_, old) = send(&f.ctx, tc3("DescribeSnapshots", "{}", "AKIDalice", "alice-secret", now() - 3600)).await;
    assert_eq!(code(&old), "AuthFailure.SignatureExpire");
    let (_, action) = send(&f.ctx, tc3("RunInstances", "{}", "AKIDalice", "alice-secret", now())).await;
    assert_eq!(code(&action), "InvalidAction");
    let (_, limit) =
        send(&f.ctx, tc3("DescribeSnapshots", r#"{"Limit":101}"#, "AKIDalice", "alice-secret", now())).await;
    assert_eq!(code(&limit), "InvalidParameterValue.LimitExceeded");
    let (_, json) = send(&f.ctx, tc3("DescribeSnapshots", "{", "AKIDalice", "alice-secret", now())).await;
    assert_eq!(code(&json), "InvalidParameter");

    let mut token = tc3("DescribeSnapshots", "{}", "AKIDalice", "alice-secret", now());
    token.headers_mut().insert("x-tc-token", "t".parse().unwrap());
    assert_eq!(code(&send(&f.ctx, token).await.1), "AuthFailure.TokenFailure");
    let mut version = tc3("DescribeSnapshots", "{}", "AKIDalice", "alice-secret", now());
    version.headers_mut().insert("x-tc-version", "2099-01-01".parse().unwrap());
    assert_eq!(code(&send(&f.ctx, version).await.1), "NoSuchVersion");
    let mut host = tc3("DescribeSnapshots", "{}", "AKIDalice", "alice-secret", now());
    host.headers_mut().insert("host", "other:1".parse().unwrap());
    assert_eq!(code(&send(&f.ctx, host).await.1), "AuthFailure.SignatureFailure");

    // A read sent twice is answered twice (a client polling in one second); a change is not.
    let ts = now();
    for _ in 0..2 {
        let (_, r) = send(&f.ctx, tc3("DescribeDisks", "{}", "AKIDalice", "alice-secret", ts)).await;
        assert_eq!(r["Response"]["TotalCount"], 0, "{r}");
    }
    let body = r#"{"DiskId":"disk-zzzzzzzz"}"#;
    let (_, first) = send(&f.ctx, tc3("CreateSnapshot", body, "AKIDalice", "alice-secret", ts)).await;
    assert_eq!(code(&first), "InvalidDiskId.NotFound");
    let (_, replay) = send(&f.ctx, tc3("CreateSnapshot", body, "AKIDalice", "alice-secret", ts)).await;
    assert_eq!(code(&replay), "LimitExceeded.ReplayAttack");
    // X-TC-Action is not signed: a change's signature cannot be spent on another change…
    let body = r#"{"DiskIds":["disk-zzzzzzzz"]}"#;
    let (_, detach) = send(&f.ctx, tc3("DetachDisks", body, "AKIDalice", "alice-secret", ts)).await;
    assert_eq!(code(&detach), "InvalidDiskId.NotFound");
    let (_, change) = send(&f.ctx, tc3("TerminateDisks", body, "AKIDalice", "alice-secret", ts)).await;
    assert_eq!(code(&change), "LimitExceeded.ReplayAttack");
    // …while a read, then a change with the same body in the same second (poll, then act) works.
    let body = r#"{"DiskIds":["disk-yyyyyyyy"]}"#;
    let (_, read) = send(&f.ctx, tc3("DescribeDisks", body, "AKIDalice", "alice-secret", ts)).await;
    assert_eq!(read["Response"]["TotalCount"], 0, "{read}");
    let (_, change) = send(&f.ctx, tc3("TerminateDisks", body, "AKIDalice", "alice-secret", ts)).await;
    assert_eq!(code(&change), "InvalidDiskId.NotFound");
}

/// Issue 11: Tencent's own prefix of another kind (`disk-…` as a snapshot) is a malformed id, as
/// in API v2 (9003), not "not found" (read as any prefix, it named the resource of its suffix).
#[tokio::test]
async fn own_prefix_of_another_kind_is_malformed() {
    let f = fixture().await;
    for (action, body, key) in [
        ("ModifySnapshotAttribute", r#"{"SnapshotId":"disk-zzzzzzzz","SnapshotName":"x"}"#, "SnapshotId"),
        ("DeleteSnapshots", r#"{"SnapshotIds":["disk-zzzzzzzz"]}"#, "SnapshotIds.0"),
        ("DescribeSnapshots", r#"{"SnapshotIds":["disk-zzzzzzzz"]}"#, "SnapshotIds.0"),
        ("DescribeDisks", r#"{"DiskIds":["snap-zzzzzzzz"]}"#, "DiskIds.0"),
        ("CreateSnapshot", r#"{"DiskId":"snap-zzzzzzzz"}"#, "DiskId"),
    ] {
        let (_, v) = send(&f.ctx, tc3(action, body, "AKIDalice", "alice-secret", now())).await;
        assert_eq!(code(&v), "InvalidParameterValue", "{action} {body}: {v}");
        assert!(v["Response"]["Error"]["Message"].as_str().unwrap().contains(key), "{v}");
    }
    // Another vendor's rendering of the right kind is no error (dialects.md, the ID rule).
    let (_, v) = send(
        &f.ctx,
        tc3("DescribeSnapshots", r#"{"SnapshotIds":["ss-zzzzzzzz"]}"#, "AKIDalice", "alice-secret", now()),
    )
    .await;
    assert_eq!(v["Response"]["TotalCount"], 0, "{v}");
}

fn v1(method: &str, secret: &str, given: &[(&str, &str)]) -> Request {
    let mut pairs: Vec<(String, String)> = given.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (k, v) in [
        ("Version", "2017-03-12".to_string()),
        ("SecretId", "AKIDalice".to_string()),
        ("Timestamp", now().to_string()),
        ("SignatureMethod", "HmacSHA256".to_string()),
        ("Region", "ap-guangzhou".to_string()),
    ] {
        if !pairs.iter().any(|(x, _)| x == k) {
            pairs.push((k.to_string(), v));
        }
    }
    let sig = v1_signature(secret, V1Method::HmacSha256, &v1_string_to_sign(method, HOST, "/", &pairs));
    pairs.push(("Signature".into(), sig));
    let q = pairs.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&");
    if method == "GET" {
        Request::get(format!("/?{q}")).header("host", HOST).body(Body::empty()).unwrap()
    } else {
        Request::post("/")
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(q))
            .unwrap()
    }
}

#[tokio::test]
async fn v1_form_and_routing_on_root() {
    let f = fixture().await;
    let q = [
        ("Action", "DescribeSnapshots"),
        ("Nonce", "11"),
        ("Filters.0.Name", "disk-usage"),
        ("Filters.0.Values.0", "DATA_DISK"),
    ];
    let (_, ok) = send(&f.ctx, v1("GET", "alice-secret", &q)).await;
    assert_eq!(ok["Response"]["TotalCount"], 0, "{ok}");
    let (_, replay) = send(&f.ctx, v1("GET", "alice-secret", &q)).await;
    assert_eq!(code(&replay), "LimitExceeded.ReplayAttack");
    let (_, post) = send(&f.ctx, v1("POST", "alice-secret", &[("Action", "DescribeDisks"), ("Nonce", "12")])).await;
    assert_eq!(post["Response"]["TotalCount"], 0, "{post}");
    let (_, bad) = send(&f.ctx, v1("POST", "wrong", &[("Action", "DescribeDisks"), ("Nonce", "13")])).await;
    assert_eq!(code(&bad), "AuthFailure.SignatureFailure");
    let (_, filter) = send(
        &f.ctx,
        v1(
            "GET",
            "alice-secret",
            &[("Action", "DescribeSnapshots"), ("Nonce", "14"), ("Filters.0.Name", "x"), ("Filters.0.Values.0", "y")],
        ),
    )
    .await;
    assert_eq!(code(&filter), "InvalidFilter");

    // Aliyun's RPC (AccessKeyId), a JSON POST without X-TC-Action, Cinder's version list: next.
    for req in [
        Request::get("/?Action=DescribeDisks&AccessKeyId=LTAI").body(Body::empty()).unwrap(),
        Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("Action=DescribeDisks&AccessKeyId=LTAI"))
            .unwrap(),
        Request::post("/").header("content-type", "application/json").body(Body::from("{}")).unwrap(),
        Request::get("/").body(Body::empty()).unwrap(),
    ] {
        assert_eq!(send(&f.ctx, req).await.0, StatusCode::IM_A_TEAPOT);
    }
}

/// A client that signs `x-tc-action` too: the action is then covered, as any signed header.
#[tokio::test]
async fn a_signed_action_header_is_checked() {
    let f = fixture().await;
    let ts = now();
    let date = scope_date(chrono::DateTime::from_timestamp(ts, 0).unwrap());
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("host".to_string(), HOST.to_string()),
        ("x-tc-action".to_string(), "DescribeDisks".to_string()),
    ];
    let canonical = canonical_request("POST", "/", "", &headers, b"{}");
    let sig =
        tc3_signature("alice-secret", &date, "cbs", &tc3_string_to_sign(&ts.to_string(), &date, "cbs", &canonical));
    let req = |action: &str| {
        Request::post("/")
            .header("host", HOST)
            .header("content-type", "application/json")
            .header("x-tc-action", action)
            .header("x-tc-version", "2017-03-12")
            .header("x-tc-timestamp", ts.to_string())
            .header(
                "authorization",
                format!(
                    "TC3-HMAC-SHA256 Credential=AKIDalice/{date}/cbs/tc3_request, \
                     SignedHeaders=content-type;host;x-tc-action, Signature={sig}"
                ),
            )
            .body(Body::from("{}"))
            .unwrap()
    };
    let (_, ok) = send(&f.ctx, req("DescribeDisks")).await;
    assert_eq!(ok["Response"]["TotalCount"], 0, "{ok}");
    let (_, other) = send(&f.ctx, req("TerminateDisks")).await;
    assert_eq!(code(&other), "AuthFailure.SignatureFailure");
}

/// DescribeSnapshots is one store query (issue 16): every filter and the page agree with what
/// the unfiltered list shows of the same points, totals included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_snapshots_filters_are_the_stores() {
    use disksnap_service::{Caller, CreateSnapshots, CreateVolumes, VolumeKind};
    let f = fixture().await;
    let svc = &f.ctx.service;
    let alice = Caller::new("alice");
    let mut disks = Vec::new();
    for kind in [VolumeKind::System, VolumeKind::Data] {
        let req = CreateVolumes { size_gib: 1, count: 1, kind: Some(kind), ..Default::default() };
        disks.push(svc.create_volumes(&alice, req).await.unwrap().1.remove(0).id);
    }
    svc.wait_idle().await;
    let prod = svc.create_tag(&alice, "env", "prod").await.unwrap().id;
    let dev = svc.create_tag(&alice, "env", "dev").await.unwrap().id;
    let team = svc.create_tag(&alice, "team", "a").await.unwrap().id;
    let tag_sets = [vec![prod.clone()], vec![dev], vec![prod, team.clone()], vec![], vec![team], vec![]];
    for (i, tag_ids) in tag_sets.into_iter().enumerate() {
        let name = ["a", "b", "a", "c", "b", "a"][i].to_string();
        let req = CreateSnapshots { volumes: vec![disks[i % 2].clone()], name, tag_ids, ..Default::default() };
        svc.create_snapshots(&alice, req).await.unwrap();
        svc.wait_idle().await;
    }
    let describe = |body: String| {
        let ctx = f.ctx.clone();
        async move {
            let (st, v) = send(&ctx, tc3("DescribeSnapshots", &body, "AKIDalice", "alice-secret", now())).await;
            assert_eq!(st, StatusCode::OK, "{body}: {v}");
            let r = &v["Response"];
            let items = r["SnapshotSet"].as_array().unwrap().clone();
            (r["TotalCount"].as_u64().unwrap(), items)
        }
    };
    let (total, all) = describe(r#"{"Limit":100}"#.into()).await;
    assert_eq!((total, all.len()), (6, 6));
    assert_eq!(all.iter().map(|s| s["Tags"].as_array().unwrap().len()).sum::<usize>(), 5, "the tags bound");
    let ids = |items: &[Value]| items.iter().map(|s| s["SnapshotId"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let has_tag = |s: &Value, k: Option<&str>, v: Option<&str>| {
        s["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| k.is_none_or(|k| t["Key"] == k) && v.is_none_or(|v| t["Value"] == v))
    };
    type Pick = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Pick)> = vec![
        (
            r#"[{"Name":"snapshot-name","Values":["a","c"]}]"#,
            Box::new(|s| s["SnapshotName"] == "a" || s["SnapshotName"] == "c"),
        ),
        (r#"[{"Name":"tag-key","Values":["team"]}]"#, Box::new(move |s| has_tag(s, Some("team"), None))),
        (r#"[{"Name":"tag-value","Values":["dev","nope"]}]"#, Box::new(move |s| has_tag(s, None, Some("dev")))),
        (
            r#"[{"Name":"tag:env","Values":["prod"]},{"Name":"snapshot-name","Values":["a"]}]"#,
            Box::new(move |s| has_tag(s, Some("env"), Some("prod")) && s["SnapshotName"] == "a"),
        ),
        (
            r#"[{"Name":"tag:env","Values":["prod","dev"]},{"Name":"tag-key","Values":["team"]}]"#,
            Box::new(move |s| has_tag(s, Some("env"), None) && has_tag(s, Some("team"), None)),
        ),
        (r#"[{"Name":"tag:nokey","Values":["x"]}]"#, Box::new(|_| false)),
        (r#"[{"Name":"disk-usage","Values":["SYSTEM_DISK"]}]"#, Box::new(|s| s["DiskUsage"] == "SYSTEM_DISK")),
        (r#"[{"Name":"disk-usage","Values":["SYSTEM_DISK","DATA_DISK"]}]"#, Box::new(|_| true)),
        (r#"[{"Name":"snapshot-state","Values":["NORMAL"]}]"#, Box::new(|s| s["SnapshotState"] == "NORMAL")),
        (
            r#"[{"Name":"snapshot-state","Values":["CREATING","TORECYCLE"]}]"#,
            Box::new(|s| s["SnapshotState"] == "CREATING"),
        ),
        (r#"[{"Name":"encrypt","Values":["FALSE"]}]"#, Box::new(|s| s["Encrypt"] == false)),
        (r#"[{"Name":"encrypt","Values":["TRUE"]}]"#, Box::new(|s| s["Encrypt"] == true)),
        (r#"[{"Name":"snapshot-type","Values":["SHARED_SNAPSHOT"]}]"#, Box::new(|_| false)),
        (r#"[{"Name":"project-id","Values":["0"]},{"Name":"zone","Values":["ap-guangzhou"]}]"#, Box::new(|_| true)),
        (r#"[{"Name":"zone","Values":["ap-nowhere"]}]"#, Box::new(|_| false)),
    ];
    for (filters, pick) in cases {
        let want: Vec<Value> = all.iter().filter(|s| pick(s)).cloned().collect();
        let (total, got) = describe(format!(r#"{{"Limit":100,"Filters":{filters}}}"#)).await;
        assert_eq!((total, ids(&got)), (want.len() as u64, ids(&want)), "{filters}");
        // Oldest first, one page into the matches.
        let (total, got) = describe(format!(r#"{{"Order":"ASC","Offset":1,"Limit":2,"Filters":{filters}}}"#)).await;
        let mut asc = ids(&want);
        asc.reverse();
        assert_eq!((total, ids(&got)), (want.len() as u64, asc.into_iter().skip(1).take(2).collect()), "{filters} ASC");
    }
    let (_, v) = send(
        &f.ctx,
        tc3(
            "DescribeSnapshots",
            r#"{"Filters":[{"Name":"encrypt","Values":["maybe"]}]}"#,
            "AKIDalice",
            "alice-secret",
            now(),
        ),
    )
    .await;
    assert_eq!(code(&v), "InvalidFilter", "{v}");
}

/// Issue 16: DescribeSnapshots is kept in the service's page cache without its request id;
/// every answer carries its own, and a rename or a new snapshot is in the very next list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_the_next_cached_snapshot_list() {
    use disksnap_service::{Caller, CreateSnapshots, CreateVolumes};
    let f = fixture().await;
    let svc = &f.ctx.service;
    let alice = Caller::new("alice");
    let req = CreateVolumes { size_gib: 1, count: 1, ..Default::default() };
    let disk = svc.create_volumes(&alice, req).await.unwrap().1.remove(0).id;
    svc.wait_idle().await;
    let req = CreateSnapshots { volumes: vec![disk.clone()], name: "one".into(), ..Default::default() };
    let snap = svc.create_snapshots(&alice, req).await.unwrap().1.remove(0).id;
    svc.wait_idle().await;
    let ctx = f.ctx.clone();
    let describe = || {
        let ctx = ctx.clone();
        async move {
            let (st, v) = send(&ctx, tc3("DescribeSnapshots", "{}", "AKIDalice", "alice-secret", now())).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            v["Response"].clone()
        }
    };
    let (first, again) = (describe().await, describe().await);
    assert_eq!(
        (first["TotalCount"].clone(), first["SnapshotSet"][0]["SnapshotName"].clone()),
        (1.into(), "one".into())
    );
    let rid = |v: &Value| v["RequestId"].as_str().unwrap().to_string();
    assert!(!rid(&first).is_empty() && rid(&first) != rid(&again), "a request id per answer: {first} {again}");
    let mut a = first.clone();
    let mut b = again.clone();
    a.as_object_mut().unwrap().remove("RequestId");
    b.as_object_mut().unwrap().remove("RequestId");
    assert_eq!(a, b);
    let shown = disksnap_dialect_tencent3::wire::show(disksnap_service::Kind::Snapshot, &snap);
    let body = serde_json::json!({"SnapshotId": shown, "SnapshotName": "renamed"}).to_string();
    let (st, v) = send(&f.ctx, tc3("ModifySnapshotAttribute", &body, "AKIDalice", "alice-secret", now())).await;
    assert_eq!((st, code(&v)), (StatusCode::OK, ""), "{v}");
    let r = describe().await;
    assert_eq!(r["SnapshotSet"][0]["SnapshotName"], "renamed", "the name is in the next list: {r}");
    let req = CreateSnapshots { volumes: vec![disk], name: "two".into(), ..Default::default() };
    svc.create_snapshots(&alice, req).await.unwrap();
    svc.wait_idle().await;
    let r = describe().await;
    assert_eq!(r["TotalCount"], 2, "the new snapshot is in the next list: {r}");
}
