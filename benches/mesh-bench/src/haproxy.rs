//! The HAProxy hop (the sidecar stand-in): renders a config with an h2c
//! frontend on loopback and the plaintext backends as an h2c roundrobin
//! backend, installs Debian's `haproxy` if it is missing, and runs it in
//! the foreground as a child process of the orchestrator (killed when the
//! [`Haproxy`] handle drops).
//!
//! Not here: TLS (the hop is plaintext on both sides), and any health
//! checking (the backends are up for the whole run).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BoxError;

/// HAProxy worker threads: Istio runs its sidecar with two Envoy workers
/// (`concurrency: 2`), so the stand-in gets as many.
pub const THREADS: usize = 2;

/// The HAProxy configuration: `listen` on `frontend` (HTTP/2 without TLS),
/// round robin over `backends` (HTTP/2 without TLS), no logging, timeouts
/// long enough never to fire during a cell.
pub fn render_config(frontend: SocketAddr, backends: &[SocketAddr], threads: usize) -> String {
    let mut c = format!(
        "# Written by mesh-bench for the HAProxy row; regenerated every run.
global
    nbthread {threads}
    maxconn 1000

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend grpc_in
    bind {frontend} proto h2
    default_backend echo

backend echo
    balance roundrobin
"
    );
    for (i, b) in backends.iter().enumerate() {
        c += &format!("    server b{i} {b} proto h2\n");
    }
    c
}

/// A running HAProxy; killed on drop.
pub struct Haproxy {
    child: Child,
    /// Where its frontend listens.
    pub addr: SocketAddr,
}

impl Haproxy {
    /// Writes the config into `dir` (`haproxy.cfg`), starts `haproxy -db`
    /// and waits until the frontend accepts connections.
    pub fn start(dir: &Path, backends: &[SocketAddr]) -> Result<Haproxy, BoxError> {
        let exe = ensure_installed()?;
        let addr = free_loopback_port()?;
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, render_config(addr, backends, THREADS))?;
        let check = Command::new(&exe).arg("-c").arg("-f").arg(&cfg).output()?;
        if !check.status.success() {
            return Err(format!(
                "haproxy rejects {}: {}",
                cfg.display(),
                String::from_utf8_lossy(&check.stderr).trim()
            )
            .into());
        }
        let child = Command::new(&exe)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut proxy = Haproxy { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = proxy.child.try_wait()? {
                return Err(format!("haproxy exited at start: {status}").into());
            }
            if Instant::now() > deadline {
                return Err(format!("haproxy does not listen on {addr}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proxy)
    }

    /// The process id (its CPU time is read around each HAProxy cell).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `haproxy` executable; installs Debian's package with `apt-get` when
/// it is not on `PATH`.
fn ensure_installed() -> Result<PathBuf, BoxError> {
    if let Some(p) = which("haproxy") {
        return Ok(p);
    }
    eprintln!("haproxy not found: apt-get install -y haproxy");
    let status = Command::new("apt-get")
        .args(["install", "-y", "haproxy"])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run apt-get to install haproxy: {e}"))?;
    if !status.success() {
        return Err(format!("apt-get install -y haproxy failed: {status}").into());
    }
    which("haproxy").ok_or_else(|| "haproxy installed but not on PATH".into())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A loopback port that was free a moment ago (HAProxy binds it next).
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_h2c_on_both_sides_and_every_backend() {
        let b: Vec<SocketAddr> = ["127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let c = render_config("127.0.0.1:9000".parse().unwrap(), &b, 2);
        assert!(c.contains("bind 127.0.0.1:9000 proto h2\n"), "{c}");
        assert!(c.contains("balance roundrobin"));
        assert!(c.contains("nbthread 2"));
        for (i, a) in b.iter().enumerate() {
            assert!(c.contains(&format!("server b{i} {a} proto h2\n")), "{c}");
        }
        assert!(c.contains("mode http"));
    }
}
