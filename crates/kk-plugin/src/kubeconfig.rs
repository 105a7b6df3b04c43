//! The kubeconfig generator: a cluster, a context and a user whose `exec` runs
//! `kubectl-keystone-auth` with the credential in `env` (or, with `--bearer-token`, whose
//! `token` is the application-credential bearer token of [`kk_core::appcred_token`]); and merging that into an existing
//! kubeconfig without touching its other entries. Pure: text in, text out, through the typed
//! model of [`kk_core::kubeconfig`] (whose catch-alls keep the keys it does not name).

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use kk_core::exec_credential::V1 as EXEC_V1;
use kk_core::kubeconfig::{
    AuthInfo, Cluster, Config, Context, ExecConfig, ExecEnvVar, InteractiveMode, NamedCluster,
    NamedContext, NamedExtension, NamedUser, Opaque, Preferences,
};
use kk_core::secret::Secret;

/// Shown by kubectl when the plugin is not installed.
pub const INSTALL_HINT: &str = "kubectl-keystone-auth logs you in to Kubernetes with OpenStack Keystone.\n\
Build it from the kubernetes-keystone project (cargo build --release --bin kubectl-keystone-auth)\n\
and put the binary in a directory of your PATH, or set the exec command of this kubeconfig to its full path.";

/// What goes into the generated kubeconfig.
#[derive(Debug, Clone)]
pub struct Spec {
    /// API server URL.
    pub server: String,
    /// Its CA (PEM), embedded as `certificate-authority-data`.
    pub ca_pem: Option<Vec<u8>>,
    /// Cluster entry name.
    pub cluster: String,
    /// Context entry name.
    pub context: String,
    /// User entry name.
    pub user: String,
    /// Namespace of the context.
    pub namespace: Option<String>,
    /// The plugin's command (a name on PATH or an absolute path).
    pub command: String,
    /// Extra arguments.
    pub args: Vec<String>,
    /// Environment given to the plugin (values may be secrets).
    pub env: Vec<(String, Secret)>,
    /// `Never` when the credential is complete, `IfAvailable` when a password must be typed.
    pub interactive_mode: InteractiveMode,
    /// A bearer token (`kkac1_...`) written as the user's `token` instead of the `exec`.
    pub token: Option<Secret>,
}

/// Name of the extension that marks the entries this tool wrote (in `extensions` of the
/// cluster, the context and the user), so that `--merge` replaces only its own entries.
pub const MARK: &str = "kubectl-keystone-auth";

fn mark() -> Vec<NamedExtension> {
    vec![NamedExtension {
        name: MARK.to_string(),
        extension: Opaque(json!({"generated-by": MARK})),
    }]
}

fn marked(extensions: &[NamedExtension]) -> bool {
    extensions.iter().any(|e| e.name == MARK)
}

/// An entry of `clusters`, `contexts` or `users`.
pub trait Entry {
    /// What it is called in messages.
    const KIND: &'static str;
    /// The flag that names it.
    const FLAG: &'static str;
    /// Its name.
    fn name(&self) -> &str;
    /// Whether this tool wrote it: it carries the [`MARK`] extension (or, for a user of an
    /// older version, the install hint).
    fn is_ours(&self) -> bool;
}

impl Entry for NamedCluster {
    const KIND: &'static str = "cluster";
    const FLAG: &'static str = "--cluster-name";
    fn name(&self) -> &str {
        &self.name
    }
    fn is_ours(&self) -> bool {
        marked(&self.cluster.extensions)
    }
}

impl Entry for NamedContext {
    const KIND: &'static str = "context";
    const FLAG: &'static str = "--context-name";
    fn name(&self) -> &str {
        &self.name
    }
    fn is_ours(&self) -> bool {
        marked(&self.context.extensions)
    }
}

impl Entry for NamedUser {
    const KIND: &'static str = "user";
    const FLAG: &'static str = "--kube-user";
    fn name(&self) -> &str {
        &self.name
    }
    fn is_ours(&self) -> bool {
        let old_user = self
            .user
            .exec
            .as_ref()
            .and_then(|e| e.install_hint.as_deref())
            == Some(INSTALL_HINT);
        marked(&self.user.extensions) || old_user
    }
}

