//! Version 1 rules: `resource`, `nonresource` and `match`.

use super::Identity;
use super::pattern::NameSet;

/// A compiled v1 `resource` object.
#[derive(Debug, Clone)]
pub(super) struct ResourceSpec {
    pub(super) verbs: NameSet,
    pub(super) resources: NameSet,
    /// JSON key `version`; despite the name it is compared with the API group.
    pub(super) group: String,
    pub(super) namespace: String,
}

impl ResourceSpec {
    /// Go's `resourceMatches`, without the `match` part.
    pub(super) fn allows(
        &self,
        verb: &str,
        namespace: &str,
        group: &str,
        resource: &str,
        subresource: &str,
    ) -> bool {
        if self.group != "*" && self.group != group {
            return false;
        }
        if self.namespace != "*" && self.namespace != namespace {
            return false;
        }
        let resource_ok = if subresource.is_empty() {
            self.resources.allows(resource)
        } else {
            // `*`, `<resource>/*` or `<resource>/<subresource>`; a plain `<resource>` does not
            // cover its sub-resources.
            self.resources.has_any()
                || self.resources.names().iter().any(|item| {
                    item.strip_prefix(resource)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|sub| sub == "*" || sub == subresource)
                })
        };
        resource_ok && self.verbs.allows(verb)
    }
}

/// A compiled v1 `nonresource` object.
#[derive(Debug, Clone)]
pub(super) struct NonResourceSpec {
    pub(super) verbs: NameSet,
    /// `None` when the rule has no `path`: Go skips such an object at every request ("path
    /// should be set. skipping"), so it never allows anything.
    pub(super) path: Option<String>,
}

impl NonResourceSpec {
    /// Go's `nonResourceMatches`, without the `match` part.
    pub(super) fn allows(&self, verb: &str, path: &str) -> bool {
        // An empty verb in the list disables the whole object.
        let Some(own) = &self.path else {
            return false;
        };
        if self.verbs.contains("") || !self.verbs.allows(verb) {
            return false;
        }
        own == "*"
            || own == path
            || (own.ends_with('*') && path.starts_with(own.trim_end_matches('*')))
    }
}

/// The subject a `match` entry tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MatchType {
    User,
    Group,
    Project,
    Role,
}

impl MatchType {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "user" => Some(MatchType::User),
            "group" => Some(MatchType::Group),
            "project" => Some(MatchType::Project),
            "role" => Some(MatchType::Role),
            _ => None,
        }
    }
}

/// A compiled `match` list: every entry must hold (AND), any value of an entry suffices (OR).
#[derive(Debug, Clone, Default)]
pub(super) struct Matchers {
    /// Some entry has an unknown `type`: Go then rejects the rule for every request.
    pub(super) never: bool,
    pub(super) entries: Vec<(MatchType, NameSet)>,
}

impl Matchers {
    /// Go's `match`.
    pub(super) fn admit(&self, id: &Identity<'_>) -> bool {
        if self.never {
            return false;
        }
        self.entries.iter().all(|(kind, values)| {
            if values.has_any() {
                return true;
            }
            match kind {
                MatchType::User => values.contains(id.user) || values.contains(id.uid),
                MatchType::Group => id.groups.iter().any(|g| values.contains(g)),
                MatchType::Project => id
                    .project_ids
                    .iter()
                    .chain(id.project_names)
                    .any(|p| values.contains(p)),
                MatchType::Role => id.roles.iter().any(|r| values.contains(r)),
            }
        })
    }
}
