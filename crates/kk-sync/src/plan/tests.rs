use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn project() -> Project {
    Project {
        id: "0a1b2c3d4e5f".into(),
        name: "team-a".into(),
        domain_id: "default".into(),
    }
}

fn rules(types: &[&str], format: &str) -> Rules {
    Rules::from_config(&SyncConfig {
        data_types_to_sync: types.iter().map(|t| t.to_string()).collect(),
        namespace_format: format.into(),
        projects_blacklist: vec!["blocked-id".into()],
        projects_name_blacklist: vec!["admin".into()],
        role_mappings: vec![],
    })
}

fn user(id: &str, name: &str, roles: &[&str]) -> Holder {
    Holder {
        kind: SubjectKind::User,
        id: id.into(),
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn group(id: &str, name: &str, roles: &[&str]) -> Holder {
    Holder {
        kind: SubjectKind::Group,
        ..user(id, name, roles)
    }
}

fn cluster_roles(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Applies a plan as the API server would, refusing what it would refuse (a create of a name
/// that exists, an update or delete of one that does not or of another version).
fn simulate(observed: &Observed, plan: &Plan) -> Observed {
    let mut o = observed.clone();
    let mut version = 1000;
    for op in &plan.ops {
        version += 1;
        let stored = match op {
            Op::CreateNamespace(ns) => {
                assert!(o.namespace.is_none(), "create of an existing namespace");
                let mut ns = ns.clone();
                ns.metadata.resource_version = Some(version.to_string());
                Some(StoredObject::Namespace(ns))
            }
            Op::UpdateNamespace(ns) => {
                let have = o.namespace.as_ref().expect("update of a missing namespace");
                assert_eq!(have.metadata.resource_version, ns.metadata.resource_version);
                assert!(is_managed(&have.metadata), "update of a namespace not ours");
                let mut ns = ns.clone();
                ns.metadata.resource_version = Some(version.to_string());
                Some(StoredObject::Namespace(ns))
            }
            Op::CreateBinding(b) => {
                assert!(o.namespace.is_some(), "a binding in no namespace");
                assert!(
                    !o.bindings
                        .iter()
                        .any(|x| x.metadata.name == b.metadata.name),
                    "create of an existing binding {}",
                    b.metadata.name
                );
                let mut b = b.clone();
                b.metadata.resource_version = Some(version.to_string());
                Some(StoredObject::Binding(b))
            }
            Op::UpdateBinding(b) => {
                let have = o
                    .bindings
                    .iter()
                    .find(|x| x.metadata.name == b.metadata.name)
                    .expect("update of a missing binding");
                assert!(is_managed(&have.metadata), "update of a binding not ours");
                assert_eq!(have.metadata.resource_version, b.metadata.resource_version);
                assert_eq!(have.role_ref, b.role_ref, "roleRef is immutable");
                let mut b = b.clone();
                b.metadata.resource_version = Some(version.to_string());
                Some(StoredObject::Binding(b))
            }
            Op::DeleteBinding {
                name,
                resource_version,
            } => {
                let have = o
                    .bindings
                    .iter()
                    .find(|x| &x.metadata.name == name)
                    .expect("delete of a missing binding");
                assert!(
                    is_managed(&have.metadata),
                    "delete of a binding not ours: {name}"
                );
                assert_eq!(&have.metadata.resource_version, resource_version);
                None
            }
        };
        o.apply(op, stored);
    }
    o
}

fn names(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .map(|op| match op {
            Op::CreateNamespace(n) => format!("create ns {}", n.metadata.name),
            Op::UpdateNamespace(n) => format!("update ns {}", n.metadata.name),
            Op::CreateBinding(b) => format!("create {}", b.metadata.name),
            Op::UpdateBinding(b) => format!("update {}", b.metadata.name),
            Op::DeleteBinding { name, .. } => format!("delete {name}"),
        })
        .collect()
}

#[test]
fn namespace_names_are_go_s_when_valid_and_made_valid_otherwise() {
    let p = |id: &str, name: &str, domain: &str| Project {
        id: id.into(),
        name: name.into(),
        domain_id: domain.into(),
    };
    let id = "5e1f0c0f4a8b4f6c9a3d2b1e0f9a8b7c";
    for (format, project, want) in [
        ("%i", p(id, "team-a", "default"), id.to_string()),
        ("%n-%i", p(id, "team-a", "default"), format!("team-a-{id}")),
        // Go's own example format.
        (
            "prefix-%d-%n-%i-suffix",
            p("i1", "n1", "d1"),
            "prefix-d1-n1-i1-suffix".into(),
        ),
        // What Go would send and Kubernetes refuse, made valid.
        (
            "%n-%i",
            p(id, "Team_A.Prod", "default"),
            format!("team-a-prod-{id}"),
        ),
        ("%n-%i", p("i1", "équipe 42!", "d"), "quipe-42-i1".into()),
        ("%n.%i", p("i1", "-x-", "d"), "x-i1".into()),
        ("%i", p("ABC_def", "x", "d"), "abc-def".into()),
        // Longer than 63: the project id (Go), made valid if need be.
        ("%n-%i", p(id, &"long".repeat(10), "d"), id.into()),
        (
            "%n-%i",
            p("Upper_ID", &"x".repeat(70), "d"),
            "upper-id".into(),
        ),
        // Go replaces %i, then %n, then %d: a name holding "%d" gets the domain id.
        ("%n-%i", p("i1", "a%db", "dom"), "adomb-i1".into()),
    ] {
        assert_eq!(
            namespace_name(format, &project).as_deref(),
            Ok(want.as_str()),
            "{format} {project:?}"
        );
    }
    let e = namespace_name("%n%i", &p("__", "..", "d")).unwrap_err();
    assert!(e.contains("cannot be made a namespace name"), "{e}");
    for (raw, safe) in [
        ("A--B", "a-b"),
        ("--", ""),
        ("ok-1", "ok-1"),
        ("a_b.c d", "a-b-c-d"),
    ] {
        assert_eq!(dns1123_safe(raw), safe);
    }
    assert!(is_dns1123_label("a") && is_dns1123_label(&"a".repeat(63)));
    assert!(
        !is_dns1123_label(&"a".repeat(64)) && !is_dns1123_label("a-") && !is_dns1123_label("A")
    );
}

#[test]
fn a_first_token_creates_the_namespace_and_go_s_bindings_labelled_and_annotated() {
    let r = rules(&["projects", "role_assignments"], "%n-%i");
    let observed = Observed {
        cluster_roles: cluster_roles(&["member", "k8s-viewer"]),
        ..Default::default()
    };
    let token = Authority::Token {
        user: user("u1", "alice", &["member", "k8s-viewer", "reader"]),
        complete: true,
    };
    let p = plan(&r, &project(), &token, &observed);
    assert_eq!(p.namespace.as_deref(), Some("team-a-0a1b2c3d4e5f"));
    assert_eq!(
        names(&p),
        [
            "create ns team-a-0a1b2c3d4e5f",
            "create u1_k8s-viewer",
            "create u1_member"
        ]
    );
    assert_eq!(
        p.notes,
        [Note::ClusterRoleMissing {
            role: "reader".into(),
            cluster_role: "reader".into()
        }]
    );
    let Op::CreateNamespace(ns) = &p.ops[0] else {
        panic!()
    };
    assert_eq!(
        serde_json::to_value(ns).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "team-a-0a1b2c3d4e5f",
            "labels": {"app.kubernetes.io/managed-by": "k8s-keystone-auth"},
            "annotations": {"keystone.openstack.org/project-id": "0a1b2c3d4e5f",
                            "keystone.openstack.org/project-name": "team-a",
                            "keystone.openstack.org/project-domain-id": "default"}}})
    );
    let Op::CreateBinding(b) = &p.ops[2] else {
        panic!()
    };
    assert_eq!(
        serde_json::to_value(b).unwrap(),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "u1_member", "namespace": "team-a-0a1b2c3d4e5f",
                "labels": {"app.kubernetes.io/managed-by": "k8s-keystone-auth"},
                "annotations": {"keystone.openstack.org/project-id": "0a1b2c3d4e5f",
                                "keystone.openstack.org/role": "member",
                                "keystone.openstack.org/user-id": "u1"}},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "member"}})
    );
    // Applied, the same token has nothing left to do.
    let after = simulate(&observed, &p);
    assert!(plan(&r, &project(), &token, &after).ops.is_empty());
}

