//! The `run` subcommand: issues the TLS material (if a TLS contender runs),
//! starts the backends and the control plane as child processes of this
//! binary and HAProxy (if its row runs), runs every (contender,
//! concurrency) cell as its own client process, repeats the matrix, and
//! hands the cells to [`report`](crate::report).
//!
//! The bench's own children get a piped stdin; they exit when it closes, so
//! a crashed or interrupted orchestrator leaves no servers behind. HAProxy
//! is killed when the matrix ends (or fails).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::BoxError;
use crate::backends::BackendsReady;
use crate::certs::CertDirs;
use crate::client::CellResult;
use crate::contender::Contender;
use crate::control::ControlReady;
use crate::haproxy::Haproxy;

/// What the orchestrator runs.
#[derive(Debug, Clone)]
pub struct MatrixSpec {
    /// This binary (children are started from it).
    pub exe: PathBuf,
    /// The contenders, in table order.
    pub contenders: Vec<Contender>,
    /// Concurrency levels.
    pub concurrencies: Vec<usize>,
    /// Repetitions of the whole matrix.
    pub runs: usize,
    /// Warm-up per cell.
    pub warmup: Duration,
    /// Measured window per cell.
    pub duration: Duration,
    /// Backend process runtime threads.
    pub backend_workers: usize,
    /// Client process runtime threads.
    pub client_workers: usize,
    /// Where the bootstrap and the reports go.
    pub out_dir: PathBuf,
}

