//! The route service: one decision per RPC, authority-driven hosts,
//! waiting for the first config.

use super::*;

/// A stand-in for the retry layer: forwards the same request to the
/// attempt service several times and records each attempt's cluster.
#[derive(Clone)]
struct Attempts {
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Service<Request<()>> for Attempts {
    type Response = http::Response<()>;
    type Error = crate::BoxError;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<()>) -> Self::Future {
        for _ in 0..3 {
            let d = RouteDecision::of(&req).expect("decision inserted");
            self.seen.lock().unwrap().push(d.cluster.name.to_string());
        }
        std::future::ready(Ok(http::Response::new(())))
    }
}

#[tokio::test]
async fn weighted_cluster_is_chosen_once_per_rpc() {
    let config = config(vec![route(
        "split",
        RouteMatch::prefix("/"),
        RouteAction::Forward(weighted(vec![
            ("a", 50, BTreeMap::new()),
            ("b", 50, BTreeMap::new()),
        ])),
    )]);
    let layer = RouteLayer::client().with_rng(RandomSource::seeded(3));
    layer.routes().update(&config, &lookup(&["a", "b"]));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut svc = tower::Layer::layer(&layer, Attempts { seen: seen.clone() });
    for _ in 0..200 {
        let req = Request::builder().uri("/s.S/M").body(()).unwrap();
        svc.ready().await.unwrap().call(req).await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 600);
    for rpc in seen.chunks(3) {
        assert!(
            rpc.iter().all(|c| c == &rpc[0]),
            "attempts of one RPC: {rpc:?}"
        );
    }
    let a = seen.iter().filter(|c| *c == "a").count() / 3;
    assert!(
        (60..=140).contains(&a),
        "both clusters used: {a} of 200 to a"
    );
}

#[tokio::test]
async fn service_inserts_the_decision_and_reads_the_authority() {
    let config = config_with(
        vec![
            vhost(
                "one",
                &["one"],
                vec![fwd("r1", RouteMatch::prefix("/"), "c1")],
            ),
            vhost(
                "two",
                &["two"],
                vec![fwd("r2", RouteMatch::prefix("/"), "c2")],
            ),
        ],
        0,
        Vec::new(),
        None,
    );
    let layer = RouteLayer::per_request_host();
    layer.routes().update(&config, &lookup(&["c1", "c2"]));
    let inner = tower::service_fn(|req: Request<()>| async move {
        let d = RouteDecision::of(&req).expect("decision");
        Ok::<_, crate::BoxError>(d.cluster.name.to_string())
    });
    let mut svc = tower::Layer::layer(&layer, inner);
    let by_uri = Request::builder().uri("http://two/s.S/M").body(()).unwrap();
    assert_eq!(svc.ready().await.unwrap().call(by_uri).await.unwrap(), "c2");
    let by_host = Request::builder()
        .uri("/s.S/M")
        .header("host", "one")
        .body(())
        .unwrap();
    assert_eq!(
        svc.ready().await.unwrap().call(by_host).await.unwrap(),
        "c1"
    );
    let nowhere = Request::builder()
        .uri("http://three/s.S/M")
        .body(())
        .unwrap();
    let err = svc.ready().await.unwrap().call(nowhere).await.unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("matches authority three"),
        "{status:?}"
    );
}

#[tokio::test]
async fn requests_wait_for_the_first_config_then_fail_on_config_errors() {
    let layer = RouteLayer::client();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let inner = tower::service_fn(move |_req: Request<()>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, crate::BoxError>(()) }
    });
    let svc = tower::Layer::layer(&layer, inner);
    let waiting = tokio::spawn(async move {
        let mut svc = svc;
        let req = Request::builder().uri("/s.S/M").body(()).unwrap();
        svc.ready().await.unwrap().call(req).await
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "no config yet: not ready");
    layer.routes().update(
        &config(vec![fwd("r", RouteMatch::prefix("/"), "a")]),
        &lookup(&["a"]),
    );
    waiting.await.unwrap().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A config error after that fails requests with its reason.
    layer.routes().apply(
        &Some(Err(mesh_core::watch::ConfigError {
            reason: "Listener echo:7070 does not exist".into(),
        })),
        &lookup(&[]),
    );
    let mut svc = tower::Layer::layer(
        &layer,
        tower::service_fn(|_req: Request<()>| async { Ok::<_, crate::BoxError>(()) }),
    );
    let req = Request::builder().uri("/s.S/M").body(()).unwrap();
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "Listener echo:7070 does not exist");
}
