use super::*;
use clap::Parser;

fn args(argv: &[&str]) -> ServerArgs {
    let mut full = vec!["k8s-keystone-auth"];
    full.extend_from_slice(argv);
    // As main does: Go-style `--a_b` names first.
    ServerArgs::try_parse_from(kk_core::goflags::normalize_flag_names(
        full.into_iter().map(std::ffi::OsString::from),
    ))
    .unwrap()
}

#[test]
fn go_component_base_flags_work() {
    let c = run(
        &[
            "--tls_cert_file=/c.pem",
            "--tls_private_key_file",
            "/k.pem",
            "--keystone_url=https://ks.example:5000/v3",
            "--keystone_policy_file=/p.json",
            "-v=4",
            "--vmodule=keystone*=6",
            "--log_flush_frequency=5s",
            "--log-flush-frequency",
            "10s",
            "--user-agent=a",
            "--user_agent",
            "b",
            "--keystone-url=https://ks.example:5000/v3",
        ],
        None,
    )
    .unwrap();
    assert_eq!(c.keystone.url.as_str(), "https://ks.example:5000/v3");
    assert_eq!(c.policy_file.as_deref(), Some(Path::new("/p.json")));
    assert_eq!(c.log_level, "debug");
    assert!(
        c.keystone.user_agent.starts_with("a b"),
        "{}",
        c.keystone.user_agent
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("--vmodule is accepted")),
        "{:?}",
        c.warnings
    );
}

fn run(argv: &[&str], file: Option<&str>) -> Result<Config, ConfigError> {
    let a = args(argv);
    let no_env = |_: &str| false;
    validate(&Inputs {
        args: &a,
        from_env: &no_env,
        file: file.map(|t| (Path::new("/etc/k.toml"), t)),
    })
}

const TLS: [&str; 4] = [
    "--tls-cert-file",
    "/c.pem",
    "--tls-private-key-file",
    "/k.pem",
];

#[test]
fn the_go_reference_command_line_works() {
    let mut a = TLS.to_vec();
    a.extend([
        "--keystone-url",
        "https://ks:5000/v3",
        "--keystone-policy-file",
        "/p.json",
    ]);
    let c = run(&a, None).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.keystone.url.as_str(), "https://ks:5000/v3");
    assert_eq!(c.cache.ttl, Duration::from_secs(60));
    assert_eq!(c.username_format, UsernameFormat::Name);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn flags_override_the_file() {
    let file = "listen = \"127.0.0.1:9000\"\n[keystone]\nurl = \"https://file:5000\"\ntimeout = \"3s\"\n[tls]\ncert_file = \"/f.pem\"\nprivate_key_file = \"/fk.pem\"\n";
    let c = run(&["--keystone-url", "https://flag:5000"], Some(file)).unwrap();
    assert_eq!(c.keystone.url.as_str(), "https://flag:5000/v3");
    assert_eq!(c.keystone.timeout, Duration::from_secs(3));
    assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.tls.unwrap().cert_file, PathBuf::from("/f.pem"));
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\nca_fle = \"/x\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/etc/k.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `ca_fle`"), "{err}");
}

#[test]
fn bad_values_name_file_line_and_key() {
    let err = run(&TLS, Some("\n[keystone]\nurl = \"ks:5000\"\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid `keystone.url` in /etc/k.toml line 3: \"ks:5000\" must start with https:// or http://"
    );
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[cache]\nttl = \"forever\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("invalid `cache.ttl` in /etc/k.toml line 4"),
        "{err}"
    );
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[authentication]\nusername_format = \"mail\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("authentication.username_format") && err.contains("name@domain"),
        "{err}"
    );
    let err = run(&TLS, Some("[keystone]\nurl = 5\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid type: integer `5`, expected a string"),
        "{err}"
    );
}

