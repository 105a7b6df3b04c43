//! The hooks' scenarios as unit tests: observe → plan → apply on the in-memory machine
//! ([`super::fake::Fake`]), and the plans themselves ("a second run plans nothing").

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::fake::{CHARM, Fake, PRINCIPAL_ARGS, ROOT};
use super::hook_tools::{Level, Status};
use super::hooks::{self, Ctx};
use super::observe::{self, Env};
use super::options;
use super::plan::{self, Action, changes_machine};
use super::render::{APISERVER_UNIT, Paths, SERVICE_UNIT};

const AUTHN_FILE: &str = "authentication-token-webhook-config-file";
const AUTHN_VERSION: &str = "authentication-token-webhook-version";
const AUTHN_CACHE_TTL: &str = "authentication-token-webhook-cache-ttl";
const AUTHZ_FILE: &str = "authorization-webhook-config-file";
const MODE: &str = "authorization-mode";

const DEPLOY: [&str; 7] = [
    "install",
    "leader-elected",
    "config-changed",
    "start",
    "kubernetes-master-relation-created",
    "kubernetes-master-relation-joined",
    "kubernetes-master-relation-changed",
];

fn env() -> Env {
    Env {
        paths: Paths::new(ROOT),
        charm_dir: PathBuf::from(CHARM),
        health_timeout: Duration::from_secs(1),
    }
}

fn hook(f: &Fake, event: &str) {
    hooks::run(
        f,
        &Ctx {
            env: env(),
            event: event.into(),
        },
    )
    .unwrap();
}

fn deploy(f: &Fake) {
    for e in DEPLOY {
        hook(f, e);
    }
}

/// The plan `event` would carry out now.
fn plan_for(f: &Fake, event: &str) -> Vec<Action> {
    let env = env();
    match hooks::hook_for(event) {
        hooks::Hook::Reconcile => match options::validate(&f.config.borrow().clone()) {
            Err(e) => plan::bad_options(&e),
            Ok(s) => plan::reconcile(&observe::reconcile(f, &env, &s).unwrap(), &s),
        },
        hooks::Hook::RelationBroken => plan::relation_broken(&observe::teardown(f, &env).unwrap()),
        hooks::Hook::Stop => plan::stop(&observe::teardown(f, &env).unwrap()),
        hooks::Hook::Remove => plan::remove(&observe::teardown(f, &env).unwrap()),
        hooks::Hook::Unhandled => vec![],
    }
}

/// `event` planned now changes nothing (only the status and the version are reported, the
/// service is checked), and running it calls nothing that changes the machine.
fn assert_idempotent(f: &Fake, event: &str) {
    let p = plan_for(f, event);
    let changing: Vec<_> = p.iter().filter(|a| changes_machine(a)).collect();
    assert!(changing.is_empty(), "{event} again plans {changing:#?}");
    assert!(
        !p.iter()
            .any(|a| matches!(a, Action::Status(Status::Maintenance, _))),
        "{event}: {p:#?}"
    );
    let calls = f.calls.borrow().len();
    let hashed = f.hashed.borrow().len();
    hook(f, event);
    assert_eq!(f.calls.borrow()[calls..], [] as [String; 0], "{event}");
    assert_eq!(
        f.hashed.borrow()[hashed..],
        [] as [PathBuf; 0],
        "{event} hashed a binary again"
    );
}

fn logged(f: &Fake) -> String {
    f.logs
        .borrow()
        .iter()
        .map(|(l, m)| format!("{l:?} {m}\n"))
        .collect()
}

fn conf(name: &str) -> String {
    format!("/etc/kubernetes-keystone/{name}")
}

fn root(p: &str) -> String {
    format!("{ROOT}{p}")
}

