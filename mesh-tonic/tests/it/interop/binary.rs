//! The `xds-interop-client` binary as a harness runs it: gflags-style flags,
//! the bootstrap in `GRPC_XDS_BOOTSTRAP_CONFIG`, stats on `--stats_port`,
//! and a non-zero exit under `--fail_on_failed_rpcs=true` once an RPC fails
//! after a success.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesh_core::testing::proto::grpc_testing::LoadBalancerStatsRequest;
use mesh_core::testing::proto::grpc_testing::load_balancer_stats_service_client::LoadBalancerStatsServiceClient;
use tonic::transport::Endpoint;

use super::{Backends, CONVERGE, SERVICE, Xds, converge};

/// The child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_stats_and_exits_on_failure() {
    let mut backends = Backends::start("bin", 2).await;
    let xds = Xds::start().await;
    xds.single("cluster-a", &backends);
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_xds-interop-client"))
        .args([
            format!("--server=xds:///{SERVICE}"),
            format!("--stats_port={port}"),
            "--qps=50".into(),
            "--num_channels=2".into(),
            "--rpc=UnaryCall,EmptyCall".into(),
            "--fail_on_failed_rpcs=true".into(),
            "--secure_mode=false".into(),
            "--some_flag_a_harness_passes=1".into(),
        ])
        .env("RUST_LOG", "error")
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .env(
            "GRPC_XDS_BOOTSTRAP_CONFIG",
            xds.bootstrap.to_json().to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn xds-interop-client");
    let mut child = Process(child);
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let stats = LoadBalancerStatsServiceClient::new(channel);
    let names = backends.names();
    converge(
        "both backends reached through the binary",
        || {
            let mut stats = stats.clone();
            async move {
                match stats
                    .get_client_stats(LoadBalancerStatsRequest {
                        num_rpcs: 100,
                        timeout_sec: 10,
                        metadata_keys: vec!["hostname".into()],
                    })
                    .await
                {
                    Ok(r) => Some(r.into_inner()),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        None
                    }
                }
            }
        },
        |r| {
            r.as_ref().is_some_and(|r| {
                r.num_failures == 0
                    && names.iter().all(|n| r.rpcs_by_peer.contains_key(n))
                    && r.rpcs_by_method.len() == 2
                    && r.metadatas_by_peer[&names[0]].rpc_metadata[0]
                        .metadata
                        .iter()
                        .any(|m| m.key == "hostname" && m.value == names[0])
            })
        },
    )
    .await;
    assert!(child.0.try_wait().unwrap().is_none(), "still running");

    // Every backend goes away: RPCs fail after successes, the client exits 1.
    backends.stop(0);
    backends.stop(1);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exit after failures"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
}
