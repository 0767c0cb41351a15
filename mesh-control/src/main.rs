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
use mesh_control::ca::cli::{self, BootstrapTokens, CaOptions, TokenGrant, Workload};
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
        /// Also run the CA (Istio's CA API) with the root in DIR (from
        /// `ca init`; generated there when absent). With --write-bootstrap,
        /// the bootstraps get their certificates from it.
        #[arg(long, value_name = "DIR")]
        ca: Option<PathBuf>,
        /// Where the CA listens.
        #[arg(long, value_name = "ADDR", requires = "ca",
              default_value = mesh_control::ca::server::DEFAULT_LISTEN)]
        ca_listen: SocketAddr,
        /// A bootstrap token the CA accepts for NS/SA (repeatable).
        #[arg(long = "ca-token", value_name = "TOKEN=NS/SA", requires = "ca",
              value_parser = mesh_control::ca::cli::parse_ca_token)]
        ca_tokens: Vec<TokenGrant>,
        /// The client bootstrap's identity (with --ca and --write-bootstrap).
        #[arg(long, value_name = "NS/SA", default_value = cli::DEFAULT_CLIENT_SA,
              value_parser = |s: &str| cli::parse_workload("--client-sa", s))]
        client_sa: Workload,
        /// The server bootstrap's service account, in --namespace (with
        /// --ca and --write-bootstrap).
        #[arg(long, value_name = "SA", default_value = cli::DEFAULT_SERVER_SA)]
        server_sa: String,
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
            ca,
            ca_listen,
            ca_tokens,
            client_sa,
            server_sa,
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
                labels: labels.into_iter().collect(),
                ca: ca.map(|dir| ServeCa {
                    options: CaOptions {
                        dir,
                        listen: ca_listen,
                        trust_domain: mesh_control::ca::DEFAULT_TRUST_DOMAIN.to_owned(),
                        tokens: ca_tokens,
                    },
                    client: client_sa,
                    server_sa,
                }),
                namespace,
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
    ca: Option<ServeCa>,
}

/// `serve --ca`: the CA's options and the written bootstraps' identities.
struct ServeCa {
    options: CaOptions,
    client: Workload,
    server_sa: String,
}

impl Serve {
    async fn run(mut self) -> ExitCode {
        let mut builder = ControlPlane::builder()
            .config_path(&self.config)
            .listen(self.listen);
        if let Some(h) = self.health.take() {
            builder = builder.health_check_config(h);
        }
        let cp = match builder.start().await {
            Ok(cp) => cp,
            Err(e) => {
                eprintln!("mesh-control: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ca = match self.start_ca().await {
            Ok(ca) => ca,
            Err(e) => {
                eprintln!("mesh-control: {e}");
                cp.shutdown().await;
                return ExitCode::FAILURE;
            }
        };
        let client = cp.client_bootstrap(&self.client_node_id);
        let server = cp.server_bootstrap(self.server_ip, &self.namespace, &self.labels);
        let ok = self.publish_bootstraps(client, server, ca.as_ref());
        if ok {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("mesh-control: shutting down");
        }
        cp.shutdown().await;
        if let Some((ca, _)) = ca {
            ca.shutdown().await;
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Starts the CA when `--ca` is given, with a token minted per written
    /// bootstrap.
    async fn start_ca(&self) -> Result<Option<(cli::RunningCa, Option<BootstrapTokens>)>, String> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let minted = self.write_bootstrap.as_ref().map(|_| {
            let server = Workload::new(&self.namespace, &ca.server_sa)
                .map_err(|e| format!("--server-sa / --namespace: {e}"));
            server.map(|s| BootstrapTokens::mint(ca.client.clone(), s))
        });
        let minted = minted.transpose()?;
        let running = cli::start_ca(&ca.options, minted.as_ref())
            .await
            .map_err(|e| format!("--ca {}: {e}", ca.options.dir.display()))?;
        eprintln!(
            "CA ({}) serving at {} with the root in {}",
            ca.options.trust_domain,
            running.uri(),
            ca.options.dir.display()
        );
        Ok(Some((running, minted)))
    }

    /// Prints the bootstraps and, with `--write-bootstrap`, writes them
    /// (with the CA's tokens and root when it runs). False on failure.
    fn publish_bootstraps(
        &self,
        client: mesh_core::bootstrap::Bootstrap,
        server: mesh_core::bootstrap::Bootstrap,
        ca: Option<&(cli::RunningCa, Option<BootstrapTokens>)>,
    ) -> bool {
        let (client, server) = match (&self.write_bootstrap, ca) {
            (Some(dir), Some((running, Some(tokens)))) => {
                match cli::write_bootstrap_credentials(
                    dir,
                    &running.uri(),
                    running.root_pem(),
                    tokens,
                    client,
                    server,
                ) {
                    Ok((c, s, files)) => {
                        eprintln!(
                            "wrote {}, {} ({} for {}, {} for {}) and {}",
                            files.client_token.display(),
                            files.server_token.display(),
                            cli::CLIENT_TOKEN_FILE,
                            tokens.client.workload,
                            cli::SERVER_TOKEN_FILE,
                            tokens.server.workload,
                            files.root_cert.display()
                        );
                        (c, s)
                    }
                    Err(e) => {
                        eprintln!("mesh-control: {e}");
                        return false;
                    }
                }
            }
            _ => (client, server),
        };
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
                    return false;
                }
            }
        }
        true
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
