//! Stable memory layout of the model_repo canister (virtual memories of the one `MemoryManager`,
//! which `ohms_ops::memory` owns):
//!
//! ```text
//!   id 0 .. 9   the operations layer: admins, audit log, pause and siblings (see ohms_ops::memory)
//!   id 10 ..    this canister's own structures, one named MemoryId each, declared below
//! ```
//! A retired id is never reused: it stays listed here, marked "abandoned, do not use".
