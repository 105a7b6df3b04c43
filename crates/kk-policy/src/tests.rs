//! Golden tests (upstream test cases and documented examples), edge cases, parser errors and
//! warnings, and property tests.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const REFERENCE: &str = include_str!("../../../tests/fixtures/policy/reference_example.json");

fn parse_ok(json: &str) -> ParsedPolicy {
    match Policy::parse(json) {
        Ok(parsed) => parsed,
        Err(e) => panic!("policy should parse: {e}\n{json}"),
    }
}

fn load(json: &str) -> Policy {
    parse_ok(json).policy
}

/// Loads and asserts there is no warning.
fn load_clean(json: &str) -> Policy {
    let parsed = parse_ok(json);
    assert!(
        parsed.warnings.is_empty(),
        "unexpected warnings: {:#?}",
        parsed.warnings
    );
    parsed.policy
}

fn warnings(json: &str) -> Vec<String> {
    parse_ok(json).warnings
}

fn error(json: &str) -> String {
    match Policy::parse(json) {
        Ok(p) => panic!(
            "policy should be rejected, got {:?} / {:?}",
            p.policy, p.warnings
        ),
        Err(e) => e.to_string(),
    }
}

/// A SubjectAccessReview subject.
#[derive(Debug, Clone)]
struct Who {
    name: String,
    uid: String,
    groups: Vec<String>,
    extra: Option<BTreeMap<String, Vec<String>>>,
}

impl Who {
    /// A Keystone user: `extra` holds only a project id (as every answer of this service does);
    /// `project_id` adds more ids, which makes it no Keystone identity.
    fn new(name: &str) -> Self {
        Who {
            name: name.into(),
            uid: String::new(),
            groups: vec![],
            extra: Some(BTreeMap::from([(
                EXTRA_PROJECT_ID.to_string(),
                vec!["keystone-project-id".to_string()],
            )])),
        }
    }

    /// `extra` as kube-apiserver sends it for a ServiceAccount token or a client certificate:
    /// present, but not from this service.
    fn with_extra(name: &str, extra: &[(&str, &str)]) -> Self {
        let mut extra_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in extra {
            extra_map.entry((*k).into()).or_default().push((*v).into());
        }
        Who {
            extra: Some(extra_map),
            ..Who::new(name)
        }
    }

    /// A user whose SubjectAccessReview has no `extra` at all.
    fn without_extra(name: &str) -> Self {
        Who {
            extra: None,
            ..Who::new(name)
        }
    }

    fn push(mut self, key: &str, value: &str) -> Self {
        self.extra
            .get_or_insert_with(BTreeMap::new)
            .entry(key.into())
            .or_default()
            .push(value.into());
        self
    }

    fn role(self, role: &str) -> Self {
        self.push(EXTRA_ROLES, role)
    }

    fn project(self, name: &str) -> Self {
        self.push(EXTRA_PROJECT_NAME, name)
    }

    /// Sets the project id (replacing the default one).
    fn project_id(mut self, id: &str) -> Self {
        if let Some(e) = self.extra.as_mut() {
            e.insert(EXTRA_PROJECT_ID.into(), vec![id.into()]);
        }
        self
    }

    fn group(mut self, group: &str) -> Self {
        self.groups.push(group.into());
        self
    }

    fn uid(mut self, uid: &str) -> Self {
        self.uid = uid.into();
        self
    }

    fn decide(&self, policy: &Policy, attributes: Attributes<'_>) -> Decision {
        policy.evaluate(&Request {
            user: &self.name,
            uid: &self.uid,
            groups: &self.groups,
            extra: self.extra.as_ref(),
            attributes,
        })
    }

    fn can(&self, policy: &Policy, attributes: Attributes<'_>) -> bool {
        self.decide(policy, attributes).allowed
    }
}

/// A resource request in the core group without sub-resource.
fn res<'a>(verb: &'a str, namespace: &'a str, resource: &'a str) -> Attributes<'a> {
    sub(verb, namespace, resource, "")
}

/// A resource request with a sub-resource.
fn sub<'a>(verb: &'a str, namespace: &'a str, resource: &'a str, sub: &'a str) -> Attributes<'a> {
    Attributes::Resource {
        verb,
        namespace,
        group: "",
        version: "v1",
        resource,
        subresource: sub,
        name: "",
    }
}

/// A resource request in an API group.
fn grp<'a>(verb: &'a str, namespace: &'a str, group: &'a str, resource: &'a str) -> Attributes<'a> {
    Attributes::Resource {
        verb,
        namespace,
        group,
        version: "v1",
        resource,
        subresource: "",
        name: "x",
    }
}

fn nonres<'a>(verb: &'a str, path: &'a str) -> Attributes<'a> {
    Attributes::NonResource { verb, path }
}

fn allowed_by(reason: &str) -> Decision {
    Decision {
        allowed: true,
        denied: false,
        reason: reason.into(),
    }
}

fn denied() -> Decision {
    Decision {
        allowed: false,
        denied: false,
        reason: "no policy rule matched".into(),
    }
}

/// `[{"resource_permissions": {key: verbs}}]`, applying to every Keystone user.
fn v2_grant(key: &str, verbs: &str) -> String {
    format!(
        r#"[{{"resource_permissions": {{{}: {verbs}}}}}]"#,
        serde_json::json!(key)
    )
}

// ---------------------------------------------------------------------------------------------
// Go's own fixture policies (authorizer_test_policy*.json) are not copied here: the differential
// tests (tests/integration/differential.rs) read them from the downloaded Go module and compare
// every decision with the Go binary's. What follows checks what is ours: reasons and warnings.
// ---------------------------------------------------------------------------------------------

const V1_SAMPLE: &str = r#"[
  {"resource": {"verbs": ["get", "list"], "resources": ["things"], "version": "*", "namespace": "*"},
   "match": [{"type": "user", "values": ["user1"]}, {"type": "role", "values": ["role1"]}]},
  {"resource": {"verbs": ["get"], "resources": ["core"], "version": "", "namespace": "*"},
   "match": [{"type": "project", "values": ["project1"]}]},
  {"resource": {"verbs": ["get"], "resources": ["odd"], "version": "*", "namespace": "*"},
   "match": [{"type": "unknown_type", "values": ["x"]}]},
  {"nonresource": {"verbs": [""], "path": "/disabled"}, "match": [{"type": "user", "values": ["user1"]}]},
  {"resource": {"verbs": ["get"], "version": "*", "namespace": "*"}, "match": [{"type": "user", "values": ["user1"]}]},
  {"nonresource": {"verbs": ["get"], "path": "/user"}, "match": [{"type": "group", "values": ["group1"]}]},
  {"nonresource": {"verbs": ["get"], "path": "/api/*"}, "match": [{"type": "role", "values": ["role1"]}]}
]"#;

#[test]
fn v1_reasons_name_the_rule() {
    let p = load(V1_SAMPLE);
    let user1 = Who::new("user1")
        .group("group1")
        .project("project1")
        .role("role1");
    assert_eq!(
        user1.decide(&p, res("get", "", "things")),
        allowed_by("allowed by policy rule 0 (resource)")
    );
    assert_eq!(
        user1.decide(&p, res("get", "", "core")),
        allowed_by("allowed by policy rule 1 (resource)")
    );
    assert!(!user1.can(&p, grp("get", "", "apps", "core")));
    assert_eq!(
        user1.decide(&p, nonres("get", "/user")),
        allowed_by("allowed by policy rule 5 (nonresource)")
    );
    assert_eq!(
        user1.decide(&p, nonres("get", "/api/represents/wildcard")),
        allowed_by("allowed by policy rule 6 (nonresource)")
    );
    assert_eq!(user1.decide(&p, res("patch", "", "things")), denied());
    assert!(!user1.can(&p, res("get", "", "odd")));
    assert!(!user1.can(&p, nonres("get", "/disabled")));
}

