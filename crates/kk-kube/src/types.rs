//! The Kubernetes objects this client reads and writes, typed by hand with the API's JSON names:
//! [`Namespace`], [`RoleBinding`], [`ClusterRole`], [`ConfigMap`], their [`ObjectMeta`],
//! [`List`], [`Status`], [`DeleteOptions`] and the [`RawWatchEvent`] of a watch stream.
//!
//! Only the fields this project uses are named. Everything else an object carries (`spec`,
//! `status`, `rules`, `creationTimestamp`, `managedFields`, `finalizers`, ...) is kept in a
//! catch-all (`rest`) and written back as it was read, so that an update (a `PUT` of the whole
//! object) never drops what another writer put there.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `rbac.authorization.k8s.io`
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What the client needs to know about a kind to reach it.
pub trait Resource: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// `v1`, `rbac.authorization.k8s.io/v1`.
    const API_VERSION: &'static str;
    /// `Namespace`.
    const KIND: &'static str;
    /// The path segment of the collection: `namespaces`.
    const PLURAL: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;
}

/// `metadata` of an object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// `namespace` (namespaced kinds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `labels`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// `resourceVersion`: sent back with an update, so that a concurrent change is a 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `deletionTimestamp`: set while the object is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Everything else, kept as read.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

impl ObjectMeta {
    /// Metadata with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Whether `labels[key] == value`.
    pub fn has_label(&self, key: &str, value: &str) -> bool {
        self.labels.get(key).is_some_and(|v| v == value)
    }
}

/// A `Namespace` (`v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// `v1`.
    #[serde(default = "core_v1")]
    pub api_version: String,
    /// `Namespace`.
    #[serde(default = "namespace_kind")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`, `status`, ...
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

impl Namespace {
    /// A new namespace object (for a create).
    pub fn new(metadata: ObjectMeta) -> Self {
        Self {
            api_version: core_v1(),
            kind: namespace_kind(),
            metadata,
            rest: BTreeMap::new(),
        }
    }
}

