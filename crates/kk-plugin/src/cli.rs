//! The command line of `kubectl-keystone-auth`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::settings::{Field, Layer, Origin};
use kk_core::secret::Secret;

/// Secrets given as flags are kept as [`Secret`] from the start (a `Debug` of the flags shows
/// `<redacted>`).
fn secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s))
}

/// Duration flags are parsed by clap, so that a bad value is an error before anything else is
/// done (no cached token is printed past a typo).
fn duration(s: &str) -> Result<Duration, String> {
    kk_core::parse_duration(s)
}

/// `--refusal-ttl` is checked by clap too; it stays text because an empty value means "unset"
/// (then `OS_REFUSAL_TTL` counts), which [`super::refusal_ttl`] resolves.
fn refusal_ttl_flag(s: &str) -> Result<String, String> {
    if !s.trim().is_empty() {
        super::parse_refusal_ttl(s)?;
    }
    Ok(s.to_string())
}

/// kubectl credential plugin for OpenStack Keystone.
///
/// Without a subcommand: prints an ExecCredential with a Keystone token for kubectl (run by
/// kubectl through the `exec` section of a kubeconfig). Settings come from the flags, then the
/// openstack client's OS_* variables, then the cloud named by OS_CLOUD in clouds.yaml.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-keystone-auth",
    version,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    /// Credential and Keystone settings.
    #[command(flatten)]
    pub credential: CredentialArgs,
    /// What to do (default: print an ExecCredential).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an ExecCredential (the default).
    Token,
    /// Write a kubeconfig whose user logs in through this plugin.
    Kubeconfig(Box<KubeconfigArgs>),
    /// Remove every cached token and every remembered refusal.
    ClearCache,
}

/// Flags of the credential (each has an OS_* variable; see `--help`).
#[derive(Debug, Args, Default)]
pub struct CredentialArgs {
    /// Keystone URL, with or without /v3 [env: OS_AUTH_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub keystone_url: Option<String>,
    /// v3applicationcredential, password or token [env: OS_AUTH_TYPE]
    #[arg(long, global = true, value_name = "TYPE")]
    pub auth_type: Option<String>,
    /// Domain name for both the user and the project, unless given apart [env: OS_DOMAIN_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub domain_name: Option<String>,
    /// Domain id for both the user and the project, unless given apart [env: OS_DOMAIN_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub domain_id: Option<String>,
    /// Domain id for the user and the project when no domain is given at all, as the openstack
    /// client's --os-default-domain [env: OS_DEFAULT_DOMAIN]
    #[arg(long, global = true, value_name = "ID")]
    pub default_domain: Option<String>,
    /// The user's domain, by name [env: OS_USER_DOMAIN_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub user_domain_name: Option<String>,
    /// The user's domain, by id [env: OS_USER_DOMAIN_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub user_domain_id: Option<String>,
    /// The project's domain, by name [env: OS_PROJECT_DOMAIN_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub project_domain_name: Option<String>,
    /// The project's domain, by id [env: OS_PROJECT_DOMAIN_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub project_domain_id: Option<String>,
    /// User name [env: OS_USERNAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub user_name: Option<String>,
    /// User id [env: OS_USER_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub user_id: Option<String>,
    /// Project name [env: OS_PROJECT_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub project_name: Option<String>,
    /// Project id [env: OS_PROJECT_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub project_id: Option<String>,
    /// Password (prefer OS_PASSWORD or the prompt: flags are visible to other users) [env: OS_PASSWORD]
    #[arg(long, global = true, value_name = "PASSWORD", value_parser = secret)]
    pub password: Option<Secret>,
    /// An existing Keystone token, e.g. a federated session token [env: OS_TOKEN]
    #[arg(long, global = true, value_name = "TOKEN", value_parser = secret)]
    pub token: Option<Secret>,
    /// Application credential id (with the secret, enough on its own) [env: OS_APPLICATION_CREDENTIAL_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub application_credential_id: Option<String>,
    /// Application credential name (with a user) [env: OS_APPLICATION_CREDENTIAL_NAME]
    #[arg(long, global = true, value_name = "NAME")]
    pub application_credential_name: Option<String>,
    /// Application credential secret [env: OS_APPLICATION_CREDENTIAL_SECRET]
    #[arg(long, global = true, value_name = "SECRET", value_parser = secret)]
    pub application_credential_secret: Option<Secret>,
    /// Client certificate (PEM) for Keystone [env: OS_CERT]
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Client key (PEM) for Keystone [env: OS_KEY]
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// CA bundle (PEM) for Keystone's certificate [env: OS_CACERT]
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Cloud of clouds.yaml to read [env: OS_CLOUD]
    #[arg(long, global = true, value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// Neither read nor write cached tokens (refusals are still remembered: see --refusal-ttl)
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// After Keystone refuses a credential (HTTP 401, or 404 for a deleted application
    /// credential), fail at once for this long without asking Keystone again with the same
    /// credential, so that kubectl's retries make one attempt, not one per run, and cannot lock
    /// the account; a changed password or secret is tried at once; 0 turns this off
    /// [env: OS_REFUSAL_TTL] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = refusal_ttl_flag)]
    pub refusal_ttl: Option<String>,
    /// A cached token is renewed when it expires within this time (e.g. 30s, 5m, 1h)
    #[arg(long, global = true, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub refresh_margin: Duration,
    /// How long to wait for another run holding the token cache's lock before going on without
    /// the cache
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub lock_timeout: Duration,
    /// Log level on stderr [env: RUST_LOG] [default: warn]
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        ignore_case = true,
        value_parser = ["error", "warn", "info", "debug", "trace"]
    )]
    pub log_level: Option<String>,
    /// klog-style verbosity, as client-keystone-auth takes it (0-2 info, 3-4 debug, 5+ trace);
    /// --log-level wins.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "N",
        hide_short_help = true
    )]
    pub verbosity: Option<u8>,
    /// Accepted for compatibility with client-keystone-auth (klog); ignored.
    #[arg(long, global = true, value_name = "PATTERN=N,...", hide = true)]
    pub vmodule: Option<String>,
    /// Accepted for compatibility with client-keystone-auth (klog); ignored.
    #[arg(long, global = true, value_name = "DURATION", hide = true)]
    pub log_flush_frequency: Option<String>,
}

