//! Version 2 rules: `users`, `resource_permissions` and `nonresource_permissions`.

use super::Identity;
use super::pattern::{NameSet, Pattern};

/// A compiled `users` object.
#[derive(Debug, Clone)]
pub(super) struct Users {
    /// All of them must be held.
    pub(super) roles: Vec<String>,
    /// At least one must be the request's project, by name or by ID.
    pub(super) projects: Vec<String>,
}

impl Users {
    pub(super) fn admit(&self, id: &Identity<'_>) -> bool {
        self.roles.iter().all(|r| id.roles.contains(r))
            && self
                .projects
                .iter()
                .any(|p| id.project_names.contains(p) || id.project_ids.contains(p))
    }
}

/// One `"<namespace>/<resource>": [verbs]` entry of `resource_permissions`.
#[derive(Debug, Clone)]
pub(super) struct ResourceEntry {
    /// The key as written, for the decision reason.
    pub(super) key: String,
    pub(super) namespace: Pattern,
    pub(super) resource: Pattern,
    /// Lower-cased.
    pub(super) verbs: NameSet,
}

impl ResourceEntry {
    /// Go's `resourcePermissionAllowed` for one key. API group, sub-resource and name are not
    /// looked at.
    pub(super) fn allows(&self, namespace: &str, resource: &str, verb: &str) -> bool {
        // Cluster-scoped requests only consider entries whose namespace part is exactly `*`.
        if namespace.is_empty() && self.namespace.raw() != "*" {
            return false;
        }
        self.verbs.allows(verb)
            && self.namespace.matches(namespace)
            && self.resource.matches(resource)
    }
}

/// One `"<path>": [verbs]` entry of `nonresource_permissions`.
#[derive(Debug, Clone)]
pub(super) struct NonResourceEntry {
    /// Compared for exact equality with the request path.
    pub(super) path: String,
    /// Not lower-cased (as in Go).
    pub(super) verbs: NameSet,
}

impl NonResourceEntry {
    pub(super) fn allows(&self, path: &str, verb: &str) -> bool {
        self.path == path && self.verbs.allows(verb)
    }
}
