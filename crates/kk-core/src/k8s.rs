//! Kubernetes wire types for the two webhooks, written by hand.
//!
//! `k8s-openapi` has only the `v1` versions of these kinds and refuses any other `apiVersion`,
//! while kube-apiserver still defaults its webhook versions to `v1beta1`. The types here are
//! lenient on input (unknown fields are ignored, `null` is read as empty) and the answer always
//! carries the request's `apiVersion`.
//!
//! | kind | versions | groups field |
//! |---|---|---|
//! | `TokenReview` | `authentication.k8s.io/v1`, `authentication.k8s.io/v1beta1` | — |
//! | `SubjectAccessReview` | `authorization.k8s.io/v1`, `authorization.k8s.io/v1beta1` | v1 `groups`, v1beta1 `group` |

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

use crate::secret::Secret;

/// `authentication.k8s.io/v1`
pub const AUTHENTICATION_V1: &str = "authentication.k8s.io/v1";
/// `authentication.k8s.io/v1beta1`
pub const AUTHENTICATION_V1BETA1: &str = "authentication.k8s.io/v1beta1";
/// `authorization.k8s.io/v1`
pub const AUTHORIZATION_V1: &str = "authorization.k8s.io/v1";
/// `authorization.k8s.io/v1beta1`
pub const AUTHORIZATION_V1BETA1: &str = "authorization.k8s.io/v1beta1";

/// The `extra` keys this service reads or writes, each holding an array of strings: the five of
/// the Go reference, this service's own [`ACCESS_RULES`](extra_keys::ACCESS_RULES), and
/// kube-apiserver's [`CREDENTIAL_ID`](extra_keys::CREDENTIAL_ID).
pub mod extra_keys {
    /// Keystone project id of the token's scope.
    pub const PROJECT_ID: &str = "alpha.kubernetes.io/identity/project/id";
    /// Keystone project name of the token's scope.
    pub const PROJECT_NAME: &str = "alpha.kubernetes.io/identity/project/name";
    /// Role names on the token.
    pub const ROLES: &str = "alpha.kubernetes.io/identity/roles";
    /// Domain id of the user.
    pub const USER_DOMAIN_ID: &str = "alpha.kubernetes.io/identity/user/domain/id";
    /// Domain name of the user.
    pub const USER_DOMAIN_NAME: &str = "alpha.kubernetes.io/identity/user/domain/name";
    /// This service only (not in the Go reference): the access rules of the application
    /// credential the token came from, for the configured service type, one
    /// `"METHOD PATH"` value each (see [`access_rule_value`]). Present only for a credential
    /// with access rules; the SubjectAccessReview carries it back, so any replica can enforce
    /// the rules without shared state.
    pub const ACCESS_RULES: &str = "alpha.kubernetes.io/identity/access-rules";
    /// Set by kube-apiserver itself (never by this service) for ServiceAccount tokens
    /// (`JTI=...`) and X.509 client certificates (`X509SHA256=...`).
    pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

    /// One [`ACCESS_RULES`] value: the method, one space, the path (`GET /api/v1/pods`).
    /// Keystone's methods are single upper-case words and its paths start with `/`, so the
    /// first space always separates them.
    pub fn access_rule_value(method: &str, path: &str) -> String {
        format!("{method} {path}")
    }

    /// Reads an [`ACCESS_RULES`] value back into `(method, path)`; `None` when it has no space.
    pub fn parse_access_rule_value(value: &str) -> Option<(&str, &str)> {
        value.split_once(' ')
    }
}

/// `apiVersion` and `kind`, read first so that a wrong kind or version gets a precise answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// e.g. `authentication.k8s.io/v1`
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_version: String,
    /// e.g. `TokenReview`
    #[serde(default, deserialize_with = "null_as_default")]
    pub kind: String,
}

/// A review request on the wire: `apiVersion`, `kind` and `spec` read in one pass, straight
/// into their types (`#[serde(flatten)]` would first buffer the whole body, token included,
/// into an untyped tree). Other fields (`metadata`, `status`) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestWire<S> {
    #[serde(default, deserialize_with = "null_as_default")]
    api_version: String,
    #[serde(default, deserialize_with = "null_as_default")]
    kind: String,
    spec: S,
}

