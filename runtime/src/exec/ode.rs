//! ODE solvers of ODE blocks: the initial state `[B, C, H, W]` carrying a tape, the time span,
//! the [`Solver`] and a right-hand side in; the state at `t1` with every accepted step's ops on
//! the tape out (backpropagation through the solver). Fixed-step Euler and RK4, and adaptive
//! Dormand-Prince 5(4), whose rejected trial steps are dropped with their own tape. The
//! right-hand side is anything that evaluates `f(t, h)` on a tape ([`OdeRhs`]); the interpreter
//! passes an ODE block's graph, so this module never sees a graph.

use crate::ops::{self, Kernels, Tensor4};
use crate::RuntimeError;
use dfdx::shapes::HasShape;
use dfdx::tensor::{Merge, NoneTape, PutTape, SplitTape, Tape};
use tdspec_compiler::ir::Solver;

type R<T> = Result<T, RuntimeError>;

/// The right-hand side `f(t, h)` of an ODE, recorded on whatever tape `h` carries.
pub(crate) trait OdeRhs<D: Kernels> {
    fn eval<T>(&mut self, h: Tensor4<D, T>, t: f32) -> R<Tensor4<D, T>>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default;
}

/// One solve: the right-hand side, the device that holds the adaptive solver's probe tensors, and
/// the most steps an adaptive solve may take.
pub(crate) struct Ode<'d, D, F> {
    pub rhs: F,
    pub dev: &'d D,
    pub max_steps: usize,
}

impl<D: Kernels, F: OdeRhs<D>> Ode<'_, D, F> {
    /// Integrates from `t0` to `t1` starting at `h` (on its tape); returns the final state and
    /// the tape. A solution that is not finite everywhere is an error.
    pub fn solve<T>(
        &mut self,
        mut h: Tensor4<D, T>,
        t0: f64,
        t1: f64,
        solver: Solver,
    ) -> R<(Tensor4<D>, T)>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        match solver {
            Solver::Euler { steps } | Solver::Rk4 { steps } => {
                let dt = (t1 - t0) / steps as f64;
                for i in 0..steps {
                    let t = t0 + dt * i as f64;
                    h = match solver {
                        Solver::Euler { .. } => {
                            let k = self.rhs.eval(h.retaped::<T>(), t as f32)?;
                            axpy(h, k, dt as f32)?
                        }
                        _ => self.rk4_step(h, t, dt)?,
                    };
                }
            }
            Solver::Dopri5 { rtol, atol } => {
                h = self.dopri5(h, t0, t1, rtol, atol)?;
            }
        }
        let (h, tape) = h.split_tape();
        if !h.as_vec().iter().all(|v| v.is_finite()) {
            return Err(RuntimeError::NonFinite("the ODE solution".into()));
        }
        Ok((h, tape))
    }

    fn rk4_step<T>(&mut self, h: Tensor4<D, T>, t: f64, dt: f64) -> R<Tensor4<D, T>>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        let (h, tape) = h.split_tape();
        let hd = || h.retaped::<T>();
        let k1 = self.rhs.eval(h.clone().put_tape(tape), t as f32)?;
        let (k1, tape) = k1.split_tape();
        let k2 = self.rhs.eval(
            axpy(
                h.clone().put_tape(tape),
                k1.retaped::<T>(),
                (dt / 2.0) as f32,
            )?,
            (t + dt / 2.0) as f32,
        )?;
        let (k2, tape) = k2.split_tape();
        let k3 = self.rhs.eval(
            axpy(
                h.clone().put_tape(tape),
                k2.retaped::<T>(),
                (dt / 2.0) as f32,
            )?,
            (t + dt / 2.0) as f32,
        )?;
        let (k3, tape) = k3.split_tape();
        let k4 = self.rhs.eval(
            axpy(h.clone().put_tape(tape), k3.retaped::<T>(), dt as f32)?,
            (t + dt) as f32,
        )?;
        let (k4, tape) = k4.split_tape();
        let sum = combine(
            hd(),
            &[
                (k1, dt / 6.0),
                (k2, dt / 3.0),
                (k3, dt / 3.0),
                (k4, dt / 6.0),
            ],
        )?;
        let (s, t2) = sum.split_tape();
        Ok(s.put_tape(tape.merge(t2)))
    }

    fn dopri5<T>(
        &mut self,
        h: Tensor4<D, T>,
        t0: f64,
        t1: f64,
        rtol: f64,
        atol: f64,
    ) -> R<Tensor4<D, T>>
    where
        T: Tape<f32, D> + Merge<T> + Merge<NoneTape> + Default,
    {
        // Dormand-Prince 5(4) tableau.
        const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
        const A: [[f64; 6]; 7] = [
            [0.0; 6],
            [0.2, 0.0, 0.0, 0.0, 0.0, 0.0],
            [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
            [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
            [
                19372.0 / 6561.0,
                -25360.0 / 2187.0,
                64448.0 / 6561.0,
                -212.0 / 729.0,
                0.0,
                0.0,
            ],
            [
                9017.0 / 3168.0,
                -355.0 / 33.0,
                46732.0 / 5247.0,
                49.0 / 176.0,
                -5103.0 / 18656.0,
                0.0,
            ],
            [
                35.0 / 384.0,
                0.0,
                500.0 / 1113.0,
                125.0 / 192.0,
                -2187.0 / 6784.0,
                11.0 / 84.0,
            ],
        ];
        const B5: [f64; 7] = [
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
            0.0,
        ];
        const B4: [f64; 7] = [
            5179.0 / 57600.0,
            0.0,
            7571.0 / 16695.0,
            393.0 / 640.0,
            -92097.0 / 339200.0,
            187.0 / 2100.0,
            1.0 / 40.0,
        ];
        let span = t1 - t0;
        let dir = span.signum();
        let (mut h, mut tape) = h.split_tape();
        let mut t = t0;
        // Initial step (Hairer, Nørsett & Wanner, II.4): from the sizes of y, f(y) and an
        // Euler-step estimate of f's change, aiming at a local error near the tolerance.
        let hv0 = h.as_vec();
        let k0 = self.rhs.eval(h.retaped::<NoneTape>(), t0 as f32)?.as_vec();
        let d0 = rms(&hv0, &hv0, rtol, atol, None);
        let d1 = rms(&k0, &hv0, rtol, atol, None);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span.abs());
        let y1: Vec<f32> = hv0
            .iter()
            .zip(&k0)
            .map(|(y, k)| y + (h0 * dir) as f32 * k)
            .collect();
        let y1t = self.dev.tensor_from_vec(y1, *h.shape());
        let k1 = self.rhs.eval(y1t, (t0 + h0 * dir) as f32)?.as_vec();
        let diff: Vec<f32> = k1.iter().zip(&k0).map(|(a, b)| a - b).collect();
        let d2 = rms(&diff, &hv0, rtol, atol, None) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        let mut dt = (100.0 * h0).min(h1);
        dt = dt.min(span.abs()) * dir;
        let mut steps = 0;
        while (t1 - t) * dir > 1e-12 * span.abs().max(1.0) {
            steps += 1;
            if steps > self.max_steps {
                return Err(RuntimeError::Solver(format!(
                    "dopri5 took more than {} steps (rtol {rtol}, atol {atol}); loosen the tolerances",
                    self.max_steps
                )));
            }
            if (t + dt - t1) * dir > 0.0 {
                dt = t1 - t;
            }
            // One trial step on its own tape; kept only if accepted.
            let mut step_tape = T::default();
            let mut ks: Vec<Tensor4<D>> = Vec::with_capacity(7);
            for s in 0..7 {
                let mut terms: Vec<(Tensor4<D>, f64)> = Vec::new();
                for (j, kj) in ks.iter().enumerate() {
                    if A[s][j] != 0.0 {
                        terms.push((kj.clone(), A[s][j] * dt));
                    }
                }
                let stage_in = combine(h.clone().put_tape(step_tape), &terms)?;
                let k = self.rhs.eval(stage_in, (t + C[s] * dt) as f32)?;
                let (k, tp) = k.split_tape();
                step_tape = tp;
                ks.push(k);
            }
            // 5th-order solution (FSAL: stage 7 input equals it) and error estimate.
            let terms5: Vec<(Tensor4<D>, f64)> = ks
                .iter()
                .zip(B5)
                .filter(|(_, b)| *b != 0.0)
                .map(|(k, b)| (k.clone(), b * dt))
                .collect();
            let y5 = combine(h.clone().put_tape(step_tape), &terms5)?;
            let (y5, step_tape) = y5.split_tape();
            let hv = h.as_vec();
            let y5v = y5.as_vec();
            let kv: Vec<Vec<f32>> = ks.iter().map(|k| k.as_vec()).collect();
            let mut err = vec![0.0f32; hv.len()];
            for (s, k) in kv.iter().enumerate() {
                let c = (B5[s] - B4[s]) * dt;
                if c != 0.0 {
                    for (e, kv) in err.iter_mut().zip(k) {
                        *e += (c as f32) * kv;
                    }
                }
            }
            let en = rms(&err, &hv, rtol, atol, Some(&y5v));
            if !en.is_finite() {
                return Err(RuntimeError::NonFinite(
                    "the ODE solver's error estimate".into(),
                ));
            }
            if en <= 1.0 {
                t += dt;
                h = y5;
                tape = tape.merge(step_tape);
            }
            let factor = if en == 0.0 {
                5.0
            } else {
                (0.9 * en.powf(-0.2)).clamp(0.2, 5.0)
            };
            dt *= factor;
            if dt.abs() < 1e-10 * span.abs() {
                return Err(RuntimeError::Solver(
                    "dopri5 step size underflow: the dynamics are too stiff".into(),
                ));
            }
        }
        Ok(h.put_tape(tape))
    }
}

