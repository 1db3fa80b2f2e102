//! The write stream (issue 16: "while bench/api.sh runs at its peak, a concurrent stream of
//! CreateSnapshots/DeleteSnapshots on other volumes keeps p99 <= 50 ms for the writes, and every
//! list answer stays exact").
//!
//! One more keep-alive connection, on a thread (and runtime) of its own so the list load's
//! tasks do not delay its answers, sends signed QingCloud CreateSnapshots and DeleteSnapshots
//! on alice's stream volumes (seed.rs: unattached, 1 GiB sparse files holding 64 KiB, which no
//! query of the mix filters on) at a fixed rate, polling DescribeSnapshots for the jobs. The
//! points follow the service's real state machine: a create answers with the point `pending`
//! (its capture is a job); only once it is seen `available` is it deleted (a point being
//! created cannot be); the delete is a job too, and the stream's points are incrementals on
//! the volume's anchor (a full point kept across runs), so a deleted one is `ceased` and no
//! list shows it again: the data dir is back to seed + anchors after every step, and the
//! seed stays reusable.
//!
//! The lists stay exact: the queries that count points of every volume (no filter,
//! status=available, snapshot_type=1: `moves` in queries.json) are checked against bounds the
//! stream keeps ([`Truth`]). What the stream has seen answered is certain (a point whose create
//! was answered exists; one seen available is available; one seen gone is gone); what it has
//! sent and not yet seen settle may or may not be counted. A list answer must lie within the
//! bounds of every instant between its request and its answer (the client's events are ordered
//! with the server's: a write answered before a list was sent was committed before the list
//! was read). Between writes everything is settled and the bounds are one number, so a page
//! left cached over a write fails the check; the step counts the answers that had to include a
//! stream point, and a step with writes on and none is reported as a vacuous check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::load::Conn;

/// A write rate a real control plane sends one node, with margin: Terraform applies 10
/// resources at a time (`-parallelism=10`), each one create then polling every few seconds,
/// and a console user clicks a few times a minute; 20 writes/s (10 points created and 10
/// deleted each second, 72 000 an hour) is several applies or a snapshot policy firing over
/// hundreds of volumes at once, while each write still costs what a real one does (a job, a
/// capture, the list pages it makes stale).
pub const DEFAULT_RATE: f64 = 20.0;
/// How often the stream asks after its jobs (a poll is one small DescribeSnapshots).
const POLL: Duration = Duration::from_millis(100);

/// The classes of `moves`: what of the stream volumes' points a query counts.
pub const CLASSES: [&str; 3] = ["all", "available", "full"];

pub fn class_of(moves: &str) -> Option<usize> {
    CLASSES.iter().position(|c| *c == moves)
}

/// Bounds on what a list may count of the stream volumes' points, per class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    pub lo: [u64; 3],
    pub hi: [u64; 3],
}

/// The bounds at every change the stream made: a list checks its answer against those of
/// every version from the one current when it sent its request.
pub struct Truth {
    /// What the stream volumes hold between steps (anchors, and deleted full points QingCloud
    /// still shows), as the dialect under load counts them.
    base: [u64; 3],
    trace: Mutex<Vec<Bounds>>,
}

impl Truth {
    pub fn new(base: [u64; 3]) -> Truth {
        Truth { base, trace: Mutex::new(vec![Bounds { lo: base, hi: base }]) }
    }

    /// The version a request sent now starts at.
    pub fn version(&self) -> usize {
        self.trace.lock().expect("not poisoned").len() - 1
    }

    fn push(&self, points: &[Option<Point>]) {
        let mut b = Bounds { lo: self.base, hi: self.base };
        for p in points.iter().flatten() {
            let (lo, hi) = p.bounds();
            for c in 0..3 {
                b.lo[c] += lo[c];
                b.hi[c] += hi[c];
            }
        }
        let mut t = self.trace.lock().expect("not poisoned");
        if t.last() != Some(&b) {
            t.push(b);
        }
    }

