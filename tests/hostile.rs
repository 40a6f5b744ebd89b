//! The hostile-input corpus: spec text (mutations of a reference spec and crafted cases), data
//! files, checkpoints, run directories, input tensors, file-system oddities and flags. For
//! every case: the exit code is the one expected (for spec text, the one the library's own
//! `check_source` verdict implies), nothing panicked or aborted, the message names the cause
//! (an error code with a location for specs, the file or the flag otherwise), and no file
//! outside the command's declared outputs changed (every file of the scratch tree and the
//! repository's specs/ is hashed before and after).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use tdspec_compiler::sema::check_source;
use tdspec_runtime::params::write_safetensors;

fn run(dir: &Path, args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tdspec"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tdspec");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Every regular file under `roots`, by path, with a hash of its bytes and its mode.
fn snapshot(roots: &[&Path]) -> BTreeMap<PathBuf, u64> {
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, u64>) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), out);
                }
            }
        } else if meta.is_file() {
            let mut h = DefaultHasher::new();
            std::fs::read(p).unwrap_or_default().hash(&mut h);
            meta.permissions().readonly().hash(&mut h);
            out.insert(p.to_path_buf(), h.finish());
        } else {
            out.insert(p.to_path_buf(), 0);
        }
    }
    let mut out = BTreeMap::new();
    for r in roots {
        walk(r, &mut out);
    }
    out
}

struct Case {
    name: String,
    args: Vec<String>,
    /// The exit code expected.
    code: i32,
    /// A piece of the output that names the cause.
    says: String,
    /// Paths (relative to the scratch dir) the command may create or change.
    outputs: Vec<String>,
}

fn case(name: &str, args: &[&str], code: i32, says: &str) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        says: says.to_string(),
        outputs: Vec::new(),
    }
}

