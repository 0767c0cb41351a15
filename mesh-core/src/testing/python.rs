//! Python gRPC peers for interop tests: a virtualenv under the target
//! directory (`target/interop-venv`) with pinned grpcio and grpcio-tools
//! ([`GRPCIO_VERSION`]), and Python stubs of the grpc.testing protos, so a
//! test can run a real proxyless gRPC implementation against mesh.
//!
//! [`Python::setup`] is idempotent and blocking (pip); it runs once per
//! process and is safe against other test processes doing the same (the
//! install holds a lock directory, the stubs are generated aside and
//! renamed into place). [`peer_or_skip`] is what a test calls: a missing
//! peer skips the test loudly, or fails it under `MESH_REQUIRE_PEERS=1`.
//!
//! Not here: the Python scripts themselves (each test keeps its own small
//! script next to it) or anything about what they check.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// The grpcio (and grpcio-tools) version installed into the venv.
pub const GRPCIO_VERSION: &str = "1.76.0";

/// The environment variable that turns a missing peer into a failure.
pub const REQUIRE_PEERS: &str = "MESH_REQUIRE_PEERS";

/// The proto files the stubs are generated from (mesh-core/proto).
const PROTOS: [&str; 3] = ["empty.proto", "messages.proto", "test.proto"];

/// How long a setup waits for another process's install before calling
/// its lock stale.
const STALE_LOCK: Duration = Duration::from_secs(600);

/// Why no Python peer is available (no python3, no network for pip, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Python gRPC peer unavailable: {0}")]
pub struct PeerUnavailable(String);

/// A ready Python: the venv's interpreter and the generated stubs.
#[derive(Debug, Clone)]
pub struct Python {
    /// The venv's `python`.
    pub exe: PathBuf,
    /// The directory holding the stubs package `meshtest` (`meshtest.
    /// messages_pb2`, `meshtest.test_pb2_grpc`, ...): the protos'
    /// `grpc.testing` modules would be shadowed by the installed `grpc`
    /// package, so they are renamed (the proto package, and so the wire
    /// names, are unchanged).
    pub stubs: PathBuf,
}

impl Python {
    /// Creates the venv and installs the pinned packages if needed, then
    /// generates the stubs if needed. Blocking; the result is cached for
    /// the process (call it from `spawn_blocking` in async tests).
    pub fn setup() -> Result<Python, PeerUnavailable> {
        static READY: OnceLock<Result<Python, PeerUnavailable>> = OnceLock::new();
        READY.get_or_init(setup).clone()
    }

    /// A command running `script` with the venv's interpreter, the stubs
    /// on `PYTHONPATH` and no xDS bootstrap inherited from the environment.
    pub fn script(&self, script: &Path) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(script)
            .env("PYTHONPATH", &self.stubs)
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .env_remove("GRPC_XDS_BOOTSTRAP_CONFIG");
        cmd
    }
}

/// The peer, or `None` after a loud skip message naming `test` and the
/// reason; panics instead when `MESH_REQUIRE_PEERS=1`.
pub async fn peer_or_skip(test: &str) -> Option<Arc<Python>> {
    let ready = tokio::task::spawn_blocking(Python::setup)
        .await
        .unwrap_or_else(|e| Err(PeerUnavailable(format!("setup panicked: {e}"))));
    match ready {
        Ok(py) => Some(Arc::new(py)),
        Err(e) if std::env::var(REQUIRE_PEERS).as_deref() == Ok("1") => {
            panic!("{REQUIRE_PEERS}=1 but {test} cannot run: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: {e} (set {REQUIRE_PEERS}=1 to make this fatal; \
                 grpcio {GRPCIO_VERSION} is installed with pip into target/interop-venv)"
            );
            None
        }
    }
}

/// Runs `cmd` to completion: its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            manifest_dir()
                .parent()
                .unwrap_or(manifest_dir())
                .join("target")
        })
}