impl CredentialArgs {
    /// The log level: `--log-level`, else `-v`, else `warn`.
    pub fn log_level(&self) -> String {
        match (&self.log_level, self.verbosity) {
            (Some(l), _) => l.to_ascii_lowercase(),
            (None, Some(v)) => kk_core::goflags::verbosity_level(v).to_string(),
            (None, None) => "warn".to_string(),
        }
    }

    /// The flags as the highest settings layer.
    pub fn layer(&self) -> Layer {
        let mut l = Layer::new(Origin::Flags);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        let expose = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_string());
        for (f, v) in [
            (Field::AuthUrl, self.keystone_url.clone()),
            (Field::AuthType, self.auth_type.clone()),
            (Field::DomainName, self.domain_name.clone()),
            (Field::DomainId, self.domain_id.clone()),
            (Field::DefaultDomain, self.default_domain.clone()),
            (Field::UserDomainName, self.user_domain_name.clone()),
            (Field::UserDomainId, self.user_domain_id.clone()),
            (Field::ProjectDomainName, self.project_domain_name.clone()),
            (Field::ProjectDomainId, self.project_domain_id.clone()),
            (Field::UserName, self.user_name.clone()),
            (Field::UserId, self.user_id.clone()),
            (Field::ProjectName, self.project_name.clone()),
            (Field::ProjectId, self.project_id.clone()),
            (Field::Password, expose(&self.password)),
            (Field::Token, expose(&self.token)),
            (Field::AppCredId, self.application_credential_id.clone()),
            (Field::AppCredName, self.application_credential_name.clone()),
            (
                Field::AppCredSecret,
                expose(&self.application_credential_secret),
            ),
            (Field::Cert, path(&self.cert)),
            (Field::Key, path(&self.key)),
            (Field::CaCert, path(&self.cacert)),
        ] {
            l.set_opt(f, v);
        }
        l
    }
}