/// RMS norm of `v` scaled by `atol + rtol * max(|y|, |y_new|)`.
fn rms(v: &[f32], y: &[f32], rtol: f64, atol: f64, y_new: Option<&[f32]>) -> f64 {
    let n = v.len().max(1) as f64;
    let mut s = 0.0;
    for i in 0..v.len() {
        let mut m = y[i].abs() as f64;
        if let Some(yn) = y_new {
            m = m.max(yn[i].abs() as f64);
        }
        let sc = atol + rtol * m;
        let r = v[i] as f64 / sc;
        s += r * r;
    }
    (s / n).sqrt()
}

/// `h + a * k`.
fn axpy<D: Kernels, T>(h: Tensor4<D, T>, k: Tensor4<D, T>, a: f32) -> R<Tensor4<D, T>>
where
    T: Tape<f32, D> + Merge<T>,
{
    ops::axpys(h, vec![(k, a)]).map_err(|e| RuntimeError::Op(e.to_string()))
}

/// `h + Σ c_i k_i` with tape-free `k_i`. Each `k_i` joins with an empty tape of `h`'s kind,
/// so the scaling is recorded and gradients reach `k_i` (a tape-free op records nothing).
fn combine<D: Kernels, T>(h: Tensor4<D, T>, terms: &[(Tensor4<D>, f64)]) -> R<Tensor4<D, T>>
where
    T: Tape<f32, D> + Merge<T> + Default,
{
    let terms = terms
        .iter()
        .map(|(k, c)| (k.retaped::<T>(), *c as f32))
        .collect();
    ops::axpys(h, terms).map_err(|e| RuntimeError::Op(e.to_string()))
}