#[test]
fn a_fresh_machine_gets_everything_in_order() {
    let f = Fake::new(true);
    let p = plan_for(&f, "install");
    let kinds: Vec<String> = p
        .iter()
        .filter(|a| changes_machine(a) || matches!(a, Action::Gate { .. }))
        .map(|a| match a {
            Action::Write { path, .. } => {
                format!("write /{}", path.strip_prefix(ROOT).unwrap().display())
            }
            Action::EnsureDir { path, .. } => {
                format!("mkdir /{}", path.strip_prefix(ROOT).unwrap().display())
            }
            Action::Gate { check, .. } => match check {
                plan::Check::Config { .. } => "check-config".into(),
                plan::Check::Healthy { url, .. } => format!("healthy {url}"),
            },
            Action::Install { .. } => "install".into(),
            Action::Systemctl(a) => format!("systemctl {}", a.join(" ")),
            Action::Snap(_) => "snap".into(),
            Action::SaveState(_) => "save".into(),
            Action::AddUser => "useradd".into(),
            other => format!("{other:?}"),
        })
        .collect();
    let port = 8443;
    let expected = [
        "useradd".to_string(),
        "mkdir /etc/kubernetes-keystone".into(),
        "mkdir /opt/kubernetes-keystone/bin".into(),
        "mkdir /var/lib/kubernetes-keystone".into(),
        "mkdir /etc/systemd/system".into(),
        "write /var/lib/kubernetes-keystone/charm-ca.key".into(),
        "write /var/lib/kubernetes-keystone/charm-ca.crt".into(),
        "write /var/lib/kubernetes-keystone/charm-server.key".into(),
        "write /var/lib/kubernetes-keystone/charm-server.crt".into(),
        "check-config".into(),
        "install".into(),
        "write /etc/kubernetes-keystone/tls.crt".into(),
        "write /etc/kubernetes-keystone/tls.key".into(),
        "write /etc/kubernetes-keystone/ca.crt".into(),
        "write /etc/kubernetes-keystone/policy.json".into(),
        "write /etc/kubernetes-keystone/config.toml".into(),
        "write /etc/systemd/system/k8s-keystone-auth.service".into(),
        "systemctl daemon-reload".into(),
        format!("systemctl enable {SERVICE_UNIT}"),
        format!("systemctl start {SERVICE_UNIT}"),
        format!("healthy https://127.0.0.1:{port}/healthz"),
        format!("healthy https://127.0.0.1:{port}/healthz"),
        format!("healthy https://127.0.0.1:{port}/healthz"),
        "write /etc/kubernetes-keystone/authn-webhook.kubeconfig".into(),
        "write /etc/kubernetes-keystone/authz-webhook.kubeconfig".into(),
        "snap".into(),
        format!("systemctl restart {APISERVER_UNIT}"),
        "save".into(),
    ];
    assert_eq!(kinds, expected);
    // The key is written readable by the service's group only; its bytes never show.
    let key = p
        .iter()
        .find_map(|a| match a {
            Action::Write { path, access, .. } if path.ends_with("tls.key") => Some(*access),
            _ => None,
        })
        .unwrap();
    assert_eq!(key, super::host::Access::Service);
    assert!(!format!("{p:?}").contains("SERVER KEY"));
}

