//! The differential fuzzer: random architectures (depth 8 and more: convolutions with any
//! kernel, stride and padding including 0 and odd map sizes, 1x1 channel mixing, windowed and
//! global pooling, up- and down-sampling, residual sums, skip concatenation, attention, every
//! injection mode, every norm kind and grouping, chains of norms, nonlinearities, dropout) are
//! checked by sema, run by the executor (every node's shape must be the one sema inferred), and
//! their static accounting compared with the survival probe. Every spec is reproducible from
//! its seed: `FUZZ_SEED=N cargo test -p tdspec-runtime --test survival_fuzz one -- --nocapture`.
//! `cargo test` runs 200; the ignored `many` runs `FUZZ_COUNT` (default 10,000).

use dfdx::prelude::Cpu;
use dfdx::tensor::{NoneTape, TensorFromVec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tdspec_compiler::accounting::account;
use tdspec_compiler::ir::{Node, Shape};
use tdspec_compiler::sema::check_source;
use tdspec_runtime::exec::{Exec, Observer, Value};
use tdspec_runtime::params::{normal, Params};
use tdspec_runtime::survival::{measure_at_init, NormMeasure, ProbeSettings};

/// A random spec and the shape it tracks while generating.
struct Gen {
    rng: StdRng,
    c: usize,
    h: usize,
    w: usize,
    lines: Vec<String>,
    skips: Vec<(String, usize, usize, usize)>,
    default_per_group: usize,
}

impl Gen {
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.rng.gen_range(0..v.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// A norm valid for the current channel count.
    fn norm(&mut self) -> String {
        let c = self.c;
        match self.rng.gen_range(0..7) {
            6 => "layer(over = channels)".into(),
            0 => "instance".into(),
            1 => "batch".into(),
            2 => "layer".into(),
            3 => {
                let m = self.pick(&[1usize, 2, 4]);
                format!("group(per_group = {})", m.min(c))
            }
            4 => {
                let divisors: Vec<usize> = (1..=c).filter(|g| c.is_multiple_of(*g)).collect();
                let g = self.pick(&divisors);
                format!("group({g})")
            }
            _ => "norm".into(),
        }
    }

    fn conv(&mut self, allow_time: bool) -> String {
        let cout = self.pick(&[4usize, 8, 16, 32]);
        loop {
            let k = self.rng.gen_range(1..=5usize);
            let pad = self.rng.gen_range(0..=(k / 2 + 1));
            let stride = if self.chance(0.25) { 2 } else { 1 };
            if k > self.h + 2 * pad || k > self.w + 2 * pad {
                continue;
            }
            let ho = (self.h + 2 * pad - k) / stride + 1;
            let wo = (self.w + 2 * pad - k) / stride + 1;
            if ho < 1 || wo < 1 || ho > 24 || wo > 24 {
                continue;
            }
            let time = if allow_time && self.chance(0.2) {
                if self.chance(0.5) {
                    ", time = concat"
                } else {
                    ", time = concat(positional)"
                }
            } else {
                ""
            };
            self.c = cout;
            self.h = ho;
            self.w = wo;
            return format!("conv({cout}, k = {k}, stride = {stride}, pad = {pad}{time})");
        }
    }

    /// One pipeline stage, updating the tracked shape.
    fn stage(&mut self) -> String {
        loop {
            match self.rng.gen_range(0..11) {
                0 | 1 => return self.conv(true),
                2 => {
                    let c = self.pick(&[4usize, 8, 16, 32]);
                    self.c = c;
                    return format!("conv({c}, k = 1, pad = 0)");
                }
                3 if self.h >= 2 && self.w >= 2 => {
                    let k = self.rng.gen_range(2..=self.h.min(self.w).min(3));
                    let s = self.rng.gen_range(1..=k);
                    self.h = (self.h - k) / s + 1;
                    self.w = (self.w - k) / s + 1;
                    return format!("avgpool(k = {k}, stride = {s})");
                }
                4 if self.h <= 10 && self.w <= 10 => {
                    let f = self.pick(&[2usize, 3]);
                    self.h *= f;
                    self.w *= f;
                    return format!("upsample({f})");
                }
                5 if self.h >= 2 && self.w >= 2 => {
                    // Symmetric padding, or DDPM's and diffusers' zeros at the bottom and right.
                    if self.chance(0.5) {
                        self.h = self.h.div_ceil(2);
                        self.w = self.w.div_ceil(2);
                        return "downsample".into();
                    }
                    self.h /= 2;
                    self.w /= 2;
                    return "downsample(pad = 0)".into();
                }
                6 if self.c.is_multiple_of(self.default_per_group) => {
                    let heads = self.pick(&[1usize, 2]);
                    if self.c.is_multiple_of(heads) {
                        return format!("attention({heads})");
                    }
                }
                7 | 8 => return self.norm(),
                9 => return self.pick(&["relu", "silu", "tanh", "dropout(0.1)"]).into(),
                10 => return "scale_shift(e)".into(),
                _ => {}
            }
        }
    }

    fn statement(&mut self, i: usize) {
        match self.rng.gen_range(0..8) {
            0 => {
                let mode = if self.chance(0.3) { ", positional" } else { "" };
                self.lines.push(format!("h = h + inject(e{mode})"));
            }
            1 => {
                let k = self.pick(&[1usize, 3]);
                let c = self.c;
                let act = self.pick(&["", " | relu", " | norm"]);
                self.lines.push(format!(
                    "h = h + (h{act} | conv({c}, k = {k}, pad = {}))",
                    k / 2
                ));
            }
            2 => {
                let name = format!("s{i}");
                self.lines.push(format!("{name} = h"));
                self.skips.push((name, self.c, self.h, self.w));
            }
            3 => {
                let fits: Vec<usize> = (0..self.skips.len())
                    .filter(|&j| self.skips[j].2 == self.h && self.skips[j].3 == self.w)
                    .collect();
                if let Some(&j) = fits.first() {
                    let (name, c, _, _) = self.skips[j].clone();
                    self.lines.push(format!("h = concat(h, {name})"));
                    self.c += c;
                } else {
                    let s = self.stage();
                    self.lines.push(format!("h = h | {s}"));
                }
            }
            _ => {
                let n = self.rng.gen_range(1..=3);
                let stages: Vec<String> = (0..n).map(|_| self.stage()).collect();
                self.lines.push(format!("h = h | {}", stages.join(" | ")));
            }
        }
    }
}

/// The spec for a seed.
fn generate(seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let c0 = [1usize, 2, 4][rng.gen_range(0..3)];
    let h = rng.gen_range(3..=12usize);
    let w = if rng.gen_bool(0.7) {
        h
    } else {
        rng.gen_range(3..=12)
    };
    let per_group = [1usize, 2, 4][rng.gen_range(0..3)];
    let mut g = Gen {
        rng,
        c: c0,
        h,
        w,
        lines: Vec::new(),
        skips: Vec::new(),
        default_per_group: per_group,
    };
    let time = if g.chance(0.5) {
        "continuous, shared"
    } else {
        "step(1000), per_sample"
    };
    let mut embed = if g.chance(0.5) {
        "sinusoidal(16) | linear(16)"
    } else {
        "sinusoidal(16) | linear(16) | silu | linear(16)"
    };
    // Noise levels with Fourier features of log t, sometimes.
    let fourier = g.chance(0.25);
    let time = if fourier {
        embed = "fourier(16) | linear(16) | silu | linear(16)";
        "continuous(0.05, 20), per_sample"
    } else {
        time
    };
    // Start with a channel-mixing conv so every later op has at least 4 channels.
    let first = g.pick(&[4usize, 8, 16]);
    g.c = first;
    g.lines
        .push(format!("h = x | conv({first}, k = 1, pad = 0)"));
    let depth = g.rng.gen_range(8..=14);
    for i in 0..depth {
        g.statement(i);
    }
    if fourier && g.chance(0.3) {
        g.lines.push("h = h | divide_by_time".into());
    }
    let tail = if g.chance(0.15) {
        format!(
            " | avgpool | flatten | linear(8) | {}",
            g.pick(&["layer", "batch", "relu | layer"])
        )
    } else {
        String::new()
    };
    format!(
        "model fuzz {{\n input x: image[{c0}, {h}, {w}]\n time t: {time}\n norm = group(per_group = {per_group})\n embed e = {embed}\n {}\n return h{tail}\n}}\n",
        g.lines.join("\n ")
    )
}

/// Every node's runtime dims against the shape sema inferred.
struct Shapes {
    bad: Vec<String>,
}

impl Observer<Cpu> for Shapes {
    fn node(&mut self, path: &str, node: &Node, _: &[&Value<Cpu>], out: &Value<Cpu>) {
        let got: Vec<usize> = match out {
            Value::Image(t) => {
                let s = dfdx::shapes::HasShape::shape(t);
                vec![s.0, s.1, s.2, s.3]
            }
            Value::Vector(t) => {
                let s = dfdx::shapes::HasShape::shape(t);
                vec![s.0, s.1]
            }
            Value::Time(v) => vec![v.len()],
        };
        let want = match node.shape {
            Shape::Time => vec![3],
            s => s.dims(3),
        };
        if got != want {
            self.bad
                .push(format!("{path}: sema {want:?}, runtime {got:?}"));
        }
    }
}

/// What one seed gave: `None` when sema refused the spec.
fn check(seed: u64) -> Option<Result<usize, String>> {
    let src = generate(seed);
    let m = match check_source(&src) {
        Ok(mut v) => v.remove(0),
        Err(d) => {
            let codes: Vec<&str> = d.iter().map(|x| x.code.as_str()).collect();
            eprintln!("seed {seed}: sema refused ({codes:?})");
            return None;
        }
    };
    let dev = Cpu::default();
    let params = Params::init(&m, &dev, seed);
    let mut shapes = Shapes { bad: Vec::new() };
    let mut rng = StdRng::seed_from_u64(seed);
    let (c, h, w) = (m.input.channels, m.input.height, m.input.width);
    let x: Vec<f32> = (0..3 * c * h * w)
        .map(|_| normal(&mut rng) as f32)
        .collect();
    let mut ex = Exec::new(&params, true);
    ex.observer = Some(&mut shapes);
    if let Err(e) = ex.run(
        &m.graph,
        &[m.output],
        Value::Image(dev.tensor_from_vec(x, (3, c, h, w))),
        &[0.3, 0.5, 0.7],
        NoneTape,
    ) {
        return Some(Err(format!("seed {seed}: execution failed: {e}\n{src}")));
    }
    drop(ex);
    if !shapes.bad.is_empty() {
        return Some(Err(format!(
            "seed {seed}: shapes differ: {:?}\n{src}",
            shapes.bad
        )));
    }
    let acc = account(&m);
    let settings = ProbeSettings {
        batch: 4,
        seeds: (seed..seed + 16).collect(),
        pairs: vec![(0.2, 0.8)],
        target: None,
        input: None,
        vary_label: false,
    };
    let v: Vec<NormMeasure> = match measure_at_init(&m, &acc, &dev, &settings) {
        Ok(v) => v,
        Err(e) => return Some(Err(format!("seed {seed}: probe failed: {e}\n{src}"))),
    };
    let bad: Vec<String> = v
        .iter()
        .flat_map(|n| {
            std::iter::once(&n.total)
                .chain(n.origins.iter())
                .filter(|o| !o.agree)
                .map(move |o| format!("{} / {}: {}", n.node, o.site, o.why))
        })
        .collect();
    if bad.is_empty() {
        Some(Ok(v.len()))
    } else {
        Some(Err(format!("seed {seed}: disagree: {bad:#?}\n{src}")))
    }
}

fn run(first: u64, count: usize) {
    let (mut ok, mut refused, mut norms) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for seed in first..first + count as u64 {
        let r = std::panic::catch_unwind(|| check(seed))
            .unwrap_or_else(|_| Some(Err(format!("seed {seed}: panicked\n{}", generate(seed)))));
        match r {
            None => refused += 1,
            Some(Ok(n)) => {
                ok += 1;
                norms += n;
            }
            Some(Err(e)) => failures.push(e),
        }
    }
    let total = ok + failures.len();
    println!(
        "fuzz: {total} specs checked ({refused} refused by sema), {norms} norms; agreement {ok}/{total} ({:.2} %)",
        100.0 * ok as f64 / total.max(1) as f64
    );
    assert!(
        refused * 10 <= count,
        "the generator writes too many invalid specs: {refused}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn two_hundred_specs_agree() {
    run(1, 200);
}

#[test]
fn one() {
    if let Ok(s) = std::env::var("FUZZ_SEED") {
        let seed: u64 = s.parse().expect("FUZZ_SEED is a number");
        println!("{}", generate(seed));
        if let Some(Err(e)) = check(seed) {
            panic!("{e}");
        }
    }
}

#[test]
#[ignore]
fn many() {
    let n = std::env::var("FUZZ_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    run(1_000_000, n);
}

#[test]
fn dump() {
    if let Ok(s) = std::env::var("FUZZ_DUMP") {
        let seed: u64 = s.parse().expect("FUZZ_DUMP is a number");
        let src = generate(seed);
        let m = check_source(&src).unwrap().remove(0);
        let acc = account(&m);
        for (i, n) in m.graph.nodes.iter().enumerate() {
            println!("{i:3} {:20} {:40} {}", n.name, n.op.describe(), n.shape);
        }
        for n in &acc.norms {
            println!(
                "{} {:?}",
                n.node,
                n.origins
                    .iter()
                    .map(|o| (
                        acc.origins[o.origin].path.clone(),
                        o.prediction,
                        o.arrives_as.clone()
                    ))
                    .collect::<Vec<_>>()
            );
        }
        let dev = Cpu::default();
        let settings = ProbeSettings {
            batch: 4,
            seeds: vec![seed],
            pairs: vec![(0.2, 0.8)],
            target: None,
            input: None,
            vary_label: false,
        };
        let v = measure_at_init(&m, &acc, &dev, &settings).unwrap();
        for n in &v {
            println!(
                "{}: {:?}",
                n.node,
                n.origins
                    .iter()
                    .map(|o| (o.site.clone(), o.measured, o.why.clone()))
                    .collect::<Vec<_>>()
            );
        }
    }
}
