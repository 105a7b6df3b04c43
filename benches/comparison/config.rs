//! What one run measures and where: environment variables (set by `benches/compare`, each with a
//! default) and the seeded test Keystone's variables (tests/keystone/seed.py).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kk_core::secret::Secret;

/// Ports of the run, all on 127.0.0.1 (19400-19499).
pub mod port {
    pub const STATIC: u16 = 19401;
    pub const NGINX: u16 = 19402;
    pub const GO: u16 = 19403;
    pub const OURS_INFO: u16 = 19404;
    pub const OURS_WARN: u16 = 19405;
    pub const OURS_NOCACHE: u16 = 19406;
    pub const OURS_MEMORY: u16 = 19407;
    pub const REPLAY: u16 = 19408;
}

pub struct Config {
    /// The run's temporary folder (tokens, certificates, configs, logs); removed by the wrapper.
    pub run_dir: PathBuf,
    /// Where the JSON goes.
    pub out: PathBuf,
    /// Release binaries (k8s-keystone-auth, kubectl-keystone-auth).
    pub bin_dir: PathBuf,
    /// The Go reference's k8s-keystone-auth.
    pub go_bin: PathBuf,
    /// nginx and wrk.
    pub nginx: String,
    pub wrk: String,
    /// `worker_processes` of nginx ("auto" by default).
    pub nginx_workers: String,
    /// One wrk point.
    pub point: Duration,
    /// Rounds of the cached and uncached points: each point is measured this many times, the
    /// servers in a rotating order, and the round of median throughput is reported.
    pub rounds: u32,
    pub connections: Vec<u32>,
    /// The Zipf mix of item 2, per side.
    pub mix: Duration,
    pub mix_tokens: usize,
    pub mix_connections: u32,
    /// Cold-path reviews (item 3), each with its own fresh token, and as many direct validations.
    pub cold: usize,
    /// Cached entries for the memory figure (item 4).
    pub memory_entries: usize,
    /// Plugin runs per case (item 5).
    pub plugin_runs: usize,
    /// Which parts run (`BENCH_PARTS`, default all): throughput (with the Keystone load),
    /// cold, memory, plugin.
    pub parts: Vec<&'static str>,
    pub keystone: Keystone,
}

pub struct Keystone {
    pub url: String,
    pub access_log: PathBuf,
    pub alice_id: String,
    pub alice_password: Secret,
    pub project_name: String,
    pub domain_name: String,
    pub ac_id: String,
    pub ac_secret: Secret,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run benches/compare, which starts and seeds Keystone")
    })
}

fn or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn number<T: std::str::FromStr>(name: &str, default: &str) -> Result<T> {
    let v = or(name, default);
    v.parse()
        .ok()
        .with_context(|| format!("{name}={v} is not a number"))
}

fn seconds(name: &str, default: &str) -> Result<Duration> {
    let s: f64 = number(name, default)?;
    if !(0.5..=3600.0).contains(&s) {
        bail!("{name}={s}: between 0.5 and 3600 seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

/// The parts of a run, in the order they run.
pub const PARTS: [&str; 4] = ["throughput", "cold", "memory", "plugin"];

impl Config {
    pub fn from_env() -> Result<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let run_dir = PathBuf::from(var("BENCH_RUN_DIR")?);
        let connections = or("BENCH_CONNECTIONS", "1,16,64")
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|c| (1..=1000).contains(c))
            })
            .collect::<Option<Vec<_>>>()
            .context("BENCH_CONNECTIONS: comma-separated numbers of connections, 1 to 1000")?;
        let go_dir = PathBuf::from(var("GO_REFERENCE_BIN")?);
        let parts = or("BENCH_PARTS", &PARTS.join(","))
            .split(',')
            .map(|p| PARTS.iter().copied().find(|k| *k == p.trim()))
            .collect::<Option<Vec<_>>>()
            .with_context(|| {
                format!(
                    "BENCH_PARTS: a comma-separated list of {}",
                    PARTS.join(", ")
                )
            })?;
        Ok(Self {
            out: PathBuf::from(or(
                "BENCH_OUT",
                &root.join("target/bench/compare.json").display().to_string(),
            )),
            bin_dir: root.join("target/release"),
            go_bin: go_dir.join("k8s-keystone-auth"),
            nginx: or("BENCH_NGINX", "nginx"),
            wrk: or("BENCH_WRK", "wrk"),
            nginx_workers: or("BENCH_NGINX_WORKERS", "auto"),
            point: seconds("BENCH_SECONDS", "4")?,
            rounds: match number("BENCH_ROUNDS", "3")? {
                0 => bail!("BENCH_ROUNDS=0: at least 1 round"),
                n => n,
            },
            connections,
            mix: seconds("BENCH_MIX_SECONDS", "60")?,
            mix_tokens: number("BENCH_MIX_TOKENS", "1000")?,
            mix_connections: number("BENCH_MIX_CONNECTIONS", "16")?,
            cold: number("BENCH_COLD", "100")?,
            memory_entries: number("BENCH_MEMORY_ENTRIES", "100000")?,
            plugin_runs: number("BENCH_PLUGIN_RUNS", "30")?,
            parts,
            keystone: Keystone {
                url: var("KS_URL")?,
                access_log: PathBuf::from(var("KS_ACCESS_LOG")?),
                alice_id: var("KS_ALICE_ID")?,
                alice_password: Secret::new(var("KS_ALICE_PASSWORD")?),
                project_name: var("KS_PROJECT_NAME")?,
                domain_name: var("KS_DOMAIN_NAME")?,
                ac_id: var("KS_AC_KUBECTL_ID")?,
                ac_secret: Secret::new(var("KS_AC_KUBECTL_SECRET")?),
            },
            run_dir,
        })
    }
}