fn the_whole_life(args_style: bool) {
    let f = Fake::new(args_style);
    let original = f.snap.borrow().clone();
    deploy(&f);
    let (s, m) = f.status();
    assert_eq!(s, Status::Active, "{m}");
    assert!(
        m.contains("port 8443") && m.contains("Node,RBAC,Webhook"),
        "{m}"
    );
    let authn_kc = root(&conf("authn-webhook.kubeconfig"));
    assert_eq!(f.flag(AUTHN_FILE), Some(authn_kc.clone()));
    assert_eq!(f.flag(AUTHN_VERSION).as_deref(), Some("v1"));
    assert_eq!(f.flag(AUTHN_CACHE_TTL).as_deref(), Some("30s"));
    assert_eq!(f.flag(MODE).as_deref(), Some("Node,RBAC,Webhook"));
    assert!(f.flag(AUTHZ_FILE).is_some());
    if args_style {
        let snap = f.snap.borrow();
        let c = snap.as_ref().unwrap();
        assert_eq!(c.len(), 1);
        assert!(
            c["args"].as_str().unwrap().starts_with(r#"--advertise-address="10.0.0.5" --authorization-mode="Node,RBAC,Webhook" --etcd-servers="https://10.0.0.7:2379" "#),
            "{c:?}"
        );
    } else {
        assert_eq!(f.snap.borrow().as_ref().unwrap()["v"], json!(2));
    }
    assert_eq!(f.unit(SERVICE_UNIT).starts, 1);
    assert!(f.unit(SERVICE_UNIT).enabled);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 1);
    assert_eq!(
        f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
            .as_deref(),
        Some("k8s-keystone-auth build 1")
    );
    let files = f.files.borrow().clone();
    for (name, mode) in [
        ("config.toml", 0o640),
        ("tls.key", 0o640),
        ("policy.json", 0o640),
        ("tls.crt", 0o644),
        ("ca.crt", 0o644),
        ("authn-webhook.kubeconfig", 0o600),
        ("authz-webhook.kubeconfig", 0o600),
    ] {
        let file = &files[&PathBuf::from(root(&conf(name)))];
        assert_eq!(file.mode, mode, "{name}");
        if mode == 0o640 {
            assert_eq!(file.gid, 997, "{name}");
        }
    }
    assert!(f.read_str(&conf("sync.yaml")).is_none());
    assert_eq!(
        f.dirs.borrow()[&PathBuf::from(root("/etc/kubernetes-keystone"))],
        (0o750, 997)
    );
    let log = logged(&f);
    for needle in [
        "created the charm's CA",
        "wrote ",
        "starting k8s-keystone-auth.service",
        "kube-apiserver options",
        "restarted snap.kube-apiserver.daemon",
    ] {
        assert!(log.contains(needle), "{needle} not in\n{log}");
    }
    // Every hook twice: the second run plans nothing, hashes nothing.
    for e in DEPLOY.iter().chain(&[
        "update-status",
        "upgrade-charm",
        "kubernetes-master-relation-departed",
    ]) {
        assert_idempotent(&f, e);
    }

    // log-level: the service restarts, kube-apiserver does not.
    f.set(json!({"log-level": "debug"}));
    hook(&f, "config-changed");
    assert!(
        f.read_str(&conf("config.toml"))
            .unwrap()
            .contains("log_level = \"debug\"")
    );
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 1);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 1);
    assert_idempotent(&f, "config-changed");

    // policy: the service reloads it itself.
    f.set(json!({"policy": "[]"}));
    hook(&f, "config-changed");
    assert_eq!(f.read_str(&conf("policy.json")).as_deref(), Some("[]"));
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 1);
    assert_idempotent(&f, "config-changed");

    // authorization-mode without Webhook: the authorization webhook goes, and comes back.
    f.set(json!({"authorization-mode": "Node,RBAC"}));
    hook(&f, "config-changed");
    assert_eq!(f.flag(MODE).as_deref(), Some("Node,RBAC"));
    assert_eq!(f.flag(AUTHZ_FILE), None);
    assert_eq!(f.flag(AUTHN_FILE), Some(authn_kc.clone()));
    assert!(f.read_str(&conf("authz-webhook.kubeconfig")).is_none());
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 2);
    assert_idempotent(&f, "config-changed");
    f.set(json!({"authorization-mode": "Node,RBAC,Webhook"}));
    hook(&f, "config-changed");
    assert!(f.flag(AUTHZ_FILE).is_some());
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 3);

    // port: the service restarts, the kubeconfigs follow, kube-apiserver restarts.
    f.set(json!({"port": 9443}));
    hook(&f, "config-changed");
    assert!(
        f.read_str(&conf("authn-webhook.kubeconfig"))
            .unwrap()
            .contains("https://127.0.0.1:9443/authenticate")
    );
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 2);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 4);
    assert_idempotent(&f, "update-status");

    // relation-broken, stop, remove.
    f.related.set(false);
    hook(&f, "kubernetes-master-relation-broken");
    assert_eq!(*f.snap.borrow(), original);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 5);
    assert_eq!(f.status().0, Status::Waiting);
    assert_idempotent(&f, "kubernetes-master-relation-broken");
    hook(&f, "stop");
    assert!(!f.unit(SERVICE_UNIT).active && !f.unit(SERVICE_UNIT).enabled);
    assert_eq!(f.status(), (Status::Maintenance, "stopped".into()));
    assert_idempotent(&f, "stop");
    hook(&f, "remove");
    assert_eq!(*f.snap.borrow(), original);
    let left: Vec<_> = f
        .files
        .borrow()
        .keys()
        .filter(|p| p.starts_with(ROOT))
        .cloned()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for d in [
        "/etc/kubernetes-keystone",
        "/opt/kubernetes-keystone",
        "/var/lib/kubernetes-keystone",
    ] {
        assert!(
            !f.dirs.borrow().contains_key(&PathBuf::from(root(d))),
            "{d}"
        );
    }
    assert_eq!(f.gid.get(), None);
    assert_eq!(f.status(), (Status::Maintenance, "removed".into()));
    assert_idempotent(&f, "remove");
}

