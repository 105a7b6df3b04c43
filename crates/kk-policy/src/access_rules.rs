//! Application-credential access rules: from a SubjectAccessReview back to the HTTP request
//! kube-apiserver served, and Keystone's matching of a rule against it. Pure functions.
//!
//! # The request
//!
//! | review | method | path |
//! |---|---|---|
//! | `get`, `list`, `watch` | `GET` | |
//! | `create` | `POST` | |
//! | `update` | `PUT` | |
//! | `patch` | `PATCH` | |
//! | `delete`, `deletecollection` | `DELETE` | |
//! | any other verb (`impersonate`, `bind`, `escalate`, `use`, `approve`, ...) | none: matches no rule | |
//! | resource, core group (`""`) | | `/api/VERSION` |
//! | resource, other group | | `/apis/GROUP/VERSION` |
//! | namespaced | | `+ /namespaces/NS` |
//! | | | `+ /RESOURCE [+ /NAME] [+ /SUBRESOURCE]` |
//! | the `namespaces` resource itself | | `/api/v1/namespaces [+ /NAME] [+ /SUBRESOURCE]` |
//! | non-resource | the verb upper-cased (`get` → `GET`) | the path |
//!
//! `list`, `watch` (also `?watch=true`) and `deletecollection` have no name, so their path is
//! the collection's. A review without a version (`kubectl auth can-i` sends none) gets `v1` in
//! the core group, which has no other version; in another group it has no path and matches no
//! rule.
//!
//! # The rule
//!
//! Keystone stores a rule's method as one of `DELETE GET HEAD PATCH POST PUT`, compared exactly.
//! Its path is matched as keystonemiddleware's `_path_matches` (13.0.1) does, the whole path:
//!
//! * `*` and `{name}`: one or more characters other than `/` (so one segment, or the rest of
//!   a segment: `team-*`);
//! * `**`: any characters, `/` included, none at all included (`/api/**` matches `/api/` and
//!   `/api/v1/pods`, not `/api`);
//! * a `{` or `}` that is not part of a `{name}`: ignored (keystonemiddleware drops them);
//! * any other character: itself.
//!
//! keystonemiddleware puts the other characters into a regular expression unescaped, so there a
//! `.` matches any character and `+ ? ( ) [ ] | ^ $ \` are regular-expression syntax. Here a `.`
//! matches only `.`, and a rule with any of the others matches nothing: this service never
//! allows a path that keystonemiddleware would refuse. Paths with a newline, paths over
//! [`MAX_PATH`] bytes and rules over [`MAX_RULE`] bytes match nothing either.

use super::Attributes;
use kk_core::k8s::extra_keys;

/// Longest request path that can match a rule.
pub const MAX_PATH: usize = 8192;
/// Longest rule path that can match (Keystone allows 225 characters).
pub const MAX_RULE: usize = 1024;

/// The HTTP request behind a review, as an access rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE` or `HEAD`; `None` for a verb no HTTP method
    /// serves (it matches no rule).
    pub method: Option<&'static str>,
    /// The path; `None` when the review does not name one (it matches no rule).
    pub path: Option<String>,
}

impl std::fmt::Display for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.method, &self.path) {
            (Some(m), Some(p)) => write!(f, "{m} {p}"),
            (None, Some(p)) => write!(f, "a verb no HTTP method serves, on {p}"),
            (Some(m), None) => write!(f, "{m} on no known path (the review names no API version)"),
            (None, None) => write!(f, "a verb no HTTP method serves, on no known path"),
        }
    }
}

/// The HTTP method kube-apiserver maps to a resource verb.
pub fn resource_method(verb: &str) -> Option<&'static str> {
    match verb {
        "get" | "list" | "watch" => Some("GET"),
        "create" => Some("POST"),
        "update" => Some("PUT"),
        "patch" => Some("PATCH"),
        "delete" | "deletecollection" => Some("DELETE"),
        _ => None,
    }
}

