//! `kubectl-keystone-auth`: the kubectl exec credential plugin for OpenStack Keystone and its
//! kubeconfig generator. Parses the command line and runs a flow of the library; stdout carries
//! nothing but the ExecCredential (or the kubeconfig when asked for on stdout), every message
//! goes to stderr, and any failure exits non-zero with the whole error chain printed once.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use kk_core::telemetry;
use kk_plugin::cli::{Cli, Command};
use kk_plugin::{self as plugin, Process, Written};

fn main() -> ExitCode {
    // `--keystone_url` is `--keystone-url`, as in client-keystone-auth (pflag's normalization).
    let cli = Cli::parse_from(kk_core::goflags::normalize_flag_names(std::env::args_os()));
    telemetry::init(&cli.credential.log_level());
    let env = |k: &str| std::env::var(k).ok();
    let ctx = Process {
        env: &env,
        cwd: std::env::current_dir().ok(),
        stdin_is_terminal: std::io::stdin().is_terminal(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubectl-keystone-auth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            None | Some(Command::Token) => plugin::exec_credential(&cli.credential, &ctx)
                .await
                .map(Written::Stdout),
            Some(Command::Kubeconfig(args)) => {
                plugin::kubeconfig(&cli.credential, args, &ctx).await
            }
            Some(Command::ClearCache) => plugin::clear_cache(&ctx).map(|(dir, n)| {
                eprintln!(
                    "kubectl-keystone-auth: removed {n} file(s) from {}",
                    dir.display()
                );
                Written::Stdout(String::new())
            }),
        }
    });
    match result {
        Ok(Written::Stdout(text)) => {
            if text.is_empty() {
                return ExitCode::SUCCESS;
            }
            let mut out = std::io::stdout().lock();
            let line = if text.ends_with('\n') {
                text
            } else {
                text + "\n"
            };
            match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kubectl-keystone-auth: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Written::File(path)) => {
            eprintln!("kubectl-keystone-auth: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kubectl-keystone-auth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