#[test]
fn whole_life_with_per_flag_snap_options() {
    the_whole_life(false);
}

#[test]
fn whole_life_with_the_args_snap_option() {
    the_whole_life(true);
}

#[test]
fn bad_options_plan_only_a_blocked_status_naming_the_option() {
    // Each bad option against a good deployment: blocked naming it, nothing else.
    let f = Fake::new(true);
    deploy(&f);
    let garbage_pem =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let cases = [
        (json!({"keystone-url": ""}), "keystone-url"),
        (
            json!({"keystone-url": "ftp://keystone.example/v3"}),
            "keystone-url",
        ),
        (json!({"policy": "[{\"users\": "}), "policy"),
        (json!({"keystone-ca": garbage_pem}), "keystone-ca"),
        (
            json!({"sync-config": "data-types-to-sync: [everything]"}),
            "sync-config",
        ),
        (
            json!({"sync-config": "data-types-to-sync: [projects]"}),
            "sync-config",
        ),
        (
            json!({"k8s-keystone-auth-url": "http://127.0.0.1:9/k8s-keystone-auth"}),
            "k8s-keystone-auth-url",
        ),
        (
            json!({"authn-server-url": "http://127.0.0.1:8443/authenticate"}),
            "authn-server-url",
        ),
        (
            json!({"authz-server-url": "https://127.0.0.1:8443"}),
            "authz-server-url",
        ),
        (
            json!({"authorization-mode": "RBAC,Sometimes"}),
            "authorization-mode",
        ),
        (json!({"tls-cert": garbage_pem}), "tls-key"),
        (json!({"cache-ttl": "soon"}), "cache-ttl"),
        (
            json!({"apiserver-authn-cache-ttl": "soon"}),
            "apiserver-authn-cache-ttl",
        ),
        (json!({"port": 80}), "port"),
        (json!({"log-level": "chatty"}), "log-level"),
    ];
    let good = f.config.borrow().clone();
    for (bad, option) in cases {
        f.set(bad.clone());
        let p = plan_for(&f, "config-changed");
        let Some(Action::Status(Status::Blocked, m)) = p.last() else {
            panic!("{bad}: {p:?}")
        };
        assert!(
            m.starts_with(&format!("bad option {option}: ")),
            "{bad}: {m}"
        );
        assert!(!p.iter().any(changes_machine), "{bad}: {p:?}");
        assert!(
            p.iter()
                .any(|a| matches!(a, Action::Log(Level::Warning, l) if l.contains(option)))
        );
        *f.config.borrow_mut() = good.clone();
        assert_idempotent(&f, "config-changed");
    }
    f.set(json!({"keystone-url": "", "policy": "{"}));
    let p = plan_for(&f, "config-changed");
    let Some(Action::Status(_, m)) = p.last() else {
        panic!()
    };
    assert!(m.ends_with("(and 1 more: policy)"), "{m}");
}

