//! The planner: from a Keystone project, what Keystone says about its users and groups, the
//! sync configuration and the objects observed in Kubernetes, the operations that make the
//! cluster agree ([`plan`]). Pure: no I/O, no clock.
//!
//! What it promises (and the property tests check):
//!
//! * **Only its own objects.** A namespace or RoleBinding is this service's when it is labelled
//!   [`MANAGED_BY_LABEL`]`=`[`MANAGED_BY`]. Nothing else is ever updated or deleted; an object of
//!   the name it wants that is not its own is left alone with a [`Note`], and in a namespace
//!   that is not its own nothing at all is done. A labelled namespace whose
//!   [`ANN_PROJECT_ID`] names another project is not its own either.
//! * **No namespace is ever deleted** (there is no such [`Op`]).
//! * **Idempotent.** Applying a plan to what was observed gives a state whose plan is empty.
//!
//! RoleBindings are Go's: `<user id>_<role>` with subject `User <user name>`, and (this
//! service's addition) `group_<group id>_<role>` with subject `Group <group name>`, each with
//! roleRef the ClusterRole of the role ([`Rules::cluster_role`]): the role's own name as in Go,
//! or the `cluster-role` of its role mapping. A ClusterRole that does not exist gets no binding
//! (a [`Note`] instead), so nothing refers to a missing role.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kk_kube::types::{Namespace, ObjectMeta, RBAC_GROUP, RoleBinding, RoleRef, Subject};
use kk_policy::sync_config::{RoleMapping, SyncConfig};

/// The label that marks this service's objects.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "k8s-keystone-auth";
/// `app.kubernetes.io/managed-by=k8s-keystone-auth`, for list calls.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=k8s-keystone-auth";
/// Annotation: the Keystone project id (namespaces and bindings).
pub const ANN_PROJECT_ID: &str = "keystone.openstack.org/project-id";
/// Annotation: the Keystone project name (namespaces).
pub const ANN_PROJECT_NAME: &str = "keystone.openstack.org/project-name";
/// Annotation: the project's domain id (namespaces).
pub const ANN_PROJECT_DOMAIN_ID: &str = "keystone.openstack.org/project-domain-id";
/// Annotation: the Keystone role a binding stands for.
pub const ANN_ROLE: &str = "keystone.openstack.org/role";
/// Annotation: the Keystone user id of a user's binding.
pub const ANN_USER_ID: &str = "keystone.openstack.org/user-id";
/// Annotation: the Keystone group id of a group's binding.
pub const ANN_GROUP_ID: &str = "keystone.openstack.org/group-id";

/// Longest namespace name (a DNS-1123 label).
pub const MAX_NAMESPACE: usize = 63;

/// A Keystone project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Project {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Its domain's id (`%d`).
    pub domain_id: String,
}

/// A user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectKind {
    /// A Keystone user: RBAC subject `User`.
    User,
    /// A Keystone group: RBAC subject `Group`.
    Group,
}

/// A user or group holding roles on the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// User or group.
    pub kind: SubjectKind,
    /// Keystone id.
    pub id: String,
    /// The name Kubernetes knows it by (the TokenReview's user name, or the group name).
    pub name: String,
    /// Keystone role names on the project.
    pub roles: BTreeSet<String>,
}

/// How much of the truth about the project's bindings the planner is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// What one token showed about its user. `complete`: the token carries all the user's
    /// roles on the project (a password or token login), so this user's bindings for other
    /// roles are stale. Otherwise (an application credential or trust, which may carry fewer
    /// roles than the user holds) bindings are only created, never changed or deleted.
    Token {
        /// The user and the token's roles.
        user: Holder,
        /// Whether the roles are all the user holds.
        complete: bool,
    },
    /// Keystone's role assignments on the project: every binding of this service in the
    /// namespace that is not one of them is stale.
    Assignments(Vec<Holder>),
}

