//! The kernel core's planner, compiled unchanged from the kernel tree so the
//! decisions the sync thread makes are tested in seconds on the host.

#[path = "../../../kernel-rust/kernel/usac/plan.rs"]
mod plan;

pub use plan::*;

#[cfg(test)]
mod tests;
