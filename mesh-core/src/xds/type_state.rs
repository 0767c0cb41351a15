//! Per-type-URL state of a state-of-the-world ADS stream: the accepted
//! version, the last nonce, the subscribed resources, and how one
//! `DiscoveryResponse` changes them (A46 partial acceptance, A88 data
//! errors). Pure logic: no I/O, so it is unit tested directly.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::Any;

use super::resource_state::{AnyResource, ResourceEntry, ResourceError, ResourceStatus};
use crate::resource::{self, DecodeError, FieldError, ResourceType};

/// How data errors on cached resources are handled (A53, A88).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataErrorPolicy {
    /// Drop a cached resource on a deletion or a rejected update.
    pub fail_on_data_errors: bool,
    /// Never act on deletions (A53; wins over `fail_on_data_errors`).
    pub ignore_resource_deletion: bool,
}

/// One type URL's state.
#[derive(Debug)]
pub(crate) struct TypeState {
    pub kind: ResourceType,
    /// Last accepted `version_info`.
    pub version: String,
    /// Last received nonce.
    pub nonce: String,
    pub resources: BTreeMap<String, ResourceEntry>,
}

impl TypeState {
    pub fn new(kind: ResourceType) -> Self {
        TypeState {
            kind,
            version: String::new(),
            nonce: String::new(),
            resources: BTreeMap::new(),
        }
    }

