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
    app_on(dir, None).await
}

/// The dialect over a service whose metadata is in `database_url` (None: SQLite in `dir`).
async fn app_on(dir: &std::path::Path, database_url: Option<String>) -> (Router, ApiContext) {
    let mut cfg = ServiceConfig::new(dir);
    cfg.database_url = database_url;
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

/// Items of a list page, as `(id, key → value)` for the sort keys the list tests compare.
fn sort_view(item: &Value) -> (String, Vec<(String, Value)>) {
    let f = |k: &str| item.get(k).cloned().unwrap_or(Value::Null);
    let keys = [
        ("created_at", f("created_at")),
        ("updated_at", f("updated_at")),
        ("name", f("name")),
        ("display_name", f("name")),
        ("display_description", f("description")),
        ("status", f("status")),
        ("volume_id", f("volume_id")),
        ("volume_size", f("size")),
        ("size", f("size")),
        ("bootable", f("bootable")),
        ("availability_zone", f("availability_zone")),
        ("project_id", Value::Null),
        ("id", f("id")),
    ];
    (item["id"].as_str().unwrap().to_string(), keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The order Cinder gives (`process_sort_params`): the keys asked, then `created_at` and `id`
/// in the first key's direction (descending when none was asked); null names sort first.
fn cinder_order(items: &[Value], sort: &[(&str, bool)]) -> Vec<String> {
    let mut keys: Vec<(String, bool)> = sort.iter().map(|(k, a)| (k.to_string(), *a)).collect();
    let default_asc = sort.first().is_some_and(|(_, a)| *a);
    for k in ["created_at", "id"] {
        if !keys.iter().any(|(x, _)| x == k) {
            keys.push((k.to_string(), default_asc));
        }
    }
    let cmp = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_u64().cmp(&y.as_u64()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        // (A name or description not set shows null and is stored empty: first.)
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        (x, y) => x.to_string().cmp(&y.to_string()),
    };
    let mut views: Vec<(String, Vec<(String, Value)>)> = items.iter().map(sort_view).collect();
    views.sort_by(|(_, a), (_, b)| {
        let get = |v: &[(String, Value)], k: &str| v.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone()).unwrap();
        keys.iter()
            .map(|(k, asc)| {
                let o = cmp(&get(a, k), &get(b, k));
                if *asc {
                    o
                } else {
                    o.reverse()
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    views.into_iter().map(|(id, _)| id).collect()
}

/// Every list is SQL now (issue 11: the in-memory fallback is gone). Sorted by any Cinder key,
/// followed page by page through the next links, a list gives the order Cinder's rule gives
/// over the same items; a status filter and a status sort see `os-reset_status` overrides
/// exactly while they are alive; markers, offsets and counts keep their meaning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sort_filter_and_page_in_the_store() {
    lists_in_the_store(None).await;
}

/// The same on PostgreSQL: both backends sort, filter and page alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sort_filter_and_page_in_the_store_on_postgres() {
    if let Some(url) = disksnap_service::testing::fresh_pg_database("lists_sort_filter_and_page_in_the_store").await {
        lists_in_the_store(Some(url)).await;
    }
}

async fn lists_in_the_store(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app_on(dir.path(), database_url).await;
    let tok = token(&app, "demo").await;
    let base = format!("/v3/{PID}");
    let mut vols = Vec::new();
    for (size, name) in [(1, "b"), (2, "a"), (1, "c")] {
        let body = json!({"volume": {"size": size, "name": name}});
        let r = call(&app, "POST", &format!("{base}/volumes"), Some(&tok), None, Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        let vid = r.body["volume"]["id"].as_str().unwrap().to_string();
        wait_status(&app, &format!("{base}/volumes/{vid}"), &tok, "volume", "available").await;
        vols.push(vid);
    }
    let mut snaps = Vec::new();
    for i in 0..8 {
        let vid = &vols[i % 3];
        let mut s = json!({"volume_id": vid, "description": format!("d{}", (i * 5) % 3)});
        if i != 6 {
            s["name"] = json!(["b", "a", "c", "a", "B"][i % 5]);
        }
        let r = call(&app, "POST", &format!("{base}/snapshots"), Some(&tok), None, Some(json!({"snapshot": s}))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
        wait_status(&app, &format!("{base}/snapshots/{sid}"), &tok, "snapshot", "available").await;
        snaps.push(sid);
    }
    // Overrides: two snapshots shown `error`, one `creating`.
    for (i, status) in [(1, "error"), (4, "error"), (6, "creating")] {
        let body = json!({"os-reset_status": {"status": status}});
        let r =
            call(&app, "POST", &format!("{base}/snapshots/{}/action", snaps[i]), Some(&tok), None, Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    }
    let get = |path: String| {
        let app = app.clone();
        let tok = tok.clone();
        async move { call(&app, "GET", &path, Some(&tok), Some("volume 3.71"), None).await }
    };
    // Every page of a list, following the next links.
    let follow = |first: String, key: &'static str| async move {
        let mut path = first.clone();
        let mut ids = Vec::new();
        for _ in 0..50 {
            let r = get(path.clone()).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
            ids.extend(r.body[key].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()));
            match r.body[format!("{key}_links")][0]["href"].as_str() {
                Some(h) => path = h.trim_start_matches("http://127.0.0.1:7480").to_string(),
                None => return ids,
            }
        }
        panic!("{first}: no last page");
    };
    let all = get(format!("{base}/snapshots/detail")).await.body["snapshots"].as_array().unwrap().clone();
    assert_eq!(all.len(), 8);
    for (q, sort) in [
        ("sort=display_name:asc", vec![("display_name", true)]),
        ("sort=volume_size:desc,name:asc", vec![("volume_size", false), ("name", true)]),
        ("sort=status:asc", vec![("status", true)]),
        (
            "sort_key=status,display_description&sort_dir=desc,asc",
            vec![("status", false), ("display_description", true)],
        ),
        ("sort=updated_at:asc", vec![("updated_at", true)]),
        (
            "sort=volume_id:asc,created_at:asc,display_name",
            vec![("volume_id", true), ("created_at", true), ("display_name", false)],
        ),
        ("sort=project_id:asc,id:desc", vec![("project_id", true), ("id", false)]),
        ("sort=created_at:asc", vec![("created_at", true)]),
        ("", vec![]),
    ] {
        let want = cinder_order(&all, &sort);
        for limit in [1, 3, 5] {
            let got = follow(format!("{base}/snapshots/detail?{q}&limit={limit}"), "snapshots").await;
            assert_eq!(got, want, "{q}, limit {limit}");
        }
        // A marker continues strictly after its item, then the offset skips into the rest.
        let r = get(format!("{base}/snapshots?{q}&marker={}&offset=2&limit=3&with_count=true", want[1])).await;
        let ids: Vec<&str> =
            r.body["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!((ids, r.body["count"].clone()), (want[4..7].iter().map(String::as_str).collect(), json!(8)), "{q}");
    }
    // The status filter sees the overrides (and the status sort orders by them).
    let status_ids = |word: &str| {
        cinder_order(&all, &[])
            .into_iter()
            .filter(|id| all.iter().any(|s| s["id"] == *id && s["status"] == word))
            .collect::<Vec<_>>()
    };
    for (word, n) in [("error", 2), ("available", 5), ("creating", 1), ("deleting", 0)] {
        let want = status_ids(word);
        assert_eq!(want.len(), n, "{word}");
        let r = get(format!("{base}/snapshots/detail?status={}&with_count=true", word.to_uppercase())).await;
        let ids: Vec<String> =
            r.body["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
        assert_eq!((ids, r.body["count"].clone()), (want.clone(), json!(n)), "status={word}");
        assert_eq!(follow(format!("{base}/snapshots/detail?status={word}&limit=1"), "snapshots").await, want);
    }
    // A real change ends an override: deleting the `error` snapshot s4 through the admin
    // action would remove it, so rename-free: set it back (an override equal to the real
    // status is dropped), and the filter follows at once.
    let body = json!({"os-reset_status": {"status": "available"}});
    let r = call(&app, "POST", &format!("{base}/snapshots/{}/action", snaps[4]), Some(&tok), None, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = get(format!("{base}/snapshots/detail?status=error&with_count=true")).await;
    assert_eq!((r.body["snapshots"][0]["id"].clone(), r.body["count"].clone()), (json!(snaps[1]), json!(1)));

    // Volumes: every sort key through the store, the status shown as a filter.
    let vall = get(format!("{base}/volumes/detail")).await.body["volumes"].as_array().unwrap().clone();
    for (q, sort) in [
        ("sort=size:desc,name:asc", vec![("size", false), ("name", true)]),
        ("sort=bootable:asc,display_name:desc", vec![("bootable", true), ("display_name", false)]),
        ("sort=status,availability_zone:asc", vec![("status", false), ("availability_zone", true)]),
        ("sort_dir=asc", vec![("created_at", true)]),
    ] {
        let want = cinder_order(&vall, &sort);
        assert_eq!(follow(format!("{base}/volumes/detail?{q}&limit=2"), "volumes").await, want, "{q}");
    }
    let r = get(format!("{base}/volumes/detail?status=Available&with_count=true&sort=name:asc")).await;
    let ids: Vec<&str> = r.body["volumes"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!((ids, r.body["count"].clone()), (vec![vols[1].as_str(), vols[0].as_str(), vols[2].as_str()], json!(3)));
    let r = get(format!("{base}/volumes/detail?status=in-use&with_count=true")).await;
    assert_eq!((r.body["volumes"].clone(), r.body["count"].clone()), (json!([]), json!(0)));

    // Spot checks of the default order: newest first; a marker continues strictly after it.
    let list = |q: String| {
        let base = base.clone();
        async move {
            let r = get(format!("{base}/snapshots/detail?{q}")).await;
            let ids: Vec<String> = r.body["snapshots"]
                .as_array()
                .map(|a| a.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (r.status, ids, r.body.get("snapshots_links").is_some())
        }
    };
    let (_, all_ids, _) = list(String::new()).await;
    assert_eq!(all_ids, snaps.iter().rev().cloned().collect::<Vec<_>>());
    let (_, after, links) = list(format!("limit=2&marker={}", snaps[4])).await;
    assert_eq!((after, links), (vec![snaps[3].clone(), snaps[2].clone()], true));
    let (status, _, _) = list("marker=d15c0002-0000-4000-8000-000000000001".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = list("sort=name:asc&marker=nope".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A deleted snapshot is no marker any more, in any order.
    let r = call(&app, "DELETE", &format!("{base}/snapshots/{}", snaps[2]), Some(&tok), None, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    for _ in 0..200 {
        if list(String::new()).await.1.len() == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for q in ["", "sort=status:asc&"] {
        let (status, _, _) = list(format!("{q}marker={}", snaps[2])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{q}");
    }
}

/// Issue 16: a list body is cached until the page generation moves; an `os-reset_status`
/// override (request state) moves it, so the next list shows the status set, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_override_is_in_the_next_cached_list() {
    a_status_override_is_in_the_next_cached_list_on(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_override_is_in_the_next_cached_list_on_postgres() {
    if let Some(url) =
        disksnap_service::testing::fresh_pg_database("a_status_override_is_in_the_next_cached_list").await
    {
        a_status_override_is_in_the_next_cached_list_on(Some(url)).await;
    }
}

async fn a_status_override_is_in_the_next_cached_list_on(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app_on(dir.path(), database_url).await;
    let tok = token(&app, "demo").await;
    let base = format!("/v3/{PID}");
    let r =
        call(&app, "POST", &format!("{base}/volumes"), Some(&tok), None, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let vid = r.body["volume"]["id"].as_str().unwrap().to_string();
    wait_status(&app, &format!("{base}/volumes/{vid}"), &tok, "volume", "available").await;
    let s = json!({"snapshot": {"volume_id": vid}});
    let r = call(&app, "POST", &format!("{base}/snapshots"), Some(&tok), None, Some(s)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    wait_status(&app, &format!("{base}/snapshots/{sid}"), &tok, "snapshot", "available").await;
    let list = format!("{base}/snapshots/detail?with_count=true");
    let shown = |body: &Value| (body["snapshots"][0]["status"].as_str().unwrap().to_string(), body["count"].clone());
    for _ in 0..2 {
        // the second answer comes from the cache
        let r = call(&app, "GET", &list, Some(&tok), Some("volume 3.71"), None).await;
        assert_eq!(shown(&r.body), ("available".to_string(), json!(1)));
    }
    let reset = json!({"os-reset_status": {"status": "error"}});
    let r = call(&app, "POST", &format!("{base}/snapshots/{sid}/action"), Some(&tok), None, Some(reset)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    for _ in 0..2 {
        let r = call(&app, "GET", &list, Some(&tok), Some("volume 3.71"), None).await;
        assert_eq!(shown(&r.body), ("error".to_string(), json!(1)), "the override is in the next list");
    }
    let filtered = format!("{base}/snapshots/detail?with_count=true&status=available");
    let r = call(&app, "GET", &filtered, Some(&tok), Some("volume 3.71"), None).await;
    assert_eq!(r.body["count"], json!(0), "{:?}", r.body);
}

/// Issue 16: checked tokens are kept by the store's token generation; a revocation by another
/// server on the same store (another process or node) is seen by the very next request here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_elsewhere_is_refused_by_the_next_request() {
    a_token_revoked_elsewhere_is_refused_by_the_next_request_on(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_elsewhere_is_refused_by_the_next_request_on_postgres() {
    if let Some(url) =
        disksnap_service::testing::fresh_pg_database("a_token_revoked_elsewhere_is_refused_by_the_next_request").await
    {
        a_token_revoked_elsewhere_is_refused_by_the_next_request_on(Some(url)).await;
    }
}

async fn a_token_revoked_elsewhere_is_refused_by_the_next_request_on(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (here, _) = app_on(dir.path(), database_url.clone()).await;
    let (there, _) = app_on(dir.path(), database_url).await;
    let tok = token(&here, "demo").await;
    let other = token(&here, "demo").await;
    let list = format!("/v3/{PID}/snapshots");
    for _ in 0..2 {
        // the second check is served from memory
        assert_eq!(call(&here, "GET", &list, Some(&tok), None, None).await.status, StatusCode::OK);
        assert_eq!(call(&here, "GET", &list, Some(&other), None, None).await.status, StatusCode::OK);
    }
    assert_eq!(token_op(&there, "DELETE", &other, &tok).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&here, "GET", &list, Some(&tok), None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&here, "GET", &list, Some(&other), None, None).await.status, StatusCode::OK, "only it");
    // a token issued there is good here at once
    let new = token(&there, "demo").await;
    assert_eq!(call(&here, "GET", &list, Some(&new), None, None).await.status, StatusCode::OK);
}