impl From<RequestWire<TokenReviewSpec>> for TokenReviewRequest {
    fn from(w: RequestWire<TokenReviewSpec>) -> Self {
        TokenReviewRequest {
            type_meta: TypeMeta {
                api_version: w.api_version,
                kind: w.kind,
            },
            spec: w.spec,
        }
    }
}

impl From<RequestWire<SubjectAccessReviewSpec>> for SubjectAccessReviewRequest {
    fn from(w: RequestWire<SubjectAccessReviewSpec>) -> Self {
        SubjectAccessReviewRequest {
            type_meta: TypeMeta {
                api_version: w.api_version,
                kind: w.kind,
            },
            spec: w.spec,
        }
    }
}

/// A TokenReview as kube-apiserver sends it.
#[derive(Debug, Deserialize)]
#[serde(from = "RequestWire<TokenReviewSpec>")]
pub struct TokenReviewRequest {
    /// Version and kind, echoed in the answer.
    pub type_meta: TypeMeta,
    /// The request's spec.
    pub spec: TokenReviewSpec,
}

/// `spec` of a TokenReview.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewSpec {
    /// The bearer token to review.
    pub token: Secret,
    /// Audiences the apiserver accepts (v1 and v1beta1 both have it; Keystone tokens are not
    /// audience-bound, so the answer leaves `status.audiences` empty and the apiserver applies
    /// its own).
    #[serde(default, deserialize_with = "null_as_default")]
    pub audiences: Vec<String>,
}

/// The answer to a TokenReview.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewResponse {
    /// Same `apiVersion` and `kind` as the request.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The verdict.
    pub status: TokenReviewStatus,
}

/// `status` of a TokenReview answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewStatus {
    /// Whether the token belongs to a known user.
    pub authenticated: bool,
    /// The user, when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserInfo>,
    /// Set when the token could not be checked (Keystone down): the apiserver does not cache
    /// such an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A Kubernetes user, as the authenticator reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// User name.
    pub username: String,
    /// Unique id.
    pub uid: String,
    /// Group names.
    pub groups: Vec<String>,
    /// Extra attributes, each a list of strings.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A user serialized once (`status.user` of a TokenReview answer), for answers written as bytes
/// by [`TokenReviewAnswer::to_json`]: the service renders each identity once, not per review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedUser {
    username: Box<str>,
    json: Box<str>,
}

impl RenderedUser {
    /// Serializes `user`.
    pub fn new(user: &UserInfo) -> Self {
        // A struct of strings always serializes; the fallback is never reached.
        let json = serde_json::to_string(user).unwrap_or_else(|_| "{}".into());
        Self {
            username: user.username.as_str().into(),
            json: json.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The JSON object.
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// A TokenReview answer written straight to bytes: the same JSON as serializing a
/// [`TokenReviewResponse`] (a test checks them byte for byte), without building a [`UserInfo`]
/// per review.
#[derive(Debug, Clone, Copy)]
pub struct TokenReviewAnswer<'a> {
    /// The request's `apiVersion`.
    pub api_version: &'a str,
    /// The user, when authenticated.
    pub user: Option<&'a RenderedUser>,
    /// `status.error`, when the token could not be checked.
    pub error: Option<&'a str>,
}

impl TokenReviewAnswer<'_> {
    /// The answer's JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let user = self.user.map_or(0, |u| u.json.len());
        let error = self.error.map_or(0, |e| e.len() + 16);
        let mut out = Vec::with_capacity(96 + self.api_version.len() + user + error);
        out.extend_from_slice(b"{\"apiVersion\":");
        push_json_str(&mut out, self.api_version);
        out.extend_from_slice(b",\"kind\":\"TokenReview\",\"status\":{\"authenticated\":");
        match self.user {
            Some(u) => {
                out.extend_from_slice(b"true,\"user\":");
                out.extend_from_slice(u.json.as_bytes());
            }
            None => out.extend_from_slice(b"false"),
        }
        if let Some(e) = self.error {
            out.extend_from_slice(b",\"error\":");
            push_json_str(&mut out, e);
        }
        out.extend_from_slice(b"}}");
        out
    }
}