#[test]
fn bad_flags_and_variables_are_named() {
    let mut a = TLS.to_vec();
    a.extend(["--keystone-url", "ftp://ks"]);
    assert!(
        run(&a, None)
            .unwrap_err()
            .to_string()
            .starts_with("invalid --keystone-url:")
    );
    let parsed = args(&a);
    let from_env = |id: &str| id == "keystone_url";
    let err = validate(&Inputs {
        args: &parsed,
        from_env: &from_env,
        file: None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("invalid environment variable OS_AUTH_URL:"),
        "{err}"
    );
    let mut a = TLS.to_vec();
    a.extend(["--keystone-url", "https://ks", "--listen", "8443"]);
    assert!(run(&a, None).unwrap_err().to_string().contains("--listen"));
}

#[test]
fn missing_required_settings_say_how_to_set_them() {
    let err = run(&TLS, None).unwrap_err().to_string();
    assert!(
        err.contains("--keystone-url")
            && err.contains("OS_AUTH_URL")
            && err.contains("keystone.url"),
        "{err}"
    );
    let err = run(&["--keystone-url", "https://ks"], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--tls-cert-file") && err.contains("--insecure-http"),
        "{err}"
    );
    assert!(
        run(&["--keystone-url", "https://ks", "--insecure-http"], None)
            .unwrap()
            .tls
            .is_none()
    );
}

#[test]
fn configmap_sources_are_named_validated_and_exclusive_with_files() {
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = TLS.to_vec();
        a.extend(["--keystone-url", "https://ks"]);
        a.extend_from_slice(extra);
        a
    }
    let c = run(
        &with(&[
            "--policy-configmap-name",
            "k8s-auth-policy",
            "--sync-configmap-name",
            "k8s-auth.sync",
        ]),
        None,
    )
    .unwrap();
    assert_eq!(c.policy_configmap.as_deref(), Some("k8s-auth-policy"));
    assert_eq!(c.sync_configmap.as_deref(), Some("k8s-auth.sync"));
    assert!(c.policy_file.is_none() && c.sync_config_file.is_none());
    assert!(
        !c.warnings.iter().any(|w| w.contains("no policy file")),
        "{:?}",
        c.warnings
    );
    assert!(
        run(&with(&[]), None)
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("no policy file"))
    );
    // Not a ConfigMap name: named by its flag, or its variable.
    let long = "a".repeat(254);
    for bad in ["Bad", "a_b", "a-", "a..b", "a.", "", long.as_str()] {
        let flag = format!("--policy-configmap-name={bad}");
        let e = run(&with(&[flag.as_str()]), None).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid --policy-configmap-name: ")
                && e.contains("is not a ConfigMap name"),
            "{bad:?}: {e}"
        );
    }
    for (flag, id, var) in [
        (
            "--policy-configmap-name",
            "policy_configmap_name",
            "KEYSTONE_POLICY_CONFIGMAP_NAME",
        ),
        (
            "--sync-configmap-name",
            "sync_configmap_name",
            "KEYSTONE_SYNC_CONFIGMAP_NAME",
        ),
    ] {
        let parsed = args(&with(&[flag, "UPPER"]));
        let from_env = |i: &str| i == id;
        let e = validate(&Inputs {
            args: &parsed,
            from_env: &from_env,
            file: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(&format!("invalid environment variable {var}: \"UPPER\"")),
            "{e}"
        );
    }
    // A file and a ConfigMap for the same thing: refused, naming both.
    assert_eq!(
        run(
            &with(&[
                "--keystone-policy-file",
                "/p.json",
                "--policy-configmap-name",
                "p"
            ]),
            None
        )
        .unwrap_err()
        .to_string(),
        "--keystone-policy-file: --policy-configmap-name is also set: the policy comes from one source, a file or a ConfigMap; drop one"
    );
    assert_eq!(
        run(
            &with(&[
                "--sync-config-file",
                "/s.yaml",
                "--sync-configmap-name",
                "s"
            ]),
            None
        )
        .unwrap_err()
        .to_string(),
        "--sync-config-file: --sync-configmap-name is also set: the sync config comes from one source, a file or a ConfigMap; drop one"
    );
    let e = run(
        &with(&["--policy-configmap-name", "p"]),
        Some("[keystone]\nurl = \"https://ks\"\n[policy]\nfile = \"/p.json\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("`policy.file` in /etc/k.toml line 4: --policy-configmap-name is also set"),
        "{e}"
    );
    let e = run(
        &with(&["--sync-configmap-name", "s"]),
        Some("[keystone]\nurl = \"https://ks\"\n[sync]\nfile = \"/s.yaml\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("`sync.file` in /etc/k.toml line 4: --sync-configmap-name is also set"),
        "{e}"
    );
}

#[test]
fn service_identity_is_checked() {
    let f = "[keystone]\nurl = \"https://ks\"\n[keystone.service_identity]\nuser_name = \"svc\"\npassword = \"pw\"\n";
    let err = run(&TLS, Some(f)).unwrap_err().to_string();
    assert!(
        err.contains("keystone.service_identity") && err.contains("user_domain_name"),
        "{err}"
    );
    let f = "[keystone]\nurl = \"https://ks\"\n[keystone.service_identity]\napplication_credential_id = \"ac\"\napplication_credential_secret = \"s3cr3t\"\n";
    let c = run(&TLS, Some(f)).unwrap();
    assert!(
        !format!("{c:?}").contains("s3cr3t"),
        "secrets must not appear in Debug output"
    );
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("-5s").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn klog_verbosity_maps_to_levels() {
    let mut a = TLS.to_vec();
    a.extend(["--keystone-url", "https://ks", "--v", "4"]);
    assert_eq!(run(&a, None).unwrap().log_level, "debug");
}

#[test]
fn every_argument_named_in_messages_is_declared_to_clap() {
    for arg in Arg::ALL {
        let declared = arg
            .declared()
            .unwrap_or_else(|| panic!("{arg:?}: no argument with clap id {:?}", arg.id()));
        let flag = declared.flag.as_deref().unwrap_or_default();
        assert!(flag.starts_with("--"), "{arg:?} has no --long: {flag:?}");
        assert_eq!(arg.flag(), flag);
    }
    let mut ids: Vec<_> = Arg::ALL.iter().map(|a| a.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), Arg::ALL.len(), "an id is named twice");
    // What the Go reference calls them (README.md, docs/configuration.md).
    assert_eq!(Arg::KeystoneUrl.flag(), "--keystone-url");
    assert_eq!(Arg::KeystoneUrl.env(), Some("OS_AUTH_URL"));
    assert_eq!(Arg::SyncConfigFile.env(), Some("KEYSTONE_SYNC_CONFIG_FILE"));
    assert_eq!(Arg::Listen.env(), None);
}

#[test]
fn messages_that_name_flags_and_variables() {
    let err = |argv: &[&str]| run(argv, None).unwrap_err().to_string();
    let with_tls = |extra: &[&'static str]| {
        let mut a = TLS.to_vec();
        a.extend_from_slice(extra);
        a
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            TLS.to_vec(),
            "no Keystone URL: set --keystone-url, OS_AUTH_URL or `keystone.url` in the config file",
        ),
        (
            vec!["--keystone-url", "https://ks"],
            "no serving certificate: set --tls-cert-file, TLS_CERT_FILE or `tls.cert_file` in the config file (or --insecure-http for local tests)",
        ),
        (
            vec!["--keystone-url", "https://ks", "--tls-cert-file", "/c.pem"],
            "no serving private key: set --tls-private-key-file, TLS_PRIVATE_KEY_FILE or `tls.private_key_file` in the config file",
        ),
        (
            vec![
                "--keystone-url",
                "https://ks",
                "--insecure-http",
                "--client-ca-file",
                "/ca.pem",
            ],
            "--client-ca-file needs TLS: drop --insecure-http and set --tls-cert-file and --tls-private-key-file",
        ),
        (
            with_tls(&["--keystone-url", "https://ks", "--keystone-ca-file", " "]),
            "invalid --keystone-ca-file: is empty",
        ),
        (
            with_tls(&["--keystone-url", "https://ks", "--username-format", "x"]),
            "invalid --username-format: ",
        ),
    ];
    for (argv, want) in cases {
        let got = err(&argv);
        if want.ends_with(": ") {
            assert!(got.starts_with(want), "{argv:?}: {got}");
        } else {
            assert_eq!(got, want, "{argv:?}");
        }
    }
    let c = run(
        &with_tls(&[
            "--keystone-url",
            "https://ks",
            "--insecure-http",
            "--kubeconfig",
            "/k",
        ]),
        None,
    )
    .unwrap();
    assert!(
        c.warnings.contains(&"--insecure-http is set: the TLS certificate is ignored and tokens travel in the clear".to_string()),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        c.kubernetes.kubeconfig.as_deref(),
        Some(Path::new("/k")),
        "--kubeconfig is the sync's"
    );
    assert!(
        !c.warnings.iter().any(|w| w.contains("--kubeconfig")),
        "{:?}",
        c.warnings
    );
    // Each variable is named when the value came from it.
    for (id, flag, var) in [
        ("tls_cert_file", "--tls-cert-file", "TLS_CERT_FILE"),
        (
            "tls_private_key_file",
            "--tls-private-key-file",
            "TLS_PRIVATE_KEY_FILE",
        ),
        ("keystone_ca_file", "--keystone-ca-file", "KEYSTONE_CA_FILE"),
        (
            "keystone_policy_file",
            "--keystone-policy-file",
            "KEYSTONE_POLICY_FILE",
        ),
        (
            "sync_config_file",
            "--sync-config-file",
            "KEYSTONE_SYNC_CONFIG_FILE",
        ),
        ("kubeconfig", "--kubeconfig", "KEYSTONE_KUBECONFIG_FILE"),
    ] {
        let mut argv = vec!["--keystone-url", "https://ks"];
        for (f, v) in [
            ("--tls-cert-file", "/c.pem"),
            ("--tls-private-key-file", "/k.pem"),
        ] {
            if f != flag {
                argv.extend([f, v]);
            }
        }
        argv.extend([flag, " "]);
        let parsed = args(&argv);
        let from_env = |i: &str| i == id;
        let got = validate(&Inputs {
            args: &parsed,
            from_env: &from_env,
            file: None,
        })
        .unwrap_err()
        .to_string();
        assert_eq!(got, format!("invalid environment variable {var}: is empty"));
    }
}

#[test]
fn sync_and_kubernetes_sections() {
    let c = run(&TLS, Some("[keystone]\nurl = \"https://ks\"\n")).unwrap();
    assert_eq!(c.sync.resync_interval, Duration::from_secs(600));
    assert_eq!(
        (c.sync.queue_capacity, c.sync.requests_per_second),
        (1024, 20)
    );
    assert!(!c.sync.all_projects && c.kubernetes.kubeconfig.is_none());
    assert_eq!(c.kubernetes.timeout, Duration::from_secs(10));
    let c = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[sync]\nresync_interval = \"2s\"\nqueue_capacity = 5\nrequests_per_second = 100\nall_projects = true\n[kubernetes]\nkubeconfig = \"/etc/kk/kubeconfig\"\ntimeout = \"3s\"\n"),
    )
    .unwrap();
    assert_eq!(c.sync.resync_interval, Duration::from_secs(2));
    assert_eq!(
        (c.sync.queue_capacity, c.sync.requests_per_second),
        (5, 100)
    );
    assert!(c.sync.all_projects);
    assert_eq!(
        c.kubernetes.kubeconfig.as_deref(),
        Some(Path::new("/etc/kk/kubeconfig"))
    );
    assert_eq!(c.kubernetes.timeout, Duration::from_secs(3));
    // The flag wins over the file.
    let mut argv = TLS.to_vec();
    argv.extend(["--kubeconfig", "/flag"]);
    let c = run(
        &argv,
        Some("[keystone]\nurl = \"https://ks\"\n[kubernetes]\nkubeconfig = \"/file\"\n"),
    )
    .unwrap();
    assert_eq!(c.kubernetes.kubeconfig.as_deref(), Some(Path::new("/flag")));
    for (toml, want) in [
        (
            "[sync]\nresync_interval = \"0s\"\n",
            "invalid `sync.resync_interval` in /etc/k.toml line 4",
        ),
        (
            "[sync]\nqueue_capacity = 0\n",
            "invalid `sync.queue_capacity` in /etc/k.toml line 4: must be between 1 and 1000000",
        ),
        (
            "[sync]\nrequests_per_second = 5000\n",
            "invalid `sync.requests_per_second` in /etc/k.toml line 4",
        ),
        (
            "[kubernetes]\nkubeconfig = \"\"\n",
            "invalid `kubernetes.kubeconfig` in /etc/k.toml line 4: is empty",
        ),
        ("[kubernetes]\nserver = \"x\"\n", "unknown field `server`"),
    ] {
        let e = run(
            &TLS,
            Some(&format!("[keystone]\nurl = \"https://ks\"\n{toml}")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{toml}: {e}");
    }
    assert!(
        kubeconfig_hint()
            .starts_with("--kubeconfig, KEYSTONE_KUBECONFIG_FILE or `kubernetes.kubeconfig`")
    );
}

#[test]
fn application_credential_tokens_are_off_by_default_and_validated() {
    let c = run(&TLS, Some("[keystone]\nurl = \"https://ks\"\n")).unwrap();
    assert_eq!(c.appcred_tokens, AppCredTokensConfig::default());
    assert!(!c.appcred_tokens.enabled);
    let c = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[application_credential_tokens]\nenabled = true\nmax_failures = 3\nfailure_window = \"1m\"\n"),
    )
    .unwrap();
    assert_eq!(
        c.appcred_tokens,
        AppCredTokensConfig {
            enabled: true,
            max_failures: 3,
            failure_window: Duration::from_secs(60),
        }
    );
    let err = run(
        &TLS,
        Some(
            "[keystone]\nurl = \"https://ks\"\n[application_credential_tokens]\nmax_failures = 0\n",
        ),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "invalid `application_credential_tokens.max_failures` in /etc/k.toml line 4: must be between 1 and 1000"
    );
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[application_credential_tokens]\nfailure_window = \"0s\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "invalid `application_credential_tokens.failure_window` in /etc/k.toml line 4"
        ),
        "{err}"
    );
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[application_credential_tokens]\nenable = true\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `enable`"), "{err}");
}

