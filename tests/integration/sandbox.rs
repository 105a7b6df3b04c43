//! One sandbox for the commands the integration tests run (the plugin, kubectl): a HOME, cache
//! and config directory of its own, an environment with nothing but PATH and what the test gives
//! (no OS_* of the machine leaks in), a bounded run, and a log of what was run for the token scan
//! of tests/run, with secret flag values left out and stdout logged for kubectl only (the plugin
//! prints an ExecCredential, `kubectl create token` a ServiceAccount token).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// The plugin binary under test.
pub static PLUGIN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::bins::bin("kubectl-keystone-auth"));

/// What a command printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// The ExecCredential printed (asserting the run succeeded and printed only that).
    pub fn credential(&self) -> Value {
        assert_eq!(self.code, Some(0), "plugin failed: {}", self.stderr);
        let v: Value = serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}): {:.200}",
                self.stdout
            )
        });
        assert_eq!(v["kind"], "ExecCredential");
        let token = v["status"]["token"].as_str().unwrap();
        assert!(token.starts_with("gAAAAA"), "not a Fernet token");
        record_issued(token);
        v
    }

    pub fn token(&self) -> String {
        self.credential()["status"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn failed(&self) -> &str {
        assert_ne!(
            self.code,
            Some(0),
            "expected a failure; stderr: {}",
            self.stderr
        );
        assert!(
            self.stdout.trim().is_empty(),
            "nothing may be printed on stdout on failure: {:.200}",
            self.stdout
        );
        &self.stderr
    }
}

pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path("cache/kubectl-keystone-auth")
    }

    pub fn command(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `program` (bounded: 120 s) and logs it.
    pub async fn run_program(&self, program: &str, args: &[&str], env: &[(&str, String)]) -> Run {
        let started = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            self.command(program, args, env).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within 120 s"))
        .unwrap();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        };
        use std::io::Write;
        let shown: Vec<&str> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let after_secret_flag = i > 0
                    && matches!(
                        args[i - 1],
                        "--token" | "--password" | "--application-credential-secret"
                    );
                if after_secret_flag { "<redacted>" } else { a }
            })
            .collect();
        // Only kubectl's stdout is logged: the plugin prints a token (also when a test runs it
        // through a shell or a terminal), and so does `kubectl create token`.
        let kubectl_output = Path::new(program).file_name() == kubectl_bin().file_name()
            && !args.windows(2).any(|w| w == ["create", "token"]);
        let stdout = if kubectl_output {
            run.stdout.as_str()
        } else {
            "<not logged>"
        };
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir().join("commands.log"))
            .unwrap();
        writeln!(
            log,
            "== {program} {shown:?} -> {:?} in {:?}\n{stdout}\n{}",
            run.code, run.took, run.stderr
        )
        .unwrap();
        run
    }

    /// The plugin under test.
    pub async fn plugin(&self, args: &[&str], env: &[(&str, String)]) -> Run {
        self.run_program(PLUGIN.as_str(), args, env).await
    }

    /// The real kubectl.
    pub async fn kubectl(&self, args: &[&str], envs: &[(&str, String)]) -> Run {
        self.run_program(kubectl_bin().to_str().unwrap(), args, envs)
            .await
    }

    /// `kubectl auth whoami` with the kubeconfig `kc`: the user the apiserver took from the
    /// TokenReview answer (`status.userInfo`).
    pub async fn whoami(&self, kc: &Path) -> Value {
        let run = self.as_user(kc, &["auth", "whoami", "-o", "json"]).await;
        assert_eq!(run.code, Some(0), "whoami: {}", run.stderr);
        let who: Value = serde_json::from_str(&run.stdout).unwrap();
        who["status"]["userInfo"].clone()
    }

    /// `kubectl --kubeconfig KC ARGS`.
    pub async fn as_user(&self, kc: &Path, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", kc.to_str().unwrap()];
        all.extend_from_slice(args);
        self.kubectl(&all, &[]).await
    }
}

/// The real kubectl: the version-specific binary next to the gcloud dispatcher when there is
/// one (the dispatcher sends an extra request and prints plugin errors twice), else `kubectl`.
pub fn kubectl_bin() -> PathBuf {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is not on PATH: these tests run the real kubectl");
    let real = std::fs::canonicalize(&found).unwrap();
    let dir = real.parent().unwrap();
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let minor = p
                .file_name()?
                .to_str()?
                .strip_prefix("kubectl.1.")?
                .parse::<u32>()
                .ok()?;
            Some((minor, p))
        })
        .filter(|(minor, _)| *minor >= 22)
        .collect();
    versioned.sort();
    versioned.pop().map(|(_, p)| p).unwrap_or(real)
}
