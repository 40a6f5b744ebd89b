//! Rendering lives in the runtime crate ([`tdspec_runtime::render`]), where it is tested
//! against miette's own layout; the commands use it from here.

pub use tdspec_runtime::render::*;