impl Resource for Namespace {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Namespace";
    const PLURAL: &'static str = "namespaces";
    const NAMESPACED: bool = false;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// A `RoleBinding` (`rbac.authorization.k8s.io/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleBinding {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default = "rbac_v1")]
    pub api_version: String,
    /// `RoleBinding`.
    #[serde(default = "role_binding_kind")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `subjects`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub subjects: Vec<Subject>,
    /// `roleRef` (immutable once created).
    pub role_ref: RoleRef,
    /// Everything else.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

impl RoleBinding {
    /// A new binding object (for a create).
    pub fn new(metadata: ObjectMeta, subjects: Vec<Subject>, role_ref: RoleRef) -> Self {
        Self {
            api_version: rbac_v1(),
            kind: role_binding_kind(),
            metadata,
            subjects,
            role_ref,
            rest: BTreeMap::new(),
        }
    }
}

impl Resource for RoleBinding {
    const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
    const KIND: &'static str = "RoleBinding";
    const PLURAL: &'static str = "rolebindings";
    const NAMESPACED: bool = true;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// An entry of `subjects`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// [`RBAC_GROUP`] for users and groups, empty for ServiceAccounts.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_group: String,
    /// The user, group or ServiceAccount name.
    pub name: String,
    /// A ServiceAccount's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `roleRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// [`RBAC_GROUP`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_group: String,
    /// `ClusterRole` or `Role`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// A `ClusterRole` (`rbac.authorization.k8s.io/v1`); its rules are kept, not looked into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRole {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default = "rbac_v1")]
    pub api_version: String,
    /// `ClusterRole`.
    #[serde(default = "cluster_role_kind")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `rules`, `aggregationRule`.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

impl Resource for ClusterRole {
    const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
    const KIND: &'static str = "ClusterRole";
    const PLURAL: &'static str = "clusterroles";
    const NAMESPACED: bool = false;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// A `ConfigMap` (`v1`): its string `data`; `binaryData` and the rest are kept, not looked into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    /// `v1`.
    #[serde(default = "core_v1")]
    pub api_version: String,
    /// `ConfigMap`.
    #[serde(default = "config_map_kind")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `data`: UTF-8 values by key.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub data: BTreeMap<String, String>,
    /// `binaryData`, `immutable`, ...
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

impl ConfigMap {
    /// A new ConfigMap object (for a create).
    pub fn new(metadata: ObjectMeta, data: BTreeMap<String, String>) -> Self {
        Self {
            api_version: core_v1(),
            kind: config_map_kind(),
            metadata,
            data,
            rest: BTreeMap::new(),
        }
    }
}

impl Resource for ConfigMap {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "ConfigMap";
    const PLURAL: &'static str = "configmaps";
    const NAMESPACED: bool = true;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// One line of a watch stream (`?watch=true`), as sent: `{"type": "ADDED", "object": {...}}`.
/// `type` is `ADDED`, `MODIFIED`, `DELETED` (`object`: the object), `BOOKMARK` (`object`: only
/// `metadata.resourceVersion`) or `ERROR` (`object`: a [`Status`], e.g. 410 `Expired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawWatchEvent {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The object, or the `Status` of an `ERROR`.
    #[serde(default)]
    pub object: Value,
}

/// A list answer (`NamespaceList`, `RoleBindingList`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: DeserializeOwned"))]
pub struct List<T> {
    /// `metadata`.
    #[serde(default)]
    pub metadata: ListMeta,
    /// `items`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<T>,
}

/// `metadata` of a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// `resourceVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// `continue`: the token of the next page, when the list was cut at `limit`.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// A `Status` (`v1`): what the API answers with an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `Success` or `Failure`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    /// A human-readable description.
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Forbidden`, ...
    #[serde(default, deserialize_with = "null_as_default")]
    pub reason: String,
    /// The HTTP status.
    #[serde(default)]
    pub code: u16,
    /// `details`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// The body of a delete: its preconditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    /// `v1`.
    pub api_version: String,
    /// `DeleteOptions`.
    pub kind: String,
    /// Refuse the delete (409) unless the object is still this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Preconditions>,
}

impl DeleteOptions {
    /// Options that delete only the version `resource_version` (any version if `None`).
    pub fn at(resource_version: Option<&str>) -> Self {
        Self {
            api_version: "v1".into(),
            kind: "DeleteOptions".into(),
            preconditions: resource_version.map(|rv| Preconditions {
                resource_version: Some(rv.to_string()),
            }),
        }
    }
}

/// `preconditions` of a delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    /// `resourceVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// `v1.36.0`.
    #[serde(default)]
    pub git_version: String,
}

fn core_v1() -> String {
    "v1".into()
}
fn rbac_v1() -> String {
    RBAC_GROUP.to_string() + "/v1"
}
fn namespace_kind() -> String {
    "Namespace".into()
}
fn role_binding_kind() -> String {
    "RoleBinding".into()
}
fn cluster_role_kind() -> String {
    "ClusterRole".into()
}
fn config_map_kind() -> String {
    "ConfigMap".into()
}

/// `null` read as the default, as client-go reads it.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A namespace as kube-apiserver v1.36 answers a GET, with the fields this model does not
    /// name.
    fn served_namespace() -> Value {
        json!({
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {
                "name": "team-a", "uid": "9b2f", "resourceVersion": "4711",
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "labels": {"kubernetes.io/metadata.name": "team-a", "app.kubernetes.io/managed-by": "k8s-keystone-auth"},
                "annotations": {"keystone.openstack.org/project-id": "p1"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        })
    }

    #[test]
    fn a_served_namespace_round_trips_with_what_the_model_does_not_name() {
        let original = served_namespace();
        let ns: Namespace = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(ns.metadata.name, "team-a");
        assert_eq!(ns.metadata.resource_version.as_deref(), Some("4711"));
        assert!(
            ns.metadata
                .has_label("app.kubernetes.io/managed-by", "k8s-keystone-auth")
        );
        assert!(ns.metadata.rest.contains_key("managedFields"));
        assert!(ns.rest.contains_key("spec") && ns.rest.contains_key("status"));
        assert_eq!(serde_json::to_value(&ns).unwrap(), original);
    }

    #[test]
    fn a_role_binding_round_trips_and_a_new_one_is_written_as_the_api_documents() {
        let served = json!({
            "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "u1_member", "namespace": "team-a", "resourceVersion": "12", "uid": "x",
                         "creationTimestamp": "2025-01-01T00:00:00Z", "ownerReferences": []},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "team-a"}
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "member"}
        });
        let rb: RoleBinding = serde_json::from_value(served.clone()).unwrap();
        assert_eq!(rb.subjects[1].namespace.as_deref(), Some("team-a"));
        assert_eq!(rb.subjects[1].api_group, "");
        assert_eq!(rb.role_ref.name, "member");
        assert_eq!(serde_json::to_value(&rb).unwrap(), served);