#[test]
fn a_password_in_a_url_never_reaches_a_status_or_log() {
    let f = Fake::new(true);
    f.set(
        json!({"k8s-keystone-auth-url": "https://admin:Pw0rdInTheUrl@127.0.0.1:1/x",
                 "tls-cert": "x", "tls-key": 1234567890123_i64}),
    );
    hook(&f, "install");
    assert_eq!(f.status().0, Status::Blocked);
    let all = format!("{:?}{}", f.statuses.borrow(), logged(&f));
    assert!(
        !all.contains("Pw0rdInTheUrl") && !all.contains("1234567890123"),
        "{all}"
    );
}

#[test]
fn update_status_restores_options_the_principal_overwrote() {
    for args_style in [false, true] {
        let f = Fake::new(args_style);
        deploy(&f);
        let ours = f.snap.borrow().clone();
        if args_style {
            *f.snap.borrow_mut() = Some(
                [(
                    "args".to_string(),
                    json!(PRINCIPAL_ARGS.replace("Node,RBAC", "Node,RBAC,ABAC")),
                )]
                .into(),
            );
        } else {
            let mut s = f.snap.borrow_mut();
            let c = s.as_mut().unwrap();
            c.insert(MODE.into(), json!("Node,RBAC,ABAC"));
            c.remove(AUTHN_FILE);
        }
        hook(&f, "update-status");
        let (s, m) = f.status();
        assert_eq!(s, Status::Active);
        assert!(
            m.contains("restored kube-apiserver options the principal overwrote")
                && m.contains(AUTHN_FILE)
                && m.contains(MODE),
            "{m}"
        );
        assert_eq!(*f.snap.borrow(), ours);
        assert_eq!(f.unit(APISERVER_UNIT).restarts, 2);
        assert!(logged(&f).contains("Warning kube-apiserver options were overwritten"));
        assert_idempotent(&f, "update-status");
        assert!(!f.status().1.contains("restored"));
        // Removal gives the principal its latest choice back.
        f.related.set(false);
        hook(&f, "kubernetes-master-relation-broken");
        assert_eq!(f.flag(MODE).as_deref(), Some("Node,RBAC,ABAC"));
        assert_eq!(f.flag(AUTHN_FILE), None);
        assert_eq!(f.flag(AUTHZ_FILE), None);
    }
}

#[test]
fn per_flag_options_are_cleaned_up_when_the_principal_switches_to_args() {
    let f = Fake::new(false);
    *f.snap.borrow_mut() = Some(Default::default());
    deploy(&f);
    assert_eq!(f.flag(MODE).as_deref(), Some("Node,RBAC,Webhook"));
    f.snap
        .borrow_mut()
        .as_mut()
        .unwrap()
        .insert("args".into(), json!(PRINCIPAL_ARGS));
    hook(&f, "update-status");
    assert_eq!(f.status().0, Status::Active);
    let keys: Vec<String> = f.snap.borrow().as_ref().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["args"]);
    assert_eq!(f.flag(MODE).as_deref(), Some("Node,RBAC,Webhook"));
    assert_idempotent(&f, "update-status");
    hook(&f, "stop");
    assert_eq!(
        *f.snap.borrow(),
        Some([("args".to_string(), json!(PRINCIPAL_ARGS))].into())
    );
}

