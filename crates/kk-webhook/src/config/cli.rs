//! The command line of `k8s-keystone-auth`: the Go reference's flags with the same names,
//! defaults and environment fallbacks, plus `--config` for everything else. No logic here.

use clap::Parser;

/// Answers kube-apiserver's authentication (TokenReview) and authorization
/// (SubjectAccessReview) webhooks from OpenStack Keystone.
///
/// A drop-in replacement for cloud-provider-openstack's k8s-keystone-auth: same flags, same
/// policy files, same user mapping; plus v1 and v1beta1 reviews, a token cache, /healthz,
/// /readyz, /metrics, policy and certificate reloading.
///
/// Settings come from flags, then their environment variables, then the TOML file given with
/// --config, then defaults (see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(
    name = "k8s-keystone-auth",
    version,
    max_term_width = 100,
    args_override_self = true
)]
pub struct ServerArgs {
    /// TOML configuration file with every setting (flags and their variables override it).
    #[arg(long, value_name = "FILE", env = "K8S_KEYSTONE_AUTH_CONFIG")]
    pub config: Option<String>,

    /// Address and port to serve HTTPS on [default: 0.0.0.0:8443].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Serving certificate (PEM, may include the chain). Re-read when the file changes.
    #[arg(long, value_name = "FILE", env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<String>,

    /// Serving private key (PEM). Re-read when the file changes.
    #[arg(long, value_name = "FILE", env = "TLS_PRIVATE_KEY_FILE")]
    pub tls_private_key_file: Option<String>,

    /// CA bundle (PEM) for verifying client certificates: when set, only clients with a
    /// certificate it signed (kube-apiserver) may connect.
    #[arg(long, value_name = "FILE", env = "CLIENT_CA_FILE")]
    pub client_ca_file: Option<String>,

    /// Keystone URL, with or without the trailing /v3 (https://keystone:5000/v3).
    #[arg(long, value_name = "URL", env = "OS_AUTH_URL")]
    pub keystone_url: Option<String>,

    /// CA bundle (PEM) that signs Keystone's certificate [default: the system's roots].
    #[arg(long, value_name = "FILE", env = "KEYSTONE_CA_FILE")]
    pub keystone_ca_file: Option<String>,

    /// Authorization policy (JSON, both formats of the Go reference). Watched: a valid new
    /// version replaces the policy at once, an invalid one is logged and ignored.
    #[arg(long, value_name = "FILE", env = "KEYSTONE_POLICY_FILE")]
    pub keystone_policy_file: Option<String>,

    /// Sync configuration (YAML, as the Go reference's). Parsed and validated at start-up; its
    /// data-types-to-sync make namespaces and RoleBindings (needs --kubeconfig or a pod).
    #[arg(long, value_name = "FILE", env = "KEYSTONE_SYNC_CONFIG_FILE")]
    pub sync_config_file: Option<String>,

    /// How the Kubernetes user name is built: name (as the Go reference), name@domain, id.
    #[arg(long, value_name = "FORMAT")]
    pub username_format: Option<String>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// klog-style verbosity of the Go reference (0-2 info, 3-4 debug, 5+ trace).
    #[arg(short = 'v', long = "v", value_name = "N", hide_short_help = true)]
    pub verbosity: Option<u8>,

    /// Accepted for compatibility with the Go reference (klog's per-file verbosity); ignored.
    #[arg(long, value_name = "PATTERN=N,...", hide_short_help = true)]
    pub vmodule: Option<String>,

    /// Accepted for compatibility with the Go reference (klog's flush interval); ignored: log
    /// lines are written at once.
    #[arg(long, value_name = "DURATION", hide_short_help = true)]
    pub log_flush_frequency: Option<String>,

    /// Extra strings prepended to the User-Agent sent to Keystone (repeatable).
    #[arg(long = "user-agent", value_name = "STRING")]
    pub user_agent: Vec<String>,

    /// Serve plain HTTP instead of HTTPS. Only for local tests: kube-apiserver would send
    /// bearer tokens in the clear.
    #[arg(long)]
    pub insecure_http: bool,

    /// Check the configuration (files, URLs, policy, sync config) and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Read the policy from this ConfigMap in kube-system, data key `policies` (the JSON of
    /// --keystone-policy-file), and watch it: a valid update applies at once, an invalid one or
    /// a delete keeps the policy in force. Needs the Kubernetes API (--kubeconfig or a pod) and
    /// get, list, watch on it (deploy/kubernetes/k8s-keystone-auth-configmaps.yaml); not with
    /// --keystone-policy-file.
    #[arg(long, value_name = "NAME", env = "KEYSTONE_POLICY_CONFIGMAP_NAME")]
    pub policy_configmap_name: Option<String>,

    /// Read the sync config from this ConfigMap in kube-system, data key `syncConfig` (the YAML
    /// of --sync-config-file), and watch it like --policy-configmap-name; not with
    /// --sync-config-file.
    #[arg(long, value_name = "NAME", env = "KEYSTONE_SYNC_CONFIGMAP_NAME")]
    pub sync_configmap_name: Option<String>,

    /// kubeconfig of the Kubernetes API the namespace sync writes to (the sync config's
    /// data-types-to-sync) and the ConfigMaps are read from; without it, the pod's
    /// ServiceAccount when run in a pod.
    #[arg(long, value_name = "FILE", env = "KEYSTONE_KUBECONFIG_FILE")]
    pub kubeconfig: Option<String>,
}
