//! Benchmark of the ops layer on the CPU: the three yardstick workloads of
//! `shared/bench/torch_reference.py bench` ([`tdspec_runtime::bench`]), forward + backward
//! repeatedly, median milliseconds per workload (`--json`: one JSON line). Run with
//! `cargo run --release -p tdspec-runtime --bin bench [-- --json] [NAME...]`; naming
//! `attention` adds the (non-yardstick) attention-core timings, fast kernel vs dfdx composed.

use dfdx::prelude::*;
use tdspec_runtime::bench::{extras, yardsticks};
use tdspec_runtime::ops::{self, OpsError};

fn main() -> Result<(), OpsError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    // Other arguments select workloads by substring (all yardsticks when none is given).
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if !args.iter().any(|a| a == "--no-keep-memory") {
        tdspec_runtime::alloc::configure();
    }
    ops::join_worker_pool();
    let dev = Cpu::default();
    let named = |name: &str| filters.iter().any(|f| name.contains(f.as_str()));
    let mut results = Vec::new();
    for (name, run) in yardsticks::<Cpu>() {
        if filters.is_empty() || named(name) {
            results.push((name, run(&dev)?));
        }
    }
    // Run only when named.
    for (name, run) in extras::<Cpu>() {
        if named(name) {
            results.push((name, run(&dev)?));
        }
    }
    let threads = rayon::current_num_threads();
    if json {
        let mut body: Vec<String> = Vec::new();
        for (k, t) in &results {
            body.push(format!("\"{k}\": {:.3}", t.wall_ms));
            if let Some(c) = t.cpu_ms {
                body.push(format!("\"{k}_cpu\": {c:.3}"));
            }
        }
        println!("{{{}, \"threads\": {threads}}}", body.join(", "));
    } else {
        for (k, t) in &results {
            match t.cpu_ms {
                Some(c) => println!("{k}: {:.3} ms (cpu {c:.3} ms)", t.wall_ms),
                None => println!("{k}: {:.3} ms", t.wall_ms),
            }
        }
        println!("threads: {threads}");
    }
    Ok(())
}