#[test]
fn the_authentication_webhook_can_be_left_to_the_principal() {
    let ck = "/root/cdk/auth-webhook/auth-webhook-conf.yaml";
    for args_style in [false, true] {
        let f = Fake::new(args_style);
        if args_style {
            *f.snap.borrow_mut() = Some(
                [(
                    "args".to_string(),
                    json!(format!("{PRINCIPAL_ARGS} --{AUTHN_FILE}=\"{ck}\"")),
                )]
                .into(),
            );
        } else {
            f.snap
                .borrow_mut()
                .as_mut()
                .unwrap()
                .insert(AUTHN_FILE.into(), json!(ck));
        }
        f.set(json!({"authentication-webhook": false}));
        deploy(&f);
        let (s, m) = f.status();
        assert_eq!(s, Status::Active);
        assert!(m.contains("authentication left to the principal"), "{m}");
        assert_eq!(f.flag(AUTHN_FILE).as_deref(), Some(ck));
        assert_eq!(f.flag(AUTHN_VERSION), None);
        assert_eq!(f.flag(AUTHN_CACHE_TTL), None);
        assert!(f.flag(AUTHZ_FILE).is_some());
        assert_idempotent(&f, "update-status");
        f.set(json!({"authentication-webhook": true}));
        hook(&f, "config-changed");
        assert_ne!(f.flag(AUTHN_FILE).as_deref(), Some(ck));
        assert_eq!(f.flag(AUTHN_VERSION).as_deref(), Some("v1"));
        f.set(json!({"authentication-webhook": false, "apiserver-authn-cache-ttl": "5s"}));
        hook(&f, "config-changed");
        assert_eq!(
            f.flag(AUTHN_FILE).as_deref(),
            Some(ck),
            "the principal's value back"
        );
        assert_eq!(f.flag(AUTHN_VERSION), None);
        assert_eq!(f.flag(AUTHN_CACHE_TTL), None);
        assert!(f.read_str(&conf("authn-webhook.kubeconfig")).is_none());
        f.set(json!({"authentication-webhook": true}));
        hook(&f, "config-changed");
        assert_eq!(f.flag(AUTHN_CACHE_TTL).as_deref(), Some("5s"));
    }
}

#[test]
fn a_new_binary_restarts_only_the_service_and_is_hashed_once() {
    let f = Fake::new(false);
    deploy(&f);
    let snap = f.snap.borrow().clone();
    let hashed = f.hashed.borrow().len();
    f.ship(b"k8s-keystone-auth build 2".to_vec());
    hook(&f, "upgrade-charm");
    assert_eq!(
        f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
            .as_deref(),
        Some("k8s-keystone-auth build 2")
    );
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 1);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 1);
    assert_eq!(*f.snap.borrow(), snap);
    assert_eq!(f.status().0, Status::Active);
    assert_eq!(
        f.hashed.borrow()[hashed..],
        [PathBuf::from(CHARM).join("bin/k8s-keystone-auth")],
        "only the changed charm binary is hashed, once"
    );
    assert_idempotent(&f, "config-changed");
    // The same bytes with a new mtime (charm refreshed): hashed again, not reinstalled.
    f.ship(b"k8s-keystone-auth build 2".to_vec());
    let p = plan_for(&f, "upgrade-charm");
    assert!(
        !p.iter().any(|a| matches!(a, Action::Install { .. })),
        "{p:?}"
    );
    // The installed binary touched (same bytes): hashed again, not reinstalled; replaced by
    // something else: put back.
    let installed = PathBuf::from(root("/opt/kubernetes-keystone/bin/k8s-keystone-auth"));
    f.files.borrow_mut().get_mut(&installed).unwrap().mtime_ns += 1;
    let p = plan_for(&f, "update-status");
    assert!(
        !p.iter().any(|a| matches!(a, Action::Install { .. })),
        "same bytes: {p:?}"
    );
    f.files.borrow_mut().get_mut(&installed).unwrap().content = b"tampered".to_vec();
    hook(&f, "update-status");
    assert_eq!(
        f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
            .as_deref(),
        Some("k8s-keystone-auth build 2")
    );
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 2);
}

#[test]
fn a_binary_that_refuses_the_config_is_never_installed() {
    let f = Fake::new(false);
    deploy(&f);
    f.ship(b"k8s-keystone-auth build 3 refuses".to_vec());
    hook(&f, "upgrade-charm");
    let (s, m) = f.status();
    assert_eq!(s, Status::Blocked);
    assert!(
        m.contains("refused by this build") && m.contains("not installed"),
        "{m}"
    );
    assert_eq!(
        f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
            .as_deref(),
        Some("k8s-keystone-auth build 1")
    );
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 0);
    // Later hooks stay blocked without checking again.
    for e in ["update-status", "config-changed"] {
        let p = plan_for(&f, e);
        assert!(
            !p.iter().any(|a| matches!(a, Action::Gate { .. })),
            "{e}: {p:?}"
        );
        assert_idempotent(&f, e);
        assert_eq!(f.status(), (s, m.clone()));
    }
    f.ship(b"k8s-keystone-auth build 4".to_vec());
    hook(&f, "upgrade-charm");
    assert_eq!(f.status().0, Status::Active);
    assert_eq!(f.unit(SERVICE_UNIT).restarts, 1);
}

