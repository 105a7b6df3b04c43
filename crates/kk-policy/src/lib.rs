//! kk-policy: the authorization policy engine and (in [`sync_config`]) the Go reference's sync
//! config, the two files the service and the charm validate.
//!
//! The policy engine is bit-compatible with the Go `k8s-keystone-auth`
//! (`pkg/identity/keystone/authorizer.go` in kubernetes/cloud-provider-openstack).
//!
//! A policy is a JSON array of rules, read from `--keystone-policy-file` or from the `policies`
//! key of the policy ConfigMap. A rule object may use keys of two generations, and both may be
//! mixed in one array and even in one object.
//!
//! # Version 2 (recommended): `users`, `resource_permissions`, `nonresource_permissions`
//!
//! ```json
//! [{ "users": {"roles": ["member"], "projects": ["demo", "423d41d3a02f4b77b4a9bbfbc3a1b3c6"]},
//!    "resource_permissions": {"!kube-system/!['secrets', 'clusterroles']": ["*"],
//!                             "*/['namespaces', 'nodes']": ["get", "list"]},
//!    "nonresource_permissions": {"/healthz": ["get"]} }]
//! ```
//!
//! * `users`: the request must hold **all** `roles` and be scoped to **one of** `projects`
//!   (by name or ID). Without `projects` the rule never matches; other keys (`domains`) are
//!   ignored. A rule without `users` applies to every Keystone user.
//! * `resource_permissions`: `"<namespace>/<resource>"` → verbs (`*` = all verbs). Each part is
//!   trimmed and lower-cased and is one of `*`, `name`, `!name`, `['a', 'b']`, `!['a', 'b']`.
//!   Keys with other than exactly one `/` are ignored, so sub-resources cannot be written, and a
//!   grant on `pods` covers `pods/exec` too. API group and object name are ignored. Requests for
//!   cluster-scoped resources (no namespace) only match keys whose namespace part is `*`.
//! * `nonresource_permissions`: exact path → verbs.
//!
//! # Version 1: `resource` / `nonresource` with `match`
//!
//! ```json
//! [{ "resource": {"verbs": ["create"], "resources": ["pods/exec"], "version": "*",
//!                 "namespace": "utility"},
//!    "match": [{"type": "role", "values": ["utility_exec"]}] }]
//! ```
//!
//! * `resource`: `verbs`, `resources` (`*`, `res`, `res/*`, `res/sub`), `version` — which is
//!   compared with the **API group** (`""` core, `*` any) — and `namespace` (`*` also matches
//!   cluster-scoped requests). Both `version` and `namespace` are required.
//! * `nonresource`: `verbs` and one `path` (`*`, exact, or a `prefix*`).
//! * `match`: every entry must hold; an entry holds when the request's `user` (name or uid),
//!   any `group`, `project` (name or ID) or any `role` is among `values` (`*` = anything). An
//!   unknown `type` makes the rule never match.
//!
//! # Evaluation
//!
//! Only identities this service authenticated from Keystone can match a rule: the request's
//! `extra` must hold exactly one non-empty Keystone project id
//! (`alpha.kubernetes.io/identity/project/id`, which this service's TokenReview answers always
//! set) and no `authentication.kubernetes.io/credential-id`, which kube-apiserver adds for
//! ServiceAccount tokens (`JTI=...`) and X.509 client certificates (`X509SHA256=...`) but never for
//! webhook-authenticated users. Everything else gets "no opinion" with the reason
//! "not a Keystone identity". (The Go reference only checks that `extra` is present, so its rules
//! without `users` also grant to ServiceAccounts and certificate users: a deliberate difference.)
//!
//! A Keystone identity whose `extra` carries
//! [`alpha.kubernetes.io/identity/access-rules`](kk_core::k8s::extra_keys::ACCESS_RULES) (the
//! token came from an application credential with access rules) is first checked against them
//! ([`access_rules`]): a request they do not allow gets an explicit deny (`denied: true`), and one
//! they allow goes on to the rules below.
//!
//! Rules are tried in order
//! and the first one that allows wins; a rule's version 2 permissions take precedence over its
//! version 1 object of the same kind. Nothing matching means `allowed: false` ("no opinion" for
//! the API server).

pub mod access_rules;
mod json;
mod parse;
mod pattern;
pub mod sync_config;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use kk_core::k8s::extra_keys::{
    ACCESS_RULES as EXTRA_ACCESS_RULES, CREDENTIAL_ID as EXTRA_CREDENTIAL_ID,
    PROJECT_ID as EXTRA_PROJECT_ID, PROJECT_NAME as EXTRA_PROJECT_NAME, ROLES as EXTRA_ROLES,
};

/// Reason of a denial caused by a request whose subject this service did not authenticate.
const REASON_NO_IDENTITY: &str = "not a Keystone identity";
/// Reason of a denial because no rule allowed the request.
const REASON_NO_MATCH: &str = "no policy rule matched";

