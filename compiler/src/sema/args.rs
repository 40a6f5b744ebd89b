//! Argument binding: a call's positional and keyword arguments in, one slot per declared
//! parameter out, with errors for unknown keywords ("did you mean"), too many arguments,
//! duplicates and missing required arguments.

use crate::ast::{Call, Expr};
use crate::diagnostics::Diagnostic;

/// Binds `c`'s arguments to `names`; the first `required` names must be given. Returns `None`
/// after reporting when the arguments do not fit.
pub(super) fn bind<'e>(
    diags: &mut Vec<Diagnostic>,
    c: &'e Call,
    names: &[&str],
    required: usize,
) -> Option<Vec<Option<&'e Expr>>> {
    let mut slots: Vec<Option<&'e Expr>> = vec![None; names.len()];
    let mut ok = true;
    let mut positional = 0;
    let mut seen_keyword = false;
    for a in &c.args {
        match &a.name {
            None => {
                if seen_keyword {
                    diags.push(
                        Diagnostic::error("E105", "positional argument after a keyword argument")
                            .with_primary(a.span, "move this before the keyword arguments"),
                    );
                    ok = false;
                    continue;
                }
                if positional >= names.len() {
                    let sig = signature(&c.name.name, names, required);
                    diags.push(
                        Diagnostic::error(
                            "E105",
                            format!(
                                "`{}` takes {} argument{}, found {}",
                                c.name.name,
                                names.len(),
                                if names.len() == 1 { "" } else { "s" },
                                c.args.len()
                            ),
                        )
                        .with_primary(a.span, "unexpected argument")
                        .with_help(format!("the signature is `{sig}`")),
                    );
                    ok = false;
                    continue;
                }
                slots[positional] = Some(&a.value);
                positional += 1;
            }
            Some(k) => {
                seen_keyword = true;
                match names.iter().position(|n| *n == k.name) {
                    Some(i) => {
                        if slots[i].is_some() {
                            diags.push(
                                Diagnostic::error(
                                    "E109",
                                    format!("argument `{}` is given twice", k.name),
                                )
                                .with_primary(a.span, "duplicate argument"),
                            );
                            ok = false;
                        } else {
                            slots[i] = Some(&a.value);
                        }
                    }
                    None => {
                        diags.push(
                            Diagnostic::error(
                                "E103",
                                format!("`{}` has no argument named `{}`", c.name.name, k.name),
                            )
                            .with_primary(k.span, "unknown argument")
                            .suggest(&k.name, names.iter().copied())
                            .or_help(format!(
                                "the signature is `{}`",
                                signature(&c.name.name, names, required)
                            )),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    for (i, n) in names.iter().enumerate().take(required) {
        if slots[i].is_none() && ok {
            diags.push(
                Diagnostic::error(
                    "E105",
                    format!("`{}` needs the argument `{n}`", c.name.name),
                )
                .with_primary(c.span, format!("`{n}` is missing"))
                .with_help(format!(
                    "the signature is `{}`",
                    signature(&c.name.name, names, required)
                )),
            );
            ok = false;
        }
    }
    ok.then_some(slots)
}

fn signature(name: &str, names: &[&str], required: usize) -> String {
    let parts: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i < required {
                n.to_string()
            } else {
                format!("{n}=..")
            }
        })
        .collect();
    format!("{name}({})", parts.join(", "))
}
