//! `mesh-control check`: reads a config (like `istioctl analyze`) and
//! reports what is wrong or suspicious, without serving anything.
//!
//! Errors: the config does not load, a route names a subset no
//! DestinationRule defines, two VirtualServices claim the same host.
//! Warnings: unknown kinds or fields, hosts without endpoints, route
//! destinations without a ServiceEntry, weights not summing to 100 (Istio
//! accepts any non-zero total), selectors that select nothing, and what the
//! translation had to map (RANDOM, MAGLEV, ...). Info: WorkloadEntries no
//! service selects.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::config::{self, Config, Diagnostic, DocRef, Meta, fqdn};
use crate::translate::{HealthOverrides, translate};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The config is rejected or will not work as written.
    Error,
    /// Probably not what was meant.
    Warning,
    /// Worth knowing.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The file (empty for findings about the config as a whole).
    pub file: String,
    /// The document, if the finding is about one.
    pub document: Option<DocRef>,
    /// What was found (with the field path first, when there is one).
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity)?;
        match &self.document {
            Some(d) => write!(f, "{d}: ")?,
            None if !self.file.is_empty() => write!(f, "{}: ", self.file)?,
            None => {}
        }
        f.write_str(&self.message)
    }
}

/// Everything `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Findings, errors first.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether any finding is an error (the command then exits non-zero).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        Ok(())
    }
}

/// Checks the config at `path` (a file or directory).
pub fn check(path: impl AsRef<Path>) -> CheckReport {
    report(config::load(path))
}

/// Checks YAML text; `name` stands for the file name.
pub fn check_str(name: &str, yaml: &str) -> CheckReport {
    report(Config::from_yaml_str(name, yaml))
}

fn report(loaded: Result<config::Loaded, config::ConfigErrors>) -> CheckReport {
    let mut r = Report::default();
    match loaded {
        Err(e) => {
            for d in &e.errors {
                r.diagnostic(Severity::Error, d);
            }
            for d in &e.warnings {
                r.diagnostic(Severity::Warning, d);
            }
        }
        Ok(l) => {
            for d in &l.warnings {
                r.diagnostic(Severity::Warning, d);
            }
            analyze(&l.config, &mut r);
        }
    }
    r.findings.sort_by(|a, b| {
        (a.severity, &a.file, a.document.as_ref().map(|d| d.index)).cmp(&(
            b.severity,
            &b.file,
            b.document.as_ref().map(|d| d.index),
        ))
    });
    CheckReport {
        findings: r.findings,
    }
}

#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn diagnostic(&mut self, severity: Severity, d: &Diagnostic) {
        let message = match &d.field {
            Some(field) => format!("{field}: {}", d.message),
            None => d.message.clone(),
        };
        self.findings.push(Finding {
            severity,
            file: d.file.clone(),
            document: d.document.clone(),
            message,
        });
    }

    fn at(&mut self, severity: Severity, meta: &Meta, message: String) {
        self.findings.push(Finding {
            severity,
            file: meta.source.file.clone(),
            document: Some(meta.source.clone()),
            message,
        });
    }
}

fn analyze(c: &Config, r: &mut Report) {
    routes(c, r);
    endpoints(c, r);
    selectors(c, r);
    for w in translate(c, &HealthOverrides::default()).warnings {
        // Subset and host problems are reported above with their severity.
        if w.contains("is defined by no DestinationRule")
            || w.contains("has no ServiceEntry")
            || w.contains("already has VirtualService")
        {
            continue;
        }
        r.findings.push(Finding {
            severity: Severity::Warning,
            file: String::new(),
            document: None,
            message: format!("translation: {w}"),
        });
    }
}

