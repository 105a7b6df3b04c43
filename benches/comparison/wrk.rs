//! One load point: `wrk -t1 -c N -d S --latency -s SCRIPT URL`, its Lua script POSTing review
//! bodies read from files of the run's folder (tokens never appear on a command line), and its
//! `done()` printing the figures as one JSON line for this program to parse.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;

const DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "p999_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

/// One body for every request (wrk's fast path).
const FIXED: &str = r#"
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = f:read("*a")
f:close()
"#;

/// A TokenReview per token of a file (one a line), taken in turn (`cycle`) or Zipf-distributed
/// (`zipf`, exponent BENCH_ZIPF_S, seeded so that both sides get the same sequence).
const TOKENS: &str = r#"
local reqs = {}
local cdf = {}
local mode = os.getenv("BENCH_PICK")
local i = 0
init = function(args)
  local body = '{"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview", "spec": {"token": "%s"}}'
  for t in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
    reqs[#reqs + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, string.format(body, t))
  end
  local s, sum = tonumber(os.getenv("BENCH_ZIPF_S")), 0
  for k = 1, #reqs do sum = sum + 1 / k ^ s; cdf[k] = sum end
  for k = 1, #reqs do cdf[k] = cdf[k] / sum end
  math.randomseed(13)
end
request = function()
  if mode == "zipf" then
    local u, lo, hi = math.random(), 1, #reqs
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    return reqs[lo]
  end
  i = i % #reqs + 1
  return reqs[i]
end
"#;

/// What one point measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Point {
    pub requests: u64,
    pub duration_us: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub status_errors: u64,
    pub timeouts: u64,
}

impl Point {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.status_errors
            + self.timeouts
    }
}

/// The body of a load.
pub enum Load<'a> {
    /// This file, every request.
    Body(&'a Path),
    /// TokenReviews of the tokens of this file, in turn.
    Cycle(&'a Path),
    /// TokenReviews of the tokens of this file, Zipf-distributed with this exponent.
    Zipf(&'a Path, f64),
}

pub struct Wrk {
    bin: String,
    fixed: PathBuf,
    tokens: PathBuf,
}

impl Wrk {
    pub fn new(cfg: &Config) -> Result<Self> {
        let fixed = cfg.run_dir.join("fixed.lua");
        let tokens = cfg.run_dir.join("tokens.lua");
        std::fs::write(&fixed, format!("{FIXED}{DONE}"))?;
        std::fs::write(&tokens, format!("{TOKENS}{DONE}"))?;
        Ok(Self {
            bin: cfg.wrk.clone(),
            fixed,
            tokens,
        })
    }

    /// Runs one point (blocking: nothing else of this program runs meanwhile but the static
    /// server's tasks, on the runtime's workers).
    pub async fn run(
        &self,
        url: &str,
        connections: u32,
        time: Duration,
        load: &Load<'_>,
    ) -> Result<Point> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-t1")
            .arg(format!("-c{connections}"))
            .arg(format!("-d{}s", time.as_secs_f64().ceil() as u64))
            .arg("--timeout")
            .arg("10s")
            .arg("--latency");
        match load {
            Load::Body(f) => {
                cmd.arg("-s").arg(&self.fixed).env("BENCH_BODY_FILE", f);
            }
            Load::Cycle(f) => {
                cmd.arg("-s")
                    .arg(&self.tokens)
                    .env("BENCH_TOKENS_FILE", f)
                    .env("BENCH_PICK", "cycle")
                    .env("BENCH_ZIPF_S", "1");
            }
            Load::Zipf(f, s) => {
                cmd.arg("-s")
                    .arg(&self.tokens)
                    .env("BENCH_TOKENS_FILE", f)
                    .env("BENCH_PICK", "zipf")
                    .env("BENCH_ZIPF_S", s.to_string());
            }
        }
        cmd.arg(url);
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "wrk {url} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BENCHJSON "))
            .with_context(|| format!("wrk printed no figures: {stdout}"))?;
        Ok(serde_json::from_str(line)?)
    }
}
