//! The callers of echo (a mesh channel or a plain tonic one), what a call
//! is expected to come to, and the per-batch lines the example prints.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::{Empty, SimpleRequest};
use mesh_tonic::Channel;
use tonic::{Code, Status};

use crate::common::{BoxError, code_name};
use crate::{CONVERGE, check};

/// How a caller reaches echo.
#[derive(Clone)]
pub(crate) enum Conn {
    /// Through the mesh: `xds:///echo...` with the caller's certificates.
    Mesh(Channel),
    /// A plain tonic channel straight to echo's address.
    Plain(tonic::transport::Channel),
}

/// One caller of echo.
pub(crate) struct Caller {
    /// Its name in the output.
    pub(crate) name: &'static str,
    /// How it reaches echo.
    pub(crate) conn: Conn,
}

/// Which method to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Unary,
    Empty,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Unary => "UnaryCall",
            Method::Empty => "EmptyCall",
        }
    }
}

/// What one call should come to: success with echo seeing this SPIFFE ID
/// (`""`: no certificate), failure with this code, or failure with any code
/// (a connection the server closes: tonic's plain channel reports that as
/// UNAVAILABLE, CANCELLED or UNKNOWN, depending on when it notices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect<'a> {
    Ok(&'a str),
    Fail(Code),
    Refused,
}

/// One call's result: the identity echo saw, or the status.
pub(crate) type Outcome = Result<String, Status>;

fn matches(outcome: &Outcome, expect: Expect<'_>) -> bool {
    match (outcome, expect) {
        (Ok(seen), Expect::Ok(want)) => seen == want,
        (Err(s), Expect::Fail(code)) => s.code() == code,
        (Err(_), Expect::Refused) => true,
        _ => false,
    }
}

impl Caller {
    pub(crate) async fn call(&self, method: Method) -> Outcome {
        match &self.conn {
            Conn::Mesh(c) => call(TestServiceClient::new(c.clone()), method).await,
            Conn::Plain(c) => call(TestServiceClient::new(c.clone()), method).await,
        }
    }

    /// Calls until one call comes out as expected (a config change takes a
    /// moment to reach both sides), then `n` more, which must all match;
    /// returns those `n`.
    pub(crate) async fn expect(
        &self,
        method: Method,
        expect: Expect<'_>,
        n: usize,
    ) -> Result<Vec<Outcome>, BoxError> {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let outcome = self.call(method).await;
            if matches(&outcome, expect) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: {} never came out as {expect:?}; last: {}",
                    self.name,
                    method.name(),
                    describe(&outcome)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let outcomes: Vec<Outcome> = futures::stream::iter(0..n)
            .map(|_| self.call(method))
            .buffer_unordered(4)
            .collect()
            .await;
        print_row(self.name, method, &outcomes);
        let bad = outcomes.iter().find(|o| !matches(o, expect));
        check(bad.is_none(), || {
            format!(
                "{}: {} expected {expect:?}, got {}",
                self.name,
                method.name(),
                describe(bad.unwrap())
            )
        })?;
        Ok(outcomes)
    }
}

pub(crate) async fn call<T>(mut client: TestServiceClient<T>, method: Method) -> Outcome
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    match method {
        Method::Unary => client
            .unary_call(SimpleRequest::default())
            .await
            .map(|r| r.into_inner().username),
        Method::Empty => client.empty_call(Empty {}).await.map(|_| String::new()),
    }
}

pub(crate) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Ok(id) if id.is_empty() => "OK, echo saw no certificate".into(),
        Ok(id) => format!("OK, echo saw {id}"),
        Err(s) => format!("{} \"{}\"", code_name(s.code()), s.message()),
    }
}

/// `   client  UnaryCall    20 × OK, echo saw spiffe://…`: one line per
/// distinct result, with an example message for failures.
fn print_row(name: &str, method: Method, outcomes: &[Outcome]) {
    let mut rows: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for o in outcomes {
        let (key, example) = match o {
            Ok(_) => (describe(o), String::new()),
            Err(s) => (
                code_name(s.code()).to_owned(),
                format!("  e.g. \"{}\"", shorten(s.message(), 70)),
            ),
        };
        rows.entry(key).or_insert((0, example)).0 += 1;
    }
    for (what, (n, example)) in rows {
        println!(
            "   {name:<7} {:<10} {n:>4} × {what}{example}",
            method.name()
        );
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}