#[test]
fn blocked_by_check_config_from_the_start_issues_certificates_once() {
    let f = Fake::new(true);
    f.ship(b"k8s-keystone-auth refuses".to_vec());
    hook(&f, "install");
    let (s, m) = f.status();
    assert_eq!(s, Status::Blocked);
    assert!(m.contains("refused by this build"), "{m}");
    assert_eq!(f.issued.get(), 2);
    for e in ["config-changed", "update-status"] {
        assert_idempotent(&f, e);
        assert_eq!(f.status(), (s, m.clone()));
    }
    assert_eq!(f.issued.get(), 2);
}

#[test]
fn waits_for_the_relation_then_for_the_snap() {
    let f = Fake::new(true);
    f.related.set(false);
    *f.snap.borrow_mut() = None;
    hook(&f, "install");
    hook(&f, "config-changed");
    let (s, m) = f.status();
    assert_eq!(s, Status::Waiting);
    assert!(
        m.contains("waiting for the kubernetes-master relation"),
        "{m}"
    );
    assert!(f.unit(SERVICE_UNIT).active);
    assert_idempotent(&f, "config-changed");
    f.related.set(true);
    hook(&f, "kubernetes-master-relation-joined");
    assert_eq!(
        f.status(),
        (
            Status::Waiting,
            "waiting for the kube-apiserver snap".into()
        )
    );
    *f.snap.borrow_mut() = Some([("args".to_string(), json!(PRINCIPAL_ARGS))].into());
    hook(&f, "update-status");
    assert_eq!(f.status().0, Status::Active);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 1);
    // Stop without options set only stops.
    let g = Fake::new(true);
    g.related.set(false);
    hook(&g, "install");
    hook(&g, "stop");
    assert_eq!(g.status(), (Status::Maintenance, "stopped".into()));
}

#[test]
fn kube_apiserver_is_never_pointed_at_a_webhook_that_does_not_answer() {
    let f = Fake::new(true);
    let original = f.snap.borrow().clone();
    f.service_broken.set(true);
    deploy(&f);
    let (s, m) = f.status();
    assert_eq!(s, Status::Blocked);
    assert!(
        m.contains("does not answer") && m.contains("kube-apiserver left unchanged"),
        "{m}"
    );
    assert_eq!(*f.snap.borrow(), original);
    assert_eq!(f.unit(APISERVER_UNIT).restarts, 0);
    assert!(f.read_str(&conf("authn-webhook.kubeconfig")).is_none());
    f.service_broken.set(false);
    hook(&f, "config-changed");
    assert_eq!(f.status().0, Status::Active);
    f.service_broken.set(true);
    hook(&f, "config-changed");
    let (s, m) = f.status();
    assert_eq!(s, Status::Blocked);
    assert!(
        m.contains("kube-apiserver options restored until it does"),
        "{m}"
    );
    assert_eq!(*f.snap.borrow(), original);
    f.service_broken.set(false);
    hook(&f, "config-changed");
    assert_eq!(f.status().0, Status::Active);
    assert!(f.flag(AUTHN_FILE).is_some());
}

#[test]
fn a_server_url_that_does_not_answer_leaves_kube_apiserver_alone() {
    let f = Fake::new(true);
    let original = f.snap.borrow().clone();
    f.set(json!({"authn-server-url": "https://127.0.0.1:9999/authenticate"}));
    f.dead
        .borrow_mut()
        .insert("https://127.0.0.1:9999/healthz".into());
    deploy(&f);
    let (s, m) = f.status();
    assert_eq!(s, Status::Blocked);
    assert!(
        m.starts_with("authn-server-url: ") && m.contains("does not answer"),
        "{m}"
    );
    assert_eq!(*f.snap.borrow(), original);
}

