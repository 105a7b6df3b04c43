//! The one way the charm runs external programs (`systemctl`, `snap`, the user tools, Juju's
//! hook tools, the service binary): [`Cmd`] → [`Output`] or a [`RunError`] that names the
//! program, the arguments that may be shown, the exit status and the first lines of stderr —
//! never the standard input, stdout, or an argument added with [`Cmd::hidden_arg`].
//!
//! Every run is bounded: a program still running at its timeout (default
//! [`DEFAULT_TIMEOUT`]) is killed and reported as [`RunError::Timeout`].

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a program may run unless [`Cmd::timeout`] says otherwise: long enough for
/// `systemctl restart` of kube-apiserver or a `snap set` that runs the snap's configure hook.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to keep reading a program's output after it exited (a process it started may
/// hold the pipes open).
const AFTER_EXIT: Duration = Duration::from_secs(2);

/// Lines of stderr an error quotes.
const STDERR_LINES: usize = 3;
/// Characters of stderr an error quotes.
const STDERR_CHARS: usize = 600;

/// Why a program could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started (not found, not executable).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What `exec` said.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully ([`Cmd::run`] only).
    #[error("{command} failed ({status}){}", colon(stderr))]
    Failed {
        /// The program and its shown arguments.
        command: String,
        /// The exit code; `None` when it was killed by a signal.
        code: Option<i32>,
        /// `exit status: 2`, `signal: 9 (SIGKILL)`.
        status: String,
        /// The first lines of what it printed on stderr.
        stderr: String,
    },
    /// The program was still running at its timeout and was killed.
    #[error("{command} did not finish within {} s and was killed", timeout.as_secs_f32())]
    Timeout {
        /// The program and its shown arguments.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// Waiting for the program failed.
    #[error("{command}: {source}")]
    Wait {
        /// The program and its shown arguments.
        command: String,
        /// What `wait` said.
        source: std::io::Error,
    },
}

fn colon(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl RunError {
    /// The exit code of a program that ran and failed.
    pub fn code(&self) -> Option<i32> {
        match self {
            RunError::Failed { code, .. } => *code,
            _ => None,
        }
    }
}

/// What a finished program left.
#[derive(Debug)]
pub struct Output {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output (never part of an error: it may hold option values).
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    /// The exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A program to run: `Cmd::new("systemctl").arg("restart").arg(unit).run()`.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    /// Each argument, and whether an error may show it.
    args: Vec<(OsString, bool)>,
    stdin: Option<Vec<u8>>,
    env_remove: Vec<OsString>,
    timeout: Duration,
}

impl Cmd {
    /// `program` (looked up on `PATH` unless it is a path), no arguments, stdin empty.
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            env_remove: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// An argument errors may show.
    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push((a.into(), true));
        self
    }

    /// Arguments errors may show.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(|a| (a.into(), true)));
        self
    }

    /// An argument errors never show (a secret, a free-text message, an option value): it
    /// appears there as `…`.
    pub fn hidden_arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push((a.into(), false));
        self
    }

    /// Bytes written to the program's standard input (never shown).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// Removes a variable from the program's environment.
    pub fn env_remove(mut self, name: impl Into<OsString>) -> Cmd {
        self.env_remove.push(name.into());
        self
    }

    /// How long the program may run before it is killed.
    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// The program and its shown arguments, as errors name them.
    pub fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for (a, shown) in &self.args {
            s.push(' ');
            if *shown {
                s.push_str(&a.to_string_lossy());
            } else {
                s.push('…');
            }
        }
        s
    }

    /// Runs the program, which must exit with 0: otherwise [`RunError::Failed`].
    pub fn run(&self) -> Result<Output, RunError> {
        self.check(self.output()?)
    }

    /// `out` (from [`Cmd::output`] of this command) if it exited with 0, else the
    /// [`RunError::Failed`] [`Cmd::run`] would have given.
    pub fn check(&self, out: Output) -> Result<Output, RunError> {
        if out.success() {
            return Ok(out);
        }
        Err(RunError::Failed {
            command: self.describe(),
            code: out.code(),
            status: out.status.to_string(),
            stderr: excerpt(&out.stderr),
        })
    }

    /// Runs the program and returns how it exited, whatever the exit code; an error only when
    /// it could not be started or waited for, or ran past its timeout.
    pub fn output(&self) -> Result<Output, RunError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.args.iter().map(|(a, _)| a))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            source,
        })?;
        if let (Some(mut w), Some(data)) = (child.stdin.take(), self.stdin.clone()) {
            // A program that does not read its input closes the pipe: that is its business.
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
        let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
        let mut pending = 0;
        if let Some(r) = child.stdout.take() {
            reader(r, true, tx.clone());
            pending += 1;
        }
        if let Some(r) = child.stderr.take() {
            reader(r, false, tx.clone());
            pending += 1;
        }
        // `tx` stays alive: `recv_timeout` then times out (rather than returning at once)
        // while nothing is pending, so it also paces the looks at the exit status.

        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut deadline = Instant::now() + self.timeout;
        let mut status: Option<ExitStatus> = None;
        // Waits on the pipes closing (the program's exit, usually); polls the exit status
        // with a short back-off only once the pipes are closed, or to see whether the
        // program ended without closing them.
        let mut pause = Duration::from_millis(1);
        loop {
            if status.is_none() {
                status = child.try_wait().map_err(|source| RunError::Wait {
                    command: self.describe(),
                    source,
                })?;
                if status.is_some() {
                    deadline = deadline.min(Instant::now() + AFTER_EXIT);
                }
            }
            if let (0, Some(s)) = (pending, status) {
                return Ok(Output {
                    status: s,
                    stdout,
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                match status {
                    // The program is gone; whoever holds its pipes is not waited for.
                    Some(s) => {
                        return Ok(Output {
                            status: s,
                            stdout,
                            stderr: String::from_utf8_lossy(&stderr).into_owned(),
                        });
                    }
                    None => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(RunError::Timeout {
                            command: self.describe(),
                            timeout: self.timeout,
                        });
                    }
                }
            }
            // Wakes when a pipe closes, or after the pause to look at the status again.
            match rx.recv_timeout(pause.min(deadline - now)) {
                Ok((is_stdout, b)) => {
                    if is_stdout {
                        stdout = b;
                    } else {
                        stderr = b;
                    }
                    pending -= 1;
                    // The program is exiting: look at its status again at once.
                    pause = Duration::from_millis(1);
                }
                Err(_) => pause = (pause * 2).min(MAX_PAUSE),
            }
        }
    }
}