/// The HTTP method of a non-resource verb (kube-apiserver lower-cases the method), limited to
/// the methods a Keystone rule can name.
pub fn nonresource_method(verb: &str) -> Option<&'static str> {
    match verb {
        "get" => Some("GET"),
        "head" => Some("HEAD"),
        "post" => Some("POST"),
        "put" => Some("PUT"),
        "patch" => Some("PATCH"),
        "delete" => Some("DELETE"),
        _ => None,
    }
}

/// The request kube-apiserver served for a review.
pub fn http_request(attributes: &Attributes<'_>) -> HttpRequest {
    match *attributes {
        Attributes::NonResource { verb, path } => HttpRequest {
            method: nonresource_method(verb),
            path: Some(path.to_owned()),
        },
        Attributes::Resource {
            verb,
            namespace,
            group,
            version,
            resource,
            subresource,
            name,
        } => HttpRequest {
            method: resource_method(verb),
            path: resource_path(namespace, group, version, resource, subresource, name),
        },
    }
}

fn resource_path(
    namespace: &str,
    group: &str,
    version: &str,
    resource: &str,
    subresource: &str,
    name: &str,
) -> Option<String> {
    let version = match (group, version) {
        ("", "" | "*") => "v1",
        (_, "" | "*") => return None,
        (_, v) => v,
    };
    let mut path = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    // kube-apiserver reads /api/v1/namespaces/NAME as namespace NAME *and* name NAME.
    let name = if group.is_empty() && resource == "namespaces" {
        if name.is_empty() { namespace } else { name }
    } else {
        if !namespace.is_empty() {
            path.push_str("/namespaces/");
            path.push_str(namespace);
        }
        name
    };
    for part in [resource, name, subresource] {
        if !part.is_empty() {
            path.push('/');
            path.push_str(part);
        }
    }
    Some(path)
}

/// Whether one `"METHOD PATH"` value of [`extra_keys::ACCESS_RULES`] allows the request.
pub fn rule_allows(rule: &str, request: &HttpRequest) -> bool {
    let (Some(method), Some(path)) = (request.method, &request.path) else {
        return false;
    };
    extra_keys::parse_access_rule_value(rule)
        .is_some_and(|(m, p)| m == method && path_matches(p, path))
}

/// Whether any of the rules allows the request.
pub fn allows(rules: &[String], request: &HttpRequest) -> bool {
    rules.iter().any(|r| rule_allows(r, request))
}

/// One compiled piece of a rule path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A byte that must be there.
    Byte(u8),
    /// `*` or `{name}`: one or more bytes other than `/`.
    Segment,
    /// `**`: any bytes but a newline, none included.
    Any,
}

/// Characters keystonemiddleware would read as regular-expression syntax.
const REGEX_SYNTAX: &[u8] = b"+?()[]|^$\\";

fn compile(pattern: &str) -> Option<Vec<Token>> {
    let b = pattern.as_bytes();
    if b.len() > MAX_RULE || b.contains(&b'\n') {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                if let Some(end) = b[i + 1..].iter().position(|&c| c == b'}') {
                    out.push(Token::Segment);
                    i += end + 2;
                    continue;
                }
            }
            b'}' => {}
            b'*' if b.get(i + 1) == Some(&b'*') => {
                out.push(Token::Any);
                i += 2;
                continue;
            }
            b'*' => out.push(Token::Segment),
            c if REGEX_SYNTAX.contains(&c) => return None,
            c => out.push(Token::Byte(c)),
        }
        i += 1;
    }
    Some(out)
}