fn routes(c: &Config, r: &mut Report) {
    let subsets: BTreeMap<String, Vec<&str>> = c
        .destination_rules
        .iter()
        .map(|dr| {
            (
                fqdn(&dr.host, &dr.meta.namespace),
                dr.subsets.iter().map(|s| s.name.as_str()).collect(),
            )
        })
        .collect();
    let services: std::collections::BTreeSet<&str> = c
        .service_entries
        .iter()
        .flat_map(|se| se.hosts.iter().map(String::as_str))
        .collect();
    let mut owner: BTreeMap<String, &Meta> = BTreeMap::new();
    for vs in &c.virtual_services {
        for h in &vs.hosts {
            let host = fqdn(h, &vs.meta.namespace);
            if let Some(first) = owner.get(&host) {
                r.at(
                    Severity::Error,
                    &vs.meta,
                    format!(
                        "host {host} is also routed by VirtualService {}/{} ({}): \
                         only the first applies",
                        first.namespace, first.name, first.source
                    ),
                );
            } else {
                owner.insert(host, &vs.meta);
            }
        }
        for (i, http) in vs.http.iter().enumerate() {
            for (j, d) in http.route.iter().enumerate() {
                let host = fqdn(&d.host, &vs.meta.namespace);
                let field = format!("spec.http[{i}].route[{j}].destination");
                if !services.contains(host.as_str()) {
                    r.at(
                        Severity::Warning,
                        &vs.meta,
                        format!("{field}.host: {host} has no ServiceEntry"),
                    );
                }
                if let Some(s) = &d.subset {
                    let known = subsets.get(&host).is_some_and(|v| v.contains(&s.as_str()));
                    if !known {
                        r.at(
                            Severity::Error,
                            &vs.meta,
                            format!(
                                "{field}.subset: subset \"{s}\" of {host} is defined by no \
                                 DestinationRule"
                            ),
                        );
                    }
                }
            }
            if http.route.len() > 1 {
                let total: u64 = http.route.iter().map(|d| u64::from(d.weight)).sum();
                if total != 100 {
                    r.at(
                        Severity::Warning,
                        &vs.meta,
                        format!(
                            "spec.http[{i}].route: weights sum to {total}, not 100 \
                             (they are used as relative weights)"
                        ),
                    );
                }
            }
        }
    }
}