#[test]
fn someone_else_s_namespace_is_never_touched() {
    let r = rules(&["projects", "role_assignments"], "%n");
    // %n alone is refused by the config parser (no %i); this planner test only needs a name.
    let r = Rules {
        namespace_format: "%n".into(),
        ..r
    };
    let token = Authority::Token {
        user: user("u1", "alice", &["admin"]),
        complete: true,
    };
    let p = Project {
        name: "kube-system".into(),
        ..project()
    };
    let observed = Observed {
        namespace: Some(Namespace::new(ObjectMeta::named("kube-system"))),
        cluster_roles: cluster_roles(&["admin"]),
        ..Default::default()
    };
    let out = plan(&r, &p, &token, &observed);
    assert!(out.ops.is_empty(), "{:?}", out.ops);
    assert_eq!(out.notes, [Note::NamespaceNotManaged("kube-system".into())]);
    // Labelled by this service for another project: not ours either.
    let mut theirs = ObjectMeta::named("kube-system");
    theirs
        .labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    theirs
        .annotations
        .insert(ANN_PROJECT_ID.into(), "another".into());
    let observed = Observed {
        namespace: Some(Namespace::new(theirs)),
        ..observed
    };
    let out = plan(&r, &p, &token, &observed);
    assert!(out.ops.is_empty());
    assert!(
        matches!(&out.notes[0], Note::NamespaceOfAnotherProject { project_id, .. } if project_id == "another")
    );
}

