//! tdspec's compiler: `.tds` spec text in; an AST, a checked and typed IR with shapes and
//! parameter counts, and diagnostics out. It builds and tests without dfdx, so `check`, `lint`
//! and `explain` stay fast and GPU-free.

// Diagnostics are returned by value: they are created once per error, never on a hot path.
#![allow(clippy::result_large_err)]

pub mod accounting;
pub mod ast;
pub mod bias;
pub mod diagnostics;
pub mod emit;
pub mod fmt;
pub mod import;
pub mod ir;
pub mod lint;
pub mod sema;
pub mod syntax;
