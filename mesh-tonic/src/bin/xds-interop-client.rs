//! The gRPC xDS interop test client (`doc/xds-test-descriptions.md`,
//! "Client"), built on mesh: see [`mesh_tonic::interop_client`].
//!
//! Flags (gflags style): `--server=xds:///NAME`, `--stats_port`, `--qps`,
//! `--num_channels`, `--rpc=UnaryCall,EmptyCall`,
//! `--metadata=METHOD:KEY:VALUE,...`, `--rpc_timeout_sec`, `--secure_mode`,
//! `--print_response`, `--fail_on_failed_rpc(s)`, `--request_payload_size`,
//! `--response_payload_size`. The bootstrap comes from `GRPC_XDS_BOOTSTRAP`
//! or `GRPC_XDS_BOOTSTRAP_CONFIG`.
//!
//! Runs until SIGTERM or Ctrl-C (exit 0), or, with
//! `--fail_on_failed_rpc=true`, until an RPC fails after one succeeded
//! (exit 1).

use std::process::ExitCode;

use mesh_tonic::flags::FlagError;
use mesh_tonic::interop_client::config::PROGRAM;
use mesh_tonic::interop_client::{ClientConfig, start};
use mesh_tonic::server::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match ClientConfig::from_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(FlagError::Help) => {
            eprintln!("{}", ClientConfig::flags().usage());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{PROGRAM}: {e}\n{}", ClientConfig::flags().usage());
            return ExitCode::from(2);
        }
    };
    let mut client = match start(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Stats server started on port {}",
        client.stats_addr().port()
    );
    tokio::select! {
        () = shutdown_signal() => ExitCode::SUCCESS,
        why = client.failed() => {
            eprintln!("{PROGRAM}: {why} after an RPC had succeeded (--fail_on_failed_rpc)");
            ExitCode::FAILURE
        }
    }
}
