//! The pages and actions. Each action is one Service call (the tag action: find or create the
//! tag, then attach it, undoing a tag it created when the attach fails), so an action that
//! fails leaves nothing behind; its outcome is shown on the next page in words.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{DateTime, NaiveDateTime, Utc};
use disksnap_service::{
    CreateSnapshots, CreateVolumes, DeleteScope, JobStatus, Kind, ServiceError, Snapshot, SnapshotFilter,
    SnapshotStatus, VolumeFilter, VolumeFromSnapshot, VolumeKind, VolumeStatus,
};

use crate::html::{self, bytes, esc, id, link, time, Frame};
use crate::session::{self, Flash, Throttled};
use crate::{Client, Console, Signed, Tls};

pub(crate) type St = State<Arc<Console>>;
pub(crate) type Fields = HashMap<String, String>;

const PAGE: u64 = 50;
/// The most rows one service call returns: a page asking for more would get fewer than its
/// pager counts on.
const MAX_PAGE: u64 = disksnap_service::snapshots::MAX_PAGE;
/// How many of a volume's points its page draws at once (older ones are a link away).
const CHART_POINTS: u64 = MAX_PAGE;

fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub(crate) fn render(s: &Signed, title: &str, nav: &str, body: &str) -> Response {
    let f = Frame {
        title,
        account: Some(&s.session.account),
        csrf: Some(&s.session.csrf),
        flash: s.session.flash.as_ref(),
        nav,
    };
    html_response(StatusCode::OK, html::page(&f, body))
}

/// An error a person can act on. Ids in the service's messages are shown the console's way.
pub fn explain(e: &ServiceError) -> String {
    let shown = |kind: Kind, raw: &str| match disksnap_service::ids::parse(kind, raw) {
        Some(b) if !raw.contains('-') => id(kind, &b),
        _ => raw.to_string(),
    };
    match e {
        ServiceError::MissingParameter(p) => format!("Please fill in {p}."),
        ServiceError::InvalidParameter { name, reason } => format!("{name}: {reason}."),
        ServiceError::NotFound { kind, id } => {
            format!("There is no {kind} {} in this account (it may have been deleted).", shown(*kind, id))
        }
        ServiceError::WrongState { kind, id, state, reason } => {
            format!("Not done: {kind} {} is {state}: {reason}.", shown(*kind, id))
        }
        ServiceError::Conflict { kind, id } => format!(
            "Not done: {kind} {} was changed by another operation at the same moment. Try again.",
            shown(*kind, id)
        ),
        ServiceError::UnknownZone(z) => format!("There is no zone {z}."),
        ServiceError::UnknownAccount(a) => format!("The account {a} is no longer configured; sign in again."),
        ServiceError::LimitExceeded(m) => format!("Not done: {m}."),
        ServiceError::Corrupt(_) => {
            "Not done: stored data failed its integrity check. Run `disksnap verify` on the server to see which snapshots are affected.".into()
        }
        ServiceError::InsufficientStorage(m) => format!("Not done: {m}."),
        ServiceError::Internal(_) => {
            "Not done: the server hit an internal error (details are in its log). Nothing was changed; try again.".into()
        }
    }
}

/// Show `flash` on the next page and go there.
pub(crate) fn finish(st: &Console, s: &Signed, to: &str, flash: Flash) -> Response {
    st.sessions.flash(&s.token, flash);
    Redirect::to(to).into_response()
}

pub(crate) fn ok(text: impl Into<String>, job: Option<String>) -> Flash {
    Flash { error: false, text: text.into(), job }
}

pub(crate) fn failed(text: impl Into<String>) -> Flash {
    Flash { error: true, text: text.into(), job: None }
}

/// Every POST must carry the session's CSRF token; a form from anywhere else is refused (the
/// page returned) and nothing is done.
pub(crate) fn check_csrf(s: &Signed, form: &Fields) -> Option<Response> {
    match form.get("csrf") {
        Some(t) if session::same(t, &s.session.csrf) => None,
        _ => Some(html_response(
            StatusCode::FORBIDDEN,
            html::page(
                &Frame { title: "Refused", account: None, csrf: None, flash: None, nav: "" },
                "<p class=\"flash error\" id=\"flash\" role=\"alert\">This form's security token is missing or does not match your session, so nothing was done. It may be an old page or a form sent from another site. <a href=\"/console/\">Reload the console</a> and try again.</p>",
            ),
        )),
    }
}

pub(crate) fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.get(name).map(|s| s.trim()).unwrap_or("")
}

fn gib(form: &Fields, name: &str) -> Result<u64, String> {
    let t = field(form, name);
    t.parse::<u64>().map_err(|_| format!("The size must be a whole number of GiB (got \"{t}\")."))
}

// ---------------------------------------------------------------------------------------
// Assets

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../assets/style.css")).into_response()
}

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../assets/console.js")).into_response()
}

