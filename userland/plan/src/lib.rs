//! The kernel core's planner (and the names it makes, and its ignore rules), compiled unchanged from the kernel
//! tree so the decisions the sync thread makes are tested in seconds on the host.

// Formatted by the kernel's rules (`make rustfmt`), not this workspace's.
#[rustfmt::skip]
#[path = "../../../kernel-rust/kernel/usac/plan.rs"]
mod plan;

#[rustfmt::skip]
#[path = "../../../kernel-rust/kernel/usac/naming.rs"]
mod naming;

#[rustfmt::skip]
#[path = "../../../kernel-rust/kernel/usac/ignore.rs"]
mod ignore;

#[rustfmt::skip]
#[path = "../../../kernel-rust/kernel/usac/record.rs"]
pub mod record;

pub use self::ignore::*;
pub use self::naming::*;
pub use self::plan::*;

#[cfg(test)]
mod ignore_tests;
#[cfg(test)]
mod tests;
