//! The rule registry: one file per rule, each declaring its [`Rule`] (code, name, default
//! severity, documentation and check) next to the check itself; [`RULES`] lists them. The
//! engine in `lint/mod.rs` runs the checks in this order, groups instances, applies
//! suppressions and severities, and computes fixes.

pub mod td101;
pub mod td102;
pub mod td103;
pub mod td104;
pub mod td105;
pub mod td106;
pub mod td107;
pub mod td108;
pub mod td109;

use super::rule::Rule;

/// Every rule, in code order.
pub const RULES: &[Rule] = &[
    td101::RULE,
    td102::RULE,
    td103::RULE,
    td104::RULE,
    td105::RULE,
    td106::RULE,
    td107::RULE,
    td108::RULE,
    td109::RULE,
];