pub async fn not_found(s: Signed) -> Response {
    let mut r =
        render(&s, "Not found", "", "<p>No console page is here. <a href=\"/console/\">Go to the overview</a>.</p>");
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

// ---------------------------------------------------------------------------------------
// Sign-in and sign-out

fn login_page(status: StatusCode, https: bool, error: Option<&str>, note: Option<&str>, user: &str) -> Response {
    let token = session::token();
    let msg = match (error, note) {
        (Some(e), _) => format!("<p class=\"flash error\" id=\"flash\" role=\"alert\">{}</p>", esc(e)),
        (None, Some(n)) => format!("<p class=\"flash ok\" id=\"flash\" role=\"status\">{}</p>", esc(n)),
        _ => String::new(),
    };
    let body = format!(
        "{msg}<form method=\"post\" action=\"/console/login\" class=\"card login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
<label>OpenStack user name or access key id<input name=\"user\" id=\"user\" autocomplete=\"username\" required value=\"{}\"></label>\
<label>Password or secret key<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\" id=\"signin\">Sign in</button>\
<p class=\"hint\">Any of the account's key pairs works (QingCloud, Alibaba Cloud, Tencent, Huawei), or its OpenStack user and password.</p></form>",
        esc(user)
    );
    let page = html::page(&Frame { title: "Sign in", account: None, csrf: None, flash: None, nav: "" }, &body);
    let cookie = session::set_cookie(session::LOGIN_COOKIE, &token, "/console/login", https, Some(3600));
    (status, [(header::SET_COOKIE, cookie)], [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

pub async fn login_form(State(st): St, Tls(https): Tls, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    let signed = match session::cookie(&headers, session::SESSION_COOKIE) {
        Some(t) => st.sessions.touch(&t, false).await.ok().flatten(),
        None => None,
    };
    if signed.is_some() {
        return Redirect::to("/console/").into_response();
    }
    let note = q.contains_key("out").then_some("You are signed out.");
    login_page(StatusCode::OK, https, None, note, "")
}

pub async fn login(
    State(st): St,
    Tls(https): Tls,
    Client(address): Client,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let user = field(&form, "user").to_string();
    let password = form.get("password").cloned().unwrap_or_default();
    // Double submit: the form's token must be the one this browser got with the form.
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    let given = form.get("csrf").cloned().unwrap_or_default();
    if expected.is_empty() || !session::same(&expected, &given) {
        return login_page(
            StatusCode::FORBIDDEN,
            https,
            Some("This sign-in form expired or did not come from this console. Please sign in again."),
            None,
            &user,
        );
    }
    if user.is_empty() || password.is_empty() {
        return login_page(
            StatusCode::BAD_REQUEST,
            https,
            Some("Enter a user name (or key id) and its password (or secret)."),
            None,
            &user,
        );
    }
    let now = Instant::now();
    if let Err(t) = st.limits.attempt(&user, address, now) {
        let (who, wait) = match t {
            Throttled::Identity(d) => ("for this user", d),
            Throttled::Address(d) => ("from your address", d),
            Throttled::Everyone(d) => ("on this server", d),
        };
        let msg =
            format!("Too many sign-in attempts {who}. Wait {} and try again.", html::span(wait.as_secs() as i64 + 1));
        return login_page(StatusCode::TOO_MANY_REQUESTS, https, Some(&msg), None, &user);
    }
    match (st.authenticate)(&user, &password) {
        None => {
            st.limits.failed(&user, address, now);
            tracing::info!(target: "disksnap::console", user = %user, address = ?address, "console sign-in refused");
            login_page(
                StatusCode::UNAUTHORIZED,
                https,
                Some("Wrong user name or password (or access key id and secret). Check them and try again."),
                None,
                &user,
            )
        }
        Some(account) => {
            st.limits.succeeded(&user);
            tracing::info!(target: "disksnap::console", account = %account, "console sign-in");
            // A new id at every sign-in (a session id planted before it is worth nothing),
            // and the browser's previous session ends.
            let made = async {
                if let Some(old) = session::cookie(&headers, session::SESSION_COOKIE) {
                    st.sessions.remove(&old).await?;
                }
                st.sessions.create(&account).await
            };
            let sid = match made.await {
                Ok(sid) => sid,
                Err(e) => {
                    tracing::warn!(target: "disksnap::console", error = %e, "recording a console session failed");
                    let msg = format!("Your password is right, but the session could not be recorded. {}", explain(&e));
                    return login_page(StatusCode::SERVICE_UNAVAILABLE, https, Some(&msg), None, &user);
                }
            };
            let mut r = Redirect::to("/console/").into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                session::set_cookie(session::SESSION_COOKIE, &sid, "/console", https, None).parse().unwrap(),
            );
            h.append(
                header::SET_COOKIE,
                session::set_cookie(session::LOGIN_COOKIE, "", "/console/login", https, Some(0)).parse().unwrap(),
            );
            r
        }
    }
}

pub async fn logout(State(st): St, Tls(https): Tls, s: Signed, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    if let Err(e) = st.sessions.remove(&s.token).await {
        return finish(&st, &s, "/console/", failed(format!("You are still signed in. {}", explain(&e))));
    }
    let mut r = Redirect::to("/console/login?out=1").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::SESSION_COOKIE, "", "/console", https, Some(0)).parse().unwrap(),
    );
    r
}

// ---------------------------------------------------------------------------------------
// Overview

fn job_percent(st: &Console, j: &disksnap_service::Job) -> u8 {
    match j.status {
        JobStatus::Successful => 100,
        JobStatus::Pending => 0,
        _ => match st.service.job_progress(&j.id) {
            Some((done, total)) if total > 0 => (done.saturating_mul(100) / total).min(100) as u8,
            _ => 0,
        },
    }
}

fn job_rows(st: &Console, jobs: &[disksnap_service::Job]) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"list jobs\"><thead><tr><th>Job</th><th>Action</th><th>Resources</th><th>Progress</th><th>Started</th></tr></thead><tbody>",
    );
    for j in jobs {
        let res: Vec<String> = j.typed_resources().iter().map(|(k, r)| link(*k, r)).collect();
        let err = j.error.as_deref().map(|e| format!("<div class=\"err\">{}</div>", esc(e))).unwrap_or_default();
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}{err}</td><td>{}</td></tr>",
            esc(&id(Kind::Job, &j.id)),
            esc(j.action.as_str()),
            res.join(" "),
            html::job_bar(&id(Kind::Job, &j.id), j.status.as_str(), job_percent(st, j), j.is_done()),
            esc(&time(j.create_time))
        ));
    }
    if jobs.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"empty\">None.</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Stored and provisioned bytes of the account's chains, from the totals each full point
/// carries (read in pages; at most this many chains are summed, and the page says so).
const OVERVIEW_CHAINS: u64 = 5000;

