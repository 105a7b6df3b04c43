//! The Go reference's sync config (`--sync-config-file`, YAML, hyphenated keys).
//!
//! It is parsed and validated at start-up so that a broken file stops the service with a clear
//! message. What Go accepts loads here too, with a warning that names the key: unknown keys
//! (Go's YAML decoding ignores them), an empty `namespace-format` (Go then skips its checks;
//! here the default `%i` is used) and a role mapping with an empty `keystone-role` (it never
//! applies, in Go too). Strict mode ([`parse_strict`]) refuses those instead.
//!
//! Role mappings are applied to every authenticated user by [`apply_role_mappings`], exactly as
//! Go's `syncRoles` does.
//!
//! One key is this service's own: `role-mappings[].cluster-role` names the ClusterRole that the
//! RoleBindings of holders of `keystone-role` refer to (without it, the ClusterRole named like
//! the Keystone role, as Go; `""`: no RoleBinding for that role). Go's YAML decoding ignores
//! it, so such a file still loads there.
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
//!     cluster-role: tenant-editor
//! ```

use serde::Deserialize;

/// The sync configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
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
#[serde(rename_all = "kebab-case")]
pub struct RoleMapping {
    /// The Keystone role that triggers the mapping (empty: never applies).
    #[serde(default)]
    pub keystone_role: String,
    /// Replaces the user name when set.
    #[serde(default)]
    pub username: Option<String>,
    /// Appended to the user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The ClusterRole of the RoleBindings synced for holders of `keystone-role` (this
    /// service's key; Go ignores it): `None` the ClusterRole named like the role (as Go),
    /// `Some("")` none.
    #[serde(default)]
    pub cluster_role: Option<String>,
}

fn default_namespace_format() -> String {
    "%i".into()
}

const TOP_KEYS: [&str; 5] = [
    "data-types-to-sync",
    "namespace-format",
    "projects-blacklist",
    "projects-name-blacklist",
    "role-mappings",
];
const MAPPING_KEYS: [&str; 4] = ["keystone-role", "username", "groups", "cluster-role"];

/// A sync config that loaded, with what Go accepts but this service warns about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The configuration in force.
    pub config: SyncConfig,
    /// Human-readable warnings, each naming the key.
    pub warnings: Vec<String>,
}

/// Parses and validates a sync config as Go does: what Go accepts loads, with warnings.
/// Errors (what Go refuses too) name the key.
pub fn parse(yaml: &str) -> Result<Parsed, String> {
    let (config, leniencies) = decode(yaml)?;
    Ok(Parsed {
        config,
        warnings: leniencies,
    })
}

/// Like [`parse`], but refuses what [`parse`] only warns about (the `sync.strict` setting).
pub fn parse_strict(yaml: &str) -> Result<SyncConfig, String> {
    let (config, leniencies) = decode(yaml)?;
    match leniencies.into_iter().next() {
        Some(first) => Err(format!("{first} (refused: strict mode)")),
        None => Ok(config),
    }
}

fn decode(yaml: &str) -> Result<(SyncConfig, Vec<String>), String> {
    let yaml = if yaml.trim().is_empty() { "{}" } else { yaml };
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    // Decoded from the text (not the value) so that errors carry the key path and line.
    let mut cfg: SyncConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    if let Some(map) = value.as_mapping() {
        unknown_keys(map, &TOP_KEYS, "", &mut warnings);
        if let Some(list) = map.get("role-mappings").and_then(|v| v.as_sequence()) {
            for (i, m) in list.iter().enumerate() {
                if let Some(m) = m.as_mapping() {
                    unknown_keys(
                        m,
                        &MAPPING_KEYS,
                        &format!("role-mappings[{i}]."),
                        &mut warnings,
                    );
                }
            }
        }
    }
    for (i, t) in cfg.data_types_to_sync.iter().enumerate() {
        if t != "projects" && t != "role_assignments" {
            return Err(format!(
                "`data-types-to-sync[{i}]`: unknown data type {t:?}, expected \"projects\" or \"role_assignments\""
            ));
        }
    }
    if cfg.namespace_format.is_empty() {
        warnings.push(
            "`namespace-format` is empty: Go then skips its checks and names namespaces \"\"; \
             the default \"%i\" (the project id) is used"
                .into(),
        );
        cfg.namespace_format = default_namespace_format();
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
        if let Some(c) = &m.cluster_role
            && (c == "." || c == ".." || c.contains(['/', '%']) || c.trim() != c)
        {
            return Err(format!(
                "`role-mappings[{i}].cluster-role` {c:?} is not a ClusterRole name"
            ));
        }
        if m.keystone_role.trim().is_empty() {
            warnings.push(format!(
                "`role-mappings[{i}].keystone-role` is empty, so this mapping never applies (as in Go)"
            ));
        }
    }
    Ok((cfg, warnings))
}

