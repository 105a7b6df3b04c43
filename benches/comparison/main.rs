//! Side-by-side benchmark of issue 13: run with `benches/compare` (docs/benchmarks.md), which
//! installs wrk and nginx, builds the release binaries, starts and seeds the test Keystone,
//! builds the Go reference and runs this program with `cargo bench --bench compare`.
//!
//! In one run it prints tables and writes the same figures as JSON (`BENCH_OUT`, default
//! target/bench/compare.json):
//! 1. cached and uncached TokenReview and SubjectAccessReview throughput and latency against our
//!    static-response server, nginx, the Go reference and ours (decision log on and off);
//! 2. Keystone calls on a Zipf mix of distinct real tokens, ours against the Go reference, and
//!    1,000 concurrent reviews of one fresh token;
//! 3. the cold path next to Keystone's own validation time;
//! 4. memory, idle and with 100,000 cached entries;
//! 5. the plugin's wall time, warm and cold.
//!
//! Built (not run) by `cargo test --all-targets` and clippy: without cargo bench's `--bench`
//! argument it says how to run it and exits 0.

#![allow(clippy::print_stdout)]

mod config;
mod keystone;
mod report;
mod servers;
mod workloads;
mod wrk;

use anyhow::{Context, Result};

async fn run() -> Result<()> {
    let cfg = config::Config::from_env()?;
    workloads::require(&cfg.wrk)?;
    workloads::require(&cfg.nginx)?;
    let mut bench = workloads::Bench::new(&cfg)?;
    bench.report.machine = report::Machine::probe(&cfg.nginx, &cfg.wrk);
    bench.report.settings = serde_json::json!({
        "point_seconds": cfg.point.as_secs_f64(),
        "rounds": cfg.rounds,
        "connections": cfg.connections,
        "wrk": "-t1 --latency, keep-alive, HTTPS, one Lua script per load",
        "nginx_worker_processes": cfg.nginx_workers,
        "mix_seconds": cfg.mix.as_secs_f64(),
        "mix_tokens": cfg.mix_tokens,
        "mix_connections": cfg.mix_connections,
        "zipf_exponent": 1.0,
        "cold_reviews": cfg.cold,
        "memory_entries": cfg.memory_entries,
        "plugin_runs": cfg.plugin_runs,
        "parts": cfg.parts,
        "ours": "k8s-keystone-auth (release) with the default cache; ours-info: log level info (decision log on), ours-warn: warn (off), ours-nocache: cache.ttl = 0",
        "ours_static": "hyper-util auto builder + tokio-rustls with kk_webhook::tls::build_server_config, same certificate, answering our service's captured bytes",
        "policy": "benches/comparison/policy.json (45 rules; the review matches the last)",
    });
    for part in cfg.parts.clone() {
        match part {
            "throughput" => bench.throughput_and_keystone_load().await?,
            "cold" => bench.cold_path().await?,
            "memory" => bench.memory().await?,
            _ => bench.plugin().await?,
        }
    }
    bench.goals();
    let text = bench.report.text();
    println!("{text}");
    if let Some(dir) = cfg.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &cfg.out,
        serde_json::to_string_pretty(&bench.report)? + "\n",
    )
    .with_context(|| format!("writing {}", cfg.out.display()))?;
    println!("figures written to {}", cfg.out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "compare: run it with benches/compare (see docs/benchmarks.md); nothing to do here"
        );
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("compare: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run() => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
