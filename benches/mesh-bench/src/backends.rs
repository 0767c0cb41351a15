//! The `backends` subcommand: the echo servers every contender calls,
//! all in one process on a runtime of fixed size, so the server side costs
//! the same whichever client drives it.
//!
//! Each backend is mesh-core's grpc.testing `TestServiceBackend` on a
//! loopback port (UnaryCall answers with a payload of the requested size).
//! The process prints one JSON line, `{"ports":[...]}`, and serves until its
//! stdin closes (the orchestrator holds the other end).

use std::io::Write;

use mesh_core::testing::test_service::TestServiceBackend;
use serde::{Deserialize, Serialize};

use crate::BoxError;

/// What the `backends` process prints once it listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendsReady {
    /// The backends' loopback ports, in order.
    pub ports: Vec<u16>,
}

/// Runs `count` backends on a runtime of `workers` threads until stdin
/// closes.
pub fn run(count: usize, workers: usize) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut running = Vec::with_capacity(count);
        for i in 0..count {
            running.push(TestServiceBackend::new(format!("b{i}")).serve().await?);
        }
        let ready = BackendsReady {
            ports: running.iter().map(|b| b.local_addr().port()).collect(),
        };
        print_line(&serde_json::to_string(&ready)?)?;
        wait_for_stdin_eof().await;
        for b in running {
            b.shutdown().await;
        }
        Ok(())
    })
}

/// Prints `line` to stdout and flushes it (stdout is a pipe).
pub(crate) fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Resolves when stdin reaches end of file: the parent exited or closed
/// its end, so this helper process should go too.
pub(crate) async fn wait_for_stdin_eof() {
    let _ = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    })
    .await;
}