/// Flags of `kubeconfig`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Kubeconfig options")]
pub struct KubeconfigArgs {
    /// The Kubernetes API server URL (https://...)
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The API server's CA certificate (PEM), embedded in the kubeconfig
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Name of the cluster entry [default: the --server host, with its port if given]
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Name of the user entry [default: keystone@<cluster-name>]
    #[arg(long, value_name = "NAME")]
    pub kube_user: Option<String>,
    /// Name of the context entry [default: <kube-user>@<cluster-name>, keystone@<cluster-name>]
    #[arg(long, value_name = "NAME")]
    pub context_name: Option<String>,
    /// Namespace of the context
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The plugin command written into the kubeconfig (a name on PATH or a full path)
    #[arg(long, value_name = "COMMAND", default_value = "kubectl-keystone-auth")]
    pub command: String,
    /// First create a new application credential with this name, authenticating with the
    /// password or token given, and put it in the kubeconfig
    #[arg(long, value_name = "NAME")]
    pub create_application_credential: Option<String>,
    /// Expiry of the new application credential (RFC 3339, e.g. 2027-06-30T00:00:00Z)
    #[arg(long, value_name = "TIME", requires = "create_application_credential")]
    pub expires_at: Option<String>,
    /// Role of the new application credential (repeat; default: all roles of the token)
    #[arg(
        long = "role",
        value_name = "ROLE",
        requires = "create_application_credential"
    )]
    pub roles: Vec<String>,
    /// Description of the new application credential
    #[arg(long, value_name = "TEXT", requires = "create_application_credential")]
    pub description: Option<String>,
    /// Do not check the application credential with Keystone before writing the kubeconfig
    #[arg(long)]
    pub no_verify: bool,
    /// Write the application credential as a plain bearer token (`token: kkac1_...`) instead
    /// of an `exec` of this plugin: for machines without the plugin (phones, GUIs, CI, curl).
    /// The cluster's k8s-keystone-auth must enable [application_credential_tokens]. The
    /// credential's secret then travels in every request; see docs/bearer-tokens.md. Needs an
    /// application credential by id (or --create-application-credential)
    #[arg(long, visible_alias = "no-plugin", conflicts_with = "command")]
    pub bearer_token: bool,
    /// Write the kubeconfig to this new file (mode 0600) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "merge")]
    pub output: Option<PathBuf>,
    /// Overwrite the --output file if it exists; with --merge, replace entries of the same
    /// name that this tool did not write
    #[arg(long)]
    pub force: bool,
    /// Merge into a kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config),
    /// keeping its other entries and making the new context current
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub merge: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_are_redacted_in_debug_and_reach_the_layer() {
        let cli = Cli::try_parse_from([
            "kubectl-keystone-auth",
            "--password",
            "hunter2",
            "--application-credential-secret",
            "s3cret",
            "--token",
            "gAAAAAtok",
            "kubeconfig",
            "--server",
            "https://k8s:6443",
            "--merge",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        for s in ["hunter2", "s3cret", "gAAAAAtok"] {
            assert!(!shown.contains(s), "{shown}");
        }
        let layer = cli.credential.layer();
        assert_eq!(layer.get(Field::Password).unwrap().expose(), "hunter2");
        let Some(Command::Kubeconfig(k)) = cli.command else {
            panic!()
        };
        assert_eq!(k.merge.as_deref(), Some(""));
    }

    #[test]
    fn an_invalid_log_level_is_an_error_naming_the_flag() {
        let err = Cli::try_parse_from(["kubectl-keystone-auth", "--log-level", "loud"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log-level") && err.contains("loud"), "{err}");
        let cli = Cli::try_parse_from(["kubectl-keystone-auth", "--log-level", "DEBUG"]).unwrap();
        assert_eq!(cli.credential.log_level(), "debug");
    }

    /// As main does: Go-style `--a_b` names first.
    fn go_style(args: &[&str]) -> Cli {
        Cli::try_parse_from(kk_core::goflags::normalize_flag_names(
            args.iter().map(std::ffi::OsString::from),
        ))
        .unwrap()
    }

    #[test]
    fn client_keystone_auth_flags_work() {
        // What a kubeconfig written for the Go client-keystone-auth passes.
        let cli = go_style(&[
            "kubectl-keystone-auth",
            "--keystone_url=https://ks:5000/v3",
            "--application_credential_id",
            "id_1",
            "--v=4",
            "--vmodule=x=2",
            "--log_flush_frequency=5s",
        ]);
        assert_eq!(
            cli.credential.keystone_url.as_deref(),
            Some("https://ks:5000/v3")
        );
        assert_eq!(
            cli.credential.application_credential_id.as_deref(),
            Some("id_1")
        );
        assert_eq!(cli.credential.log_level(), "debug");
        assert_eq!(
            go_style(&["kubectl-keystone-auth", "-v", "9"])
                .credential
                .log_level(),
            "trace"
        );
        assert_eq!(
            go_style(&["kubectl-keystone-auth"]).credential.log_level(),
            "warn"
        );
        assert_eq!(
            go_style(&["kubectl-keystone-auth", "-v=9", "--log-level=error"])
                .credential
                .log_level(),
            "error"
        );
        // A repeated flag: the last one wins, as with pflag.
        let cli = go_style(&["kubectl-keystone-auth", "--user-name=a", "--user_name=b"]);
        assert_eq!(cli.credential.user_name.as_deref(), Some("b"));
    }

    #[test]
    fn bad_durations_are_errors_of_the_command_line_naming_the_flag() {
        for flag in ["--lock-timeout", "--refresh-margin", "--refusal-ttl"] {
            for args in [
                vec!["kubectl-keystone-auth", flag, "garbage"],
                vec![
                    "kubectl-keystone-auth",
                    "kubeconfig",
                    "--server",
                    "https://k:6443",
                    flag,
                    "5 parsecs",
                ],
            ] {
                let err = Cli::try_parse_from(&args).unwrap_err();
                let text = err.to_string();
                assert_eq!(
                    err.kind(),
                    clap::error::ErrorKind::ValueValidation,
                    "{text}"
                );
                assert!(
                    text.contains(flag) && text.contains("is not a duration"),
                    "{text}"
                );
            }
        }
        let cli = Cli::try_parse_from([
            "kubectl-keystone-auth",
            "--lock-timeout",
            "1s",
            "--refresh-margin",
            "1000h",
            "--refusal-ttl",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.credential.lock_timeout, Duration::from_secs(1));
        assert_eq!(
            cli.credential.refresh_margin,
            Duration::from_secs(1000 * 3600)
        );
        assert_eq!(cli.credential.refusal_ttl.as_deref(), Some("0"));
        let cli = Cli::try_parse_from(["kubectl-keystone-auth", "--refusal-ttl", ""]).unwrap();
        assert_eq!(
            cli.credential.refusal_ttl.as_deref(),
            Some(""),
            "empty: unset"
        );
        let cli = Cli::try_parse_from(["kubectl-keystone-auth"]).unwrap();
        assert_eq!(cli.credential.lock_timeout, Duration::from_secs(60));
        assert_eq!(cli.credential.refresh_margin, Duration::from_secs(300));
    }

    #[test]
    fn kubeconfig_flags_have_their_own_help_heading() {
        let help = Cli::try_parse_from(["kubectl-keystone-auth", "kubeconfig", "--help"])
            .unwrap_err()
            .to_string();
        let heading = help.find("Kubeconfig options:").expect(&help);
        let (before, after) = help.split_at(heading);
        assert!(
            after.contains("--merge") && after.contains("--certificate-authority"),
            "{help}"
        );
        assert!(
            before.contains("--keystone-url") && !before.contains("--merge"),
            "credential flags come first, under Options: {help}"
        );
    }

    /// The settings table (`settings::Field`) and the flags cannot drift apart: every setting
    /// is a flag whose help names its variable and which sets that setting and no other in the
    /// flags' layer, and every other flag is a known non-setting.
    #[test]
    fn every_setting_of_the_table_is_a_flag_naming_its_variable() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let args: Vec<&clap::Arg> = cmd.get_arguments().collect();
        for (i, field) in Field::ALL.into_iter().enumerate() {
            let long = field.flag().strip_prefix("--").unwrap();
            let arg = args
                .iter()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("{field:?}: {} is not a flag", field.flag()));
            assert!(arg.is_global_set(), "{} is global", field.flag());
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                help.contains(&format!("[env: {}]", field.var())),
                "{field:?}: the help of {} does not name {}: {help}",
                field.flag(),
                field.var()
            );
            let value = format!("value-{i}");
            let cli = Cli::try_parse_from(["kubectl-keystone-auth", field.flag(), &value])
                .unwrap_or_else(|e| panic!("{field:?}: {e}"));
            let layer = cli.credential.layer();
            for other in Field::ALL {
                assert_eq!(
                    layer.get(other).map(Secret::expose),
                    (other == field).then_some(value.as_str()),
                    "{} and {other:?}",
                    field.flag()
                );
            }
        }
        let not_settings = [
            "os-cloud",
            "no-cache",
            "refusal-ttl",
            "refresh-margin",
            "lock-timeout",
            "log-level",
            "v",
            "vmodule",
            "log-flush-frequency",
            "help",
            "version",
        ];
        for long in args.iter().filter_map(|a| a.get_long()) {
            assert!(
                Field::ALL.iter().any(|f| f.flag() == format!("--{long}"))
                    || not_settings.contains(&long),
                "--{long} is neither a setting of settings::Field nor a known other flag"
            );
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