#[test]
fn server_max_connections_defaults_to_16384_and_is_validated() {
    let c = run(&TLS, Some("[keystone]\nurl = \"https://ks\"\n")).unwrap();
    assert_eq!(c.server.max_connections, 16384);
    let c = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[server]\nmax_connections = 3\n"),
    )
    .unwrap();
    assert_eq!(
        c.server,
        ServerConfig {
            max_connections: 3,
            worker_threads: None
        }
    );
    for bad in ["0", "-1", "1048577"] {
        let err = run(
            &TLS,
            Some(&format!(
                "[keystone]\nurl = \"https://ks\"\n[server]\nmax_connections = {bad}\n"
            )),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid `server.max_connections` in /etc/k.toml line 4: must be between 1 and 1048576"
        );
    }
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[server]\nmax_conections = 3\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `max_conections`"), "{err}");
    let err = run(
        &TLS,
        Some("[keystone]\nurl = \"https://ks\"\n[server]\nmax_connections = \"many\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("invalid type: string"), "{err}");
}

#[test]
fn server_worker_threads_default_to_one_per_core_and_are_validated() {
    let c = run(&TLS, Some("[keystone]\nurl = \"https://ks\"\n")).unwrap();
    assert_eq!(c.server.worker_threads, None);
    for (given, want) in [("0", None), ("1", Some(1)), ("1024", Some(1024))] {
        let c = run(
            &TLS,
            Some(&format!(
                "[keystone]\nurl = \"https://ks\"\n[server]\nworker_threads = {given}\n"
            )),
        )
        .unwrap();
        assert_eq!(c.server.worker_threads, want, "{given}");
    }
    for bad in ["-1", "1025"] {
        let err = run(
            &TLS,
            Some(&format!(
                "[keystone]\nurl = \"https://ks\"\n[server]\nworker_threads = {bad}\n"
            )),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid `server.worker_threads` in /etc/k.toml line 4: must be between 0 and 1024"
        );
    }
}
