//! guixie's builder: realises derivations (guixie's or Nix's `.drv` files) in a rootless
//! namespace sandbox that sees only their declared inputs, and registers the outputs in the
//! local store. See `sandbox` for the isolation and `builder` for scheduling and outputs.

mod build_user;
pub mod builder;
pub mod container;
mod fetch;
pub mod import;
pub mod sandbox;
mod seccomp;
mod slirp;
#[cfg(target_arch = "x86_64")]
mod syscall_tracer;
mod terminal;

pub use builder::{BuildError, BuildEvent, BuildOptions, Builder, Realised};