/// What the sync does, from the sync config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// `projects` in `data-types-to-sync`: namespaces are created.
    pub namespaces: bool,
    /// `role_assignments`: RoleBindings are kept in step.
    pub bindings: bool,
    /// `namespace-format`.
    pub namespace_format: String,
    /// `projects-blacklist`.
    pub blacklist_ids: BTreeSet<String>,
    /// `projects-name-blacklist`.
    pub blacklist_names: BTreeSet<String>,
    /// `role-mappings` (their `cluster-role`).
    pub mappings: Vec<RoleMapping>,
}

impl Rules {
    /// The rules of a sync config.
    pub fn from_config(c: &SyncConfig) -> Self {
        Self {
            namespaces: c.data_types_to_sync.iter().any(|t| t == "projects"),
            bindings: c.data_types_to_sync.iter().any(|t| t == "role_assignments"),
            namespace_format: c.namespace_format.clone(),
            blacklist_ids: c.projects_blacklist.iter().cloned().collect(),
            blacklist_names: c.projects_name_blacklist.iter().cloned().collect(),
            mappings: c.role_mappings.clone(),
        }
    }

    /// Whether there is anything to sync.
    pub fn enabled(&self) -> bool {
        self.namespaces || self.bindings
    }

    /// Whether the project is never synced (by id or by name).
    pub fn blacklisted(&self, p: &Project) -> bool {
        self.blacklist_ids.contains(&p.id) || self.blacklist_names.contains(&p.name)
    }

    /// The ClusterRole that bindings of Keystone role `role` refer to, if any.
    pub fn cluster_role<'a>(&'a self, role: &'a str) -> Option<&'a str> {
        kk_policy::sync_config::cluster_role_for(&self.mappings, role)
    }
}

/// The objects observed in the cluster for one project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The namespace of the project's name, if it exists.
    pub namespace: Option<Namespace>,
    /// Every RoleBinding in it (this service's and others').
    pub bindings: Vec<RoleBinding>,
    /// The names of the ClusterRoles that exist.
    pub cluster_roles: BTreeSet<String>,
}

/// One change to make, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create the namespace.
    CreateNamespace(Namespace),
    /// Replace the namespace (labels or annotations of this service were missing or old).
    UpdateNamespace(Namespace),
    /// Create a binding in the namespace.
    CreateBinding(RoleBinding),
    /// Replace a binding (subjects, labels or annotations).
    UpdateBinding(RoleBinding),
    /// Delete a binding of this service, at the version observed.
    DeleteBinding {
        /// Its name.
        name: String,
        /// The version it was observed at.
        resource_version: Option<String>,
    },
}

/// Why the planner left something alone. Each is logged (at most once per process for the same
/// note) and counted in `k8s_keystone_auth_sync_skipped_total{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Note {
    /// The project is in `projects-blacklist` or `projects-name-blacklist`.
    Blacklisted,
    /// No valid namespace name can be made.
    InvalidNamespaceName(String),
    /// With `role_assignments` but not `projects`, the namespace must exist.
    NamespaceMissing(String),
    /// A namespace of that name exists and is not this service's.
    NamespaceNotManaged(String),
    /// This service's namespace of that name belongs to another project.
    NamespaceOfAnotherProject {
        /// The namespace.
        namespace: String,
        /// The project its annotation names.
        project_id: String,
    },
    /// The namespace is being deleted.
    NamespaceTerminating(String),
    /// The ClusterRole of a role does not exist.
    ClusterRoleMissing {
        /// The Keystone role.
        role: String,
        /// The ClusterRole it maps to.
        cluster_role: String,
    },
    /// A binding of the name this service wants exists and is not this service's (or is
    /// another subject's).
    BindingNotManaged(String),
    /// A role or id makes a binding name Kubernetes refuses.
    InvalidBindingName(String),
}

