//! Security end to end: SPIFFE identities from mesh-control's certificate
//! authority, mutual TLS switched on live, authorization by identity, and a
//! certificate rotation under traffic.
//!
//! ```sh
//! cargo run --example mtls [-- --fast]
//! ```
//!
//! One process plays the whole mesh:
//!
//! - mesh-control, fed Istio YAML, with its CA (`mesh_control::ca::Authority`,
//!   what `mesh-control ca init` / `ca issue` do on the command line);
//! - `echo`, an xDS-enabled server (`mesh_tonic::server::XdsServer`) running
//!   as `spiffe://cluster.local/ns/default/sa/echo`; its handler reads the
//!   caller's verified identity from the request's
//!   `mesh_tower::tls::PeerIdentity` extension and answers with it;
//! - two mesh clients (`mesh_tonic::Channel`), `sa/client` and `sa/other`;
//! - `legacy`, a plain tonic client outside the mesh (no xDS, no TLS).
//!
//! Every workload gets its certificate from files (`cert-chain.pem`,
//! `key.pem`, `root-cert.pem`) laid out as a Kubernetes secret volume and
//! read by a `file_watcher` certificate provider, as istio-agent sets it up.
//!
//! 1. PERMISSIVE (the default): everyone gets through, in plaintext;
//! 2. PeerAuthentication STRICT plus DestinationRule ISTIO_MUTUAL, applied
//!    live: the plaintext client is refused, the mesh clients handshake
//!    with their SPIFFE certificates and echo sees who is calling;
//! 3. AuthorizationPolicy, applied live: ALLOW only `sa/client`, DENY one
//!    method: `sa/other` gets PERMISSION_DENIED;
//! 4. the certificates are re-issued and swapped under continuous traffic:
//!    new handshakes use them, and no RPC fails.
//!
//! Each step checks its outcome; the example exits non-zero if one is not
//! what it claims.

mod callers;
#[path = "../common/mod.rs"]
mod common;
mod config;
mod echo;
mod secrets;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callers::{Caller, Conn, Expect, Method, call, describe};
use common::{BoxError, Options, note, section, target};
use config::{ALLOW_CLIENT, DENY_EMPTY_CALL, ISTIO_MUTUAL, STRICT, apply, config};
use echo::{Echo, start_echo};
use mesh_control::ca::Authority;
use mesh_control::server::{ControlPlane, RunningControlPlane};
use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_tonic::Channel;
use secrets::{SecretVolume, issued_tag, with_certificates};
use tokio::net::TcpListener;
use tonic::Code;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TRUST_DOMAIN: &str = "cluster.local";
/// How long one expectation may take to come true after a config change.
const CONVERGE: Duration = Duration::from_secs(10);

/// `spiffe://cluster.local/ns/default/sa/<sa>`.
fn spiffe(sa: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/default/sa/{sa}")
}

/// Fails the example (exit code 1) with `what` unless `ok`.
fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("expectation failed: {}", what()).into())
    }
}

