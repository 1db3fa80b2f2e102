//! HTML building blocks: escaping, the page frame, sizes, times and ids as people read them.
//! Every value that came from a user or the store goes through [`esc`] before it is written.

use chrono::{DateTime, Utc};
use disksnap_service::Kind;

use crate::session::Flash;
use crate::IdRendering;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query parameter value.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration in words: "1 h 59 min", "45 s".
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

static OWN: std::sync::OnceLock<fn(Kind, &str) -> String> = std::sync::OnceLock::new();

/// Set once, by [`crate::Console::new`], from the binary's first id rendering. A process
/// serves one console, so one rendering for the process is enough.
pub(crate) fn set_own_rendering(f: fn(Kind, &str) -> String) {
    let _ = OWN.set(f);
}

/// The console's own rendering of an id (the first the binary injected: the CLI's), or the
/// bare id before a console exists.
pub fn id(kind: Kind, bare: &str) -> String {
    match OWN.get() {
        Some(f) => f(kind, bare),
        None => bare.to_string(),
    }
}

/// A link to a resource's page, showing its id.
pub fn link(kind: Kind, bare: &str) -> String {
    let shown = id(kind, bare);
    match kind {
        Kind::Volume => format!("<a href=\"/console/volumes/{0}\">{0}</a>", esc(&shown)),
        Kind::Snapshot => format!("<a href=\"/console/snapshots/{0}\">{0}</a>", esc(&shown)),
        _ => format!("<code>{}</code>", esc(&shown)),
    }
}

/// The resource's id in every dialect's rendering, each with a copy button.
pub fn renderings(list: &[IdRendering], kind: Kind, bare: &str) -> String {
    let mut out = String::from("<details class=\"ids\"><summary>Ids in every API</summary><table>");
    for (dialect, render) in list {
        let text = render(kind, bare);
        out.push_str(&format!(
            "<tr><th>{}</th><td><code>{1}</code></td><td><button type=\"button\" class=\"copy\" data-copy=\"{1}\">Copy</button></td></tr>",
            esc(dialect),
            esc(&text)
        ));
    }
    out.push_str("</table></details>");
    out
}

/// A hidden CSRF field, for every form.
pub fn csrf(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(token))
}

/// A one-button form posting to `action`.
pub fn button(action: &str, label: &str, csrf_token: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}<button type=\"submit\" class=\"{}\">{}</button></form>",
        esc(action),
        csrf(csrf_token),
        esc(class),
        esc(label)
    )
}

/// A job's live progress bar (console.js polls it until the job ends).
pub fn job_bar(job_id: &str, status: &str, percent: u8, done: bool) -> String {
    format!(
        "<span class=\"job\" data-job=\"{0}\" data-done=\"{1}\"><progress max=\"100\" value=\"{2}\">{2}%</progress> <span class=\"pct\">{2}%</span> <span class=\"status\">{3}</span> <span class=\"jerr\"></span></span>",
        esc(job_id),
        u8::from(done),
        percent,
        esc(status)
    )
}

pub struct Frame<'a> {
    pub title: &'a str,
    pub account: Option<&'a str>,
    pub csrf: Option<&'a str>,
    pub flash: Option<&'a Flash>,
    /// Which nav entry is the current page.
    pub nav: &'a str,
}

/// The whole page around `body`.
pub fn page(f: &Frame, body: &str) -> String {
    let mut nav = String::new();
    if let (Some(account), Some(csrf_token)) = (f.account, f.csrf) {
        nav.push_str("<nav><a class=\"brand\" href=\"/console/\">disksnap</a>");
        for (href, key, label) in [
            ("/console/", "overview", "Overview"),
            ("/console/volumes", "volumes", "Volumes"),
            ("/console/snapshots", "snapshots", "Snapshots"),
            ("/console/jobs", "jobs", "Jobs"),
            ("/console/images", "images", "Images"),
            ("/console/policies", "policies", "Policies"),
            ("/console/groups", "groups", "Groups"),
        ] {
            let cur = if key == f.nav { " class=\"current\"" } else { "" };
            nav.push_str(&format!("<a href=\"{href}\"{cur}>{label}</a>"));
        }
        nav.push_str(&format!(
            "<span class=\"who\">account <b id=\"account\">{}</b></span>{}</nav>",
            esc(account),
            button("/console/logout", "Sign out", csrf_token, "signout")
        ));
    }
    let flash = match f.flash {
        None => String::new(),
        Some(fl) => {
            let job = fl.job.as_deref().map(|j| job_bar(j, "", 0, false)).unwrap_or_default();
            format!(
                "<div class=\"flash {}\" role=\"{}\" id=\"flash\">{}{}</div>",
                if fl.error { "error" } else { "ok" },
                if fl.error { "alert" } else { "status" },
                esc(&fl.text),
                if job.is_empty() { String::new() } else { format!("<div>{job}</div>") }
            )
        }
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · disksnap</title><link rel=\"stylesheet\" href=\"/console/static/style.css\">\
<script src=\"/console/static/console.js\" defer></script></head>\
<body>{nav}<main><h1>{}</h1>{flash}{body}</main></body></html>",
        esc(f.title),
        esc(f.title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_inert() {
        assert_eq!(esc("<script>\"x\"&'y'</script>"), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;");
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn sizes_and_spans_read_as_words() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(span(7140), "1 h 59 min");
        assert_eq!(span(75), "1 min 15 s");
        assert_eq!(span(-3), "0 s");
    }
}
