//! The client against a stand-in API server on 127.0.0.1 (plain HTTP: the TLS set-up is
//! kk_core::tls's and tested there): paths, methods, bodies, headers, paging, the error
//! classes, bounded waits, token files, and no token in any error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::config::ClusterConfig;
use crate::types::{Namespace, ObjectMeta, RoleBinding, RoleRef, Subject};

/// A request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: String,
    body: Value,
}

type Handler = dyn Fn(&Seen) -> Option<(u16, String, String)> + Send + Sync;

struct Stub {
    url: Url,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    /// `answer` gives (status, extra header lines, body), or `None` to never answer.
    async fn start(
        answer: impl Fn(&Seen) -> Option<(u16, String, String)> + Send + Sync + 'static,
    ) -> Stub {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer: Arc<Handler> = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let log = log.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    while buf.len() < head_end + length {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let mut words = head.split_whitespace();
                    let seen = Seen {
                        method: words.next().unwrap_or("").to_string(),
                        target: words.next().unwrap_or("").to_string(),
                        authorization: header("authorization"),
                        body: serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null),
                    };
                    log.lock().unwrap().push(seen.clone());
                    let Some((status, extra, body)) = answer(&seen) else {
                        // Hold the connection open, never answering.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Stub { url, seen }
    }

    fn client(&self, credential: Credential, timeout: Duration) -> KubeClient {
        KubeClient::new(
            ClusterConfig {
                server: self.url.clone(),
                origin: "test".into(),
                ca: None,
                identity: None,
                credential,
            },
            &ClientSettings {
                timeout,
                connect_timeout: timeout,
                user_agent: "test".into(),
            },
        )
        .unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}).to_string()
}

fn binding(name: &str) -> RoleBinding {
    RoleBinding::new(
        ObjectMeta::named(name),
        vec![Subject {
            kind: "User".into(),
            api_group: crate::types::RBAC_GROUP.into(),
            name: "alice".into(),
            namespace: None,
        }],
        RoleRef {
            api_group: crate::types::RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: "view".into(),
        },
    )
}

#[tokio::test]
async fn requests_are_the_api_s_paths_methods_and_bodies() {
    let stub = Stub::start(|s| {
        let ok = |v: Value| Some((200, String::new(), v.to_string()));
        match (s.method.as_str(), s.target.as_str()) {
            ("GET", "/api/v1/namespaces/team-a") => {
                ok(json!({"metadata": {"name": "team-a", "resourceVersion": "5"}}))
            }
            ("GET", "/api/v1/namespaces/gone") => Some((
                404,
                String::new(),
                status(404, "NotFound", "namespaces \"gone\" not found"),
            )),
            ("POST", "/api/v1/namespaces") | ("PUT", "/api/v1/namespaces/team-a") => {
                ok(s.body.clone())
            }
            ("GET", t)
                if t.starts_with(
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings?",
                ) =>
            {
                if t.contains("continue=") {
                    ok(json!({"metadata": {}, "items": [binding("b2")]}))
                } else {
                    ok(json!({"metadata": {"continue": "next page"}, "items": [binding("b1")]}))
                }
            }
            ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings") => {
                ok(s.body.clone())
            }
            (
                "DELETE",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/u1_member",
            ) => ok(json!({"status": "Success"})),
            ("GET", "/version") => {
                ok(json!({"major": "1", "minor": "36", "gitVersion": "v1.36.0"}))
            }
            _ => Some((418, String::new(), "unexpected".into())),
        }
    })
    .await;
    let client = stub.client(
        Credential::Token(Secret::new("tok-1")),
        Duration::from_secs(5),
    );

    assert_eq!(client.version().await.unwrap().git_version, "v1.36.0");
    let ns: Namespace = client.get(None, "team-a").await.unwrap().unwrap();
    assert_eq!(ns.metadata.resource_version.as_deref(), Some("5"));
    assert!(
        client
            .get::<Namespace>(None, "gone")
            .await
            .unwrap()
            .is_none()
    );
    let created = client
        .create(None, &Namespace::new(ObjectMeta::named("new")))
        .await
        .unwrap();
    assert_eq!(created.metadata.name, "new");
    client.update(None, &ns).await.unwrap();
    let all: Vec<RoleBinding> = client
        .list(
            Some("team-a"),
            Some("app.kubernetes.io/managed-by=k8s-keystone-auth"),
        )
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|b| b.metadata.name.as_str())
            .collect::<Vec<_>>(),
        ["b1", "b2"],
        "both pages"
    );
    client
        .create(Some("team-a"), &binding("u1_member"))
        .await
        .unwrap();
    client
        .delete::<RoleBinding>(Some("team-a"), "u1_member", Some("12"))
        .await
        .unwrap();

    let seen = stub.seen();
    let lines: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        lines,
        [
            "GET /version",
            "GET /api/v1/namespaces/team-a",
            "GET /api/v1/namespaces/gone",
            "POST /api/v1/namespaces",
            "PUT /api/v1/namespaces/team-a",
            "GET /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings?limit=500&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dk8s-keystone-auth",
            "GET /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings?limit=500&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dk8s-keystone-auth&continue=next+page",
            "POST /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
            "DELETE /apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/u1_member",
        ]
    );
    assert!(seen.iter().all(|s| s.authorization == "Bearer tok-1"));
    assert_eq!(
        seen[3].body,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new"}})
    );
    assert_eq!(
        seen[4].body["metadata"]["resourceVersion"], "5",
        "the update carries the version it read"
    );
    assert_eq!(seen[7].body["roleRef"]["name"], "view");
    assert_eq!(
        seen[8].body,
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": "12"}})
    );
}