impl Note {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Note::Blacklisted => "blacklisted",
            Note::InvalidNamespaceName(_) => "invalid_namespace_name",
            Note::NamespaceMissing(_) => "namespace_missing",
            Note::NamespaceNotManaged(_) => "namespace_not_managed",
            Note::NamespaceOfAnotherProject { .. } => "namespace_of_another_project",
            Note::NamespaceTerminating(_) => "namespace_terminating",
            Note::ClusterRoleMissing { .. } => "cluster_role_missing",
            Note::BindingNotManaged(_) => "rolebinding_not_managed",
            Note::InvalidBindingName(_) => "invalid_rolebinding_name",
        }
    }

    /// Whether this deserves a warning (an operator's action may be needed) rather than info.
    pub fn is_warning(&self) -> bool {
        !matches!(self, Note::Blacklisted | Note::NamespaceTerminating(_))
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Blacklisted => write!(
                f,
                "the project is blacklisted (projects-blacklist or projects-name-blacklist): not synced"
            ),
            Note::InvalidNamespaceName(why) => write!(f, "no namespace name: {why}"),
            Note::NamespaceMissing(ns) => write!(
                f,
                "namespace {ns} does not exist and `data-types-to-sync` has no `projects`: create it and label it {MANAGED_SELECTOR} to have its RoleBindings synced"
            ),
            Note::NamespaceNotManaged(ns) => write!(
                f,
                "namespace {ns} exists and was not created by this service (no label {MANAGED_SELECTOR}): left untouched, no RoleBinding synced in it; label it to hand it over"
            ),
            Note::NamespaceOfAnotherProject {
                namespace,
                project_id,
            } => write!(
                f,
                "namespace {namespace} belongs to project {project_id} ({ANN_PROJECT_ID}): left untouched"
            ),
            Note::NamespaceTerminating(ns) => write!(
                f,
                "namespace {ns} is being deleted: synced again once it is gone"
            ),
            Note::ClusterRoleMissing { role, cluster_role } => write!(
                f,
                "Keystone role {role:?}: ClusterRole {cluster_role:?} does not exist, so no RoleBinding is made for it (create the ClusterRole, or map the role with `role-mappings[].cluster-role` in the sync config)"
            ),
            Note::BindingNotManaged(name) => write!(
                f,
                "RoleBinding {name} exists and is not this service's (no label {MANAGED_SELECTOR}, or another subject's): left untouched"
            ),
            Note::InvalidBindingName(name) => write!(
                f,
                "RoleBinding name {name:?} is not valid in Kubernetes: skipped"
            ),
        }
    }
}

/// The plan for one project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The namespace the project maps to (`None` when no valid name can be made).
    pub namespace: Option<String>,
    /// What to do, in order.
    pub ops: Vec<Op>,
    /// What was left alone, and why.
    pub notes: Vec<Note>,
}

/// Whether an object carries this service's label.
pub fn is_managed(meta: &ObjectMeta) -> bool {
    meta.has_label(MANAGED_BY_LABEL, MANAGED_BY)
}

/// Whether `name` is a DNS-1123 label (what a namespace name must be).
pub fn is_dns1123_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAMESPACE
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `name` made a DNS-1123 label where possible: ASCII lower case, every other character than
/// `a-z`, `0-9` and `-` replaced by `-`, runs of `-` made one, `-` trimmed from both ends.
pub fn dns1123_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out.trim_matches('-').to_string()
}

