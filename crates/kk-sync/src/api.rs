//! What the worker needs from Kubernetes ([`Cluster`]) and from Keystone ([`Directory`]), as
//! traits so that the worker's timing (back-off, resync) is tested with paused time against
//! stand-ins; [`kk_kube::KubeClient`] and [`KeystoneDirectory`] are the real ones.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use kk_core::keystone::{KeystoneClient, KeystoneError};
use kk_kube::types::{ClusterRole, Namespace, RoleBinding};
use kk_kube::{KubeClient, KubeError};

use crate::plan::{Holder, MANAGED_SELECTOR, Project, SubjectKind};

/// The Kubernetes calls of the sync.
pub trait Cluster: Send + Sync + 'static {
    /// `GET /version`.
    fn version(&self) -> impl Future<Output = Result<String, KubeError>> + Send;
    /// One namespace, `None` if it does not exist.
    fn get_namespace(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Namespace>, KubeError>> + Send;
    /// The namespaces labelled as this service's.
    fn managed_namespaces(&self) -> impl Future<Output = Result<Vec<Namespace>, KubeError>> + Send;
    /// Every RoleBinding in a namespace.
    fn bindings(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<RoleBinding>, KubeError>> + Send;
    /// The names of every ClusterRole.
    fn cluster_roles(&self) -> impl Future<Output = Result<BTreeSet<String>, KubeError>> + Send;
    /// Creates a namespace.
    fn create_namespace(
        &self,
        ns: &Namespace,
    ) -> impl Future<Output = Result<Namespace, KubeError>> + Send;
    /// Replaces a namespace.
    fn update_namespace(
        &self,
        ns: &Namespace,
    ) -> impl Future<Output = Result<Namespace, KubeError>> + Send;
    /// Creates a binding.
    fn create_binding(
        &self,
        namespace: &str,
        b: &RoleBinding,
    ) -> impl Future<Output = Result<RoleBinding, KubeError>> + Send;
    /// Replaces a binding.
    fn update_binding(
        &self,
        namespace: &str,
        b: &RoleBinding,
    ) -> impl Future<Output = Result<RoleBinding, KubeError>> + Send;
    /// Deletes a binding at a version.
    fn delete_binding(
        &self,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> impl Future<Output = Result<(), KubeError>> + Send;
}

impl Cluster for KubeClient {
    async fn version(&self) -> Result<String, KubeError> {
        KubeClient::version(self).await.map(|v| v.git_version)
    }
    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, KubeError> {
        self.get(None, name).await
    }
    async fn managed_namespaces(&self) -> Result<Vec<Namespace>, KubeError> {
        self.list(None, Some(MANAGED_SELECTOR)).await
    }
    async fn bindings(&self, namespace: &str) -> Result<Vec<RoleBinding>, KubeError> {
        self.list(Some(namespace), None).await
    }
    async fn cluster_roles(&self) -> Result<BTreeSet<String>, KubeError> {
        let roles: Vec<ClusterRole> = self.list(None, None).await?;
        Ok(roles.into_iter().map(|r| r.metadata.name).collect())
    }
    async fn create_namespace(&self, ns: &Namespace) -> Result<Namespace, KubeError> {
        self.create(None, ns).await
    }
    async fn update_namespace(&self, ns: &Namespace) -> Result<Namespace, KubeError> {
        self.update(None, ns).await
    }
    async fn create_binding(
        &self,
        namespace: &str,
        b: &RoleBinding,
    ) -> Result<RoleBinding, KubeError> {
        self.create(Some(namespace), b).await
    }
    async fn update_binding(
        &self,
        namespace: &str,
        b: &RoleBinding,
    ) -> Result<RoleBinding, KubeError> {
        self.update(Some(namespace), b).await
    }
    async fn delete_binding(
        &self,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<(), KubeError> {
        self.delete::<RoleBinding>(Some(namespace), name, resource_version)
            .await
    }
}

/// A Keystone project as the full resync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownProject {
    /// The project.
    pub project: Project,
    /// Whether tokens can be scoped to it (a disabled project is treated as gone).
    pub enabled: bool,
}

/// The Keystone calls of the full resync (they need a service identity).
pub trait Directory: Send + Sync + 'static {
    /// Every project.
    fn projects(&self) -> impl Future<Output = Result<Vec<KnownProject>, KeystoneError>> + Send;
    /// The users (with their effective roles) and groups (with their roles) on a project.
    fn holders(
        &self,
        project: &Project,
    ) -> impl Future<Output = Result<Vec<Holder>, KeystoneError>> + Send;
}

/// A Keystone user as the role assignment list names it.
#[derive(Debug, Clone, Copy)]
pub struct KeystoneUser<'a> {
    /// Id.
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Its domain's name.
    pub domain_name: &'a str,
}

/// The name Kubernetes knows a user by, given the user and its roles on the project: what the
/// TokenReview answers as `username` (the username format, then the role mappings).
pub type UserNamer = Arc<dyn Fn(KeystoneUser<'_>, &[String]) -> String + Send + Sync>;

/// [`Directory`] on the Keystone client (its service identity).
pub struct KeystoneDirectory {
    /// The client, with a service identity.
    pub client: KeystoneClient,
    /// How users are named.
    pub namer: UserNamer,
}

impl Directory for KeystoneDirectory {
    async fn projects(&self) -> Result<Vec<KnownProject>, KeystoneError> {
        Ok(self
            .client
            .list_projects()
            .await?
            .into_iter()
            .map(|p| KnownProject {
                enabled: p.enabled,
                project: Project {
                    id: p.id,
                    name: p.name,
                    domain_id: p.domain_id,
                },
            })
            .collect())
    }

    async fn holders(&self, project: &Project) -> Result<Vec<Holder>, KeystoneError> {
        // Users: effective roles (through groups and inheritance too), as tokens carry them.
        let effective = self.client.list_role_assignments(&project.id, true).await?;
        let mut users: BTreeMap<String, (String, String, BTreeSet<String>)> = BTreeMap::new();
        for a in effective {
            if let Some(u) = a.user {
                users
                    .entry(u.id)
                    .or_insert_with(|| (u.name, u.domain.name, BTreeSet::new()))
                    .2
                    .insert(a.role.name);
            }
        }
        // Groups: their own assignments on the project.
        let direct = self
            .client
            .list_role_assignments(&project.id, false)
            .await?;
        let mut groups: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for a in direct {
            if let Some(g) = a.group {
                groups
                    .entry(g.id)
                    .or_insert_with(|| (g.name, BTreeSet::new()))
                    .1
                    .insert(a.role.name);
            }
        }
        let mut out = Vec::with_capacity(users.len() + groups.len());
        for (id, (name, domain_name, roles)) in users {
            let list: Vec<String> = roles.iter().cloned().collect();
            let k8s_name = (self.namer)(
                KeystoneUser {
                    id: &id,
                    name: &name,
                    domain_name: &domain_name,
                },
                &list,
            );
            out.push(Holder {
                kind: SubjectKind::User,
                id,
                name: k8s_name,
                roles,
            });
        }
        for (id, (name, roles)) in groups {
            out.push(Holder {
                kind: SubjectKind::Group,
                id,
                name,
                roles,
            });
        }
        Ok(out)
    }
}

/// A stand-in for "no service identity": never called (the worker checks first).
pub struct NoDirectory;

impl Directory for NoDirectory {
    async fn projects(&self) -> Result<Vec<KnownProject>, KeystoneError> {
        Ok(Vec::new())
    }
    async fn holders(&self, _: &Project) -> Result<Vec<Holder>, KeystoneError> {
        Ok(Vec::new())
    }
}
