//! The `xds-interop-server` binary, run as a child process: plaintext mode
//! (every service on one port) and secure mode (an xDS-enabled server fed by
//! a test ADS server, maintenance with CSDS on another port).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::Empty;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::xds_update_health_service_client::XdsUpdateHealthServiceClient;
use mesh_core::testing::resources::{any, server_listener};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::server::{CONVERGE, TEMPLATE, call_until, lds};

/// The child process, killed when dropped.
struct Interop(Child);

impl Interop {
    fn spawn(args: &[String], bootstrap: Option<String>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xds-interop-server"));
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .env_remove("GRPC_XDS_BOOTSTRAP_CONFIG")
            .stdout(Stdio::null());
        if let Some(b) = bootstrap {
            cmd.env("GRPC_XDS_BOOTSTRAP_CONFIG", b);
        }
        Interop(cmd.spawn().expect("spawn xds-interop-server"))
    }

    /// SIGTERM, then the exit status (the server drains and exits).
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Interop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free right now (the child binds it on 0.0.0.0 a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn channel(port: u16) -> Channel {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy()
}

async fn health(port: u16, service: &str) -> Option<ServingStatus> {
    let mut h = HealthClient::new(channel(port));
    let r = h
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(r.into_inner().status).ok()
}

#[tokio::test]
async fn plaintext_mode_serves_everything_on_one_port() {
    let port = free_port();
    let child = Interop::spawn(
        &[
            format!("--port={port}"),
            "--secure_mode=false".into(),
            "--server_id=interop-1".into(),
            "--host_name_override".into(),
            "host-a".into(),
            "--some_future_flag=1".into(),
        ],
        None,
    );
    let mut client = TestServiceClient::new(channel(port));
    let r = call_until(&mut client, "served", Result::is_ok)
        .await
        .unwrap();
    assert_eq!(r.metadata().get("hostname").unwrap(), "host-a");
    let r = r.into_inner();
    assert_eq!(
        (r.server_id.as_str(), r.hostname.as_str()),
        ("interop-1", "host-a")
    );
    let empty = client.empty_call(Empty {}).await.unwrap();
    assert_eq!(empty.metadata().get("hostname").unwrap(), "host-a");

    assert_eq!(health(port, "").await, Some(ServingStatus::Serving));
    let mut update = XdsUpdateHealthServiceClient::new(channel(port));
    update.set_not_serving(Empty {}).await.unwrap();
    assert_eq!(health(port, "").await, Some(ServingStatus::NotServing));
    update.set_serving(Empty {}).await.unwrap();
    assert_eq!(health(port, "").await, Some(ServingStatus::Serving));

    // CSDS answers (no xDS client in plaintext mode).
    let mut csds = ClientStatusDiscoveryServiceClient::new(channel(port));
    let dump = csds
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .unwrap();
    assert!(dump.into_inner().config.is_empty());

    assert!(child.terminate().await.success());
}

#[tokio::test]
async fn secure_mode_serves_from_xds_and_reports_csds() {
    let ads = TestAdsServer::start().await;
    let bootstrap = Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .node_id("interop-server")
        .server_listener_resource_name_template(TEMPLATE)
        .build()
        .unwrap()
        .to_json()
        .to_string();
    let (port, maintenance) = (free_port(), free_port());
    let child = Interop::spawn(
        &[
            format!("--port={port}"),
            format!("--maintenance_port={maintenance}"),
            "--secure_mode=true".into(),
            "--server_id=interop-2".into(),
            "--address_type=IPV4".into(),
        ],
        Some(bootstrap),
    );
    // The Listener for the wildcard listening address, as control planes
    // send it.
    let listening: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let name = TEMPLATE.replace("%s", &listening.to_string());
    ads.set_resources(lds(), vec![any(&server_listener(&name, listening, None))]);

    let mut client = TestServiceClient::new(channel(port));
    let r = call_until(&mut client, "served over xDS", Result::is_ok)
        .await
        .unwrap();
    assert_eq!(r.into_inner().server_id, "interop-2");

    // Maintenance: health and CSDS, which lists the Listener as ACKED.
    assert_eq!(health(maintenance, "").await, Some(ServingStatus::Serving));
    let mut csds = ClientStatusDiscoveryServiceClient::new(channel(maintenance));
    let dump = csds
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let [config] = &dump.config[..] else {
        panic!("one client expected: {dump:?}")
    };
    assert_eq!(config.client_scope, "#server");
    assert_eq!(config.node.as_ref().unwrap().id, "interop-server");
    let listener = config
        .generic_xds_configs
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {config:?}"));
    assert_eq!(listener.client_status, ClientResourceStatus::Acked as i32);
    assert!(listener.xds_config.is_some());

    // SIGTERM drains both servers and exits cleanly.
    assert!(child.terminate().await.success());
}
