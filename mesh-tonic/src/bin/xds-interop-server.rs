//! The gRPC xDS interop test server (`doc/xds-test-descriptions.md`,
//! "Server"), built on mesh.
//!
//! Flags (gflags style): `--port`, `--maintenance_port`, `--server_id`,
//! `--secure_mode`, `--host_name_override`, `--address_type`
//! (`IPV4`: `0.0.0.0`, the default; `IPV6` and `IPV4_IPV6`: `[::]`, which
//! is dual-stack where the OS allows it).
//!
//! - `--secure_mode=false`: one plain gRPC server on `--port` with
//!   TestService, health, XdsUpdateHealthService and CSDS.
//! - `--secure_mode=true`: an xDS-enabled server (A36) on `--port` serving
//!   TestService, configured from the bootstrap in the environment
//!   (`GRPC_XDS_BOOTSTRAP` / `GRPC_XDS_BOOTSTRAP_CONFIG`) with xDS
//!   credentials: TLS (mTLS when the chain requires client certificates)
//!   on filter chains with a `DownstreamTlsContext`, certificates from the
//!   bootstrap's `certificate_providers`, plaintext on chains without one;
//!   RBAC per chain. And a plain
//!   maintenance server on `--maintenance_port` with health,
//!   XdsUpdateHealthService and CSDS (the server's xDS client).
//!
//! SIGTERM or Ctrl-C drains both servers and exits.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::proto::grpc_testing::test_service_server::TestServiceServer;
use mesh_core::testing::proto::grpc_testing::xds_update_health_service_server::XdsUpdateHealthServiceServer;
use mesh_core::testing::test_service::{TEST_SERVICE_NAME, TestServiceBackend, UpdateHealth};
use mesh_core::xds::{SERVER_CLIENT_KEY, XdsClient};
use mesh_tonic::admin::Csds;
use mesh_tonic::flags::{FlagError, Flags};
use mesh_tonic::server::{ServingMode, XdsServer, shutdown_signal};
use tokio::sync::watch;
use tonic_health::ServingStatus;

const PROGRAM: &str = "xds-interop-server";

struct Config {
    port: u16,
    maintenance_port: u16,
    server_id: String,
    secure_mode: bool,
    hostname: String,
    ip: std::net::IpAddr,
}

fn flags() -> Flags {
    Flags::new(PROGRAM)
        .value("port", "8080", "port of the test server")
        .value(
            "maintenance_port",
            "8080",
            "port of the maintenance server (must differ from --port in secure mode)",
        )
        .value(
            "server_id",
            "rust_server",
            "server_id returned by UnaryCall",
        )
        .boolean(
            "secure_mode",
            false,
            "serve TestService from an xDS-enabled server (maintenance on --maintenance_port)",
        )
        .value(
            "host_name_override",
            "",
            "hostname to report (default: the machine's)",
        )
        .value("address_type", "", "IPV4, IPV6 or IPV4_IPV6")
}

fn config() -> Result<Config, String> {
    let flags = flags();
    let p = match flags.parse(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(FlagError::Help) => return Err(flags.usage()),
        Err(e) => return Err(format!("{e}\n{}", flags.usage())),
    };
    let port: u16 = p.get("port").map_err(|e| e.to_string())?;
    let maintenance_port: u16 = p.get("maintenance_port").map_err(|e| e.to_string())?;
    let secure_mode = p.bool("secure_mode");
    if secure_mode && port == maintenance_port {
        return Err(format!(
            "--port and --maintenance_port must differ in secure mode (both {port})"
        ));
    }
    let ip = match p.str("address_type").to_ascii_uppercase().as_str() {
        "" | "IPV4" => Ipv4Addr::UNSPECIFIED.into(),
        "IPV6" | "IPV4_IPV6" => Ipv6Addr::UNSPECIFIED.into(),
        other => {
            return Err(format!(
                "--address_type: {other:?} is not IPV4, IPV6 or IPV4_IPV6"
            ));
        }
    };
    let hostname = match p.str("host_name_override") {
        "" => machine_hostname(),
        h => h.to_owned(),
    };
    let server_id = p.str("server_id").to_owned();
    for (flag, v) in [("server_id", &server_id), ("host_name_override", &hostname)] {
        if http::HeaderValue::from_str(v).is_err() {
            return Err(format!("--{flag}: {v:?} is not a valid header value"));
        }
    }
    Ok(Config {
        port,
        maintenance_port,
        server_id,
        secure_mode,
        hostname,
        ip,
    })
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let backend = TestServiceBackend::new(config.server_id.clone()).hostname(config.hostname);
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in ["", TEST_SERVICE_NAME] {
        reporter
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    let update_health = XdsUpdateHealthServiceServer::new(UpdateHealth::new(reporter));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let addr = SocketAddr::new(config.ip, config.port);

    if !config.secure_mode {
        let server = tonic::transport::Server::builder()
            .add_service(TestServiceServer::new(backend))
            .add_service(health)
            .add_service(update_health)
            .add_service(Csds::new().into_service())
            .add_service(mesh_tonic::admin::Channelz::new().into_service())
            .serve_with_shutdown(addr, stopped());
        println!("Server started on port {} (plaintext)", config.port);
        server.await?;
        return Ok(());
    }

    let bootstrap = Bootstrap::from_env()?;
    // The same process-wide client the xDS-enabled server uses.
    let client = XdsClient::shared(&bootstrap, SERVER_CLIENT_KEY);
    let csds = Csds::new().client(SERVER_CLIENT_KEY, client);
    let maintenance_addr = SocketAddr::new(config.ip, config.maintenance_port);
    let maintenance = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(update_health)
        .add_service(csds.into_service())
        .add_service(mesh_tonic::admin::Channelz::new().into_service())
        .serve_with_shutdown(maintenance_addr, stopped());
    let maintenance = tokio::spawn(maintenance);
    let routes = tonic::service::Routes::new(TestServiceServer::new(backend));
    let xds = XdsServer::builder()
        .bootstrap(bootstrap)
        .on_serving_mode_change(|mode, why| match mode {
            ServingMode::Serving => eprintln!("{PROGRAM}: serving"),
            ServingMode::NotServing => {
                eprintln!("{PROGRAM}: not serving: {}", why.unwrap_or_default())
            }
        })
        .serve_with_shutdown(addr, routes, stopped());
    println!(
        "Server started on port {} (xDS), maintenance on port {}",
        config.port, config.maintenance_port
    );
    xds.await?;
    maintenance.await??;
    Ok(())
}