/// The mesh: control plane, echo, the callers and the certificates.
struct Demo {
    opts: Options,
    cp: RunningControlPlane,
    echo: Echo,
    echo_port: u16,
    authority: Authority,
    volumes: BTreeMap<&'static str, SecretVolume>,
    client_bootstrap: Bootstrap,
    legacy: Caller,
    client: Caller,
    other: Caller,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Demo {
    async fn start(opts: Options) -> Result<Demo, BoxError> {
        // The CA: a fresh root (or `Authority::load` an existing one).
        let authority = Authority::generate(TRUST_DOMAIN)?;
        let dir = tempfile::tempdir()?;
        let mut volumes = BTreeMap::new();
        for sa in ["echo", "client", "other"] {
            let cert = authority.issue("default", sa)?;
            let volume = SecretVolume::create(dir.path().join("secrets").join(sa), &cert)?;
            volumes.insert(sa, volume);
        }

        let listener = TcpListener::bind((LOCALHOST, 0)).await?;
        let echo_addr = listener.local_addr()?;
        let cp = ControlPlane::builder()
            .listen("127.0.0.1:0".parse()?)
            .config_yaml(config(echo_addr.port(), &[]))
            .start()
            .await?;

        let labels = [("app".to_owned(), "echo".to_owned())].into();
        let server_bootstrap = with_certificates(
            cp.server_bootstrap(LOCALHOST, "default", &labels),
            &volumes["echo"],
            opts,
        );
        let echo = Echo::default();
        let stop = start_echo(listener, server_bootstrap, echo.clone()).await?;

        let node = |pod: &str| format!("sidecar~127.0.0.1~{pod}.default~default.svc.cluster.local");
        let client_bootstrap = with_certificates(
            cp.client_bootstrap(&node("client")),
            &volumes["client"],
            opts,
        );
        let other_bootstrap =
            with_certificates(cp.client_bootstrap(&node("other")), &volumes["other"], opts);
        let client = Caller {
            name: "client",
            conn: Conn::Mesh(mesh_channel(&client_bootstrap).await?),
        };
        let other = Caller {
            name: "other",
            conn: Conn::Mesh(mesh_channel(&other_bootstrap).await?),
        };
        let legacy = Caller {
            name: "legacy",
            conn: Conn::Plain(plain_channel(echo_addr)?),
        };
        Ok(Demo {
            opts,
            cp,
            echo,
            echo_port: echo_addr.port(),
            authority,
            volumes,
            client_bootstrap,
            legacy,
            client,
            other,
            _stop: stop,
            _dir: dir,
        })
    }

    fn describe(&self) {
        println!(
            "   certificate authority  mesh-control's CA, trust domain {TRUST_DOMAIN}, a fresh root"
        );
        println!(
            "   certificates           {} (Kubernetes secret volumes, file_watcher providers)",
            self.volumes["echo"]
                .dir
                .parent()
                .unwrap_or(Path::new(""))
                .display()
        );
        println!(
            "   control plane          mesh-control on {}",
            self.cp.local_addr()
        );
        println!(
            "   echo                   xDS-enabled server on 127.0.0.1:{} as {}",
            self.echo_port,
            spiffe("echo")
        );
        println!(
            "   client, other          mesh_tonic::Channel to {} as sa/client, sa/other",
            target()
        );
        println!(
            "   legacy                 plain tonic, no mesh, no TLS, straight to 127.0.0.1:{}",
            self.echo_port
        );
    }

    fn rpcs(&self) -> usize {
        self.opts.pick(20, 8)
    }

    async fn apply(&self, extra: &[&str]) -> Result<(), BoxError> {
        apply(&self.cp, &config(self.echo_port, extra)).await
    }
}

async fn mesh_channel(bootstrap: &Bootstrap) -> Result<Channel, BoxError> {
    Ok(Channel::builder(target())
        .bootstrap(bootstrap.clone())
        .config_timeout(CONVERGE)
        .connect()
        .await?)
}

fn plain_channel(addr: SocketAddr) -> Result<tonic::transport::Channel, BoxError> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect_lazy(),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let opts = Options::from_env();
    println!("mesh mtls: SPIFFE identities, mutual TLS and authorization, end to end");
    let mut demo = Demo::start(opts).await?;
    demo.describe();
    let n = demo.rpcs();
    let (client_id, other_id) = (spiffe("client"), spiffe("other"));
    let (client_id, other_id) = (client_id.as_str(), other_id.as_str());

    section("1. PERMISSIVE (the default): everyone gets through, in plaintext");
    note("A proxyless server cannot sniff TLS (gRFC A36 filter chains), so");
    note("PERMISSIVE serves plaintext (as istiod does): nobody is authenticated.");
    demo.legacy.expect(Method::Unary, Expect::Ok(""), n).await?;
    demo.client.expect(Method::Unary, Expect::Ok(""), n).await?;
    demo.other.expect(Method::Unary, Expect::Ok(""), n).await?;
    demo.echo.print_new_peers();
    println!("   ✓ all three callers served; echo sees no identities");

    section("2. mTLS on: PeerAuthentication STRICT + DestinationRule ISTIO_MUTUAL, live");
    note("PeerAuthentication default/default {mtls: {mode: STRICT}}: echo's Listener");
    note("  gets an inbound-mtls chain requiring a client certificate from the mesh CA;");
    note("DestinationRule echo {trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}: the mesh");
    note(&format!(
        "  clients present their certificates and require {}.",
        spiffe("echo")
    ));
    note("(Both in one change: a proxyless server is either plaintext or mTLS.)");
    demo.apply(&[STRICT, ISTIO_MUTUAL]).await?;
    demo.client
        .expect(Method::Unary, Expect::Ok(client_id), n)
        .await?;
    demo.other
        .expect(Method::Unary, Expect::Ok(other_id), n)
        .await?;
    let plaintext_calls = demo.echo.plaintext_calls();
    demo.legacy
        .expect(Method::Unary, Expect::Refused, n)
        .await?;
    check(demo.echo.plaintext_calls() == plaintext_calls, || {
        "a plaintext call reached echo under STRICT".into()
    })?;
    demo.echo.print_new_peers();
    println!("   ✓ plaintext refused; echo knows each mesh caller by its verified SPIFFE ID");

