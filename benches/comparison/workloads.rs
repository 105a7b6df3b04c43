//! The five measurements of issue 13, each filling its part of the [`Report`].

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use kk_core::secret::Secret;
use serde_json::{Value, json};

use crate::config::{Config, port};
use crate::keystone::{AccessLog, Keystone};
use crate::report::{Latency, Memory, MixSide, OneToken, Report, Row};
use crate::servers::{self, Canned, Ours, Pki, Proc};
use crate::wrk::{Load, Point, Wrk};

pub const TR: &str = "TokenReview";
pub const SAR: &str = "SubjectAccessReview";

/// Writes a file only this user can read (tokens).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub fn token_review(token: &Secret) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview",
           "spec": {"token": token.expose()}})
}

fn url(p: u16, path: &str) -> String {
    format!("https://127.0.0.1:{p}{path}")
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
) -> Result<(u16, Vec<(String, String)>, bytes::Bytes)> {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await?;
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "date" | "content-length" | "connection" | "transfer-encoding"
            )
        })
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Ok((status, headers, r.bytes().await?))
}

async fn metric(http: &reqwest::Client, p: u16, prefix: &str, needle: &str) -> Result<u64> {
    let text = http.get(url(p, "/metrics")).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// Everything the measurements share.
pub struct Bench<'a> {
    pub cfg: &'a Config,
    pub pki: Pki,
    pub http: reqwest::Client,
    pub ks: Keystone<'a>,
    pub wrk: Wrk,
    pub report: Report,
    /// Body files of the cached points.
    tr_body: PathBuf,
    sar_body: PathBuf,
    /// Distinct real tokens, one a line (item 2 and the uncached points).
    mix_tokens: PathBuf,
    ours_info: Option<Proc>,
}

impl<'a> Bench<'a> {
    pub fn new(cfg: &'a Config) -> Result<Self> {
        let pki = Pki::write(&cfg.run_dir)?;
        let http = pki.client()?;
        Ok(Self {
            ks: Keystone {
                cfg,
                http: http.clone(),
            },
            wrk: Wrk::new(cfg)?,
            pki,
            http,
            cfg,
            report: Report::default(),
            tr_body: cfg.run_dir.join("tr.json"),
            sar_body: cfg.run_dir.join("sar.json"),
            mix_tokens: cfg.run_dir.join("mix-tokens.txt"),
            ours_info: None,
        })
    }

    fn say(&self, what: &str) {
        eprintln!("[compare] {what}");
    }

    /// One point (`kind` at `c` connections) of each target (name, URL, tokens), measured in
    /// `rounds` rounds with the targets in a rotating order each round (a slow quarter-minute
    /// of the shared machine then falls on different servers); each target's round of median
    /// throughput goes into the report. After a point whose reviews all ask Keystone (tokens
    /// not "cached"), waits until Keystone (gunicorn, on the same 2 cores) has worked off
    /// what was queued when wrk stopped (its access log stopped growing), or the next point
    /// pays for it.
    async fn in_rounds(
        &mut self,
        kind: &'static str,
        c: u32,
        targets: &[(&'static str, String, &'static str)],
        load: &Load<'_>,
        keystone_log: &AccessLog<'_>,
    ) -> Result<()> {
        let cfg = self.cfg;
        let mut measured: Vec<Vec<Point>> = vec![Vec::new(); targets.len()];
        for round in 0..cfg.rounds {
            for i in (0..targets.len()).map(|i| (i + round as usize) % targets.len()) {
                let (name, url, tokens) = &targets[i];
                let point = self.wrk.run(url, c, cfg.point, load).await?;
                self.say(&format!(
                    "{kind} {tokens} {name} c={c} round {}: {:.0} req/s, p99 {:.2} ms",
                    round + 1,
                    point.rps(),
                    point.p99_us as f64 / 1e3
                ));
                measured[i].push(point);
                if *tokens != "cached" {
                    keystone_log.settled().await?;
                }
            }
        }
        for ((name, _, tokens), rounds) in targets.iter().zip(&measured) {
            self.report
                .throughput
                .push(Row::median_of(kind, tokens, name, c, rounds));
        }
        Ok(())
    }

