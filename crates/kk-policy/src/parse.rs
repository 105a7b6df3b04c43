//! JSON text → compiled rules.
//!
//! Decoding follows Go's `encoding/json` into the reference's `policy` structs: object keys of
//! struct-like objects match case-insensitively, unknown keys are ignored, `null` means "absent",
//! a repeated key overrides (objects and maps merge into the earlier value), `null` inside a
//! string array is `""`. Wrong JSON types are errors, as they are in Go. What Go silently ignores
//! is accepted with a warning; what would make Go panic is an error.

use std::fmt;

use serde::Deserialize;

use super::json::{Json, fold_key};
use super::pattern::{NameSet, Pattern, PatternKind, go_to_lower};
use super::v1::{self, MatchType};
use super::{NonResourceGrant, PolicyError, ResourceGrant, Rule, SkippedPart, v2};

/// A JSON object of string arrays, in document order, keys unique (last one wins).
type ListMap = Vec<(String, Option<Vec<String>>)>;

#[derive(Default)]
struct RawRule {
    resource: Option<RawResource>,
    nonresource: Option<RawNonResource>,
    matches: Option<Vec<RawMatch>>,
    resource_permissions: Option<ListMap>,
    nonresource_permissions: Option<ListMap>,
    users: Option<ListMap>,
}

#[derive(Default)]
struct RawResource {
    verbs: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    version: Option<String>,
    namespace: Option<String>,
}

#[derive(Default)]
struct RawNonResource {
    verbs: Option<Vec<String>>,
    path: Option<String>,
}

#[derive(Default)]
struct RawMatch {
    kind: String,
    values: Option<Vec<String>>,
}

/// Parses and compiles a whole policy document.
pub(super) fn parse(input: &str) -> Result<Parsed, PolicyError> {
    let mut warnings = Vec::new();
    let mut skipped = Vec::new();
    let mut de = serde_json::Deserializer::from_str(input);
    let root = Json::deserialize(&mut de).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let text = e.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        PolicyError::Syntax {
            line,
            column,
            message,
        }
    })?;
    if let Err(e) = de.end() {
        warnings.push(format!(
            "data after the end of the policy array (line {}, column {}) is ignored",
            e.line(),
            e.column()
        ));
    }
    let Json::Array(items) = root else {
        return Err(PolicyError::NotAnArray { found: root.kind() });
    };
    let mut rules = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let mut ctx = Ctx {
            index,
            warnings: &mut warnings,
            skipped: &mut skipped,
        };
        rules.push(ctx.rule(item)?);
    }
    Ok(Parsed {
        rules,
        warnings,
        skipped,
    })
}

/// What [`parse`] found.
pub(super) struct Parsed {
    pub(super) rules: Vec<Rule>,
    pub(super) warnings: Vec<String>,
    pub(super) skipped: Vec<SkippedPart>,
}

/// Per-rule decoding context.
struct Ctx<'w> {
    index: usize,
    warnings: &'w mut Vec<String>,
    skipped: &'w mut Vec<SkippedPart>,
}

