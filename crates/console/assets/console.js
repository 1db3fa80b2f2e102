// disksnap console: live job progress bars and copy buttons. No framework, no network access
// beyond this server's own /console/api/jobs; pages work without it (they just don't update).
"use strict";

function pollJobs() {
  const open = Array.from(document.querySelectorAll(".job[data-done='0']"));
  if (open.length === 0) return;
  const ids = Array.from(new Set(open.map((e) => e.dataset.job)));
  fetch("/console/api/jobs?ids=" + encodeURIComponent(ids.join(",")), { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((body) => {
      for (const j of body.jobs) {
        for (const el of document.querySelectorAll(".job[data-job='" + CSS.escape(j.id) + "']")) {
          const bar = el.querySelector("progress");
          bar.value = j.percent;
          bar.textContent = j.percent + "%";
          el.querySelector(".pct").textContent = j.percent + "%";
          el.querySelector(".status").textContent = j.status;
          el.dataset.status = j.status;
          if (j.error) el.querySelector(".jerr").textContent = j.error;
          if (j.done) el.dataset.done = "1";
        }
      }
    })
    .catch(() => {})
    .finally(() => setTimeout(pollJobs, 400));
}

function copy(text, button) {
  const done = () => {
    const old = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = old), 1200);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const t = document.createElement("textarea");
  t.value = text;
  document.body.appendChild(t);
  t.select();
  try { document.execCommand("copy"); done(); } catch (e) { /* the id stays visible to copy by hand */ }
  t.remove();
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button.copy");
  if (b) copy(b.dataset.copy, b);
});

document.addEventListener("DOMContentLoaded", pollJobs);
