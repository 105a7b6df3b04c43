//! The kubeconfig generator: a cluster, a context and a user whose `exec` runs
//! `kubectl-keystone-auth` with the credential in `env`; and merging that into an existing
//! kubeconfig without touching its other entries. Pure: text in, text out.

use anyhow::{Context, Result, bail};
use serde_yaml_ng::{Mapping, Value};

use super::exec::EXEC_V1;
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
    pub interactive_mode: &'static str,
}

/// Name of the extension that marks the entries this tool wrote (in `extensions` of the
/// cluster, the context and the user), so that `--merge` replaces only its own entries.
pub const MARK: &str = "kubectl-keystone-auth";

fn mark() -> Value {
    Value::Sequence(vec![map(vec![
        ("name", s(MARK)),
        ("extension", map(vec![("generated-by", s(MARK))])),
    ])])
}

/// Whether an entry of `section` (`clusters`, `contexts`, `users`) was written by this tool:
/// it carries the [`MARK`] extension (or, for a user of an older version, the install hint).
pub fn is_ours(section: &str, entry: &Value) -> bool {
    let inner = match section {
        "clusters" => entry.get("cluster"),
        "contexts" => entry.get("context"),
        _ => entry.get("user"),
    };
    let Some(inner) = inner else {
        return false;
    };
    let marked = inner
        .get("extensions")
        .and_then(Value::as_sequence)
        .is_some_and(|exts| exts.iter().any(|e| e.get("name") == Some(&s(MARK))));
    let old_user = section == "users"
        && inner
            .get("exec")
            .and_then(|e| e.get("installHint"))
            .and_then(Value::as_str)
            == Some(INSTALL_HINT);
    marked || old_user
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

/// A complete kubeconfig.
pub fn generate(spec: &Spec) -> Value {
    use base64::Engine;
    let mut cluster = vec![("server", s(&spec.server))];
    if let Some(pem) = &spec.ca_pem {
        cluster.push((
            "certificate-authority-data",
            s(&base64::engine::general_purpose::STANDARD.encode(pem)),
        ));
    }
    cluster.push(("extensions", mark()));
    let mut context = vec![("cluster", s(&spec.cluster)), ("user", s(&spec.user))];
    if let Some(ns) = &spec.namespace {
        context.push(("namespace", s(ns)));
    }
    context.push(("extensions", mark()));
    let env: Vec<Value> = spec
        .env
        .iter()
        .map(|(k, v)| map(vec![("name", s(k)), ("value", s(v.expose()))]))
        .collect();
    let mut exec = vec![("apiVersion", s(EXEC_V1)), ("command", s(&spec.command))];
    if !spec.args.is_empty() {
        exec.push((
            "args",
            Value::Sequence(spec.args.iter().map(|a| s(a)).collect()),
        ));
    }
    exec.push(("env", Value::Sequence(env)));
    exec.push(("interactiveMode", s(spec.interactive_mode)));
    exec.push(("provideClusterInfo", Value::Bool(false)));
    exec.push(("installHint", s(INSTALL_HINT)));
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Config")),
        ("preferences", Value::Mapping(Mapping::new())),
        (
            "clusters",
            Value::Sequence(vec![map(vec![
                ("name", s(&spec.cluster)),
                ("cluster", map(cluster)),
            ])]),
        ),
        (
            "contexts",
            Value::Sequence(vec![map(vec![
                ("name", s(&spec.context)),
                ("context", map(context)),
            ])]),
        ),
        ("current-context", s(&spec.context)),
        (
            "users",
            Value::Sequence(vec![map(vec![
                ("name", s(&spec.user)),
                (
                    "user",
                    map(vec![("exec", map(exec)), ("extensions", mark())]),
                ),
            ])]),
        ),
    ])
}

/// Merges `new` (from [`generate`]) into `existing`: entries of `clusters`, `contexts` and
/// `users` with the same name are replaced when this tool wrote them (see [`is_ours`]) or when
/// `force`, and refused otherwise; others are kept as they are, new ones appended;
/// `current-context` becomes the new context; every other key is kept.
pub fn merge(existing: Value, new: &Value, force: bool) -> Result<Value> {
    let mut root = match existing {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        _ => bail!("the existing kubeconfig is not a YAML mapping"),
    };
    root.entry(s("apiVersion")).or_insert_with(|| s("v1"));
    root.entry(s("kind")).or_insert_with(|| s("Config"));
    for section in ["clusters", "contexts", "users"] {
        let incoming = new
            .get(section)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        let slot = root
            .entry(s(section))
            .or_insert_with(|| Value::Sequence(vec![]));
        if slot.is_null() {
            *slot = Value::Sequence(vec![]);
        }
        let list = slot
            .as_sequence_mut()
            .with_context(|| format!("`{section}` of the existing kubeconfig is not a list"))?;
        for entry in incoming {
            let name = entry.get("name").cloned();
            match list
                .iter_mut()
                .find(|e| name.is_some() && e.get("name") == name.as_ref())
            {
                Some(old) if force || is_ours(section, old) => *old = entry,
                Some(_) => {
                    let (kind, flag) = match section {
                        "clusters" => ("cluster", "--cluster-name"),
                        "contexts" => ("context", "--context-name"),
                        _ => ("user", "--kube-user"),
                    };
                    let shown = name.as_ref().and_then(Value::as_str).unwrap_or("?");
                    bail!(
                        "it already has a {kind} named {shown:?} that kubectl-keystone-auth did not write: choose another name with {flag}, or add --force to replace it"
                    );
                }
                None => list.push(entry),
            }
        }
    }
    if let Some(cc) = new.get("current-context") {
        root.insert(s("current-context"), cc.clone());
    }
    Ok(Value::Mapping(root))
}

