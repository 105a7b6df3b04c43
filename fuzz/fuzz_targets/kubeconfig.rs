//! Kubeconfig text as the plugin reads it (`kk_plugin::kubeconfig::parse`, the typed model of
//! `kk_core::kubeconfig` that keeps unknown keys), written back (`render`), and merged with a
//! generated kubeconfig (`merge`, what `kubectl-keystone-auth kubeconfig --merge` does).
//!
//! Properties: what parses renders, and the rendering reads back to the same config and the
//! same text; a merge with `force` always succeeds; a successful merge holds the generated
//! cluster, context and user exactly as generated, makes its context current, keeps every
//! other entry, and renders and reads back.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kk_core::kubeconfig::{Config, InteractiveMode};
use kk_core::secret::Secret;
use kk_plugin::kubeconfig::{Spec, generate, merge, parse, render};
use libfuzzer_sys::fuzz_target;

fn generated() -> Config {
    generate(&Spec {
        server: "https://127.0.0.1:6443".into(),
        ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n".to_vec()),
        cluster: "garr".into(),
        context: "alice@garr".into(),
        user: "alice".into(),
        namespace: Some("team-a".into()),
        command: "kubectl-keystone-auth".into(),
        args: vec![],
        env: vec![(
            "OS_APPLICATION_CREDENTIAL_SECRET".into(),
            Secret::new("s3cr3t"),
        )],
        interactive_mode: InteractiveMode::Never,
        token: None,
    })
}

fn round_trip(config: &Config) {
    let text = render(config).expect("a parsed kubeconfig renders");
    let back = parse(&text).expect("a rendered kubeconfig reads back");
    let again = render(&back).unwrap();
    assert_eq!(text, again);
    assert_eq!(parse(&again).unwrap(), back);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(existing) = parse(text) else {
        return;
    };
    round_trip(&existing);
    let new = generated();
    let forced = merge(existing.clone(), &new, true).expect("a forced merge succeeds");
    for merged in [Some(forced), merge(existing.clone(), &new, false).ok()]
        .into_iter()
        .flatten()
    {
        assert_eq!(merged.current_context, new.current_context);
        for c in &new.clusters {
            assert!(merged.clusters.iter().any(|m| m == c));
        }
        for c in &new.contexts {
            assert!(merged.contexts.iter().any(|m| m == c));
        }
        for u in &new.users {
            assert!(merged.users.iter().any(|m| m == u));
        }
        for old in &existing.clusters {
            assert!(merged.clusters.iter().any(|m| m.name == old.name));
        }
        for old in &existing.users {
            assert!(merged.users.iter().any(|m| m.name == old.name));
        }
        for old in &existing.contexts {
            assert!(merged.contexts.iter().any(|m| m.name == old.name));
        }
        round_trip(&merged);
    }
});
