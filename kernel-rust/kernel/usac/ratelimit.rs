// SPDX-License-Identifier: GPL-2.0

//! A message rate limit (`struct ratelimit_state`).

use crate::memcg::GFP;
use kernel::alloc::KBox;
use kernel::bindings;
use kernel::ffi::c_int;

/// Allows `burst` messages per `seconds`.
///
/// # Invariants
///
/// The state was initialised by `ratelimit_state_init` and, boxed, never
/// moves (it embeds a spinlock).
pub(crate) struct RateLimit(KBox<bindings::ratelimit_state>);

impl RateLimit {
    /// A limit, or `None` when there is no memory for one.
    pub(crate) fn new(seconds: u32, burst: u32) -> Option<Self> {
        // SAFETY: plain data, initialised just below.
        let mut state = KBox::new(
            unsafe { core::mem::zeroed::<bindings::ratelimit_state>() },
            GFP,
        )
        .ok()?;
        let interval = c_int::try_from(u64::from(seconds) * u64::from(bindings::HZ)).ok()?;
        // SAFETY: the state is boxed, so the embedded lock does not move.
        unsafe {
            bindings::ratelimit_state_init(&mut *state, interval, c_int::try_from(burst).ok()?)
        };
        // INVARIANT: initialised above, and boxed.
        Some(Self(state))
    }

    /// True when one more message is allowed now.
    pub(crate) fn allows(&mut self) -> bool {
        // SAFETY: initialised (type invariant); the name is a static string.
        (unsafe { bindings::___ratelimit(&mut *self.0, c"usac".as_ptr().cast()) }) != 0
    }
}