impl Ctx<'_> {
    /// Records a part of the rule that Go skips at every request.
    fn ctx_skip(&mut self, field: &str) {
        self.skipped.push(SkippedPart {
            index: self.index,
            field: field.to_owned(),
        });
    }

    fn warn(&mut self, message: impl fmt::Display) {
        self.warnings
            .push(format!("rule {}: {message}", self.index));
    }

    fn wrong_type(&self, field: &str, expected: &'static str, found: &Json) -> PolicyError {
        PolicyError::WrongType {
            index: self.index,
            field: field.to_owned(),
            expected,
            found: found.kind(),
        }
    }

    fn missing(&self, field: &str) -> PolicyError {
        PolicyError::MissingField {
            index: self.index,
            field: field.to_owned(),
        }
    }

    /// Records a struct field name; warns the second time it is seen.
    fn note_key(&mut self, seen: &mut Vec<String>, folded: String, field: &str) {
        if seen.contains(&folded) {
            self.warn(format_args!(
                "key `{field}` appears more than once; as in Go, the later value overrides the \
                 earlier one"
            ));
        } else {
            seen.push(folded);
        }
    }

    /// A Go `*string`: `null` is `None`.
    fn string(&self, field: &str, value: Json) -> Result<Option<String>, PolicyError> {
        match value {
            Json::Null => Ok(None),
            Json::String(s) => Ok(Some(s)),
            other => Err(self.wrong_type(field, "a string", &other)),
        }
    }

    /// A Go `[]string`: `null` is `None`, a `null` item is `""`.
    fn strings(&self, field: &str, value: Json) -> Result<Option<Vec<String>>, PolicyError> {
        match value {
            Json::Null => Ok(None),
            Json::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Json::String(s) => Ok(s),
                    Json::Null => Ok(String::new()),
                    other => Err(self.wrong_type(&format!("{field}[{i}]"), "a string", &other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            other => Err(self.wrong_type(field, "an array of strings", &other)),
        }
    }

    /// A Go `map[string][]string`; a repeated rule-level key merges into `existing`.
    fn list_map(
        &mut self,
        field: &str,
        value: Json,
        existing: Option<ListMap>,
    ) -> Result<Option<ListMap>, PolicyError> {
        let members = match value {
            Json::Null => return Ok(None),
            Json::Object(members) => members,
            other => {
                return Err(self.wrong_type(
                    field,
                    "an object whose values are arrays of strings",
                    &other,
                ));
            }
        };
        let mut map = existing.unwrap_or_default();
        for (key, value) in members {
            let path = if field == "users" {
                format!("users.{key}")
            } else {
                format!("{field}[{key:?}]")
            };
            let list = self.strings(&path, value)?;
            if let Some(slot) = map.iter_mut().find(|(k, _)| *k == key) {
                self.warn(format_args!(
                    "key {key:?} appears more than once in `{field}`; as in Go, the last value wins"
                ));
                slot.1 = list;
            } else {
                map.push((key, list));
            }
        }
        Ok(Some(map))
    }

    fn resource(
        &mut self,
        value: Json,
        existing: Option<RawResource>,
    ) -> Result<Option<RawResource>, PolicyError> {
        let members = match value {
            Json::Null => return Ok(None),
            Json::Object(members) => members,
            other => return Err(self.wrong_type("resource", "an object", &other)),
        };
        let mut raw = existing.unwrap_or_default();
        let mut seen = Vec::new();
        for (key, value) in members {
            let folded = fold_key(&key);
            match folded.as_str() {
                "verbs" => raw.verbs = self.strings("resource.verbs", value)?,
                "resources" => raw.resources = self.strings("resource.resources", value)?,
                "version" => raw.version = self.string("resource.version", value)?,
                "namespace" => raw.namespace = self.string("resource.namespace", value)?,
                "group" | "groups" | "apigroup" | "apigroups" => {
                    self.warn(format_args!(
                        "unknown key `resource.{key}` is ignored (the API group is given in \
                         `resource.version`)"
                    ));
                    continue;
                }
                _ => {
                    self.warn(format_args!("unknown key `resource.{key}` is ignored"));
                    continue;
                }
            }
            self.note_key(&mut seen, folded, &format!("resource.{key}"));
        }
        Ok(Some(raw))
    }

    fn nonresource(
        &mut self,
        value: Json,
        existing: Option<RawNonResource>,
    ) -> Result<Option<RawNonResource>, PolicyError> {
        let members = match value {
            Json::Null => return Ok(None),
            Json::Object(members) => members,
            other => return Err(self.wrong_type("nonresource", "an object", &other)),
        };
        let mut raw = existing.unwrap_or_default();
        let mut seen = Vec::new();
        for (key, value) in members {
            let folded = fold_key(&key);
            match folded.as_str() {
                "verbs" => raw.verbs = self.strings("nonresource.verbs", value)?,
                "path" => raw.path = self.string("nonresource.path", value)?,
                "paths" => {
                    self.warn(format_args!(
                        "unknown key `nonresource.{key}` is ignored (only one `path` per \
                         `nonresource` object is supported)"
                    ));
                    continue;
                }
                _ => {
                    self.warn(format_args!("unknown key `nonresource.{key}` is ignored"));
                    continue;
                }
            }
            self.note_key(&mut seen, folded, &format!("nonresource.{key}"));
        }
        Ok(Some(raw))
    }

    fn matches(&mut self, value: Json) -> Result<Option<Vec<RawMatch>>, PolicyError> {
        let items = match value {
            Json::Null => return Ok(None),
            Json::Array(items) => items,
            other => return Err(self.wrong_type("match", "an array of objects", &other)),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let members = match item {
                // Go leaves the zero value: type "", which is unknown.
                Json::Null => {
                    out.push(RawMatch::default());
                    continue;
                }
                Json::Object(members) => members,
                other => return Err(self.wrong_type(&format!("match[{i}]"), "an object", &other)),
            };
            let mut raw = RawMatch::default();
            let mut seen = Vec::new();
            for (key, value) in members {
                let folded = fold_key(&key);
                match folded.as_str() {
                    "type" => {
                        // A Go `string`: `null` leaves it unchanged.
                        if let Some(kind) = self.string(&format!("match[{i}].type"), value)? {
                            raw.kind = kind;
                        }
                    }
                    "values" => raw.values = self.strings(&format!("match[{i}].values"), value)?,
                    _ => {
                        self.warn(format_args!("unknown key `match[{i}].{key}` is ignored"));
                        continue;
                    }
                }
                self.note_key(&mut seen, folded, &format!("match[{i}].{key}"));
            }
            out.push(raw);
        }
        Ok(Some(out))
    }

    fn rule(&mut self, value: Json) -> Result<Rule, PolicyError> {
        let members = match value {
            Json::Object(members) => members,
            other => {
                return Err(PolicyError::RuleNotAnObject {
                    index: self.index,
                    found: other.kind(),
                });
            }
        };
        let mut raw = RawRule::default();
        let mut seen = Vec::new();
        for (key, value) in members {
            let folded = fold_key(&key);
            match folded.as_str() {
                "resource" => {
                    let earlier = raw.resource.take();
                    raw.resource = self.resource(value, earlier)?;
                }
                "nonresource" => {
                    let earlier = raw.nonresource.take();
                    raw.nonresource = self.nonresource(value, earlier)?;
                }
                "match" => raw.matches = self.matches(value)?,
                "resource_permissions" => {
                    let earlier = raw.resource_permissions.take();
                    raw.resource_permissions =
                        self.list_map("resource_permissions", value, earlier)?;
                }
                "nonresource_permissions" => {
                    let earlier = raw.nonresource_permissions.take();
                    raw.nonresource_permissions =
                        self.list_map("nonresource_permissions", value, earlier)?;
                }
                "users" => {
                    let earlier = raw.users.take();
                    raw.users = self.list_map("users", value, earlier)?;
                }
                _ => {
                    self.unknown_rule_key(&key, &folded);
                    continue;
                }
            }
            self.note_key(&mut seen, folded, &key);
        }
        self.compile(raw)
    }

    fn unknown_rule_key(&mut self, key: &str, folded: &str) {
        const KNOWN: [&str; 6] = [
            "resource",
            "nonresource",
            "match",
            "resource_permissions",
            "nonresource_permissions",
            "users",
        ];
        let squashed: String = folded.chars().filter(|c| *c != '_' && *c != '-').collect();
        match KNOWN.iter().find(|k| k.replace('_', "") == squashed) {
            Some(known) => self.warn(format_args!(
                "unknown key `{key}` is ignored (did you mean `{known}`?)"
            )),
            None => self.warn(format_args!("unknown key `{key}` is ignored")),
        }
    }

    fn compile(&mut self, raw: RawRule) -> Result<Rule, PolicyError> {
        let users = raw.users.map(|map| self.users(map));

        let resource = match (raw.resource_permissions, raw.resource) {
            (Some(perms), old) => {
                if old.is_some() {
                    self.warn(
                        "`resource` is ignored because `resource_permissions` is present \
                         (version 2 takes precedence)",
                    );
                }
                Some(ResourceGrant::V2(self.resource_permissions(perms)))
            }
            (None, Some(spec)) => Some(ResourceGrant::V1(self.v1_resource(spec)?)),
            (None, None) => None,
        };
        let nonresource = match (raw.nonresource_permissions, raw.nonresource) {
            (Some(perms), old) => {
                if old.is_some() {
                    self.warn(
                        "`nonresource` is ignored because `nonresource_permissions` is present \
                         (version 2 takes precedence)",
                    );
                }
                Some(NonResourceGrant::V2(self.nonresource_permissions(perms)))
            }
            (None, Some(spec)) => Some(NonResourceGrant::V1(self.v1_nonresource(spec)?)),
            (None, None) => None,
        };

        let uses_match = matches!(resource, Some(ResourceGrant::V1(_)))
            || matches!(nonresource, Some(NonResourceGrant::V1(_)));
        let matchers = match raw.matches {
            Some(list) if uses_match => self.matchers(list),
            Some(list) => {
                if !list.is_empty() {
                    self.warn(
                        "`match` is ignored: it only applies to version 1 `resource` and \
                         `nonresource` objects (use `users` with version 2 permissions)",
                    );
                }
                v1::Matchers::default()
            }
            None => v1::Matchers::default(),
        };

        if resource.is_none() && nonresource.is_none() {
            self.warn(
                "has none of `resource`, `nonresource`, `resource_permissions`, \
                 `nonresource_permissions`, so it never allows anything",
            );
        }
        Ok(Rule {
            index: self.index,
            users,
            resource,
            nonresource,
            matchers,
        })
    }

    fn users(&mut self, map: ListMap) -> v2::Users {
        let mut roles = Vec::new();
        let mut projects = Vec::new();
        for (key, list) in map {
            match key.as_str() {
                "roles" => roles = list.unwrap_or_default(),
                "projects" => projects = list.unwrap_or_default(),
                "domains" => self.warn(
                    "`users.domains` is ignored: Keystone domains are not part of the policy \
                     (as in Go)",
                ),
                other
                    if other.eq_ignore_ascii_case("roles")
                        || other.eq_ignore_ascii_case("projects") =>
                {
                    self.warn(format_args!(
                        "`users.{other}` is ignored: keys inside `users` are case-sensitive \
                         (did you mean `{}`?)",
                        other.to_ascii_lowercase()
                    ));
                }
                other => self.warn(format_args!(
                    "`users.{other}` is ignored (only `roles` and `projects` are used)"
                )),
            }
        }
        if projects.is_empty() {
            self.warn("`users.projects` is missing or empty, so this rule never matches anyone");
        }
        v2::Users { roles, projects }
    }

    fn resource_permissions(&mut self, perms: ListMap) -> Vec<v2::ResourceEntry> {
        let mut entries = Vec::with_capacity(perms.len());
        for (key, verbs) in perms {
            let parts: Vec<&str> = key.split('/').collect();
            let [namespace, resource] = parts.as_slice() else {
                self.warn(format_args!(
                    "`resource_permissions` key {key:?} is ignored: it must have the form \
                     \"<namespace>/<resource>\" with exactly one `/` (sub-resources can only be \
                     written in a version 1 `resource` rule)"
                ));
                continue;
            };
            let namespace = Pattern::compile(go_to_lower(namespace.trim()));
            let resource = Pattern::compile(go_to_lower(resource.trim()));
            self.check_pattern(&key, "namespace", &namespace);
            self.check_pattern(&key, "resource", &resource);
            let verbs: Vec<String> = verbs
                .unwrap_or_default()
                .iter()
                .map(|v| go_to_lower(v))
                .collect();
            if verbs.is_empty() {
                self.warn(format_args!(
                    "`resource_permissions` key {key:?} has no verbs, so it never allows anything"
                ));
            }
            entries.push(v2::ResourceEntry {
                key,
                namespace,
                resource,
                verbs: NameSet::new(verbs),
            });
        }
        entries
    }

    fn check_pattern(&mut self, key: &str, side: &str, pattern: &Pattern) {
        let raw = pattern.raw();
        let problem = match pattern.kind() {
            PatternKind::InvalidList => Some(format!(
                "the {side} part {raw:?} is not a valid list such as ['a', 'b'], so it only \
                 matches itself literally"
            )),
            PatternKind::Except(name) if name == "*" => {
                Some(format!("the {side} part \"!*\" matches nothing"))
            }
            PatternKind::NoneOf { any: true, .. } => Some(format!(
                "the {side} part {raw:?} contains '*', so it matches nothing"
            )),
            PatternKind::Literal if raw.is_empty() => {
                Some(format!("the {side} part is empty, so it never matches"))
            }
            PatternKind::Literal if raw.starts_with('[') || raw.starts_with("![") => Some(format!(
                "the {side} part {raw:?} looks like a list but its first `]` is not its last \
                 character, so it only matches itself literally"
            )),
            PatternKind::Literal | PatternKind::Except(_) if raw.contains('*') => Some(format!(
                "the {side} part {raw:?} contains `*`; wildcards only work as the whole part, \
                 so it is compared literally"
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            self.warn(format_args!(
                "`resource_permissions` key {key:?}: {problem}"
            ));
        }
    }

    fn nonresource_permissions(&mut self, perms: ListMap) -> Vec<v2::NonResourceEntry> {
        let mut entries = Vec::with_capacity(perms.len());
        for (path, verbs) in perms {
            if path.contains('*') {
                self.warn(format_args!(
                    "`nonresource_permissions` key {path:?}: version 2 paths are compared \
                     exactly and `*` is not a wildcard (use a version 1 `nonresource` rule for a \
                     prefix match)"
                ));
            }
            let verbs = NameSet::new(verbs.unwrap_or_default());
            if verbs.is_empty() {
                self.warn(format_args!(
                    "`nonresource_permissions` key {path:?} has no verbs, so it never allows \
                     anything"
                ));
            }
            entries.push(v2::NonResourceEntry { path, verbs });
        }
        entries
    }

    fn v1_resource(&mut self, raw: RawResource) -> Result<v1::ResourceSpec, PolicyError> {
        let Some(namespace) = raw.namespace else {
            return Err(self.missing("resource.namespace"));
        };
        let Some(group) = raw.version else {
            return Err(self.missing("resource.version"));
        };
        let verbs = NameSet::new(raw.verbs.unwrap_or_default());
        if verbs.is_empty() {
            self.warn("`resource.verbs` is missing or empty, so this rule never allows anything");
        }
        let resources = NameSet::new(raw.resources.unwrap_or_default());
        if resources.is_empty() {
            self.warn(
                "`resource.resources` is missing or empty, so this rule never allows anything",
            );
        }
        if looks_like_api_version(&group) {
            self.warn(format_args!(
                "`resource.version` is {group:?}, but it is compared with the API *group* \
                 (\"\" is the core group, \"*\" any group), not the API version"
            ));
        }
        Ok(v1::ResourceSpec {
            verbs,
            resources,
            group,
            namespace,
        })
    }

    fn v1_nonresource(&mut self, raw: RawNonResource) -> Result<v1::NonResourceSpec, PolicyError> {
        let path = raw.path;
        if path.is_none() {
            self.warn(
                "`nonresource.path` is missing, so this rule's `nonresource` object never allows \
                 anything (Go skips it at every request); the rest of the rule applies",
            );
            self.ctx_skip("nonresource.path");
        }
        let verbs = NameSet::new(raw.verbs.unwrap_or_default());
        if verbs.contains("") {
            self.warn("`nonresource.verbs` contains \"\", which disables this rule (as in Go)");
        } else if verbs.is_empty() {
            self.warn(
                "`nonresource.verbs` is missing or empty, so this rule never allows anything",
            );
        }
        Ok(v1::NonResourceSpec { verbs, path })
    }

    fn matchers(&mut self, list: Vec<RawMatch>) -> v1::Matchers {
        let mut matchers = v1::Matchers::default();
        for (i, raw) in list.into_iter().enumerate() {
            match MatchType::from_name(&raw.kind) {
                None => {
                    self.warn(format_args!(
                        "`match[{i}].type` {:?} is not one of \"user\", \"group\", \"project\", \
                         \"role\", so this rule never matches anyone",
                        raw.kind
                    ));
                    matchers.never = true;
                }
                Some(kind) => {
                    let values = NameSet::new(raw.values.unwrap_or_default());
                    if values.is_empty() {
                        self.warn(format_args!(
                            "`match[{i}].values` is missing or empty, so this rule never matches \
                             anyone"
                        ));
                    }
                    matchers.entries.push((kind, values));
                }
            }
        }
        matchers
    }
}

/// `v1`, `v2beta1`, `v1alpha3`…: an API version where an API group is expected.
fn looks_like_api_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    if rest.is_empty() {
        return true;
    }
    let Some(n) = rest
        .strip_prefix("alpha")
        .or_else(|| rest.strip_prefix("beta"))
    else {
        return false;
    };
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}
