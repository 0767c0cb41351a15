//! The `mesh-control` command line: `serve` a config directory over ADS,
//! `check` it, `dump` the xDS it generates, or run the `ca` (root and
//! workload certificates).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mesh_control::health::HealthCheckConfig;
use mesh_control::server::ControlPlane;

/// mesh's local control plane: Istio YAML in, xDS out.
#[derive(Debug, Parser)]
#[command(name = "mesh-control", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the config over ADS, reloading it when files change.
    Serve {
        /// A YAML file or a directory of them.
        #[arg(long)]
        config: PathBuf,
        /// Where ADS listens.
        #[arg(long, default_value = mesh_control::server::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Health-check endpoints (grpc.health.v1) and mark dead ones
        /// UNHEALTHY in EDS.
        #[arg(long)]
        health_check: bool,
        /// Seconds between health checks.
        #[arg(long, default_value_t = 5.0)]
        health_interval: f64,
        /// Also write `client.json` and `server.json` bootstraps here.
        #[arg(long)]
        write_bootstrap: Option<PathBuf>,
        /// The client bootstrap's node id.
        #[arg(
            long,
            default_value = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
        )]
        client_node_id: String,
        /// The server bootstrap's workload IP.
        #[arg(long, default_value = "127.0.0.1")]
        server_ip: IpAddr,
        /// The server bootstrap's namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The server bootstrap's labels (`key=value`, repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Validate the config: print findings, exit non-zero on errors.
    Check {
        /// A YAML file or a directory of them.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the xDS the config generates, as JSON.
    Dump {
        /// A YAML file or a directory of them.
        #[arg(long)]
        config: PathBuf,
    },
    /// Certificate authority: create a root, issue workload certificates.
    Ca {
        #[command(subcommand)]
        action: CaCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Generate a root CA into a directory (ca-cert.pem, ca-key.pem,
    /// root-cert.pem).
    Init {
        /// Where to write the root.
        #[arg(long)]
        out: PathBuf,
        /// The SPIFFE trust domain.
        #[arg(long, default_value = mesh_control::ca::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
    /// Issue spiffe://<trust-domain>/ns/NS/sa/SA into a directory
    /// (cert-chain.pem, key.pem, root-cert.pem, as istio-agent names them).
    Issue {
        /// The workload's namespace.
        #[arg(long)]
        ns: String,
        /// The workload's service account.
        #[arg(long)]
        sa: String,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
        /// A CA directory from `ca init` (default: a throwaway root).
        #[arg(long)]
        root: Option<PathBuf>,
        /// The SPIFFE trust domain.
        #[arg(long, default_value = mesh_control::ca::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Validity in seconds (default 24 h).
        #[arg(long)]
        validity_secs: Option<u64>,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: a label is key=value"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            health_check,
            health_interval,
            write_bootstrap,
            client_node_id,
            server_ip,
            namespace,
            labels,
        } => {
            let health = health_check.then(|| {
                HealthCheckConfig::with_interval(Duration::from_secs_f64(health_interval.max(0.01)))
            });
            let serve = Serve {
                config,
                listen,
                health,
                write_bootstrap,
                client_node_id,
                server_ip,
                namespace,
                labels: labels.into_iter().collect(),
            };
            let rt = tokio::runtime::Runtime::new().expect("a Tokio runtime");
            rt.block_on(serve.run())
        }
        Command::Check { config } => check(&config),
        Command::Dump { config } => dump(&config),
        Command::Ca { action } => ca(action),
    }
}

/// `ca init` / `ca issue`.
fn ca(action: CaCommand) -> ExitCode {
    let result = match action {
        CaCommand::Init { out, trust_domain } => mesh_control::ca::cli::init(&out, &trust_domain)
            .map(|_| eprintln!("wrote a root CA for {trust_domain} to {}", out.display())),
        CaCommand::Issue {
            ns,
            sa,
            out,
            root,
            trust_domain,
            validity_secs,
        } => mesh_control::ca::cli::issue(
            &ns,
            &sa,
            &out,
            root.as_ref(),
            &trust_domain,
            validity_secs.map(Duration::from_secs),
        )
        .map(|i| {
            eprintln!("issued {} into {}", i.identity, i.paths.dir.display());
            if i.ephemeral_root {
                eprintln!(
                    "note: signed by a throwaway root (pass --root DIR from `ca init` to share one)"
                );
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-control: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Serve {
    config: PathBuf,
    listen: SocketAddr,
    health: Option<HealthCheckConfig>,
    write_bootstrap: Option<PathBuf>,
    client_node_id: String,
    server_ip: IpAddr,
    namespace: String,
    labels: BTreeMap<String, String>,
}

impl Serve {
    async fn run(self) -> ExitCode {
        let mut builder = ControlPlane::builder()
            .config_path(&self.config)
            .listen(self.listen);
        if let Some(h) = self.health {
            builder = builder.health_check_config(h);
        }
        let cp = match builder.start().await {
            Ok(cp) => cp,
            Err(e) => {
                eprintln!("mesh-control: {e}");
                return ExitCode::FAILURE;
            }
        };
        let client = cp.client_bootstrap(&self.client_node_id);
        let server = cp.server_bootstrap(self.server_ip, &self.namespace, &self.labels);
        let pretty = |b: &mesh_core::bootstrap::Bootstrap| {
            serde_json::to_string_pretty(&b.to_json()).expect("JSON")
        };
        println!(
            "# client bootstrap (GRPC_XDS_BOOTSTRAP)\n{}",
            pretty(&client)
        );
        println!(
            "# server bootstrap (GRPC_XDS_BOOTSTRAP)\n{}",
            pretty(&server)
        );
        if let Some(dir) = &self.write_bootstrap {
            match mesh_control::bootstrap_gen::write_bootstraps(dir, &client, &server) {
                Ok((c, s)) => eprintln!("wrote {} and {}", c.display(), s.display()),
                Err(e) => {
                    eprintln!(
                        "mesh-control: cannot write bootstraps to {}: {e}",
                        dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("mesh-control: shutting down");
        cp.shutdown().await;
        ExitCode::SUCCESS
    }
}

/// `check`: every finding, one a line; failure when any is an error.
fn check(path: &std::path::Path) -> ExitCode {
    let report = mesh_control::check::check(path);
    let _ = write!(std::io::stdout(), "{report}");
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == mesh_control::check::Severity::Error)
        .count();
    println!(
        "{}: {} finding(s), {errors} error(s)",
        path.display(),
        report.findings.len()
    );
    if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `dump`: the generated xDS as JSON (warnings on stderr).
fn dump(path: &std::path::Path) -> ExitCode {
    let loaded = match mesh_control::config::load(path) {
        Ok(l) => l,
        Err(e) => {
            for err in &e.errors {
                eprintln!("error: {err}");
            }
            return ExitCode::FAILURE;
        }
    };
    let t = mesh_control::translate::translate(&loaded.config, &Default::default());
    for w in loaded
        .warnings
        .iter()
        .map(ToString::to_string)
        .chain(t.warnings)
    {
        eprintln!("warning: {w}");
    }
    let json = mesh_control::translate::dump_json(&t.snapshot);
    let text = serde_json::to_string_pretty(&json).expect("JSON");
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{text}");
    ExitCode::SUCCESS
}
