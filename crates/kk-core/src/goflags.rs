//! Command-line compatibility with the Go reference, whose commands run on Kubernetes'
//! component-base (cobra + pflag + klog).
//!
//! * pflag's `WordSepNormalizeFunc` makes `--keystone_url` the same flag as `--keystone-url`:
//!   [`normalize_flag_names`] does that to the arguments before clap sees them.
//! * klog's `-v N` maps to a log level with [`verbosity_level`].

use std::ffi::OsString;

/// Replaces `_` by `-` in the name of every long flag (`--keystone_url=x` becomes
/// `--keystone-url=x`), as pflag's `WordSepNormalizeFunc` does. Values (`--user-name my_user`,
/// `--user-name=my_user`), short flags and everything after a bare `--` are left alone.
pub fn normalize_flag_names<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        if rest {
            out.push(arg);
            continue;
        }
        match arg.to_str() {
            Some("--") => {
                rest = true;
                out.push(arg);
            }
            Some(s) if s.starts_with("--") && s.len() > 2 => {
                let (name, value) = match s.find('=') {
                    Some(i) => s.split_at(i),
                    None => (s, ""),
                };
                out.push(OsString::from(format!(
                    "--{}{value}",
                    name[2..].replace('_', "-")
                )));
            }
            _ => out.push(arg),
        }
    }
    out
}

/// The log level for a klog verbosity, as the service and the plugin map it: 0-2 `info`,
/// 3-4 `debug`, 5 and more `trace`.
pub fn verbosity_level(v: u8) -> &'static str {
    match v {
        0..=2 => "info",
        3..=4 => "debug",
        _ => "trace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_flag_names(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn underscores_in_long_flag_names_become_dashes_and_nothing_else_changes() {
        assert_eq!(
            norm(&[
                "prog",
                "--keystone_url=https://k_s/v3",
                "--tls_cert_file",
                "a_b.pem",
                "-v=4",
                "--user-name=my_user",
                "-x_y",
                "--",
                "--not_a_flag",
            ]),
            [
                "prog",
                "--keystone-url=https://k_s/v3",
                "--tls-cert-file",
                "a_b.pem",
                "-v=4",
                "--user-name=my_user",
                "-x_y",
                "--",
                "--not_a_flag",
            ]
        );
        assert_eq!(norm(&["--", "--"]), ["--", "--"]);
    }

    #[test]
    fn verbosity_maps_like_klog() {
        let levels: Vec<_> = (0..=9).map(verbosity_level).collect();
        assert_eq!(
            levels,
            [
                "info", "info", "info", "debug", "debug", "trace", "trace", "trace", "trace",
                "trace"
            ]
        );
    }
}