fn managed_ns(name: &str) -> Namespace {
    let mut meta = ObjectMeta::named(name);
    meta.labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    meta.resource_version = Some("1".into());
    let mut ns = Namespace::new(meta);
    namespace_annotations(&mut ns.metadata, &project());
    ns
}

fn existing(holder: &Holder, role: &str, cluster_role: &str, managed: bool) -> RoleBinding {
    let mut b = desired_binding("ns", &project(), holder, role, cluster_role);
    b.metadata.resource_version = Some("7".into());
    if !managed {
        b.metadata.labels.clear();
    }
    b
}

#[test]
fn stale_bindings_of_the_user_go_others_stay() {
    let r = rules(&["role_assignments"], "ns");
    let alice = user("u1", "alice", &["member"]);
    let bob = user("u2", "bob", &["member", "reader"]);
    let mut handed_over = existing(&user("u1", "alice", &["old"]), "old", "old", true);
    handed_over.metadata.annotations.clear(); // a Go binding labelled by the operator
    let observed = Observed {
        namespace: Some(managed_ns("ns")),
        bindings: vec![
            existing(&alice, "member", "member", true),
            existing(&alice, "reader", "reader", true),
            handed_over,
            existing(&bob, "reader", "reader", true),
            existing(&alice, "admin", "admin", false),
        ],
        cluster_roles: cluster_roles(&["member", "reader", "admin", "old"]),
    };
    let rules_ns = Rules {
        namespace_format: "ns".into(),
        ..r
    };
    let complete = Authority::Token {
        user: alice.clone(),
        complete: true,
    };
    let p = plan(&rules_ns, &project(), &complete, &observed);
    assert_eq!(names(&p), ["delete u1_reader", "delete u1_old"]);
    assert_eq!(
        p.ops[0],
        Op::DeleteBinding {
            name: "u1_reader".into(),
            resource_version: Some("7".into())
        }
    );
    // An application credential's token may carry fewer roles than the user holds: nothing
    // is deleted on its word.
    let partial = Authority::Token {
        user: user("u1", "alice", &["member", "admin"]),
        complete: false,
    };
    let p = plan(&rules_ns, &project(), &partial, &observed);
    assert!(names(&p).is_empty(), "{:?}", names(&p));
    assert_eq!(p.notes, [Note::BindingNotManaged("u1_admin".into())]);

    // Keystone's list: bob lost reader; the group gets its binding; unlabelled stays.
    let all = Authority::Assignments(vec![
        alice.clone(),
        user("u2", "bob", &["member"]),
        group("g1", "team-a-devs", &["reader"]),
    ]);
    let p = plan(&rules_ns, &project(), &all, &observed);
    assert_eq!(
        names(&p),
        [
            "delete u1_reader",
            "delete u1_old",
            "delete u2_reader",
            "create group_g1_reader",
            "create u2_member"
        ]
    );
    let after = simulate(&observed, &p);
    assert!(plan(&rules_ns, &project(), &all, &after).ops.is_empty());
    let Some(Op::CreateBinding(g)) = p.ops.get(3) else {
        panic!()
    };
    assert_eq!(g.subjects[0].kind, "Group");
    assert_eq!(g.subjects[0].name, "team-a-devs");
    assert_eq!(g.metadata.annotations[ANN_GROUP_ID], "g1");
}