    /// Applies a response: updates the cache and statuses, publishes to
    /// watchers, and returns the NACK's `error_detail` when any resource was
    /// rejected (the valid ones are kept all the same).
    pub fn apply_response(
        &mut self,
        resp: DiscoveryResponse,
        policy: DataErrorPolicy,
        providers: Option<&BTreeSet<String>>,
    ) -> Option<String> {
        let DiscoveryResponse {
            version_info,
            resources,
            nonce,
            ..
        } = resp;
        let now = SystemTime::now();
        self.nonce = nonce;
        let mut errors: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::with_capacity(resources.len());
        let mut nameless_failure = false;
        let mut invalid: BTreeMap<String, String> = BTreeMap::new();

        for any in resources {
            match decode_any(self.kind, any, providers) {
                Ok((name, value, raw)) => {
                    if !seen.insert(name.clone()) {
                        let msg = format!(
                            "{} \"{name}\": duplicate name in one response",
                            self.kind.message_name()
                        );
                        errors.push(msg.clone());
                        invalid.insert(name, msg);
                        continue;
                    }
                    let Some(entry) = self.resources.get_mut(&name) else {
                        continue; // Not subscribed: ignored.
                    };
                    entry.version.clone_from(&version_info);
                    entry.last_updated = Some(now);
                    entry.status = ResourceStatus::Acked;
                    entry.timer = None;
                    entry.failed = None;
                    let unchanged = entry.raw.as_ref().is_some_and(|r| r.value == raw.value)
                        && entry.update.error.is_none()
                        && entry.update.ambient_error.is_none();
                    entry.raw = Some(raw);
                    if !unchanged {
                        entry.update.data = Some(value);
                        entry.update.error = None;
                        entry.update.ambient_error = None;
                        entry.publish();
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    errors.push(msg.clone());
                    match e.resource_name() {
                        Some(name) => {
                            seen.insert(name.to_owned());
                            invalid.insert(name.to_owned(), msg);
                        }
                        None => nameless_failure = true,
                    }
                }
            }
        }

        for (name, msg) in invalid {
            let Some(entry) = self.resources.get_mut(&name) else {
                continue;
            };
            entry.status = ResourceStatus::Nacked;
            entry.failed = Some((msg.clone(), version_info.clone(), now));
            entry.timer = None;
            if entry.is_cached() && !policy.fail_on_data_errors {
                entry.update.ambient_error = Some(msg);
            } else {
                entry.update.data = None;
                entry.raw = None;
                entry.update.error = Some(ResourceError { reason: msg });
            }
            entry.publish();
        }

        // LDS and CDS responses are complete: a subscribed resource they do
        // not carry was deleted. Unless some resource failed before its name
        // was known, in which case it might have been that one.
        if self.kind.is_complete_state() && !nameless_failure {
            for (name, entry) in &mut self.resources {
                if seen.contains(name) {
                    continue;
                }
                apply_deletion(self.kind, name, entry, policy);
            }
        }

        if errors.is_empty() {
            self.version.clone_from(&version_info);
            None
        } else {
            // A46: the valid resources are in use, but the response is NACKed
            // as a whole and the accepted version stays where it was.
            Some(errors.join("; "))
        }
    }

    /// The does-not-exist timer fired for `name`.
    pub fn expire(&mut self, name: &str, transient: bool) {
        let kind = self.kind;
        if let Some(entry) = self.resources.get_mut(name) {
            entry.timer = None;
            if entry.is_cached() {
                return;
            }
            entry.status = if transient {
                ResourceStatus::Timeout
            } else {
                ResourceStatus::DoesNotExist
            };
            entry.update.error = Some(ResourceError {
                reason: format!(
                    "{} \"{name}\" {}",
                    kind.message_name(),
                    if transient {
                        "was not received from the xDS server in time"
                    } else {
                        "does not exist (not received from the xDS server)"
                    }
                ),
            });
            entry.publish();
        }
    }

    /// Names, sorted, for a request.
    pub fn names(&self) -> Vec<String> {
        self.resources.keys().cloned().collect()
    }
}

fn apply_deletion(
    kind: ResourceType,
    name: &str,
    entry: &mut ResourceEntry,
    policy: DataErrorPolicy,
) {
    if entry.status == ResourceStatus::DoesNotExist {
        return;
    }
    let what = kind.message_name();
    let msg = if entry.is_cached() {
        format!("{what} \"{name}\" was deleted by the xDS server")
    } else {
        format!(
            "{what} \"{name}\" does not exist (the xDS server's complete {kind} response does not carry it)"
        )
    };
    if entry.is_cached() {
        if policy.ignore_resource_deletion || !policy.fail_on_data_errors {
            // A88: keep using the cached resource; say so.
            if entry.update.ambient_error.as_deref() != Some(msg.as_str()) {
                tracing::warn!("{msg}; keeping the cached copy");
                entry.update.ambient_error = Some(msg);
                entry.publish();
            }
            return;
        }
        entry.update.data = None;
        entry.raw = None;
    }
    entry.status = ResourceStatus::DoesNotExist;
    entry.timer = None;
    entry.update.error = Some(ResourceError { reason: msg });
    entry.update.ambient_error = None;
    entry.publish();
}

/// Decodes one resource of `kind`, returning its name, value and raw bytes.
/// With `providers`, TLS contexts may only name certificate provider
/// instances the bootstrap defines (A29: otherwise the resource is NACKed).
pub(crate) fn decode_any(
    kind: ResourceType,
    any: Any,
    providers: Option<&BTreeSet<String>>,
) -> Result<(String, AnyResource, Any), DecodeError> {
    let (name, value) = match kind {
        ResourceType::Listener => resource::decode::<resource::Listener>(&any)
            .map(|(n, r)| (n, AnyResource::Listener(Arc::new(r))))?,
        ResourceType::RouteConfiguration => resource::decode::<resource::RouteConfig>(&any)
            .map(|(n, r)| (n, AnyResource::RouteConfig(Arc::new(r))))?,
        ResourceType::Cluster => resource::decode::<resource::Cluster>(&any)
            .map(|(n, r)| (n, AnyResource::Cluster(Arc::new(r))))?,
        ResourceType::ClusterLoadAssignment => {
            resource::decode::<resource::ClusterLoadAssignment>(&any)
                .map(|(n, r)| (n, AnyResource::Endpoints(Arc::new(r))))?
        }
    };
    if let Some(Err(error)) = providers.map(|known| check_providers(&value, known)) {
        return Err(DecodeError::Invalid { kind, name, error });
    }
    Ok((name, value, any))
}

/// A29: every certificate provider instance a TLS context names must be in
/// the bootstrap's `certificate_providers`.
fn check_providers(value: &AnyResource, known: &BTreeSet<String>) -> Result<(), FieldError> {
    let unknown = |names: Vec<&str>, field: String| -> Result<(), FieldError> {
        match names.into_iter().find(|n| !known.contains(*n)) {
            Some(n) => Err(FieldError::new(
                field,
                format!(
                    "certificate provider instance \"{n}\" is not in the bootstrap's certificate_providers"
                ),
            )),
            None => Ok(()),
        }
    };
    match value {
        AnyResource::Cluster(c) => match &c.tls {
            Some(tls) => unknown(tls.provider_names(), "transport_socket.typed_config".into()),
            None => Ok(()),
        },
        AnyResource::Listener(l) => match l.server() {
            Some(server) => {
                for (i, chain) in server.chains().enumerate() {
                    if let Some(tls) = &chain.tls {
                        unknown(
                            tls.provider_names(),
                            format!("filter_chains[{i}].transport_socket.typed_config"),
                        )?;
                    }
                }
                Ok(())
            }
            None => Ok(()),
        },
        _ => Ok(()),
    }
}
