//! The figures of one run: printed as tables and written as JSON (the same numbers), with the
//! issue's goals judged as met or missed.

use std::process::Command;

use serde::Serialize;

use crate::wrk::Point;

#[derive(Default, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: serde_json::Value,
    /// Item 1: one row per (kind, tokens, server, connections).
    pub throughput: Vec<Row>,
    /// Item 2.
    pub keystone_load: Vec<MixSide>,
    pub one_fresh_token: Option<OneToken>,
    /// Item 3.
    pub cold: Vec<Latency>,
    /// Item 4.
    pub memory: Option<Memory>,
    /// Item 5.
    pub plugin: Vec<Latency>,
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
}

#[derive(Default, Serialize)]
pub struct Machine {
    pub nproc: String,
    pub cpu: String,
    pub kernel: String,
    pub rustc: String,
    pub go: String,
    pub nginx: String,
    pub wrk: String,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("({cmd}: {e})"))
}

impl Machine {
    pub fn probe(nginx: &str, wrk: &str) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        Self {
            nproc: first_line("nproc", &[]),
            cpu,
            kernel: first_line("uname", &["-r"]),
            rustc: first_line("rustc", &["-V"]),
            go: first_line("go", &["version"]),
            nginx: first_line(nginx, &["-v"]),
            wrk: first_line(wrk, &["-v"])
                .split(" Copyright")
                .next()
                .unwrap_or("")
                .to_string(),
        }
    }
}

#[derive(Clone, Serialize)]
pub struct Row {
    pub kind: &'static str,
    /// "cached", or "uncached" (every review asks Keystone).
    pub tokens: &'static str,
    pub server: &'static str,
    pub connections: u32,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
    pub vs_static: Option<f64>,
    pub vs_nginx: Option<f64>,
    /// Requests/s of each round, in the order they ran; the row's figures are the median
    /// round's.
    pub round_rps: Vec<f64>,
    /// p99 of each round, in the same order.
    pub round_p99_ms: Vec<f64>,
}

impl Row {
    pub fn new(
        kind: &'static str,
        tokens: &'static str,
        server: &'static str,
        connections: u32,
        p: &Point,
    ) -> Self {
        Self {
            kind,
            tokens,
            server,
            connections,
            rps: p.rps(),
            p50_ms: p.p50_us as f64 / 1000.0,
            p99_ms: p.p99_us as f64 / 1000.0,
            p999_ms: p.p999_us as f64 / 1000.0,
            errors: p.errors(),
            vs_static: None,
            vs_nginx: None,
            round_rps: vec![p.rps()],
            round_p99_ms: vec![p.p99_us as f64 / 1000.0],
        }
    }

    /// The row of the round of median throughput (the lower one of an even count), with
    /// every round's requests/s and p99. `rounds` is not empty (`BENCH_ROUNDS` >= 1).
    pub fn median_of(
        kind: &'static str,
        tokens: &'static str,
        server: &'static str,
        connections: u32,
        rounds: &[Point],
    ) -> Self {
        let mut order: Vec<&Point> = rounds.iter().collect();
        order.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        let median = order[(order.len().max(1) - 1) / 2];
        let mut row = Self::new(kind, tokens, server, connections, median);
        row.round_rps = rounds.iter().map(Point::rps).collect();
        row.round_p99_ms = rounds.iter().map(|p| p.p99_us as f64 / 1000.0).collect();
        row.errors = rounds.iter().map(Point::errors).sum();
        row
    }

    /// (highest - lowest) / median requests/s of the rounds.
    pub fn spread(&self) -> f64 {
        let lo = self.round_rps.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.round_rps.iter().copied().fold(0.0, f64::max);
        if self.rps > 0.0 {
            (hi - lo) / self.rps
        } else {
            0.0
        }
    }
}

#[derive(Serialize)]
pub struct MixSide {
    pub server: &'static str,
    pub seconds: f64,
    pub tokens: usize,
    pub connections: u32,
    pub reviews: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Lines `GET /v3/auth/tokens` in Keystone's access log during the mix.
    pub keystone_validations: usize,
    pub validations_per_1000_reviews: f64,
}

#[derive(Serialize)]
pub struct OneToken {
    pub concurrent_reviews: usize,
    pub authenticated: usize,
    pub keystone_validations_access_log: usize,
    pub keystone_validations_metrics: u64,
    pub wall_ms: f64,
}

#[derive(Serialize)]
pub struct Latency {
    pub what: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    pub fn of(what: &str, mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if ms.is_empty() {
                return f64::NAN;
            }
            ms[(((ms.len() - 1) as f64) * p).round() as usize]
        };
        Self {
            what: what.to_string(),
            runs: ms.len(),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
        }
    }
}

#[derive(Serialize)]
pub struct Memory {
    pub idle_mib: f64,
    pub entries: usize,
    pub cache_entries_metric: u64,
    pub with_entries_mib: f64,
    /// Our info-level service after all its throughput and Keystone-load runs.
    pub after_runs_mib: Option<f64>,
    pub how: String,
}

