//! The automatic snapshot policies page: each policy's schedule, retention and bound volumes,
//! and the actions on them. Every action is one Service call (the same ones the CLI and the
//! dialects make), so a refused one changes nothing and says why in the service's words.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use disksnap_service::{Kind, Policy, PolicySpec, Retention, Schedule};

use crate::html::{self, esc, id, link, time};
use crate::pages::{check_csrf, explain, failed, field, finish, ok, render, Fields, St};
use crate::Signed;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn schedule_words(p: &Policy) -> String {
    let days = match &p.schedule {
        Schedule::Weekdays(d) if d.len() == 7 => "every day".to_string(),
        Schedule::Weekdays(d) => d.iter().map(|n| DAYS[(*n as usize).clamp(1, 7) - 1]).collect::<Vec<_>>().join(", "),
        Schedule::EveryDays(1) => "every day".to_string(),
        Schedule::EveryDays(n) => format!("every {n} days"),
    };
    let hours: Vec<String> = p.hours.iter().map(|h| format!("{h:02}:00")).collect();
    format!("{days} at {} UTC", hours.join(", "))
}

fn retention_words(r: &Retention) -> String {
    match r {
        Retention::Forever => "kept until deleted".into(),
        Retention::Days(d) => format!("kept {d} days"),
        Retention::Count(n) => format!("last {n} per volume"),
    }
}

/// "1, 13" or "1 13" → hours; a word that is not a number is refused naming it.
fn numbers(form: &Fields, name: &str, what: &str) -> Result<Vec<u32>, String> {
    field(form, name)
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u32>().map_err(|_| format!("{what}: \"{t}\" is not a whole number.")))
        .collect()
}

/// The form's schedule and retention as a spec (the service checks the ranges).
fn spec_of(form: &Fields) -> Result<PolicySpec, String> {
    let hours = numbers(form, "hours", "Hours")?;
    let schedule = match field(form, "every_days") {
        "" => {
            let days: Vec<u32> = DAYS
                .iter()
                .enumerate()
                .filter(|(_, d)| form.contains_key(&format!("day_{}", d.to_lowercase())))
                .map(|(i, _)| i as u32 + 1)
                .collect();
            Schedule::Weekdays(days.into_iter().map(|d| d as u8).collect())
        }
        n => Schedule::EveryDays(n.parse().map_err(|_| format!("Every N days: \"{n}\" is not a whole number."))?),
    };
    let count = |name: &str| -> Result<u32, String> {
        let t = field(form, name);
        t.parse().map_err(|_| format!("Retention: \"{t}\" is not a whole number."))
    };
    let retention = match field(form, "keep") {
        "days" => Retention::Days(count("keep_n")?),
        "count" => Retention::Count(count("keep_n")?),
        _ => Retention::Forever,
    };
    Ok(PolicySpec {
        name: Some(field(form, "name").to_string()),
        // An hour past 255 cannot be a u8; the service's check names 24 and up as out of range.
        hours: Some(hours.into_iter().map(|h| h.min(255) as u8).collect()),
        schedule: Some(schedule),
        retention: Some(retention),
        enabled: Some(true),
    })
}