    section("3. AuthorizationPolicy, live: ALLOW only sa/client, DENY EmptyCall");
    note("ALLOW from principals [cluster.local/ns/default/sa/client]");
    note("DENY  to paths [/grpc.testing.TestService/EmptyCall]   (DENY is checked first)");
    demo.apply(&[STRICT, ISTIO_MUTUAL, ALLOW_CLIENT, DENY_EMPTY_CALL])
        .await?;
    let mut denials = demo
        .other
        .expect(Method::Unary, Expect::Fail(Code::PermissionDenied), n)
        .await?;
    demo.client
        .expect(Method::Unary, Expect::Ok(client_id), n)
        .await?;
    denials.extend(
        demo.client
            .expect(Method::Empty, Expect::Fail(Code::PermissionDenied), n)
            .await?,
    );
    let leak = denials.iter().filter_map(|o| o.as_ref().err()).find(|s| {
        ["echo-callers", "no-empty-call", "policy["]
            .iter()
            .any(|p| s.message().contains(p))
    });
    check(leak.is_none(), || {
        format!("a denial names its policy: {leak:?}")
    })?;
    println!("   ✓ sa/client allowed, sa/other denied, EmptyCall denied to everyone;");
    println!("     the denials name no policy (the server logs the one that matched)");

    section("4. Certificate rotation under traffic");
    rotation(&mut demo, client_id).await?;

    let nacked: Vec<_> = demo
        .cp
        .clients()
        .into_iter()
        .filter_map(|c| c.last_nack)
        .collect();
    check(nacked.is_empty(), || format!("xDS NACKs: {nacked:?}"))?;

    section("Done");
    note("No xDS client NACKed anything mesh-control sent.");
    note("Certificates for real workloads: `mesh-control ca init` and `ca issue`, or");
    note("mesh_control::ca::CaServer (Istio's CreateCertificate API).");
    note("See docs/mesh-control.md (Certificate authority) and the other examples:");
    note("cargo run --example quickstart | canary | fault-injection | resilience");
    Ok(())
}

/// Step 4: re-issues echo's and sa/client's certificates and swaps them in
/// while sa/client keeps calling, on its long-lived channel and on a new
/// channel (a new handshake) per call. No call may fail, and new handshakes
/// must present the new certificate.
async fn rotation(demo: &mut Demo, client_id: &str) -> Result<(), BoxError> {
    note("echo and sa/client get new certificates from the CA; each secret volume's");
    note("..data symlink is swapped in one rename, as the kubelet does. The");
    note("file_watcher providers pick them up; open connections keep their session.");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let handshakes = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    // Three loops on the long-lived channel, one on a new channel per call.
    for fresh_channels in [false, false, false, true] {
        let Conn::Mesh(channel) = demo.client.conn.clone() else {
            unreachable!("client is a mesh caller")
        };
        let bootstrap = demo.client_bootstrap.clone();
        let client_id = client_id.to_owned();
        let (stop, ok, handshakes, failures) = (
            stop.clone(),
            ok.clone(),
            handshakes.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let channel = if fresh_channels {
                    handshakes.fetch_add(1, Ordering::Relaxed);
                    match mesh_channel(&bootstrap).await {
                        Ok(c) => c,
                        Err(e) => {
                            failures.lock().unwrap().push(format!("new channel: {e}"));
                            continue;
                        }
                    }
                } else {
                    channel.clone()
                };
                match call(TestServiceClient::new(channel), Method::Unary).await {
                    Ok(id) if id == client_id => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failures.lock().unwrap().push(describe(&other));
                        0
                    }
                };
            }
        }));
    }

    let warmup = demo
        .opts
        .pick(Duration::from_millis(500), Duration::from_millis(150));
    tokio::time::sleep(warmup).await;
    let before = ok.load(Ordering::Relaxed);
    let echo_cert = demo.authority.issue("default", "echo")?;
    let client_cert = demo.authority.issue("default", "client")?;
    let new_tag = issued_tag(&client_cert)?;
    for (sa, cert) in [("echo", &echo_cert), ("client", &client_cert)] {
        let volume = demo.volumes.get_mut(sa).expect("a volume per workload");
        volume.publish(cert)?;
    }
    let swapped = Instant::now();
    println!(
        "-- swapped at {} RPCs: echo and sa/client re-issued; sa/client now has {new_tag}",
        before
    );

    // New handshakes present the new certificate once the provider reloads.
    let deadline = swapped + CONVERGE;
    while !demo.echo.has_seen(&new_tag) {
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            return Err(format!("echo never saw sa/client's new certificate {new_tag}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let picked_up = swapped.elapsed();
    // Keep the traffic going a little longer on the new certificates.
    tokio::time::sleep(warmup).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    demo.echo.print_new_peers();
    let ok = ok.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    println!(
        "   {ok} RPCs ({} on new connections), {} failed; new handshakes used the new certificate {:.1?} after the swap",
        handshakes.load(Ordering::Relaxed),
        failures.len(),
        picked_up
    );
    check(failures.is_empty(), || {
        format!(
            "{} RPCs failed during the rotation, e.g. {}",
            failures.len(),
            failures[0]
        )
    })?;
    check(ok > before, || "no RPC succeeded after the swap".into())?;
    println!("   ✓ rotated under traffic without a failed RPC");
    Ok(())
}
