// SPDX-License-Identifier: GPL-2.0

//! File work relative to a held directory, as the sync thread needs it:
//! lookups, stat, listing, copying, and changes made under the parent's
//! lock the way the VFS expects. Every call runs with the credentials the
//! thread assumed, so the VFS checks each permission as for the caller.

use crate::inode::Inode;
use crate::memcg::GFP;
use crate::path::DirPath;
use crate::plan::{Entry, Kind, Time};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};
use kernel::alloc::{KVVec, KVec};
use kernel::bindings;
use kernel::error::{
    code::{EAGAIN, EEXIST, EINTR, EINVAL, EIO, EISDIR, ENOENT, ENOMEM, ENOTDIR, EXDEV},
    from_err_ptr, to_result, Error, Result,
};
use kernel::ffi::{c_char, c_int, c_uint, c_void};
use kernel::{c_str, str::CStr};

mod attrs;
mod copy;
mod file;
mod held;
mod listing;
mod names;

pub(crate) use attrs::*;
pub(crate) use copy::*;
pub(crate) use file::*;
pub(crate) use held::*;
pub(crate) use listing::*;
pub(crate) use names::*;