/// A parsed, pre-compiled authorization policy. Cheap to evaluate, immutable, `Send + Sync`.
#[derive(Clone)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not well-formed JSON (or nests deeper than 128 levels).
    #[error("policy is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong, e.g. "expected value".
        message: String,
    },
    /// The document is valid JSON but not an array.
    #[error("policy must be a JSON array of rules, found {found}")]
    NotAnArray {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// An element of the array is not an object (`null` included: Go would crash on it).
    #[error("rule {index}: must be a JSON object, found {found}")]
    RuleNotAnObject {
        /// 0-based position of the rule in the array.
        index: usize,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A field has the wrong JSON type (Go rejects the whole document in that case too).
    #[error("rule {index}: `{field}` must be {expected}, found {found}")]
    WrongType {
        /// 0-based position of the rule in the array.
        index: usize,
        /// Path of the field inside the rule, e.g. `resource.verbs[1]`.
        field: String,
        /// The expected JSON type.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A field that Go dereferences unconditionally is missing or `null` (or, in strict mode,
    /// one whose absence makes Go skip the rule's object).
    #[error("rule {index}: `{field}` is missing")]
    MissingField {
        /// 0-based position of the rule in the array.
        index: usize,
        /// Path of the field inside the rule, e.g. `resource.namespace`.
        field: String,
    },
}

/// A successfully parsed policy with the problems that did not prevent loading it.
#[derive(Debug)]
pub struct ParsedPolicy {
    /// The compiled policy.
    pub policy: Policy,
    /// Human-readable warnings, each naming the rule index (e.g. ignored keys, rules that can
    /// never match). Worth logging at startup and on reload.
    pub warnings: Vec<String>,
    /// Parts of rules that can never allow anything because a field Go checks at each
    /// request is missing (a `nonresource` without `path`). Loaded as Go loads them; see
    /// [`ParsedPolicy::strict`] to refuse them instead.
    pub skipped: Vec<SkippedPart>,
}

/// A part of a rule that never allows anything because Go skips it at every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPart {
    /// 0-based position of the rule in the array.
    pub index: usize,
    /// The missing field, e.g. `nonresource.path`.
    pub field: String,
}

impl ParsedPolicy {
    /// Strict mode: refuses a policy with a part that can never match, naming the first one.
    pub fn strict(self) -> Result<ParsedPolicy, PolicyError> {
        match self.skipped.first() {
            Some(s) => Err(PolicyError::MissingField {
                index: s.index,
                field: s.field.clone(),
            }),
            None => Ok(self),
        }
    }
}

/// The subject and the action of a SubjectAccessReview.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `spec.user`.
    pub user: &'a str,
    /// `spec.uid` (the Go version never reads it, so there it is always empty).
    pub uid: &'a str,
    /// `spec.groups` (v1) / `spec.group` (v1beta1).
    pub groups: &'a [String],
    /// `None` when the SubjectAccessReview had no `extra` at all (then: deny, "no Keystone
    /// identity in the request", as Go does).
    pub extra: Option<&'a BTreeMap<String, Vec<String>>>,
    /// What is being accessed.
    pub attributes: Attributes<'a>,
}

/// `spec.resourceAttributes` or `spec.nonResourceAttributes`; absent fields are `""`.
#[derive(Debug, Clone, Copy)]
pub enum Attributes<'a> {
    /// A request for an API object.
    Resource {
        /// e.g. `get`, `list`, `create`.
        verb: &'a str,
        /// `""` for cluster-scoped resources.
        namespace: &'a str,
        /// API group, `""` for the core group.
        group: &'a str,
        /// API version (not used by either policy format).
        version: &'a str,
        /// e.g. `pods`.
        resource: &'a str,
        /// e.g. `exec`, `""` for none.
        subresource: &'a str,
        /// Object name (not used by either policy format).
        name: &'a str,
    },
    /// A request for a non-resource URL such as `/healthz`.
    NonResource {
        /// e.g. `get`.
        verb: &'a str,
        /// The URL path.
        path: &'a str,
    },
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether a rule allowed the request.
    pub allowed: bool,
    /// An explicit deny (kube-apiserver asks no further authorizer): only for what an
    /// application credential's access rules do not allow. `allowed: false` without it is
    /// "no opinion".
    pub denied: bool,
    /// The allowing rule, e.g. `allowed by policy rule 0 (resource_permissions "*/pods")`, or
    /// why nothing allowed the request.
    pub reason: String,
}

