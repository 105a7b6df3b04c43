//! Asking on the terminal: the question on stderr (stdout belongs to kubectl), the answer from
//! stdin, secrets without echo. Only called when interaction is allowed.

use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result, bail};
use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

use kk_core::secret::Secret;

/// Longest answer read.
const MAX_LINE: u64 = 4096;

/// Restores the terminal's echo when dropped (also on error).
struct EchoOff {
    saved: Option<nix::sys::termios::Termios>,
}

impl EchoOff {
    fn new() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return Self { saved: None };
        };
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        if tcsetattr(&stdin, SetArg::TCSANOW, &quiet).is_err() {
            return Self { saved: None };
        }
        Self { saved: Some(saved) }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}

fn read_line(question: &str) -> Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{question}: ").context("cannot write the prompt")?;
    err.flush().context("cannot write the prompt")?;
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .take(MAX_LINE)
        .read_line(&mut line)
        .context("cannot read from the terminal")?;
    if n == 0 {
        bail!("no answer to {question:?} (end of input)");
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks for a value shown as typed.
pub fn ask(question: &str) -> Result<String> {
    read_line(question)
}

/// Asks for a secret without echo.
pub fn ask_secret(question: &str) -> Result<Secret> {
    let _guard = EchoOff::new();
    read_line(question).map(Secret::new)
}