pub async fn policies(State(st): St, s: Signed) -> Response {
    let day_boxes: String = DAYS
        .iter()
        .map(|d| {
            format!(
                "<label class=\"inline\"><input type=\"checkbox\" name=\"day_{0}\" checked>{d}</label>",
                d.to_lowercase()
            )
        })
        .collect();
    let mut body = format!(
        "<details class=\"card\"><summary>Create a policy</summary><form method=\"post\" action=\"/console/policies\" class=\"grid\">{}\
<label>Name<input name=\"name\" id=\"policy-name\" required></label>\
<label>Hours (UTC, e.g. 2, 14)<input name=\"hours\" id=\"policy-hours\" value=\"2\" required></label>\
<fieldset><legend>On</legend>{day_boxes}<label>or every N days<input name=\"every_days\" id=\"policy-every\" inputmode=\"numeric\"></label></fieldset>\
<label>Keep<select name=\"keep\" id=\"policy-keep\"><option value=\"days\">N days</option><option value=\"count\">the last N points</option><option value=\"forever\">forever</option></select></label>\
<label>N<input name=\"keep_n\" id=\"policy-keep-n\" inputmode=\"numeric\" value=\"7\"></label>\
<button type=\"submit\" id=\"create-policy\">Create</button></form></details>",
        html::csrf(&s.session.csrf)
    );
    match st.service.policies(&s.caller()).await {
        Err(e) => body.push_str(&format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
        Ok(list) => {
            body.push_str("<div class=\"scroll\"><table class=\"list\" id=\"policies\"><thead><tr><th>Policy</th><th>Name</th><th>Schedule</th><th>Retention</th><th>State</th><th>Volumes</th><th>Created</th><th></th></tr></thead><tbody>");
            for p in &list {
                let shown = id(Kind::Policy, &p.id);
                let base = format!("/console/policies/{}", html::url(&shown));
                let vols: Vec<String> = p
                    .volumes
                    .iter()
                    .map(|v| {
                        format!(
                            "<span class=\"bound\">{}{}</span>",
                            link(Kind::Volume, v),
                            unbind_button(&base, &id(Kind::Volume, v), &s.session.csrf)
                        )
                    })
                    .collect();
                let (toggle, label) = if p.enabled { ("disable", "Disable") } else { ("enable", "Enable") };
                body.push_str(&format!(
                    "<tr data-policy=\"{0}\"><td><code>{0}</code>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}\
<form method=\"post\" action=\"{7}/bind\" class=\"inline\">{8}<input name=\"volume\" placeholder=\"volume id\" aria-label=\"volume to bind\" required><button type=\"submit\" class=\"small\">Bind</button></form></td>\
<td>{9}</td><td>{10}{11}{12}</td></tr>",
                    esc(&shown),
                    html::renderings(&st.renderings, Kind::Policy, &p.id),
                    esc(&p.name),
                    esc(&schedule_words(p)),
                    esc(&retention_words(&p.retention)),
                    if p.enabled { "enabled" } else { "disabled" },
                    vols.join(" "),
                    base,
                    html::csrf(&s.session.csrf),
                    esc(&time(p.create_time)),
                    html::button(&format!("{base}/run"), "Run now", &s.session.csrf, "small"),
                    html::button(&format!("{base}/{toggle}"), label, &s.session.csrf, "small"),
                    html::button(&format!("{base}/delete"), "Delete", &s.session.csrf, "danger small"),
                ));
            }
            if list.is_empty() {
                body.push_str("<tr><td colspan=\"8\" class=\"empty\">No policies yet.</td></tr>");
            }
            body.push_str("</tbody></table></div>");
            body.push_str("<p class=\"hint\">A policy takes one automatic point of each bound volume at each of its hours (UTC) and deletes its own oldest points past the retention; manual points are never deleted by a policy.</p>");
        }
    }
    render(&s, "Policies", "policies", &body)
}

fn unbind_button(base: &str, volume: &str, csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{base}/unbind\" class=\"inline\">{}<input type=\"hidden\" name=\"volume\" value=\"{}\"><button type=\"submit\" class=\"small link\" title=\"unbind\">×</button></form>",
        html::csrf(csrf),
        esc(volume)
    )
}

pub async fn create_policy(State(st): St, s: Signed, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let spec = match spec_of(&form) {
        Ok(spec) => spec,
        Err(m) => return finish(&st, &s, "/console/policies", failed(m)),
    };
    match st.service.create_policy(&s.caller(), spec).await {
        Ok(p) => finish(&st, &s, "/console/policies", ok(format!("Created policy {}.", id(Kind::Policy, &p.id)), None)),
        Err(e) => finish(&st, &s, "/console/policies", failed(explain(&e))),
    }
}

/// Bind, unbind, enable, disable, run now or delete one policy.
pub async fn policy_action(
    State(st): St,
    s: Signed,
    Path((pid, action)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let c = s.caller();
    let svc = &st.service;
    let volume = field(&form, "volume").to_string();
    let done = match action.as_str() {
        "bind" => {
            svc.bind_policy(&c, &pid, std::slice::from_ref(&volume)).await.map(|_| format!("Bound {volume} to {pid}."))
        }
        "unbind" => svc
            .unbind_policy(&c, &pid, std::slice::from_ref(&volume))
            .await
            .map(|_| format!("Unbound {volume} from {pid}.")),
        "enable" | "disable" => {
            let spec = PolicySpec { enabled: Some(action == "enable"), ..Default::default() };
            svc.modify_policy(&c, &pid, spec).await.map(|_| format!("Policy {pid} {action}d."))
        }
        "run" => svc.run_policy(&c, &pid, chrono::Utc::now()).await.map(|f| {
            format!(
                "Policy {pid} started {} automatic point(s); its retention applies at the next maintenance pass.",
                f.snapshots.len()
            )
        }),
        "delete" => svc.delete_policy(&c, &pid).await.map(|_| format!("Deleted policy {pid}; its points stay.")),
        _ => return crate::pages::not_found(s).await,
    };
    match done {
        Ok(text) => finish(&st, &s, "/console/policies", ok(text, None)),
        Err(e) => finish(&st, &s, "/console/policies", failed(explain(&e))),
    }
}