impl Decision {
    fn deny(reason: &str) -> Self {
        Decision {
            allowed: false,
            denied: false,
            reason: reason.to_owned(),
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    /// Position in the policy array.
    index: usize,
    users: Option<v2::Users>,
    resource: Option<ResourceGrant>,
    nonresource: Option<NonResourceGrant>,
    /// Only used with version 1 grants.
    matchers: v1::Matchers,
}

/// What a rule grants for resource requests.
#[derive(Debug, Clone)]
enum ResourceGrant {
    V1(v1::ResourceSpec),
    V2(Vec<v2::ResourceEntry>),
}

/// What a rule grants for non-resource requests.
#[derive(Debug, Clone)]
enum NonResourceGrant {
    V1(v1::NonResourceSpec),
    V2(Vec<v2::NonResourceEntry>),
}

/// The request's subject, with the Keystone attributes pulled out of `extra`.
struct Identity<'a> {
    user: &'a str,
    uid: &'a str,
    groups: &'a [String],
    roles: &'a [String],
    project_ids: &'a [String],
    project_names: &'a [String],
}

impl Policy {
    /// Parses a policy document (the JSON array). Pure: no I/O, no logging.
    ///
    /// Accepts every document the Go version accepts and uses; anything Go silently ignores is
    /// reported in [`ParsedPolicy::warnings`]; a `nonresource` without `path`, which Go skips at
    /// every request, is loaded as never allowing anything and listed in
    /// [`ParsedPolicy::skipped`]. Rejects documents Go rejects (invalid JSON, wrong JSON types)
    /// or would crash on (`null` rules, a version 1 `resource` without `namespace` or
    /// `version`).
    pub fn parse(json: &str) -> Result<ParsedPolicy, PolicyError> {
        let parse::Parsed {
            rules,
            warnings,
            skipped,
        } = parse::parse(json)?;
        Ok(ParsedPolicy {
            policy: Policy { rules },
            warnings,
            skipped,
        })
    }

    /// A policy without rules: nothing is ever allowed.
    pub fn empty() -> Policy {
        Policy { rules: Vec::new() }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides a SubjectAccessReview. Pure and allocation-light.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let Some(extra) = req.extra.filter(|e| is_keystone_identity(e)) else {
            return Decision::deny(REASON_NO_IDENTITY);
        };
        if let Some(rules) = extra.get(EXTRA_ACCESS_RULES) {
            let request = access_rules::http_request(&req.attributes);
            if !access_rules::allows(rules, &request) {
                return Decision {
                    allowed: false,
                    denied: true,
                    reason: format!(
                        "{request}: the application credential's access rules do not allow it"
                    ),
                };
            }
        }
        let field = |key: &str| extra.get(key).map_or(&[][..], Vec::as_slice);
        let id = Identity {
            user: req.user,
            uid: req.uid,
            groups: req.groups,
            roles: field(EXTRA_ROLES),
            project_ids: field(EXTRA_PROJECT_ID),
            project_names: field(EXTRA_PROJECT_NAME),
        };
        for rule in &self.rules {
            if let Some(what) = rule.allows(&id, &req.attributes) {
                return Decision {
                    allowed: true,
                    denied: false,
                    reason: format!("allowed by policy rule {} ({what})", rule.index),
                };
            }
        }
        Decision::deny(REASON_NO_MATCH)
    }
}

/// Whether `extra` is that of a user this service authenticated from Keystone: exactly one
/// non-empty project id, and no credential id (kube-apiserver sets that key for ServiceAccount
/// tokens and client certificates only).
pub fn is_keystone_identity(extra: &BTreeMap<String, Vec<String>>) -> bool {
    matches!(extra.get(EXTRA_PROJECT_ID).map(Vec::as_slice), Some([id]) if !id.is_empty())
        && !extra.contains_key(EXTRA_CREDENTIAL_ID)
}

impl Rule {
    /// Go's per-rule loop body: `Some(description of the grant)` when the rule allows.
    fn allows(&self, id: &Identity<'_>, attributes: &Attributes<'_>) -> Option<String> {
        if let Some(users) = &self.users
            && !users.admit(id)
        {
            return None;
        }
        match *attributes {
            Attributes::Resource {
                verb,
                namespace,
                group,
                resource,
                subresource,
                ..
            } => match self.resource.as_ref()? {
                ResourceGrant::V2(entries) => entries
                    .iter()
                    .find(|e| e.allows(namespace, resource, verb))
                    .map(|e| format!("resource_permissions {:?}", e.key)),
                ResourceGrant::V1(spec) => {
                    (spec.allows(verb, namespace, group, resource, subresource)
                        && self.matchers.admit(id))
                    .then(|| "resource".to_owned())
                }
            },
            Attributes::NonResource { verb, path } => match self.nonresource.as_ref()? {
                NonResourceGrant::V2(entries) => entries
                    .iter()
                    .find(|e| e.allows(path, verb))
                    .map(|e| format!("nonresource_permissions {:?}", e.path)),
                NonResourceGrant::V1(spec) => (spec.allows(verb, path) && self.matchers.admit(id))
                    .then(|| "nonresource".to_owned()),
            },
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules.len())
            .finish()
    }
}
