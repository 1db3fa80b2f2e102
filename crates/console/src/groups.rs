//! The snapshot groups page: several volumes taken at one snapshot time, shown as one row with
//! its member points, and the actions on a whole group (roll back all or nothing, delete).
//! Every action is one Service call, as the CLI's and Aliyun's, so a refused one changes
//! nothing and says why in the service's words.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use disksnap_service::{CreateSnapshotGroup, Kind};

use crate::html::{self, esc, id, link, time};
use crate::pages::{check_csrf, confirm, explain, failed, field, finish, ok, render, Fields, St};
use crate::Signed;

const HOME: &str = "/console/groups";

/// "v-1, v-2" or "v-1 v-2" → ids.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

pub async fn groups(State(st): St, s: Signed) -> Response {
    let mut body = format!(
        "<details class=\"card\"><summary>Take a group</summary><form method=\"post\" action=\"{HOME}\" class=\"grid\">{}\
<label>Volumes (ids, separated by spaces or commas)<input name=\"volumes\" id=\"group-volumes\"></label>\
<label>or every volume of instance<input name=\"instance\" id=\"group-instance\"></label>\
<label>Name<input name=\"name\" id=\"group-name\"></label>\
<label>Description<input name=\"description\" id=\"group-description\"></label>\
<button type=\"submit\" id=\"create-group\">Take</button></form></details>",
        html::csrf(&s.session.csrf)
    );
    match st.service.snapshot_groups(&s.caller()).await {
        Err(e) => body.push_str(&format!("<p class=\"flash error\">{}</p>", esc(&explain(&e)))),
        Ok(list) => {
            body.push_str("<div class=\"scroll\"><table class=\"list\" id=\"groups\"><thead><tr><th>Group</th><th>Name</th><th>Status</th><th>Points</th><th>Taken</th><th></th></tr></thead><tbody>");
            for g in &list {
                let shown = id(Kind::SnapshotGroup, &g.id);
                let base = format!("{HOME}/{}", html::url(&shown));
                // Each volume the group was taken of, with its point while that point lives.
                let members: Vec<String> = g
                    .volume_ids
                    .iter()
                    .map(|v| match g.snapshots.iter().find(|p| &p.volume_id == v) {
                        Some(p) => format!("<li>{} → {}</li>", link(Kind::Volume, v), link(Kind::Snapshot, &p.id)),
                        None => {
                            format!("<li>{} → <span class=\"muted\">point deleted</span></li>", link(Kind::Volume, v))
                        }
                    })
                    .collect();
                let state = match g.transition.as_str() {
                    "" => g.status.as_str().to_string(),
                    t => format!("{} ({t}, {}%)", g.status.as_str(), g.progress),
                };
                let actions = if g.transition.is_empty() {
                    format!(
                        "<a class=\"button small\" href=\"{base}/rollback\">Roll back…</a>{}",
                        html::button(&format!("{base}/delete"), "Delete", &s.session.csrf, "danger small")
                    )
                } else {
                    String::new()
                };
                body.push_str(&format!(
                    "<tr data-group=\"{0}\"><td><code>{0}</code>{1}</td><td>{2}</td><td>{3}</td><td><ul class=\"members\">{4}</ul></td><td>{5}</td><td>{6}</td></tr>",
                    esc(&shown),
                    html::renderings(&st.renderings, Kind::SnapshotGroup, &g.id),
                    esc(&g.name),
                    esc(&state),
                    members.join(""),
                    esc(&time(g.create_time)),
                    actions,
                ));
            }
            if list.is_empty() {
                body.push_str("<tr><td colspan=\"6\" class=\"empty\">No snapshot groups yet.</td></tr>");
            }
            body.push_str("</tbody></table></div>");
            body.push_str("<p class=\"hint\">A group is one point of each volume at one snapshot time. Rolling it back puts every volume back to its point, or none of them; deleting it deletes its points (one an image was made from stays).</p>");
        }
    }
    render(&s, "Snapshot groups", "groups", &body)
}

pub async fn create_group(State(st): St, s: Signed, Form(form): Form<Fields>) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let req = CreateSnapshotGroup {
        volumes: words(field(&form, "volumes")),
        instance: Some(field(&form, "instance").trim().to_string()).filter(|i| !i.is_empty()),
        exclude: Vec::new(),
        name: field(&form, "name").to_string(),
        description: field(&form, "description").to_string(),
    };
    match st.service.create_snapshot_group(&s.caller(), req).await {
        Ok((job, g)) => finish(
            &st,
            &s,
            HOME,
            ok(
                format!("Taking group {} of {} volume(s).", id(Kind::SnapshotGroup, &g.id), g.volume_ids.len()),
                Some(id(Kind::Job, &job.id)),
            ),
        ),
        Err(e) => finish(&st, &s, HOME, failed(explain(&e))),
    }
}

/// The roll back's confirmation names every volume and the point it goes back to.
pub async fn confirm_rollback(State(st): St, s: Signed, Path(gid): Path<String>) -> Response {
    let g = match st.service.snapshot_group(&s.caller(), &gid).await {
        Ok(g) => g,
        Err(e) => {
            return render(
                &s,
                "Roll back a group",
                "groups",
                &format!("<p class=\"flash error\">{}</p>", esc(&explain(&e))),
            )
        }
    };
    let pairs: Vec<String> = g
        .snapshots
        .iter()
        .map(|p| format!("volume {} to {}", id(Kind::Volume, &p.volume_id), id(Kind::Snapshot, &p.id)))
        .collect();
    let shown = id(Kind::SnapshotGroup, &g.id);
    confirm(
        &s,
        "Roll back a group",
        &format!(
            "Roll back every volume of group {shown} taken {}: {}? Everything written to them since is lost; if one cannot be rolled back, none is.",
            time(g.create_time),
            pairs.join(", ")
        ),
        &format!("{HOME}/{}/rollback", html::url(&shown)),
        "",
        "Roll back",
        HOME,
    )
}

/// The confirmed roll back.
pub async fn rollback(st: St, s: Signed, Path(gid): Path<String>, form: Form<Fields>) -> Response {
    group_action(st, s, Path((gid, "rollback".into())), form).await
}

/// Roll back or delete one group.
pub async fn group_action(
    State(st): St,
    s: Signed,
    Path((gid, action)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Response {
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let c = s.caller();
    let done = match action.as_str() {
        "rollback" => st
            .service
            .rollback_snapshot_group(&c, &gid)
            .await
            .map(|job| (format!("Rolling back every volume of {gid}."), job)),
        "delete" => st.service.delete_snapshot_group(&c, &gid).await.map(|(job, kept)| {
            let text = match kept.len() {
                0 => format!("Deleting group {gid} and its points."),
                _ => format!(
                    "Deleting group {gid}; its points {} stay, images were made from them.",
                    kept.iter().map(|p| id(Kind::Snapshot, p)).collect::<Vec<_>>().join(", ")
                ),
            };
            (text, job)
        }),
        _ => return crate::pages::not_found(s).await,
    };
    match done {
        Ok((text, job)) => finish(&st, &s, HOME, ok(text, Some(id(Kind::Job, &job.id)))),
        Err(e) => finish(&st, &s, HOME, failed(explain(&e))),
    }
}
