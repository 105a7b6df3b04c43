//! kk-sync: Keystone projects become namespaces and role assignments RoleBindings (the sync
//! file's `data-types-to-sync`), off the request path.
//!
//! | module | concern |
//! |---|---|
//! | [`plan`] | the pure planner: project, holders, rules, observed objects → operations |
//!
//! See docs/sync.md.

#![forbid(unsafe_code)]

pub mod plan;
