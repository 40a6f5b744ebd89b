//! An experiment plan: JSON text in, a typed [`Plan`] out. Unknown keys are errors, and every
//! error names the plan file and the field it is about (`groups[1].steps: invalid type ...`).

use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use tdspec_compiler::ir::Solver;

/// Groups of spec variants, trained and measured at every seed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The title of `summary.md`.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    pub groups: Vec<Group>,
}

/// Variants that share a task, data and budget.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Also the directory of its runs and the prefix of its plots.
    pub name: String,
    /// A paragraph for `summary.md`.
    #[serde(default)]
    pub about: String,
    /// `--data` (the embedded digits when absent).
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub epochs: Option<usize>,
    #[serde(default)]
    pub batch: Option<usize>,
    /// Test samples per evaluation.
    #[serde(default = "default_eval_samples")]
    pub eval_samples: usize,
    /// Evaluate the trained classifiers again with every ODE block on this solver, in the
    /// command-line form `dopri5:RTOL:ATOL`, `rk4:STEPS` or `euler:STEPS`.
    #[serde(default, deserialize_with = "solver")]
    pub adaptive_eval: Option<Solver>,
    /// Images generated for the Fréchet distance of denoisers (below 2 skips it).
    #[serde(default)]
    pub fd_samples: usize,
    /// DDIM steps per generated image.
    #[serde(default = "default_fd_steps")]
    pub fd_steps: usize,
    pub variants: Vec<Variant>,
}

/// One spec to train.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    pub spec: PathBuf,
}

fn default_name() -> String {
    "experiment".into()
}
fn default_seeds() -> Vec<u64> {
    vec![0]
}
fn default_eval_samples() -> usize {
    1000
}
fn default_fd_steps() -> usize {
    25
}

fn solver<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Solver>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Why a text is not a plan.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PlanError {
    /// The text is not JSON at all.
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// A field is unknown, missing or of the wrong kind; the message starts with its path.
    #[error("{0}")]
    Field(String),
}

impl Plan {
    /// Reads and checks the plan at `path`.
    pub fn read(path: &Path) -> Result<Plan, String> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        Plan::parse(&text).map_err(|e| match e {
            PlanError::NotJson(e) => format!("{shown} is not valid JSON: {e}"),
            PlanError::Field(e) => format!("{shown}: {e}"),
        })
    }

    /// Parses a plan from JSON text.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = serde_json::from_str(text).map_err(|e| {
            if !e.is_data() {
                return PlanError::NotJson(e.to_string());
            }
            PlanError::Field(match field_at(text, e.line(), e.column()) {
                Some(field) => format!("{field}: {e}"),
                None => e.to_string(),
            })
        })?;
        if plan.seeds.is_empty() {
            return Err(PlanError::Field(
                "seeds: the plan needs at least one seed".into(),
            ));
        }
        Ok(plan)
    }
}

/// The path of the JSON value that the 1-based `line` and `column` point into, such as
/// `groups[1].variants[0].spec`; `None` at the top level.
fn field_at(text: &str, line: usize, column: usize) -> Option<String> {
    let offset = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column;
    enum Level {
        Object(Option<String>),
        Array(usize),
    }
    let (mut stack, mut in_string, mut escaped) = (Vec::new(), false, false);
    let (mut current, mut last_string) = (String::new(), String::new());
    for c in text.get(..offset.min(text.len()))?.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    in_string = false;
                    last_string = std::mem::take(&mut current);
                }
                _ => current.push(c),
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push(Level::Object(None)),
            '[' => stack.push(Level::Array(0)),
            '}' | ']' => {
                stack.pop();
            }
            ':' => {
                if let Some(Level::Object(key)) = stack.last_mut() {
                    *key = Some(last_string.clone());
                }
            }
            ',' => match stack.last_mut() {
                Some(Level::Array(i)) => *i += 1,
                Some(Level::Object(key)) => *key = None,
                None => {}
            },
            _ => {}
        }
    }
    let mut path = String::new();
    for level in &stack {
        match level {
            Level::Object(Some(k)) if path.is_empty() => path.push_str(k),
            Level::Object(Some(k)) => path.push_str(&format!(".{k}")),
            Level::Object(None) => {}
            Level::Array(i) => path.push_str(&format!("[{i}]")),
        }
    }
    (!path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan with one group holding `group` fields and one variant holding `variant` fields.
    fn plan(group: &str, variant: &str) -> String {
        format!(
            r#"{{"name": "p", "seeds": [0, 1], "groups": [
                {{"name": "ode", {group},
                 "variants": [{{"name": "a"{variant}}}]}}]}}"#
        )
    }
    const GROUP: &str = r#""steps": 3, "adaptive_eval": "dopri5:1e-2:1e-2""#;
    const SPEC: &str = r#", "spec": "a.tds""#;

    #[test]
    fn a_plan_parses_with_defaults() {
        let p = Plan::parse(&plan(GROUP, SPEC)).expect("plan");
        assert_eq!(p.seeds, vec![0, 1]);
        let g = &p.groups[0];
        assert_eq!((g.steps, g.eval_samples, g.fd_steps), (Some(3), 1000, 25));
        assert_eq!(
            g.adaptive_eval,
            Some(Solver::Dopri5 {
                rtol: 1e-2,
                atol: 1e-2
            })
        );
        assert_eq!(g.variants[0].spec, PathBuf::from("a.tds"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Plan::parse(&plan(r#""steps": "x""#, SPEC))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("groups[0].steps: invalid type"), "{e}");
        let e = Plan::parse(&plan(r#""stepz": 3"#, SPEC))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `stepz`"), "{e}");
        let e = Plan::parse(&plan(r#""adaptive_eval": "dopri5(rtol = 1)""#, SPEC))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("groups[0].adaptive_eval: bad solver"), "{e}");
        let e = Plan::parse(&plan(GROUP, "")).unwrap_err().to_string();
        assert!(
            e.starts_with("groups[0].variants[0]") && e.contains("missing field `spec`"),
            "{e}"
        );
        let e = Plan::parse("{\"groups\": [").unwrap_err().to_string();
        assert!(e.starts_with("not valid JSON"), "{e}");
    }

    #[test]
    fn the_shipped_plans_parse() {
        for text in [
            include_str!("../../../experiments/plan.json"),
            include_str!("../../../experiments/plan_full.json"),
            include_str!("../../../tests/train_specs/tiny_plan.json"),
        ] {
            let p = Plan::parse(text).expect("plan");
            assert!(p.groups.iter().all(|g| !g.variants.is_empty()));
        }
    }
}