pub async fn overview(State(st): St, s: Signed) -> Response {
    match overview_body(&st, &s).await {
        Ok(body) => render(&s, "Overview", "overview", &body),
        Err(e) => render(&s, "Overview", "overview", &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
    }
}

async fn overview_body(st: &Console, s: &Signed) -> Result<String, ServiceError> {
    let c = s.caller();
    let svc = &st.service;
    let live_vols = vec![VolumeStatus::Creating.into(), VolumeStatus::Available.into(), VolumeStatus::InUse.into()];
    let (_, volumes) = svc.volumes(&c, &VolumeFilter { statuses: live_vols, limit: 1, ..Default::default() }).await?;
    let mut counts = Vec::new();
    for status in [SnapshotStatus::Available, SnapshotStatus::Creating, SnapshotStatus::Deleted] {
        let (_, n) = svc
            .snapshots(&c, &SnapshotFilter { statuses: vec![status.into()], limit: 1, ..Default::default() })
            .await?;
        counts.push((status, n));
    }
    let (mut stored, mut provisioned, mut chains) = (0u64, 0u64, 0u64);
    let mut q = SnapshotFilter {
        is_full: Some(true),
        statuses: vec![
            SnapshotStatus::Available.into(),
            SnapshotStatus::Creating.into(),
            SnapshotStatus::Deleted.into(),
        ],
        skip_count: true,
        limit: MAX_PAGE,
        ..Default::default()
    };
    let capped = loop {
        let (page, _) = svc.snapshots(&c, &q).await?;
        for p in &page {
            if let Some(ch) = &p.chain {
                stored += ch.total_size;
                provisioned += p.volume_size.saturating_mul(ch.total_count);
            }
        }
        chains += page.len() as u64;
        if (page.len() as u64) < MAX_PAGE {
            break false;
        }
        if chains >= OVERVIEW_CHAINS {
            break true;
        }
        q.after = page.last().map(|p| (p.create_time.timestamp_millis(), p.id.clone()));
    };
    let (running, _) = svc.jobs(&c, &[], &[JobStatus::Pending, JobStatus::Working], None, 0, 20).await?;
    let (failures, _) = svc.jobs(&c, &[], &[JobStatus::Failed], None, 0, 5).await?;
    let ratio = if stored > 0 { format!("{:.1}×", provisioned as f64 / stored as f64) } else { "—".into() };
    let store = svc.store_stats().await;
    let mut body = String::from("<section class=\"tiles\">");
    let tile = |label: &str, value: String, href: &str, tid: &str| {
        format!("<a class=\"tile\" href=\"{href}\" id=\"{tid}\"><span class=\"v\">{}</span><span class=\"l\">{label}</span></a>", esc(&value))
    };
    body.push_str(&tile("volumes", volumes.to_string(), "/console/volumes", "n-volumes"));
    for (status, n) in &counts {
        body.push_str(&tile(
            &format!("snapshots {status}"),
            n.to_string(),
            &format!("/console/snapshots?status={status}"),
            &format!("n-snapshots-{status}"),
        ));
    }
    body.push_str(&tile("stored by your chains", bytes(stored), "/console/snapshots?type=full", "stored"));
    body.push_str(&tile(
        "overall reduction (dedup, compression, holes)",
        ratio,
        "/console/snapshots?type=full",
        "ratio",
    ));
    // The store's own figures (all accounts: chunks are shared between them). A ratio the
    // store does not measure yet says so; it is never estimated.
    let measured = |r: Option<f64>| r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "not measured".into());
    match &store {
        Ok(st) => {
            body.push_str(&tile("store size (all accounts)", bytes(st.pack_bytes), "#store", "store-size"));
            body.push_str(&tile("dedup ratio", measured(st.dedup_ratio()), "#store", "dedup"));
            body.push_str(&tile("compression ratio", measured(st.compression_ratio()), "#store", "compression"));
        }
        Err(e) => body.push_str(&format!(
            "<p class=\"flash error\" id=\"store-error\">The store's figures could not be read: {}</p>",
            esc(&explain(e))
        )),
    }
    body.push_str("</section>");
    body.push_str(&format!(
        "<p class=\"hint\">Reduction: the volume bytes your live points stand for ({}) over the bytes their chains store ({}){}.</p>",
        bytes(provisioned),
        bytes(stored),
        if capped { format!(", over your first {OVERVIEW_CHAINS} chains") } else { String::new() }
    ));
    if let Ok(st) = &store {
        // Dedup: the raw bytes the live points reference over the raw bytes of the distinct
        // chunks; compression: those raw bytes over their stored bytes.
        let mut missing = Vec::new();
        if st.dedup_ratio().is_none() {
            missing.push("dedup (some points were captured before their logical size was recorded)");
        }
        if st.compression_ratio().is_none() {
            missing.push("compression (some chunks are in packs written before raw sizes were recorded; GC's repack records them)");
        }
        body.push_str(&format!(
            "<p class=\"hint\" id=\"store\">Store: {} in {} pack files.{}</p>",
            bytes(st.pack_bytes),
            st.packs,
            if missing.is_empty() { String::new() } else { format!(" Not measured yet: {}.", missing.join("; ")) }
        ));
    }
    body.push_str("<h2>Running jobs</h2>");
    body.push_str(&job_rows(st, &running));
    body.push_str("<h2>Recent failures</h2>");
    body.push_str(&job_rows(st, &failures));
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// Volumes

fn paging(q: &Fields) -> (u64, u64) {
    let offset = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(PAGE).clamp(1, MAX_PAGE);
    (offset, limit)
}

/// "1–50 of 1234" with previous/next links keeping the other query parameters.
fn pager(base: &str, q: &Fields, offset: u64, limit: u64, shown: usize, total: u64) -> String {
    let keep: String = {
        let mut keys: Vec<&String> = q.keys().filter(|k| *k != "offset").collect();
        keys.sort();
        keys.iter().map(|k| format!("{}={}&", html::url(k), html::url(&q[*k]))).collect()
    };
    let first = if shown == 0 { 0 } else { offset + 1 };
    let mut out =
        format!("<div class=\"pager\"><span id=\"range\">{first}–{} of {total}</span>", offset + shown as u64);
    if offset > 0 {
        out.push_str(&format!(
            " <a href=\"{base}?{}offset={}\" rel=\"prev\">← previous</a>",
            esc(&keep),
            offset.saturating_sub(limit)
        ));
    }
    if offset + (shown as u64) < total {
        out.push_str(&format!(
            " <a href=\"{base}?{}offset={}\" rel=\"next\" id=\"next\">next →</a>",
            esc(&keep),
            offset + limit
        ));
    }
    out.push_str("</div>");
    out
}

pub async fn volumes(State(st): St, s: Signed, Query(q): Query<Fields>) -> Response {
    let (offset, limit) = paging(&q);
    let c = s.caller();
    let query = VolumeFilter {
        statuses: vec![VolumeStatus::Creating.into(), VolumeStatus::Available.into(), VolumeStatus::InUse.into()],
        offset,
        limit,
        ..Default::default()
    };
    let mut body = format!(
        "<details class=\"card\" open><summary>Create a volume</summary><form method=\"post\" action=\"/console/volumes\" class=\"grid\">{}\
<label>Name<input name=\"name\" id=\"new-name\"></label>\
<label>Size (GiB)<input name=\"size_gib\" id=\"new-size\" inputmode=\"numeric\" value=\"1\" required></label>\
<label>Kind<select name=\"kind\" id=\"new-kind\"><option value=\"data\">data disk</option><option value=\"system\">system disk</option></select></label>\
<button type=\"submit\" id=\"create-volume\">Create</button></form></details>",
        html::csrf(&s.session.csrf)
    );
    match st.service.volumes(&c, &query).await {
        Err(e) => body.push_str(&format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
        Ok((list, total)) => {
            body.push_str("<div class=\"scroll\"><table class=\"list\" id=\"volumes\"><thead><tr><th>Volume</th><th>Name</th><th>Size</th><th>Zone</th><th>Instance</th><th>Status</th><th>Head chain</th></tr></thead><tbody>");
            for v in &list {
                let status = if v.transition.as_str().is_empty() {
                    v.status.to_string()
                } else {
                    format!("{} ({})", v.status, v.transition)
                };
                body.push_str(&format!(
                    "<tr data-volume=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&id(Kind::Volume, &v.id)),
                    link(Kind::Volume, &v.id),
                    esc(&v.name),
                    v.size_gib(),
                    esc(&v.zone),
                    v.instance_id.as_deref().map(|i| link(Kind::Instance, i)).unwrap_or_else(|| "—".into()),
                    esc(&status),
                    v.head_root.as_deref().map(|r| link(Kind::Snapshot, r)).unwrap_or_else(|| "—".into()),
                ));
            }
            if list.is_empty() {
                body.push_str("<tr><td colspan=\"7\" class=\"empty\">No volumes yet.</td></tr>");
            }
            body.push_str("</tbody></table></div>");
            body.push_str(&pager("/console/volumes", &q, offset, limit, list.len(), total));
        }
    }
    render(&s, "Volumes", "volumes", &body)
}

pub async fn create_volume(State(st): St, s: Signed, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let size = match gib(&form, "size_gib") {
        Ok(n) => n,
        Err(m) => return finish(&st, &s, "/console/volumes", failed(m)),
    };
    let req = CreateVolumes {
        name: field(&form, "name").to_string(),
        size_gib: size,
        kind: VolumeKind::parse(field(&form, "kind")),
        count: 1,
        ..Default::default()
    };
    match st.service.create_volumes(&s.caller(), req).await {
        Ok((job, vols)) => {
            let vid = id(Kind::Volume, &vols[0].id);
            finish(
                &st,
                &s,
                &format!("/console/volumes/{vid}"),
                ok(format!("Creating volume {vid}."), Some(id(Kind::Job, &job.id))),
            )
        }
        Err(e) => finish(&st, &s, "/console/volumes", failed(explain(&e))),
    }
}

pub async fn volume(State(st): St, s: Signed, Path(vid): Path<String>, Query(q): Query<Fields>) -> Response {
    let c = s.caller();
    let v = match st.service.volume(&c, &vid).await {
        Ok(v) => v,
        Err(e) => {
            return render(&s, "Volume", "volumes", &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e))))
        }
    };
    let shown = id(Kind::Volume, &v.id);
    let offset = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0u64);
    let points = st
        .service
        .snapshots(
            &c,
            &SnapshotFilter { volume_ids: vec![v.id.clone()], offset, limit: CHART_POINTS, ..Default::default() },
        )
        .await;
    let csrf = &s.session.csrf;
    let status = if v.transition.as_str().is_empty() {
        v.status.to_string()
    } else {
        format!("{} ({})", v.status, v.transition)
    };
    let mut body = format!(
        "<section class=\"card\"><table class=\"props\">\
<tr><th>Volume</th><td><code id=\"volume-id\">{}</code></td></tr>\
<tr><th>Name</th><td id=\"volume-name\">{}</td></tr>\
<tr><th>Size</th><td id=\"volume-size\">{} GiB</td></tr>\
<tr><th>Kind</th><td>{}</td></tr><tr><th>Zone</th><td>{}</td></tr>\
<tr><th>Instance</th><td>{}</td></tr><tr><th>Status</th><td id=\"volume-status\">{}</td></tr>\
<tr><th>Head chain</th><td>{}</td></tr><tr><th>File</th><td><code id=\"path\">{}</code></td></tr>\
<tr><th>Created</th><td>{}</td></tr></table>{}</section>",
        esc(&shown),
        esc(&v.name),
        v.size_gib(),
        v.kind,
        esc(&v.zone),
        v.instance_id.as_deref().map(|i| link(Kind::Instance, i)).unwrap_or_else(|| "—".into()),
        esc(&status),
        v.head_root.as_deref().map(|r| link(Kind::Snapshot, r)).unwrap_or_else(|| "—".into()),
        esc(&v.path),
        esc(&time(v.create_time)),
        html::renderings(&st.renderings, Kind::Volume, &v.id),
    );
    body.push_str(&format!(
        "<section class=\"actions\">\
<form method=\"post\" action=\"/console/volumes/{shown}/snapshot\" class=\"card\">{c1}<h3>Take a snapshot</h3>\
<label>Name<input name=\"name\" id=\"snap-name\"></label>\
<label class=\"check\"><input type=\"checkbox\" name=\"full\" value=\"1\" id=\"snap-full\"> start a new chain (full)</label>\
<button type=\"submit\" id=\"take-snapshot\">Take snapshot</button></form>\
<form method=\"post\" action=\"/console/volumes/{shown}/resize\" class=\"card\">{c1}<h3>Resize</h3>\
<label>New size (GiB)<input name=\"size_gib\" id=\"resize-size\" inputmode=\"numeric\" value=\"{size}\"></label>\
<button type=\"submit\" id=\"resize\">Resize</button></form>\
<form method=\"post\" action=\"/console/volumes/{shown}/rename\" class=\"card\">{c1}<h3>Rename</h3>\
<label>Name<input name=\"name\" value=\"{name}\"></label><button type=\"submit\">Rename</button></form>\
<div class=\"card\"><h3>Delete</h3><p>Its snapshots stay.</p><a class=\"danger button\" href=\"/console/volumes/{shown}/delete\" id=\"delete-volume\">Delete volume…</a></div>\
</section>",
        c1 = html::csrf(csrf),
        size = v.size_gib(),
        name = esc(&v.name),
        shown = esc(&shown),
    ));
    body.push_str("<h2>Snapshot chains</h2>");
    match points {
        Err(e) => body.push_str(&format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
        Ok((list, total)) => {
            if list.is_empty() {
                body.push_str("<p class=\"empty\">No snapshots of this volume yet.</p>");
            } else {
                body.push_str("<p class=\"legend\"><span class=\"lg full\">■ full</span> <span class=\"lg inc\">● incremental</span> <span class=\"lg del\">deleted (recoverable)</span> <span class=\"lg ceased\">ceased</span> · HEAD: the newest point of its chain; the volume's next incremental builds on the head of its head chain. Select a point for its actions.</p>");
                body.push_str(&crate::svg::chains(&list, st.service.config().deleted_retention, Utc::now()));
                let mut base = q.clone();
                base.remove("offset");
                body.push_str(&pager(
                    &format!("/console/volumes/{}", html::url(&shown)),
                    &base,
                    offset,
                    CHART_POINTS,
                    list.len(),
                    total,
                ));
                body.push_str(&snapshot_table(&list, "points"));
            }
        }
    }
    render(&s, &format!("Volume {}", if v.name.is_empty() { &shown } else { &v.name }), "volumes", &body)
}

