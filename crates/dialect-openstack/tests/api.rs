//! The dialect's routes end to end against a real service in a temp dir: Keystone, the version
//! echo, views per microversion, error envelopes per route.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use disksnap_api_common::{ApiContext, KeyRing, ProjectUser};
use disksnap_service::{Service, ServiceConfig, ZoneConfig};

const PID: &str = "0123456789abcdef0123456789abcdef";
const HUAWEI_AK: &str = "MYAKEXAMPLE";
const HUAWEI_SK: &str = "MYSKEXAMPLE";

async fn app(dir: &std::path::Path) -> (Router, ApiContext) {
    let mut cfg = ServiceConfig::new(dir);
    cfg.zones = vec![ZoneConfig { name: "pek3a".into(), aliases: vec!["RegionOne".into()] }];
    cfg.accounts = vec!["dev".into(), "other".into()];
    let svc = Service::open(cfg).await.unwrap();
    let mut keys = KeyRing::default();
    for (account, pid, user) in [("dev", PID, "demo"), ("other", "fedcba9876543210fedcba9876543210", "other")] {
        keys.add_user(
            disksnap_dialect_openstack::USERS,
            ProjectUser {
                account: account.into(),
                project_id: pid.into(),
                project_name: user.into(),
                user: user.into(),
                password: "secret".into(),
            },
        )
        .unwrap();
    }
    keys.add(disksnap_dialect_openstack::HUAWEI_KEYS, HUAWEI_AK, "dev", HUAWEI_SK).unwrap();
    let mut ctx = ApiContext::new(svc, keys);
    ctx.token_lifetime = Duration::from_secs(60);
    (disksnap_dialect_openstack::routes(ctx.clone()), ctx)
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    mv: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(path).header("host", "127.0.0.1:7480");
    if let Some(t) = token {
        b = b.header("x-auth-token", t);
    }
    if let Some(v) = mv {
        b = b.header("openstack-api-version", v);
    }
    let req = match body {
        Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let raw = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Resp { status, headers, body, raw }
}

fn auth_body(user: &str, password: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "password": password,
        "domain": {"name": "Default"}}}}, "scope": {"project": {"name": user, "domain": {"name": "Default"}}}}})
}