fn writes(mut c: Case, outputs: &[&str]) -> Case {
    c.outputs = outputs.iter().map(|s| s.to_string()).collect();
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Spec texts a hostile user writes: mutations of a reference spec and crafted ones.
fn hostile_specs() -> Vec<(String, String)> {
    let good = std::fs::read_to_string(root().join("specs/small_odenet_mnist.tds")).unwrap();
    let ddpm = std::fs::read_to_string(root().join("specs/small_ddpm_mnist.tds")).unwrap();
    let mut out = Vec::new();
    // Cut short anywhere.
    for k in 1..=12 {
        let at = good.len() * k / 13;
        let at = (0..=at).rev().find(|&i| good.is_char_boundary(i)).unwrap();
        out.push((format!("cut_{k}"), good[..at].to_string()));
    }
    // One character replaced by something that does not belong.
    for (k, junk) in ["@", "{", "}", "(", ")", "|", "=", ",", "\u{1b}", "é"]
        .iter()
        .enumerate()
    {
        let at = good.len() * (k + 1) / 11;
        let at = (0..=at).rev().find(|&i| good.is_char_boundary(i)).unwrap();
        let next = good[at..].chars().next().map_or(0, char::len_utf8);
        out.push((
            format!("junk_{k}"),
            format!("{}{junk}{}", &good[..at], &good[at + next..]),
        ));
    }
    // Numbers no model takes.
    for (k, v) in [
        "0",
        "-1",
        "1e400",
        "nan",
        "inf",
        "99999999999",
        "1.5",
        "28e0",
        "0x1c",
        "18446744073709551616",
    ]
    .iter()
    .enumerate()
    {
        out.push((
            format!("number_{k}"),
            good.replacen("28, 28", &format!("{v}, 28"), 1),
        ));
        out.push((
            format!("channels_{k}"),
            good.replacen("conv(", &format!("conv({v}, "), 1),
        ));
    }
    // Names.
    out.push((
        "long_name".into(),
        good.replace("features", &"f".repeat(70_000)),
    ));
    out.push(("unicode_name".into(), good.replace("features", "särskilda")));
    out.push(("keyword_name".into(), good.replace("features", "model")));
    out.push((
        "undefined_name".into(),
        good.replacen("features", "featurez", 1),
    ));
    // Whole files.
    out.push(("empty".into(), String::new()));
    out.push(("only_comment".into(), "// nothing here\n".into()));
    out.push(("bom".into(), format!("\u{feff}{good}")));
    out.push(("nul".into(), good.replacen('\n', "\0\n", 3)));
    out.push(("crlf".into(), good.replace('\n', "\r\n")));
    out.push(("tabs".into(), good.replace("    ", "\t")));
    out.push((
        "unclosed_comment".into(),
        format!("{good}\n/* never closed"),
    ));
    out.push((
        "deep_parens".into(),
        good.replacen(
            "linear(10)",
            &format!("linear({}10{})", "(".repeat(5000), ")".repeat(5000)),
            1,
        ),
    ));
    out.push(("two_models_one_name".into(), format!("{good}\n{good}")));
    out.push((
        "no_return".into(),
        good.lines()
            .filter(|l| !l.trim_start().starts_with("return"))
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    out.push(("no_input".into(), good.replacen("input", "// input", 1)));
    out.push(("no_time".into(), good.replacen("time ", "// time ", 1)));
    out.push((
        "twice_norm".into(),
        good.replacen("norm ", "norm = batch\n    norm ", 1),
    ));
    out.push((
        "ddpm_groups".into(),
        ddpm.replacen("group(", "group(7, ", 1),
    ));
    out.push((
        "ddpm_levels".into(),
        ddpm.replacen("mult = [1, 2]", "mult = [1, 2, 2, 2, 2, 2]", 1),
    ));
    out.push((
        "ddpm_attention".into(),
        ddpm.replacen("blocks = 1", "blocks = 1, attention = [3]", 1),
    ));
    out.push((
        "ddpm_heads".into(),
        ddpm.replacen("blocks = 1", "blocks = 1, head_dim = 7", 1),
    ));
    out.push((
        "ddpm_mid".into(),
        ddpm.replacen("blocks = 1", "blocks = 1, mid_attention = relu", 1),
    ));
    out.push((
        "ddpm_shift".into(),
        ddpm.replacen("sinusoidal(32)", "sinusoidal(32, shift = 16)", 1),
    ));
    out.push((
        "ddpm_period".into(),
        ddpm.replacen("sinusoidal(32)", "sinusoidal(32, max_period = 1)", 1),
    ));
    out.push((
        "ddpm_affine".into(),
        ddpm.replacen("norm as norm1", "instance(affine = maybe) as norm1", 1),
    ));
    out.push((
        "ddpm_recursion".into(),
        ddpm.replacen("return a +", "a = res(out)(a)\n        return a +", 1),
    ));
    out.push((
        "ddpm_steps".into(),
        ddpm.replacen("step(1000)", "step(0)", 1),
    ));
    out
}

#[test]
fn hostile_inputs_are_refused_cleanly() {
    let dir = std::env::temp_dir().join(format!("tdspec-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |p: &str| dir.join(p);
    let w = |p: &str, bytes: &[u8]| {
        if let Some(parent) = d(p).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(d(p), bytes).unwrap();
    };
    let mut cases: Vec<Case> = Vec::new();

    // Spec text: the expected exit code is the library's verdict on the same text.
    for (name, text) in hostile_specs() {
        let file = format!("specs/{name}.tds");
        w(&file, text.as_bytes());
        let valid = check_source(text.trim_start_matches('\u{feff}')).is_ok();
        let code = i32::from(!valid);
        let says = if valid { "" } else { "error" };
        cases.push(case(
            &format!("check {name}"),
            &["check", &file],
            code,
            says,
        ));
        cases.push(case(&format!("lint {name}"), &["lint", &file], code, ""));
    }

    // Fixtures: a finished run of each kind and good specs beside them.
    let odenet = std::fs::read_to_string(root().join("tests/train_specs/tiny_odenet.tds")).unwrap();
    let ddpm = std::fs::read_to_string(root().join("tests/train_specs/tiny_ddpm.tds")).unwrap();
    w("odenet.tds", odenet.as_bytes());
    w("ddpm.tds", ddpm.as_bytes());
    for (spec, out) in [("odenet.tds", "run_o"), ("ddpm.tds", "run_d")] {
        let args: Vec<String> = [
            "train",
            spec,
            "--steps",
            "1",
            "--batch",
            "4",
            "--limit-train",
            "16",
            "--eval-samples",
            "4",
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (code, text) = run(&dir, &args);
        assert_eq!(code, 0, "fixture {out}: {text}");
    }
    let ckpt = std::fs::read(d("run_o/checkpoint.safetensors")).unwrap();

    // Checkpoints.
    w("ck/empty.safetensors", b"");
    w("ck/five.safetensors", &ckpt[..5]);
    w("ck/trunc.safetensors", &ckpt[..ckpt.len() / 2]);
    w("ck/header_only.safetensors", &ckpt[..200.min(ckpt.len())]);
    w("ck/garbage.safetensors", &[0xAB; 4096]);
    w("ck/json.safetensors", b"{\"not\": \"safetensors\"}");
    let header = b"{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    let mut f16 = (header.len() as u64).to_le_bytes().to_vec();
    f16.extend_from_slice(header);
    f16.extend_from_slice(&[0, 0, 0, 0]);
    w("ck/f16.safetensors", &f16);
    write_safetensors(
        &d("ck/unknown.safetensors"),
        &[("nothing.weight".into(), vec![3], vec![1.0, 2.0, 3.0])],
        Default::default(),
    )
    .unwrap();
    let probe = |n: &str, file: &str, says: &str| {
        case(
            n,
            &["probe", "odenet.tds", "--checkpoint", file, "--seeds", "1"],
            2,
            says,
        )
    };
    for (n, says) in [
        ("empty", "ck/empty.safetensors"),
        ("five", "too short"),
        ("trunc", "truncated"),
        ("header_only", "ck/header_only.safetensors"),
        ("garbage", "not a safetensors file"),
        ("json", "not a safetensors file"),
        ("f16", "expected F32"),
        ("unknown", "is missing"),
    ] {
        cases.push(probe(
            &format!("probe checkpoint {n}"),
            &format!("ck/{n}.safetensors"),
            says,
        ));
        cases.push(case(
            &format!("run checkpoint {n}"),
            &[
                "run",
                "odenet.tds",
                "--checkpoint",
                &format!("ck/{n}.safetensors"),
                "--input",
                "in/good.safetensors",
                "-o",
                "out.safetensors",
            ],
            2,
            says,
        ));
    }
    cases.push(probe(
        "probe other model's checkpoint",
        "run_d/checkpoint.safetensors",
        "is missing",
    ));
    cases.push(probe(
        "probe missing checkpoint",
        "ck/none.safetensors",
        "ck/none.safetensors",
    ));
    cases.push(probe("probe directory as checkpoint", "ck", "ck"));

    // Input tensors for `run`.
    let x: Vec<f32> = vec![0.5; 2 * 28 * 28];
    let put = |p: &str, t: Vec<(String, Vec<usize>, Vec<f32>)>| {
        write_safetensors(&d(p), &t, Default::default()).unwrap();
    };
    std::fs::create_dir_all(d("in")).unwrap();
    put(
        "in/good.safetensors",
        vec![
            ("x".into(), vec![2, 1, 28, 28], x.clone()),
            ("t".into(), vec![2], vec![0.2, 0.8]),
        ],
    );
    put(
        "in/no_x.safetensors",
        vec![("t".into(), vec![2], vec![0.2, 0.8])],
    );
    put(
        "in/no_t.safetensors",
        vec![("x".into(), vec![2, 1, 28, 28], x.clone())],
    );
    put(
        "in/shape.safetensors",
        vec![
            ("x".into(), vec![2, 3, 28, 28], vec![0.5; 2 * 3 * 28 * 28]),
            ("t".into(), vec![2], vec![0.2, 0.8]),
        ],
    );
    let mut nan = x.clone();
    nan[7] = f32::NAN;
    put(
        "in/nan.safetensors",
        vec![
            ("x".into(), vec![2, 1, 28, 28], nan),
            ("t".into(), vec![2], vec![0.2, 0.8]),
        ],
    );
    put(
        "in/t_len.safetensors",
        vec![
            ("x".into(), vec![2, 1, 28, 28], x.clone()),
            ("t".into(), vec![3], vec![0.2, 0.8, 0.1]),
        ],
    );
    put(
        "in/t_frac.safetensors",
        vec![
            ("x".into(), vec![2, 1, 28, 28], x.clone()),
            ("t".into(), vec![2], vec![0.5, 3.0]),
        ],
    );
    put(
        "in/t_range.safetensors",
        vec![
            ("x".into(), vec![2, 1, 28, 28], x),
            ("t".into(), vec![2], vec![5.0, 1e9]),
        ],
    );
    let run_in = |n: &str, spec: &str, file: &str, code: i32, says: &str| {
        let c = case(
            n,
            &["run", spec, "--input", file, "-o", "out.safetensors"],
            code,
            says,
        );
        writes(c, &["out.safetensors"])
    };
    cases.push(run_in(
        "run good input",
        "odenet.tds",
        "in/good.safetensors",
        0,
        "y",
    ));
    cases.push(run_in(
        "run no x",
        "odenet.tds",
        "in/no_x.safetensors",
        2,
        "no tensor `x`",
    ));
    cases.push(run_in(
        "run no t",
        "odenet.tds",
        "in/no_t.safetensors",
        2,
        "no tensor `t`",
    ));
    cases.push(run_in(
        "run x shape",
        "odenet.tds",
        "in/shape.safetensors",
        2,
        "the model takes",
    ));
    cases.push(run_in(
        "run x nan",
        "odenet.tds",
        "in/nan.safetensors",
        2,
        "NaN",
    ));
    cases.push(run_in(
        "run t length",
        "odenet.tds",
        "in/t_len.safetensors",
        2,
        "one time per sample",
    ));
    cases.push(run_in(
        "run step t fractional",
        "ddpm.tds",
        "in/t_frac.safetensors",
        2,
        "integer steps",
    ));
    cases.push(run_in(
        "run step t range",
        "ddpm.tds",
        "in/t_range.safetensors",
        2,
        "integer steps",
    ));
    cases.push(run_in(
        "run missing input",
        "odenet.tds",
        "in/none.safetensors",
        2,
        "in/none.safetensors",
    ));

    // Data files.
    for (n, bytes) in [
        ("empty", Vec::new()),
        ("magic", vec![0u8, 0, 9, 9, 0, 0, 0, 1]),
        (
            "short",
            vec![
                0u8, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3,
            ],
        ),
    ] {
        let dd = format!("data_{n}");
        for f in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ] {
            w(&format!("{dd}/{f}"), &bytes);
        }
        let c = case(
            &format!("train data {n}"),
            &[
                "train",
                "odenet.tds",
                "--data",
                &format!("mnist:{dd}"),
                "--steps",
                "1",
                "--out",
                &format!("out_{n}"),
            ],
            2,
            "idx",
        );
        cases.push(c);
    }
    cases.push(case(
        "train data missing dir",
        &[
            "train",
            "odenet.tds",
            "--data",
            "mnist:nowhere",
            "--steps",
            "1",
            "--out",
            "out_x",
        ],
        2,
        "nowhere",
    ));
    cases.push(case(
        "train data kind",
        &[
            "train",
            "odenet.tds",
            "--data",
            "imagenet:x",
            "--steps",
            "1",
            "--out",
            "out_y",
        ],
        2,
        "imagenet",
    ));

    // Run directories.
    std::fs::create_dir_all(d("rd/empty")).unwrap();
    w("rd/no_ckpt/spec.tds", odenet.as_bytes());
    w("rd/bad_spec/spec.tds", b"model {");
    w("rd/bad_spec/checkpoint.safetensors", &ckpt);
    w("rd/bad_ckpt/spec.tds", odenet.as_bytes());
    w("rd/bad_ckpt/checkpoint.safetensors", &ckpt[..100]);
    let info = std::fs::read(d("run_o/run.json")).unwrap();
    w("rd/bad_ckpt/run.json", &info);
    w("rd/no_ckpt/run.json", &info);
    for (n, says) in [
        ("empty", "no spec.tds"),
        ("no_ckpt", "checkpoint.safetensors"),
        ("bad_spec", "E00"),
        ("bad_ckpt", "rd/bad_ckpt/checkpoint.safetensors"),
    ] {
        let r = format!("rd/{n}");
        cases.push(case(
            &format!("eval {n}"),
            &["eval", &r, "--samples", "4", "--fd-samples", "0"],
            if n == "bad_spec" { 1 } else { 2 },
            says,
        ));
        cases.push(case(
            &format!("sample {n}"),
            &["sample", &r, "--n", "1", "--steps", "1", "-o", "s.png"],
            if n == "bad_spec" { 1 } else { 2 },
            says,
        ));
        cases.push(case(
            &format!("resume {n}"),
            &["train", "--resume", &r, "--steps", "3"],
            if n == "bad_spec" { 1 } else { 2 },
            says,
        ));
    }
    cases.push(case(
        "eval a spec file",
        &["eval", "odenet.tds"],
        2,
        "spec.tds",
    ));
    cases.push(case("eval nothing", &["eval", "rd/none"], 2, "rd/none"));
    cases.push(case(
        "resume onto a finished target",
        &["train", "--resume", "run_o", "--steps", "0"],
        2,
        "trains nothing",
    ));
    cases.push(case(
        "new run over a run",
        &["train", "odenet.tds", "--steps", "1", "--out", "run_o"],
        2,
        "already holds a run",
    ));

    // Flags.
    let flag = |n: &str, args: &[&str], says: &str| case(n, args, 2, says);
    cases.push(flag(
        "train batch 0",
        &[
            "train",
            "odenet.tds",
            "--batch",
            "0",
            "--steps",
            "1",
            "--out",
            "f0",
        ],
        "--batch",
    ));
    cases.push(flag(
        "train batch 1",
        &[
            "train",
            "odenet.tds",
            "--batch",
            "1",
            "--steps",
            "1",
            "--out",
            "f1",
        ],
        "--batch",
    ));
    cases.push(flag(
        "train steps text",
        &["train", "odenet.tds", "--steps", "many"],
        "many",
    ));
    cases.push(flag(
        "train steps negative",
        &["train", "odenet.tds", "--steps", "-3"],
        "-3",
    ));
    cases.push(flag(
        "resume batch",
        &["train", "--resume", "run_o", "--batch", "8", "--steps", "3"],
        "--batch",
    ));
    cases.push(flag(
        "probe seeds 0",
        &["probe", "odenet.tds", "--seeds", "0"],
        "--seeds",
    ));
    cases.push(flag(
        "probe t0 nan",
        &["probe", "odenet.tds", "--t0", "nan", "--t1", "1"],
        "NaN",
    ));
    cases.push(flag(
        "probe t range",
        &["probe", "odenet.tds", "--t0", "0", "--t1", "50"],
        "50",
    ));
    cases.push(flag(
        "probe huge batch",
        &["probe", "odenet.tds", "--batch", "100000000"],
        "at most",
    ));
    cases.push(flag(
        "compile memory nan",
        &["compile", "odenet.tds", "--memory-limit", "NaN"],
        "NaN",
    ));
    cases.push(flag(
        "sample n 0",
        &["sample", "run_d", "--n", "0", "-o", "s.png"],
        "--n",
    ));
    cases.push(flag(
        "sample huge n",
        &["sample", "run_d", "--n", "100000000", "-o", "s.png"],
        "GiB",
    ));
    cases.push(flag(
        "sample steps",
        &[
            "sample", "run_d", "--n", "1", "--steps", "1000000", "-o", "s.png",
        ],
        "--steps",
    ));
    cases.push(flag(
        "sample a classifier",
        &["sample", "run_o", "--n", "1", "-o", "s.png"],
        "not a denoiser",
    ));
    cases.push(flag(
        "eval samples 0",
        &["eval", "run_o", "--samples", "0"],
        "--samples",
    ));
    cases.push(flag(
        "eval solver huge",
        &["eval", "run_o", "--solver", "euler:1000000000000"],
        "euler",
    ));
    cases.push(flag(
        "eval solver zero tol",
        &["eval", "run_o", "--solver", "dopri5:0:0"],
        "rtol",
    ));
    cases.push(flag(
        "eval solver word",
        &["eval", "run_o", "--solver", "magic"],
        "magic",
    ));
    cases.push(flag(
        "lint select bad",
        &["lint", "odenet.tds", "--select", "TD9999"],
        "TD9999",
    ));
    cases.push(flag(
        "lint format bad",
        &["lint", "odenet.tds", "--format", "yaml"],
        "yaml",
    ));
    cases.push(flag("explain unknown", &["explain", "TD999"], "TD999"));
    cases.push(flag(
        "emit target",
        &["emit", "odenet.tds", "--target", "jax", "-o", "pkg"],
        "jax",
    ));
    cases.push(flag(
        "demo batch 0",
        &["demo", "--batch", "0", "--out", "demo0"],
        "--batch",
    ));
    cases.push(flag("unknown command", &["frobnicate"], "frobnicate"));
    cases.push(flag(
        "unknown flag",
        &["check", "odenet.tds", "--frobnicate"],
        "--frobnicate",
    ));
    cases.push(flag(
        "import unknown source",
        &["import", "keras", "x.json"],
        "keras",
    ));

    // The file system.
    std::fs::create_dir_all(d("fs/dir.tds")).unwrap();
    w(
        "fs/ro.tds",
        odenet.replacen("group(4)", "group(8)", 1).as_bytes(),
    );
    let ro = d("fs/ro.tds");
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&ro, perm).unwrap();
    w("fs/notutf8.tds", &[0x6d, 0xff, 0xfe, 0x0a]);
    w("fs/existing/model.py", b"# mine\n");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(d("fs/missing.tds"), d("fs/dangling.tds")).unwrap();
        std::os::unix::fs::symlink("..", d("fs/loop")).unwrap();
        w("loop/sub/a.tds", odenet.as_bytes());
        std::os::unix::fs::symlink("..", d("loop/sub/up")).unwrap();
        std::os::unix::fs::symlink(".", d("loop/self")).unwrap();
        w("partial/a.tds", odenet.as_bytes());
        w("partial/c.tds", odenet.as_bytes());
        std::os::unix::fs::symlink(d("partial/missing.tds"), d("partial/b.tds")).unwrap();
    }
    cases.push(case(
        "check a missing file",
        &["check", "fs/none.tds"],
        2,
        "fs/none.tds",
    ));
    cases.push(case(
        "check a directory named .tds",
        &["check", "fs/dir.tds"],
        2,
        "fs/dir.tds",
    ));
    cases.push(case(
        "check not utf-8",
        &["check", "fs/notutf8.tds"],
        2,
        "not UTF-8",
    ));
    cases.push(case("check /dev/null", &["check", "/dev/null"], 1, "E005"));
    cases.push(case(
        "check a dangling link",
        &["check", "fs/dangling.tds"],
        2,
        "fs/dangling.tds",
    ));
    cases.push(case(
        "lint a tree with loops",
        &["lint", "loop"],
        0,
        "in 1 spec",
    ));
    cases.push(case(
        "lint the readable files of a tree beside an unreadable one",
        &["lint", "partial"],
        2,
        "in 2 specs",
    ));
    cases.push(case(
        "lint a tree with a dangling link",
        &["lint", "fs"],
        2,
        "fs/dangling.tds",
    ));
    cases.push(case(
        "fix a read-only spec",
        &["lint", "--fix", "--unsafe-fixes", "fs/ro.tds"],
        2,
        "read-only",
    ));
    cases.push(case(
        "emit into a non-empty dir",
        &["emit", "odenet.tds", "-o", "fs/existing"],
        2,
        "--force",
    ));
    cases.push(case(
        "import over a file",
        &[
            "import",
            "diffusers",
            &root()
                .join("tests/diffusers/ddpm-cifar10-32.config.json")
                .display()
                .to_string(),
            "-o",
            "odenet.tds",
        ],
        2,
        "exists",
    ));

    // The issue's own cases: an image too large to allocate, a 70,000-character name in every
    // command that prints tables, an endless input file, and a spec of 100,000 statements.
    let big = odenet.replacen("image[1, 28, 28]", "image[1, 16384, 16384]", 1);
    w("big.tds", big.as_bytes());
    let long = odenet.replace("stem", &"s".repeat(70_000));
    w("long.tds", long.as_bytes());
    for (n, args, code, says) in [
        ("probe a huge image", vec!["probe", "big.tds"], 2, "GiB"),
        (
            "train a huge image",
            vec!["train", "big.tds", "--steps", "1", "--out", "out_big"],
            2,
            "GiB",
        ),
        (
            "compile a huge image",
            vec!["compile", "big.tds"],
            1,
            "E302",
        ),
        (
            "check a long name",
            vec!["check", "long.tds"],
            0,
            "total parameters",
        ),
        (
            "compile a long name",
            vec!["compile", "long.tds", "--summary"],
            0,
            "parameter",
        ),
        (
            "probe a long name",
            vec!["probe", "long.tds", "--seeds", "1"],
            0,
            "agree",
        ),
        ("lint a long name", vec!["lint", "long.tds"], 0, "spec"),
        ("check /dev/zero", vec!["check", "/dev/zero"], 2, "MiB"),
    ] {
        cases.push(case(n, &args, code, says));
    }
    let many: String = std::iter::once("model many {\n    input x: image[1, 8, 8]\n    time t: continuous, shared\n    h = x | conv3(2)\n".to_string())
        .chain((0..100_000).map(|_| "    h = h | relu\n".to_string()))
        .chain(std::iter::once("    return h\n}\n".to_string()))
        .collect();
    w("many.tds", many.as_bytes());
    cases.push(case(
        "check 100,000 statements",
        &["check", "many.tds"],
        0,
        "total parameters",
    ));
    cases.push(case(
        "probe 100,000 statements",
        &["probe", "many.tds", "--seeds", "1"],
        0,
        "",
    ));

    let ddpm_config = root().join("tests/diffusers/ddpm-cifar10-32.config.json");
    cases.push(case(
        "import weights over a file",
        &[
            "import",
            "diffusers",
            &ddpm_config.display().to_string(),
            "--weights",
            "ck/garbage.safetensors",
            "--weights-out",
            "run_o/checkpoint.safetensors",
        ],
        2,
        "exists; pass --force",
    ));

    assert!(cases.len() >= 150, "the corpus has {} cases", cases.len());
    let specs = root().join("specs");
    let mut failures = Vec::new();
    for c in &cases {
        let before = snapshot(&[&dir, &specs]);
        let (code, text) = run(&dir, &c.args);
        let after = snapshot(&[&dir, &specs]);
        let mut why = Vec::new();
        if code != c.code {
            why.push(format!("exit {code}, expected {}", c.code));
        }
        if text.contains("panicked") || text.contains("RUST_BACKTRACE") || !(0..=2).contains(&code)
        {
            why.push("panicked or aborted".into());
        }
        if !text.contains(&c.says) {
            why.push(format!("does not say {:?}", c.says));
        }
        // A spec's errors name a code and a place.
        if c.args[0] == "check" && c.code == 1 && c.says == "error" {
            let placed = text.contains(".tds:") || text.contains("/dev/null");
            if !(text.contains("× ") && placed) {
                why.push("no located diagnostic".into());
            }
        }
        let allowed = |p: &Path| c.outputs.iter().any(|o| p.starts_with(dir.join(o)));
        for (p, h) in &before {
            if after.get(p) != Some(h) && !allowed(p) {
                why.push(format!("changed {}", p.display()));
            }
        }
        for p in after.keys() {
            if !before.contains_key(p) && !allowed(p) {
                why.push(format!("created {}", p.display()));
            }
        }
        if !why.is_empty() {
            let shown: String = text.chars().take(400).collect();
            failures.push(format!("{}: {}\n    {shown}", c.name, why.join("; ")));
        }
    }
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    let _ = std::fs::set_permissions(&ro, perm);
    println!("{} hostile cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
