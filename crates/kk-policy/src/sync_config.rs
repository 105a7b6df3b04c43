//! The Go reference's sync config (`--sync-config-file`, YAML, hyphenated keys).
//!
//! It is parsed and validated at start-up so that a broken file stops the service with a clear
//! message; acting on it (namespaces, RoleBindings, role mappings) is separate work.
//!
//! ```yaml
//! data-types-to-sync: [projects, role_assignments]
//! namespace-format: "%d-%n-%i"
//! projects-blacklist: ["<project id>"]
//! projects-name-blacklist: ["admin"]
//! role-mappings:
//!   - keystone-role: member
//!     username: myuser
//!     groups: ["mygroup"]
//! ```

use serde::Deserialize;

/// The sync configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SyncConfig {
    /// What to synchronise: `projects` and/or `role_assignments`.
    #[serde(default)]
    pub data_types_to_sync: Vec<String>,
    /// Namespace name pattern: `%i` project id (required), `%n` project name, `%d` domain id.
    #[serde(default = "default_namespace_format")]
    pub namespace_format: String,
    /// Project ids never synchronised.
    #[serde(default)]
    pub projects_blacklist: Vec<String>,
    /// Project names never synchronised.
    #[serde(default)]
    pub projects_name_blacklist: Vec<String>,
    /// Extra groups (and optionally another user name) for holders of a Keystone role.
    #[serde(default)]
    pub role_mappings: Vec<RoleMapping>,
}

/// One entry of `role-mappings`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RoleMapping {
    /// The Keystone role that triggers the mapping.
    pub keystone_role: String,
    /// Replaces the user name when set.
    #[serde(default)]
    pub username: Option<String>,
    /// Appended to the user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_namespace_format() -> String {
    "%i".into()
}

/// Parses and validates a sync config. Errors name the key.
pub fn parse(yaml: &str) -> Result<SyncConfig, String> {
    let cfg: SyncConfig = if yaml.trim().is_empty() {
        serde_yaml_ng::from_str("{}").map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?
    };
    for (i, t) in cfg.data_types_to_sync.iter().enumerate() {
        if t != "projects" && t != "role_assignments" {
            return Err(format!(
                "`data-types-to-sync[{i}]`: unknown data type {t:?}, expected \"projects\" or \"role_assignments\""
            ));
        }
    }
    if !cfg.namespace_format.contains("%i") {
        return Err(format!(
            "`namespace-format` {:?} must contain %i (the project id)",
            cfg.namespace_format
        ));
    }
    let sample = cfg
        .namespace_format
        .replace("%i", "aa")
        .replace("%n", "aa")
        .replace("%d", "aa");
    let b = sample.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_alphanumeric();
    let ok = b.len() >= 2
        && edge_ok(b[0])
        && edge_ok(b[b.len() - 1])
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return Err(format!(
            "`namespace-format` {:?} does not give a valid namespace name (letters, digits, '_', '.', '-')",
            cfg.namespace_format
        ));
    }
    for (i, m) in cfg.role_mappings.iter().enumerate() {
        if m.keystone_role.trim().is_empty() {
            return Err(format!("`role-mappings[{i}].keystone-role` is empty"));
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_example_parses() {
        let c = parse(
            "data-types-to-sync: [projects, role_assignments]\nnamespace-format: \"prefix-%d-%n-%i-suffix\"\nprojects-name-blacklist: [admin]\nrole-mappings:\n  - keystone-role: member\n    groups: [mygroup]\n",
        )
        .unwrap();
        assert_eq!(c.role_mappings[0].groups, ["mygroup"]);
        assert_eq!(parse("").unwrap().namespace_format, "%i");
    }

    #[test]
    fn bad_files_name_the_key() {
        assert!(
            parse("data-types-to-sync: [users]")
                .unwrap_err()
                .contains("data-types-to-sync[0]")
        );
        assert!(
            parse("namespace-format: \"%n\"")
                .unwrap_err()
                .contains("%i")
        );
        assert!(
            parse("namespace-format: \"-%i\"")
                .unwrap_err()
                .contains("namespace-format")
        );
        assert!(
            parse("namespace_format: x")
                .unwrap_err()
                .contains("unknown field `namespace_format`")
        );
        assert!(
            parse("role-mappings: [{keystone-role: ''}]")
                .unwrap_err()
                .contains("role-mappings[0]")
        );
        assert!(parse("[").is_err());
    }
}