fn unknown_keys(
    map: &serde_yaml_ng::Mapping,
    known: &[&str],
    prefix: &str,
    warnings: &mut Vec<String>,
) {
    for key in map.keys() {
        let shown = match key.as_str() {
            Some(k) if known.contains(&k) => continue,
            Some(k) => k.to_string(),
            None => format!("{key:?}"),
        };
        let hint = known
            .iter()
            .find(|k| {
                let folded = shown.replace('_', "-").to_ascii_lowercase();
                **k == folded || **k == format!("{folded}s")
            })
            .map(|k| format!(" (did you mean `{prefix}{k}`?)"))
            .unwrap_or_default();
        warnings.push(format!("unknown key `{prefix}{shown}` is ignored{hint}"));
    }
}

/// The ClusterRole that RoleBindings for holders of Keystone role `role` refer to: the
/// `cluster-role` of the last mapping of `role` that sets one, else `role` itself (as Go);
/// `None` when that is `""` (no RoleBinding for the role).
pub fn cluster_role_for<'a>(mappings: &'a [RoleMapping], role: &'a str) -> Option<&'a str> {
    let chosen = mappings
        .iter()
        .rev()
        .filter(|m| m.keystone_role == role)
        .find_map(|m| m.cluster_role.as_deref())
        .unwrap_or(role);
    (!chosen.is_empty()).then_some(chosen)
}

