//! The one request pipeline every dialect runs through, and the [`Dialect`] trait each one
//! implements (anchors: Garage's `ApiHandler` in `src/api/common/generic_server.rs`, s3s's
//! `ops/mod.rs` call → prepare → op.call → serialize_error).
//!
//! [`serve`] does, for every request of every dialect, in this order:
//!
//! 1. **read**: the request id the server's middleware set, the whole body (at most
//!    [`MAX_BODY`](crate::request::MAX_BODY)); an unreadable body is the dialect's
//!    [`DialectError::unreadable`] error;
//! 2. [`Dialect::frame`]: what the answer needs whatever happens next (Aliyun's `Format`, the
//!    `Host` a signature covers, OpenStack's error envelope…); it cannot fail;
//! 3. [`Dialect::verify`]: who is calling (signature, clock window, nonce, token);
//! 4. [`Dialect::endpoint`]: which operation the request names;
//! 5. [`Dialect::handle`]: the operation (parameters → service → the vendor's answer);
//! 6. render: an error becomes the dialect's envelope ([`Dialect::error_response`]); then
//!    [`Dialect::finish`] adds the headers every answer carries.
//!
//! The rules that are the same for every vendor live here and only here: the request id, the
//! log line of a refused or failed request (an internal error is logged at error level with
//! the request id, and the client sees only the id — never the cause), and the [`Outcome`]
//! that the server's metrics and access log read from the response.

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use disksnap_service::Kind;

use crate::keys::KeyKind;
use crate::request::{RawRequest, RequestId};

/// What the pipeline needs to know about a dialect's error enum.
pub trait DialectError: std::fmt::Debug + Send {
    /// The error a request whose body could not be read gets (the dialect's invalid-parameter
    /// error, with `why` as its message).
    fn unreadable(why: String) -> Self;
    /// The server failed (not the client): logged at error level with the request id, and the
    /// client's message carries only that id.
    fn is_internal(&self) -> bool;
    /// The vendor's code for this error (`1100`, `InvalidParameter`, `itemNotFound`…), for the
    /// log line and the metrics.
    fn code(&self) -> String;
}

/// The operation a request names, as logs and metrics show it.
pub trait EndpointName {
    /// The vendor's action name (`DescribeSnapshots`) or a short path-like name
    /// (`cinder.snapshots.list`).
    fn name(&self) -> String;
}

/// One cloud API dialect: its tables, and the steps of [`serve`] that differ per vendor.
///
/// The steps run in order and any of them may stop the request with [`Dialect::Error`]; the
/// frame is mutable through verify and endpoint so that what they learn (the action's name,
/// a negotiated microversion) reaches the rendering of errors and of the answer.
pub trait Dialect: Send + Sync + 'static {
    /// Short lower-case name, in logs and metrics (`qingcloud`, `aliyun`, …).
    const NAME: &'static str;
    /// Which credentials of the [`KeyRing`](crate::KeyRing) this dialect checks signatures
    /// with (the config's section of an account that holds them has the same name).
    const KEY_KIND: KeyKind;
    /// How far a client's clock may be from ours (dialects.md §1.2); also how long a nonce is
    /// remembered. Zero for a dialect without signed timestamps (bearer tokens).
    const CLOCK_WINDOW: Duration;

    /// How the dialect prints a resource id: its prefix (or UUID form) over the bare suffix
    /// the service keeps. The service reads any `<letters>-<suffix>` back.
    fn show_id(kind: Kind, bare: &str) -> String;

    /// What rendering needs beyond the result (see step 2 above).
    type Frame: Send + Sync;
    /// Who is calling, after [`Dialect::verify`].
    type Caller: Send + Sync;
    /// The operation, after [`Dialect::endpoint`].
    type Endpoint: EndpointName + Send + Sync;
    type Error: DialectError;

    /// Read from the request what every answer needs. Called once, before verify; for a
    /// request whose body could not be read, with the head and an empty body.
    fn frame(&self, raw: &RawRequest) -> Self::Frame;

    /// Who is calling: signature (or token), clock window, nonce.
    fn verify(
        &self,
        raw: &RawRequest,
        frame: &mut Self::Frame,
    ) -> impl Future<Output = Result<Self::Caller, Self::Error>> + Send;

    /// The operation the request names, once its caller is known.
    fn endpoint(
        &self,
        raw: &RawRequest,
        frame: &mut Self::Frame,
        caller: &Self::Caller,
    ) -> Result<Self::Endpoint, Self::Error>;

    /// Do it: read the operation's parameters, call the service, render the vendor's answer.
    fn handle(&self, call: Call<'_, Self>) -> impl Future<Output = Result<Response, Self::Error>> + Send;

    /// The error in the dialect's envelope (the pipeline has logged it already).
    fn error_response(&self, frame: &Self::Frame, error: &Self::Error, request_id: &RequestId) -> Response;

    /// Headers every answer of the dialect carries, success or error (OpenStack's request id
    /// and microversion headers). Default: none.
    fn finish(&self, _frame: &Self::Frame, _response: &mut Response, _request_id: &RequestId) {}
}