#[test]
fn v1_warnings_name_the_rule() {
    let parsed = parse_ok(V1_SAMPLE);
    assert_eq!(parsed.policy.len(), 7);
    let w = parsed.warnings;
    assert!(
        w.iter()
            .any(|w| w.starts_with("rule 2: ") && w.contains("\"unknown_type\"")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("rule 3: ") && w.contains("disables")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("rule 4: ") && w.contains("resource.resources")),
        "{w:#?}"
    );
    assert_eq!(w.len(), 3, "{w:#?}");
}

#[test]
fn a_pathless_nonresource_loads_as_go_loads_it_and_never_allows() {
    // Upstream's own fixture has `{"nonresource": {"verbs": ["get"]}, ...}` (rule 15), which Go
    // skips at every request ("path should be set. skipping"). It loads, never allows, and the
    // rest of the rule (here a `resource` object) still applies.
    let json = r#"[
        {"nonresource": {"verbs": ["get"]}, "match": [{"type": "user", "values": ["user1"]}]},
        {"resource": {"verbs": ["get"], "resources": ["pods"], "version": "*", "namespace": "*"},
         "nonresource": {"verbs": ["*"]}, "match": [{"type": "user", "values": ["user1"]}]},
        {"nonresource": {"verbs": ["get"], "path": "/ok"}, "match": [{"type": "user", "values": ["user1"]}]}
    ]"#;
    let parsed = parse_ok(json);
    assert_eq!(
        parsed.skipped,
        [
            SkippedPart {
                index: 0,
                field: "nonresource.path".into()
            },
            SkippedPart {
                index: 1,
                field: "nonresource.path".into()
            }
        ]
    );
    assert!(
        parsed.warnings[0].starts_with("rule 0: `nonresource.path` is missing")
            && parsed.warnings[0].contains("never allows anything"),
        "{:#?}",
        parsed.warnings
    );
    let p = &parsed.policy;
    let user1 = Who::new("user1").project("project1");
    for path in ["/", "/api", "*", ""] {
        assert!(!user1.can(p, nonres("get", path)), "{path}");
    }
    assert!(user1.can(p, nonres("get", "/ok")));
    assert_eq!(
        user1.decide(p, res("get", "", "pods")),
        allowed_by("allowed by policy rule 1 (resource)")
    );
}

#[test]
fn strict_mode_refuses_a_pathless_nonresource_by_rule_and_field() {
    let json = r#"[{"nonresource": {"verbs": ["get"], "path": "/a"}},
                   {"nonresource": {"verbs": ["get"]}, "match": [{"type": "user", "values": ["user1"]}]}]"#;
    let e = parse_ok(json).strict().map(|_| ()).unwrap_err();
    assert_eq!(e.to_string(), "rule 1: `nonresource.path` is missing");
    assert!(parse_ok(V1_SAMPLE).strict().is_ok());
}

const V2_SAMPLE: &str = r#"[
  {"users": {"roles": ["developer"], "projects": ["demo"]},
   "resource_permissions": {"*/['namespaces', 'clusterroles']": ["get"], "default/pods": ["*"]}},
  {"users": {"roles": ["viewer"], "projects": ["demo"]},
   "resource_permissions": {"!kube-system/['deployments']": ["get", "list"]}},
  {"users": {"roles": ["clusteradmin"], "projects": ["demo"]},
   "resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"/healthz": ["get"]}}
]"#;