    async fn ours(&self, name: &str, p: u16, level: &str, toml: &str) -> Result<Proc> {
        servers::start_ours(
            self.cfg,
            &self.pki,
            &Ours {
                name,
                port: p,
                log_level: level,
                keystone_url: &self.cfg.keystone.url,
                toml,
            },
        )
        .await
    }

    /// Item 1 (and 2, which shares the servers): cached and uncached reviews against the static
    /// server, nginx, the Go reference and ours at two log levels.
    pub async fn throughput_and_keystone_load(&mut self) -> Result<()> {
        let cfg = self.cfg;
        self.say(&format!(
            "issuing {} distinct tokens of alice",
            cfg.mix_tokens + 1
        ));
        let t = Instant::now();
        let token = self.ks.token().await?;
        let mix = self.ks.tokens(cfg.mix_tokens).await?;
        self.say(&format!("  issued in {:.1} s", t.elapsed().as_secs_f64()));
        let lines: Vec<&str> = mix.iter().map(|t| t.expose()).collect();
        write_private(&self.mix_tokens, &(lines.join("\n") + "\n"))?;

        let info = self.ours("ours-info", port::OURS_INFO, "info", "").await?;
        let warn = self.ours("ours-warn", port::OURS_WARN, "warn", "").await?;
        let nocache = self
            .ours(
                "ours-nocache",
                port::OURS_NOCACHE,
                "info",
                "[cache]\nttl = \"0s\"\nnegative_ttl = \"0s\"\n",
            )
            .await?;
        let go = servers::start_go(cfg, &self.pki).await?;

        // The exact answers of our service, for the static servers; the SubjectAccessReview is
        // of the user the TokenReview named, matched by the policy's last rule.
        let tr = serde_json::to_vec(&token_review(&token))?;
        write_private(&self.tr_body, std::str::from_utf8(&tr)?)?;
        let (status, tr_headers, tr_answer) =
            post(&self.http, &url(port::OURS_INFO, "/webhook"), &tr).await?;
        let answer: Value = serde_json::from_slice(&tr_answer)?;
        ensure!(
            status == 200 && answer["status"]["authenticated"] == true,
            "our TokenReview of a fresh token: HTTP {status} {answer}"
        );
        let user = &answer["status"]["user"];
        let sar = json!({"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview", "spec": {
            "user": user["username"], "uid": user["uid"], "group": user["groups"], "extra": user["extra"],
            "resourceAttributes": {"verb": "list", "namespace": cfg.keystone.project_name, "version": "v1", "resource": "pods"}}});
        let sar = serde_json::to_vec(&sar)?;
        std::fs::write(&self.sar_body, &sar)?;
        let (status, sar_headers, sar_answer) =
            post(&self.http, &url(port::OURS_INFO, "/webhook"), &sar).await?;
        let answer: Value = serde_json::from_slice(&sar_answer)?;
        ensure!(
            status == 200 && answer["status"]["allowed"] == true,
            "our SubjectAccessReview: HTTP {status} {answer}"
        );
        let mut canned = Canned::default();
        canned
            .by_path
            .insert("/tr".into(), (tr_headers, tr_answer.clone()));
        canned
            .by_path
            .insert("/sar".into(), (sar_headers, sar_answer.clone()));
        let _static = servers::start_static(&self.pki, canned.clone()).await?;
        let _nginx = servers::start_nginx(cfg, &self.pki, &canned).await?;

        // Every server answers what it should before it is measured.
        let servers: [(&'static str, u16, &str, &str); 5] = [
            ("ours-static", port::STATIC, "/tr", "/sar"),
            ("nginx", port::NGINX, "/tr", "/sar"),
            ("go", port::GO, "/webhook", "/webhook"),
            ("ours-info", port::OURS_INFO, "/webhook", "/webhook"),
            ("ours-warn", port::OURS_WARN, "/webhook", "/webhook"),
        ];
        for (name, p, trp, sarp) in servers {
            let (s1, _, a1) = post(&self.http, &url(p, trp), &tr).await?;
            let (s2, _, a2) = post(&self.http, &url(p, sarp), &sar).await?;
            let (a1, a2): (Value, Value) =
                (serde_json::from_slice(&a1)?, serde_json::from_slice(&a2)?);
            ensure!(
                s1 == 200
                    && a1["status"]["authenticated"] == true
                    && s2 == 200
                    && a2["status"]["allowed"] == true,
                "{name} does not answer as expected: {s1} {a1} / {s2} {a2}"
            );
            if p == port::STATIC || p == port::NGINX {
                ensure!(
                    a1 == serde_json::from_slice::<Value>(&tr_answer)?
                        && a2 == serde_json::from_slice::<Value>(&sar_answer)?,
                    "{name}: not our answers"
                );
            }
        }

        let keystone_log = AccessLog(&cfg.keystone.access_log);
        for (kind, body) in [(TR, self.tr_body.clone()), (SAR, self.sar_body.clone())] {
            for &c in &cfg.connections {
                let targets = servers.map(|(name, p, trp, sarp)| {
                    let path = if kind == TR { trp } else { sarp };
                    // The Go reference has no cache: each of its TokenReviews asks Keystone.
                    let tokens = if kind == TR && name == "go" {
                        "uncached"
                    } else {
                        "cached"
                    };
                    (name, url(p, path), tokens)
                });
                self.in_rounds(kind, c, &targets, &Load::Body(&body), &keystone_log)
                    .await?;
            }
        }
        // Uncached: the distinct tokens in turn, our cache off, against the Go reference.
        for &c in &cfg.connections {
            let targets = [("go", port::GO), ("ours-nocache", port::OURS_NOCACHE)]
                .map(|(name, p)| (name, url(p, "/webhook"), "uncached-mix"));
            let mix = self.mix_tokens.clone();
            self.in_rounds(TR, c, &targets, &Load::Cycle(&mix), &keystone_log)
                .await?;
        }
        drop(nocache);
        drop(warn);

        // Item 2: the Zipf mix, through ours (a cache of its own defaults, none of these tokens
        // in it yet) and through the Go reference.
        let log = AccessLog(&cfg.keystone.access_log);
        for (name, p) in [("ours-info", port::OURS_INFO), ("go", port::GO)] {
            let since = log.settled().await?;
            let point = self
                .wrk
                .run(
                    &url(p, "/webhook"),
                    cfg.mix_connections,
                    cfg.mix,
                    &Load::Zipf(&self.mix_tokens, 1.0),
                )
                .await?;
            let calls = log.validations_since(since).await?;
            self.say(&format!(
                "mix {name}: {} reviews, {calls} Keystone validations",
                point.requests
            ));
            self.report.keystone_load.push(MixSide {
                server: name,
                seconds: point.duration_us as f64 / 1e6,
                tokens: cfg.mix_tokens,
                connections: cfg.mix_connections,
                reviews: point.requests,
                rps: point.rps(),
                p50_ms: point.p50_us as f64 / 1e3,
                p99_ms: point.p99_us as f64 / 1e3,
                errors: point.errors(),
                keystone_validations: calls,
                validations_per_1000_reviews: calls as f64 * 1000.0 / point.requests.max(1) as f64,
            });
        }
        drop(go);
        self.one_fresh_token(&log).await?;
        self.ours_info = Some(info);
        Ok(())
    }

    /// 1,000 concurrent reviews of one fresh token through ours make one validation.
    async fn one_fresh_token(&mut self, log: &AccessLog<'_>) -> Result<()> {
        let n = 1000;
        let token = self.ks.token().await?;
        let body = Arc::new(serde_json::to_vec(&token_review(&token))?);
        let before = metric(
            &self.http,
            port::OURS_INFO,
            "k8s_keystone_auth_keystone_requests_total",
            "call=\"validate token\"",
        )
        .await?;
        let since = log.settled().await?;
        let t = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (http, body) = (self.http.clone(), body.clone());
                tokio::spawn(async move {
                    let r = post(&http, &url(port::OURS_INFO, "/webhook"), &body)
                        .await
                        .ok()?;
                    let v: Value = serde_json::from_slice(&r.2).ok()?;
                    Some(v["status"]["authenticated"] == true)
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if t.await? == Some(true) {
                ok += 1;
            }
        }
        let wall = t.elapsed();
        let calls = log.validations_since(since).await?;
        let after = metric(
            &self.http,
            port::OURS_INFO,
            "k8s_keystone_auth_keystone_requests_total",
            "call=\"validate token\"",
        )
        .await?;
        self.report.one_fresh_token = Some(OneToken {
            concurrent_reviews: n,
            authenticated: ok,
            keystone_validations_access_log: calls,
            keystone_validations_metrics: after.saturating_sub(before),
            wall_ms: wall.as_secs_f64() * 1e3,
        });
        Ok(())
    }

    /// Item 3: reviews of fresh tokens through ours, next to Keystone's own validation of other
    /// fresh tokens (and validation + group listing, the two calls our service makes), interleaved.
    pub async fn cold_path(&mut self) -> Result<()> {
        let n = self.cfg.cold;
        self.say(&format!("cold path: issuing {} fresh tokens", 2 * n));
        let a = self.ks.tokens(n).await?;
        let b = self.ks.tokens(n).await?;
        let (mut ours, mut direct, mut both) = (Vec::new(), Vec::new(), Vec::new());
        for (ta, tb) in a.iter().zip(&b) {
            let body = serde_json::to_vec(&token_review(ta))?;
            let t = Instant::now();
            let (s, _, answer) = post(&self.http, &url(port::OURS_INFO, "/webhook"), &body).await?;
            ours.push(t.elapsed().as_secs_f64() * 1e3);
            let v: Value = serde_json::from_slice(&answer)?;
            ensure!(
                s == 200 && v["status"]["authenticated"] == true,
                "cold review: {s} {v}"
            );
            let t = Instant::now();
            self.ks.validate(tb).await?;
            direct.push(t.elapsed().as_secs_f64() * 1e3);
            self.ks.groups(tb).await?;
            both.push(t.elapsed().as_secs_f64() * 1e3);
        }
        self.report.cold = vec![
            Latency::of("TokenReview through ours, token not cached (HTTPS)", ours),
            Latency::of(
                "Keystone GET /v3/auth/tokens?nocatalog direct (HTTP)",
                direct,
            ),
            Latency::of(
                "Keystone validation + GET /v3/users/{id}/groups direct",
                both,
            ),
        ];
        Ok(())
    }

    /// Item 4: RSS of a fresh service idle, and after caching `memory_entries` distinct tokens
    /// answered by the replay server with a body recorded from the real Keystone.
    pub async fn memory(&mut self) -> Result<()> {
        let cfg = self.cfg;
        let n = cfg.memory_entries;
        let token = self.ks.token().await?;
        let validate = self.ks.validate(&token).await?;
        let groups = self.ks.groups(&token).await?;
        let _replay = servers::start_replay(validate, groups).await?;
        let toml = format!("[cache]\nmax_entries = {}\nttl = \"1h\"\n", n + 1000);
        let replay_url = format!("http://127.0.0.1:{}/v3", port::REPLAY);
        let svc = servers::start_ours(
            cfg,
            &self.pki,
            &Ours {
                name: "ours-memory",
                port: port::OURS_MEMORY,
                log_level: "info",
                keystone_url: &replay_url,
                toml: &toml,
            },
        )
        .await?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        // Idle: started and answering /healthz, no review yet.
        let s = self
            .http
            .get(url(port::OURS_MEMORY, "/healthz"))
            .send()
            .await?
            .status();
        ensure!(s == 200, "ours-memory /healthz: {s}");
        let idle = svc.rss_kib()?;
        self.say(&format!("memory: filling the cache with {n} tokens"));
        let t = Instant::now();
        let http = self.http.clone();
        let failed: usize = futures_util::stream::iter(0..n)
            .map(|i| {
                let http = http.clone();
                async move {
                    // Shaped like a fernet token (the service refuses what cannot be one).
                    let token = Secret::new(format!("gAAAAABbench{i:0>170}"));
                    let body = serde_json::to_vec(&token_review(&token)).ok()?;
                    let (_, _, a) = post(&http, &url(port::OURS_MEMORY, "/webhook"), &body)
                        .await
                        .ok()?;
                    let v: Value = serde_json::from_slice(&a).ok()?;
                    (v["status"]["authenticated"] == true).then_some(())
                }
            })
            .buffer_unordered(32)
            .filter(|r| std::future::ready(r.is_none()))
            .count()
            .await;
        ensure!(
            failed == 0,
            "{failed} of {n} memory-fill reviews were not authenticated"
        );
        self.say(&format!("  filled in {:.1} s", t.elapsed().as_secs_f64()));
        let entries = metric(
            &self.http,
            port::OURS_MEMORY,
            "k8s_keystone_auth_token_cache_entries",
            "",
        )
        .await?;
        let full = svc.rss_kib()?;
        let after_runs = match &self.ours_info {
            Some(p) => Some(mib(p.rss_kib()?)),
            None => None,
        };
        self.report.memory = Some(Memory {
            idle_mib: mib(idle),
            entries: n,
            cache_entries_metric: entries,
            with_entries_mib: mib(full),
            after_runs_mib: after_runs,
            how: format!(
                "{n} distinct fernet-shaped tokens, each validated once by a replay server on 127.0.0.1 answering the body the real Keystone gave for one of alice's tokens (and her group listing), default log level"
            ),
        });
        Ok(())
    }

    /// Item 5: the plugin's wall time, warm (a valid token in its disk cache) and cold (empty
    /// cache: one Keystone round trip), over N runs each.
    pub async fn plugin(&mut self) -> Result<()> {
        let cfg = self.cfg;
        let bin = cfg.bin_dir.join("kubectl-keystone-auth");
        let cache = cfg.run_dir.join("plugin-cache");
        let run = |clear: bool| -> Result<f64> {
            if clear {
                let _ = std::fs::remove_dir_all(&cache);
            }
            let t = Instant::now();
            let out = Command::new(&bin)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", &cfg.run_dir)
                .env("XDG_CACHE_HOME", &cache)
                .env("OS_AUTH_URL", &cfg.keystone.url)
                .env("OS_AUTH_TYPE", "v3applicationcredential")
                .env("OS_APPLICATION_CREDENTIAL_ID", &cfg.keystone.ac_id)
                .env(
                    "OS_APPLICATION_CREDENTIAL_SECRET",
                    cfg.keystone.ac_secret.expose(),
                )
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .stdout(Stdio::piped())
                .output()?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            // stdout holds the token: checked, never shown.
            if !out.status.success()
                || !String::from_utf8_lossy(&out.stdout).contains("ExecCredential")
            {
                bail!(
                    "kubectl-keystone-auth failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(ms)
        };
        let mut cold = Vec::new();
        for _ in 0..cfg.plugin_runs {
            cold.push(run(true)?);
        }
        run(true)?;
        let mut warm = Vec::new();
        for _ in 0..cfg.plugin_runs {
            warm.push(run(false)?);
        }
        self.report.plugin = vec![
            Latency::of("warm: the disk cache holds a valid token", warm),
            Latency::of("cold: empty cache, one Keystone round trip", cold),
        ];
        Ok(())
    }

    /// The goals, each with its figure.
    pub fn goals(&mut self) {
        let r = &mut self.report;
        r.ratios();
        let mut goals = Vec::new();
        for kind in [TR, SAR] {
            for c in [16, 64] {
                let (Some(ours), Some(st), Some(ng)) = (
                    r.find(kind, "cached", "ours-info", c),
                    r.find(kind, "cached", "ours-static", c),
                    r.find(kind, "cached", "nginx", c),
                ) else {
                    continue;
                };
                let (vs, vn) = (ours.rps / st.rps, ours.rps / ng.rps);
                goals.push((
                    format!("{kind} c={c}, decision log on: >= 0.9x our static server"),
                    vs >= 0.9,
                    format!("{vs:.2}x ({:.0} vs {:.0} req/s)", ours.rps, st.rps),
                ));
                goals.push((
                    format!("{kind} c={c}, decision log on: >= 0.8x nginx"),
                    vn >= 0.8,
                    format!("{vn:.2}x ({:.0} vs {:.0} req/s)", ours.rps, ng.rps),
                ));
                let p = ours.p99_ms / ng.p99_ms;
                goals.push((
                    format!("{kind} c={c}: p99 <= 1.5x nginx's"),
                    p <= 1.5,
                    format!("{p:.2}x ({:.2} vs {:.2} ms)", ours.p99_ms, ng.p99_ms),
                ));
            }
        }
        if let [ours, go] = &r.keystone_load[..] {
            let per = go.validations_per_1000_reviews / ours.validations_per_1000_reviews.max(1e-9);
            let abs = go.keystone_validations as f64 / ours.keystone_validations.max(1) as f64;
            goals.push((
                "Zipf mix: >= 100x fewer Keystone calls than the Go reference (per review)".into(),
                per >= 100.0,
                format!("{per:.0}x per review ({:.2} vs {:.2} per 1000 reviews); in absolute calls {abs:.1}x ({} vs {}) while ours served {:.1}x the reviews", ours.validations_per_1000_reviews, go.validations_per_1000_reviews, ours.keystone_validations, go.keystone_validations, ours.reviews as f64 / go.reviews.max(1) as f64),
            ));
        }
        let mut worst: Option<(f64, String)> = None;
        for row in r.throughput.iter().filter(|x| x.server == "go") {
            let ours_name = if row.tokens == "uncached-mix" {
                "ours-nocache"
            } else {
                "ours-info"
            };
            let tokens = if row.tokens == "uncached-mix" {
                "uncached-mix"
            } else {
                "cached"
            };
            if let Some(o) = r.find(row.kind, tokens, ours_name, row.connections) {
                let x = o.rps / row.rps.max(1e-9);
                if worst.as_ref().is_none_or(|(w, _)| x < *w) {
                    worst = Some((
                        x,
                        format!("{} {} c={}", row.kind, row.tokens, row.connections),
                    ));
                }
            }
        }
        if let Some((x, at)) = worst {
            goals.push((
                "more throughput than the Go reference at every point".into(),
                x > 1.0,
                format!("lowest ratio {x:.2}x ({at})"),
            ));
        }
        if let Some(m) = &r.memory {
            goals.push((
                format!("<= 30 MiB with {} cached entries", m.entries),
                m.with_entries_mib <= 30.0,
                format!("{:.1} MiB", m.with_entries_mib),
            ));
        }
        if let Some(w) = r.plugin.first() {
            goals.push((
                "plugin warm <= 3 ms (median)".into(),
                w.p50_ms <= 3.0,
                format!("{:.2} ms", w.p50_ms),
            ));
        }
        for (g, met, f) in goals {
            r.goal(g, met, f);
        }
    }
}

/// Fails with a clear message when a needed program is missing.
pub fn require(program: &str) -> Result<()> {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .with_context(|| {
            format!("{program} is not installed (benches/compare installs it with apt-get as root)")
        })
}
