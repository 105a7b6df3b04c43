//! kube-apiserver's options through `snap`: either one snap option per flag (older
//! kubernetes-master) or the single `args` option that Charmed Kubernetes writes since 2019
//! (`--key="value" --key2="value2" ...`). The string handling is pure; [`SnapClient`] runs the
//! `snap` command.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use super::run::Cmd;

/// How the principal passes flags to kube-apiserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// One snap option per flag (`snap set kube-apiserver authorization-mode=...`).
    PerFlag,
    /// Every flag in the `args` option (Charmed Kubernetes).
    Args,
}

/// One token of an `args` string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    /// The flag name without `--`; `None` for something that is not a `--flag`.
    key: Option<String>,
    /// The value, unquoted; `None` for a bare `--flag`.
    value: Option<String>,
    /// The token as written.
    raw: String,
}

/// Splits an `args` string on whitespace outside double quotes.
fn tokenize(args: &str) -> Vec<Token> {
    let mut raws = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in args.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                in_quotes = !in_quotes;
                cur.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !cur.is_empty() {
                    raws.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        raws.push(cur);
    }
    raws.into_iter()
        .map(|raw| {
            let Some(flag) = raw.strip_prefix("--") else {
                return Token {
                    key: None,
                    value: None,
                    raw,
                };
            };
            let (key, value) = match flag.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(unquote(v))),
                None => (flag.to_string(), None),
            };
            Token {
                key: Some(key),
                value,
                raw,
            }
        })
        .collect()
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The value of `--key` in an `args` string (the last one wins, as in kube-apiserver's flag
/// parsing); a bare `--key` reads as `true`.
pub fn args_get(args: &str, key: &str) -> Option<String> {
    tokenize(args)
        .into_iter()
        .rfind(|t| t.key.as_deref() == Some(key))
        .map(|t| t.value.unwrap_or_else(|| "true".into()))
}

/// Sets (`Some`) or removes (`None`) flags in an `args` string, keeping every other flag as it
/// was written and in its place. A set flag replaces the first occurrence (later duplicates
/// are dropped); a new one is appended as `--key="value"`.
pub fn args_merge(args: &str, changes: &BTreeMap<String, Option<String>>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for t in tokenize(args) {
        match t.key.as_deref().and_then(|k| changes.get_key_value(k)) {
            None => out.push(t.raw),
            Some((k, change)) => {
                if done.contains(&k.as_str()) {
                    continue;
                }
                done.push(k);
                if let Some(v) = change {
                    out.push(format!("--{k}={}", quote(v)));
                }
            }
        }
    }
    for (k, change) in changes {
        if let (false, Some(v)) = (done.contains(&k.as_str()), change) {
            out.push(format!("--{k}={}", quote(v)));
        }
    }
    out.join(" ")
}

/// The current value of each option in `keys`, from a snap's whole configuration.
pub fn current_values(
    style: Style,
    config: &BTreeMap<String, Value>,
    keys: impl IntoIterator<Item = String>,
) -> BTreeMap<String, Option<String>> {
    let args = config.get("args").map(value_string).unwrap_or_default();
    keys.into_iter()
        .map(|k| {
            let v = match style {
                Style::Args => args_get(&args, &k),
                Style::PerFlag => config.get(&k).filter(|v| !v.is_null()).map(value_string),
            };
            (k, v)
        })
        .collect()
}

fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The style a snap's configuration shows: `args` present means Charmed Kubernetes' style.
pub fn detect_style(config: &BTreeMap<String, Value>) -> Style {
    if config.get("args").is_some_and(|v| !v.is_null()) {
        Style::Args
    } else {
        Style::PerFlag
    }
}

/// Runs `snap`.
#[derive(Debug, Default)]
pub struct SnapClient;

impl SnapClient {
    /// The snap's whole configuration (`snap get -d SNAP`); `None` when the snap is not
    /// installed.
    pub fn get_all(&self, snap: &str) -> Result<Option<BTreeMap<String, Value>>> {
        if !Cmd::new("snap").args(["list", snap]).output()?.success() {
            return Ok(None);
        }
        let get = Cmd::new("snap").args(["get", "-d", snap]);
        let out = get.output()?;
        if !out.success() && out.stderr.contains("has no configuration") {
            return Ok(Some(BTreeMap::new()));
        }
        let out = get.check(out)?;
        let v: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("snap get -d {snap} printed invalid JSON"))?;
        Ok(Some(v))
    }

    /// Applies changes: `snap set SNAP k=v ...` and `snap unset SNAP k ...`.
    pub fn apply(&self, snap: &str, changes: &BTreeMap<String, Option<String>>) -> Result<()> {
        let sets: Vec<String> = changes
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        let unsets: Vec<&str> = changes
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        if !sets.is_empty() {
            // Values are not shown in errors (`args` alone is a long line).
            let mut cmd = Cmd::new("snap").args(["set", snap]);
            for kv in sets {
                cmd = cmd.hidden_arg(kv);
            }
            cmd.run()?;
        }
        if !unsets.is_empty() {
            Cmd::new("snap").args(["unset", snap]).args(unsets).run()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(v: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    const CDK: &str = r#"--advertise-address="10.0.0.5" --authorization-mode="Node,RBAC" --etcd-servers="https://10.0.0.7:2379" --anonymous-auth="false" --feature-gates="A=true,B=false""#;

    #[test]
    fn reads_values_as_kube_apiserver_would() {
        assert_eq!(
            args_get(CDK, "authorization-mode").as_deref(),
            Some("Node,RBAC")
        );
        assert_eq!(
            args_get(CDK, "feature-gates").as_deref(),
            Some("A=true,B=false")
        );
        assert_eq!(args_get("--v=2 --v=4", "v").as_deref(), Some("4"));
        assert_eq!(
            args_get("--profiling", "profiling").as_deref(),
            Some("true")
        );
        assert_eq!(args_get(CDK, "missing"), None);
        assert_eq!(
            args_get(r#"--x="a b \"c\"""#, "x").as_deref(),
            Some(r#"a b "c""#)
        );
    }

    #[test]
    fn merge_keeps_every_other_flag_in_place() {
        let merged = args_merge(
            CDK,
            &changes(&[
                ("authorization-mode", Some("Node,RBAC,Webhook")),
                (
                    "authentication-token-webhook-config-file",
                    Some("/etc/kk/authn.kubeconfig"),
                ),
            ]),
        );
        assert_eq!(
            merged,
            r#"--advertise-address="10.0.0.5" --authorization-mode="Node,RBAC,Webhook" --etcd-servers="https://10.0.0.7:2379" --anonymous-auth="false" --feature-gates="A=true,B=false" --authentication-token-webhook-config-file="/etc/kk/authn.kubeconfig""#
        );
        // Undo: the original values come back and the added flag goes.
        let undone = args_merge(
            &merged,
            &changes(&[
                ("authorization-mode", Some("Node,RBAC")),
                ("authentication-token-webhook-config-file", None),
            ]),
        );
        assert_eq!(undone, CDK);
        // Merging twice changes nothing.
        assert_eq!(
            args_merge(
                &merged,
                &changes(&[("authorization-mode", Some("Node,RBAC,Webhook"))])
            ),
            merged
        );
    }

    #[test]
    fn duplicates_collapse_and_empty_args_work() {
        assert_eq!(
            args_merge("--a=1 --b=2 --a=3", &changes(&[("a", Some("9"))])),
            r#"--a="9" --b=2"#
        );
        assert_eq!(
            args_merge("", &changes(&[("a", Some("x")), ("b", None)])),
            r#"--a="x""#
        );
    }

    #[test]
    fn style_and_current_values() {
        let per_flag: BTreeMap<String, Value> =
            serde_json::from_str(r#"{"authorization-mode":"Node,RBAC","v":2}"#).unwrap();
        assert_eq!(detect_style(&per_flag), Style::PerFlag);
        let cur = current_values(
            Style::PerFlag,
            &per_flag,
            ["authorization-mode".into(), "v".into(), "x".into()],
        );
        assert_eq!(cur["authorization-mode"].as_deref(), Some("Node,RBAC"));
        assert_eq!(cur["v"].as_deref(), Some("2"));
        assert_eq!(cur["x"], None);
        let args: BTreeMap<String, Value> =
            serde_json::from_value(serde_json::json!({ "args": CDK })).unwrap();
        assert_eq!(detect_style(&args), Style::Args);
        let cur = current_values(Style::Args, &args, ["anonymous-auth".into()]);
        assert_eq!(cur["anonymous-auth"].as_deref(), Some("false"));
    }
}