#[test]
fn a_new_cluster_role_recreates_the_binding_and_a_new_user_name_updates_it() {
    let mut r = rules(&["role_assignments"], "ns");
    r.namespace_format = "ns".into();
    let alice = user("u1", "alice", &["member"]);
    let observed = Observed {
        namespace: Some(managed_ns("ns")),
        bindings: vec![existing(&alice, "member", "member", true)],
        cluster_roles: cluster_roles(&["member", "tenant-editor"]),
    };
    r.mappings = vec![RoleMapping {
        keystone_role: "member".into(),
        username: None,
        groups: vec![],
        cluster_role: Some("tenant-editor".into()),
    }];
    let token = Authority::Token {
        user: alice.clone(),
        complete: true,
    };
    let p = plan(&r, &project(), &token, &observed);
    assert_eq!(names(&p), ["delete u1_member", "create u1_member"]);
    let after = simulate(&observed, &p);
    assert_eq!(after.bindings[0].role_ref.name, "tenant-editor");
    // The user name changed (username-format, a role mapping's username): updated in place.
    let renamed = Authority::Token {
        user: user("u1", "alice@k8s", &["member"]),
        complete: true,
    };
    let p = plan(&r, &project(), &renamed, &after);
    assert_eq!(names(&p), ["update u1_member"]);
    let Op::UpdateBinding(b) = &p.ops[0] else {
        panic!()
    };
    assert_eq!(b.subjects[0].name, "alice@k8s");
    assert_eq!(
        b.metadata.resource_version,
        after.bindings[0].metadata.resource_version
    );
    // `cluster-role: ""`: no binding for the role, so the existing one is stale.
    r.mappings[0].cluster_role = Some(String::new());
    assert_eq!(
        names(&plan(&r, &project(), &token, &after)),
        ["delete u1_member"]
    );
}

#[test]
fn blacklisted_projects_get_nothing_and_lose_what_they_had() {
    let r = rules(&["projects", "role_assignments"], "%i");
    let token = Authority::Token {
        user: user("u1", "alice", &["member"]),
        complete: true,
    };
    for p in [
        Project {
            id: "blocked-id".into(),
            ..project()
        },
        Project {
            name: "admin".into(),
            ..project()
        },
    ] {
        let out = plan(&r, &p, &token, &Observed::default());
        assert!(out.ops.is_empty());
        assert_eq!(out.notes, [Note::Blacklisted]);
    }
    let p = Project {
        name: "admin".into(),
        ..project()
    };
    let mut ns = managed_ns(&p.id);
    ns.metadata
        .annotations
        .insert(ANN_PROJECT_ID.into(), p.id.clone());
    let observed = Observed {
        namespace: Some(ns),
        bindings: vec![existing(
            &user("u1", "alice", &[]),
            "member",
            "member",
            true,
        )],
        cluster_roles: cluster_roles(&["member"]),
    };
    assert_eq!(
        names(&plan(&r, &p, &token, &observed)),
        ["delete u1_member"]
    );
}

#[test]
fn orphans_lose_their_bindings_and_keep_their_namespace() {
    let observed = Observed {
        namespace: Some(managed_ns("ns")),
        bindings: vec![
            existing(&user("u1", "a", &[]), "member", "member", true),
            existing(&user("u2", "b", &[]), "member", "member", false),
        ],
        cluster_roles: BTreeSet::new(),
    };
    assert_eq!(names(&plan_orphan(&observed)), ["delete u1_member"]);
    let unmanaged = Observed {
        namespace: Some(Namespace::new(ObjectMeta::named("ns"))),
        ..observed
    };
    assert!(plan_orphan(&unmanaged).ops.is_empty());
}