/// The project's namespace name.
///
/// First Go's name: `namespace-format` with `%i` replaced by the project id, then `%n` by the
/// name, then `%d` by the domain id (in that order, as Go); longer than 63 bytes, the project
/// id alone (as Go). Used as it is when it is a valid namespace name (a DNS-1123 label).
/// Otherwise, where Go would try to create a namespace Kubernetes refuses, it is made one with
/// [`dns1123_safe`] (`Team_A.x` → `team-a-x`); an error when even that gives nothing.
pub fn namespace_name(format: &str, project: &Project) -> Result<String, String> {
    let raw = format
        .replace("%i", &project.id)
        .replace("%n", &project.name)
        .replace("%d", &project.domain_id);
    let go = if raw.len() > MAX_NAMESPACE {
        project.id.clone()
    } else {
        raw
    };
    if is_dns1123_label(&go) {
        return Ok(go);
    }
    let safe = dns1123_safe(&go);
    if is_dns1123_label(&safe) {
        return Ok(safe);
    }
    Err(format!(
        "{format:?} gives {go:?} for project {}, which cannot be made a namespace name",
        project.id
    ))
}

/// Whether Kubernetes accepts `name` for a RoleBinding (a path segment name).
fn valid_binding_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '%'])
        && name.len() <= 253
}

/// Go's binding name for a user (`<user id>_<role>`) and this service's for a group
/// (`group_<group id>_<role>`).
pub fn binding_name(kind: SubjectKind, id: &str, role: &str) -> String {
    match kind {
        SubjectKind::User => format!("{id}_{role}"),
        SubjectKind::Group => format!("group_{id}_{role}"),
    }
}

fn desired_namespace(name: &str, project: &Project) -> Namespace {
    let mut meta = ObjectMeta::named(name);
    meta.labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    namespace_annotations(&mut meta, project);
    Namespace::new(meta)
}

fn namespace_annotations(meta: &mut ObjectMeta, project: &Project) {
    meta.annotations
        .insert(ANN_PROJECT_ID.into(), project.id.clone());
    meta.annotations
        .insert(ANN_PROJECT_NAME.into(), project.name.clone());
    meta.annotations
        .insert(ANN_PROJECT_DOMAIN_ID.into(), project.domain_id.clone());
}

fn desired_binding(
    namespace: &str,
    project: &Project,
    holder: &Holder,
    role: &str,
    cluster_role: &str,
) -> RoleBinding {
    let mut meta = ObjectMeta::named(binding_name(holder.kind, &holder.id, role));
    meta.namespace = Some(namespace.to_string());
    meta.labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    meta.annotations
        .insert(ANN_PROJECT_ID.into(), project.id.clone());
    meta.annotations.insert(ANN_ROLE.into(), role.to_string());
    let (ann, kind) = match holder.kind {
        SubjectKind::User => (ANN_USER_ID, "User"),
        SubjectKind::Group => (ANN_GROUP_ID, "Group"),
    };
    meta.annotations.insert(ann.into(), holder.id.clone());
    RoleBinding::new(
        meta,
        vec![Subject {
            kind: kind.into(),
            api_group: RBAC_GROUP.into(),
            name: holder.name.clone(),
            namespace: None,
        }],
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: cluster_role.to_string(),
        },
    )
}

/// Whether every label and annotation of `want` is on `have` with the same value.
fn has_all(have: &ObjectMeta, want: &ObjectMeta) -> bool {
    want.labels
        .iter()
        .all(|(k, v)| have.labels.get(k) == Some(v))
        && want
            .annotations
            .iter()
            .all(|(k, v)| have.annotations.get(k) == Some(v))
}

/// `have` with `want`'s labels, annotations and subjects (everything else kept).
fn merged(have: &RoleBinding, want: &RoleBinding) -> RoleBinding {
    let mut out = have.clone();
    out.subjects = want.subjects.clone();
    for (k, v) in &want.metadata.labels {
        out.metadata.labels.insert(k.clone(), v.clone());
    }
    for (k, v) in &want.metadata.annotations {
        out.metadata.annotations.insert(k.clone(), v.clone());
    }
    out
}