/// The Kubernetes user after the role mappings, exactly as Go's `syncRoles`: for each mapping
/// (in order) whose non-empty `keystone-role` is among `roles`, its `groups` are appended and
/// its `username`, when set, replaces the user name (so a later mapping wins).
pub fn apply_role_mappings(
    mappings: &[RoleMapping],
    roles: &[String],
    username: &mut String,
    groups: &mut Vec<String>,
) {
    for m in mappings {
        if m.keystone_role.is_empty() || !roles.contains(&m.keystone_role) {
            continue;
        }
        groups.extend(m.groups.iter().cloned());
        if let Some(u) = m.username.as_ref().filter(|u| !u.is_empty()) {
            username.clone_from(u);
        }
    }
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
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.config.role_mappings[0].groups, ["mygroup"]);
        assert_eq!(parse("").unwrap().config.namespace_format, "%i");
    }

    #[test]
    fn bad_files_name_the_key() {
        for (yaml, needle) in [
            ("data-types-to-sync: [users]", "data-types-to-sync[0]"),
            ("namespace-format: \"%n\"", "%i"),
            ("namespace-format: \"-%i\"", "namespace-format"),
            ("role-mappings: {keystone-role: x}", "role-mappings"),
            ("[", "line 2 column 1"),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml}: {e}");
            assert!(parse_strict(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn what_go_accepts_loads_with_a_warning_naming_the_key_and_strict_refuses_it() {
        for (yaml, needle) in [
            (
                "namespace_format: x",
                "unknown key `namespace_format` is ignored (did you mean `namespace-format`?)",
            ),
            (
                "extra: 1\nnamespace-format: \"%i\"",
                "unknown key `extra` is ignored",
            ),
            (
                "role-mappings: [{keystone-role: r, group: [g]}]",
                "unknown key `role-mappings[0].group` is ignored (did you mean `role-mappings[0].groups`?)",
            ),
            ("namespace-format: \"\"", "`namespace-format` is empty"),
            (
                "role-mappings: [{keystone-role: ''}]",
                "`role-mappings[0].keystone-role` is empty",
            ),
            (
                "role-mappings: [{groups: [g]}]",
                "`role-mappings[0].keystone-role` is empty",
            ),
        ] {
            let p = parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(p.warnings.len(), 1, "{yaml}: {:?}", p.warnings);
            assert!(p.warnings[0].contains(needle), "{yaml}: {:?}", p.warnings);
            let e = parse_strict(yaml).unwrap_err();
            assert!(e.contains(needle) && e.contains("strict"), "{yaml}: {e}");
        }
        assert_eq!(
            parse("namespace-format: \"\"")
                .unwrap()
                .config
                .namespace_format,
            "%i"
        );
    }

    fn mapping(role: &str, username: Option<&str>, groups: &[&str]) -> RoleMapping {
        RoleMapping {
            keystone_role: role.into(),
            username: username.map(Into::into),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            cluster_role: None,
        }
    }

    #[test]
    fn cluster_roles_of_keystone_roles() {
        let c = parse(
            "role-mappings:\n  - {keystone-role: member, cluster-role: tenant-editor}\n  - {keystone-role: member, groups: [g]}\n  - {keystone-role: admin, cluster-role: ''}\n  - {keystone-role: reader, cluster-role: first}\n  - {keystone-role: reader, cluster-role: second}\n",
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "a known key: {:?}", c.warnings);
        let m = &c.config.role_mappings;
        assert_eq!(cluster_role_for(m, "member"), Some("tenant-editor"));
        assert_eq!(
            cluster_role_for(m, "reader"),
            Some("second"),
            "the last one wins"
        );
        assert_eq!(cluster_role_for(m, "admin"), None, "\"\": no binding");
        assert_eq!(
            cluster_role_for(m, "k8s-viewer"),
            Some("k8s-viewer"),
            "as Go"
        );
        for bad in ["a/b", "..", "x%y", " x"] {
            let e = parse(&format!(
                "role-mappings: [{{keystone-role: r, cluster-role: {bad:?}}}]"
            ))
            .unwrap_err();
            assert!(e.contains("role-mappings[0].cluster-role"), "{bad}: {e}");
        }
    }

    #[test]
    fn role_mappings_apply_as_go_sync_roles() {
        // Go's TestSyncRoles: a user holding "member" gets "mygroup".
        let maps = [
            mapping("member", None, &["mygroup"]),
            mapping("admin", Some("the-admin"), &["admins", "ops"]),
            mapping("", Some("nobody"), &["never"]),
            mapping("reader", Some("second"), &[]),
        ];
        let (mut user, mut groups) = (
            "alice".to_string(),
            vec!["g1".to_string(), "p1".to_string()],
        );
        apply_role_mappings(&maps, &["member".into()], &mut user, &mut groups);
        assert_eq!(
            (user.as_str(), groups.as_slice()),
            (
                "alice",
                ["g1", "p1", "mygroup"].map(String::from).as_slice()
            )
        );

        let (mut user, mut groups) = ("alice".to_string(), vec![]);
        let roles = ["reader".into(), "admin".into(), "member".into()];
        apply_role_mappings(&maps, &roles, &mut user, &mut groups);
        // In mapping order; the later mapping's username wins.
        assert_eq!(user, "second");
        assert_eq!(groups, ["mygroup", "admins", "ops"]);

        let (mut user, mut groups) = ("alice".to_string(), vec![]);
        apply_role_mappings(
            &maps,
            &["Member".into(), String::new()],
            &mut user,
            &mut groups,
        );
        assert_eq!(
            (user.as_str(), groups.len()),
            ("alice", 0),
            "case-sensitive; empty role never matches"
        );
    }
}