    /// (lowest, highest) count of `class` over every version since `from`, and whether the
    /// lowest had to include a point of the stream's own.
    pub fn bounds(&self, from: usize, class: usize) -> (u64, u64, bool) {
        let t = self.trace.lock().expect("not poisoned");
        let lo = t[from..].iter().map(|b| b.lo[class]).min().unwrap_or(self.base[class]);
        let hi = t[from..].iter().map(|b| b.hi[class]).max().unwrap_or(self.base[class]);
        (lo, hi, lo > self.base[class])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The create is sent, not answered.
    CreateSent,
    /// Answered: the point exists, `pending` until its capture job ends.
    Created,
    /// Seen available (and not yet asked to go).
    Available,
    /// A delete is sent (answered or not): available until its job ends, then ceased.
    Deleting,
}

#[derive(Clone, Debug)]
struct Point {
    id: String,
    phase: Phase,
    /// Its snapshot_type once a poll showed it.
    full: Option<bool>,
}

impl Point {
    /// What this point adds to each class: (certain, possible).
    fn bounds(&self) -> ([u64; 3], [u64; 3]) {
        let (f_lo, f_hi) = match self.full {
            Some(f) => (f as u64, f as u64),
            None => (0, 1),
        };
        match self.phase {
            Phase::CreateSent => ([0, 0, 0], [1, 1, 1]),
            // Every dialect's unfiltered list shows a point being created.
            Phase::Created => ([1, 0, f_lo], [1, 1, f_hi]),
            Phase::Available => ([1, 1, f_lo], [1, 1, f_hi]),
            Phase::Deleting => ([0, 0, 0], [1, 1, f_hi]),
        }
    }
}

/// The QingCloud client the stream (and its set-up) signs with.
#[derive(Clone)]
pub struct Client {
    pub addr: String,
    pub key: String,
    pub secret: String,
    pub zone: String,
}

impl Client {
    fn request(&self, action: &str, params: &[(String, String)]) -> String {
        let target = crate::load::qingcloud_target(&self.key, &self.secret, &self.zone, action, params);
        format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr)
    }

    /// Send one action; Ok(answer) when it succeeded, Err(message) when the service refused
    /// (an HTTP or transport failure is the outer error).
    async fn call(
        &self,
        conn: &mut Conn,
        action: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<Result<Value, String>> {
        let req = self.request(action, params);
        let (status, body) = conn.send(req.as_bytes()).await?;
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| anyhow!("{action}: HTTP {status}, not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
        if status == 200 && v["ret_code"] == 0 {
            Ok(Ok(v))
        } else {
            Ok(Err(format!("{action}: HTTP {status} {}", v)))
        }
    }

    /// id -> (status, transition_status, snapshot_type) of the points asked (a point not in
    /// the answer is ceased: QingCloud lists leave those out).
    async fn describe(
        &self,
        conn: &mut Conn,
        filter: Vec<(String, String)>,
    ) -> anyhow::Result<Vec<(String, String, String, bool)>> {
        let mut p = vec![("limit".to_string(), "100".to_string()), ("verbose".into(), "0".into())];
        p.extend(filter);
        let v = self.call(conn, "DescribeSnapshots", &p).await?.map_err(|e| anyhow!(e))?;
        Ok(v["snapshot_set"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let t = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                (t("snapshot_id"), t("status"), t("transition_status"), s["snapshot_type"] == 1)
            })
            .collect())
    }
}

fn ids_param(key: &str, ids: &[String]) -> Vec<(String, String)> {
    ids.iter().enumerate().map(|(i, id)| (format!("{key}.{}", i + 1), id.clone())).collect()
}

/// Bring the stream volumes to their steady state (each: one available full point, the anchor,
/// and nothing busy; what an interrupted run left is waited for or deleted) and return what
/// the dialect's lists count of them then.
pub async fn setup(c: &Client, volumes: &[String], qingcloud: bool) -> anyhow::Result<[u64; 3]> {
    let mut conn = Conn::open(&c.addr).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut base = [0u64; 3];
    for vol in volumes {
        loop {
            if Instant::now() > deadline {
                bail!("stream volume {vol}: not settled after 120 s");
            }
            let pts = c.describe(&mut conn, vec![("resource_id".into(), vol.clone())]).await?;
            if pts.iter().any(|(_, s, t, _)| s == "pending" || !t.is_empty()) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if let Some((id, ..)) = pts.iter().find(|(_, s, _, full)| s == "available" && !full) {
                // An incremental a run left: its delete takes the later ones with it.
                c.call(&mut conn, "DeleteSnapshots", &ids_param("snapshots", std::slice::from_ref(id)))
                    .await?
                    .map_err(|e| anyhow!(e))?;
                continue;
            }
            if !pts.iter().any(|(_, s, _, full)| s == "available" && *full) {
                let p = vec![
                    ("resources.1".to_string(), vol.clone()),
                    ("is_full".into(), "1".into()),
                    ("snapshot_name".into(), "stream-anchor".into()),
                ];
                c.call(&mut conn, "CreateSnapshots", &p).await?.map_err(|e| anyhow!(e))?;
                continue;
            }
            for (_, s, _, full) in &pts {
                let available = s == "available";
                // QingCloud shows deleted (recoverable) points unfiltered; the others show only
                // live ones.
                if available || qingcloud {
                    base[0] += 1;
                }
                base[1] += available as u64;
                base[2] += *full as u64;
            }
            break;
        }
    }
    Ok(base)
}

/// What one step's stream did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Latency of each create and delete answered inside the measured window, microseconds.
    pub lat: Vec<u32>,
    pub creates: usize,
    pub deletes: usize,
    /// Writes the service refused (and the first few messages), and jobs that failed.
    pub failures: usize,
    pub first_failures: Vec<String>,
    /// Ticks with nothing to send: every stream volume still waiting on a job.
    pub idle_ticks: usize,
}