pub async fn snapshot_volume(State(st): St, s: Signed, Path(vid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/volumes/{}", html::url(&vid));
    let req = CreateSnapshots {
        volumes: vec![vid.clone()],
        full: field(&form, "full") == "1",
        name: field(&form, "name").to_string(),
        ..Default::default()
    };
    match st.service.create_snapshots(&s.caller(), req).await {
        Ok((job, snaps)) => {
            let names: Vec<String> = snaps.iter().map(|p| id(Kind::Snapshot, &p.id)).collect();
            finish(&st, &s, &back, ok(format!("Taking snapshot {}.", names.join(", ")), Some(id(Kind::Job, &job.id))))
        }
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn resize_volume(State(st): St, s: Signed, Path(vid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/volumes/{}", html::url(&vid));
    let size = match gib(&form, "size_gib") {
        Ok(n) => n,
        Err(m) => return finish(&st, &s, &back, failed(m)),
    };
    match st.service.resize_volume(&s.caller(), &vid, size).await {
        Ok(job) => finish(&st, &s, &back, ok(format!("Resizing to {size} GiB."), Some(id(Kind::Job, &job.id)))),
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn rename_volume(State(st): St, s: Signed, Path(vid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/volumes/{}", html::url(&vid));
    match st.service.modify_volume(&s.caller(), &vid, Some(field(&form, "name")), None).await {
        Ok(_) => finish(&st, &s, &back, ok("Renamed.", None)),
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub(crate) fn confirm(
    s: &Signed,
    title: &str,
    question: &str,
    action: &str,
    extra: &str,
    button: &str,
    back: &str,
) -> Response {
    let body = format!(
        "<form method=\"post\" action=\"{}\" class=\"card confirm\">{}<p id=\"question\">{}</p>{extra}\
<button type=\"submit\" class=\"danger\" id=\"confirm\">{}</button> <a href=\"{}\" id=\"cancel\">Cancel</a></form>",
        esc(action),
        html::csrf(&s.session.csrf),
        esc(question),
        esc(button),
        esc(back)
    );
    render(s, title, "", &body)
}

pub async fn confirm_delete_volume(State(st): St, s: Signed, Path(vid): Path<String>) -> Response {
    match st.service.volume(&s.caller(), &vid).await {
        Err(e) => {
            render(&s, "Delete volume", "volumes", &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e))))
        }
        Ok(v) => {
            let shown = id(Kind::Volume, &v.id);
            confirm(
                &s,
                "Delete volume",
                &format!(
                    "Delete volume {shown}{}? Its bytes are gone for good; its snapshots stay and can make a new volume.",
                    if v.name.is_empty() { String::new() } else { format!(" (\"{}\")", v.name) }
                ),
                &format!("/console/volumes/{shown}/delete"),
                "",
                "Delete volume",
                &format!("/console/volumes/{shown}"),
            )
        }
    }
}

pub async fn delete_volume(State(st): St, s: Signed, Path(vid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    match st.service.delete_volumes(&s.caller(), std::slice::from_ref(&vid)).await {
        Ok(job) => {
            finish(&st, &s, "/console/volumes", ok(format!("Deleting volume {vid}."), Some(id(Kind::Job, &job.id))))
        }
        Err(e) => finish(&st, &s, &format!("/console/volumes/{}", html::url(&vid)), failed(explain(&e))),
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots

fn snapshot_table(list: &[Snapshot], table_id: &str) -> String {
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"list\" id=\"{table_id}\"><thead><tr><th>Snapshot</th><th>Name</th><th>Volume</th><th>Type</th><th>Status</th><th>Size</th><th>Taken</th><th>Tags</th></tr></thead><tbody>"
    );
    for p in list {
        let tags: Vec<String> =
            p.tags.iter().map(|t| format!("<span class=\"tag\">{}={}</span>", esc(&t.key), esc(&t.value))).collect();
        let status = if p.transition.as_str().is_empty() {
            p.status.to_string()
        } else {
            format!("{} ({})", p.status, p.transition)
        };
        out.push_str(&format!(
            "<tr data-snapshot=\"{}\" class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"st\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&id(Kind::Snapshot, &p.id)),
            p.status,
            link(Kind::Snapshot, &p.id),
            esc(&p.name),
            link(Kind::Volume, &p.volume_id),
            if p.full { "full" } else { "incremental" },
            esc(&status),
            bytes(p.size),
            esc(&time(p.snapshot_time)),
            tags.join(" ")
        ));
    }
    if list.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"empty\">No snapshots match.</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A `datetime-local` value (or a full RFC 3339 time) as UTC.
fn parse_time(name: &str, v: &str) -> Result<Option<DateTime<Utc>>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Ok(Some(t.and_utc()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(format!("\"{v}\" is not a time for {name}: use 2026-12-03T14:30 (UTC)."))
}

fn snapshot_query(q: &Fields) -> Result<SnapshotFilter, String> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).unwrap_or("");
    let mut out = SnapshotFilter::default();
    match get("status") {
        "" => {}
        v => {
            out.statuses =
                vec![SnapshotStatus::parse(v).ok_or_else(|| format!("There is no snapshot status \"{v}\"."))?.into()]
        }
    }
    out.is_full = match get("type") {
        "" => None,
        "full" => Some(true),
        "incremental" => Some(false),
        v => return Err(format!("There is no snapshot type \"{v}\": use full or incremental.")),
    };
    if !get("volume").is_empty() {
        out.volume_ids = vec![get("volume").to_string()];
    }
    match get("tag") {
        "" => {}
        t => {
            out.tag_pairs = vec![match t.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
                None => (t.to_string(), None),
            }]
        }
    }
    if !get("q").is_empty() {
        out.search = Some(get("q").to_string());
    }
    out.created_from = parse_time("from", get("from"))?.map(|t| t.timestamp_millis());
    out.created_to = parse_time("to", get("to"))?.map(|t| t.timestamp_millis());
    Ok(out)
}

pub async fn snapshots(State(st): St, s: Signed, Query(q): Query<Fields>) -> Response {
    let (offset, limit) = paging(&q);
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let opt = |v: &str, cur: &str, label: &str| {
        format!("<option value=\"{v}\"{}>{label}</option>", if v == cur { " selected" } else { "" })
    };
    let mut statuses = opt("", get("status"), "any status");
    for st in SnapshotStatus::ALL {
        statuses.push_str(&opt(st.as_str(), get("status"), st.as_str()));
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/console/snapshots\" class=\"card filters grid\" id=\"filters\">\
<label>Status<select name=\"status\" id=\"f-status\">{statuses}</select></label>\
<label>Type<select name=\"type\" id=\"f-type\">{}{}{}</select></label>\
<label>Volume<input name=\"volume\" id=\"f-volume\" value=\"{}\" placeholder=\"vol-…\"></label>\
<label>Tag<input name=\"tag\" id=\"f-tag\" value=\"{}\" placeholder=\"key or key=value\"></label>\
<label>Name or id contains<input name=\"q\" id=\"f-q\" value=\"{}\"></label>\
<label>Created from (UTC)<input name=\"from\" id=\"f-from\" type=\"datetime-local\" value=\"{}\"></label>\
<label>Created to (UTC)<input name=\"to\" id=\"f-to\" type=\"datetime-local\" value=\"{}\"></label>\
<label>Per page<input name=\"limit\" inputmode=\"numeric\" value=\"{limit}\"></label>\
<button type=\"submit\" id=\"apply-filters\">Filter</button></form>",
        opt("", get("type"), "any type"),
        opt("full", get("type"), "full"),
        opt("incremental", get("type"), "incremental"),
        esc(get("volume")),
        esc(get("tag")),
        esc(get("q")),
        esc(get("from")),
        esc(get("to")),
    );
    match snapshot_query(&q) {
        Err(m) => body.push_str(&format!("<p class=\"flash error\" role=\"alert\">{}</p>", esc(&m))),
        Ok(mut query) => {
            query.offset = offset;
            query.limit = limit;
            match st.service.snapshots(&s.caller(), &query).await {
                Err(e) => body.push_str(&format!("<p class=\"flash error\" role=\"alert\">{}</p>", esc(&explain(&e)))),
                Ok((list, total)) => {
                    body.push_str(&pager("/console/snapshots", &q, offset, limit, list.len(), total));
                    body.push_str(&snapshot_table(&list, "snapshots"));
                }
            }
        }
    }
    render(&s, "Snapshots", "snapshots", &body)
}

pub async fn snapshot(State(st): St, s: Signed, Path(sid): Path<String>) -> Response {
    let c = s.caller();
    let p = match st.service.snapshot(&c, &sid).await {
        Ok(p) => p,
        Err(e) => {
            return render(&s, "Snapshot", "snapshots", &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e))))
        }
    };
    let shown = id(Kind::Snapshot, &p.id);
    let csrf = html::csrf(&s.session.csrf);
    let retention = st.service.config().deleted_retention;
    let left = match (p.status, crate::svg::ceases_at(&p, retention)) {
        (SnapshotStatus::Deleted, Some(t)) => {
            format!(" · recoverable for {}", html::span((t - Utc::now()).num_seconds()))
        }
        _ => String::new(),
    };
    let status = if p.transition.as_str().is_empty() {
        p.status.to_string()
    } else {
        format!("{} ({})", p.status, p.transition)
    };
    let tags: Vec<String> = p
        .tags
        .iter()
        .map(|t| {
            format!(
                "<span class=\"tag\">{}={} <form method=\"post\" action=\"/console/snapshots/{}/untag\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"tag\" value=\"{}\"><button type=\"submit\" class=\"small\" title=\"remove\">×</button></form></span>",
                esc(&t.key),
                esc(&t.value),
                esc(&shown),
                esc(&id(Kind::Tag, &t.id))
            )
        })
        .collect();
    let mut body = format!(
        "<section class=\"card\"><table class=\"props\">\
<tr><th>Snapshot</th><td><code id=\"snapshot-id\">{}</code></td></tr>\
<tr><th>Name</th><td id=\"snapshot-name\">{}</td></tr>\
<tr><th>Volume</th><td>{}{}</td></tr>\
<tr><th>Type</th><td>{}</td></tr><tr><th>Chain</th><td>{}{}</td></tr>\
<tr><th>Status</th><td id=\"snapshot-status\">{}{}</td></tr>\
<tr><th>Stored size</th><td>{}</td></tr><tr><th>Volume size then</th><td>{}</td></tr>\
<tr><th>Taken</th><td>{}</td></tr><tr><th>Consistency</th><td id=\"snapshot-consistency\">{}</td></tr><tr><th>Tags</th><td id=\"tags\">{}</td></tr></table>{}</section>",
        esc(&shown),
        esc(&p.name),
        link(Kind::Volume, &p.volume_id),
        if p.volume_name.is_empty() { String::new() } else { format!(" ({})", esc(&p.volume_name)) },
        if p.full { "full" } else { "incremental" },
        link(Kind::Snapshot, &p.root_id),
        if p.is_head { " · HEAD" } else { "" },
        esc(&status),
        esc(&left),
        bytes(p.size),
        bytes(p.volume_size),
        esc(&time(p.snapshot_time)),
        match p.consistency.as_str() {
            "instant" => "instant (a clone of the volume at one instant)",
            "read-pass" => "read pass (no reflink where the volume lives: writes during the capture may show)",
            _ => "—",
        },
        if tags.is_empty() { "—".into() } else { tags.join(" ") },
        html::renderings(&st.renderings, Kind::Snapshot, &p.id),
    );
    let mut actions = String::from("<section class=\"actions\">");
    match p.status {
        SnapshotStatus::Available => {
            actions.push_str(&format!(
                "<div class=\"card\"><h3>Roll back</h3><p>The volume's bytes become this point's.</p><a class=\"button danger\" id=\"rollback\" href=\"/console/snapshots/{0}/rollback\">Roll back…</a></div>\
<form method=\"post\" action=\"/console/snapshots/{0}/to-volume\" class=\"card\">{csrf}<h3>New volume</h3>\
<label>Name<input name=\"name\" id=\"tovol-name\"></label><label>Size (GiB, empty: the point's)<input name=\"size_gib\" inputmode=\"numeric\"></label>\
<button type=\"submit\" id=\"to-volume\">Create volume</button></form>\
<form method=\"post\" action=\"/console/snapshots/{0}/capture\" class=\"card\">{csrf}<h3>Capture image</h3>\
<label>Name<input name=\"name\" id=\"capture-name\"></label><button type=\"submit\" id=\"capture\">Capture</button></form>",
                esc(&shown)
            ));
        }
        SnapshotStatus::Deleted => actions.push_str(&format!(
            "<form method=\"post\" action=\"/console/snapshots/{}/recover\" class=\"card\">{csrf}<h3>Recover</h3><p>Bring this point back{}.</p><button type=\"submit\" id=\"recover\">Recover</button></form>",
            esc(&shown),
            esc(&left)
        )),
        _ => {}
    }
    if p.status != SnapshotStatus::Ceased {
        actions.push_str(&format!(
            "<form method=\"post\" action=\"/console/snapshots/{0}/rename\" class=\"card\">{csrf}<h3>Rename</h3>\
<label>Name<input name=\"name\" id=\"rename-name\" value=\"{1}\"></label><button type=\"submit\" id=\"rename\">Rename</button></form>\
<form method=\"post\" action=\"/console/snapshots/{0}/tag\" class=\"card\">{csrf}<h3>Tag</h3>\
<label>Key<input name=\"key\" id=\"tag-key\"></label><label>Value<input name=\"value\" id=\"tag-value\"></label><button type=\"submit\" id=\"tag\">Add tag</button></form>",
            esc(&shown),
            esc(&p.name)
        ));
    }
    if matches!(p.status, SnapshotStatus::Available | SnapshotStatus::Creating) {
        actions.push_str(&format!(
            "<div class=\"card\"><h3>Delete</h3><a class=\"button danger\" id=\"delete-snapshot\" href=\"/console/snapshots/{}/delete\">Delete…</a></div>",
            esc(&shown)
        ));
    }
    actions.push_str("</section>");
    body.push_str(&actions);
    render(&s, &format!("Snapshot {}", if p.name.is_empty() { &shown } else { &p.name }), "snapshots", &body)
}

pub async fn confirm_rollback(State(st): St, s: Signed, Path(sid): Path<String>) -> Response {
    let c = s.caller();
    let p = match st.service.snapshot(&c, &sid).await {
        Ok(p) => p,
        Err(e) => {
            return render(&s, "Roll back", "snapshots", &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e))))
        }
    };
    let shown = id(Kind::Snapshot, &p.id);
    let vol = id(Kind::Volume, &p.volume_id);
    let named = |n: &str| if n.is_empty() { String::new() } else { format!(" (\"{n}\")") };
    confirm(
        &s,
        "Roll back",
        &format!(
            "Roll back volume {vol}{} to snapshot {shown}{} taken {}? Everything written to the volume since then is lost.",
            named(&p.volume_name),
            named(&p.name),
            time(p.snapshot_time)
        ),
        &format!("/console/snapshots/{shown}/rollback"),
        "",
        "Roll back",
        &format!("/console/snapshots/{shown}"),
    )
}

