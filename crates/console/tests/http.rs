//! The console's security rules over real HTTP: a real Service on a temp data dir, the console
//! router on a real socket, requests written by hand (so every header is what a browser sends).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use disksnap_console::{Console, Https};
use disksnap_service::{Caller, Service, ServiceConfig, VolumeFilter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn cookies(&self) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
    }
    /// The value a Set-Cookie gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|r| r.split(';').next().unwrap().to_string()))
    }
    /// The value of the first hidden csrf field on the page.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        self.body[at..at + 64].to_string()
    }
}

async fn send(addr: SocketAddr, method: &str, path: &str, cookie: &str, form: Option<&[(&str, &str)]>) -> Resp {
    send_with(addr, method, path, cookie, "", form).await
}

/// `extra`: more header lines, each ending in CRLF.
async fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    extra: &str,
    form: Option<&[(&str, &str)]>,
) -> Resp {
    let body = form
        .map(|f| f.iter().map(|(k, v)| format!("{k}={}", disksnap_console::html::url(v))).collect::<Vec<_>>().join("&"))
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    req.push_str(extra);
    if form.is_some() {
        req.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    // Bodies are small; chunked framing is left in place (tests only search them).
    Resp { status, headers, body: body.to_string() }
}

struct Env {
    addr: SocketAddr,
    tls_addr: SocketAddr,
    service: Service,
    dir: tempfile::TempDir,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Env {
    /// Stop serving and drop this server's state (its Service, its Console with whatever it
    /// keeps in memory), then start a new one on the same data dir.
    async fn restart(self) -> Env {
        let Env { dir, servers, service, .. } = self;
        for s in servers {
            s.abort();
            let _ = s.await;
        }
        drop(service);
        start_in(dir, vec![]).await
    }
}

async fn start() -> Env {
    start_in(tempfile::tempdir().unwrap(), vec![]).await
}

/// Two accounts: alice (key AKALICE / secret alice-secret, OpenStack user alice / alice-pw) and
/// bob (bob / bob-pw). The second listener marks its requests as HTTPS, as the binary's TLS
/// listener does. Both give the console the peer's address, as the binary's listener does;
/// `proxies`: the peers whose X-Forwarded-For is believed.
async fn start_in(dir: tempfile::TempDir, proxies: Vec<std::net::IpAddr>) -> Env {
    let mut cfg = ServiceConfig::new(dir.path().join("data"));
    cfg.accounts = vec!["alice".into(), "bob".into()];
    let service = Service::open(cfg).await.unwrap();
    let creds: HashMap<&str, (&str, &str)> = HashMap::from([
        ("AKALICE", ("alice-secret", "alice")),
        ("alice", ("alice-pw", "alice")),
        ("bob", ("bob-pw", "bob")),
    ]);
    let auth = Arc::new(move |u: &str, p: &str| creds.get(u).filter(|(pw, _)| *pw == p).map(|(_, a)| a.to_string()));
    let renderings: Vec<disksnap_console::IdRendering> = vec![("QingCloud", qingcloud_style)];
    let app = disksnap_console::router(Console::new(service.clone(), auth, renderings).with_trusted_proxies(proxies));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app2 = app.clone();
    let plain = tokio::spawn(async move {
        let _ = axum::serve(l, app2.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = l2.local_addr().unwrap();
    let tls = tokio::spawn(async move {
        let app = app.layer(axum::Extension(Https));
        let _ = axum::serve(l2, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Env { addr, tls_addr, service, dir, servers: vec![plain, tls] }
}

/// Sign in through the form; returns the session cookie ("ds_session=…").
async fn sign_in(addr: SocketAddr, user: &str, password: &str) -> Resp {
    sign_in_with(addr, user, password, "").await
}

/// The same, with more header lines on the post (`extra`, each ending in CRLF).
async fn sign_in_with(addr: SocketAddr, user: &str, password: &str, extra: &str) -> Resp {
    let form = send(addr, "GET", "/console/login", "", None).await;
    let login = form.cookie("ds_login").unwrap();
    let csrf = form.csrf();
    send_with(
        addr,
        "POST",
        "/console/login",
        &format!("ds_login={login}"),
        extra,
        Some(&[("csrf", &csrf), ("user", user), ("password", password)]),
    )
    .await
}

async fn session(addr: SocketAddr, user: &str, password: &str) -> String {
    let r = sign_in(addr, user, password).await;
    assert_eq!(r.status, 303, "{}", r.body);
    format!("ds_session={}", r.cookie("ds_session").expect("a session cookie"))
}

async fn volume_count(svc: &Service, account: &str) -> u64 {
    svc.volumes(&Caller::new(account), &VolumeFilter { limit: 1, ..Default::default() }).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_go_to_sign_in_and_the_api_is_refused() {
    let env = start().await;
    let r = send(env.addr, "GET", "/console/", "", None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/console/login")));
    let r = send(env.addr, "GET", "/console/api/jobs?ids=j-aaaaaaaa", "", None).await;
    assert_eq!(r.status, 401);
    let r = send(env.addr, "GET", "/console/", "ds_session=0123456789abcdef", None).await;
    assert_eq!(r.status, 303);
    let r = send(env.addr, "GET", "/console/login", "", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-security-policy").unwrap().contains("script-src 'self'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_http_only_cookie_secure_only_over_https() {
    let env = start().await;
    let r = sign_in(env.addr, "AKALICE", "alice-secret").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c = r.cookies().into_iter().find(|c| c.starts_with("ds_session=")).unwrap().to_string();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/console"), "{c}");
    assert!(!c.contains("Secure"), "plain HTTP: {c}");
    let r = sign_in(env.tls_addr, "alice", "alice-pw").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c = r.cookies().into_iter().find(|c| c.starts_with("ds_session=")).unwrap().to_string();
    assert!(c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    // The session works: the overview names the account.
    let cookie = format!("ds_session={}", r.cookie("ds_session").unwrap());
    let page = send(env.tls_addr, "GET", "/console/", &cookie, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"account\">alice<"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_a_forged_sign_in_form_gets_no_session() {
    let env = start().await;
    let r = sign_in(env.addr, "alice", "not-the-password").await;
    assert_eq!(r.status, 401);
    assert!(r.cookie("ds_session").is_none());
    assert!(r.body.contains("Wrong user name or password"), "{}", r.body);
    // Right password, but the form's token is not the one this browser was given.
    let form = send(env.addr, "GET", "/console/login", "", None).await;
    let login = form.cookie("ds_login").unwrap();
    let r = send(
        env.addr,
        "POST",
        "/console/login",
        &format!("ds_login={login}"),
        Some(&[("csrf", &"0".repeat(64)), ("user", "alice"), ("password", "alice-pw")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.cookie("ds_session").is_none());
    // And with no token cookie at all (a cross-site post).
    let r = send(
        env.addr,
        "POST",
        "/console/login",
        "",
        Some(&[("csrf", &login), ("user", "alice"), ("password", "alice-pw")]),
    )
    .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited_per_identity() {
    let env = start().await;
    for _ in 0..disksnap_console::session::FAILS_PER_IDENTITY {
        assert_eq!(sign_in(env.addr, "alice", "guess").await.status, 401);
    }
    // Even the right password is refused now, without being checked.
    let r = sign_in(env.addr, "alice", "alice-pw").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many sign-in attempts"), "{}", r.body);
    assert!(r.cookie("ds_session").is_none());
    // Another identity (bob, or alice's access key) is not held back.
    assert_eq!(sign_in(env.addr, "bob", "bob-pw").await.status, 303);
    assert_eq!(sign_in(env.addr, "AKALICE", "alice-secret").await.status, 303);
}

/// Guessing over many names from one address is stopped by the address's limit; another
/// address is not held back. X-Forwarded-For names the address only when the peer is a
/// configured proxy: from anyone else it is ignored (else a guesser would write a new one
/// into every attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited_per_client_address() {
    use disksnap_console::session::FAILS_PER_ADDRESS;
    let xff = |a: &str| format!("X-Forwarded-For: {a}\r\n");
    // Behind a proxy (the test's own peer address, 127.0.0.1): the header names the client.
    let env = start_in(tempfile::tempdir().unwrap(), vec!["127.0.0.1".parse().unwrap()]).await;
    for i in 0..FAILS_PER_ADDRESS {
        // The proxy's own hop (a trusted address) after the client's is skipped.
        let r = sign_in_with(env.addr, &format!("guess{i}"), "x", &xff("10.0.0.1, 127.0.0.1")).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = sign_in_with(env.addr, "alice", "alice-pw", &xff("10.0.0.1")).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many sign-in attempts from your address"), "{}", r.body);
    assert!(r.cookie("ds_session").is_none());
    assert_eq!(sign_in_with(env.addr, "alice", "alice-pw", &xff("10.0.0.2")).await.status, 303);

    // No proxy configured: the header is the client's own words, and the peer is what counts.
    let env = start().await;
    for i in 0..FAILS_PER_ADDRESS {
        let r = sign_in_with(env.addr, &format!("guess{i}"), "x", &xff(&format!("10.1.0.{i}"))).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = sign_in_with(env.addr, "alice", "alice-pw", &xff("10.9.9.9")).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("from your address"), "{}", r.body);
}

/// Sessions live in the metadata store: a restart keeps people signed in (and a page's forms
/// opened before it still work), and the store never holds a session's cookie value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_server_restart() {
    let env = start().await;
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let token = cookie.strip_prefix("ds_session=").unwrap().to_string();
    let csrf = send(env.addr, "GET", "/console/volumes", &cookie, None).await.csrf();
    let data = env.dir.path().join("data");
    let env = env.restart().await;
    let page = send(env.addr, "GET", "/console/", &cookie, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"account\">alice<"), "{}", page.body);
    // A form from before the restart: its CSRF token is still the session's.
    let r = send(
        env.addr,
        "POST",
        "/console/volumes",
        &cookie,
        Some(&[("csrf", &csrf), ("name", "after-restart"), ("size_gib", "1")]),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(volume_count(&env.service, "alice").await, 1);
    // Neither the cookie's value nor the CSRF token is in the database files.
    for f in std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()) {
        if f.file_name().unwrap().to_string_lossy().starts_with("meta.db") {
            let bytes = std::fs::read(&f).unwrap();
            for secret in [&token, &csrf] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds a secret", f.display());
            }
        }
    }
    // Signing out after the restart ends it for good.
    assert_eq!(send(env.addr, "POST", "/console/logout", &cookie, Some(&[("csrf", &csrf)])).await.status, 303);
    let env = env.restart().await;
    assert_eq!(send(env.addr, "GET", "/console/", &cookie, None).await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_needs_the_session_csrf_token() {
    let env = start().await;
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let page = send(env.addr, "GET", "/console/volumes", &cookie, None).await;
    let csrf = page.csrf();
    for forged in [None, Some("f".repeat(64)), Some(String::new())] {
        let mut form = vec![("name", "x"), ("size_gib", "1"), ("kind", "data")];
        if let Some(f) = &forged {
            form.push(("csrf", f));
        }
        let r = send(env.addr, "POST", "/console/volumes", &cookie, Some(&form)).await;
        assert_eq!(r.status, 403, "{forged:?}");
        assert!(r.body.contains("security token"), "{}", r.body);
    }
    assert_eq!(volume_count(&env.service, "alice").await, 0, "a refused form did nothing");
    // Another session's token is no good either.
    let bob = session(env.addr, "bob", "bob-pw").await;
    let bob_csrf = send(env.addr, "GET", "/console/volumes", &bob, None).await.csrf();
    let r = send(env.addr, "POST", "/console/volumes", &cookie, Some(&[("csrf", &bob_csrf), ("size_gib", "1")])).await;
    assert_eq!(r.status, 403);
    assert_eq!(volume_count(&env.service, "alice").await, 0);
    // The real token works.
    let r = send(
        env.addr,
        "POST",
        "/console/volumes",
        &cookie,
        Some(&[("csrf", &csrf), ("name", "web"), ("size_gib", "1")]),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/console/volumes/vol-"));
    assert_eq!(volume_count(&env.service, "alice").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_never_sees_or_touches_another_accounts_resources() {
    let env = start().await;
    let alice = session(env.addr, "alice", "alice-pw").await;
    let csrf = send(env.addr, "GET", "/console/volumes", &alice, None).await.csrf();
    let r = send(
        env.addr,
        "POST",
        "/console/volumes",
        &alice,
        Some(&[("csrf", &csrf), ("name", "secret-web"), ("size_gib", "1")]),
    )
    .await;
    let vol_page = r.header("location").unwrap().to_string();
    let vid = vol_page.rsplit('/').next().unwrap().to_string();
    let page = send(env.addr, "GET", &vol_page, &alice, None).await;
    assert!(page.body.contains("secret-web"));
    let at = page.body.find("data-job=\"").unwrap() + 10;
    let job = page.body[at..at + 10].to_string();

    let bob = session(env.addr, "bob", "bob-pw").await;
    let bob_csrf = send(env.addr, "GET", "/console/volumes", &bob, None).await.csrf();
    for path in ["/console/", "/console/volumes", "/console/snapshots", "/console/jobs", "/console/images"] {
        let r = send(env.addr, "GET", path, &bob, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains(&vid) && !r.body.contains("secret-web"), "{path} shows alice's volume to bob");
    }
    let r = send(env.addr, "GET", &vol_page, &bob, None).await;
    assert!(r.body.contains("There is no volume") && !r.body.contains("secret-web"), "{}", r.body);
    let r = send(env.addr, "GET", &format!("/console/api/jobs?ids={job}"), &bob, None).await;
    assert!(r.body.contains("\"status\":\"unknown\""), "{}", r.body);
    // Bob's own valid form, aimed at alice's volume: refused in words, nothing done.
    let r = send(env.addr, "POST", &format!("{vol_page}/delete"), &bob, Some(&[("csrf", &bob_csrf)])).await;
    assert_eq!(r.status, 303);
    let next = send(env.addr, "GET", r.header("location").unwrap(), &bob, None).await;
    assert!(next.body.contains("There is no volume"), "{}", next.body);
    assert_eq!(volume_count(&env.service, "alice").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session() {
    let env = start().await;
    let cookie = session(env.addr, "AKALICE", "alice-secret").await;
    let csrf = send(env.addr, "GET", "/console/", &cookie, None).await.csrf();
    // Sign-out is a form too: a forged one does not sign anyone out.
    assert_eq!(send(env.addr, "POST", "/console/logout", &cookie, Some(&[("csrf", "x")])).await.status, 403);
    assert_eq!(send(env.addr, "GET", "/console/", &cookie, None).await.status, 200);
    let r = send(env.addr, "POST", "/console/logout", &cookie, Some(&[("csrf", &csrf)])).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/console/login?out=1")));
    assert!(r.cookies().iter().any(|c| c.starts_with("ds_session=;") && c.contains("Max-Age=0")));
    let r = send(env.addr, "GET", "/console/", &cookie, None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/console/login")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_poll_does_not_swallow_an_actions_message() {
    let env = start().await;
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let csrf = send(env.addr, "GET", "/console/volumes", &cookie, None).await.csrf();
    let r = send(
        env.addr,
        "POST",
        "/console/volumes",
        &cookie,
        Some(&[("csrf", &csrf), ("name", "web"), ("size_gib", "1")]),
    )
    .await;
    // The previous page's script polls between the action and the page that reports it.
    let poll = send(env.addr, "GET", "/console/api/jobs?ids=j-aaaaaaaa", &cookie, None).await;
    assert_eq!(poll.status, 200);
    let page = send(env.addr, "GET", r.header("location").unwrap(), &cookie, None).await;
    assert!(page.body.contains("Creating volume vol-"), "{}", page.body);
    // Shown once.
    let again = send(env.addr, "GET", r.header("location").unwrap(), &cookie, None).await;
    assert!(!again.body.contains("Creating volume vol-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_ends_the_browsers_previous_session() {
    let env = start().await;
    let old = session(env.addr, "alice", "alice-pw").await;
    let form = send(env.addr, "GET", "/console/login", "", None).await;
    let login = form.cookie("ds_login").unwrap();
    let r = send(
        env.addr,
        "POST",
        "/console/login",
        &format!("ds_login={login}; {old}"),
        Some(&[("csrf", &form.csrf()), ("user", "bob"), ("password", "bob-pw")]),
    )
    .await;
    assert_eq!(r.status, 303);
    let new = format!("ds_session={}", r.cookie("ds_session").unwrap());
    assert_ne!(new, old);
    assert_eq!(send(env.addr, "GET", "/console/", &old, None).await.status, 303, "the old session ended");
    assert_eq!(send(env.addr, "GET", "/console/", &new, None).await.status, 200);
}

/// The overview sums every chain, not only the first page of them (a service page holds at
/// most `MAX_PAGE` rows, fewer than the console once asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_chains_past_the_first_page() {
    use disksnap_service::{CreateSnapshots, CreateVolumes};
    let env = start().await;
    let alice = Caller::new("alice");
    let n = disksnap_service::snapshots::MAX_PAGE + 1;
    let mut vols = Vec::new();
    while (vols.len() as u64) < n {
        let count = (n - vols.len() as u64).min(100) as u32;
        let (job, made) = env
            .service
            .create_volumes(&alice, CreateVolumes { size_gib: 1, count, ..Default::default() })
            .await
            .unwrap();
        env.service.wait_job(&alice, &job.id).await.unwrap();
        vols.extend(made.into_iter().map(|v| v.id));
    }
    for part in vols.chunks(100) {
        let req = CreateSnapshots { volumes: part.to_vec(), ..Default::default() };
        let (job, _) = env.service.create_snapshots(&alice, req).await.unwrap();
        assert_eq!(
            env.service.wait_job(&alice, &job.id).await.unwrap().status,
            disksnap_service::JobStatus::Successful
        );
    }
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let page = send(env.addr, "GET", "/console/", &cookie, None).await;
    // Every point stands for its 1 GiB volume.
    assert!(page.body.contains(&format!("stand for ({n}.0 GiB)")), "{}", page.body);
}

/// QingCloud's way of showing ids (the binary injects the dialect's own function).
fn qingcloud_style(kind: disksnap_service::Kind, bare: &str) -> String {
    use disksnap_service::Kind;
    let prefix = match kind {
        Kind::Volume => "vol-",
        Kind::Snapshot => "ss-",
        Kind::Instance => "i-",
        Kind::Image => "img-",
        Kind::Job => "j-",
        Kind::Tag => "tag-",
        Kind::Chain => "sl-",
        Kind::Policy => "sp-",
        Kind::SnapshotGroup => "ssg-",
    };
    format!("{prefix}{bare}")
}

/// The overview shows the store's size from its packs, and the dedup and compression ratios
/// each on its own, from the raw sizes the store records: two points of one unchanged volume
/// reference every chunk twice (dedup 2.00×), and half-empty chunks compress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_store_size_and_the_ratios_it_can_measure() {
    use disksnap_service::{CreateSnapshots, CreateVolumes};
    use std::io::{Seek, Write};
    let env = start().await;
    let alice = Caller::new("alice");
    let (job, made) =
        env.service.create_volumes(&alice, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    env.service.wait_job(&alice, &job.id).await.unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&made[0].path).unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    // 4 MiB from offset 0 (whole slots at any chunk size): 64 KiB of noise then 64 KiB of
    // zeros, repeated, so no two chunks are alike and each compresses.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..4u32 << 20)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i >> 16) % 2 == 0 {
                x as u8
            } else {
                0
            }
        })
        .collect();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
    for _ in 0..2 {
        let req = CreateSnapshots { volumes: vec![made[0].id.clone()], ..Default::default() };
        let (job, _) = env.service.create_snapshots(&alice, req).await.unwrap();
        env.service.wait_job(&alice, &job.id).await.unwrap();
    }
    let stats = env.service.store_stats().await.unwrap();
    assert!(stats.packs >= 1 && stats.pack_bytes > 0, "{stats:?}");
    // Each point stands for the 4 MiB written; the store holds them once.
    assert_eq!((stats.logical_bytes, stats.unique_raw_bytes), (Some(8 << 20), Some(4 << 20)), "{stats:?}");
    assert_eq!(stats.dedup_ratio(), Some(2.0));
    let compression = stats.compression_ratio().unwrap();
    assert!(compression > 1.1, "zeros in both chunks compress: {stats:?}");
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let page = send(env.addr, "GET", "/console/", &cookie, None).await;
    let tile = |id: &str| {
        let at = page.body.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no tile {id}: {}", page.body));
        let v = page.body[at..].find("class=\"v\">").unwrap() + at + 10;
        page.body[v..v + page.body[v..].find('<').unwrap()].to_string()
    };
    assert_eq!(tile("store-size"), disksnap_console::html::bytes(stats.pack_bytes));
    assert_eq!(tile("dedup"), "2.00×");
    assert_eq!(tile("compression"), format!("{compression:.2}×"));
    assert!(!page.body.contains("Not measured yet"), "{}", page.body);
}

/// The policies page: create a policy from the form, bind a volume, run it now (an automatic
/// point appears), and bad input or another account's policy is refused in words, nothing done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_created_bound_and_run_from_the_console() {
    use disksnap_service::{CreateVolumes, Origin, SnapshotFilter};
    let env = start().await;
    let alice = Caller::new("alice");
    let (job, made) =
        env.service.create_volumes(&alice, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    env.service.wait_job(&alice, &job.id).await.unwrap();
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let csrf = send(env.addr, "GET", "/console/policies", &cookie, None).await.csrf();
    let post = |path: String, form: Vec<(&'static str, String)>| post_and_follow(env.addr, &cookie, &csrf, path, form);
    // An hour out of range: the service's own words, no policy made.
    let page = post("/console/policies".into(), vec![("name", "nightly".into()), ("hours", "25".into())]).await;
    assert!(page.body.contains("hour 25 is out of range"), "{}", page.body);
    assert!(env.service.policies(&alice).await.unwrap().is_empty());
    let form = vec![
        ("name", "nightly".to_string()),
        ("hours", "2, 14".into()),
        ("day_mon", "on".into()),
        ("day_fri", "on".into()),
        ("keep", "count".into()),
        ("keep_n", "3".into()),
    ];
    let page = post("/console/policies".into(), form).await;
    assert!(page.body.contains("Created policy"), "{}", page.body);
    assert!(
        page.body.contains("Mon, Fri at 02:00, 14:00 UTC") && page.body.contains("last 3 per volume"),
        "{}",
        page.body
    );
    let p = env.service.policies(&alice).await.unwrap().remove(0);
    let pid = disksnap_console::html::id(disksnap_service::Kind::Policy, &p.id);
    let vid = disksnap_console::html::id(disksnap_service::Kind::Volume, &made[0].id);
    let page = post(format!("/console/policies/{pid}/bind"), vec![("volume", vid.clone())]).await;
    assert!(page.body.contains(&format!("Bound {vid}")), "{}", page.body);
    assert_eq!(env.service.policy(&alice, &p.id).await.unwrap().volumes, vec![made[0].id.clone()]);
    let page = post(format!("/console/policies/{pid}/run"), vec![]).await;
    assert!(page.body.contains("started 1 automatic point"), "{}", page.body);
    let q = SnapshotFilter { volume_ids: vec![made[0].id.clone()], ..Default::default() };
    let snaps = env.service.snapshots(&alice, &q).await.unwrap().0;
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].origin, Origin::Auto);
    // Bob sees none of it, and his own form aimed at alice's policy changes nothing.
    let bob = session(env.addr, "bob", "bob-pw").await;
    let r = send(env.addr, "GET", "/console/policies", &bob, None).await;
    assert!(!r.body.contains(&pid) && !r.body.contains("nightly"), "{}", r.body);
    let bob_csrf = r.csrf();
    let r =
        send(env.addr, "POST", &format!("/console/policies/{pid}/delete"), &bob, Some(&[("csrf", &bob_csrf)])).await;
    let next = send(env.addr, "GET", r.header("location").unwrap(), &bob, None).await;
    assert!(next.body.contains("There is no snapshot policy"), "{}", next.body);
    assert_eq!(env.service.policies(&alice).await.unwrap().len(), 1);
}

/// POST a form with the session's CSRF token and return the page the redirect leads to.
async fn post_and_follow(
    addr: SocketAddr,
    cookie: &str,
    csrf: &str,
    path: String,
    form: Vec<(&'static str, String)>,
) -> Resp {
    let mut f: Vec<(&str, &str)> = vec![("csrf", csrf)];
    f.extend(form.iter().map(|(k, v)| (*k, v.as_str())));
    let r = send(addr, "POST", &path, cookie, Some(&f)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    send(addr, "GET", r.header("location").unwrap(), cookie, None).await
}

/// A group taken, rolled back (every volume's bytes come back) and deleted from the Groups
/// page; another account sees none of it and its form aimed at the group changes nothing.
#[tokio::test]
async fn snapshot_groups_are_taken_rolled_back_and_deleted_from_the_console() {
    use disksnap_service::{CreateVolumes, GroupStatus, Kind};
    use std::os::unix::fs::FileExt;
    let env = start().await;
    let alice = Caller::new("alice");
    let (job, made) = env
        .service
        .create_volumes(&alice, CreateVolumes { size_gib: 1, count: 2, ..Default::default() })
        .await
        .unwrap();
    env.service.wait_job(&alice, &job.id).await.unwrap();
    let write = |text: &str| {
        for (i, v) in made.iter().enumerate() {
            let f = std::fs::OpenOptions::new().write(true).open(&v.path).unwrap();
            f.write_all_at(format!("{text}-{i}").as_bytes(), 8192).unwrap();
            f.sync_all().unwrap();
        }
    };
    let read = |i: usize| {
        let mut b = vec![0u8; 8];
        std::fs::File::open(&made[i].path).unwrap().read_exact_at(&mut b, 8192).unwrap();
        String::from_utf8_lossy(&b).into_owned()
    };
    // Waits until the group is settled (no transition, nothing creating); None once it is gone.
    let settled = || async {
        for _ in 0..300 {
            let gs = env.service.snapshot_groups(&alice).await.unwrap();
            match gs.first() {
                None => return None,
                Some(g) if g.transition.is_empty() && g.status != GroupStatus::Creating => return Some(g.clone()),
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        panic!("the group did not settle");
    };
    write("before");
    let cookie = session(env.addr, "alice", "alice-pw").await;
    let csrf = send(env.addr, "GET", "/console/groups", &cookie, None).await.csrf();
    let post = |path: String, form: Vec<(&'static str, String)>| post_and_follow(env.addr, &cookie, &csrf, path, form);
    let vids: Vec<String> = made.iter().map(|v| disksnap_console::html::id(Kind::Volume, &v.id)).collect();
    // A volume that does not exist: the service's words, no group.
    let page = post("/console/groups".into(), vec![("volumes", format!("{} nope", vids[0]))]).await;
    assert!(page.body.contains("flash error"), "{}", page.body);
    assert!(env.service.snapshot_groups(&alice).await.unwrap().is_empty());
    let page = post("/console/groups".into(), vec![("volumes", vids.join(", ")), ("name", "pair".into())]).await;
    assert!(page.body.contains("Taking group") && page.body.contains("of 2 volume(s)"), "{}", page.body);
    let g = settled().await.unwrap();
    assert_eq!((g.status, g.snapshots.len()), (GroupStatus::Available, 2));
    let gid = disksnap_console::html::id(Kind::SnapshotGroup, &g.id);
    let page = send(env.addr, "GET", "/console/groups", &cookie, None).await;
    assert!(page.body.contains(&gid) && page.body.contains("pair"), "{}", page.body);
    for p in &g.snapshots {
        assert!(page.body.contains(&disksnap_console::html::id(Kind::Snapshot, &p.id)), "{}", page.body);
    }
    write("after!");
    // The confirmation names every volume; bob's form aimed at the group is refused.
    let ask = send(env.addr, "GET", &format!("/console/groups/{gid}/rollback"), &cookie, None).await;
    assert!(vids.iter().all(|v| ask.body.contains(v.as_str())), "{}", ask.body);
    let bob = session(env.addr, "bob", "bob-pw").await;
    let r = send(env.addr, "GET", "/console/groups", &bob, None).await;
    assert!(!r.body.contains(&gid) && !r.body.contains("pair"), "{}", r.body);
    let bob_csrf = r.csrf();
    let r =
        send(env.addr, "POST", &format!("/console/groups/{gid}/rollback"), &bob, Some(&[("csrf", &bob_csrf)])).await;
    let next = send(env.addr, "GET", r.header("location").unwrap(), &bob, None).await;
    assert!(next.body.contains("flash error"), "{}", next.body);
    assert_eq!((read(0), read(1)), ("after!-0".to_string(), "after!-1".to_string()));
    let page = post(format!("/console/groups/{gid}/rollback"), vec![]).await;
    assert!(page.body.contains("Rolling back every volume"), "{}", page.body);
    settled().await.unwrap();
    assert_eq!((read(0), read(1)), ("before-0".to_string(), "before-1".to_string()));
    let page = post(format!("/console/groups/{gid}/delete"), vec![]).await;
    assert!(page.body.contains(&format!("Deleting group {gid}")), "{}", page.body);
    assert!(settled().await.is_none(), "the group is gone");
    for p in &g.snapshots {
        let now = env.service.snapshot(&alice, &p.id).await;
        assert!(
            now.as_ref().map(|p| p.status != disksnap_service::SnapshotStatus::Available).unwrap_or(true),
            "{now:?}"
        );
    }
}