fn endpoints(c: &Config, r: &mut Report) {
    let selected = |labels: &BTreeMap<String, String>,
                    ns: &str,
                    sel: &BTreeMap<String, String>,
                    sel_ns: &str| {
        ns == sel_ns && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    for se in &c.service_entries {
        let count = match &se.workload_selector {
            Some(sel) => c
                .workload_entries
                .iter()
                .filter(|w| selected(&w.labels(), &w.meta.namespace, sel, &se.meta.namespace))
                .count(),
            None => se.endpoints.len(),
        };
        if count == 0 {
            r.at(
                Severity::Warning,
                &se.meta,
                format!("hosts {}: no endpoints", se.hosts.join(", ")),
            );
        }
    }
    for we in &c.workload_entries {
        let used = c.service_entries.iter().any(|se| {
            se.workload_selector.as_ref().is_some_and(|sel| {
                selected(&we.labels(), &we.meta.namespace, sel, &se.meta.namespace)
            })
        });
        if !used {
            r.at(
                Severity::Info,
                &we.meta,
                "no ServiceEntry selects this workload".into(),
            );
        }
    }
}

fn selectors(c: &Config, r: &mut Report) {
    let labels: Vec<(String, BTreeMap<String, String>)> = c
        .workload_entries
        .iter()
        .map(|w| (w.meta.namespace.clone(), w.labels()))
        .chain(c.service_entries.iter().flat_map(|se| {
            se.endpoints
                .iter()
                .map(|e| (se.meta.namespace.clone(), e.labels.clone()))
        }))
        .collect();
    let matches_any = |ns: &str, sel: &BTreeMap<String, String>| {
        labels
            .iter()
            .any(|(n, l)| n == ns && sel.iter().all(|(k, v)| l.get(k) == Some(v)))
    };
    let policies = c
        .peer_authentications
        .iter()
        .map(|p| (&p.meta, &p.selector))
        .chain(
            c.authorization_policies
                .iter()
                .map(|p| (&p.meta, &p.selector)),
        );
    for (meta, selector) in policies {
        if let Some(sel) = selector.as_ref().filter(|s| !s.is_empty())
            && !matches_any(&meta.namespace, sel)
        {
            r.at(
                Severity::Warning,
                meta,
                "spec.selector: selects no workload in its namespace".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: grpc}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
";

    fn vs(name: &str, route: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: {name}}}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n{route}"
        )
    }

    fn messages(r: &CheckReport, s: Severity) -> Vec<String> {
        r.findings
            .iter()
            .filter(|f| f.severity == s)
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn clean_config_has_no_findings() {
        let yaml = format!(
            "{SE}{}",
            vs("a", "    - destination: {host: reviews, subset: v1}\n")
        );
        let r = check_str("c.yaml", &yaml);
        assert!(r.findings.is_empty(), "{r}");
        assert!(!r.has_errors());
    }

    #[test]
    fn load_errors_are_errors() {
        let r = check_str(
            "c.yaml",
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
                                      metadata: {name: x}\nspec: {address: nope}\n",
        );
        assert!(r.has_errors());
        let e = messages(&r, Severity::Error);
        assert!(
            e[0].starts_with("error: c.yaml: document 1 (WorkloadEntry default/x): spec.address"),
            "{e:?}"
        );
    }

    #[test]
    fn dangling_subset_is_an_error() {
        let yaml = format!(
            "{SE}{}",
            vs("a", "    - destination: {host: reviews, subset: v9}\n")
        );
        let r = check_str("c.yaml", &yaml);
        let e = messages(&r, Severity::Error);
        assert_eq!(e.len(), 1, "{r}");
        assert!(e[0].contains("document 4 (VirtualService default/a): spec.http[0].route[0].destination.subset: subset \"v9\""), "{e:?}");
    }

    #[test]
    fn conflicting_virtual_services_are_an_error() {
        let route = "    - destination: {host: reviews}\n";
        let yaml = format!("{SE}{}{}", vs("a", route), vs("b", route));
        let r = check_str("c.yaml", &yaml);
        let e = messages(&r, Severity::Error);
        assert!(
            e.iter().any(|m| m.contains("(VirtualService default/b)")
                && m.contains("also routed by VirtualService default/a")),
            "{r}"
        );
    }

    #[test]
    fn weights_not_summing_to_100_warn() {
        let route = concat!(
            "    - destination: {host: reviews, subset: v1}\n      weight: 30\n",
            "    - destination: {host: reviews, subset: v1}\n      weight: 30\n",
        );
        let r = check_str("c.yaml", &format!("{SE}{}", vs("a", route)));
        assert!(!r.has_errors(), "{r}");
        let w = messages(&r, Severity::Warning);
        assert!(
            w.iter()
                .any(|m| m.contains("spec.http[0].route: weights sum to 60")),
            "{w:?}"
        );
    }

    #[test]
    fn hosts_without_endpoints_and_unknown_fields_warn() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: empty}\n\
                    spec:\n  hosts: [empty]\n  ports: [{number: 1, name: a}]\n  shape: round\n";
        let r = check_str("c.yaml", yaml);
        let w = messages(&r, Severity::Warning);
        assert!(
            w.iter()
                .any(|m| m.contains("empty.default.svc.cluster.local: no endpoints")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|m| m.contains("spec.shape: unknown field")),
            "{w:?}"
        );
    }

    #[test]
    fn unused_workloads_are_info() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: lone}\n\
                    spec: {address: 10.0.0.9}\n";
        let r = check_str("c.yaml", yaml);
        assert_eq!(messages(&r, Severity::Info).len(), 1, "{r}");
        assert!(!r.has_errors());
    }
}
