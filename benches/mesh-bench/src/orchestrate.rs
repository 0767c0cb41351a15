//! The `run` subcommand: starts the backends and the control plane as
//! child processes of this binary, runs every (contender, concurrency)
//! cell as its own client process, repeats the matrix, and hands the cells
//! to [`report`](crate::report).
//!
//! Children get a piped stdin; they exit when it closes, so a crashed or
//! interrupted orchestrator leaves no servers behind.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::BoxError;
use crate::backends::BackendsReady;
use crate::client::CellResult;
use crate::contender::Contender;
use crate::control::ControlReady;

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
    let (_backends, ready): (Helper, BackendsReady) = Helper::start(
        &spec.exe,
        &[
            "backends".into(),
            "--workers".into(),
            spec.backend_workers.to_string(),
        ],
    )?;
    let backend_args: Vec<String> = ready
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    eprintln!("backends on {}", backend_args.join(", "));

    let needs_cp = spec.contenders.iter().any(|c| c.needs_control_plane());
    let mut _control = None;
    let mut bootstrap = None;
    if needs_cp {
        let path = spec.out_dir.join("bootstrap.json");
        let ports = ready
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let (helper, ready): (Helper, ControlReady) = Helper::start(
            &spec.exe,
            &[
                "control".into(),
                "--ports".into(),
                ports,
                "--bootstrap".into(),
                path.display().to_string(),
            ],
        )?;
        eprintln!("mesh-control on {}", ready.addr);
        bootstrap = Some(ready.bootstrap);
        _control = Some(helper);
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
                    "--backends".into(),
                    backend_args.join(","),
                ];
                if let Some(b) = &bootstrap {
                    args.push("--bootstrap".into());
                    args.push(b.display().to_string());
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
                    "run {} {:<12} x{:<3} {:>8.0} rps  p50 {:>7.0} µs  p99 {:>7.0} µs  {:.3} CPU s/10k{}",
                    run + 1,
                    cell.contender,
                    n,
                    cell.rps,
                    cell.p50_us,
                    cell.p99_us,
                    cell.cpu_s_per_10k,
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
    Ok(cells)
}
