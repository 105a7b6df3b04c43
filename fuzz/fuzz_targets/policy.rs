//! Policy documents (both rule formats, `Policy::parse`), and a parsed policy evaluated
//! against requests made of the rest of the input.
//!
//! The input is the policy text, a NUL byte, then bytes that choose the request (subject,
//! `extra`, attributes). Properties: parsing is deterministic; strict mode refuses exactly
//! the policies with skipped parts; a request without a Keystone identity (no `extra`, no
//! single non-empty project id, or a credential id) is never allowed nor denied; an
//! explicit deny only comes from access rules; an allowed request passed its access rules;
//! the empty policy allows nothing.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use kk_core::k8s::extra_keys;
use kk_policy::{Attributes, Policy, Request, access_rules, is_keystone_identity};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Words the policies and requests share, so that the fuzzer reaches matching rules.
const WORDS: &[&str] = &[
    "",
    "*",
    "get",
    "list",
    "create",
    "delete",
    "pods",
    "pods/exec",
    "exec",
    "secrets",
    "namespaces",
    "default",
    "kube-system",
    "apps",
    "v1",
    "/healthz",
    "/api",
    "/api/*",
    "member",
    "admin",
    "k8s-viewer",
    "demo",
    "p1",
    "alice",
    "devs",
    "!kube-system",
];
const KEYS: &[&str] = &[
    extra_keys::PROJECT_ID,
    extra_keys::PROJECT_NAME,
    extra_keys::ROLES,
    extra_keys::ACCESS_RULES,
    extra_keys::CREDENTIAL_ID,
    "other",
];

fn word(u: &mut Unstructured<'_>) -> Result<String> {
    if u.arbitrary::<bool>()? {
        Ok((*u.choose(WORDS)?).to_string())
    } else {
        u.arbitrary()
    }
}

fn words(u: &mut Unstructured<'_>) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| word(u)).collect()
}

struct Owned {
    user: String,
    uid: String,
    groups: Vec<String>,
    extra: Option<BTreeMap<String, Vec<String>>>,
    resource: bool,
    parts: [String; 7],
}

fn owned(u: &mut Unstructured<'_>) -> Result<Owned> {
    let extra = if u.arbitrary::<bool>()? {
        let mut extra = BTreeMap::new();
        // Mostly a Keystone identity, so that rules are reached.
        if u.ratio(3, 4)? {
            extra.insert(extra_keys::PROJECT_ID.to_string(), vec![word(u)?]);
        }
        for _ in 0..u.int_in_range(0..=3)? {
            let key = *u.choose(KEYS)?;
            let value = if key == extra_keys::ACCESS_RULES && u.arbitrary::<bool>()? {
                vec![format!("{} {}", word(u)?, word(u)?)]
            } else {
                words(u)?
            };
            extra.insert(key.to_string(), value);
        }
        Some(extra)
    } else {
        None
    };
    Ok(Owned {
        user: word(u)?,
        uid: word(u)?,
        groups: words(u)?,
        extra,
        resource: u.arbitrary()?,
        parts: [
            word(u)?,
            word(u)?,
            word(u)?,
            word(u)?,
            word(u)?,
            word(u)?,
            word(u)?,
        ],
    })
}

fn check(policy: &Policy, o: &Owned) {
    let [verb, namespace, group, version, resource, subresource, name] = &o.parts;
    let attributes = if o.resource {
        Attributes::Resource {
            verb,
            namespace,
            group,
            version,
            resource,
            subresource,
            name,
        }
    } else {
        Attributes::NonResource {
            verb,
            path: namespace,
        }
    };
    let mut req = Request {
        user: &o.user,
        uid: &o.uid,
        groups: &o.groups,
        extra: o.extra.as_ref(),
        attributes,
    };
    let decision = policy.evaluate(&req);
    let keystone = o.extra.as_ref().is_some_and(is_keystone_identity);
    assert!(!(decision.allowed && decision.denied), "{decision:?}");
    if !keystone {
        assert!(!decision.allowed && !decision.denied, "{decision:?}");
    }
    let rules = o
        .extra
        .as_ref()
        .and_then(|e| e.get(extra_keys::ACCESS_RULES));
    let http = access_rules::http_request(&attributes);
    if decision.denied {
        assert!(rules.is_some_and(|r| !access_rules::allows(r, &http)));
    }
    if decision.allowed
        && let Some(r) = rules
    {
        assert!(access_rules::allows(r, &http));
    }
    assert!(!Policy::empty().evaluate(&req).allowed);
    // Without `extra` at all: never an opinion.
    req.extra = None;
    let none = policy.evaluate(&req);
    assert!(!none.allowed && !none.denied, "{none:?}");
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let first = Policy::parse(text);
    let second = Policy::parse(text);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.policy.len(), b.policy.len());
            assert_eq!(a.warnings, b.warnings);
            assert_eq!(a.skipped, b.skipped);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("parsing is not deterministic"),
    }
    let Ok(parsed) = first else {
        return;
    };
    let skipped = !parsed.skipped.is_empty();
    let policy = parsed.policy.clone();
    assert_eq!(parsed.strict().is_err(), skipped);
    let mut u = Unstructured::new(rest);
    for _ in 0..4 {
        match owned(&mut u) {
            Ok(o) => check(&policy, &o),
            Err(_) => break,
        }
        if u.is_empty() {
            break;
        }
    }
});