/// A helper process that stops when dropped (stdin closed, then killed
/// if it lingers).
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Helper {
    /// Starts `exe args...` and reads its first stdout line as `T`.
    fn start<T: DeserializeOwned>(exe: &PathBuf, args: &[String]) -> Result<(Helper, T), BoxError> {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let helper = Helper { child, stdin };
        let ready = serde_json::from_str(line.trim()).map_err(|e| {
            format!(
                "{} {}: bad ready line {line:?}: {e}",
                exe.display(),
                args[0]
            )
        })?;
        Ok((helper, ready))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the matrix `spec.runs` times; returns every cell (run index,
/// result) in the order run. Progress goes to stderr.
pub fn run_matrix(spec: &MatrixSpec) -> Result<Vec<(usize, CellResult)>, BoxError> {
    std::fs::create_dir_all(&spec.out_dir)?;
    // Absolute, so the bootstrap's certificate paths hold from any cwd.
    let out_dir = spec.out_dir.canonicalize()?;
    let needs_tls = spec.contenders.iter().any(|c| c.is_tls());
    let certs = if needs_tls {
        let dirs = CertDirs::new(out_dir.join("certs"));
        dirs.issue()?;
        Some(dirs)
    } else {
        None
    };

    let mut args = vec![
        "backends".to_owned(),
        "--workers".into(),
        spec.backend_workers.to_string(),
    ];
    if let Some(c) = &certs {
        args.extend(["--certs".into(), c.root.display().to_string()]);
    }
    let (_backends, ready): (Helper, BackendsReady) = Helper::start(&spec.exe, &args)?;
    let addrs =
        |ports: &[u16]| -> Vec<String> { ports.iter().map(|p| format!("127.0.0.1:{p}")).collect() };
    let backend_args = addrs(&ready.ports);
    eprintln!("backends on {}", backend_args.join(", "));
    if !ready.mtls_ports.is_empty() {
        eprintln!(
            "mTLS backends on {}, TLS backend on {:?}",
            addrs(&ready.mtls_ports).join(", "),
            ready.tls_port
        );
    }

    let needs_cp = spec.contenders.iter().any(|c| c.needs_control_plane());
    let mut _control = None;
    let mut bootstrap = None;
    let mut bootstrap_mtls = None;
    if needs_cp {
        let join = |ports: &[u16]| {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut args = vec![
            "control".to_owned(),
            "--ports".into(),
            join(&ready.ports),
            "--bootstrap".into(),
            out_dir.join("bootstrap.json").display().to_string(),
        ];
        if let Some(c) = &certs {
            args.extend([
                "--mtls-ports".into(),
                join(&ready.mtls_ports),
                "--client-certs".into(),
                c.client().dir.display().to_string(),
            ]);
        }
        let (helper, ready): (Helper, ControlReady) = Helper::start(&spec.exe, &args)?;
        eprintln!("mesh-control on {}", ready.addr);
        bootstrap = Some(ready.bootstrap);
        bootstrap_mtls = ready.bootstrap_mtls;
        _control = Some(helper);
    }

    let haproxy = if spec.contenders.iter().any(|c| c.needs_haproxy()) {
        let backends = ready
            .ports
            .iter()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect::<Vec<_>>();
        let h = Haproxy::start(&out_dir, &backends)?;
        eprintln!("haproxy on {} (pid {})", h.addr, h.pid());
        Some(h)
    } else {
        None
    };

    // Arguments every client gets (each names what only some contenders use).
    let mut common = vec!["--backends".to_owned(), backend_args.join(",")];
    if let Some(b) = &bootstrap {
        common.extend(["--bootstrap".into(), b.display().to_string()]);
    }
    if let Some(b) = &bootstrap_mtls {
        common.extend(["--bootstrap-mtls".into(), b.display().to_string()]);
    }
    if let Some(c) = &certs {
        common.extend(["--certs".into(), c.root.display().to_string()]);
    }
    if let Some(p) = ready.tls_port {
        common.extend(["--tls-backend".into(), format!("127.0.0.1:{p}")]);
    }
    if let Some(h) = &haproxy {
        common.extend(["--proxy".into(), h.addr.to_string()]);
    }

    let mut cells = Vec::new();
    for run in 0..spec.runs {
        // Each run starts the contender order one further along, so a
        // machine that slows down mid-run does not always tax the same one.
        let k = spec.contenders.len().max(1);
        let order: Vec<Contender> = (0..k).map(|i| spec.contenders[(i + run) % k]).collect();
        for &n in &spec.concurrencies {
            for &contender in &order {
                let mut args = vec![
                    "client".to_owned(),
                    "--contender".into(),
                    contender.name().into(),
                    "--concurrency".into(),
                    n.to_string(),
                    "--warmup-ms".into(),
                    spec.warmup.as_millis().to_string(),
                    "--duration-ms".into(),
                    spec.duration.as_millis().to_string(),
                    "--workers".into(),
                    spec.client_workers.to_string(),
                ];
                args.extend(common.iter().cloned());
                if let Some(h) = haproxy.as_ref().filter(|_| contender.needs_haproxy()) {
                    // Only the HAProxy row reports the proxy's CPU.
                    args.extend(["--proxy-pid".into(), h.pid().to_string()]);
                }
                let out = Command::new(&spec.exe)
                    .args(&args)
                    .stderr(Stdio::inherit())
                    .output()?;
                if !out.status.success() {
                    return Err(format!("client {contender} x{n} failed: {}", out.status).into());
                }
                let stdout = String::from_utf8_lossy(&out.stdout);
                let line = stdout.lines().last().unwrap_or_default();
                let cell: CellResult = serde_json::from_str(line)
                    .map_err(|e| format!("client {contender} x{n}: bad output {line:?}: {e}"))?;
                eprintln!(
                    "run {} {:<14} x{:<3} {:>8.0} rps  p50 {:>7.0} µs  p99 {:>7.0} µs  {:.3} CPU s/10k{}{}",
                    run + 1,
                    cell.contender,
                    n,
                    cell.rps,
                    cell.p50_us,
                    cell.p99_us,
                    cell.cpu_s_per_10k,
                    cell.proxy_cpu_s_per_10k
                        .map(|p| format!(" (+{p:.3} proxy)"))
                        .unwrap_or_default(),
                    if cell.errors > 0 {
                        format!("  {} errors", cell.errors)
                    } else {
                        String::new()
                    }
                );
                cells.push((run, cell));
            }
        }
    }
    drop(haproxy);
    Ok(cells)
}
