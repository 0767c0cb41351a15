//! The seam between Istio config and xDS: load YAML into the validated
//! model ([`crate::config`]) and translate it ([`crate::translate`]). The
//! control plane calls only these functions, so the rest of it does not
//! depend on how config is modelled.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use super::ConfigError;
use crate::config::{self, Config, ConfigErrors};
use crate::snapshot::XdsSnapshot;
use crate::translate::{self, HealthOverrides};

/// A loaded, validated config.
pub(crate) type Model = Config;

/// A model and the warnings found loading it.
pub(crate) struct Loaded {
    pub model: Model,
    pub warnings: Vec<String>,
}

fn loaded(l: config::Loaded) -> Loaded {
    Loaded {
        model: l.config,
        warnings: l.warnings.iter().map(ToString::to_string).collect(),
    }
}

fn error(e: ConfigErrors) -> ConfigError {
    ConfigError::with(
        e.errors.iter().map(ToString::to_string).collect(),
        e.warnings.iter().map(ToString::to_string).collect(),
    )
}

/// Loads a file or a directory of YAML files.
pub(crate) fn load_path(path: &Path) -> Result<Loaded, ConfigError> {
    config::load(path).map(loaded).map_err(error)
}

/// Loads YAML text; `name` stands for the file name in diagnostics.
pub(crate) fn load_yaml(name: &str, yaml: &str) -> Result<Loaded, ConfigError> {
    Config::from_yaml_str(name, yaml).map(loaded).map_err(error)
}

/// Translates a model into a snapshot (its version is set by the caller),
/// endpoints in `unhealthy` marked UNHEALTHY, and the warnings
/// translation found.
pub(crate) fn translate(
    model: &Model,
    unhealthy: &BTreeSet<SocketAddr>,
) -> (XdsSnapshot, Vec<String>) {
    let health = HealthOverrides {
        unhealthy: unhealthy.clone(),
    };
    let t = translate::translate(model, &health);
    (t.snapshot, t.warnings)
}