/// One verified request on its way to [`Dialect::handle`].
pub struct Call<'a, D: Dialect + ?Sized> {
    pub raw: RawRequest,
    pub frame: &'a D::Frame,
    pub caller: D::Caller,
    pub endpoint: D::Endpoint,
    pub request_id: RequestId,
}

/// Put on every response a dialect answered (a response extension): which dialect, which
/// operation (when one was parsed) and the error code (when refused). The server's access log
/// and metrics read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub dialect: &'static str,
    pub endpoint: Option<String>,
    pub error: Option<String>,
}

/// Serve one request of dialect `d` (see the module doc for the steps).
pub async fn serve<D: Dialect>(d: &D, req: Request) -> Response {
    let (raw, unreadable) = RawRequest::read_or_head(req).await;
    let request_id = raw.request_id.clone();
    let mut frame = d.frame(&raw);
    let mut endpoint_name = None;
    let result = match unreadable {
        Some(why) => Err(D::Error::unreadable(why)),
        None => run(d, raw, &mut frame, &mut endpoint_name).await,
    };
    let (mut response, error) = match result {
        Ok(r) => (r, None),
        Err(e) => {
            let code = e.code();
            if e.is_internal() {
                tracing::error!(dialect = D::NAME, request_id = %request_id.0, endpoint = ?endpoint_name, code, error = ?e, "internal error");
            } else {
                tracing::debug!(dialect = D::NAME, request_id = %request_id.0, endpoint = ?endpoint_name, code, error = ?e, "refused");
            }
            (d.error_response(&frame, &e, &request_id), Some(code))
        }
    };
    d.finish(&frame, &mut response, &request_id);
    response.extensions_mut().insert(Outcome { dialect: D::NAME, endpoint: endpoint_name, error });
    response
}

async fn run<D: Dialect>(
    d: &D,
    raw: RawRequest,
    frame: &mut D::Frame,
    endpoint_name: &mut Option<String>,
) -> Result<Response, D::Error> {
    let caller = d.verify(&raw, frame).await?;
    let endpoint = d.endpoint(&raw, frame, &caller)?;
    *endpoint_name = Some(endpoint.name());
    let request_id = raw.request_id.clone();
    d.handle(Call { raw, frame, caller, endpoint, request_id }).await
}