fn setup() -> Result<Python, PeerUnavailable> {
    let target = target_dir();
    std::fs::create_dir_all(&target)
        .map_err(|e| PeerUnavailable(format!("{}: {e}", target.display())))?;
    let exe = install(&target.join("interop-venv")).map_err(PeerUnavailable)?;
    let stubs = stubs(&exe, &target.join("interop-stubs")).map_err(PeerUnavailable)?;
    Ok(Python { exe, stubs })
}

fn venv_ready(exe: &Path) -> bool {
    let check = format!(
        "import grpc, grpc_tools; assert grpc.__version__ == '{GRPCIO_VERSION}', grpc.__version__"
    );
    exe.exists() && run(Command::new(exe).args(["-c", &check])).is_ok()
}

/// The venv's interpreter, installing into `venv` under a lock directory
/// when the pinned packages are missing.
fn install(venv: &Path) -> Result<PathBuf, String> {
    let exe = venv.join("bin").join("python");
    if venv_ready(&exe) {
        return Ok(exe);
    }
    let _lock = DirLock::acquire(&venv.with_extension("lock"))?;
    if venv_ready(&exe) {
        return Ok(exe);
    }
    if !exe.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    }
    run(Command::new(&exe).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("grpcio=={GRPCIO_VERSION}"),
        &format!("grpcio-tools=={GRPCIO_VERSION}"),
    ]))?;
    Ok(exe)
}

/// The stubs directory for the current protos: `root/<hash>`, generated
/// into a private directory and renamed into place when missing.
fn stubs(exe: &Path, root: &Path) -> Result<PathBuf, String> {
    let src = manifest_dir().join("proto/grpc/testing");
    let mut hasher = DefaultHasher::new();
    GRPCIO_VERSION.hash(&mut hasher);
    let mut texts = Vec::new();
    for f in PROTOS {
        let text = std::fs::read_to_string(src.join(f)).map_err(|e| format!("{f}: {e}"))?;
        text.hash(&mut hasher);
        texts.push(text);
    }
    let dir = root.join(format!("{:016x}", hasher.finish()));
    if dir.join("meshtest").join("__init__.py").exists() {
        return Ok(dir);
    }
    let tmp = root.join(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let protos = tmp.join("proto").join("meshtest");
    std::fs::create_dir_all(&protos).map_err(|e| format!("{}: {e}", protos.display()))?;
    for (f, text) in PROTOS.iter().zip(&texts) {
        std::fs::write(
            protos.join(f),
            text.replace("\"grpc/testing/", "\"meshtest/"),
        )
        .map_err(|e| e.to_string())?;
    }
    let mut protoc = Command::new(exe);
    protoc
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(tmp.join("proto"))
        .arg(format!("--python_out={}", tmp.display()))
        .arg(format!("--grpc_python_out={}", tmp.display()));
    for f in PROTOS {
        protoc.arg(format!("meshtest/{f}"));
    }
    run(&mut protoc)?;
    std::fs::write(tmp.join("meshtest").join("__init__.py"), "").map_err(|e| e.to_string())?;
    // Another process may have won the race: its stubs are as good.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("meshtest").join("__init__.py").exists() {
            return Err(format!("cannot create {}", dir.display()));
        }
    }
    Ok(dir)
}

/// A directory used as an inter-process lock (creation is atomic); removed
/// on drop. A lock older than [`STALE_LOCK`] is taken over.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, String> {
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(DirLock(path.to_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > STALE_LOCK) {
                        let _ = std::fs::remove_dir(path);
                    } else {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let lock = DirLock::acquire(&path).unwrap();
        assert!(std::fs::create_dir(&path).is_err(), "held");
        drop(lock);
        assert!(!path.exists());
        let _again = DirLock::acquire(&path).unwrap();
    }

    #[test]
    fn failing_commands_report_their_stderr() {
        let e = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        assert!(e.contains("boom"), "{e}");
        assert_eq!(
            run(Command::new("sh").args(["-c", "echo hi"])).unwrap(),
            "hi\n"
        );
    }
}
