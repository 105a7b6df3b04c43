//! The sync config file (YAML): `sync_config::parse` and `parse_strict`, and the role
//! mappings of a parsed file applied to a user holding the roles it names.
//!
//! Properties: strict mode accepts exactly what the lenient parse accepts without warnings,
//! with the same result; an accepted file syncs known data types only and its namespace
//! format holds `%i`; applying the role mappings keeps the user's groups.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kk_policy::sync_config::{apply_role_mappings, parse, parse_strict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lenient = parse(text);
    let strict = parse_strict(text);
    match (&lenient, &strict) {
        (Ok(l), Ok(s)) => {
            assert!(l.warnings.is_empty(), "{:?}", l.warnings);
            assert_eq!(&l.config, s);
        }
        (Ok(l), Err(_)) => assert!(!l.warnings.is_empty()),
        (Err(_), Ok(_)) => panic!("strict accepted what the lenient parse refused"),
        (Err(a), Err(b)) => assert_eq!(a, b),
    }
    let Ok(parsed) = lenient else {
        return;
    };
    let config = parsed.config;
    assert!(config.namespace_format.contains("%i"));
    assert!(
        config
            .data_types_to_sync
            .iter()
            .all(|t| t == "projects" || t == "role_assignments")
    );
    let roles: Vec<String> = config
        .role_mappings
        .iter()
        .map(|m| m.keystone_role.clone())
        .collect();
    let mut username = "alice".to_string();
    let mut groups = vec!["devs".to_string(), "p1".to_string()];
    apply_role_mappings(&config.role_mappings, &roles, &mut username, &mut groups);
    assert!(groups.starts_with(&["devs".to_string(), "p1".to_string()]));
});