#[tokio::test]
async fn errors_are_classified_and_never_show_the_token() {
    let stub = Stub::start(|s| {
        let name = s.body["metadata"]["name"].as_str().unwrap_or("");
        Some(match name {
            "exists" => (409, String::new(), status(409, "AlreadyExists", "rolebindings \"exists\" already exists")),
            "busy" => (429, "Retry-After: 3\r\n".into(), status(429, "TooManyRequests", "slow down")),
            "broken" => (503, String::new(), "<html>upstream down</html>".into()),
            "denied" => (403, String::new(), status(403, "Forbidden", "rolebindings is forbidden: User \"system:serviceaccount:kube-system:k8s-keystone-auth\" cannot create")),
            "bad_name" => (422, String::new(), status(422, "Invalid", "metadata.name: Invalid value")),
            "who" => (401, String::new(), status(401, "Unauthorized", "Unauthorized")),
            _ => (404, String::new(), status(404, "NotFound", "the namespace does not exist")),
        })
    })
    .await;
    let token = "eyJhbGciOiJSUzI1NiJ9.the-secret-token";
    let client = stub.client(
        Credential::Token(Secret::new(token)),
        Duration::from_secs(5),
    );
    let create = |name: &'static str| {
        let client = client.clone();
        async move { client.create(Some("ns"), &binding(name)).await.unwrap_err() }
    };
    let e = create("exists").await;
    assert!(e.is_conflict() && e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("AlreadyExists"), "{e}");
    let e = create("busy").await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(e.label(), "too_many_requests");
    let e = create("broken").await;
    assert!(
        matches!(e, KubeError::Server { status: 503, .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("upstream down"),
        "a body that is not a Status is the message: {e}"
    );
    let e = create("denied").await;
    assert!(matches!(e, KubeError::Forbidden { .. }), "{e:?}");
    assert!(
        e.to_string().contains("create rolebinding ns/denied")
            && e.to_string().contains("cannot create"),
        "{e}"
    );
    let e = create("bad_name").await;
    assert!(
        matches!(e, KubeError::Invalid { status: 422, .. }) && !e.is_retryable(),
        "{e:?}"
    );
    let e = create("who").await;
    assert_eq!(e.label(), "unauthorized");
    let e = create("other").await;
    assert!(e.is_not_found() && !e.is_retryable());

    // Unreachable: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = KubeClient::new(
        ClusterConfig {
            server: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            origin: "test".into(),
            ca: None,
            identity: None,
            credential: Credential::Token(Secret::new(token)),
        },
        &ClientSettings::default(),
    )
    .unwrap();
    let e = dead.version().await.unwrap_err();
    assert_eq!(e.label(), "unreachable", "{e:?}");
    for e in [e, create("who").await, create("denied").await] {
        let shown = format!("{e} {e:?} {}", kk_core::error_chain(&e));
        assert!(!shown.contains("the-secret-token"), "{shown}");
    }
    assert!(
        format!("{client:?}").contains("127.0.0.1") && !format!("{client:?}").contains("secret")
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_bounded_timeout() {
    let stub = Stub::start(|_| None).await;
    let client = stub.client(Credential::None, Duration::from_millis(300));
    let started = Instant::now();
    let e = client.get::<Namespace>(None, "x").await.unwrap_err();
    assert!(matches!(e, KubeError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_token_file_is_re_read_when_it_changes_and_after_a_401() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "first-token\n").unwrap();
    // The first token is refused once the second exists (as after a rotation).
    let path = file.clone();
    let stub = Stub::start(move |s| {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if s.authorization == format!("Bearer {}", current.trim()) {
            Some((200, String::new(), json!({"gitVersion": "v1"}).to_string()))
        } else {
            Some((
                401,
                String::new(),
                status(401, "Unauthorized", "Unauthorized"),
            ))
        }
    })
    .await;
    let client = stub.client(Credential::TokenFile(file.clone()), Duration::from_secs(5));
    client.version().await.unwrap();
    std::fs::write(&file, "second-token-which-is-longer\n").unwrap();
    // Within the recheck interval the cached token may still be sent; a 401 drops it, and the
    // file is read again at once (or after the recheck interval, whichever comes first).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.version().await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.label(), "unauthorized", "{e:?}");
                assert!(Instant::now() < deadline, "the new token was never sent");
            }
        }
    }
    let auths: Vec<String> = stub.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(
        auths.first().map(String::as_str),
        Some("Bearer first-token")
    );
    assert_eq!(
        auths.last().map(String::as_str),
        Some("Bearer second-token-which-is-longer")
    );
    // A token file that goes away is a credential error naming the file, not a panic.
    std::fs::remove_file(&file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.version().await {
            Err(KubeError::Credential(m)) => {
                assert!(m.contains("token"), "{m}");
                break;
            }
            _ => assert!(
                Instant::now() < deadline,
                "a missing token file was never noticed"
            ),
        }
    }
}