/// Appends `s` as a JSON string (serde_json's escaping).
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A SubjectAccessReview as kube-apiserver sends it.
#[derive(Debug, Deserialize)]
#[serde(from = "RequestWire<SubjectAccessReviewSpec>")]
pub struct SubjectAccessReviewRequest {
    /// Version and kind, echoed in the answer.
    pub type_meta: TypeMeta,
    /// The request's spec.
    pub spec: SubjectAccessReviewSpec,
}

/// `spec` of a SubjectAccessReview. Both `groups` (v1) and `group` (v1beta1) are read.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAccessReviewSpec {
    /// Set for a request on a resource.
    #[serde(default)]
    pub resource_attributes: Option<ResourceAttributes>,
    /// Set for a request on a non-resource path.
    #[serde(default)]
    pub non_resource_attributes: Option<NonResourceAttributes>,
    /// User name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    /// Groups (`authorization.k8s.io/v1`).
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Groups (`authorization.k8s.io/v1beta1`).
    #[serde(default)]
    pub group: Option<Vec<String>>,
    /// Extra attributes from the authenticator; absent for users that are not from Keystone.
    #[serde(default, deserialize_with = "lenient_extra")]
    pub extra: Option<BTreeMap<String, Vec<String>>>,
    /// User id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uid: String,
}

impl SubjectAccessReviewSpec {
    /// The groups, from whichever of `groups`/`group` was sent.
    pub fn all_groups(&self) -> &[String] {
        self.groups
            .as_deref()
            .or(self.group.as_deref())
            .unwrap_or(&[])
    }
}

/// `spec.resourceAttributes`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceAttributes {
    /// Namespace; empty for cluster-scoped requests.
    #[serde(deserialize_with = "null_as_default")]
    pub namespace: String,
    /// Verb (get, list, create, ...).
    #[serde(deserialize_with = "null_as_default")]
    pub verb: String,
    /// API group; empty for the core group.
    #[serde(deserialize_with = "null_as_default")]
    pub group: String,
    /// API version.
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
    /// Resource (pods, ...).
    #[serde(deserialize_with = "null_as_default")]
    pub resource: String,
    /// Sub-resource (exec, log, ...).
    #[serde(deserialize_with = "null_as_default")]
    pub subresource: String,
    /// Object name.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

/// `spec.nonResourceAttributes`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase", default)]
pub struct NonResourceAttributes {
    /// Path (`/healthz`, `/api`, ...).
    #[serde(deserialize_with = "null_as_default")]
    pub path: String,
    /// Verb (get, ...).
    #[serde(deserialize_with = "null_as_default")]
    pub verb: String,
}

/// The answer to a SubjectAccessReview.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAccessReviewResponse {
    /// Same `apiVersion` and `kind` as the request.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The verdict.
    pub status: SubjectAccessReviewStatus,
}

/// Written as a struct, not through `#[serde(flatten)]` (which serializes a map, field by
/// field through a buffer): the same JSON, checked by a test, at a review's every answer.
impl Serialize for SubjectAccessReviewResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SubjectAccessReviewResponse", 3)?;
        st.serialize_field("apiVersion", &self.type_meta.api_version)?;
        st.serialize_field("kind", &self.type_meta.kind)?;
        st.serialize_field("status", &self.status)?;
        st.end()
    }
}

/// `status` of a SubjectAccessReview answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAccessReviewStatus {
    /// Whether the policy allows the request.
    pub allowed: bool,
    /// Set only for what an application credential's access rules do not allow (an explicit
    /// deny, which ends the authorizer chain); otherwise a `false` answer is "no opinion".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Set when the review could not be evaluated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evaluation_error: String,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `extra` values may be `null` in hand-written requests; read them as empty lists.