/// Whether a binding of this service belongs to the user `user_id`: by its annotation, or,
/// for a binding without one (a Go binding an operator labelled to hand it over), by Go's name
/// `<user id>_...`.
fn belongs_to_user(b: &RoleBinding, user_id: &str) -> bool {
    let a = &b.metadata.annotations;
    match (a.get(ANN_USER_ID), a.get(ANN_GROUP_ID)) {
        (Some(u), _) => u == user_id,
        (None, Some(_)) => false,
        (None, None) => b
            .metadata
            .name
            .strip_prefix(user_id)
            .is_some_and(|rest| rest.starts_with('_')),
    }
}

/// The plan for `project`: see the module documentation.
pub fn plan(rules: &Rules, project: &Project, authority: &Authority, observed: &Observed) -> Plan {
    let mut out = Plan::default();
    let name = match namespace_name(&rules.namespace_format, project) {
        Ok(n) => n,
        Err(why) => {
            out.notes.push(Note::InvalidNamespaceName(why));
            return out;
        }
    };
    out.namespace = Some(name.clone());
    if rules.blacklisted(project) {
        out.notes.push(Note::Blacklisted);
        // A namespace made before the project was blacklisted keeps nothing of this service's.
        if let Some(ns) = &observed.namespace
            && is_managed(&ns.metadata)
            && ns
                .metadata
                .annotations
                .get(ANN_PROJECT_ID)
                .is_none_or(|p| p == &project.id)
        {
            out.ops = orphan_deletes(observed);
        }
        return out;
    }
    match &observed.namespace {
        None if rules.namespaces => out
            .ops
            .push(Op::CreateNamespace(desired_namespace(&name, project))),
        None => {
            out.notes.push(Note::NamespaceMissing(name));
            return out;
        }
        Some(ns) if !is_managed(&ns.metadata) => {
            out.notes.push(Note::NamespaceNotManaged(name));
            return out;
        }
        Some(ns) => {
            if let Some(other) = ns
                .metadata
                .annotations
                .get(ANN_PROJECT_ID)
                .filter(|p| **p != project.id)
            {
                out.notes.push(Note::NamespaceOfAnotherProject {
                    namespace: name,
                    project_id: other.clone(),
                });
                return out;
            }
            if ns.metadata.deletion_timestamp.is_some() {
                out.notes.push(Note::NamespaceTerminating(name));
                return out;
            }
            if rules.namespaces {
                let want = desired_namespace(&name, project);
                if !has_all(&ns.metadata, &want.metadata) {
                    let mut updated = ns.clone();
                    updated
                        .metadata
                        .labels
                        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
                    namespace_annotations(&mut updated.metadata, project);
                    out.ops.push(Op::UpdateNamespace(updated));
                }
            }
        }
    }
    if rules.bindings {
        plan_bindings(rules, project, authority, observed, &name, &mut out);
    }
    out
}