#[test]
fn tls_from_the_options_is_used_and_a_shared_url_listens_everywhere() {
    let (ca, ca_key) = super::pki::new_ca().unwrap();
    let (cert, key) = super::pki::server_cert(&ca_key, &["webhook.example".into()]).unwrap();
    let f = Fake::new(true);
    f.set(
        json!({"tls-cert": cert, "tls-key": key.expose(), "tls-ca": ca,
                 "authn-server-url": "https://webhook.example:8443/authenticate",
                 "authz-server-url": "https://webhook.example:8443/authorize"}),
    );
    deploy(&f);
    assert_eq!(f.status().0, Status::Active, "{:?}", f.status());
    assert_eq!(f.issued.get(), 0, "no charm CA with TLS from the options");
    assert_eq!(f.read_str(&conf("tls.key")).unwrap(), key.expose());
    assert!(
        f.read_str(&conf("config.toml"))
            .unwrap()
            .contains("0.0.0.0:8443")
    );
    let kc = f.read_str(&conf("authn-webhook.kubeconfig")).unwrap();
    assert!(kc.contains("https://webhook.example:8443/authenticate"));
    let all = format!("{:?}{}", f.statuses.borrow(), logged(&f));
    assert!(!all.contains(key.expose().lines().nth(1).unwrap()));
    assert_idempotent(&f, "update-status");
}

#[test]
fn downloads_once_with_the_checksum_and_keep_the_binary_on_failure() {
    let f = Fake::new(false);
    let body = b"k8s-keystone-auth downloaded".to_vec();
    let url = "http://127.0.0.1:1/k8s-keystone-auth";
    f.downloads.borrow_mut().insert(url.into(), body.clone());
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    f.set(json!({"k8s-keystone-auth-url": url, "k8s-keystone-auth-sha256": "0".repeat(64)}));
    hook(&f, "install");
    let (s, m) = f.status();
    assert_eq!(s, Status::Blocked);
    assert!(
        m.starts_with("k8s-keystone-auth-url: cannot install") && m.contains("SHA-256"),
        "{m}"
    );
    assert!(
        f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
            .is_none()
    );
    f.set(json!({"k8s-keystone-auth-sha256": sha}));
    deploy(&f);
    assert_eq!(f.status().0, Status::Active, "{:?}", f.status());
    assert_eq!(
        f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
            .unwrap()
            .as_bytes(),
        body
    );
    assert_eq!(f.downloaded.get(), 2);
    assert!(
        f.read_str("/var/lib/kubernetes-keystone/k8s-keystone-auth.download")
            .is_none()
    );
    assert_idempotent(&f, "config-changed");
    assert_idempotent(&f, "upgrade-charm");
    assert_eq!(f.downloaded.get(), 2);
    // Not a k8s-keystone-auth binary, or a 404: blocked, the installed binary stays.
    for (u, what) in [
        ("http://127.0.0.1:1/other", "--version"),
        ("http://127.0.0.1:1/none", "404"),
    ] {
        f.downloads
            .borrow_mut()
            .insert("http://127.0.0.1:1/other".into(), b"#!/bin/sh".to_vec());
        let sha_other: String = {
            use sha2::Digest;
            sha2::Sha256::digest(b"#!/bin/sh")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        f.set(json!({"k8s-keystone-auth-url": u, "k8s-keystone-auth-sha256": sha_other}));
        hook(&f, "config-changed");
        let (s, m) = f.status();
        assert_eq!(s, Status::Blocked);
        assert!(m.contains(what), "{m}");
        assert_eq!(
            f.read_str("/opt/kubernetes-keystone/bin/k8s-keystone-auth")
                .unwrap()
                .as_bytes(),
            body
        );
    }
}
