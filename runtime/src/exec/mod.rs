//! Execution of checked IR graphs on dfdx tensors: a graph, its parameters, an input batch, the
//! time values and a tape in; every node's value and the tape holding all backward ops out.
//!
//! `interp` is the graph interpreter ([`Exec`], [`Value`], [`Observer`]); `ode` the ODE
//! solvers it runs ODE blocks with (fixed-step Euler/RK4, adaptive Dormand-Prince, with
//! backpropagation through the accepted steps). The solvers take the right-hand side through a
//! trait of their own, so they do not depend on the interpreter. `fuse` plans which norms run
//! as one op with the activation and the convolution that alone read them (and runs a
//! norm-convolution pair); `operands` turns a node's parameters into tensors. Neither imports
//! the interpreter.

mod embed;
mod fuse;
mod interp;
mod ode;
mod operands;
mod tensors;

pub use embed::{fourier_of, pattern, sinusoidal, sinusoidal_of};
pub use interp::{Exec, Observer, Swap, Value};