fn plan_bindings(
    rules: &Rules,
    project: &Project,
    authority: &Authority,
    observed: &Observed,
    namespace: &str,
    out: &mut Plan,
) {
    let (holders, user_scope, may_change): (Vec<&Holder>, Option<&str>, bool) = match authority {
        Authority::Token { user, complete } => (vec![user], Some(user.id.as_str()), *complete),
        Authority::Assignments(all) => (all.iter().collect(), None, true),
    };
    // What should exist, by name (the first of two holders that give one name wins).
    let mut desired: BTreeMap<String, RoleBinding> = BTreeMap::new();
    let mut missing_roles = BTreeSet::new();
    for h in holders {
        if h.name.is_empty() {
            continue;
        }
        for role in &h.roles {
            let Some(cluster_role) = rules.cluster_role(role) else {
                continue;
            };
            if !observed.cluster_roles.contains(cluster_role) {
                missing_roles.insert((role.clone(), cluster_role.to_string()));
                continue;
            }
            let b = desired_binding(namespace, project, h, role, cluster_role);
            if !valid_binding_name(&b.metadata.name) {
                out.notes
                    .push(Note::InvalidBindingName(b.metadata.name.clone()));
                continue;
            }
            desired.entry(b.metadata.name.clone()).or_insert(b);
        }
    }
    for (role, cluster_role) in missing_roles {
        out.notes
            .push(Note::ClusterRoleMissing { role, cluster_role });
    }
    let in_scope = |b: &RoleBinding| user_scope.is_none_or(|u| belongs_to_user(b, u));
    let mut by_name: BTreeMap<&str, &RoleBinding> = BTreeMap::new();
    for b in &observed.bindings {
        by_name.insert(b.metadata.name.as_str(), b);
    }
    // Deletes first: stale bindings, and those whose roleRef (immutable) must change.
    let mut recreate = BTreeSet::new();
    if may_change {
        for b in &observed.bindings {
            if !is_managed(&b.metadata) || !in_scope(b) {
                continue;
            }
            let stale = match desired.get(&b.metadata.name) {
                None => true,
                Some(d) if d.role_ref != b.role_ref => {
                    recreate.insert(b.metadata.name.clone());
                    true
                }
                Some(_) => false,
            };
            if stale {
                out.ops.push(Op::DeleteBinding {
                    name: b.metadata.name.clone(),
                    resource_version: b.metadata.resource_version.clone(),
                });
            }
        }
    }
    for (name, want) in desired {
        match by_name.get(name.as_str()) {
            None => out.ops.push(Op::CreateBinding(want)),
            Some(have) if !is_managed(&have.metadata) || !in_scope(have) => {
                out.notes.push(Note::BindingNotManaged(name));
            }
            Some(_) if recreate.contains(&name) => out.ops.push(Op::CreateBinding(want)),
            Some(have) => {
                if may_change
                    && have.role_ref == want.role_ref
                    && (have.subjects != want.subjects || !has_all(&have.metadata, &want.metadata))
                {
                    out.ops.push(Op::UpdateBinding(merged(have, &want)));
                }
            }
        }
    }
}

fn orphan_deletes(observed: &Observed) -> Vec<Op> {
    observed
        .bindings
        .iter()
        .filter(|b| is_managed(&b.metadata))
        .map(|b| Op::DeleteBinding {
            name: b.metadata.name.clone(),
            resource_version: b.metadata.resource_version.clone(),
        })
        .collect()
}

/// The plan for a namespace of this service whose project is gone (deleted, disabled or
/// blacklisted in Keystone): every binding of this service in it is deleted; the namespace
/// stays (namespaces are never deleted).
pub fn plan_orphan(observed: &Observed) -> Plan {
    let Some(ns) = &observed.namespace else {
        return Plan::default();
    };
    let mut out = Plan {
        namespace: Some(ns.metadata.name.clone()),
        ..Plan::default()
    };
    if is_managed(&ns.metadata) {
        out.ops = orphan_deletes(observed);
    } else {
        out.notes
            .push(Note::NamespaceNotManaged(ns.metadata.name.clone()));
    }
    out
}

impl Observed {
    /// The state after `op` succeeded, the server having answered with `stored` (the object
    /// as stored, for creates and updates).
    pub fn apply(&mut self, op: &Op, stored: Option<StoredObject>) {
        match (op, stored) {
            (
                Op::CreateNamespace(_) | Op::UpdateNamespace(_),
                Some(StoredObject::Namespace(ns)),
            ) => {
                self.namespace = Some(ns);
            }
            (Op::CreateBinding(_) | Op::UpdateBinding(_), Some(StoredObject::Binding(b))) => {
                self.bindings.retain(|x| x.metadata.name != b.metadata.name);
                self.bindings.push(b);
            }
            (Op::DeleteBinding { name, .. }, _) => {
                self.bindings.retain(|x| &x.metadata.name != name);
            }
            _ => {}
        }
    }
}

/// What the server answered to a create or an update.
#[derive(Debug, Clone)]
pub enum StoredObject {
    /// A namespace.
    Namespace(Namespace),
    /// A binding.
    Binding(RoleBinding),
}

#[cfg(test)]
mod tests;