        let mut meta = ObjectMeta::named("u1_member");
        meta.labels
            .insert("app.kubernetes.io/managed-by".into(), "k8s".into());
        let new = RoleBinding::new(
            meta,
            vec![Subject {
                kind: "Group".into(),
                api_group: RBAC_GROUP.into(),
                name: "devs".into(),
                namespace: None,
            }],
            RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: "view".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&new).unwrap(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "u1_member", "labels": {"app.kubernetes.io/managed-by": "k8s"}},
                   "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})
        );
        // A binding without subjects (`null`, as the API may send it) reads as none.
        let bare: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "b", "labels": null}, "subjects": null,
            "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": null}
        }))
        .unwrap();
        assert!(bare.subjects.is_empty() && bare.metadata.labels.is_empty());
        // A binding without roleRef is not a binding.
        assert!(serde_json::from_value::<RoleBinding>(json!({"metadata": {"name": "b"}})).is_err());
    }

    #[test]
    fn lists_statuses_and_delete_options() {
        let list: List<ClusterRole> = serde_json::from_value(json!({
            "kind": "ClusterRoleList", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"resourceVersion": "99", "continue": "abc"},
            "items": [{"metadata": {"name": "view"}, "rules": [{"verbs": ["get"]}], "aggregationRule": {}}]
        }))
        .unwrap();
        assert_eq!(list.metadata.continue_token.as_deref(), Some("abc"));
        assert_eq!(list.items[0].metadata.name, "view");
        assert!(list.items[0].rest.contains_key("rules"));
        let empty: List<Namespace> = serde_json::from_value(json!({"items": null})).unwrap();
        assert!(empty.items.is_empty() && empty.metadata.continue_token.is_none());

        let status: Status = serde_json::from_value(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "rolebindings.rbac.authorization.k8s.io \"x\" already exists",
            "reason": "AlreadyExists", "details": {"name": "x", "group": "rbac.authorization.k8s.io", "kind": "rolebindings"},
            "code": 409
        }))
        .unwrap();
        assert_eq!(
            (status.reason.as_str(), status.code),
            ("AlreadyExists", 409)
        );
        assert_eq!(
            serde_json::to_value(DeleteOptions::at(Some("12"))).unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": "12"}})
        );
        assert_eq!(
            serde_json::to_value(DeleteOptions::at(None)).unwrap(),
            json!({"apiVersion": "v1", "kind": "DeleteOptions"})
        );
    }

    #[test]
    fn a_config_map_round_trips_and_null_data_reads_as_none() {
        let served = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "k8s-auth-policy", "namespace": "kube-system", "resourceVersion": "77"},
            "data": {"policies": "[]", "syncConfig": "role-mappings: []\n"},
            "binaryData": {"b": "AAE="}
        });
        let cm: ConfigMap = serde_json::from_value(served.clone()).unwrap();
        assert_eq!(cm.data["policies"], "[]");
        assert_eq!(cm.metadata.resource_version.as_deref(), Some("77"));
        assert!(cm.rest.contains_key("binaryData"));
        assert_eq!(serde_json::to_value(&cm).unwrap(), served);
        let bare: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "data": null})).unwrap();
        assert!(bare.data.is_empty());
        assert_eq!(
            (bare.api_version.as_str(), bare.kind.as_str()),
            ("v1", "ConfigMap")
        );
        // A value that is not a string is not a ConfigMap (the API never sends one).
        assert!(serde_json::from_value::<ConfigMap>(json!({"data": {"k": 1}})).is_err());
    }

    proptest::proptest! {
        /// Any metadata the model can hold is written and read back unchanged.
        #[test]
        fn metadata_round_trips(
            name in "[a-z0-9_-]{0,20}",
            labels in proptest::collection::btree_map("[a-z./-]{1,12}", "[a-zA-Z0-9_-]{0,12}", 0..4),
            annotations in proptest::collection::btree_map("[a-z./-]{1,12}", "\\PC{0,20}", 0..4),
            rv in proptest::option::of("[0-9]{1,6}"),
            extra in proptest::collection::btree_map("x[a-z]{1,8}", proptest::prelude::any::<i64>(), 0..3),
        ) {
            let meta = ObjectMeta {
                name, labels, annotations, resource_version: rv,
                rest: extra.into_iter().map(|(k, v)| (k, json!(v))).collect(),
                ..Default::default()
            };
            let ns = Namespace::new(meta);
            let text = serde_json::to_string(&ns).unwrap();
            let back: Namespace = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back, ns);
        }
    }
}