/// Parses kubeconfig text (empty text is an empty config).
pub fn parse(text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_yaml_ng::from_str(text).context("not valid YAML")
}

/// YAML text.
pub fn render(v: &Value) -> Result<String> {
    serde_yaml_ng::to_string(v).context("cannot write the kubeconfig as YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

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
            interactive_mode: "Never",
        }
    }

    #[test]
    fn generated_kubeconfig_has_the_exec_user() {
        let v = generate(&spec());
        let text = render(&v).unwrap();
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["current-context"], s("alice@garr"));
        assert_eq!(back["contexts"][0]["context"]["namespace"], s("team-a"));
        let exec = &back["users"][0]["user"]["exec"];
        assert_eq!(exec["apiVersion"], s("client.authentication.k8s.io/v1"));
        assert_eq!(exec["interactiveMode"], s("Never"));
        assert_eq!(exec["command"], s("kubectl-keystone-auth"));
        assert_eq!(exec["env"][1]["value"], s("sec"));
        assert!(exec["installHint"].as_str().unwrap().contains("PATH"));
        let ca = back["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        use base64::Engine;
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(ca)
                .unwrap()
                .starts_with(b"-----BEGIN CERTIFICATE-----")
        );
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
        let clusters = merged["clusters"].as_sequence().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0]["cluster"]["server"], s("https://prod:6443"));
        assert_eq!(
            clusters[1]["cluster"]["server"],
            s("https://127.0.0.1:6443")
        );
        assert_eq!(merged["contexts"].as_sequence().unwrap().len(), 2);
        assert_eq!(merged["users"][0]["user"]["token"], s("abc"));
        assert_eq!(merged["users"].as_sequence().unwrap().len(), 2);
        assert_eq!(merged["current-context"], s("alice@garr"));
        assert_eq!(merged["preferences"]["colors"], Value::Bool(true));
        // Our own entries are replaced without --force.
        let mut other = spec();
        other.server = "https://127.0.0.1:7443".into();
        let again = merge(merged, &generate(&other), false).unwrap();
        assert_eq!(again["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(
            again["clusters"][1]["cluster"]["server"],
            s("https://127.0.0.1:7443")
        );
    }

    #[test]
    fn entries_of_others_are_never_replaced_without_force() {
        let generated = generate(&spec());
        for (section, inner, flag) in [
            ("contexts", "context", "--context-name"),
            ("users", "user", "--kube-user"),
        ] {
            let name = generated[section][0]["name"].as_str().unwrap();
            let text = format!("{section}:\n- name: {name}\n  {inner}: {{token: theirs}}\n");
            let err = merge(parse(&text).unwrap(), &generated, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag) && err.contains("--force"), "{err}");
        }
        // A user of an older version (no extension, our install hint) counts as ours.
        let old = format!(
            "users:\n- name: alice\n  user:\n    exec:\n      command: kubectl-keystone-auth\n      installHint: {:?}\n",
            INSTALL_HINT
        );
        assert!(merge(parse(&old).unwrap(), &generated, false).is_ok());
        for section in ["clusters", "contexts", "users"] {
            assert!(is_ours(section, &generated[section][0]), "{section}");
        }
    }

    #[test]
    fn merge_into_nothing_and_into_garbage() {
        let merged = merge(parse("").unwrap(), &generate(&spec()), false).unwrap();
        assert_eq!(merged["users"].as_sequence().unwrap().len(), 1);
        assert!(merge(parse("[1, 2]").unwrap(), &generate(&spec()), false).is_err());
        assert!(merge(parse("users: 3").unwrap(), &generate(&spec()), false).is_err());
        let merged = merge(parse("users: null").unwrap(), &generate(&spec()), false).unwrap();
        assert_eq!(merged["users"].as_sequence().unwrap().len(), 1);
    }
}
