//! Reading files and directories, splitting them into YAML documents and
//! handing each document to its kind's parser. Collects every warning and
//! error; nothing is returned unless there are no errors.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::walk::{Findings, Obj};
use super::{Config, ConfigErrors, Diagnostic, DocRef, Loaded, Meta};
use super::{destination_rule, security, service_entry, virtual_service};

const NETWORKING: &str = "networking.istio.io";
const NETWORKING_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SECURITY: &str = "security.istio.io";
const SECURITY_VERSIONS: &[&str] = &["v1", "v1beta1"];

const META_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "generateName",
];

/// Builds one [`Config`] from many files.
#[derive(Debug, Default)]
pub(super) struct Accumulator {
    config: Config,
    warnings: Vec<Diagnostic>,
    errors: Vec<Diagnostic>,
    /// `kind/namespace/name` → where it was first seen, to catch duplicates.
    seen: BTreeMap<String, DocRef>,
}

impl Accumulator {
    /// The config, or every error found.
    pub(super) fn finish(self) -> Result<Loaded, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(Loaded {
                config: self.config,
                warnings: self.warnings,
            })
        } else {
            Err(ConfigErrors {
                errors: self.errors,
                warnings: self.warnings,
            })
        }
    }

    fn file_error(&mut self, file: &str, message: String) {
        self.errors.push(Diagnostic {
            file: file.to_owned(),
            document: None,
            field: None,
            message,
        });
    }

    /// Reads a file, or every YAML file under a directory.
    pub(super) fn add_path(&mut self, path: &Path) {
        let name = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.file_error(&name, format!("cannot read: {e}")),
        };
        if !meta.is_dir() {
            match std::fs::read_to_string(path) {
                Ok(text) => self.add_text(&name, &text),
                Err(e) => self.file_error(&name, format!("cannot read: {e}")),
            }
            return;
        }
        let mut entries = match std::fs::read_dir(path) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>(),
            Err(e) => return self.file_error(&name, format!("cannot read directory: {e}")),
        };
        entries.sort();
        for p in entries {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
            if p.is_dir() || yaml {
                self.add_path(&p);
            }
        }
    }

    /// Parses YAML text from `file` (one or more documents).
    pub(super) fn add_text(&mut self, file: &str, text: &str) {
        let options = serde_saphyr::options! { with_snippet: false };
        let docs: Vec<Value> = match serde_saphyr::from_multiple_with_options(text, options) {
            Ok(d) => d,
            Err(e) => return self.file_error(file, format!("invalid YAML: {e}")),
        };
        for (i, doc) in docs.iter().enumerate() {
            self.add_document(file, i + 1, doc);
        }
    }

    fn add_document(&mut self, file: &str, index: usize, doc: &Value) {
        let mut r = DocRef {
            file: file.to_owned(),
            index,
            kind: String::new(),
            name: String::new(),
        };
        let mut f = Findings::default();
        let Some(top) = Obj::new(
            doc,
            "",
            &["apiVersion", "kind", "metadata", "spec", "status"],
            &mut f,
        ) else {
            self.errors
                .push(Diagnostic::in_doc(&r, None, "a document must be a mapping"));
            return;
        };
        let api_version = top.str("apiVersion", &mut f).unwrap_or_default();
        r.kind = top.str("kind", &mut f).unwrap_or_default();
        let meta = parse_meta(&top, &mut r, &mut f);
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let versions = match (group, r.kind.as_str()) {
            (
                NETWORKING,
                "VirtualService" | "DestinationRule" | "ServiceEntry" | "WorkloadEntry",
            ) => NETWORKING_VERSIONS,
            (SECURITY, "PeerAuthentication" | "AuthorizationPolicy") => SECURITY_VERSIONS,
            _ => {
                let what = if r.kind.is_empty() {
                    "a document without a kind".to_owned()
                } else {
                    format!("unknown kind {} (apiVersion \"{api_version}\")", r.kind)
                };
                self.warnings
                    .push(Diagnostic::in_doc(&r, None, format!("{what}: skipped")));
                return;
            }
        };
        if !versions.contains(&version) {
            self.warnings.push(Diagnostic::in_doc(
                &r,
                Some("apiVersion".into()),
                format!(
                    "unsupported version \"{api_version}\" (use {group}/{}): skipped",
                    versions.join(" or ")
                ),
            ));
            return;
        }
        if meta.is_some() {
            let key = format!("{}/{}", r.kind, r.name);
            if let Some(first) = self.seen.get(&key) {
                f.error(
                    "metadata.name",
                    format!("duplicate {} {} (first defined in {first})", r.kind, r.name),
                );
            } else {
                self.seen.insert(key, r.clone());
            }
        }
        let spec = top.get("spec").unwrap_or(&Value::Null);
        if let Some(meta) = meta.filter(|_| f.errors.is_empty()) {
            let c = &mut self.config;
            match r.kind.as_str() {
                "VirtualService" => {
                    if let Some(x) = virtual_service::parse(spec, meta, &mut f) {
                        c.virtual_services.push(x);
                    }
                }
                "DestinationRule" => {
                    if let Some(x) = destination_rule::parse(spec, meta, &mut f) {
                        c.destination_rules.push(x);
                    }
                }
                "ServiceEntry" => {
                    if let Some(x) = service_entry::parse_service_entry(spec, meta, &mut f) {
                        c.service_entries.push(x);
                    }
                }
                "WorkloadEntry" => {
                    if let Some(x) = service_entry::parse_workload_entry(spec, meta, &mut f) {
                        c.workload_entries.push(x);
                    }
                }
                "PeerAuthentication" => {
                    if let Some(x) = security::parse_peer_authentication(spec, meta, &mut f) {
                        c.peer_authentications.push(x);
                    }
                }
                "AuthorizationPolicy" => {
                    if let Some(x) = security::parse_authorization_policy(spec, meta, &mut f) {
                        c.authorization_policies.push(x);
                    }
                }
                _ => unreachable!("kinds are checked above"),
            }
        }
        self.record(&r, f);
    }

    fn record(&mut self, r: &DocRef, f: Findings) {
        for field in f.unknown {
            self.warnings
                .push(Diagnostic::in_doc(r, Some(field), "unknown field: ignored"));
        }
        for (field, why) in f.ignored {
            self.warnings.push(Diagnostic::in_doc(
                r,
                Some(field),
                format!("ignored: {why}"),
            ));
        }
        for (field, reason) in f.errors {
            let field = (!field.is_empty()).then_some(field);
            self.errors.push(Diagnostic::in_doc(r, field, reason));
        }
    }
}

/// Reads `metadata`, filling in the document's `namespace/name`.
fn parse_meta(top: &Obj<'_>, r: &mut DocRef, f: &mut Findings) -> Option<Meta> {
    let Some(m) = top.obj("metadata", META_FIELDS, f) else {
        if !top.has("metadata") {
            f.error("metadata", "is required");
        }
        return None;
    };
    let name = m.req_str("name", f);
    let namespace = m
        .str("namespace", f)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let labels = m.str_map("labels", f);
    let annotations = m.str_map("annotations", f);
    let name = name?;
    r.name = format!("{namespace}/{name}");
    Some(Meta {
        name,
        namespace,
        labels,
        annotations,
        source: r.clone(),
    })
}