#[derive(Serialize)]
pub struct Goal {
    pub goal: String,
    pub met: bool,
    pub figure: String,
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())
}

impl Report {
    pub fn find(&self, kind: &str, tokens: &str, server: &str, c: u32) -> Option<&Row> {
        self.throughput.iter().find(|r| {
            r.kind == kind && r.tokens == tokens && r.server == server && r.connections == c
        })
    }

    /// Fills each row's ratios to our static server and nginx at the same kind and connections.
    pub fn ratios(&mut self) {
        let rows = self.throughput.clone();
        for r in &mut self.throughput {
            let at = |server: &str| {
                rows.iter()
                    .find(|o| {
                        o.kind == r.kind && o.server == server && o.connections == r.connections
                    })
                    .map(|o| o.rps)
                    .filter(|&v| v > 0.0)
            };
            r.vs_static = at("ours-static").map(|s| r.rps / s);
            r.vs_nginx = at("nginx").map(|s| r.rps / s);
        }
    }

    pub fn goal(&mut self, goal: impl Into<String>, met: bool, figure: impl Into<String>) {
        self.goals.push(Goal {
            goal: goal.into(),
            met,
            figure: figure.into(),
        });
    }

    /// The tables, as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        s.push_str(&format!(
            "machine: {} cores, {}; kernel {}; {}; {}; {}; {}\n",
            m.nproc, m.cpu, m.kernel, m.rustc, m.go, m.nginx, m.wrk
        ));
        s.push_str(&format!("settings: {}\n", self.settings));
        if !self.throughput.is_empty() {
            s.push_str("\n1. Reviews over HTTPS keep-alive (wrk -t1 --latency): each row the round of median req/s; spread = (highest - lowest) / median req/s of the rounds\n");
            s.push_str(&format!(
                "{:<20} {:<9} {:<13} {:>5} {:>10} {:>7} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7}\n",
                "kind",
                "tokens",
                "server",
                "conns",
                "req/s",
                "spread",
                "/static",
                "/nginx",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "errors"
            ));
            for r in &self.throughput {
                s.push_str(&format!(
                    "{:<20} {:<9} {:<13} {:>5} {:>10.0} {:>6.0}% {:>8} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>7}\n",
                    r.kind,
                    r.tokens,
                    r.server,
                    r.connections,
                    r.rps,
                    r.spread() * 100.0,
                    fmt_ratio(r.vs_static),
                    fmt_ratio(r.vs_nginx),
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms,
                    r.errors
                ));
            }
        }
        if !self.keystone_load.is_empty() {
            s.push_str(
                "\n2. Keystone load: Zipf-distributed TokenReviews of distinct real tokens\n",
            );
            s.push_str(&format!(
                "{:<10} {:>6} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>12} {:>14}\n",
                "server",
                "s",
                "tokens",
                "conns",
                "reviews",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "validations",
                "per 1000 rev."
            ));
            for m in &self.keystone_load {
                s.push_str(&format!(
                    "{:<10} {:>6.0} {:>7} {:>6} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>7} {:>12} {:>14.2}\n",
                    m.server,
                    m.seconds,
                    m.tokens,
                    m.connections,
                    m.reviews,
                    m.rps,
                    m.p50_ms,
                    m.p99_ms,
                    m.errors,
                    m.keystone_validations,
                    m.validations_per_1000_reviews
                ));
            }
        }
        if let Some(o) = &self.one_fresh_token {
            s.push_str(&format!(
                "{} concurrent reviews of one fresh token through ours: {} authenticated in {:.0} ms, {} validation(s) in Keystone's access log, {} in our /metrics\n",
                o.concurrent_reviews, o.authenticated, o.wall_ms, o.keystone_validations_access_log, o.keystone_validations_metrics
            ));
        }
        let latencies = |s: &mut String, title: &str, v: &[Latency]| {
            if v.is_empty() {
                return;
            }
            s.push_str(title);
            for l in v {
                s.push_str(&format!(
                    "  {:<58} {:>5} runs  p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms\n",
                    l.what, l.runs, l.p50_ms, l.p90_ms, l.p99_ms
                ));
            }
        };
        latencies(
            &mut s,
            "\n3. Cold path (a review whose token is not cached)\n",
            &self.cold,
        );
        if let Some(m) = &self.memory {
            s.push_str(&format!(
                "\n4. Memory (VmRSS): idle {:.1} MiB; with {} cached entries ({} in the cache metric) {:.1} MiB{}\n   ({})\n",
                m.idle_mib,
                m.entries,
                m.cache_entries_metric,
                m.with_entries_mib,
                m.after_runs_mib
                    .map(|v| format!("; our info-level service after its runs {v:.1} MiB"))
                    .unwrap_or_default(),
                m.how
            ));
        }
        latencies(
            &mut s,
            "\n5. kubectl-keystone-auth wall time\n",
            &self.plugin,
        );
        s.push_str("\nGoals\n");
        for g in &self.goals {
            s.push_str(&format!(
                "  [{}] {}: {}\n",
                if g.met { "met" } else { "MISSED" },
                g.goal,
                g.figure
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}
