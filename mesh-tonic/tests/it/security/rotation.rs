//! Certificate and CA rotation under continuous traffic.

use super::*;

/// Polls `cond` until it holds (or panics naming `what` after [`CONVERGE`]).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The provider `PROVIDER`'s current leaf (DER) and number of CAs.
fn material(registry: &ProviderRegistry) -> (Vec<u8>, usize) {
    let current = registry.get(PROVIDER).unwrap().current();
    let leaf = current.identity().expect("an identity").cert[0].to_vec();
    let cas = current.roots().map_or(0, |r| r.len());
    (leaf, cas)
}

/// Rotates both workloads from one CA to another, as a mesh does: trust
/// both roots, move both leaves to the new root, drop the old root. RPCs
/// run throughout on an open channel and on a fresh channel per call (a
/// new handshake each); none may fail. At the end only the new material
/// can complete a handshake, and the server sees the new client leaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_under_continuous_traffic_loses_no_rpc() {
    let old_ca = TestCa::new("root-1");
    let new_ca = TestCa::new("root-2");
    let (server_old, mut server_secret) = workload(&old_ca, SERVER_ID);
    let (client_old, mut client_secret) = workload(&old_ca, CLIENT_ID);
    let server_registry = Arc::new(ProviderRegistry::new(
        [(PROVIDER.to_owned(), server_secret.file_watcher().into())].into(),
    ));
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: Some(server_registry.clone()),
        handshake_timeout: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Arc::new(Client::new(&mesh.ads, "client", Some(&client_secret)));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    let open = client.connect().await;
    for fresh in [false, false, true] {
        let (stop, ok, failures, client) =
            (stop.clone(), ok.clone(), failures.clone(), client.clone());
        let mut open = open.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = if fresh {
                    unary(&mut client.connect().await).await
                } else {
                    unary(&mut open).await
                };
                match result {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(s) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("fresh={fresh}: {s:?}"));
                        0
                    }
                };
            }
        }));
    }
    let progress = |n: u64| {
        let start = ok.load(Ordering::Relaxed);
        let ok = ok.clone();
        move || ok.load(Ordering::Relaxed) >= start + n
    };
    wait_until("traffic flows", progress(20)).await;

    // 1. Trust both roots.
    let bundle = format!("{}{}", old_ca.pem(), new_ca.pem());
    server_secret.files.swap(&server_old, &bundle);
    client_secret.files.swap(&client_old, &bundle);
    wait_until("both sides trust both roots", || {
        material(&server_registry).1 == 2 && material(&client.registry).1 == 2
    })
    .await;
    wait_until("traffic flows", progress(20)).await;

    // 2. New leaves from the new root.
    let server_new = new_ca.leaf(&[SERVER_ID]);
    let client_new = new_ca.leaf(&[CLIENT_ID]);
    server_secret.files.swap(&server_new, &bundle);
    client_secret.files.swap(&client_new, &bundle);
    wait_until("both sides present their new leaf", || {
        material(&server_registry).0 == server_new.der.to_vec()
            && material(&client.registry).0 == client_new.der.to_vec()
    })
    .await;
    wait_until("traffic flows", progress(20)).await;

    // 3. Drop the old root: old material can no longer handshake.
    server_secret.files.swap(&server_new, &new_ca.pem());
    client_secret.files.swap(&client_new, &new_ca.pem());
    wait_until("both sides trust only the new root", || {
        material(&server_registry).1 == 1 && material(&client.registry).1 == 1
    })
    .await;
    wait_until("traffic flows", progress(20)).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "RPCs failed during rotation: {failures:?}"
    );

    // A new connection now runs on the new material only.
    mesh.seen.lock().unwrap().clear();
    unary(&mut client.connect().await).await.unwrap();
    let seen = mesh.seen();
    let (_, leaf) = seen[0].clone().unwrap();
    assert_eq!(leaf, client_new.der.to_vec());
}
