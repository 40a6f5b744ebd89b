//! CLI integration tests: `tdspec check` on every reference spec (insta snapshots of the table)
//! and on every file of the error corpus (exit code 1, the expected code, a primary span that
//! covers the offending text, and a snapshot of the rendered diagnostics); `tdspec lint
//! --survival` in text and JSON.

mod common;
use common::tdspec;

use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tds"))
        .collect();
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("inside the repo")
        .display()
        .to_string()
}

#[test]
fn check_every_reference_spec() {
    let specs = files("specs");
    assert!(specs.len() >= 15, "reference specs missing");
    for spec in specs {
        let path = rel(&spec);
        let (code, stdout, stderr) = tdspec(&["check", &path]);
        assert_eq!(code, 0, "{path}: {stderr}");
        let stem = spec
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        insta::assert_snapshot!(format!("check_{stem}"), stdout);
    }
}

#[test]
fn reference_parameter_counts() {
    let expect = [
        ("specs/odenet_mnist.tds", 208_266u64),
        ("specs/odenet_cifar10.tds", 209_418),
        ("specs/ddpm_cifar10.tds", 35_746_307),
        ("specs/adm_cifar10.tds", 38_307_203),
    ];
    for (path, n) in expect {
        let (code, stdout, _) = tdspec(&["check", "--format", "json", path]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(v[0]["params"].as_u64(), Some(n), "{path}");
    }
    let (_, stdout, _) = tdspec(&["check", "--format", "json", "specs/odenet_mnist.tds"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let sections: Vec<(String, u64)> = v[0]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["params"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        sections,
        vec![
            ("stem".to_string(), 132_096),
            ("features".to_string(), 75_392),
            ("head".to_string(), 778)
        ]
    );
}

#[test]
fn check_directory_prints_every_model() {
    let (code, stdout, _) = tdspec(&["check", "specs"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.matches("total parameters").count(),
        files("specs").len()
    );
}

#[test]
fn error_corpus() {
    let errs = files("tests/errors");
    assert!(errs.len() >= 25, "the error corpus needs at least 25 cases");
    let mut codes = std::collections::BTreeSet::new();
    for f in errs {
        let path = rel(&f);
        let text = std::fs::read_to_string(&f).expect("read");
        let first = text.lines().next().unwrap_or("");
        let spec = first
            .strip_prefix("// expect: ")
            .unwrap_or_else(|| panic!("{path}: no expect line"));
        let (want_code, rest) = spec.split_once(' ').expect("code and span");
        let want_span = rest.trim().trim_matches('`');

        let (code, stdout, stderr) = tdspec(&["check", "--format", "json", &path]);
        assert_eq!(code, 1, "{path}: exit code, stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{path} panicked");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("json diagnostics");
        let d = &v[0];
        assert_eq!(d["code"].as_str(), Some(want_code), "{path}: {d}");
        let (s, e) = (
            d["byte_start"].as_u64().unwrap_or(0) as usize,
            d["byte_end"].as_u64().unwrap_or(0) as usize,
        );
        let covered = text.get(s..e).unwrap_or("");
        assert!(
            covered.contains(want_span),
            "{path}: primary span covers {covered:?}, expected it to cover {want_span:?}"
        );
        codes.insert(want_code.to_string());

        let (code, _, rendered) = tdspec(&["check", &path]);
        assert_eq!(code, 1);
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        insta::assert_snapshot!(format!("error_{stem}"), rendered);
    }
    assert!(codes.len() >= 20, "distinct error codes: {codes:?}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let (code, _, stderr) = tdspec(&["check", "does/not/exist.tds"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no such file"), "{stderr}");
    let (code, _, _) = tdspec(&["check"]);
    assert_eq!(code, 2);
    let (code, _, _) = tdspec(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn check_json_lists_layers_and_injections() {
    let (code, stdout, _) = tdspec(&["check", "--format", "json", "specs/small_ddpm_mnist.tds"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let inj = v[0]["injections"].as_array().expect("injections");
    assert_eq!(
        inj.len(),
        8,
        "one additive injection per residual block (2 down, 2 mid, 4 up)"
    );
    assert!(inj
        .iter()
        .all(|i| i["mode"] == "additive per-channel offset"));
    let layers = v[0]["layers"].as_array().expect("layers");
    assert!(layers.iter().any(|l| l["name"] == "down.0.res0.temb_proj"));
}

#[test]
fn lint_survival_states_the_accounting() {
    let (code, out, err) = tdspec(&["lint", "--survival", "specs/odenet_mnist.tds"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("from `features.0.conv1`: 0.599 (a per-channel offset with a zero-padding border structure); 0.5 per-channel constant + 0.099 zero-padding border"),
        "{out}"
    );
    let (code, out, err) = tdspec(&[
        "lint",
        "--survival",
        "--format",
        "json",
        "specs/odenet_mnist_batchnorm.tds",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    // The border-only finding carries its share as a number.
    let td109: Vec<&serde_json::Value> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "TD109")
        .collect();
    assert_eq!(td109.len(), 2, "{out}");
    let f = td109[0]["fraction"].as_f64().unwrap();
    let norms = v["survival"][0]["norms"].as_array().unwrap();
    let n2 = norms
        .iter()
        .find(|n| n["node"] == "features.0.norm2")
        .expect("norm2");
    let o = &n2["origins"][0];
    assert_eq!(o["site"], "features.0.conv1");
    assert_eq!(o["constant_part"].as_f64(), Some(0.0));
    let (p, b) = (
        o["predicted"].as_f64().unwrap(),
        o["border_part"].as_f64().unwrap(),
    );
    assert!((p - f).abs() < 1e-12 && (p - b).abs() < 1e-12, "{o}");
    // Where no number can be backed, none is stated.
    let n3 = norms
        .iter()
        .find(|n| n["node"] == "features.0.norm3")
        .expect("norm3");
    assert!(n3["origins"][0]["predicted"].is_null(), "{n3}");
    assert_eq!(n3["origins"][0]["prediction"]["kind"], "nonzero");
}

#[test]
fn run_evaluates_once_and_refuses_bad_tensors() {
    use tdspec_runtime::params::{read_safetensors, write_safetensors};
    let dir = std::env::temp_dir().join(format!("tdspec-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("m.tds");
    std::fs::write(
        &spec,
        "model m {\n input x: image[2, 4, 4]\n time t: step(10), per_sample\n norm = group(2)\n embed e = sinusoidal(8) | linear(8)\n h = x | conv3(4) | norm | silu\n return h + inject(e) | conv1(2)\n}\n",
    )
    .unwrap();
    let write = |name: &str, tensors: &[(&str, Vec<usize>, Vec<f32>)]| {
        let p = dir.join(name);
        let t: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
            .iter()
            .map(|(n, s, d)| (n.to_string(), s.clone(), d.clone()))
            .collect();
        write_safetensors(&p, &t, Default::default()).unwrap();
        p.display().to_string()
    };
    let x: (Vec<usize>, Vec<f32>) = (
        vec![3, 2, 4, 4],
        (0..96).map(|i| (i as f32 * 0.37).sin()).collect(),
    );
    let good = write(
        "in.safetensors",
        &[
            ("x", x.0.clone(), x.1.clone()),
            ("t", vec![3], vec![0.0, 4.0, 9.0]),
        ],
    );
    let out = dir.join("out.safetensors").display().to_string();
    let s = spec.display().to_string();
    let (code, stdout, err) = tdspec(&["run", &s, "--input", &good, "-o", &out]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("3 samples (initial weights)"), "{stdout}");
    let y = read_safetensors(std::path::Path::new(&out)).unwrap();
    assert_eq!(y.tensors["y"].0, vec![3, 2, 4, 4]);
    assert!(y.tensors["y"].1.iter().all(|v| v.is_finite()));
    // Each refusal names what is wrong; nothing is written.
    type Tensors = Vec<(&'static str, Vec<usize>, Vec<f32>)>;
    let cases: Vec<(&str, Tensors, &str)> = vec![
        (
            "no_t.safetensors",
            vec![("x", x.0.clone(), x.1.clone())],
            "no tensor `t`",
        ),
        (
            "shape.safetensors",
            vec![
                ("x", vec![3, 2, 2, 8], x.1.clone()),
                ("t", vec![3], vec![0.0; 3]),
            ],
            "the model takes [B, 2, 4, 4]",
        ),
        (
            "steps.safetensors",
            vec![
                ("x", x.0.clone(), x.1.clone()),
                ("t", vec![3], vec![0.0, 2.5, 12.0]),
            ],
            "integer steps 0..10",
        ),
    ];
    for (name, tensors, why) in cases {
        let p = write(name, &tensors);
        let o = dir.join(format!("{name}.out")).display().to_string();
        let (code, _, err) = tdspec(&["run", &s, "--input", &p, "-o", &o]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(!std::path::Path::new(&o).exists(), "{name}: wrote output");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn identifiers_longer_than_the_formatter_pads_do_not_panic() {
    let text = std::fs::read_to_string("specs/small_odenet_mnist.tds").unwrap();
    let dir = std::env::temp_dir().join(format!("tdspec-longid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("id.tds");
    std::fs::write(&p, text.replace("features", &"f".repeat(70_000))).unwrap();
    let p = p.display().to_string();
    for args in [
        vec!["check", p.as_str()],
        vec!["compile", "--summary", p.as_str()],
        vec!["probe", "--seeds", "2", "--target", "0", p.as_str()],
    ] {
        let (code, out, err) = tdspec(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains(&"f".repeat(70_000)), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn endless_inputs_are_capped_and_a_byte_order_mark_is_accepted() {
    if std::path::Path::new("/dev/zero").exists() {
        let (code, _, err) = tdspec(&["check", "/dev/zero"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("larger than the 64 MiB a spec may have"),
            "{err}"
        );
    }
    let dir = std::env::temp_dir().join(format!("tdspec-bom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bom.tds");
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend(std::fs::read("specs/small_odenet_mnist.tds").unwrap());
    std::fs::write(&p, bytes).unwrap();
    let (code, out, err) = tdspec(&["check", &p.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("total parameters: 77,386"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn directory_walks_visit_each_file_once_and_follow_no_link_back() {
    let dir = std::env::temp_dir().join(format!("tdspec-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let a = dir.join("sub/a.tds");
    std::fs::copy("specs/small_odenet_mnist.tds", &a).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(".", dir.join("self")).unwrap();
    }
    let d = dir.display().to_string();
    let a = a.display().to_string();
    let (code, out, err) = tdspec(&["lint", &d, &a, &a]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("in 1 spec:"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fixes_respect_read_only_files_links_and_concurrent_edits() {
    let dir = std::env::temp_dir().join(format!("tdspec-fixsafe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let spec = std::fs::read_to_string("specs/small_ddpm_mnist.tds").unwrap();
    // Read-only: refused, unchanged.
    let ro = dir.join("ro.tds");
    std::fs::write(&ro, &spec).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&ro, perm).unwrap();
    let r = ro.display().to_string();
    let (code, _, err) = tdspec(&["lint", "--fix", "--unsafe-fixes", &r]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is read-only; it was not rewritten"), "{err}");
    assert_eq!(std::fs::read_to_string(&ro).unwrap(), spec);
    // A link: its target is fixed and the link stays a link.
    #[cfg(unix)]
    {
        let target = dir.join("target.tds");
        std::fs::write(&target, &spec).unwrap();
        let link = dir.join("link.tds");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let l = link.display().to_string();
        let (code, _, err) = tdspec(&["lint", "--fix", "--unsafe-fixes", &l]);
        assert!(code <= 1, "{err}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_ne!(
            std::fs::read_to_string(&target).unwrap(),
            spec,
            "target not fixed"
        );
    }
    // Someone else's edit since the read wins.
    let p = dir.join("edited.tds");
    std::fs::write(&p, &spec).unwrap();
    let e = tdspec_runtime::spec::write_atomically(&p, "what was read", "fixed text").unwrap_err();
    assert!(e.contains("changed while tdspec worked on it"), "{e}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), spec);
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    let _ = std::fs::set_permissions(&ro, perm);
    let _ = std::fs::remove_dir_all(&dir);
}