/// An axum handler serving every request of its route through [`serve`] with the dialect held
/// in the route's state: `Router::new().route(PATH, any(pipeline::handler::<MyDialect>))
/// .with_state(Arc::new(my_dialect))`.
pub async fn handler<D: Dialect>(
    axum::extract::State(d): axum::extract::State<std::sync::Arc<D>>,
    req: Request,
) -> Response {
    serve(&*d, req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::Mutex;

    /// A dialect that records the steps it ran and fails where the request's query says.
    #[derive(Default)]
    struct Toy {
        steps: Mutex<Vec<&'static str>>,
    }

    #[derive(Debug, PartialEq)]
    enum ToyError {
        Unreadable,
        Refused(&'static str),
        Internal,
    }

    impl DialectError for ToyError {
        fn unreadable(_why: String) -> Self {
            ToyError::Unreadable
        }
        fn is_internal(&self) -> bool {
            *self == ToyError::Internal
        }
        fn code(&self) -> String {
            match self {
                ToyError::Unreadable => "unreadable".into(),
                ToyError::Refused(step) => format!("refused-at-{step}"),
                ToyError::Internal => "internal".into(),
            }
        }
    }

    struct Op;
    impl EndpointName for Op {
        fn name(&self) -> String {
            "Op".into()
        }
    }

    impl Toy {
        fn step(&self, s: &'static str, raw: &RawRequest) -> Result<(), ToyError> {
            self.steps.lock().unwrap().push(s);
            if raw.query == format!("fail={s}") {
                return Err(if s == "handle" { ToyError::Internal } else { ToyError::Refused(s) });
            }
            Ok(())
        }
    }

    impl Dialect for Toy {
        const NAME: &'static str = "toy";
        const KEY_KIND: KeyKind = KeyKind("toy");
        const CLOCK_WINDOW: Duration = Duration::ZERO;
        type Frame = String;
        type Caller = ();
        type Endpoint = Op;
        type Error = ToyError;

        fn show_id(_kind: Kind, bare: &str) -> String {
            format!("toy-{bare}")
        }
        fn frame(&self, _raw: &RawRequest) -> String {
            self.steps.lock().unwrap().push("frame");
            "frame".into()
        }
        async fn verify(&self, raw: &RawRequest, frame: &mut String) -> Result<(), ToyError> {
            frame.push_str("+verified");
            self.step("verify", raw)
        }
        fn endpoint(&self, raw: &RawRequest, _f: &mut String, _c: &()) -> Result<Op, ToyError> {
            self.step("endpoint", raw).map(|_| Op)
        }
        async fn handle(&self, call: Call<'_, Self>) -> Result<Response, ToyError> {
            self.step("handle", &call.raw)?;
            Ok((StatusCode::OK, format!("ok {} {}", call.frame, call.request_id.0)).into_response())
        }
        fn error_response(&self, frame: &String, e: &ToyError, rid: &RequestId) -> Response {
            self.steps.lock().unwrap().push("error_response");
            (StatusCode::BAD_REQUEST, format!("{} {e:?} {}", frame, rid.0)).into_response()
        }
        fn finish(&self, _f: &String, resp: &mut Response, _rid: &RequestId) {
            self.steps.lock().unwrap().push("finish");
            resp.headers_mut().insert("x-toy", "1".parse().unwrap());
        }
    }

    fn request(query: &str, body: Body) -> Request {
        let mut req = Request::builder().uri(format!("/toy?{query}")).body(body).unwrap();
        req.extensions_mut().insert(RequestId("rid-1".into()));
        req
    }

    async fn run(query: &str, body: Body) -> (Vec<&'static str>, Response) {
        let toy = Toy::default();
        let resp = serve(&toy, request(query, body)).await;
        let steps = toy.steps.lock().unwrap().clone();
        (steps, resp)
    }

    async fn text(resp: Response) -> String {
        String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn steps_run_in_order_and_every_answer_is_finished() {
        let (steps, resp) = run("", Body::empty()).await;
        assert_eq!(steps, ["frame", "verify", "endpoint", "handle", "finish"]);
        assert_eq!(resp.headers()["x-toy"], "1");
        let o = resp.extensions().get::<Outcome>().cloned().unwrap();
        assert_eq!(o, Outcome { dialect: "toy", endpoint: Some("Op".into()), error: None });
        // what verify learnt reaches the handler through the frame; the request id is the server's
        assert_eq!(text(resp).await, "ok frame+verified rid-1");
    }

    #[tokio::test]
    async fn a_refusal_stops_the_steps_and_is_rendered_by_the_dialect() {
        let (steps, resp) = run("fail=verify", Body::empty()).await;
        assert_eq!(steps, ["frame", "verify", "error_response", "finish"]);
        let o = resp.extensions().get::<Outcome>().cloned().unwrap();
        assert_eq!((o.endpoint, o.error.as_deref()), (None, Some("refused-at-verify")));
        assert_eq!(resp.headers()["x-toy"], "1");
        assert_eq!(text(resp).await, "frame+verified Refused(\"verify\") rid-1");

        let (steps, resp) = run("fail=endpoint", Body::empty()).await;
        assert_eq!(steps, ["frame", "verify", "endpoint", "error_response", "finish"]);
        assert_eq!(resp.extensions().get::<Outcome>().unwrap().error.as_deref(), Some("refused-at-endpoint"));

        let (steps, resp) = run("fail=handle", Body::empty()).await;
        assert_eq!(steps, ["frame", "verify", "endpoint", "handle", "error_response", "finish"]);
        let o = resp.extensions().get::<Outcome>().cloned().unwrap();
        assert_eq!((o.endpoint.as_deref(), o.error.as_deref()), (Some("Op"), Some("internal")));
    }

    #[tokio::test]
    async fn an_unreadable_body_is_the_dialects_error_in_its_envelope() {
        let big = Body::from(vec![b'x'; crate::request::MAX_BODY + 1]);
        let (steps, resp) = run("", big).await;
        assert_eq!(steps, ["frame", "error_response", "finish"]);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(text(resp).await, "frame Unreadable rid-1");
    }
}
