//! The OpenStack Keystone v3 client: the few calls this project makes, written by hand.
//!
//! * [`KeystoneClient::validate_token`]: `GET /v3/auth/tokens?nocatalog`, the token validating
//!   itself (or a service identity's token), always with `OpenStack-Identity-Access-Rules: 1.0`.
//! * [`KeystoneClient::user_groups`]: `GET /v3/users/{id}/groups`, every page.
//! * [`KeystoneClient::issue_token`]: `POST /v3/auth/tokens` for application credentials,
//!   passwords and tokens.
//! * [`KeystoneClient::list_projects`] (`GET /v3/projects`) and
//!   [`KeystoneClient::list_role_assignments`]
//!   (`GET /v3/role_assignments?scope.project.id=..&include_names[&effective]`), with the
//!   service identity's token: the namespace sync's full resync.
//! * [`KeystoneClient::create_application_credential`]:
//!   `POST /v3/users/{id}/application_credentials` (the kubeconfig generator mints one).
//!
//! Requests ([`AuthRequest`], [`NewApplicationCredential`]) become their JSON bodies in one
//! place each (`to_body`, typed bodies of [`types`], golden-tested against Keystone's API
//! reference).
//!
//! Errors are typed ([`KeystoneError`]) because callers branch on them: a token Keystone refuses
//! is a plain "not authenticated", a Keystone that cannot be reached is an error that must not
//! be cached.

mod client;
mod error;
mod request;
pub mod types;

pub use client::{ClientSettings, KeystoneClient, ServiceAuth, normalize_url};
pub use error::KeystoneError;
pub use request::{AuthRequest, NewApplicationCredential, Scope, UserRef};
