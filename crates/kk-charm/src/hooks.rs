//! The hooks: each is observe → plan → apply. [`observe`](super::observe) reads the machine,
//! [`plan`](super::plan) decides (pure), [`apply`](super::apply) carries the plan out, all
//! over one [`Machine`]. Every hook is a reconcile: running it twice changes nothing the
//! second time.
//!
//! * `install`, `config-changed`, `upgrade-charm`, `start`, `update-status`, `leader-*` and
//!   the `kubernetes-master-relation-{created,joined,changed,departed}` hooks:
//!   [`plan::reconcile`] (bad options: [`plan::bad_options`]).
//! * `kubernetes-master-relation-broken`: [`plan::relation_broken`] (kube-apiserver options
//!   back).
//! * `stop`: [`plan::stop`]; `remove`: [`plan::remove`].

use anyhow::Result;

use super::apply::apply;
use super::hook_tools::Level;
use super::machine::Machine;
use super::observe::{self, Env};
use super::options;
use super::plan::{self, ENDPOINT};

/// Everything a hook needs besides the machine.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Where the hook runs (paths, charm directory, health timeout).
    pub env: Env,
    /// The event (`config-changed`).
    pub event: String,
}

/// The hook kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Make the machine what the options say.
    Reconcile,
    /// The principal is going.
    RelationBroken,
    /// `stop`.
    Stop,
    /// `remove`.
    Remove,
    /// An event the charm does not handle.
    Unhandled,
}

/// The hook an event runs.
pub fn hook_for(event: &str) -> Hook {
    match event {
        "install"
        | "config-changed"
        | "upgrade-charm"
        | "start"
        | "update-status"
        | "leader-elected"
        | "leader-settings-changed" => Hook::Reconcile,
        e if e.starts_with(&format!("{ENDPOINT}-relation-")) => {
            if e.ends_with("-broken") {
                Hook::RelationBroken
            } else {
                Hook::Reconcile
            }
        }
        "stop" => Hook::Stop,
        "remove" => Hook::Remove,
        _ => Hook::Unhandled,
    }
}

/// Runs the hook for `ctx.event` on `m`.
pub fn run(m: &dyn Machine, ctx: &Ctx) -> Result<()> {
    let env = &ctx.env;
    let actions = match hook_for(&ctx.event) {
        Hook::Reconcile => match options::validate(&m.tools().config()?) {
            Err(errors) => plan::bad_options(&errors),
            Ok(settings) => plan::reconcile(&observe::reconcile(m, env, &settings)?, &settings),
        },
        Hook::RelationBroken => plan::relation_broken(&observe::teardown(m, env)?),
        Hook::Stop => plan::stop(&observe::teardown(m, env)?),
        Hook::Remove => plan::remove(&observe::teardown(m, env)?),
        Hook::Unhandled => {
            m.tools().log(
                Level::Debug,
                &format!("no handler for event {:?}; nothing to do", ctx.event),
            );
            return Ok(());
        }
    };
    apply(m, &env.paths, &actions).map(drop)
}
