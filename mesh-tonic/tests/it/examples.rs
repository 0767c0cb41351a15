//! Every example runs to completion in fast mode (`--fast`), exits 0 and
//! prints what it claims to show.
//!
//! The examples are separate binaries (`cargo test` and `cargo test
//! --all-targets` build them next to this test binary, in
//! `target/<profile>/examples/`). When this binary runs alone (`cargo test
//! --test it`), they are built first with the cargo that runs the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest an example may run in fast mode before it counts as hung.
const LIMIT: Duration = Duration::from_secs(120);

/// `target/<profile>/examples`, beside this binary's `deps/`.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test binary>")
        .join("examples")
}

/// Builds the examples once per test run (a no-op when cargo already did),
/// so a stale binary is never what gets tested.
fn build_examples() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        // The profile this test binary was built with (target/<profile>/).
        let dir = examples_dir();
        let profile = dir
            .parent()
            .and_then(Path::file_name)
            .and_then(|p| p.to_str())
            .unwrap_or("debug");
        let profile = if profile == "debug" { "dev" } else { profile };
        let out = Command::new(cargo)
            .args([
                "build",
                "--examples",
                "--profile",
                profile,
                "--manifest-path",
            ])
            .arg(&manifest)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = result {
        panic!("building the examples failed:\n{e}");
    }
}

/// Runs example `name` with `--fast`; its stdout.
fn run(name: &str) -> String {
    build_examples();
    let exe = examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(exe.exists(), "{} was not built", exe.display());
    let mut child = Command::new(&exe)
        .arg("--fast")
        .env_remove("GRPC_XDS_BOOTSTRAP")
        .env_remove("GRPC_XDS_BOOTSTRAP_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("example {name} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The lines after the line containing `header`, up to the next blank line.
fn block<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.contains(header))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// The count in a table row `   LABEL  ████  N  P%`.
fn count(lines: &[&str], label: &str) -> Option<u64> {
    lines.iter().find_map(|l| {
        let mut words = l.split_whitespace();
        if words.next()? != label {
            return None;
        }
        words.nth(1)?.parse().ok()
    })
}

fn assert_contains(out: &str, needles: &[&str]) {
    for n in needles {
        assert!(out.contains(n), "missing {n:?} in:\n{out}");
    }
}

#[test]
fn quickstart() {
    let out = run("quickstart");
    assert_contains(
        &out,
        &[
            "== 1. Traffic shifting",
            "-- weights v1=90 v2=10",
            "== 2. Fault injection",
            "RPC aborted by fault injection",
            "== 3. Retries",
            "== Done ==",
        ],
    );
    let first = block(&out, "-- weights v1=100 v2=0");
    assert_eq!(count(&first, "v2"), Some(0), "{out}");
    let last = block(&out, "-- weights v1=0 v2=100");
    assert_eq!(count(&last, "v1"), Some(0), "{out}");
    assert!(count(&last, "v2") > Some(0), "{out}");
    let fault = block(&out, "-- 100 RPCs, round robin");
    assert!(count(&fault, "UNAVAILABLE") > Some(0), "{out}");
    let retried = block(&out, "-- retries: {attempts: 3");
    assert_eq!(
        count(&retried, "UNAVAILABLE"),
        None,
        "retries fixed all: {out}"
    );
}

#[test]
fn canary() {
    let out = run("canary");
    assert_contains(&out, &["== 2. Promotion", "== 3. Rollback", "== Done =="]);
    let opted_in = block(&out, "RPCs with x-canary: true");
    assert_eq!(count(&opted_in, "v1"), Some(0), "{out}");
    let promoted = block(&out, "== 2. Promotion");
    assert_eq!(count(&promoted, "v1"), Some(0), "{out}");
}

#[test]
fn fault_injection() {
    let out = run("fault-injection");
    assert_contains(&out, &["== 1. Delay", "delayed", "== Done =="]);
    assert!(
        count(&block(&out, "== 2. Abort"), "INTERNAL") > Some(0),
        "{out}"
    );
    let timed_out = block(&out, "== 4.");
    assert!(count(&timed_out, "DEADLINE_EXCEEDED") > Some(0), "{out}");
}

#[test]
fn resilience() {
    let out = run("resilience");
    assert_contains(
        &out,
        &[
            "circuit breaker max_requests=4 reached",
            "DEADLINE_EXCEEDED",
            "== 3. Outlier ejection",
            "== Done ==",
        ],
    );
    // Retries with a raised cap fail (almost) nothing; a retry can land on
    // `bad` again, so only "far fewer than without retries" is certain.
    let plain = count(&block(&out, "-- retries: {attempts: 0}"), "UNAVAILABLE").unwrap();
    let capped = count(&block(&out, "-- plus trafficPolicy"), "UNAVAILABLE").unwrap_or(0);
    assert!(capped * 4 < plain, "{out}");
}

#[test]
fn axum_http() {
    let out = run("axum-http");
    assert_contains(
        &out,
        &[
            "catalog v1",
            "catalog v2",
            "reviews unavailable: 503",
            "→ 503 Service Unavailable",
            "Listener \"unknown.default.svc.cluster.local:80\"",
            "== Done ==",
        ],
    );
    let tester = block(&out, "== 2. Header-based routing");
    assert!(tester.iter().all(|l| l.contains("catalog v2")), "{out}");
}

#[test]
fn mtls() {
    // The example checks every step itself and exits non-zero on a miss;
    // this checks that each step ran and says what it claims.
    let out = run("mtls");
    assert_contains(
        &out,
        &[
            "== 1. PERMISSIVE",
            "[echo] new peer: no certificate (plaintext)",
            "== 2. mTLS on",
            "[echo] new peer: spiffe://cluster.local/ns/default/sa/client",
            "[echo] new peer: spiffe://cluster.local/ns/default/sa/other",
            "== 3. AuthorizationPolicy",
            "× PERMISSION_DENIED",
            "== 4. Certificate rotation under traffic",
            "0 failed",
            "✓ rotated under traffic without a failed RPC",
            "== Done ==",
        ],
    );
    let strict = block(&out, "== 2. mTLS on");
    assert!(
        strict
            .iter()
            .any(|l| l.starts_with("   legacy") && !l.contains("× OK")),
        "{out}"
    );
    let authz = block(&out, "== 3. AuthorizationPolicy");
    assert!(
        authz
            .iter()
            .any(|l| l.starts_with("   other") && l.contains("× PERMISSION_DENIED")),
        "{out}"
    );
    assert_eq!(out.matches("✓").count(), 4, "{out}");
}