fn lenient_extra<'de, D>(d: D) -> Result<Option<BTreeMap<String, Vec<String>>>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = Option::<BTreeMap<String, Option<Vec<String>>>>::deserialize(d)?;
    Ok(raw.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_user() -> UserInfo {
        let mut extra = BTreeMap::new();
        extra.insert(extra_keys::PROJECT_ID.to_string(), vec!["p1".to_string()]);
        extra.insert(
            extra_keys::ROLES.to_string(),
            vec!["member".into(), "reader".into()],
        );
        UserInfo {
            username: "zoë \"q\" \\ \u{1}".into(),
            uid: "u1".into(),
            groups: vec!["devs".into(), "p1".into()],
            extra,
        }
    }

    /// The byte writer and the serde types give the same JSON, for every shape of answer,
    /// and the bytes read back as the same answer.
    #[test]
    fn token_review_answer_bytes_equal_the_serialized_response() {
        let user = sample_user();
        let rendered = RenderedUser::new(&user);
        assert_eq!(rendered.username(), user.username);
        for api_version in [AUTHENTICATION_V1, AUTHENTICATION_V1BETA1] {
            for (user_info, error) in [
                (Some(&user), None),
                (None, None),
                (None, Some("Keystone unavailable: \"x\"\n\u{7f} é")),
            ] {
                let typed = TokenReviewResponse {
                    type_meta: TypeMeta {
                        api_version: api_version.into(),
                        kind: "TokenReview".into(),
                    },
                    status: TokenReviewStatus {
                        authenticated: user_info.is_some(),
                        user: user_info.cloned(),
                        error: error.map(String::from),
                    },
                };
                let bytes = TokenReviewAnswer {
                    api_version,
                    user: user_info.map(|_| &rendered),
                    error,
                }
                .to_json();
                assert_eq!(
                    String::from_utf8(bytes.clone()).unwrap(),
                    serde_json::to_string(&typed).unwrap()
                );
                let back: TokenReviewResponse = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(back, typed);
            }
        }
    }

    #[test]
    fn v1_token_review_reads() {
        let body = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{"creationTimestamp":null},"spec":{"token":"gAAAAAxyz","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}"#;
        let r: TokenReviewRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.type_meta.api_version, AUTHENTICATION_V1);
        assert_eq!(r.spec.token.expose(), "gAAAAAxyz");
        assert_eq!(r.spec.audiences.len(), 1);
        assert_eq!(r.type_meta.kind, "TokenReview");
        // null and absent type fields read as empty (decode() then names what is missing).
        let r: TokenReviewRequest =
            serde_json::from_str(r#"{"apiVersion":null,"spec":{"token":"t","audiences":null}}"#)
                .unwrap();
        assert_eq!(
            (r.type_meta.api_version.as_str(), r.type_meta.kind.as_str()),
            ("", "")
        );
        assert!(r.spec.audiences.is_empty());
        let e =
            serde_json::from_str::<TokenReviewRequest>(r#"{"kind":"TokenReview"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `spec`"), "{e}");
    }

    #[test]
    fn sar_reads_groups_of_both_versions_and_null_extra_values() {
        let v1: SubjectAccessReviewRequest = serde_json::from_str(
            r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice","groups":["a"],"extra":{"k":null},"resourceAttributes":{"verb":"get","resource":"pods","namespace":null}}}"#,
        )
        .unwrap();
        assert_eq!(v1.spec.all_groups(), ["a".to_string()]);
        assert_eq!(v1.spec.extra.unwrap()["k"], Vec::<String>::new());
        let b: SubjectAccessReviewRequest = serde_json::from_str(
            r#"{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","spec":{"user":"alice","group":["b"],"nonResourceAttributes":{"verb":"get","path":"/api"}}}"#,
        )
        .unwrap();
        assert_eq!(b.spec.all_groups(), ["b".to_string()]);
        assert!(b.spec.extra.is_none());
    }

    #[test]
    fn answers_omit_empty_fields() {
        let r = SubjectAccessReviewResponse {
            type_meta: TypeMeta {
                api_version: AUTHORIZATION_V1BETA1.into(),
                kind: "SubjectAccessReview".into(),
            },
            status: SubjectAccessReviewStatus {
                allowed: false,
                ..Default::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","status":{"allowed":false}}"#
        );
    }
}