#[test]
fn only_role_assignments_needs_a_namespace_someone_made_and_labelled() {
    let r = rules(&["role_assignments"], "%i");
    let token = Authority::Token {
        user: user("u1", "alice", &["member"]),
        complete: true,
    };
    let observed = Observed {
        cluster_roles: cluster_roles(&["member"]),
        ..Default::default()
    };
    let out = plan(&r, &project(), &token, &observed);
    assert!(out.ops.is_empty());
    assert!(matches!(out.notes[0], Note::NamespaceMissing(_)));
    // Labelled by the operator, without annotations: bindings are made, the namespace is not
    // changed (namespaces are not this sync's without `projects`).
    let mut meta = ObjectMeta::named(&project().id);
    meta.labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let observed = Observed {
        namespace: Some(Namespace::new(meta)),
        ..observed
    };
    assert_eq!(
        names(&plan(&r, &project(), &token, &observed)),
        ["create u1_member"]
    );
    // With `projects`, its annotations are added.
    let r = rules(&["projects", "role_assignments"], "%i");
    assert_eq!(
        names(&plan(&r, &project(), &token, &observed)),
        [
            format!("update ns {}", project().id),
            "create u1_member".into()
        ]
    );
}

// ---- properties ----

const ROLES: [&str; 4] = ["r1", "r2", "r3", "c1"];
const CLUSTER_ROLES: [&str; 5] = ["r1", "r2", "r3", "c1", "c2"];

fn arb_holder() -> impl Strategy<Value = Holder> {
    (
        prop::bool::ANY,
        prop::sample::select(vec!["u1", "u2", "u1_r1", "g1"]),
        prop::sample::select(vec!["alice", "bob", ""]),
        prop::collection::btree_set(prop::sample::select(ROLES.to_vec()), 0..4),
    )
        .prop_map(|(is_group, id, name, roles)| Holder {
            kind: if is_group {
                SubjectKind::Group
            } else {
                SubjectKind::User
            },
            id: id.into(),
            name: name.into(),
            roles: roles.into_iter().map(String::from).collect(),
        })
}

fn arb_authority() -> impl Strategy<Value = Authority> {
    prop_oneof![
        (arb_holder(), prop::bool::ANY).prop_map(|(mut user, complete)| {
            user.kind = SubjectKind::User;
            Authority::Token { user, complete }
        }),
        prop::collection::vec(arb_holder(), 0..4).prop_map(Authority::Assignments),
    ]
}

fn arb_rules() -> impl Strategy<Value = Rules> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::select(vec!["%i", "%n-%i", "%d-%n-%i", "k8s-%i", "%i.%n"]),
        prop::bool::ANY,
        prop::collection::vec(
            (
                prop::sample::select(ROLES.to_vec()),
                prop::option::of(prop::sample::select(vec!["c1", "c2", ""])),
            ),
            0..3,
        ),
    )
        .prop_map(|(namespaces, bindings, format, blacklist, maps)| Rules {
            namespaces,
            bindings,
            namespace_format: format.into(),
            blacklist_ids: if blacklist {
                ["P1".to_string()].into()
            } else {
                BTreeSet::new()
            },
            blacklist_names: BTreeSet::new(),
            mappings: maps
                .into_iter()
                .map(|(role, cr)| RoleMapping {
                    keystone_role: role.into(),
                    username: None,
                    groups: vec![],
                    cluster_role: cr.map(String::from),
                })
                .collect(),
        })
}

fn arb_binding(namespace: String) -> impl Strategy<Value = RoleBinding> {
    (
        arb_holder(),
        prop::sample::select(ROLES.to_vec()),
        prop::sample::select(CLUSTER_ROLES.to_vec()),
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::select(vec!["alice", "bob", "carol"]),
        prop::option::of("[a-z_0-9]{1,8}"),
    )
        .prop_map(
            move |(h, role, cr, managed, annotated, subject, odd_name)| {
                let mut b = desired_binding(&namespace, &project_p1(), &h, role, cr);
                b.metadata.resource_version = Some("5".into());
                b.subjects[0].name = subject.into();
                if let Some(n) = odd_name {
                    b.metadata.name = n;
                }
                if !managed {
                    b.metadata.labels.clear();
                }
                if !annotated {
                    b.metadata.annotations.clear();
                }
                b
            },
        )
}

fn project_p1() -> Project {
    Project {
        id: "P1".into(),
        name: "Team_A".into(),
        domain_id: "d1".into(),
    }
}