/// Longest pause between two looks at a running program.
const MAX_PAUSE: Duration = Duration::from_millis(50);

fn reader(mut r: impl Read + Send + 'static, is_stdout: bool, tx: mpsc::Sender<(bool, Vec<u8>)>) {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send((is_stdout, buf));
    });
}

/// The first lines of `stderr`, trimmed, joined with ` | `, at most [`STDERR_CHARS`] long.
fn excerpt(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut s = lines
        .iter()
        .take(STDERR_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join(" | ");
    if s.chars().count() > STDERR_CHARS {
        s = s.chars().take(STDERR_CHARS).collect::<String>() + "…";
    } else if lines.len() > STDERR_LINES {
        s.push_str(" | …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("/bin/sh").arg("-c").hidden_arg(script)
    }

    #[test]
    fn a_missing_program_is_named() {
        let e = Cmd::new("/nonexistent/kk-no-such-tool")
            .arg("x")
            .run()
            .unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("cannot run /nonexistent/kk-no-such-tool: "),
            "{msg}"
        );
        assert!(msg.contains("No such file"), "{msg}");
        assert_eq!(e.code(), None);
        // output() fails the same way: there is no exit status to give.
        assert!(matches!(
            Cmd::new("/nonexistent/kk-no-such-tool").output(),
            Err(RunError::Spawn { .. })
        ));
    }

    #[test]
    fn a_failure_names_program_status_and_first_stderr_lines_but_no_secret() {
        let e = sh("echo 'first problem' >&2; echo second >&2; echo third >&2; echo fourth >&2; echo out-SECRET; exit 3")
            .hidden_arg("arg-SECRET")
            .stdin("stdin-SECRET")
            .run()
            .unwrap_err();
        assert_eq!(e.code(), Some(3));
        let msg = e.to_string();
        assert_eq!(
            msg,
            "/bin/sh -c … … failed (exit status: 3): first problem | second | third | …"
        );
        assert!(!format!("{e:?}").contains("SECRET"), "{e:?}");
        // output() gives the status and both streams instead.
        let out = sh("echo oops >&2; exit 2").output().unwrap();
        assert_eq!(out.code(), Some(2));
        assert!(!out.success());
        assert_eq!(out.stderr, "oops\n");
    }

    #[test]
    fn success_gives_stdout_and_reads_stdin() {
        let out = Cmd::new("/bin/echo").args(["a", "b"]).run().unwrap();
        assert_eq!(out.stdout, b"a b\n");
        assert_eq!(out.code(), Some(0));
        let out = Cmd::new("/bin/cat").stdin("piped in").run().unwrap();
        assert_eq!(out.stdout_lossy(), "piped in");
        assert_eq!(out.stderr, "");
    }

    #[test]
    fn env_remove_and_long_stderr() {
        // cargo sets CARGO_PKG_NAME for the tests it runs.
        let print = sh("printf '%s' \"${CARGO_PKG_NAME:-unset}\"");
        assert_eq!(print.run().unwrap().stdout, b"kk-charm");
        let out = print.env_remove("CARGO_PKG_NAME").run().unwrap();
        assert_eq!(out.stdout, b"unset");
        let e = sh("head -c 2000 /dev/zero | tr '\\0' x >&2; exit 1")
            .run()
            .unwrap_err();
        let RunError::Failed { stderr, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(stderr.chars().count(), STDERR_CHARS + 1);
    }

    #[test]
    fn a_program_past_its_timeout_is_killed() {
        let start = Instant::now();
        let e = Cmd::new("/bin/sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run()
            .unwrap_err();
        assert!(matches!(e, RunError::Timeout { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/bin/sleep 30 did not finish within 0.2 s and was killed"
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_process_left_holding_the_pipes_is_not_waited_for() {
        // The shell exits at once; the sleep it left behind keeps stdout open.
        let start = Instant::now();
        let out = sh("echo started; sleep 20 & exit 0").run().unwrap();
        assert_eq!(out.code(), Some(0));
        assert!(start.elapsed() < Duration::from_secs(15));
    }
}
