//! The kubernetes-keystone charm's hook executable: the charm's `dispatch` (and every
//! `hooks/<event>` link) runs it; the event comes from `JUJU_DISPATCH_PATH` or the name it was
//! run as. Everything is in the library (`kubernetes_keystone::charm`).

fn main() -> std::process::ExitCode {
    kubernetes_keystone::charm::main()
}
