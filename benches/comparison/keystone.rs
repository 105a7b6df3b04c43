//! The real test Keystone: issuing tokens (alice's password, as tests/keystone/seed.py made her),
//! validating them directly, recording its answers, and counting its calls in its access log.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use kk_core::secret::Secret;
use serde_json::json;

use crate::config::Config;

pub struct Keystone<'a> {
    pub cfg: &'a Config,
    pub http: reqwest::Client,
}

/// The request line Keystone logs for a token validation (ours and the Go reference's).
pub const VALIDATE: &str = "\"GET /v3/auth/tokens";

impl<'a> Keystone<'a> {
    /// One project-scoped password token of alice.
    pub async fn token(&self) -> Result<Secret> {
        let k = &self.cfg.keystone;
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "domain": {"name": k.domain_name}, "password": k.alice_password.expose()}}},
            "scope": {"project": {"name": k.project_name, "domain": {"name": k.domain_name}}}}});
        let r = self
            .http
            .post(format!("{}/auth/tokens", k.url))
            .json(&body)
            .send()
            .await?;
        if r.status() != 201 {
            bail!("Keystone refused a token for alice: HTTP {}", r.status());
        }
        let t = r
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .context("no X-Subject-Token")?;
        Ok(Secret::new(t))
    }

    /// `n` distinct tokens, issued 8 at a time.
    pub async fn tokens(&self, n: usize) -> Result<Vec<Secret>> {
        let all: Vec<Result<Secret>> = futures_util::stream::iter(0..n)
            .map(|_| self.token())
            .buffer_unordered(8)
            .collect()
            .await;
        all.into_iter().collect()
    }

    /// GET /v3/auth/tokens?nocatalog as our service sends it (the token validating itself).
    pub async fn validate(&self, token: &Secret) -> Result<Bytes> {
        let r = self
            .http
            .get(format!("{}/auth/tokens?nocatalog", self.cfg.keystone.url))
            .header("X-Auth-Token", token.expose())
            .header("X-Subject-Token", token.expose())
            .header("OpenStack-Identity-Access-Rules", "1.0")
            .send()
            .await?;
        if r.status() != 200 {
            bail!("validation: HTTP {}", r.status());
        }
        Ok(r.bytes().await?)
    }

    /// GET /v3/users/{alice}/groups with the token.
    pub async fn groups(&self, token: &Secret) -> Result<Bytes> {
        let r = self
            .http
            .get(format!(
                "{}/users/{}/groups",
                self.cfg.keystone.url, self.cfg.keystone.alice_id
            ))
            .header("X-Auth-Token", token.expose())
            .send()
            .await?;
        if r.status() != 200 {
            bail!("group listing: HTTP {}", r.status());
        }
        Ok(r.bytes().await?)
    }
}

/// Keystone's access log: lines so far, and validations among the lines after a mark.
pub struct AccessLog<'a>(pub &'a Path);

impl AccessLog<'_> {
    fn text(&self) -> Result<String> {
        std::fs::read_to_string(self.0).with_context(|| format!("reading {}", self.0.display()))
    }

    pub fn len(&self) -> Result<usize> {
        Ok(self.text()?.lines().count())
    }

    /// The length once it has not grown for 500 ms (at most 10 s): gunicorn writes a line just
    /// after answering.
    pub async fn settled(&self) -> Result<usize> {
        let mut last = self.len()?;
        let mut stable = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && stable.elapsed() < Duration::from_millis(500) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = self.len()?;
            if n != last {
                (last, stable) = (n, Instant::now());
            }
        }
        Ok(last)
    }

    /// Validations logged after line `since`, once the log has settled.
    pub async fn validations_since(&self, since: usize) -> Result<usize> {
        self.settled().await?;
        Ok(self
            .text()?
            .lines()
            .skip(since)
            .filter(|l| l.contains(VALIDATE) && !l.contains("\"POST"))
            .count())
    }
}
