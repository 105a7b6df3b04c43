//! `k8s-keystone-auth`: parse, validate, serve. Everything else is in the library.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use kk_core::telemetry;
use kk_webhook as webhook;
use kk_webhook::config::{self, cli::ServerArgs};

/// Exit code for configuration errors (as ripgrep and clap use).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // `--keystone_url` is `--keystone-url`, as in the Go reference (pflag's normalization).
    let matches = ServerArgs::command()
        .get_matches_from(kk_core::goflags::normalize_flag_names(std::env::args_os()));
    let args = match ServerArgs::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let from_env = |id: &str| matches.value_source(id) == Some(ValueSource::EnvVariable);
    let config = match config::load(&args, &from_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "k8s-keystone-auth: configuration error: {}",
                kk_core::error_chain(&e)
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Every line is written before the process exits: the guard is flushed below.
    let logs = telemetry::init_non_blocking(&config.log_level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.server.worker_threads {
        runtime.worker_threads(n);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("k8s-keystone-auth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let check_only = args.check_config;
    let result = runtime.block_on(async move {
        if check_only {
            let metrics = std::sync::Arc::new(kk_core::metrics::Metrics::default());
            let state = webhook::State::load(&config, metrics).await?;
            if let Some(worker) = state.take_sync_worker() {
                let version = worker.probe().await.map_err(|e| {
                    anyhow::anyhow!(
                        "the namespace sync's Kubernetes API does not answer: {}",
                        kk_core::error_chain(&e)
                    )
                })?;
                tracing::info!(kubernetes = %version, "the namespace sync's Kubernetes API answers");
            }
            if let Some(t) = &config.tls {
                webhook::tls::build_server_config(t)?;
            }
            tracing::info!("configuration is valid");
            return Ok(());
        }
        webhook::run(config, shutdown_signal()).await
    });
    logs.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("k8s-keystone-auth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
