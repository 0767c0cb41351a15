//! `mesh-bench`: the end-to-end load bench's one binary. `run` is the
//! orchestrator; `backends`, `control` and `client` are the processes it
//! starts (see the crate docs of `mesh_bench`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mesh_bench::certs::CertDirs;
use mesh_bench::client::{self, CellSpec};
use mesh_bench::contender::Contender;
use mesh_bench::control::ControlSpec;
use mesh_bench::orchestrate::{self, MatrixSpec};
use mesh_bench::{BoxError, backends, chart, control, report};

/// The default matrix: every contender.
const ALL_CONTENDERS: &str = "tonic,balance_list,mesh-1ep,mesh-3ep,tonic-xds-1ep,tonic-xds-3ep,\
haproxy,tonic-tls,mesh-1ep-mtls,mesh-3ep-mtls";

#[derive(Parser)]
#[command(about = "mesh's end-to-end load comparison")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the matrix and write the report (the default of `cargo bench`).
    Run {
        /// Repetitions of the matrix; the report shows medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Warm-up per cell, milliseconds.
        #[arg(long, default_value_t = 1000)]
        warmup_ms: u64,
        /// Measured window per cell, milliseconds (10 contenders × 3
        /// concurrencies × 3 runs × ~3.3 s ≈ 5 min with the defaults).
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        /// Concurrency levels.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        concurrency: Vec<usize>,
        /// Contenders, in table order (default: all of them).
        #[arg(long, value_delimiter = ',', default_value = ALL_CONTENDERS)]
        contenders: Vec<Contender>,
        /// Backend process runtime threads.
        #[arg(long, default_value_t = 2)]
        backend_workers: usize,
        /// Client process runtime threads.
        #[arg(long, default_value_t = 2)]
        client_workers: usize,
        /// Output directory (load.json, load.md, load.svg).
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// Rewrite load.md and load.svg from an existing load.json.
    Report {
        /// The JSON a `run` wrote.
        #[arg(long, default_value = "target/bench/load.json")]
        json: PathBuf,
    },
    /// Serve the echo backends; prints `{"ports":[...],...}`, stops at stdin EOF.
    Backends {
        /// How many backends (of each kind).
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Runtime worker threads (fixed, so every contender meets the same server).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// The bench certificates' root: also serve the mTLS and TLS backends.
        #[arg(long)]
        certs: Option<PathBuf>,
    },
    /// Serve mesh-control for the backends and write the client bootstrap;
    /// stops at stdin EOF.
    Control {
        /// The backends' loopback ports, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ports: Vec<u16>,
        /// Where to write the client bootstrap.
        #[arg(long)]
        bootstrap: PathBuf,
        /// The mTLS backends' loopback ports, comma separated.
        #[arg(long, value_delimiter = ',')]
        mtls_ports: Vec<u16>,
        /// The client's certificate directory: also write `*-mtls.json`.
        #[arg(long)]
        client_certs: Option<PathBuf>,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Run one load cell; prints one JSON line.
    Client {
        /// The contender.
        #[arg(long)]
        contender: Contender,
        /// Calls in flight.
        #[arg(long)]
        concurrency: usize,
        /// Warm-up, milliseconds.
        #[arg(long, default_value_t = 1000)]
        warmup_ms: u64,
        /// Measured window, milliseconds.
        #[arg(long, default_value_t = 3000)]
        duration_ms: u64,
        /// Backend addresses, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        backends: Vec<SocketAddr>,
        /// The client bootstrap (xDS contenders).
        #[arg(long)]
        bootstrap: Option<PathBuf>,
        /// The client bootstrap with certificate providers (mesh mTLS).
        #[arg(long)]
        bootstrap_mtls: Option<PathBuf>,
        /// HAProxy's frontend (haproxy).
        #[arg(long)]
        proxy: Option<SocketAddr>,
        /// HAProxy's pid, whose CPU is reported too (haproxy).
        #[arg(long)]
        proxy_pid: Option<u32>,
        /// The TLS backend (tonic-tls).
        #[arg(long)]
        tls_backend: Option<SocketAddr>,
        /// The bench certificates' root (tonic-tls).
        #[arg(long)]
        certs: Option<PathBuf>,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

fn main() -> Result<(), BoxError> {
    match Cli::parse().command {
        Cmd::Report { json } => rewrite_report(&json),
        Cmd::Backends {
            count,
            workers,
            certs,
        } => backends::run(count, workers, certs.map(CertDirs::new).as_ref()),
        Cmd::Control {
            ports,
            bootstrap,
            mtls_ports,
            client_certs,
            workers,
        } => control::run(&ControlSpec {
            ports,
            mtls_ports,
            bootstrap,
            client_certs: client_certs.map(mesh_control::ca::WorkloadCertPaths::in_dir),
            workers,
        }),
        Cmd::Client {
            contender,
            concurrency,
            warmup_ms,
            duration_ms,
            backends,
            bootstrap,
            bootstrap_mtls,
            proxy,
            proxy_pid,
            tls_backend,
            certs,
            workers,
        } => {
            let result = client::run(&CellSpec {
                contender,
                concurrency,
                warmup: Duration::from_millis(warmup_ms),
                duration: Duration::from_millis(duration_ms),
                backends,
                bootstrap,
                bootstrap_mtls,
                proxy,
                proxy_pid,
                tls_backend,
                certs,
                workers,
            })?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Cmd::Run {
            runs,
            warmup_ms,
            duration_ms,
            concurrency,
            contenders,
            backend_workers,
            client_workers,
            out,
        } => {
            let spec = MatrixSpec {
                exe: std::env::current_exe()?,
                contenders,
                concurrencies: concurrency,
                runs,
                warmup: Duration::from_millis(warmup_ms),
                duration: Duration::from_millis(duration_ms),
                backend_workers,
                client_workers,
                out_dir: out,
            };
            run_and_report(&spec)
        }
    }
}

fn run_and_report(spec: &MatrixSpec) -> Result<(), BoxError> {
    let cells = orchestrate::run_matrix(spec)?;
    let ms = report::medians(&cells, &spec.contenders, &spec.concurrencies);
    let settings = serde_json::json!({
        "runs": spec.runs,
        "warmup_ms": spec.warmup.as_millis() as u64,
        "duration_ms": spec.duration.as_millis() as u64,
        "backend_workers": spec.backend_workers,
        "client_workers": spec.client_workers,
        "payload_bytes": mesh_bench::PAYLOAD_SIZE,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        // Other work on the machine skews absolute numbers; ratios suffer less.
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    });
    let md = format!(
        "Medians of {} runs; {} ms warm-up, {} ms measured per cell; 1 KiB unary echo on loopback.\n{}",
        spec.runs,
        spec.warmup.as_millis(),
        spec.duration.as_millis(),
        report::markdown(&ms, &spec.concurrencies)
    );
    println!("{md}");
    let names: Vec<&str> = spec.contenders.iter().map(|c| c.name()).collect();
    let json = report::json(settings, &ms, &cells);
    std::fs::write(
        spec.out_dir.join("load.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(spec.out_dir.join("load.md"), &md)?;
    std::fs::write(
        spec.out_dir.join("load.svg"),
        chart::svg(&ms, &names, &spec.concurrencies),
    )?;
    eprintln!(
        "wrote {}/load.json, load.md, load.svg",
        spec.out_dir.display()
    );
    Ok(())
}

/// Re-renders the Markdown and the chart from the medians in `path`.
fn rewrite_report(path: &std::path::Path) -> Result<(), BoxError> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let ms: Vec<report::Median> = serde_json::from_value(v["medians"].clone())?;
    let mut names: Vec<&str> = Vec::new();
    let mut concurrencies = Vec::new();
    for m in &ms {
        if !names.contains(&m.contender.as_str()) {
            names.push(&m.contender);
        }
        if !concurrencies.contains(&m.concurrency) {
            concurrencies.push(m.concurrency);
        }
    }
    let s = &v["settings"];
    let md = format!(
        "Medians of {} runs; {} ms warm-up, {} ms measured per cell; 1 KiB unary echo on loopback.\n{}",
        s["runs"],
        s["warmup_ms"],
        s["duration_ms"],
        report::markdown(&ms, &concurrencies)
    );
    println!("{md}");
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::write(dir.join("load.md"), &md)?;
    std::fs::write(
        dir.join("load.svg"),
        chart::svg(&ms, &names, &concurrencies),
    )?;
    Ok(())
}