impl Stats {
    fn fail(&mut self, msg: String) {
        self.failures += 1;
        if self.first_failures.len() < 5 {
            self.first_failures.push(msg);
        }
    }
}

/// Run the stream on a thread of its own from now until `end` (answers before `measure_from`
/// not timed), then let every point it made settle and go, so the next step starts from the
/// same state.
pub fn spawn(
    c: Client,
    volumes: Vec<String>,
    rate: f64,
    truth: Arc<Truth>,
    measure_from: Instant,
    end: Instant,
) -> std::thread::JoinHandle<anyhow::Result<Stats>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(stream(c, volumes, rate, truth, measure_from, end))
    })
}

async fn stream(
    c: Client,
    volumes: Vec<String>,
    rate: f64,
    truth: Arc<Truth>,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Stats> {
    let mut conn = Conn::open(&c.addr).await?;
    let mut st = Stats::default();
    let mut points: Vec<Option<Point>> = vec![None; volumes.len()];
    // Which volume's point is oldest (the next to delete), as slots in creation order.
    let mut order: std::collections::VecDeque<usize> = Default::default();
    let mut next_volume = 0;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut next_write = Instant::now();
    let mut next_poll = next_write + POLL;
    let drain_by = end + Duration::from_secs(60);
    loop {
        let now = Instant::now();
        let writing = now < end;
        if !writing && points.iter().all(Option::is_none) {
            return Ok(st);
        }
        if now > drain_by {
            bail!("write stream: points still busy 60 s after the step: {points:?}");
        }
        if now >= next_write {
            // A fixed schedule: a write late for its tick goes now, the next one a period on.
            next_write = (next_write + period).max(now);
            let deletable = order.iter().position(|&v| points[v].as_ref().is_some_and(|p| p.phase == Phase::Available));
            // Round the volumes (a console's writes spread over its volumes, and so do chains).
            let idle = (0..volumes.len()).map(|k| (next_volume + k) % volumes.len()).find(|&v| points[v].is_none());
            let timed = now >= measure_from;
            if let Some(at) = deletable {
                let v = order.remove(at).expect("in range");
                let id = points[v].as_ref().expect("deletable").id.clone();
                points[v].as_mut().expect("deletable").phase = Phase::Deleting;
                truth.push(&points);
                let t = Instant::now();
                let r = c.call(&mut conn, "DeleteSnapshots", &ids_param("snapshots", &[id])).await?;
                if timed {
                    st.lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                st.deletes += 1;
                if let Err(e) = r {
                    // Refused: the point is as it was.
                    st.fail(e);
                    points[v].as_mut().expect("deletable").phase = Phase::Available;
                    order.push_front(v);
                    truth.push(&points);
                }
            } else if let (Some(v), true) = (idle, writing) {
                next_volume = v + 1;
                points[v] = Some(Point { id: String::new(), phase: Phase::CreateSent, full: None });
                truth.push(&points);
                let p =
                    vec![("resources.1".to_string(), volumes[v].clone()), ("snapshot_name".into(), "stream".into())];
                let t = Instant::now();
                let r = c.call(&mut conn, "CreateSnapshots", &p).await?;
                if timed {
                    st.lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                st.creates += 1;
                match r.map(|v| v["snapshots"][0].as_str().map(str::to_string)) {
                    Ok(Some(id)) => {
                        points[v] = Some(Point { id, phase: Phase::Created, full: None });
                        order.push_back(v);
                    }
                    Ok(None) => bail!("CreateSnapshots answered without a snapshot id"),
                    Err(e) => {
                        st.fail(e);
                        points[v] = None;
                    }
                }
                truth.push(&points);
            } else if writing {
                st.idle_ticks += 1;
            }
        }
        let now = Instant::now();
        if now >= next_poll {
            next_poll = now + POLL;
            let waiting: Vec<String> = points
                .iter()
                .flatten()
                .filter(|p| matches!(p.phase, Phase::Created | Phase::Deleting))
                .map(|p| p.id.clone())
                .collect();
            if !waiting.is_empty() {
                let seen = c.describe(&mut conn, ids_param("snapshots", &waiting)).await?;
                for slot in points.iter_mut() {
                    let Some(p) = slot.as_mut().filter(|p| waiting.contains(&p.id)) else { continue };
                    let shown = seen.iter().find(|(id, ..)| *id == p.id);
                    if let Some((_, _, _, full)) = shown {
                        if *full {
                            bail!("stream point {} on a stream volume is a full point: its anchor is gone", p.id);
                        }
                        p.full = Some(false);
                    }
                    match (p.phase, shown.map(|(_, s, t, _)| (s.as_str(), t.as_str()))) {
                        (Phase::Created, Some(("available", ""))) => p.phase = Phase::Available,
                        (Phase::Created, Some(("pending", _))) => {}
                        (Phase::Deleting, Some(("available", "deleting"))) => {}
                        (Phase::Deleting, None | Some(("ceased", _))) => *slot = None,
                        (Phase::Deleting, Some(("available", ""))) => {
                            st.fail(format!("the delete job of {} failed (the point is available again)", p.id));
                            p.phase = Phase::Available;
                        }
                        (Phase::Created, None | Some(("ceased", _))) => {
                            st.fail(format!("the create job of {} failed (the point is gone)", p.id));
                            *slot = None;
                        }
                        (ph, s) => bail!("stream point {} ({ph:?}) shown as {s:?}", p.id),
                    }
                }
                order.retain(|&v| points[v].is_some());
                for (v, p) in points.iter().enumerate() {
                    if p.as_ref().is_some_and(|p| p.phase == Phase::Available) && !order.contains(&v) {
                        order.push_back(v);
                    }
                }
                truth.push(&points);
            }
        }
        tokio::time::sleep_until(next_write.min(next_poll).into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(phase: Phase, full: Option<bool>) -> Option<Point> {
        Some(Point { id: "ss-x".into(), phase, full })
    }

    #[test]
    fn bounds_follow_the_points_and_span_the_request() {
        let t = Truth::new([8, 8, 8]);
        let v0 = t.version();
        assert_eq!(t.bounds(v0, 0), (8, 8, false));
        t.push(&[pt(Phase::CreateSent, None), None]);
        // sent, not answered: may or may not be there
        assert_eq!(t.bounds(t.version(), 0), (8, 9, false));
        t.push(&[pt(Phase::Created, None), None]);
        let v = t.version();
        // answered: every unfiltered list shows it; available or not is open
        assert_eq!(t.bounds(v, 0), (9, 9, true));
        assert_eq!(t.bounds(v, 1), (8, 9, false));
        t.push(&[pt(Phase::Available, Some(false)), None]);
        assert_eq!(t.bounds(t.version(), 1), (9, 9, true));
        assert_eq!(t.bounds(t.version(), 2), (8, 8, false));
        // a request sent before the create spans every version since
        assert_eq!(t.bounds(v0, 0), (8, 9, false));
        t.push(&[pt(Phase::Deleting, Some(false)), None]);
        assert_eq!(t.bounds(t.version(), 0), (8, 9, false));
        t.push(&[None, None]);
        assert_eq!(t.bounds(t.version(), 0), (8, 8, false));
        // the same bounds twice are one version
        let v = t.version();
        t.push(&[None, None]);
        assert_eq!(t.version(), v);
    }

    #[test]
    fn classes() {
        assert_eq!(class_of("all"), Some(0));
        assert_eq!(class_of("full"), Some(2));
        assert_eq!(class_of("x"), None);
        for k in ["no filter", "status=available", "snapshot_type=1"] {
            assert!(crate::seed::moves(k).and_then(class_of).is_some(), "{k}");
        }
        assert_eq!(crate::seed::moves("resource_id (volume)"), None);
    }
}
