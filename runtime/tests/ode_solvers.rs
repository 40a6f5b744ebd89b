//! ODE solvers against a known solution: `h' = a·h` (a 1x1 convolution whose weight is a·I)
//! integrated over [0, 1] must give `h(1) = e^a · h(0)`. Adaptive dopri5 meets its tolerance
//! with few evaluations; RK4 and Euler converge at their orders.

use dfdx::prelude::*;
use std::collections::HashMap;
use tdspec_compiler::sema::check_source;
use tdspec_runtime::exec::{Exec, Value};
use tdspec_runtime::params::Params;

/// Relative error of h(1) and the number of function evaluations.
fn solve(solver: &str, a: f32) -> (f64, usize) {
    let src = format!(
        "model lin {{ input x: image[2, 3, 3]  time t: continuous, shared
            block f(h) {{ return h | conv1(2) as lin }}
            return x | ode(f, t = [0, 1], solver = {solver}) as z }}"
    );
    let m = check_source(&src)
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .remove(0);
    let dev = Cpu::default();
    let mut params = Params::init(&m, &dev, 0);
    let mut named = HashMap::new();
    named.insert(
        "z.lin.weight".to_string(),
        (vec![2, 2, 1, 1], vec![a, 0.0, 0.0, a]),
    );
    named.insert("z.lin.bias".to_string(), (vec![2], vec![0.0, 0.0]));
    params.load_named(&named).expect("weights");
    let x: Vec<f32> = (0..2 * 2 * 9).map(|i| (i as f32 * 0.37).sin()).collect();
    let xt = dev.tensor_from_vec(x.clone(), (2usize, 2usize, 3usize, 3usize));
    let mut ex = Exec::new(&params, false);
    let (vals, _) = ex
        .run(
            &m.graph,
            &[m.output],
            Value::Image(xt),
            &[0.0, 0.0],
            NoneTape,
        )
        .expect("solve");
    let out = vals[m.output].as_ref().expect("out").to_vec();
    let k = (a as f64).exp();
    let num: f64 = out
        .iter()
        .zip(&x)
        .map(|(o, x0)| (*o as f64 - k * *x0 as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = x
        .iter()
        .map(|x0| (k * *x0 as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    (num / den, ex.nfe)
}

#[test]
fn dopri5_meets_its_tolerance() {
    for a in [-2.0f32, 0.5, 1.5] {
        let (err, nfe) = solve("dopri5(rtol = 1e-6, atol = 1e-8)", a);
        assert!(err < 1e-5, "a = {a}: relative error {err}");
        assert!(nfe < 200, "a = {a}: {nfe} evaluations");
        let (loose, loose_nfe) = solve("dopri5(rtol = 1e-2, atol = 1e-2)", a);
        assert!(loose < 5e-2, "a = {a}: loose error {loose}");
        assert!(
            loose_nfe < nfe,
            "looser tolerances take fewer steps ({loose_nfe} vs {nfe})"
        );
    }
}

#[test]
fn fixed_step_solvers_converge_at_their_order() {
    let (e1, n1) = solve("rk4(steps = 4)", 1.0);
    let (e2, _) = solve("rk4(steps = 8)", 1.0);
    assert_eq!(n1, 16, "RK4 evaluates 4 times per step");
    assert!(e1 < 1e-3, "rk4 error {e1}");
    // Fourth order: halving the step divides the error by about 16.
    assert!(e1 / e2 > 10.0, "rk4 ratio {}", e1 / e2);
    let (f1, _) = solve("euler(steps = 50)", 1.0);
    let (f2, _) = solve("euler(steps = 100)", 1.0);
    assert!((f1 / f2 - 2.0).abs() < 0.3, "euler ratio {}", f1 / f2);
}