/// A complete kubeconfig.
pub fn generate(spec: &Spec) -> Config {
    use base64::Engine;
    let cluster = NamedCluster {
        name: spec.cluster.clone(),
        cluster: Cluster {
            server: spec.server.clone(),
            certificate_authority_data: spec
                .ca_pem
                .as_ref()
                .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
            extensions: mark(),
            ..Default::default()
        },
        ..Default::default()
    };
    let context = NamedContext {
        name: spec.context.clone(),
        context: Context {
            cluster: spec.cluster.clone(),
            user: spec.user.clone(),
            namespace: spec.namespace.clone(),
            extensions: mark(),
            ..Default::default()
        },
        ..Default::default()
    };
    let exec = ExecConfig {
        api_version: EXEC_V1.to_string(),
        command: spec.command.clone(),
        args: spec.args.clone(),
        env: spec
            .env
            .iter()
            .map(|(name, value)| ExecEnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        interactive_mode: Some(spec.interactive_mode),
        provide_cluster_info: Some(false),
        install_hint: Some(INSTALL_HINT.to_string()),
        ..Default::default()
    };
    let (exec, token) = match &spec.token {
        Some(t) => (None, Some(t.clone())),
        None => (Some(exec), None),
    };
    let user = NamedUser {
        name: spec.user.clone(),
        user: AuthInfo {
            exec,
            token,
            extensions: mark(),
            ..Default::default()
        },
        ..Default::default()
    };
    Config {
        preferences: Some(Preferences::default()),
        ..Config::single(cluster, user, context)
    }
}

/// Replaces the entries of `list` named as those of `incoming` when this tool wrote them (see
/// [`Entry::is_ours`]) or when `force`, refuses otherwise, appends the others.
fn merge_entries<T: Entry>(list: &mut Vec<T>, incoming: Vec<T>, force: bool) -> Result<()> {
    for entry in incoming {
        match list.iter_mut().find(|e| e.name() == entry.name()) {
            Some(old) if force || old.is_ours() => *old = entry,
            Some(_) => bail!(
                "it already has a {} named {:?} that kubectl-keystone-auth did not write: choose another name with {}, or add --force to replace it",
                T::KIND,
                entry.name(),
                T::FLAG
            ),
            None => list.push(entry),
        }
    }
    Ok(())
}

/// Merges `new` (from [`generate`]) into `existing`: entries of `clusters`, `contexts` and
/// `users` with the same name are replaced when this tool wrote them (see [`Entry::is_ours`])
/// or when `force`, and refused otherwise; others are kept as they are, new ones appended;
/// `current-context` becomes the new context; every other key is kept.
pub fn merge(existing: Config, new: &Config, force: bool) -> Result<Config> {
    let mut root = existing;
    if root.api_version.is_empty() {
        root.api_version = kk_core::kubeconfig::API_VERSION.to_string();
    }
    if root.kind.is_empty() {
        root.kind = kk_core::kubeconfig::KIND.to_string();
    }
    merge_entries(&mut root.clusters, new.clusters.clone(), force)?;
    merge_entries(&mut root.contexts, new.contexts.clone(), force)?;
    merge_entries(&mut root.users, new.users.clone(), force)?;
    if !new.current_context.is_empty() {
        root.current_context = new.current_context.clone();
    }
    Ok(root)
}

/// Parses kubeconfig text (empty text, or only comments or `null`, is an empty config).
pub fn parse(text: &str) -> Result<Config> {
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    let config: Option<Config> = serde_yaml_ng::from_str(text).context("not a valid kubeconfig")?;
    Ok(config.unwrap_or_default())
}

/// YAML text.
pub fn render(config: &Config) -> Result<String> {
    serde_yaml_ng::to_string(config).context("cannot write the kubeconfig as YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    fn spec() -> Spec {
        Spec {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n".to_vec()),
            cluster: "garr".into(),
            context: "alice@garr".into(),
            user: "alice".into(),
            namespace: Some("team-a".into()),
            command: "kubectl-keystone-auth".into(),
            args: vec![],
            env: vec![
                ("OS_AUTH_URL".into(), Secret::new("https://ks/v3")),
                (
                    "OS_APPLICATION_CREDENTIAL_SECRET".into(),
                    Secret::new("sec"),
                ),
            ],
            interactive_mode: InteractiveMode::Never,
            token: None,
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn names<T: Entry>(list: &[T]) -> Vec<&str> {
        list.iter().map(Entry::name).collect()
    }

    #[test]
    fn generated_kubeconfig_has_the_exec_user() {
        let text = render(&generate(&spec())).unwrap();
        // Read as plain YAML: the key names are kubeconfig's.
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["apiVersion"], s("v1"));
        assert_eq!(back["kind"], s("Config"));
        assert_eq!(back["current-context"], s("alice@garr"));
        assert_eq!(back["contexts"][0]["context"]["namespace"], s("team-a"));
        assert_eq!(back["contexts"][0]["context"]["user"], s("alice"));
        let exec = &back["users"][0]["user"]["exec"];
        assert_eq!(exec["apiVersion"], s("client.authentication.k8s.io/v1"));
        assert_eq!(exec["interactiveMode"], s("Never"));
        assert_eq!(exec["provideClusterInfo"], Value::Bool(false));
        assert_eq!(exec["command"], s("kubectl-keystone-auth"));
        assert_eq!(
            exec["env"][1]["name"],
            s("OS_APPLICATION_CREDENTIAL_SECRET")
        );
        assert_eq!(exec["env"][1]["value"], s("sec"));
        assert!(exec.get("args").is_none(), "no args: none written");
        assert!(exec["installHint"].as_str().unwrap().contains("PATH"));
        let cluster = &back["clusters"][0]["cluster"];
        assert!(cluster.get("insecure-skip-tls-verify").is_none());
        let ca = cluster["certificate-authority-data"].as_str().unwrap();
        use base64::Engine;
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(ca)
                .unwrap()
                .starts_with(b"-----BEGIN CERTIFICATE-----")
        );
        for section in ["clusters", "contexts", "users"] {
            let inner = &back[section][0][&section[..section.len() - 1]];
            assert_eq!(inner["extensions"][0]["name"], s(MARK), "{section}");
        }
        // And as the model: it reads back as written.
        assert_eq!(parse(&text).unwrap(), generate(&spec()));
    }

    #[test]
    fn a_bearer_token_user_has_a_token_and_no_exec() {
        let mut sp = spec();
        sp.token = Some(Secret::new("kkac1_aWQ.c2Vj"));
        let text = render(&generate(&sp)).unwrap();
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        let user = &back["users"][0]["user"];
        assert_eq!(user["token"], s("kkac1_aWQ.c2Vj"));
        assert!(user.get("exec").is_none(), "{text}");
        assert!(!text.contains("OS_APPLICATION_CREDENTIAL"), "{text}");
        // Written by this tool: --merge may replace it.
        assert!(generate(&sp).users[0].is_ours());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let generated = generate(&spec());
        let shown = format!("{generated:?} {spec:?}", spec = spec());
        assert!(
            !shown.contains("\"sec\"") && !shown.contains("https://ks/v3"),
            "{shown}"
        );
        assert!(render(&generated).unwrap().contains("value: sec"));
    }

    /// A kubeconfig of other tools, with keys the model does not name at every level: a merge
    /// keeps them all, and writes them back.
    #[test]
    fn merge_keeps_what_the_model_does_not_name() {
        let existing = r#"
apiVersion: v1
kind: Config
preferences: {colors: true}
clusters:
- name: prod
  cluster:
    server: https://prod:6443
    certificate-authority-data: LS0tLS1CRUdJTg==
    future-cluster-field: {a: [1, 2]}
    extensions:
    - name: vendor
      extension: {region: eu}
users:
- name: oidc
  user:
    auth-provider:
      name: oidc
      config: {id-token: eyJhbGciOi.x.y, idp-issuer-url: "https://idp"}
- name: admin
  user: {token: abc, as: bob}
contexts:
- name: prod
  context: {cluster: prod, user: admin, namespace: ops}
  future-entry-field: 1
current-context: prod
future-top-level: kept
"#;
        let before: Value = serde_yaml_ng::from_str(existing).unwrap();
        let parsed = parse(existing).unwrap();
        // Read and written back unchanged: same YAML value.
        let again: Value = serde_yaml_ng::from_str(&render(&parsed).unwrap()).unwrap();
        assert_eq!(again, before);
        let merged = merge(parsed, &generate(&spec()), false).unwrap();
        let out: Value = serde_yaml_ng::from_str(&render(&merged).unwrap()).unwrap();
        assert_eq!(out["future-top-level"], s("kept"));
        assert_eq!(out["preferences"], before["preferences"]);
        assert_eq!(out["clusters"][0], before["clusters"][0]);
        assert_eq!(out["users"][0], before["users"][0]);
        assert_eq!(out["users"][1], before["users"][1]);
        assert_eq!(out["contexts"][0], before["contexts"][0]);
        assert_eq!(out["current-context"], s("alice@garr"));
    }

    #[test]
    fn merge_keeps_other_entries_and_replaces_same_names() {
        let existing = parse(
            r#"
apiVersion: v1
kind: Config
preferences: {colors: true}
clusters:
- name: prod
  cluster: {server: "https://prod:6443"}
- name: garr
  cluster: {server: "https://old:6443"}
contexts:
- name: prod
  context: {cluster: prod, user: admin}
users:
- name: admin
  user: {token: abc}
current-context: prod
"#,
        )
        .unwrap();
        // "garr" is someone else's cluster: refused without --force.
        let err = merge(existing.clone(), &generate(&spec()), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cluster named \"garr\"")
                && err.contains("--cluster-name")
                && err.contains("--force"),
            "{err}"
        );
        let merged = merge(existing, &generate(&spec()), true).unwrap();
        assert_eq!(names(&merged.clusters), ["prod", "garr"]);
        assert_eq!(merged.clusters[0].cluster.server, "https://prod:6443");
        assert_eq!(merged.clusters[1].cluster.server, "https://127.0.0.1:6443");
        assert_eq!(names(&merged.contexts), ["prod", "alice@garr"]);
        assert_eq!(merged.users[0].user.token, Some(Secret::new("abc")));
        assert_eq!(names(&merged.users), ["admin", "alice"]);
        assert_eq!(merged.current_context, "alice@garr");
        assert_eq!(merged.preferences.as_ref().unwrap().colors, Some(true));
        // Our own entries are replaced without --force.
        let mut other = spec();
        other.server = "https://127.0.0.1:7443".into();
        let again = merge(merged, &generate(&other), false).unwrap();
        assert_eq!(names(&again.clusters), ["prod", "garr"]);
        assert_eq!(again.clusters[1].cluster.server, "https://127.0.0.1:7443");
    }

    #[test]
    fn entries_of_others_are_never_replaced_without_force() {
        let generated = generate(&spec());
        for (entry, flag) in [
            (
                "contexts: [{name: alice@garr, context: {namespace: theirs}}]",
                "--context-name",
            ),
            (
                "users: [{name: alice, user: {token: theirs}}]",
                "--kube-user",
            ),
        ] {
            let text = format!("{entry}\n");
            let err = merge(parse(&text).unwrap(), &generated, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag) && err.contains("--force"), "{err}");
            assert!(merge(parse(&text).unwrap(), &generated, true).is_ok());
        }
        // A user of an older version (no extension, our install hint) counts as ours.
        let old = format!(
            "users:\n- name: alice\n  user:\n    exec:\n      command: kubectl-keystone-auth\n      installHint: {:?}\n",
            INSTALL_HINT
        );
        assert!(merge(parse(&old).unwrap(), &generated, false).is_ok());
        assert!(generated.clusters[0].is_ours());
        assert!(generated.contexts[0].is_ours());
        assert!(generated.users[0].is_ours());
        let theirs =
            parse("users:\n- name: alice\n  user:\n    exec: {command: kubectl-keystone-auth}\n")
                .unwrap();
        assert!(!theirs.users[0].is_ours());
    }

    #[test]
    fn merge_into_nothing_and_into_garbage() {
        for empty in ["", "  \n", "# nothing yet\n", "~\n", "null"] {
            let merged = merge(parse(empty).unwrap(), &generate(&spec()), false).unwrap();
            assert_eq!(names(&merged.users), ["alice"], "{empty:?}");
            assert_eq!(merged.api_version, "v1");
            assert_eq!(merged.kind, "Config");
        }
        assert!(parse("[1, 2]").is_err());
        assert!(parse("users: 3").is_err());
        assert!(parse("users: [{name: u, user: {exec: {interactiveMode: Sometimes}}}]").is_err());
        let merged = merge(parse("users: null").unwrap(), &generate(&spec()), false).unwrap();
        assert_eq!(merged.users.len(), 1);
    }
}
