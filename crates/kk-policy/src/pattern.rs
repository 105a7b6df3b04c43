//! Pre-compiled name matchers shared by both policy formats.

/// A list of names where `*` means "any name" (verbs, v1 resources, match values).
#[derive(Debug, Clone, Default)]
pub(super) struct NameSet {
    any: bool,
    names: Vec<String>,
}

impl NameSet {
    pub(super) fn new(names: Vec<String>) -> Self {
        NameSet {
            any: names.iter().any(|n| n == "*"),
            names,
        }
    }

    /// `*` is in the list, or `name` is.
    pub(super) fn allows(&self, name: &str) -> bool {
        self.any || self.contains(name)
    }

    /// `*` is in the list.
    pub(super) fn has_any(&self) -> bool {
        self.any
    }

    /// `name` is literally in the list.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub(super) fn names(&self) -> &[String] {
        &self.names
    }
}

/// One side (namespace or resource) of a version 2 `resource_permissions` key, after Go's
/// `strings.ToLower(strings.TrimSpace(..))`.
///
/// Matching follows Go's `getAllowed` exactly: an empty request value, a request value equal to
/// the whole definition, or the definition `*` always match; then the definition's shape
/// decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    raw: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PatternKind {
    /// `*`.
    Any,
    /// `!name`: anything but `name`; `!*` matches nothing.
    Except(String),
    /// `['a', 'b']`: one of the list; a `'*'` item matches anything.
    OneOf { items: Vec<String>, any: bool },
    /// `!['a', 'b']`: anything not in the list; a `'*'` item makes it match nothing.
    NoneOf { items: Vec<String>, any: bool },
    /// Looks like a list but is not valid JSON once `'` is replaced by `"`: Go skips it.
    InvalidList,
    /// Anything else, including plain names: only the literal string (or an empty request
    /// value) matches.
    Literal,
}

impl Pattern {
    /// Compiles an already trimmed and lower-cased definition.
    pub(super) fn compile(def: String) -> Self {
        let closes_at_end = def.find(']').is_some_and(|i| i + 1 == def.len());
        let kind = if def == "*" {
            PatternKind::Any
        } else if let Some(rest) = def.strip_prefix('!')
            && def.find('[') != Some(1)
        {
            PatternKind::Except(rest.to_owned())
        } else if def.starts_with('[') && closes_at_end {
            match parse_list(&def) {
                Some(items) => {
                    let any = items.iter().any(|i| i == "*");
                    PatternKind::OneOf { items, any }
                }
                None => PatternKind::InvalidList,
            }
        } else if let Some(rest) = def.strip_prefix('!')
            && rest.starts_with('[')
            && closes_at_end
        {
            match parse_list(rest) {
                Some(items) => {
                    let any = items.iter().any(|i| i == "*");
                    PatternKind::NoneOf { items, any }
                }
                None => PatternKind::InvalidList,
            }
        } else {
            PatternKind::Literal
        };
        Pattern { raw: def, kind }
    }

    /// The definition as compiled (trimmed, lower-cased).
    pub(super) fn raw(&self) -> &str {
        &self.raw
    }

    pub(super) fn kind(&self) -> &PatternKind {
        &self.kind
    }

    /// Whether the request value `value` is allowed by this definition.
    pub(super) fn matches(&self, value: &str) -> bool {
        if value.is_empty() || self.raw == value {
            return true;
        }
        match &self.kind {
            PatternKind::Any => true,
            PatternKind::Except(name) => name != "*" && name != value,
            PatternKind::OneOf { items, any } => *any || items.iter().any(|i| i == value),
            PatternKind::NoneOf { items, any } => !(*any || items.iter().any(|i| i == value)),
            PatternKind::InvalidList | PatternKind::Literal => false,
        }
    }
}

/// Go: `json.Unmarshal(strings.Replace(def, "'", "\"", -1), &[]string)`; a JSON `null` item
/// leaves the zero value `""`.
fn parse_list(def: &str) -> Option<Vec<String>> {
    let json = def.replace('\'', "\"");
    let items: Vec<Option<String>> = serde_json::from_str(&json).ok()?;
    Some(items.into_iter().map(Option::unwrap_or_default).collect())
}

/// Go's `strings.ToLower`: per-character simple lower-case mapping. Rust's `str::to_lowercase`
/// differs for U+0130 (which it maps to two characters) and for a final capital sigma.
pub(super) fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                _ => c,
            }
        })
        .collect()
}