/// Whether a Keystone access-rule path matches a whole request path (see the module docs).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p = path.as_bytes();
    if p.len() > MAX_PATH || p.contains(&b'\n') {
        return false;
    }
    let Some(tokens) = compile(pattern) else {
        return false;
    };
    // A cheap refusal before the full match: the literal start must be the path's start.
    let literal = tokens
        .iter()
        .take_while(|t| matches!(t, Token::Byte(_)))
        .count();
    if literal > p.len()
        || tokens[..literal]
            .iter()
            .zip(p)
            .any(|(t, &c)| *t != Token::Byte(c))
    {
        return false;
    }
    // reach[j]: the tokens so far match the first j bytes of the path.
    let mut reach = vec![false; p.len() + 1];
    reach[0] = true;
    let mut next = vec![false; p.len() + 1];
    for token in tokens {
        match token {
            Token::Byte(c) => {
                next[0] = false;
                for j in 1..=p.len() {
                    next[j] = reach[j - 1] && p[j - 1] == c;
                }
            }
            Token::Segment => {
                next[0] = false;
                for j in 1..=p.len() {
                    next[j] = (reach[j - 1] || next[j - 1]) && p[j - 1] != b'/';
                }
            }
            Token::Any => {
                next[0] = reach[0];
                for j in 1..=p.len() {
                    next[j] = reach[j] || (next[j - 1] && p[j - 1] != b'\n');
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[p.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn res<'a>(
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

    fn line(a: &Attributes<'_>) -> String {
        http_request(a).to_string()
    }

    #[test]
    fn reviews_map_to_the_request_kube_apiserver_served() {
        let cases: &[(Attributes<'_>, &str)] = &[
            // kubectl get pods -n x (list), and with --watch (?watch=true: same path)
            (
                res("list", "x", "", "pods", "", ""),
                "GET /api/v1/namespaces/x/pods",
            ),
            (
                res("watch", "x", "", "pods", "", ""),
                "GET /api/v1/namespaces/x/pods",
            ),
            (
                res("get", "x", "", "pods", "", "web-0"),
                "GET /api/v1/namespaces/x/pods/web-0",
            ),
            (
                res("get", "x", "", "pods", "log", "web-0"),
                "GET /api/v1/namespaces/x/pods/web-0/log",
            ),
            (
                res("create", "x", "", "pods", "exec", "web-0"),
                "POST /api/v1/namespaces/x/pods/web-0/exec",
            ),
            (
                res("create", "x", "apps", "deployments", "", ""),
                "POST /apis/apps/v1/namespaces/x/deployments",
            ),
            (
                res("update", "x", "apps", "deployments", "scale", "d"),
                "PUT /apis/apps/v1/namespaces/x/deployments/d/scale",
            ),
            (
                res("patch", "x", "apps", "deployments", "", "d"),
                "PATCH /apis/apps/v1/namespaces/x/deployments/d",
            ),
            (
                res("delete", "x", "", "configmaps", "", "c"),
                "DELETE /api/v1/namespaces/x/configmaps/c",
            ),
            (
                res("deletecollection", "x", "", "pods", "", ""),
                "DELETE /api/v1/namespaces/x/pods",
            ),
            // pods in all namespaces, cluster-scoped resources: no namespace segment
            (res("list", "", "", "pods", "", ""), "GET /api/v1/pods"),
            (
                res("get", "", "", "nodes", "", "n1"),
                "GET /api/v1/nodes/n1",
            ),
            (
                res(
                    "get",
                    "",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "view",
                ),
                "GET /apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            ),
            // the namespace resource itself (kube-apiserver sets namespace and name to NAME)
            (
                res("list", "", "", "namespaces", "", ""),
                "GET /api/v1/namespaces",
            ),
            (
                res("create", "", "", "namespaces", "", ""),
                "POST /api/v1/namespaces",
            ),
            (
                res("get", "x", "", "namespaces", "", "x"),
                "GET /api/v1/namespaces/x",
            ),
            (
                res("get", "x", "", "namespaces", "", ""),
                "GET /api/v1/namespaces/x",
            ),
            (
                res("update", "x", "", "namespaces", "finalize", "x"),
                "PUT /api/v1/namespaces/x/finalize",
            ),
            // a resource named namespaces in another group is namespaced like any other
            (
                res("get", "x", "example.com", "namespaces", "", "y"),
                "GET /apis/example.com/v1/namespaces/x/namespaces/y",
            ),
            (
                Attributes::NonResource {
                    verb: "get",
                    path: "/healthz",
                },
                "GET /healthz",
            ),
            (
                Attributes::NonResource {
                    verb: "head",
                    path: "/api",
                },
                "HEAD /api",
            ),
        ];
        for (a, want) in cases {
            assert_eq!(line(a), *want, "{a:?}");
        }
    }

    #[test]
    fn verbs_without_an_http_method_match_no_rule() {
        for verb in [
            "impersonate",
            "bind",
            "escalate",
            "use",
            "approve",
            "sign",
            "attest",
            "*",
            "GET",
            "",
        ] {
            let r = http_request(&res(verb, "x", "", "pods", "", ""));
            assert_eq!(r.method, None, "{verb}");
            assert!(!allows(&["GET /**".into(), "POST /**".into()], &r));
            assert!(r.to_string().contains("no HTTP method"), "{r}");
        }
        for verb in ["options", "*", "GET", "connect"] {
            let r = http_request(&Attributes::NonResource { verb, path: "/x" });
            assert_eq!(r.method, None, "{verb}");
        }
    }

    #[test]
    fn a_missing_version_is_v1_in_the_core_group_and_unknown_elsewhere() {
        let core = Attributes::Resource {
            verb: "list",
            namespace: "x",
            group: "",
            version: "",
            resource: "pods",
            subresource: "",
            name: "",
        };
        assert_eq!(line(&core), "GET /api/v1/namespaces/x/pods");
        let apps = Attributes::Resource {
            verb: "list",
            namespace: "x",
            group: "apps",
            version: "*",
            resource: "deployments",
            subresource: "",
            name: "",
        };
        let r = http_request(&apps);
        assert_eq!(r.path, None);
        assert!(!allows(&["GET /**".into()], &r));
        let beta = Attributes::Resource {
            verb: "list",
            namespace: "",
            group: "batch",
            version: "v1beta1",
            resource: "cronjobs",
            subresource: "",
            name: "",
        };
        assert_eq!(line(&beta), "GET /apis/batch/v1beta1/cronjobs");
    }

    #[test]
    fn path_syntax_is_keystones() {
        let yes: &[(&str, &str)] = &[
            ("/api/v1/namespaces/*/pods", "/api/v1/namespaces/x/pods"),
            (
                "/api/v1/namespaces/{namespace}/pods",
                "/api/v1/namespaces/x/pods",
            ),
            ("/api/v1/namespaces/{}/pods", "/api/v1/namespaces/x/pods"),
            (
                "/api/v1/namespaces/team-*/pods",
                "/api/v1/namespaces/team-a/pods",
            ),
            ("/api/**", "/api/"),
            ("/api/**", "/api/v1/namespaces/x/pods/y/log"),
            ("/api/v1/**/pods", "/api/v1/namespaces/x/pods"),
            ("/api/v1/**/pods", "/api/v1//pods"),
            ("**", "/anything/at/all"),
            (
                "/apis/rbac.authorization.k8s.io/v1/*",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            ),
            ("/api/v1/{pods", "/api/v1/pods"),
            ("/api/v1/pods}", "/api/v1/pods"),
            ("/api/***", "/api/v1/x"),
        ];
        let no: &[(&str, &str)] = &[
            // * is one segment, never a slash, never empty
            ("/api/v1/namespaces/*/pods", "/api/v1/namespaces/x/y/pods"),
            ("/api/v1/namespaces/*/pods", "/api/v1/namespaces//pods"),
            ("/api/v1/namespaces/*/pods", "/api/v1/namespaces/x/pods/y"),
            ("/api/v1/namespaces/*/pods", "/api/v1/namespaces/x/pods/"),
            ("/api/v1/namespaces/*", "/api/v1/namespaces/x/pods"),
            // the whole path, no prefix
            ("/api/v1/pods", "/api/v1/pods/x"),
            ("/api/v1/pods", "/api/v1/pod"),
            ("/api/**", "/api"),
            ("/api/v1/**/pods", "/api/v1/pods"),
            // the method is another field; the path is case-sensitive
            ("/API/v1/pods", "/api/v1/pods"),
            // stricter than keystonemiddleware's unescaped regular expression
            (
                "/apis/rbac.authorization.k8s.io/v1/*",
                "/apis/rbacXauthorization.k8s.io/v1/x",
            ),
            (
                "/api/v1/namespaces/team.a/pods",
                "/api/v1/namespaces/team-a/pods",
            ),
            ("/api/v1/(pods)", "/api/v1/pods"),
            ("/api/v1/pods+", "/api/v1/pods"),
            ("/api/v1/pods+", "/api/v1/pods+"),
            ("/api/v1/pods$", "/api/v1/pods"),
            ("/api/v1/pods", "/api/v1/pods\n"),
            ("**", "/a\nb"),
        ];
        for (pattern, path) in yes {
            assert!(path_matches(pattern, path), "{pattern} should match {path}");
        }
        for (pattern, path) in no {
            assert!(
                !path_matches(pattern, path),
                "{pattern} should not match {path:?}"
            );
        }
        assert!(!path_matches(
            &format!("/{}", "a".repeat(MAX_RULE)),
            &format!("/{}", "a".repeat(MAX_RULE))
        ));
        assert!(!path_matches("**", &format!("/{}", "a".repeat(MAX_PATH))));
    }

    #[test]
    fn rules_compare_the_method_exactly() {
        let get_pods = http_request(&res("list", "x", "", "pods", "", ""));
        assert!(rule_allows("GET /api/v1/namespaces/*/pods", &get_pods));
        assert!(!rule_allows("get /api/v1/namespaces/*/pods", &get_pods));
        assert!(!rule_allows("POST /api/v1/namespaces/*/pods", &get_pods));
        assert!(!rule_allows("HEAD /api/v1/namespaces/*/pods", &get_pods));
        assert!(!rule_allows("GET  /api/v1/namespaces/*/pods", &get_pods));
        assert!(!rule_allows("GET/api/v1/namespaces/*/pods", &get_pods));
        assert!(!rule_allows("", &get_pods));
        assert!(!allows(&[], &get_pods));
        assert!(allows(
            &["POST /x".into(), "GET /api/v1/namespaces/x/pods".into()],
            &get_pods
        ));
    }

    /// 38,000 cases computed by keystonemiddleware 13.0.1's own `_path_matches` (see
    /// tests/fixtures/access_rules/generate.py): this matcher agrees wherever the rule has no
    /// `.` and no regular-expression syntax, and never allows what it refuses.
    #[test]
    fn agrees_with_keystonemiddleware() {
        #[derive(serde::Deserialize)]
        struct Fixture {
            paths: Vec<String>,
            matches: std::collections::BTreeMap<String, Vec<usize>>,
        }
        let f: Fixture = serde_json::from_str(include_str!(
            "../../../tests/fixtures/access_rules/keystonemiddleware.json"
        ))
        .unwrap();
        let (mut compared, mut allowed) = (0, 0);
        for (pattern, hits) in &f.matches {
            let strict = pattern
                .bytes()
                .any(|c| c == b'.' || REGEX_SYNTAX.contains(&c));
            for (i, path) in f.paths.iter().enumerate() {
                let keystone = hits.contains(&i);
                let ours = path_matches(pattern, path);
                assert!(
                    !ours || keystone,
                    "{pattern:?} allows {path:?}, keystonemiddleware does not"
                );
                if !strict {
                    assert_eq!(ours, keystone, "{pattern:?} on {path:?}");
                    compared += 1;
                    allowed += usize::from(ours);
                }
            }
        }
        assert!(compared > 20_000 && allowed > 1_000, "{compared} {allowed}");
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9.-]{1,8}"
    }

    fn path() -> impl Strategy<Value = String> {
        proptest::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/")))
    }

    proptest! {
        #[test]
        fn matching_never_panics(pattern in "[a-z/*{}.+()\\[\\]$^|\\\\\n-]{0,40}", path in ".{0,60}") {
            let _ = path_matches(&pattern, &path);
        }

        #[test]
        fn a_plain_path_matches_itself_only(a in path(), b in path()) {
            prop_assert!(path_matches(&a, &a));
            prop_assert_eq!(path_matches(&a, &b), a == b);
        }

        #[test]
        fn star_is_exactly_one_segment(
            before in path(), seg in segment(), more in proptest::collection::vec(segment(), 2..4), after in path(),
        ) {
            let pattern = format!("{before}/*{after}");
            let one = format!("{before}/{seg}{after}");
            let several = format!("{before}/{}{after}", more.join("/"));
            let none = format!("{before}/{after}");
            prop_assert!(path_matches(&pattern, &one));
            prop_assert!(!path_matches(&pattern, &several));
            prop_assert!(!path_matches(&pattern, &none));
        }

        #[test]
        fn double_star_is_any_rest(prefix in path(), rest in ".{0,40}") {
            let rest = rest.replace('\n', "");
            let pattern = format!("{prefix}/**");
            let under = format!("{prefix}/{rest}");
            prop_assert!(path_matches(&pattern, &under));
            prop_assert!(!path_matches(&pattern, &prefix));
        }

        #[test]
        fn a_star_pattern_is_the_path_with_segments_replaced(
            segs in proptest::collection::vec((segment(), 0..3u8), 1..6),
        ) {
            // Replace some segments by `*`, some by `{x}`: the path still matches, and a
            // path with one segment more or less never does.
            let path: Vec<&str> = segs.iter().map(|(s, _)| s.as_str()).collect();
            let pattern: Vec<String> = segs.iter().map(|(s, k)| match k { 0 => s.clone(), 1 => "*".into(), _ => "{x}".into() }).collect();
            let (pattern, path) = (format!("/{}", pattern.join("/")), format!("/{}", path.join("/")));
            let (longer_path, longer_pattern) = (format!("{path}/more"), format!("{pattern}/more"));
            prop_assert!(path_matches(&pattern, &path));
            prop_assert!(!path_matches(&pattern, &longer_path));
            prop_assert!(!path_matches(&longer_pattern, &path));
        }

        #[test]
        fn resource_paths_have_the_documented_shape(
            verb in "(get|list|watch|create|update|patch|delete|deletecollection)",
            ns in "[a-z]{0,5}", group in "(|apps|rbac\\.authorization\\.k8s\\.io)", resource in "(pods|deployments|nodes)",
            sub in "(|status|log)", name in "[a-z]{0,5}",
        ) {
            let a = Attributes::Resource { verb: &verb, namespace: &ns, group: &group, version: "v1", resource: &resource, subresource: &sub, name: &name };
            let r = http_request(&a);
            let path = r.path.clone().unwrap_or_default();
            let root = if group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{group}/v1") };
            prop_assert!(path.starts_with(&root), "{}", path);
            prop_assert_eq!(path.contains("/namespaces/"), !ns.is_empty());
            prop_assert!(!path.contains("//") && !path.ends_with('/'));
            let last = format!("/{}", if !sub.is_empty() { &sub } else if !name.is_empty() { &name } else { &resource });
            prop_assert!(path.ends_with(&last));
            // the rule naming exactly this request allows it, and only with its method
            let rule = format!("{} {}", r.method.unwrap_or("?"), path);
            prop_assert!(rule_allows(&rule, &r));
            let other = if r.method == Some("GET") { "POST" } else { "GET" };
            let wrong = format!("{other} {path}");
            prop_assert!(!rule_allows(&wrong, &r));
        }
    }
}