pub async fn rollback(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let c = s.caller();
    let back = format!("/console/snapshots/{}", html::url(&sid));
    match st.service.apply_snapshot(&c, &sid).await {
        Ok(job) => {
            let to = match st.service.snapshot(&c, &sid).await {
                Ok(p) => format!("/console/volumes/{}", id(Kind::Volume, &p.volume_id)),
                Err(_) => back,
            };
            finish(&st, &s, &to, ok(format!("Rolling back to {sid}."), Some(id(Kind::Job, &job.id))))
        }
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn to_volume(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/snapshots/{}", html::url(&sid));
    let size_gib = match field(&form, "size_gib") {
        "" => None,
        _ => match gib(&form, "size_gib") {
            Ok(n) => Some(n),
            Err(m) => return finish(&st, &s, &back, failed(m)),
        },
    };
    let req = VolumeFromSnapshot {
        snapshot: sid.clone(),
        name: field(&form, "name").to_string(),
        size_gib,
        ..Default::default()
    };
    match st.service.restore_volume(&s.caller(), &req).await {
        Ok((job, v)) => {
            let vid = id(Kind::Volume, &v.id);
            finish(
                &st,
                &s,
                &format!("/console/volumes/{vid}"),
                ok(format!("Creating volume {vid} from {sid}."), Some(id(Kind::Job, &job.id))),
            )
        }
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn capture(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/snapshots/{}", html::url(&sid));
    match st.service.capture_image(&s.caller(), &sid, field(&form, "name")).await {
        Ok((job, img)) => finish(
            &st,
            &s,
            "/console/images",
            ok(format!("Capturing image {}.", id(Kind::Image, &img.id)), Some(id(Kind::Job, &job.id))),
        ),
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn rename_snapshot(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/snapshots/{}", html::url(&sid));
    match st.service.modify_snapshot(&s.caller(), &sid, Some(field(&form, "name")), None).await {
        Ok(_) => finish(&st, &s, &back, ok("Renamed.", None)),
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn tag_snapshot(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/snapshots/{}", html::url(&sid));
    let (key, value) = (field(&form, "key"), field(&form, "value"));
    let c = s.caller();
    let svc = &st.service;
    // The point first: a tag is never created for a snapshot that is not there.
    if let Err(e) = svc.snapshot(&c, &sid).await {
        return finish(&st, &s, &back, failed(explain(&e)));
    }
    let existing = match svc.tags(&c).await {
        Ok(tags) => tags.into_iter().find(|t| t.key == key && t.value == value),
        Err(e) => return finish(&st, &s, &back, failed(explain(&e))),
    };
    let (tag, created) = match existing {
        Some(t) => (t, false),
        None => match svc.create_tag(&c, key, value).await {
            Ok(t) => (t, true),
            Err(e) => return finish(&st, &s, &back, failed(explain(&e))),
        },
    };
    match svc.attach_tags(&c, &[(tag.id.clone(), sid.clone())]).await {
        Ok(()) => finish(&st, &s, &back, ok(format!("Tagged {key}={value}."), None)),
        Err(e) => {
            // Nothing half-done: the tag made for this attach goes with it.
            if created {
                let _ = svc.delete_tags(&c, &[tag.id]).await;
            }
            finish(&st, &s, &back, failed(explain(&e)))
        }
    }
}

pub async fn untag_snapshot(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/snapshots/{}", html::url(&sid));
    match st.service.detach_tags(&s.caller(), &[(field(&form, "tag").to_string(), sid.clone())]).await {
        Ok(()) => finish(&st, &s, &back, ok("Tag removed.", None)),
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn confirm_delete_snapshot(State(st): St, s: Signed, Path(sid): Path<String>) -> Response {
    let p = match st.service.snapshot(&s.caller(), &sid).await {
        Ok(p) => p,
        Err(e) => {
            return render(
                &s,
                "Delete snapshot",
                "snapshots",
                &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e))),
            )
        }
    };
    let shown = id(Kind::Snapshot, &p.id);
    let what = if p.full {
        format!(
            "It is a full point: it stays recoverable for {} after deletion.",
            html::span(st.service.config().deleted_retention.as_secs() as i64)
        )
    } else {
        "It is an incremental point: it is released at once (the other points stay restorable).".to_string()
    };
    confirm(
        &s,
        "Delete snapshot",
        &format!("Delete snapshot {shown} of volume {}? {what}", id(Kind::Volume, &p.volume_id)),
        &format!("/console/snapshots/{shown}/delete"),
        "<label class=\"check\"><input type=\"checkbox\" name=\"with_later\" value=\"1\" id=\"with-later\"> also the later points of its chain (a full point: the whole chain)</label>",
        "Delete",
        &format!("/console/snapshots/{shown}"),
    )
}

pub async fn delete_snapshot(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let c = s.caller();
    let back = format!("/console/snapshots/{}", html::url(&sid));
    let volume = st.service.snapshot(&c, &sid).await.ok().map(|p| id(Kind::Volume, &p.volume_id));
    let scope = if field(&form, "with_later") == "1" { DeleteScope::PointAndLater } else { DeleteScope::Points };
    match st.service.delete_snapshots(&c, std::slice::from_ref(&sid), scope).await {
        Ok(job) => {
            let to = volume.map(|v| format!("/console/volumes/{v}")).unwrap_or_else(|| "/console/snapshots".into());
            finish(&st, &s, &to, ok(format!("Deleting snapshot {sid}."), Some(id(Kind::Job, &job.id))))
        }
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

pub async fn recover(State(st): St, s: Signed, Path(sid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let back = format!("/console/snapshots/{}", html::url(&sid));
    match st.service.recover_snapshot(&s.caller(), &sid).await {
        Ok(_) => finish(&st, &s, &back, ok(format!("Recovered {sid}."), None)),
        Err(e) => finish(&st, &s, &back, failed(explain(&e))),
    }
}

// ---------------------------------------------------------------------------------------
// Jobs and images

pub async fn jobs(State(st): St, s: Signed, Query(q): Query<Fields>) -> Response {
    let (offset, limit) = paging(&q);
    let statuses: Vec<JobStatus> = q.get("status").and_then(|v| JobStatus::parse(v)).into_iter().collect();
    let mut body = String::from("<p class=\"filters\">Show: <a href=\"/console/jobs\">all</a>");
    for st_ in JobStatus::ALL {
        body.push_str(&format!(" · <a href=\"/console/jobs?status={0}\">{0}</a>", st_.as_str()));
    }
    body.push_str("</p>");
    match st.service.jobs(&s.caller(), &[], &statuses, None, offset, limit).await {
        Err(e) => body.push_str(&format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
        Ok((list, total)) => {
            body.push_str(&pager("/console/jobs", &q, offset, limit, list.len(), total));
            body.push_str(&job_rows(&st, &list));
        }
    }
    render(&s, "Jobs", "jobs", &body)
}

/// `GET /console/api/jobs?ids=j-a,j-b`: the jobs' status and progress, for the live bars.
pub async fn jobs_json(State(st): St, s: Signed, Query(q): Query<Fields>) -> Response {
    let c = s.caller();
    let mut out = Vec::new();
    for jid in q.get("ids").map(String::as_str).unwrap_or("").split(',').filter(|i| !i.is_empty()).take(100) {
        match st.service.job(&c, jid).await {
            Ok(j) => out.push(serde_json::json!({
                "id": id(Kind::Job, &j.id),
                "status": j.status.as_str(),
                "done": j.is_done(),
                "percent": job_percent(&st, &j),
                "error": j.error,
            })),
            Err(e) => out.push(
                serde_json::json!({"id": jid, "status": "unknown", "done": true, "percent": 0, "error": explain(&e)}),
            ),
        }
    }
    Json(serde_json::json!({ "jobs": out })).into_response()
}

pub async fn images(State(st): St, s: Signed, Query(q): Query<Fields>) -> Response {
    let (offset, limit) = paging(&q);
    let mut body = String::new();
    match st.service.images(&s.caller(), offset, limit).await {
        Err(e) => body.push_str(&format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
        Ok((list, total)) => {
            body.push_str(&pager("/console/images", &q, offset, limit, list.len(), total));
            body.push_str("<div class=\"scroll\"><table class=\"list\" id=\"images\"><thead><tr><th>Image</th><th>Name</th><th>From snapshot</th><th>Size</th><th>Status</th><th>Created</th><th></th></tr></thead><tbody>");
            for i in &list {
                let shown = id(Kind::Image, &i.id);
                body.push_str(&format!(
                    "<tr data-image=\"{0}\"><td><code>{0}</code>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td><td>{7}</td></tr>",
                    esc(&shown),
                    html::renderings(&st.renderings, Kind::Image, &i.id),
                    esc(&i.name),
                    link(Kind::Snapshot, &i.snapshot_id),
                    bytes(i.size),
                    i.status,
                    esc(&time(i.create_time)),
                    html::button(&format!("/console/images/{shown}/delete"), "Delete", &s.session.csrf, "danger small"),
                ));
            }
            if list.is_empty() {
                body.push_str("<tr><td colspan=\"7\" class=\"empty\">No images yet.</td></tr>");
            }
            body.push_str("</tbody></table></div>");
        }
    }
    render(&s, "Images", "images", &body)
}

pub async fn delete_image(State(st): St, s: Signed, Path(iid): Path<String>, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    match st.service.delete_images(&s.caller(), std::slice::from_ref(&iid)).await {
        Ok(_) => finish(&st, &s, "/console/images", ok(format!("Deleted image {iid}."), None)),
        Err(e) => finish(&st, &s, "/console/images", failed(explain(&e))),
    }
}