async fn token(app: &Router, user: &str) -> String {
    let r = call(app, "POST", "/identity/v3/auth/tokens", None, None, Some(auth_body(user, "secret"))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    r.headers["x-subject-token"].to_str().unwrap().to_string()
}

async fn wait_status(app: &Router, path: &str, tok: &str, key: &str, want: &str) -> Value {
    for _ in 0..200 {
        let r = call(app, "GET", path, Some(tok), None, None).await;
        if r.body[key]["status"] == want {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never became {want}");
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_versions_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let r = call(&app, "GET", "/identity", None, None, None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(r.body["versions"]["values"][0]["links"][0]["href"], "http://127.0.0.1:7480/identity/v3/");
    let r = call(&app, "POST", "/identity/v3/auth/tokens", None, None, Some(auth_body("demo", "secret"))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let t = &r.body["token"];
    assert_eq!(t["project"]["id"], PID);
    let exp = t["expires_at"].as_str().unwrap();
    assert!(exp.ends_with('Z') && exp.len() == 27, "{exp}");
    let types: Vec<&str> = t["catalog"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["identity", "block-storage", "volumev3", "volumev2"]);
    assert_eq!(t["catalog"][1]["endpoints"][0]["url"], format!("http://127.0.0.1:7480/v3/{PID}"));
    assert_eq!(t["catalog"][1]["endpoints"][0]["region"], "RegionOne");
    let bad = call(&app, "POST", "/identity/v3/auth/tokens", None, None, Some(auth_body("demo", "nope"))).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.body["error"]["code"], 401);
    assert!(bad.headers.get("www-authenticate").is_some());
    assert!(bad.headers.get("openstack-auth-receipt").is_none());
    let none = call(&app, "GET", &format!("/v3/{PID}/snapshots"), None, None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body["error"]["message"], "The request you have made requires authentication.");
    let garbage = call(&app, "POST", "/identity/v3/auth/tokens", None, None, Some(json!("x"))).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);

    // A token works until revoked (`openstack token revoke`).
    let tok = token(&app, "demo").await;
    let r = call(&app, "GET", &format!("/v3/{PID}/snapshots"), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let req = Request::builder()
        .method("DELETE")
        .uri("/identity/v3/auth/tokens")
        .header("x-auth-token", &tok)
        .header("x-subject-token", &tok)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::NO_CONTENT);
    let r = call(&app, "GET", &format!("/v3/{PID}/snapshots"), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_views_versions_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let tok = token(&app, "demo").await;
    let base = format!("/v3/{PID}");

    let r = call(&app, "GET", "/v3/", None, None, None).await;
    assert_eq!(r.body["versions"][0]["version"], "3.71");
    let r =
        call(&app, "POST", &format!("{base}/volumes"), Some(&tok), None, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body["volume"].get("os-vol-tenant-attr:tenant_id").is_none());
    let vid = r.body["volume"]["id"].as_str().unwrap().to_string();
    assert!(vid.starts_with("d15c0001-0000-4000-8000-"));
    wait_status(&app, &format!("{base}/volumes/{vid}"), &tok, "volume", "available").await;

    // Create at 3.0 with the version echoed; the create view has no extended attributes.
    let body = json!({"snapshot": {"volume_id": vid, "name": "n", "force": false, "metadata": {"k": "v"}}});
    let r = call(&app, "POST", &format!("{base}/snapshots"), Some(&tok), Some("volume 3.0"), Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.headers["openstack-api-version"], "volume 3.0");
    assert_eq!(r.headers["vary"], "OpenStack-API-Version");
    assert!(r.headers["x-openstack-request-id"].to_str().unwrap().starts_with("req-"));
    assert_eq!(
        keys(&r.body["snapshot"]),
        ["created_at", "description", "id", "metadata", "name", "size", "status", "updated_at", "volume_id"]
    );
    let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    let shown = wait_status(&app, &format!("{base}/snapshots/{sid}"), &tok, "snapshot", "available").await;
    assert_eq!(shown["snapshot"]["os-extended-snapshot-attributes:progress"], "100%");
    assert_eq!(shown["snapshot"]["metadata"], json!({"k": "v"}));
    let created = shown["snapshot"]["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 26, "{created}");

    // Versioned fields at 3.65, none in the summary list.
    let r = call(&app, "GET", &format!("{base}/snapshots/{sid}"), Some(&tok), Some("volume 3.65"), None).await;
    assert_eq!(r.body["snapshot"]["consumes_quota"], true);
    assert!(r.body["snapshot"]["user_id"].is_string() && r.body["snapshot"]["group_snapshot_id"].is_null());
    let r = call(&app, "GET", &format!("{base}/snapshots"), Some(&tok), Some("volume 3.65"), None).await;
    assert_eq!(keys(&r.body["snapshots"][0]).len(), 9);
    assert_eq!(keys(&r.body), ["snapshots"]);

    // Errors in Cinder's envelope; the version is echoed on faults too.
    let r = call(
        &app,
        "GET",
        &format!("{base}/snapshots/d15c0002-0000-4000-8000-000000000001"),
        Some(&tok),
        Some("volume 3.10"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["itemNotFound"]["code"], 404);
    assert_eq!(r.headers["openstack-api-version"], "volume 3.10");
    let r = call(&app, "GET", &format!("{base}/snapshots"), Some(&tok), Some("volume 3.99"), None).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert!(r.body["computeFault"]["message"].as_str().unwrap().contains("maximum is 3.71"));
    assert!(r.headers.get("openstack-api-version").is_none());
    let r = call(&app, "GET", &format!("{base}/snapshots"), Some(&tok), Some("volume 3.x"), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(&app, "GET", &format!("{base}/snapshots?limit=x"), Some(&tok), None, None).await;
    assert_eq!(r.body["badRequest"]["message"], "limit param must be an integer");
    let r = call(
        &app,
        "POST",
        &format!("{base}/snapshots"),
        Some(&tok),
        None,
        Some(json!({"snapshot": {"volume_id": null}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &app,
        "POST",
        &format!("{base}/snapshots"),
        Some(&tok),
        None,
        Some(json!({"snapshot": {"volume_id": vid, "bogus": 1}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r =
        call(&app, "PUT", &format!("{base}/snapshots/{sid}"), Some(&tok), None, Some(json!({"snapshot": {}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        &app,
        "POST",
        &format!("{base}/snapshots/{sid}/action"),
        Some(&tok),
        None,
        Some(json!({"os-unmanage": {}})),
    )
    .await;
    assert!(r.body["badRequest"]["message"].as_str().unwrap().starts_with("There is no such action: os-unmanage"));
    let r = call(&app, "POST", &format!("{base}/snapshots/{sid}/action"), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(&app, "PATCH", &format!("{base}/snapshots/{sid}"), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Revert below 3.40 does not exist; at 3.40 it works on the newest snapshot.
    let revert = json!({"revert": {"snapshot_id": sid}});
    let r = call(
        &app,
        "POST",
        &format!("{base}/volumes/{vid}/action"),
        Some(&tok),
        Some("volume 3.39"),
        Some(revert.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&app, "POST", &format!("{base}/volumes/{vid}/action"), Some(&tok), Some("volume 3.40"), Some(revert))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.raw.is_empty());
    wait_status(&app, &format!("{base}/volumes/{vid}"), &tok, "volume", "available").await;

    // The same snapshot through /v2 (EVS): string codes, no version header.
    let r = call(
        &app,
        "GET",
        &format!("/v2/{PID}/snapshots/d15c0002-0000-4000-8000-000000000001"),
        Some(&tok),
        Some("volume 3.5"),
        None,
    )
    .await;
    assert_eq!(r.body["itemNotFound"]["code"], "EVS.4040");
    assert!(r.headers.get("openstack-api-version").is_none());

    // Another project: its URL is forbidden, its ids are not found.
    let other = token(&app, "other").await;
    let r = call(&app, "GET", &format!("{base}/snapshots"), Some(&other), None, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&app, "GET", &format!("/v3/snapshots/{sid}"), Some(&other), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&app, "GET", &format!("/v3/snapshots/{sid}"), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::OK);

    // Delete: 202 with no body, then gone.
    let r = call(&app, "DELETE", &format!("{base}/snapshots/{sid}"), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.raw.is_empty());
    for _ in 0..200 {
        if call(&app, "GET", &format!("{base}/snapshots/{sid}"), Some(&tok), None, None).await.status
            == StatusCode::NOT_FOUND
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("snapshot not deleted");
}

/// A request to `/identity/v3/auth/tokens` with both token headers.
async fn token_op(app: &Router, method: &str, auth: &str, subject: &str) -> Resp {
    let req = Request::builder()
        .method(method)
        .uri("/identity/v3/auth/tokens")
        .header("x-auth-token", auth)
        .header("x-subject-token", subject)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let raw = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Resp { status, headers, body, raw }
}

/// Keystone's rule for a non-admin caller: a token revokes itself or a token of its own project;
/// another project's token is not found (its existence is not disclosed either), and GET/HEAD
/// (token validation, not served) show nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revokes_only_its_own_projects_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let a = token(&app, "demo").await;
    let b = token(&app, "other").await;
    let mine = format!("/v3/{PID}/snapshots");

    let r = token_op(&app, "DELETE", &b, &a).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another project's token must not be revoked");
    assert_eq!(r.body["error"]["code"], 404);
    assert_eq!(r.body["error"]["message"], "Could not find token.");
    assert_eq!(token_op(&app, "DELETE", &b, "no-such-token").await.body, r.body, "same answer as an unknown token");
    assert_eq!(call(&app, "GET", &mine, Some(&a), None, None).await.status, StatusCode::OK, "A's session lives on");
    for method in ["GET", "HEAD"] {
        let r = token_op(&app, method, &b, &a).await;
        assert_ne!(r.status, StatusCode::OK, "{method}");
        let text = String::from_utf8_lossy(&r.raw);
        assert!(!text.contains(PID) && !text.contains("demo") && r.headers.get("x-subject-token").is_none(), "{text}");
    }

    // The same project: a second token of A's may end the first.
    let a2 = token(&app, "demo").await;
    assert_eq!(token_op(&app, "DELETE", &a2, &a).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, "GET", &mine, Some(&a), None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "GET", &mine, Some(&a2), None, None).await.status, StatusCode::OK);
    // A revoked or foreign caller token cannot revoke anything.
    assert_eq!(token_op(&app, "DELETE", &a, &a2).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(token_op(&app, "DELETE", &b, &b).await.status, StatusCode::NO_CONTENT);
}

/// An SDK-HMAC-SHA256 request as huaweicloudsdkcore signs it, `sent` as the body on the wire
/// while `signed` is the body the signature was made for.
fn evs_request(signed: &[u8], sent: &[u8], extra: &[(&str, &str)]) -> Request<Body> {
    use disksnap_dialect_openstack::signature::{canonical_request, signature, string_to_sign};
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let path = format!("/v2/{PID}/cloudsnapshots");
    let mut headers = axum::http::HeaderMap::new();
    for (k, v) in [
        ("content-type", "application/json;charset=UTF-8"),
        ("host", "127.0.0.1:7480"),
        ("x-project-id", PID),
        ("x-sdk-date", date.as_str()),
    ] {
        headers.insert(k, v.parse().unwrap());
    }
    let names: Vec<String> = ["content-type", "host", "x-project-id", "x-sdk-date"].map(String::from).to_vec();
    let raw = disksnap_api_common::RawRequest {
        method: axum::http::Method::POST,
        path: path.clone(),
        query: String::new(),
        headers: headers.clone(),
        body: axum::body::Bytes::copy_from_slice(signed),
        request_id: disksnap_api_common::RequestId::new(),
    };
    let sig = signature(HUAWEI_SK, &string_to_sign(&date, &canonical_request(&raw, &names).unwrap()));
    let mut b = Request::builder().method("POST").uri(path);
    for (k, v) in &headers {
        b = b.header(k, v);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.header(
        "authorization",
        format!("SDK-HMAC-SHA256 Access={HUAWEI_AK}, SignedHeaders={}, Signature={sig}", names.join(";")),
    )
    .body(Body::from(sent.to_vec()))
    .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let raw = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
}

/// The payload hash is the hash of the body that arrived: an unsigned `X-Sdk-Content-Sha256`
/// naming the signed body's hash does not make a different body pass, and `UNSIGNED-PAYLOAD`
/// (which huaweicloudsdkcore sends only for non-JSON bodies, never on EVS) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evs_signature_covers_the_body_received() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let signed = br#"{"snapshot": {"volume_id": "d15c0001-0000-4000-8000-000000000001", "name": "signed"}}"#;
    let forged = br#"{"snapshot": {"volume_id": "d15c0001-0000-4000-8000-000000000002", "name": "forged"}}"#;
    let hash = disksnap_api_common::sign::sha256_hex(signed);
    // The genuine request authenticates (and then finds no such volume), with or without the header.
    for extra in [&[][..], &[("x-sdk-content-sha256", hash.as_str())][..]] {
        let (status, v) = send(&app, evs_request(signed, signed, extra)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    }
    for extra in
        [&[][..], &[("x-sdk-content-sha256", hash.as_str())][..], &[("x-sdk-content-sha256", "UNSIGNED-PAYLOAD")][..]]
    {
        let (status, v) = send(&app, evs_request(signed, forged, extra)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{extra:?}: {v}");
        assert_eq!(v["error_code"], "APIGW.0301", "{v}");
    }
    let (status, v) = send(&app, evs_request(signed, signed, &[("x-sdk-content-sha256", "UNSIGNED-PAYLOAD")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error_msg"].as_str().unwrap().contains("UNSIGNED-PAYLOAD"), "{v}");
}

/// The other dialects' paths on the same listener (dialects.md §1.1) merge with these routes
/// and keep their own requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_merge_with_the_other_dialects() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, _) = app(dir.path()).await;
    let other = Router::new()
        .route("/v2/zone/{*rest}", axum::routing::any(|| async { "idc51" }))
        .route("/v2/oauth2/token", axum::routing::any(|| async { "idc51-token" }))
        .route("/v2/index.php", axum::routing::any(|| async { "tencent" }))
        .route("/iaas/", axum::routing::any(|| async { "qingcloud" }));
    let merged = mine.merge(other);
    for (path, want) in [
        ("/v2/zone/pek3a/volume_snapshots", "idc51"),
        ("/v2/oauth2/token", "idc51-token"),
        ("/v2/index.php", "tencent"),
        ("/iaas/", "qingcloud"),
    ] {
        let r = call(&merged, "GET", path, None, None, None).await;
        assert_eq!(String::from_utf8(r.raw).unwrap(), want, "{path}");
    }
    let r = call(&merged, "GET", &format!("/v2/{PID}/snapshots"), None, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The indexed list (keyset marker, `created_at` order, status/name/volume_id filters, offset,
/// limit, count) shows exactly what the in-memory scan shows: `name~=` (an empty substring,
/// matching everything) forces the scan for the same request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_list_agrees_with_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let tok = token(&app, "demo").await;
    let base = format!("/v3/{PID}");
    let mut vols = Vec::new();
    for _ in 0..2 {
        let r = call(&app, "POST", &format!("{base}/volumes"), Some(&tok), None, Some(json!({"volume": {"size": 1}})))
            .await;
        let vid = r.body["volume"]["id"].as_str().unwrap().to_string();
        wait_status(&app, &format!("{base}/volumes/{vid}"), &tok, "volume", "available").await;
        vols.push(vid);
    }
    let mut snaps = Vec::new();
    for i in 0..6 {
        let vid = &vols[i % 2];
        let body = json!({"snapshot": {"volume_id": vid, "name": format!("n{}", i % 3)}});
        let r = call(&app, "POST", &format!("{base}/snapshots"), Some(&tok), None, Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
        wait_status(&app, &format!("{base}/snapshots/{sid}"), &tok, "snapshot", "available").await;
        snaps.push(sid);
    }
    let list = |q: String| {
        let app = app.clone();
        let tok = tok.clone();
        let base = base.clone();
        async move {
            let r =
                call(&app, "GET", &format!("{base}/snapshots/detail?{q}"), Some(&tok), Some("volume 3.71"), None).await;
            let ids: Vec<String> = r.body["snapshots"]
                .as_array()
                .map(|a| a.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (r.status, ids, r.body.get("snapshots_links").is_some(), r.body.get("count").cloned())
        }
    };
    let queries = [
        String::new(),
        "limit=2".into(),
        format!("limit=2&marker={}", snaps[3]),
        format!("marker={}", snaps[0]),
        format!("sort=created_at:asc&limit=3&marker={}", snaps[1]),
        "sort_key=created_at&sort_dir=asc&offset=1&limit=2".into(),
        "sort=created_at:desc,id:desc&limit=4".into(),
        "offset=2&limit=2&with_count=true".into(),
        "name=n1&with_count=true".into(),
        "status=available&limit=3".into(),
        "status=AVAILABLE&with_count=true".into(),
        "status=error&with_count=true".into(),
        format!("volume_id={}&limit=2&marker={}", vols[1], snaps[5]),
        format!("volume_id={}", vols[0].to_uppercase()),
        "volume_id=vol-00000000".into(),
        "limit=0&with_count=true".into(),
        "marker=d15c0002-0000-4000-8000-000000000001".into(),
        "marker=nope".into(),
    ];
    for q in queries {
        let indexed = list(q.clone()).await;
        let scanned = list(format!("{q}&name~=")).await;
        assert_eq!(indexed, scanned, "{q}");
    }
    // Volumes: the same for the indexed volume list.
    let vlist = |q: String| {
        let app = app.clone();
        let tok = tok.clone();
        let base = base.clone();
        async move {
            let r =
                call(&app, "GET", &format!("{base}/volumes/detail?{q}"), Some(&tok), Some("volume 3.71"), None).await;
            let ids: Vec<String> = r.body["volumes"]
                .as_array()
                .map(|a| a.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (r.status, ids, r.body.get("volumes_links").is_some(), r.body.get("count").cloned())
        }
    };
    for q in [
        String::new(),
        "limit=1".into(),
        format!("marker={}", vols[1]),
        format!("sort=created_at:asc&limit=1&marker={}", vols[0]),
        "bootable=false&with_count=true&offset=1".into(),
        "bootable=true&with_count=true".into(),
        "limit=0&with_count=true".into(),
        "marker=d15c0001-0000-4000-8000-000000000001".into(),
    ] {
        assert_eq!(vlist(q.clone()).await, vlist(format!("{q}&name~=")).await, "{q}");
    }
    assert_eq!(vlist(String::new()).await.1, vec![vols[1].clone(), vols[0].clone()]);

    // Spot checks of the order itself: newest first; a marker continues strictly after it.
    let (_, all, _, _) = list(String::new()).await;
    assert_eq!(all, snaps.iter().rev().cloned().collect::<Vec<_>>());
    let (_, after, links, _) = list(format!("limit=2&marker={}", snaps[4])).await;
    assert_eq!((after, links), (vec![snaps[3].clone(), snaps[2].clone()], true));
    let (status, _, _, _) = list("marker=d15c0002-0000-4000-8000-000000000001".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A deleted snapshot is no marker any more.
    let r = call(&app, "DELETE", &format!("{base}/snapshots/{}", snaps[2]), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    for _ in 0..200 {
        if list(String::new()).await.1.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, _, _) = list(format!("marker={}", snaps[2])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(list(format!("marker={}", snaps[2])).await, list(format!("marker={}&name~=", snaps[2])).await);
}
