//! tdspec's compiler: `.tds` spec text in; an AST, a checked and typed IR with shapes and
//! parameter counts, and diagnostics out. It builds and tests without dfdx, so `check`, `lint`
//! and `explain` stay fast and GPU-free.

pub mod ast;
pub mod diagnostics;
pub mod syntax;
pub mod ir;
pub mod sema;