fn arb_case() -> impl Strategy<Value = (Rules, Authority, Observed)> {
    (arb_rules(), arb_authority()).prop_flat_map(|(rules, authority)| {
        let name = namespace_name(&rules.namespace_format, &project_p1()).unwrap_or_default();
        let namespace = prop_oneof![
            Just(None),
            (
                prop::bool::ANY,
                prop::sample::select(vec![None, Some("P1"), Some("P2")]),
                prop::bool::ANY
            )
                .prop_map({
                    let name = name.clone();
                    move |(managed, owner, deleting)| {
                        let mut meta = ObjectMeta::named(name.clone());
                        meta.resource_version = Some("3".into());
                        if managed {
                            meta.labels
                                .insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
                        }
                        if let Some(o) = owner {
                            meta.annotations.insert(ANN_PROJECT_ID.into(), o.into());
                        }
                        if deleting {
                            meta.deletion_timestamp = Some("2025-01-01T00:00:00Z".into());
                        }
                        Some(Namespace::new(meta))
                    }
                }),
        ];
        let cluster =
            prop::collection::btree_set(prop::sample::select(CLUSTER_ROLES.to_vec()), 0..5);
        (
            Just(rules),
            Just(authority),
            namespace,
            prop::collection::vec(arb_binding(name), 0..6),
            cluster,
        )
            .prop_map(|(rules, authority, namespace, mut bindings, cluster)| {
                if namespace.is_none() {
                    bindings.clear();
                }
                // Names are unique in a namespace.
                let mut seen = BTreeSet::new();
                bindings.retain(|b| seen.insert(b.metadata.name.clone()));
                let observed = Observed {
                    namespace,
                    bindings,
                    cluster_roles: cluster.into_iter().map(String::from).collect(),
                };
                (rules, authority, observed)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Applying a plan gives a state with nothing left to do, and the plan never changes or
    /// deletes what is not this service's (`simulate` refuses that, as it refuses what the API
    /// server refuses).
    #[test]
    fn plans_are_idempotent_and_touch_only_their_own(case in arb_case()) {
        let (rules, authority, observed) = case;
        let p = plan(&rules, &project_p1(), &authority, &observed);
        let after = simulate(&observed, &p);
        let again = plan(&rules, &project_p1(), &authority, &after);
        prop_assert!(again.ops.is_empty(), "second plan {:?} after {:?}", names(&again), names(&p));
        // Unlabelled objects are exactly as they were.
        for b in observed.bindings.iter().filter(|b| !is_managed(&b.metadata)) {
            prop_assert!(after.bindings.contains(b), "{} changed", b.metadata.name);
        }
        if let Some(ns) = observed.namespace.as_ref().filter(|n| !is_managed(&n.metadata)) {
            prop_assert_eq!(after.namespace.as_ref(), Some(ns));
            prop_assert!(p.ops.is_empty());
        }
        // An incomplete token only creates.
        if matches!(authority, Authority::Token { complete: false, .. }) && !rules.blacklist_ids.contains("P1") {
            prop_assert!(p.ops.iter().all(|op| matches!(op, Op::CreateNamespace(_) | Op::UpdateNamespace(_) | Op::CreateBinding(_))), "{:?}", names(&p));
        }
        // Every binding refers to a ClusterRole that exists.
        for b in &after.bindings {
            if is_managed(&b.metadata) && !observed.bindings.contains(b) {
                prop_assert!(observed.cluster_roles.contains(&b.role_ref.name));
            }
        }
        // Without role_assignments no binding is touched.
        if !rules.bindings && !rules.blacklist_ids.contains("P1") {
            prop_assert!(p.ops.iter().all(|op| matches!(op, Op::CreateNamespace(_) | Op::UpdateNamespace(_))));
        }
    }

    #[test]
    fn namespace_names_are_always_valid_or_an_error(
        id in "[a-zA-Z0-9_.-]{1,40}",
        name in "\\PC{0,80}",
        domain in "[a-zA-Z0-9_]{0,10}",
        format in prop::sample::select(vec!["%i", "%n-%i", "%d-%n-%i", "x.%i", "%i_%n"]),
    ) {
        let p = Project { id: id.clone(), name, domain_id: domain };
        match namespace_name(format, &p) {
            Ok(n) => prop_assert!(is_dns1123_label(&n), "{n:?}"),
            Err(e) => prop_assert!(dns1123_safe(&id).is_empty(), "an id with a letter or digit always gives a name: {e}"),
        }
    }
}
