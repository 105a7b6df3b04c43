//! `clouds.yaml` and `secure.yaml`, found where the openstack client looks for them:
//! `$OS_CLIENT_CONFIG_FILE` (and `$OS_CLIENT_SECURE_FILE`), else the first of `./`,
//! `$XDG_CONFIG_HOME/openstack/` (default `~/.config/openstack/`) and `/etc/openstack/` that has
//! `clouds.yaml` (or `clouds.yml`). The cloud named by `OS_CLOUD` (or `--os-cloud`) becomes the
//! lowest [`Layer`]; the same cloud in `secure.yaml` overrides it key by key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_yaml_ng::Value;

use super::settings::{Field, Layer, Origin};

/// Largest clouds.yaml read.
const MAX_FILE: u64 = 1024 * 1024;

/// Directories searched, in order.
pub fn search_dirs(env: &dyn Fn(&str) -> Option<String>, cwd: Option<PathBuf>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(cwd) = cwd {
        dirs.push(cwd);
    }
    let xdg = env("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|s| !s.is_empty())
                .map(|h| Path::new(&h).join(".config"))
        });
    if let Some(x) = xdg {
        dirs.push(x.join("openstack"));
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    dirs
}

fn find(dirs: &[PathBuf], stem: &str) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| ["yaml", "yml"].map(|ext| d.join(format!("{stem}.{ext}"))))
        .find(|p| p.is_file())
}

fn read_yaml(path: &Path) -> Result<Value> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_FILE {
        bail!("{} is larger than {MAX_FILE} bytes", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

/// Reads the named cloud from the files the openstack client would use.
pub fn load(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: Option<PathBuf>,
) -> Result<Layer> {
    let dirs = search_dirs(env, cwd);
    let clouds = match env("OS_CLIENT_CONFIG_FILE").filter(|s| !s.is_empty()) {
        Some(f) => PathBuf::from(f),
        None => find(&dirs, "clouds").with_context(|| {
            format!(
                "OS_CLOUD is {name:?} but no clouds.yaml was found (looked in {}; set OS_CLIENT_CONFIG_FILE to name one)",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?,
    };
    let secure = match env("OS_CLIENT_SECURE_FILE").filter(|s| !s.is_empty()) {
        Some(f) => Some(PathBuf::from(f)),
        None => {
            // secure.yaml next to clouds.yaml first, then the usual places.
            let mut sdirs: Vec<PathBuf> =
                clouds.parent().map(Path::to_path_buf).into_iter().collect();
            sdirs.extend(dirs);
            find(&sdirs, "secure")
        }
    };
    let doc = read_yaml(&clouds)?;
    let secure_doc = secure.as_deref().map(read_yaml).transpose()?;
    cloud_layer(&doc, secure_doc.as_ref(), name, &clouds)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The layer of cloud `name` of a parsed `clouds.yaml`, `secure.yaml` overriding it. Pure.
pub fn cloud_layer(
    clouds: &Value,
    secure: Option<&Value>,
    name: &str,
    file: &Path,
) -> Result<Layer> {
    let cloud = clouds.get("clouds").and_then(|c| c.get(name));
    let secure_cloud = secure
        .and_then(|s| s.get("clouds"))
        .and_then(|c| c.get(name));
    if cloud.is_none() && secure_cloud.is_none() {
        let known: Vec<String> = clouds
            .get("clouds")
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(scalar).collect())
            .unwrap_or_default();
        bail!(
            "cloud {name:?} (OS_CLOUD) is not in {} (clouds there: {})",
            file.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let mut layer = Layer::new(Origin::Cloud {
        name: name.to_string(),
        file: file.to_path_buf(),
    });
    // secure.yaml first, so that its values win (Layer::set keeps the first non-empty value
    // only if we skip already-set fields).
    for source in [secure_cloud, cloud].into_iter().flatten() {
        for f in Field::ALL {
            if layer.get(f).is_some() {
                continue;
            }
            let v = if f.in_auth() {
                source.get("auth").and_then(|a| a.get(f.cloud_key()))
            } else {
                source.get(f.cloud_key())
            };
            layer.set_opt(f, v.and_then(scalar));
        }
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{AuthType, resolve};

    const CLOUDS: &str = r#"
clouds:
  garr:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.org:5000/v3
      application_credential_id: ac1
    cacert: /etc/ssl/ks.pem
  other:
    auth:
      auth_url: https://x/v3
      username: alice
      password: 1234
"#;
    const SECURE: &str = r#"
clouds:
  garr:
    auth:
      application_credential_secret: from-secure
"#;

    #[test]
    fn cloud_with_secure_yaml() {
        let c: Value = serde_yaml_ng::from_str(CLOUDS).unwrap();
        let s: Value = serde_yaml_ng::from_str(SECURE).unwrap();
        let l = cloud_layer(&c, Some(&s), "garr", Path::new("clouds.yaml")).unwrap();
        assert_eq!(l.get(Field::AppCredSecret).unwrap().expose(), "from-secure");
        assert_eq!(l.get(Field::CaCert).unwrap().expose(), "/etc/ssl/ks.pem");
        let plan = resolve(&[l]).unwrap();
        assert_eq!(plan.auth_type(), AuthType::ApplicationCredential);
        assert_eq!(plan.url.as_str(), "https://keystone.example.org:5000/v3");
        // numbers are read as strings
        let l = cloud_layer(&c, None, "other", Path::new("clouds.yaml")).unwrap();
        assert_eq!(l.get(Field::Password).unwrap().expose(), "1234");
    }

    #[test]
    fn unknown_cloud_lists_the_known_ones() {
        let c: Value = serde_yaml_ng::from_str(CLOUDS).unwrap();
        let err = cloud_layer(&c, None, "nope", Path::new("/x/clouds.yaml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("garr, other") && msg.contains("/x/clouds.yaml"),
            "{msg}"
        );
    }

    #[test]
    fn search_order_is_cwd_xdg_etc() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(
            search_dirs(&env, Some("/w".into())),
            [
                PathBuf::from("/w"),
                PathBuf::from("/home/u/.config/openstack"),
                PathBuf::from("/etc/openstack")
            ]
        );
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "XDG_CONFIG_HOME" => Some("/cfg".to_string()),
            _ => None,
        };
        assert_eq!(search_dirs(&env, None)[0], PathBuf::from("/cfg/openstack"));
    }

    #[test]
    fn files_are_found_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let os = dir.path().join("openstack");
        std::fs::create_dir(&os).unwrap();
        std::fs::write(os.join("clouds.yaml"), CLOUDS).unwrap();
        std::fs::write(os.join("secure.yml"), SECURE).unwrap();
        let xdg = dir.path().to_string_lossy().to_string();
        let env = move |k: &str| (k == "XDG_CONFIG_HOME").then(|| xdg.clone());
        let l = load("garr", &env, None).unwrap();
        assert_eq!(l.get(Field::AppCredSecret).unwrap().expose(), "from-secure");
        let none = |_: &str| None;
        let err = load("garr", &none, Some(dir.path().join("nowhere"))).unwrap_err();
        assert!(err.to_string().contains("OS_CLIENT_CONFIG_FILE"), "{err}");
    }
}