#[test]
fn v2_reasons_name_the_rule_and_key() {
    let p = load_clean(V2_SAMPLE);
    let developer = Who::new("developer").project("demo").role("developer");
    let viewer = Who::new("viewer").project("demo").role("viewer");
    let clusteradmin = Who::new("clusteradmin")
        .project("demo")
        .role("clusteradmin");
    assert_eq!(
        developer.decide(&p, res("get", "", "clusterroles")),
        allowed_by(
            "allowed by policy rule 0 (resource_permissions \"*/['namespaces', 'clusterroles']\")"
        )
    );
    assert!(developer.can(&p, res("delete", "default", "pods")));
    assert!(!developer.can(&p, res("get", "", "pods")));
    assert!(viewer.can(&p, res("list", "default", "deployments")));
    assert!(!viewer.can(&p, res("get", "kube-system", "deployments")));
    assert!(!viewer.can(&p, nonres("get", "/healthz")));
    assert_eq!(
        clusteradmin.decide(&p, nonres("get", "/healthz")),
        allowed_by("allowed by policy rule 2 (nonresource_permissions \"/healthz\")")
    );
    assert_eq!(
        clusteradmin.decide(&p, res("create", "", "clusterroles")),
        allowed_by("allowed by policy rule 2 (resource_permissions \"*/*\")")
    );
    assert_eq!(
        Who::without_extra("clusteradmin").decide(&p, res("get", "default", "pods")),
        Decision {
            allowed: false,
            denied: false,
            reason: "not a Keystone identity".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Golden: the reference file's §3.5 example
// ---------------------------------------------------------------------------------------------

#[test]
fn reference_example() {
    let p = load_clean(REFERENCE);
    assert_eq!(p.len(), 3);
    let member = Who::new("alice").project("demo").role("member");
    let member_by_id = Who::new("alice")
        .project_id("423d41d3a02f4b77b4a9bbfbc3a1b3c6")
        .role("member");
    let outsider = Who::new("bob").project("other").role("member");
    let exec = Who::new("carol").project("other").role("utility_exec");
    let both = Who::new("dave")
        .project("demo")
        .role("member")
        .role("utility_exec");

    let rule0 = "allowed by policy rule 0 (resource_permissions \"!kube-system/!['secrets', 'clusterroles']\")";
    assert_eq!(
        member.decide(&p, res("get", "default", "pods")),
        allowed_by(rule0)
    );
    assert_eq!(
        member_by_id.decide(&p, res("delete", "default", "pods")),
        allowed_by(rule0)
    );
    assert!(!outsider.can(&p, res("get", "default", "pods")));
    assert!(!member.can(&p, res("get", "default", "secrets")));
    assert!(!member.can(&p, res("get", "default", "clusterroles")));
    assert!(!member.can(&p, res("get", "kube-system", "pods")));

    // Cluster-scoped: only the `*/...` key applies.
    assert_eq!(
        member.decide(&p, res("list", "", "namespaces")),
        allowed_by("allowed by policy rule 0 (resource_permissions \"*/['namespaces', 'nodes']\")")
    );
    assert!(member.can(&p, res("get", "", "nodes")));
    assert!(!member.can(&p, res("delete", "", "nodes")));
    assert!(!member.can(&p, res("get", "", "persistentvolumes")));
    assert!(!member.can(&p, res("get", "", "clusterroles")));

    assert_eq!(
        member.decide(&p, nonres("get", "/healthz")),
        allowed_by("allowed by policy rule 0 (nonresource_permissions \"/healthz\")")
    );
    assert!(member.can(&p, nonres("get", "/version")));
    assert!(!member.can(&p, nonres("post", "/healthz")));
    assert!(!member.can(&p, nonres("get", "/api/v1")));

    // Version 1 rules for the utility_exec role, in any project.
    assert_eq!(
        exec.decide(&p, sub("create", "utility", "pods", "exec")),
        allowed_by("allowed by policy rule 1 (resource)")
    );
    assert!(!exec.can(&p, sub("create", "default", "pods", "exec")));
    assert!(!exec.can(&p, sub("create", "utility", "pods", "attach")));
    assert!(!exec.can(&p, res("create", "utility", "pods")));
    assert_eq!(
        exec.decide(&p, nonres("get", "/api/v1")),
        allowed_by("allowed by policy rule 2 (nonresource)")
    );
    assert!(!exec.can(&p, nonres("get", "/api")));
    assert!(!exec.can(&p, nonres("get", "/healthz")));

    // Version 2 ignores sub-resources: the `pods` grant covers `pods/exec` anywhere but
    // kube-system, and rule 0 comes first.
    assert_eq!(
        both.decide(&p, sub("create", "default", "pods", "exec")),
        allowed_by(rule0)
    );
    assert_eq!(
        both.decide(&p, sub("create", "utility", "pods", "exec")),
        allowed_by(rule0)
    );
}

// ---------------------------------------------------------------------------------------------
// The version 2 key examples of the upstream guide. The guide's own ConfigMaps are read from
// the Go module, not copied: tests/integration/differential.rs, `the_go_documentation_s_policies_mean_the_same_here`.
// ---------------------------------------------------------------------------------------------

#[test]
fn docs_version2_examples() {
    let anyone = Who::new("u").project("p");

    let p = load_clean(&v2_grant("*/*", r#"["*"]"#));
    assert!(anyone.can(&p, res("delete", "kube-system", "secrets")));
    assert!(anyone.can(&p, res("create", "", "clusterroles")));
    assert!(anyone.can(&p, grp("patch", "default", "apps", "deployments")));

    let p = load_clean(&v2_grant("default/pods", r#"["get", "list"]"#));
    assert!(anyone.can(&p, res("get", "default", "pods")));
    assert!(anyone.can(&p, res("list", "default", "pods")));
    assert!(!anyone.can(&p, res("watch", "default", "pods")));
    assert!(!anyone.can(&p, res("get", "kube-system", "pods")));
    assert!(!anyone.can(&p, res("get", "", "pods")));
    assert!(!anyone.can(&p, res("get", "default", "services")));

    let p = load_clean(&v2_grant(
        "default/!['secrets', 'clusterroles']",
        r#"["create"]"#,
    ));
    assert!(anyone.can(&p, res("create", "default", "configmaps")));
    assert!(!anyone.can(&p, res("create", "default", "secrets")));
    assert!(!anyone.can(&p, res("create", "default", "clusterroles")));
    assert!(!anyone.can(&p, res("create", "other", "configmaps")));
    assert!(!anyone.can(&p, res("delete", "default", "configmaps")));

    let p = load_clean(&v2_grant("!kube-system/*", r#"["*"]"#));
    assert!(anyone.can(&p, res("delete", "default", "pods")));
    assert!(!anyone.can(&p, res("delete", "kube-system", "pods")));
    assert!(!anyone.can(&p, res("get", "", "nodes")));

    let p = load_clean(&v2_grant(
        "!kube-system/!['secrets', 'clusterroles']",
        r#"["*"]"#,
    ));
    assert!(anyone.can(&p, res("get", "default", "pods")));
    assert!(!anyone.can(&p, res("get", "default", "secrets")));
    assert!(!anyone.can(&p, res("get", "kube-system", "pods")));
}

// ---------------------------------------------------------------------------------------------
// Edge cases
// ---------------------------------------------------------------------------------------------

#[test]
fn v2_cluster_scoped_requests_only_match_star_namespace() {
    let u = Who::new("u");
    assert!(u.can(
        &load(&v2_grant("*/nodes", r#"["get"]"#)),
        res("get", "", "nodes")
    ));
    // Trimmed before comparison.
    assert!(u.can(
        &load(&v2_grant(" * /nodes", r#"["get"]"#)),
        res("get", "", "nodes")
    ));
    for key in [
        "default/nodes",
        "!kube-system/nodes",
        "['*']/nodes",
        "!['a']/nodes",
        "/nodes",
    ] {
        let p = load(&v2_grant(key, r#"["get"]"#));
        assert!(!u.can(&p, res("get", "", "nodes")), "{key}");
    }
    // ...while `['*']` does match any namespaced request.
    assert!(u.can(
        &load(&v2_grant("['*']/nodes", r#"["get"]"#)),
        res("get", "x", "nodes")
    ));
}

#[test]
fn v1_namespace_star_matches_cluster_scoped() {
    let rule = |ns: &str| {
        load(&format!(
            r#"[{{"resource": {{"verbs": ["get"], "resources": ["nodes"], "version": "*", "namespace": "{ns}"}}}}]"#
        ))
    };
    let u = Who::new("u");
    assert!(u.can(&rule("*"), res("get", "", "nodes")));
    assert!(u.can(&rule("*"), res("get", "default", "nodes")));
    assert!(u.can(&rule(""), res("get", "", "nodes")));
    assert!(!u.can(&rule(""), res("get", "default", "nodes")));
    assert!(!u.can(&rule("default"), res("get", "", "nodes")));
    assert!(u.can(&rule("default"), res("get", "default", "nodes")));
}

#[test]
fn v1_api_group_is_the_version_field() {
    let rule = |group: &str| {
        load(&format!(
            r#"[{{"resource": {{"verbs": ["*"], "resources": ["*"], "version": "{group}", "namespace": "*"}}}}]"#
        ))
    };
    let u = Who::new("u");
    assert!(u.can(&rule("*"), grp("get", "d", "apps", "deployments")));
    assert!(u.can(&rule("apps"), grp("get", "d", "apps", "deployments")));
    assert!(!u.can(&rule("apps"), grp("get", "d", "batch", "jobs")));
    assert!(!u.can(&rule(""), grp("get", "d", "apps", "deployments")));
    assert!(u.can(&rule(""), res("get", "d", "pods")));
    // A literal API version never matches the core group.
    assert!(!u.can(&rule("v1"), res("get", "d", "pods")));
}

#[test]
fn v1_subresources() {
    let rule = |resources: &str| {
        load(&format!(
            r#"[{{"resource": {{"verbs": ["get"], "resources": {resources}, "version": "*", "namespace": "*"}}}}]"#
        ))
    };
    let u = Who::new("u");
    let plain = rule(r#"["pods"]"#);
    assert!(u.can(&plain, res("get", "d", "pods")));
    assert!(!u.can(&plain, sub("get", "d", "pods", "log")));

    let wildcard = rule(r#"["pods/*"]"#);
    assert!(u.can(&wildcard, sub("get", "d", "pods", "log")));
    assert!(u.can(&wildcard, sub("get", "d", "pods", "exec")));
    assert!(!u.can(&wildcard, res("get", "d", "pods")));
    assert!(!u.can(&wildcard, sub("get", "d", "services", "proxy")));

    let exact = rule(r#"["pods/log"]"#);
    assert!(u.can(&exact, sub("get", "d", "pods", "log")));
    assert!(!u.can(&exact, sub("get", "d", "pods", "exec")));
    assert!(!u.can(&exact, res("get", "d", "pods")));
    assert!(!u.can(&exact, sub("get", "d", "podsx", "log")));

    let star = rule(r#"["*"]"#);
    assert!(u.can(&star, sub("get", "d", "pods", "log")));
    assert!(u.can(&star, res("get", "d", "anything")));
}

#[test]
fn v2_ignores_subresource_group_and_name() {
    let p = load(&v2_grant("default/pods", r#"["create"]"#));
    let u = Who::new("u");
    assert!(u.can(&p, sub("create", "default", "pods", "exec")));
    assert!(u.can(&p, grp("create", "default", "whatever.example.com", "pods")));
    // Sub-resources cannot be written in version 2.
    let parsed = parse_ok(&v2_grant("default/pods/exec", r#"["create"]"#));
    assert!(!u.can(&parsed.policy, sub("create", "default", "pods", "exec")));
    assert_eq!(parsed.warnings.len(), 1);
    assert!(
        parsed.warnings[0]
            .starts_with("rule 0: `resource_permissions` key \"default/pods/exec\" is ignored")
    );
}

#[test]
fn not_star_matches_nothing() {
    let u = Who::new("u");
    let parsed = parse_ok(&v2_grant("!*/pods", r#"["*"]"#));
    assert!(!u.can(&parsed.policy, res("get", "default", "pods")));
    assert!(parsed.warnings[0].contains("\"!*\" matches nothing"));
    let parsed = parse_ok(&v2_grant("default/!*", r#"["*"]"#));
    assert!(!u.can(&parsed.policy, res("get", "default", "pods")));
    assert_eq!(parsed.warnings.len(), 1);
    let parsed = parse_ok(&v2_grant("default/!['a', '*']", r#"["*"]"#));
    assert!(!u.can(&parsed.policy, res("get", "default", "pods")));
    assert!(parsed.warnings[0].contains("matches nothing"));
}

#[test]
fn v2_case_folding() {
    let u = Who::new("u");
    let p = load(&v2_grant(" Default / PODS ", r#"["GET", "List"]"#));
    assert!(u.can(&p, res("get", "default", "pods")));
    assert!(u.can(&p, res("list", "default", "pods")));
    // Requests are not folded (as in Go).
    assert!(!u.can(&p, res("GET", "default", "pods")));
    assert!(!u.can(&p, res("get", "Default", "pods")));
    let p = load(&v2_grant("default/['PodSecurityPolicies']", r#"["get"]"#));
    assert!(u.can(&p, res("get", "default", "podsecuritypolicies")));
    // Go's strings.ToLower maps U+0130 to a plain `i` (Rust's to_lowercase would give two chars).
    let p = load(&v2_grant("\u{130}stio/pods", r#"["get"]"#));
    assert!(u.can(&p, res("get", "istio", "pods")));
    // Non-resource verbs and paths are not folded.
    let p = load(r#"[{"nonresource_permissions": {"/Healthz": ["GET"]}}]"#);
    assert!(!u.can(&p, nonres("get", "/Healthz")));
    assert!(u.can(&p, nonres("GET", "/Healthz")));
    assert!(!u.can(&p, nonres("GET", "/healthz")));
}

#[test]
fn star_verbs() {
    let u = Who::new("u");
    let p = load(&v2_grant("default/pods", r#"["*"]"#));
    for verb in [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "escalate",
    ] {
        assert!(u.can(&p, res(verb, "default", "pods")), "{verb}");
    }
    let p = load(
        r#"[{"resource": {"verbs": ["*"], "resources": ["pods"], "version": "*", "namespace": "*"}}]"#,
    );
    assert!(u.can(&p, res("bind", "x", "pods")));
    let p = load(r#"[{"nonresource": {"verbs": ["*"], "path": "/metrics"}}]"#);
    assert!(u.can(&p, nonres("get", "/metrics")));
    let p = load(r#"[{"nonresource_permissions": {"/metrics": ["*"]}}]"#);
    assert!(u.can(&p, nonres("head", "/metrics")));
}

#[test]
fn nonresource_prefix_in_v1_exact_in_v2() {
    let u = Who::new("u");
    let v1 = load(r#"[{"nonresource": {"verbs": ["get"], "path": "/api/*"}}]"#);
    assert!(u.can(&v1, nonres("get", "/api/v1")));
    assert!(u.can(&v1, nonres("get", "/api/")));
    assert!(!u.can(&v1, nonres("get", "/api")));
    assert!(!u.can(&v1, nonres("get", "/apis/apps")));
    // All trailing stars are trimmed (Go's TrimRight).
    let v1 = load(r#"[{"nonresource": {"verbs": ["get"], "path": "/ap**"}}]"#);
    assert!(u.can(&v1, nonres("get", "/apis")));
    let v1 = load(r#"[{"nonresource": {"verbs": ["get"], "path": "*"}}]"#);
    assert!(u.can(&v1, nonres("get", "/anything")));

    let parsed = parse_ok(r#"[{"nonresource_permissions": {"/api/*": ["get"]}}]"#);
    assert!(!u.can(&parsed.policy, nonres("get", "/api/v1")));
    assert!(u.can(&parsed.policy, nonres("get", "/api/*")));
    assert_eq!(parsed.warnings.len(), 1);
    assert!(parsed.warnings[0].contains("compared exactly"));
}

#[test]
fn no_extra_is_denied() {
    let p = load(&v2_grant("*/*", r#"["*"]"#));
    let reason = "not a Keystone identity";
    for who in [
        Who::without_extra("system:anonymous"),
        Who::without_extra("admin").group("system:masters"),
        // What kube-apiserver v1.32+ sends for a ServiceAccount token and a client certificate.
        Who::with_extra(
            "system:serviceaccount:ns1:sa1",
            &[
                (EXTRA_CREDENTIAL_ID, "JTI=0b3c1d2e"),
                ("authentication.kubernetes.io/pod-name", "p"),
            ],
        ),
        Who::with_extra("cert-user", &[(EXTRA_CREDENTIAL_ID, "X509SHA256=ab12")]),
        // A credential id beside a Keystone project id (impersonation, a foreign authenticator).
        Who::new("u").push(EXTRA_CREDENTIAL_ID, "JTI=1"),
        // Present but empty `extra` (Go allows it), no project id, an empty one, or two.
        Who::with_extra("u", &[]),
        Who::with_extra("u", &[(EXTRA_PROJECT_NAME, "demo")]),
        Who::with_extra("u", &[(EXTRA_PROJECT_ID, "")]),
        Who::with_extra("u", &[(EXTRA_PROJECT_ID, "a"), (EXTRA_PROJECT_ID, "b")]),
    ] {
        assert_eq!(
            who.decide(&p, res("get", "default", "pods")),
            Decision {
                allowed: false,
                denied: false,
                reason: reason.into()
            }
        );
        assert_eq!(who.decide(&p, nonres("get", "/healthz")).reason, reason);
    }
    assert!(Who::new("u").can(&p, res("get", "default", "pods")));
}

#[test]
fn users_roles_all_required_projects_any() {
    let p = load(
        r#"[{"users": {"roles": ["a", "b"], "projects": ["demo", "0123abcd"]},
             "resource_permissions": {"*/*": ["*"]}}]"#,
    );
    let r = res("get", "default", "pods");
    assert!(!Who::new("u").project("demo").role("a").can(&p, r));
    assert!(!Who::new("u").project("demo").role("b").can(&p, r));
    assert!(Who::new("u").project("demo").role("a").role("b").can(&p, r));
    assert!(
        Who::new("u")
            .project("demo")
            .role("b")
            .role("c")
            .role("a")
            .can(&p, r)
    );
    // By project ID, by name, or neither.
    assert!(
        Who::new("u")
            .project_id("0123abcd")
            .role("a")
            .role("b")
            .can(&p, r)
    );
    assert!(
        Who::new("u")
            .project("x")
            .project_id("0123abcd")
            .role("a")
            .role("b")
            .can(&p, r)
    );
    assert!(
        !Who::new("u")
            .project("other")
            .project_id("ffff")
            .role("a")
            .role("b")
            .can(&p, r)
    );
    assert!(!Who::new("u").role("a").role("b").can(&p, r));
    // Project matching is exact (no case folding).
    assert!(!Who::new("u").project("Demo").role("a").role("b").can(&p, r));

    // No roles required.
    let p = load(r#"[{"users": {"projects": ["demo"]}, "resource_permissions": {"*/*": ["*"]}}]"#);
    assert!(Who::new("u").project("demo").can(&p, r));
    // `users` gates v1 objects of the same rule too.
    let p = load(
        r#"[{"users": {"projects": ["demo"]},
             "resource": {"verbs": ["*"], "resources": ["*"], "version": "*", "namespace": "*"}}]"#,
    );
    assert!(Who::new("u").project("demo").can(&p, r));
    assert!(!Who::new("u").project("other").can(&p, r));
}

#[test]
fn users_without_projects_never_match() {
    for users in [
        r#"{}"#,
        r#"{"roles": ["admin"]}"#,
        r#"{"roles": ["admin"], "projects": []}"#,
        r#"{"projects": null}"#,
    ] {
        let json = format!(r#"[{{"users": {users}, "resource_permissions": {{"*/*": ["*"]}}}}]"#);
        let parsed = parse_ok(&json);
        assert!(
            !Who::new("u")
                .project("demo")
                .role("admin")
                .can(&parsed.policy, res("get", "d", "pods")),
            "{users}"
        );
        assert!(
            parsed
                .warnings
                .iter()
                .any(|w| w.contains("`users.projects` is missing or empty")),
            "{users}"
        );
    }
    // `"users": null` is the same as no `users`: the rule applies to everyone.
    let p = load_clean(r#"[{"users": null, "resource_permissions": {"*/*": ["*"]}}]"#);
    assert!(Who::new("u").can(&p, res("get", "d", "pods")));
}

#[test]
fn v1_match_semantics() {
    let rule = |matches: &str| {
        load(&format!(
            r#"[{{"resource": {{"verbs": ["get"], "resources": ["pods"], "version": "*", "namespace": "*"}}, "match": {matches}}}]"#
        ))
    };
    let r = res("get", "d", "pods");
    let u = Who::new("alice")
        .uid("u-1")
        .group("g1")
        .group("g2")
        .project("demo")
        .project_id("p-1")
        .role("r1");

    assert!(u.can(&rule("[]"), r));
    assert!(u.can(&rule("null"), r));
    assert!(u.can(&rule(r#"[{"type": "user", "values": ["alice"]}]"#), r));
    assert!(u.can(&rule(r#"[{"type": "user", "values": ["u-1"]}]"#), r));
    assert!(!u.can(&rule(r#"[{"type": "user", "values": ["bob"]}]"#), r));
    assert!(u.can(&rule(r#"[{"type": "group", "values": ["x", "g2"]}]"#), r));
    assert!(!u.can(&rule(r#"[{"type": "group", "values": ["x"]}]"#), r));
    assert!(u.can(&rule(r#"[{"type": "project", "values": ["demo"]}]"#), r));
    assert!(u.can(&rule(r#"[{"type": "project", "values": ["p-1"]}]"#), r));
    assert!(!u.can(&rule(r#"[{"type": "project", "values": ["other"]}]"#), r));
    assert!(u.can(&rule(r#"[{"type": "role", "values": ["r1"]}]"#), r));
    assert!(!u.can(&rule(r#"[{"type": "role", "values": ["r2"]}]"#), r));
    // `*` satisfies an entry even without the attribute.
    assert!(Who::new("x").can(&rule(r#"[{"type": "role", "values": ["*"]}]"#), r));
    // AND across entries.
    assert!(u.can(
        &rule(r#"[{"type": "role", "values": ["r1"]}, {"type": "project", "values": ["demo"]}]"#),
        r
    ));
    assert!(!u.can(
        &rule(r#"[{"type": "role", "values": ["r1"]}, {"type": "project", "values": ["x"]}]"#),
        r
    ));
    // Unknown type (types are case-sensitive), even with `*`, or after a satisfied entry.
    assert!(!u.can(&rule(r#"[{"type": "Role", "values": ["*"]}]"#), r));
    assert!(!u.can(
        &rule(r#"[{"type": "role", "values": ["r1"]}, {"type": "domain", "values": ["*"]}]"#),
        r
    ));
    assert!(!u.can(&rule(r#"[null]"#), r));
    // Empty values never match.
    assert!(!u.can(&rule(r#"[{"type": "role", "values": []}]"#), r));
}

#[test]
fn v1_nonresource_empty_verb_disables_rule() {
    let parsed = parse_ok(r#"[{"nonresource": {"verbs": ["get", ""], "path": "*"}}]"#);
    assert!(!Who::new("u").can(&parsed.policy, nonres("get", "/healthz")));
    assert!(!Who::new("u").can(&parsed.policy, nonres("", "/healthz")));
    assert_eq!(parsed.warnings.len(), 1);
}

#[test]
fn first_allow_wins_and_order_is_kept() {
    let p = load(
        r#"[
            {"users": {"projects": ["nope"]}, "resource_permissions": {"*/*": ["*"]}},
            {"resource_permissions": {"default/pods": ["list"], "default/['pods']": ["get"], "*/pods": ["get"]}},
            {"resource_permissions": {"*/*": ["*"]}}
        ]"#,
    );
    let u = Who::new("u");
    assert_eq!(
        u.decide(&p, res("get", "default", "pods")),
        allowed_by("allowed by policy rule 1 (resource_permissions \"default/['pods']\")")
    );
    assert_eq!(
        u.decide(&p, res("get", "other", "pods")),
        allowed_by("allowed by policy rule 1 (resource_permissions \"*/pods\")")
    );
    assert_eq!(
        u.decide(&p, res("get", "other", "secrets")),
        allowed_by("allowed by policy rule 2 (resource_permissions \"*/*\")")
    );
}

#[test]
fn v2_takes_precedence_within_a_rule() {
    let v1 = r#""resource": {"verbs": ["*"], "resources": ["*"], "version": "*", "namespace": "*"},
                "nonresource": {"verbs": ["*"], "path": "*"}"#;
    let u = Who::new("u");
    // Empty v2 maps shadow the v1 objects completely.
    let parsed = parse_ok(&format!(
        r#"[{{{v1}, "resource_permissions": {{}}, "nonresource_permissions": {{}}}}]"#
    ));
    assert!(!u.can(&parsed.policy, res("get", "d", "pods")));
    assert!(!u.can(&parsed.policy, nonres("get", "/healthz")));
    assert_eq!(parsed.warnings.len(), 2, "{:#?}", parsed.warnings);
    // `null` v2 maps do not.
    let p = load_clean(&format!(
        r#"[{{{v1}, "resource_permissions": null, "nonresource_permissions": null}}]"#
    ));
    assert!(u.can(&p, res("get", "d", "pods")));
    assert!(u.can(&p, nonres("get", "/healthz")));
    // Each request kind picks its own generation.
    let p = load_clean(
        r#"[{"resource_permissions": {"d/pods": ["get"]}, "nonresource": {"verbs": ["get"], "path": "/x*"}}]"#,
    );
    assert_eq!(
        u.decide(&p, res("get", "d", "pods")).reason,
        "allowed by policy rule 0 (resource_permissions \"d/pods\")"
    );
    assert_eq!(
        u.decide(&p, nonres("get", "/xyz")).reason,
        "allowed by policy rule 0 (nonresource)"
    );
    // A v1 `resource` shadowed by v2 is not validated beyond its JSON types.
    let parsed =
        parse_ok(r#"[{"resource": {"verbs": ["get"]}, "resource_permissions": {"*/*": ["get"]}}]"#);
    assert!(u.can(&parsed.policy, res("get", "d", "pods")));
    assert_eq!(parsed.warnings.len(), 1);
}

#[test]
fn v2_pattern_quirks_match_go() {
    let u = Who::new("u");
    // An empty request resource matches any resource definition (Go's `str == ""`).
    let p = load(&v2_grant("default/!*", r#"["get"]"#));
    assert!(u.can(&p, res("get", "default", "")));
    // A request equal to the whole definition matches.
    let p = load(&v2_grant("default/!pods", r#"["get"]"#));
    assert!(u.can(&p, res("get", "default", "!pods")));
    assert!(!u.can(&p, res("get", "default", "pods")));
    assert!(u.can(&p, res("get", "default", "services")));
    // Not a valid list (unquoted items): only matches itself, with a warning.
    let parsed = parse_ok(&v2_grant("default/[pods, services]", r#"["get"]"#));
    assert!(!u.can(&parsed.policy, res("get", "default", "pods")));
    assert!(u.can(&parsed.policy, res("get", "default", "[pods, services]")));
    assert!(parsed.warnings[0].contains("not a valid list"));
    // JSON `null` items become "".
    let p = load(&v2_grant("['a', null]/pods", r#"["get"]"#));
    assert!(u.can(&p, res("get", "a", "pods")));
    assert!(!u.can(&p, res("get", "b", "pods")));
    // Double quotes work too.
    let p = load(&v2_grant(r#"["a", "b"]/pods"#, r#"["get"]"#));
    assert!(u.can(&p, res("get", "b", "pods")));
    // Spaces around the list are trimmed, inside are allowed.
    // `!` followed by a space is a plain `!name`, not a negated list.
    let p = load(&v2_grant("  !  [ 'a' ,'b' ] /pods", r#"["get"]"#));
    assert!(u.can(&p, res("get", "a", "pods")));
    let p = load(&v2_grant("![ 'a' ,'b' ] /pods", r#"["get"]"#));
    assert!(!u.can(&p, res("get", "a", "pods")));
    assert!(u.can(&p, res("get", "c", "pods")));
    // A glob is literal.
    let parsed = parse_ok(&v2_grant("kube-*/pods", r#"["get"]"#));
    assert!(!u.can(&parsed.policy, res("get", "kube-system", "pods")));
    assert!(parsed.warnings[0].contains("compared literally"));
}

#[test]
fn policy_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<PolicyError>();
}

#[test]
fn empty_policy() {
    let p = Policy::empty();
    assert!(p.is_empty());
    assert_eq!(p.len(), 0);
    assert_eq!(Who::new("u").decide(&p, res("get", "d", "pods")), denied());
    let parsed = parse_ok("  [ ]\n");
    assert!(parsed.policy.is_empty());
    assert!(parsed.warnings.is_empty());
    assert_eq!(format!("{:?}", Policy::empty()), "Policy { rules: 0 }");
    assert_eq!(format!("{:?}", load(REFERENCE)), "Policy { rules: 3 }");
}

// ---------------------------------------------------------------------------------------------
// Parser: Go decoding compatibility, errors, warnings
// ---------------------------------------------------------------------------------------------

#[test]
fn go_style_case_insensitive_keys() {
    let p = load_clean(
        r#"[{"RESOURCE": {"Verbs": ["get"], "Resources": ["pods"], "Version": "*", "NameSpace": "*"},
             "Match": [{"Type": "role", "VALUES": ["r"]}]},
            {"Users": {"projects": ["demo"]}, "Resource_Permissions": {"*/secrets": ["get"]},
             "NonResource_Permissions": {"/healthz": ["get"]}}]"#,
    );
    assert!(Who::new("u").role("r").can(&p, res("get", "d", "pods")));
    assert!(!Who::new("u").can(&p, res("get", "d", "pods")));
    assert!(
        Who::new("u")
            .project("demo")
            .can(&p, res("get", "d", "secrets"))
    );
    assert!(
        Who::new("u")
            .project("demo")
            .can(&p, nonres("get", "/healthz"))
    );
    // KELVIN SIGN and LONG S fold to ASCII in Go too.
    let p = load_clean("[{\"nonre\u{17F}ource\": {\"verbs\": [\"get\"], \"path\": \"/x\"}}]");
    assert!(Who::new("u").can(&p, nonres("get", "/x")));
}

#[test]
fn duplicate_keys_follow_go() {
    // Objects merge into the earlier value.
    let parsed = parse_ok(
        r#"[{"resource": {"verbs": ["get"], "resources": ["pods"]},
             "resource": {"version": "*", "namespace": "*"}}]"#,
    );
    assert!(Who::new("u").can(&parsed.policy, res("get", "d", "pods")));
    assert_eq!(parsed.warnings.len(), 1);
    assert!(parsed.warnings[0].contains("`resource` appears more than once"));
    // Map keys: the last value wins.
    let parsed = parse_ok(r#"[{"resource_permissions": {"*/pods": ["get"], "*/pods": ["list"]}}]"#);
    assert!(!Who::new("u").can(&parsed.policy, res("get", "d", "pods")));
    assert!(Who::new("u").can(&parsed.policy, res("list", "d", "pods")));
    assert_eq!(parsed.warnings.len(), 1);
    // A later `null` resets.
    let parsed = parse_ok(
        r#"[{"resource_permissions": {"*/pods": ["get"]}, "resource_permissions": null}]"#,
    );
    assert!(!Who::new("u").can(&parsed.policy, res("get", "d", "pods")));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = Policy::parse("[\n  {\"users\": {}},\n  {\"resource\": }\n]").unwrap_err();
    match &e {
        PolicyError::Syntax { line, column, .. } => {
            assert_eq!(*line, 3);
            assert!(*column > 0);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "policy is not valid JSON at line 3, column 16: expected value"
    );
    assert!(matches!(Policy::parse(""), Err(PolicyError::Syntax { .. })));
    assert!(matches!(
        Policy::parse("[1,]"),
        Err(PolicyError::Syntax { .. })
    ));
    // Deep nesting is an error, not a stack overflow.
    let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        Policy::parse(&deep),
        Err(PolicyError::Syntax { .. })
    ));
}

#[test]
fn structural_errors_name_rule_and_field() {
    assert_eq!(
        error("{}"),
        "policy must be a JSON array of rules, found an object"
    );
    assert_eq!(
        error("null"),
        "policy must be a JSON array of rules, found null"
    );
    assert_eq!(
        error(r#""[]""#),
        "policy must be a JSON array of rules, found a string"
    );
    assert_eq!(
        error("[{}, 1]"),
        "rule 1: must be a JSON object, found a number"
    );
    assert_eq!(error("[null]"), "rule 0: must be a JSON object, found null");
    assert_eq!(
        error(r#"[{"resource": {"verbs": "get", "version": "*", "namespace": "*"}}]"#),
        "rule 0: `resource.verbs` must be an array of strings, found a string"
    );
    assert_eq!(
        error(r#"[{"resource": {"verbs": ["get", 1], "version": "*", "namespace": "*"}}]"#),
        "rule 0: `resource.verbs[1]` must be a string, found a number"
    );
    assert_eq!(
        error(r#"[{"resource": {"verbs": ["get"], "version": 1, "namespace": "*"}}]"#),
        "rule 0: `resource.version` must be a string, found a number"
    );
    assert_eq!(
        error(r#"[{"resource": []}]"#),
        "rule 0: `resource` must be an object, found an array"
    );
    assert_eq!(
        error(r#"[{"nonresource": "/x"}]"#),
        "rule 0: `nonresource` must be an object, found a string"
    );
    assert_eq!(
        error(r#"[{}, {"users": {"roles": "admin", "projects": ["p"]}}]"#),
        "rule 1: `users.roles` must be an array of strings, found a string"
    );
    assert_eq!(
        error(r#"[{"users": []}]"#),
        "rule 0: `users` must be an object whose values are arrays of strings, found an array"
    );
    assert_eq!(
        error(r#"[{"resource_permissions": {"*/pods": "get"}}]"#),
        "rule 0: `resource_permissions[\"*/pods\"]` must be an array of strings, found a string"
    );
    assert_eq!(
        error(r#"[{"nonresource_permissions": [{"/healthz": ["get"]}]}]"#),
        "rule 0: `nonresource_permissions` must be an object whose values are arrays of strings, found an array"
    );
    assert_eq!(
        error(r#"[{"match": {"type": "role"}}]"#),
        "rule 0: `match` must be an array of objects, found an object"
    );
    assert_eq!(
        error(r#"[{"match": ["role"]}]"#),
        "rule 0: `match[0]` must be an object, found a string"
    );
    assert_eq!(
        error(r#"[{"match": [{"type": "role", "values": "r"}]}]"#),
        "rule 0: `match[0].values` must be an array of strings, found a string"
    );
    assert_eq!(
        error(r#"[{"match": [{"type": 1}]}]"#),
        "rule 0: `match[0].type` must be a string, found a number"
    );
    // Also for keys Go would ignore: the types are still checked (Go decodes them too).
    assert_eq!(
        error(r#"[{"users": {"domains": "default", "projects": ["p"]}}]"#),
        "rule 0: `users.domains` must be an array of strings, found a string"
    );
}

#[test]
fn missing_required_fields() {
    let ok = r#"{"resource_permissions": {"*/*": ["get"]}}"#;
    assert_eq!(
        error(&format!(
            r#"[{ok}, {ok}, {{"resource": {{"verbs": ["get"], "resources": ["pods"], "version": "*"}}}}]"#
        )),
        "rule 2: `resource.namespace` is missing"
    );
    assert_eq!(
        error(r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "namespace": "*"}}]"#),
        "rule 0: `resource.version` is missing"
    );
    assert_eq!(
        error(
            r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "version": "*", "namespace": null}}]"#
        ),
        "rule 0: `resource.namespace` is missing"
    );
    // A `nonresource` without `path` (or with `"path": null`) is not an error: Go skips it.
    for json in [
        r#"[{"nonresource": {"verbs": ["get"], "path": null}}]"#,
        r#"[{"nonresource": {}}]"#,
    ] {
        match Policy::parse(json).and_then(ParsedPolicy::strict) {
            Err(PolicyError::MissingField { index: 0, field }) => {
                assert_eq!(field, "nonresource.path")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn warnings_name_the_rule() {
    let w = warnings(
        r#"[{"resource_permissions": {"*/*": ["get"]}}, {"resourcePermissions": {"*/*": ["get"]}}]"#,
    );
    assert_eq!(w.len(), 2, "{w:#?}");
    assert_eq!(
        w[0],
        "rule 1: unknown key `resourcePermissions` is ignored (did you mean `resource_permissions`?)"
    );
    assert!(w[1].starts_with("rule 1: has none of"), "{w:#?}");

    let w = warnings(
        r#"[{"users": {"roles": ["admin"], "projects": ["Admin"], "domains": ["service"]},
             "resource_permissions": {"*/['storageclasses']": ["list"]}}]"#,
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with("rule 0: `users.domains` is ignored"),
        "{w:#?}"
    );

    let w = warnings(
        r#"[{"users": {"Projects": ["p"], "projects": ["p"]}, "resource_permissions": {"*/*": ["get"]}}]"#,
    );
    assert!(w[0].contains("did you mean `projects`?"), "{w:#?}");

    let w =
        warnings(r#"[{"resource_permissions": {"pods": ["get"], "a/b/c": ["get"], "a/b": []}}]"#);
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].contains("\"pods\" is ignored"));
    assert!(w[1].contains("\"a/b/c\" is ignored"));
    assert!(w[2].contains("\"a/b\" has no verbs"));

    let w = warnings(
        r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "version": "v1", "namespace": "*", "apiGroups": [""]},
             "match": [{"type": "domain", "values": ["x"]}, {"type": "role"}]}]"#,
    );
    assert_eq!(w.len(), 4, "{w:#?}");
    assert!(w.iter().all(|w| w.starts_with("rule 0: ")));
    assert!(w[0].contains("`resource.apiGroups`") && w[0].contains("`resource.version`"));
    assert!(w[1].contains("API *group*"));
    assert!(w[2].contains("`match[0].type` \"domain\""));
    assert!(w[3].contains("`match[1].values`"));

    let w = warnings(
        r#"[{"resource_permissions": {"*/*": ["get"]}, "match": [{"type": "role", "values": ["r"]}]}]"#,
    );
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("`match` is ignored"));

    let w = warnings(r#"[{}]"#);
    assert_eq!(w, vec!["rule 0: has none of `resource`, `nonresource`, `resource_permissions`, `nonresource_permissions`, so it never allows anything".to_owned()]);
}

#[test]
fn trailing_data_is_ignored_with_a_warning() {
    // Go's json.Decoder (used for --keystone-policy-file) stops after the first value.
    let parsed = parse_ok("[{\"resource_permissions\": {\"*/*\": [\"get\"]}}]\n]");
    assert_eq!(parsed.policy.len(), 1);
    assert_eq!(parsed.warnings.len(), 1);
    assert!(
        parsed.warnings[0].contains("line 2, column 1"),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn clean_documents_have_no_warnings() {
    for json in [V2_SAMPLE, REFERENCE] {
        load_clean(json);
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// Short strings over an alphabet that hits the pattern syntax often.
fn tricky() -> impl Strategy<Value = String> {
    "[a-c*!/'\\[\\], ]{0,6}"
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "resource",
            "nonresource",
            "match",
            "resource_permissions",
            "nonresource_permissions",
            "users",
            "verbs",
            "resources",
            "version",
            "namespace",
            "path",
            "type",
            "values",
            "roles",
            "projects",
            "user",
            "group",
            "project",
            "role",
        ])
        .prop_map(str::to_owned),
        tricky(),
    ]
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        tricky().prop_map(Value::String),
        arb_key().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn arb_who() -> impl Strategy<Value = Who> {
    (
        tricky(),
        tricky(),
        prop::collection::vec(tricky(), 0..3),
        prop::option::of(prop::collection::vec(
            (arb_key(), prop::collection::vec(tricky(), 0..3)),
            0..4,
        )),
        prop::collection::vec(tricky(), 0..3),
        prop::collection::vec(tricky(), 0..3),
    )
        .prop_map(|(name, uid, groups, other, roles, projects)| {
            let mut who = Who {
                name,
                uid,
                groups,
                extra: None,
            };
            if let Some(other) = other {
                let mut extra: BTreeMap<String, Vec<String>> = other.into_iter().collect();
                extra.insert(EXTRA_ROLES.into(), roles);
                extra.insert(EXTRA_PROJECT_NAME.into(), projects.clone());
                extra.insert(EXTRA_PROJECT_ID.into(), projects);
                who.extra = Some(extra);
            }
            who
        })
}

/// (verb, namespace, group, resource, subresource) or (verb, path).
fn arb_attributes() -> impl Strategy<Value = (bool, [String; 5])> {
    (
        any::<bool>(),
        [tricky(), tricky(), tricky(), tricky(), tricky()],
    )
}

fn attributes(resource: bool, a: &[String; 5]) -> Attributes<'_> {
    if resource {
        Attributes::Resource {
            verb: &a[0],
            namespace: &a[1],
            group: &a[2],
            version: "v1",
            resource: &a[3],
            subresource: &a[4],
            name: "",
        }
    } else {
        Attributes::NonResource {
            verb: &a[0],
            path: &a[1],
        }
    }
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = Policy::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_json_like_text(text in "[\\[\\]{}\",: a-z*!/'0-9]{0,80}") {
        let _ = Policy::parse(&text);
    }

    #[test]
    fn parse_and_evaluate_never_panic(
        rules in prop::collection::vec(arb_json(), 0..4),
        who in arb_who(),
        (resource, attrs) in arb_attributes(),
    ) {
        let json = serde_json::Value::Array(rules).to_string();
        if let Ok(parsed) = Policy::parse(&json) {
            let d = who.decide(&parsed.policy, attributes(resource, &attrs));
            prop_assert_eq!(d.allowed, d.reason.starts_with("allowed by policy rule "));
        }
    }

    #[test]
    fn evaluate_never_panics_on_arbitrary_strings(
        who in arb_who(),
        (resource, attrs) in arb_attributes(),
        verb in any::<String>(),
        path in any::<String>(),
    ) {
        for json in [V1_SAMPLE, V2_SAMPLE, REFERENCE] {
            let p = load(json);
            let _ = who.decide(&p, attributes(resource, &attrs));
            let _ = who.decide(&p, Attributes::NonResource { verb: &verb, path: &path });
            let _ = who.decide(&p, res(&verb, &path, &verb));
        }
    }

    #[test]
    fn not_name_is_the_complement_of_name(
        x in "[a-z0-9][a-z0-9-]{0,8}",
        other in "[a-z0-9][a-z0-9-]{0,8}",
        same in any::<bool>(),
    ) {
        let n = if same { x.clone() } else { other };
        let u = Who::new("u");
        let ns_pos = load(&v2_grant(&format!("{x}/pods"), r#"["get"]"#));
        let ns_neg = load(&v2_grant(&format!("!{x}/pods"), r#"["get"]"#));
        prop_assert_eq!(u.can(&ns_pos, res("get", &n, "pods")), n == x);
        prop_assert_eq!(u.can(&ns_neg, res("get", &n, "pods")), n != x);
        let res_pos = load(&v2_grant(&format!("*/{x}"), r#"["get"]"#));
        let res_neg = load(&v2_grant(&format!("*/!{x}"), r#"["get"]"#));
        prop_assert_ne!(u.can(&res_pos, res("get", "ns", &n)), u.can(&res_neg, res("get", "ns", &n)));
    }

    #[test]
    fn not_list_is_the_complement_of_list(
        items in prop::collection::vec("[a-z]{1,3}", 1..4),
        n in "[a-z]{1,3}",
    ) {
        let list = format!("[{}]", items.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(", "));
        let u = Who::new("u");
        let pos = load_clean(&v2_grant(&format!("{list}/{list}"), r#"["get"]"#));
        let neg = load_clean(&v2_grant(&format!("!{list}/!{list}"), r#"["get"]"#));
        let member = items.contains(&n);
        prop_assert_eq!(u.can(&pos, res("get", &n, &n)), member);
        prop_assert_eq!(u.can(&neg, res("get", &n, &n)), !member);
    }

    #[test]
    fn empty_policy_never_allows(who in arb_who(), (resource, attrs) in arb_attributes()) {
        prop_assert!(!who.can(&Policy::empty(), attributes(resource, &attrs)));
        prop_assert!(!who.can(&load("[]"), attributes(resource, &attrs)));
    }

    #[test]
    fn requests_without_extra_are_never_allowed(who in arb_who(), (resource, attrs) in arb_attributes()) {
        let who = Who { extra: None, ..who };
        let p = load(r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource": {"verbs": ["*"], "path": "*"}}]"#);
        let d = who.decide(&p, attributes(resource, &attrs));
        prop_assert_eq!(d, Decision { allowed: false, denied: false, reason: "not a Keystone identity".into() });
    }

    #[test]
    fn allow_all_allows_every_keystone_request(who in arb_who(), (resource, attrs) in arb_attributes()) {
        let p = load(r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource": {"verbs": ["*"], "path": "*"}}]"#);
        let d = who.decide(&p, attributes(resource, &attrs));
        let keystone = who.extra.as_ref().is_some_and(|e| {
            e.get(EXTRA_PROJECT_ID).is_some_and(|ids| ids.len() == 1 && !ids[0].is_empty())
                && !e.contains_key(EXTRA_CREDENTIAL_ID)
        });
        prop_assert_eq!(d.allowed, keystone);
    }
}

// ---------------------------------------------------------------------------------------------
// Application-credential access rules (extra `alpha.kubernetes.io/identity/access-rules`)

const ALLOW_ALL: &str = r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource_permissions": {"/healthz": ["get"]}}]"#;

fn restricted(rules: &[&str]) -> Who {
    rules
        .iter()
        .fold(Who::new("alice"), |w, r| w.push(EXTRA_ACCESS_RULES, r))
}

fn full<'a>(
    verb: &'a str,
    namespace: &'a str,
    group: &'a str,
    resource: &'a str,
    subresource: &'a str,
    name: &'a str,
) -> Attributes<'a> {
    Attributes::Resource {
        verb,
        namespace,
        group,
        version: "v1",
        resource,
        subresource,
        name,
    }
}

#[test]
fn access_rules_deny_explicitly_what_they_do_not_allow() {
    let p = load_clean(ALLOW_ALL);
    let who = restricted(&["GET /api/v1/namespaces/*/pods"]);
    // Inside the rules the policy decides.
    assert_eq!(
        who.decide(&p, full("list", "x", "", "pods", "", "")),
        allowed_by("allowed by policy rule 0 (resource_permissions \"*/*\")")
    );
    assert!(who.can(&p, full("watch", "x", "", "pods", "", "")));
    // Outside: an explicit deny naming method and path, whatever the policy grants.
    assert_eq!(
        who.decide(&p, full("create", "x", "apps", "deployments", "", "")),
        Decision {
            allowed: false,
            denied: true,
            reason: "POST /apis/apps/v1/namespaces/x/deployments: the application credential's access rules do not allow it".into()
        }
    );
    for attributes in [
        full("get", "x", "", "pods", "", "web-0"),
        full("get", "x", "", "pods", "log", "web-0"),
        full("list", "", "", "pods", "", ""),
        full("delete", "x", "", "pods", "", "web-0"),
        full("bind", "x", "rbac.authorization.k8s.io", "roles", "", "r"),
        nonres("get", "/healthz"),
    ] {
        let d = who.decide(&p, attributes);
        assert!(!d.allowed && d.denied, "{attributes:?}: {d:?}");
        assert!(
            d.reason
                .ends_with(": the application credential's access rules do not allow it"),
            "{d:?}"
        );
    }
    let bind = who.decide(
        &p,
        full("bind", "x", "rbac.authorization.k8s.io", "roles", "", "r"),
    );
    assert!(bind.reason.contains("no HTTP method"), "{bind:?}");
    // Inside the rules but not granted by the policy: no opinion, as for anyone.
    let none = load_clean(r#"[{"resource_permissions": {"x/services": ["get"]}}]"#);
    assert_eq!(
        who.decide(&none, full("list", "x", "", "pods", "", "")),
        denied()
    );
}

#[test]
fn access_rules_only_bind_keystone_identities() {
    let p = load_clean(ALLOW_ALL);
    // A ServiceAccount that somehow carries the key: not a Keystone identity, untouched.
    let sa = Who::with_extra(
        "system:serviceaccount:x:y",
        &[(EXTRA_CREDENTIAL_ID, "JTI=1")],
    )
    .push(EXTRA_ACCESS_RULES, "GET /nothing");
    assert_eq!(
        sa.decide(&p, full("create", "x", "apps", "deployments", "", "")),
        Decision {
            allowed: false,
            denied: false,
            reason: "not a Keystone identity".into()
        }
    );
    // No key: no restriction.
    assert!(Who::new("alice").can(&p, full("create", "x", "apps", "deployments", "", "")));
}

#[test]
fn access_rules_that_cannot_be_read_allow_nothing() {
    let p = load_clean(ALLOW_ALL);
    // The key present with no value, or values that are no "METHOD PATH": everything denied.
    let empty = Who {
        extra: Who::new("alice").extra.map(|mut e| {
            e.insert(EXTRA_ACCESS_RULES.into(), vec![]);
            e
        }),
        ..Who::new("alice")
    };
    let garbage = restricted(&[
        "",
        "GET",
        "/api/v1/namespaces/x/pods",
        "get /api/v1/namespaces/x/pods",
    ]);
    for who in [empty, garbage] {
        let d = who.decide(&p, full("list", "x", "", "pods", "", ""));
        assert!(d.denied && !d.allowed, "{d:?}");
    }
    // One good rule among bad ones is enough.
    assert!(
        restricted(&["nonsense", "GET /api/v1/namespaces/x/pods"])
            .can(&p, full("list", "x", "", "pods", "", ""))
    );
}

proptest! {
    #[test]
    fn access_rules_never_widen_and_deny_exactly_outside(
        who in arb_who(),
        (resource, attrs) in arb_attributes(),
        rules in prop::collection::vec("(GET|POST|PUT|DELETE|get) /[a-c*/{}]{0,8}", 0..3),
    ) {
        let p = load(r#"[{"resource_permissions": {"*/*": ["*"]}, "nonresource": {"verbs": ["*"], "path": "*"}}]"#);
        let a = attributes(resource, &attrs);
        let free = who.decide(&p, a);
        let mut bound = who.clone();
        if let Some(extra) = bound.extra.as_mut() {
            extra.insert(EXTRA_ACCESS_RULES.into(), rules.clone());
        }
        let d = bound.decide(&p, a);
        // Never more than without rules; never both allowed and denied.
        prop_assert!(!d.allowed || free.allowed);
        prop_assert!(!(d.allowed && d.denied));
        let keystone = who.extra.as_ref().is_some_and(is_keystone_identity);
        let inside = access_rules::allows(&rules, &access_rules::http_request(&a));
        prop_assert_eq!(d.denied, keystone && !inside);
        if !d.denied {
            prop_assert_eq!(&d, &free);
        }
    }
}
