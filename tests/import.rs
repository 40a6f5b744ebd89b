//! Models people already have: `tdspec import diffusers`, and `check`, `lint` (spans into the
//! JSON, JSON fixes), `run` and `train --init` on a diffusers `UNet2DModel` config.json. The
//! parameter counts are diffusers' own (0.42.1, `sum(p.numel() for p in model.parameters())`,
//! measured by the opt-in tests/diffusers_parity.rs, which also checks the outputs).

mod common;
use common::tdspec;
use std::path::{Path, PathBuf};

/// (config, diffusers' parameter count).
const COUNTS: &[(&str, u64)] = &[
    ("tests/diffusers/ddpm-cifar10-32.config.json", 35_746_307),
    (
        "tests/diffusers/butterflies-style-32.config.json",
        17_217_923,
    ),
    ("tests/diffusers/five-levels-32.config.json", 4_591_907),
    ("tests/diffusers/scale-shift-32.config.json", 1_884_483),
    ("tests/diffusers/relu-grey-16.config.json", 229_906),
    ("tests/diffusers/no-mid-attention-16.config.json", 287_651),
    ("tests/diffusers/learned-16.config.json", 178_449),
    ("tests/diffusers/fourier-16.config.json", 178_467),
    ("tests/diffusers/classes-16.config.json", 177_489),
];

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tdspec-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn params(path: &str) -> u64 {
    let (code, out, err) = tdspec(&["check", "--format", "json", path]);
    assert_eq!(code, 0, "{path}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["params"].as_u64().unwrap()
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> u64 {
    text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1
}

/// A writable copy of a config in `dir`.
fn copy(config: &str, dir: &Path) -> String {
    let to = dir.join(Path::new(config).file_name().unwrap());
    std::fs::write(&to, std::fs::read(config).unwrap()).unwrap();
    to.display().to_string()
}

#[test]
fn imported_specs_have_diffusers_counts_and_the_house_layout() {
    let dir = scratch("counts");
    for (config, count) in COUNTS {
        assert_eq!(params(config), *count, "{config} read as a config");
        let spec = dir.join("spec.tds").display().to_string();
        let (code, _, err) = tdspec(&["import", "diffusers", config, "-o", &spec, "--force"]);
        assert_eq!(code, 0, "{config}: {err}");
        assert_eq!(params(&spec), *count, "{config} imported");
        let text = std::fs::read_to_string(&spec).unwrap();
        let name = Path::new(config).file_name().unwrap().to_string_lossy();
        assert!(
            text.contains(&*name),
            "the header names the source:\n{text}"
        );
        assert!(text.contains("block res(out)(h)") && text.contains("unet(base = "));
        let (code, out, _) = tdspec(&["fmt", "--check", &spec]);
        assert_eq!(code, 0, "{config}: the imported spec is formatted: {out}");
    }
    // Defaults where keys are left out: the scale-shift middle attention has no norm.
    let (_, text, _) = tdspec(&[
        "import",
        "diffusers",
        "tests/diffusers/no-mid-attention-16.config.json",
    ]);
    assert!(text.contains("mid_attention = none"), "{text}");
    assert!(
        text.contains("sinusoidal(16, flip = true, shift = 0)"),
        "{text}"
    );
    let (_, text, _) = tdspec(&[
        "import",
        "diffusers",
        "tests/diffusers/scale-shift-32.config.json",
    ]);
    assert!(
        text.contains("down_attention = [16]") && text.contains("up_attention = [8]"),
        "{text}"
    );
    assert!(text.contains("mid_attention = attention(norm = none)"));
    // Fourier time: noise levels, frozen frequencies of diffusers' scale, the output over t.
    let (_, text, _) = tdspec(&[
        "import",
        "diffusers",
        "tests/diffusers/fourier-16.config.json",
    ]);
    for want in [
        "time  t: continuous(0.01, 1348), per_sample",
        "fourier(32, scale = 16)",
        "divide_by_time = true",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    assert!(
        !text.contains("task  denoise"),
        "no step task for noise levels:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_never_replaces_a_file_unasked() {
    let dir = scratch("exists");
    let spec = dir.join("mine.tds");
    std::fs::write(&spec, "// my own spec\n").unwrap();
    let s = spec.display().to_string();
    let config = "tests/diffusers/ddpm-cifar10-32.config.json";
    let (code, _, err) = tdspec(&["import", "diffusers", config, "-o", &s]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists; pass --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "// my own spec\n");
    let (code, _, err) = tdspec(&["import", "diffusers", config, "-o", &s, "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&spec)
        .unwrap()
        .contains("model ddpm_cifar10_32"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lint_of_a_config_points_at_its_keys_and_fixes_the_json() {
    let config = "tests/diffusers/butterflies-style-32.config.json";
    let text = std::fs::read_to_string(config).unwrap();
    let (code, out, err) = tdspec(&["lint", "--format", "json", config]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let diags = v.as_array().unwrap();
    assert!(!diags.is_empty());
    for d in diags {
        assert_eq!(d["code"], "TD102");
        assert_eq!(d["file"], config);
        let labels = d["labels"].as_array().unwrap();
        let at = |primary: bool| {
            labels
                .iter()
                .find(|l| l["primary"] == primary)
                .map(|l| l["line"].as_u64().unwrap())
        };
        assert_eq!(
            at(true),
            Some(line_of(&text, "\"resnet_time_scale_shift\""))
        );
        assert_eq!(at(false), Some(line_of(&text, "\"norm_num_groups\"")));
        let fix = &d["fix"];
        assert!(fix["description"]
            .as_str()
            .unwrap()
            .starts_with("set \"norm_num_groups\": "));
        let fraction = d["fraction"].as_f64().unwrap();
        assert!(fraction > 0.0 && fraction < 0.9);
    }
    // SARIF carries the same locations into the JSON.
    let (code, out, _) = tdspec(&["lint", "--format", "sarif", config]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let loc = &s["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], config);
    assert_eq!(
        loc["region"]["startLine"].as_u64(),
        Some(line_of(&text, "\"resnet_time_scale_shift\""))
    );

    // The fixes edit the JSON: the lint is then clean, the config still valid JSON with the
    // same keys, and the parameter count unchanged (fewer groups add no parameters).
    let dir = scratch("fix");
    let copy = copy(config, &dir);
    let (code, _, err) = tdspec(&["lint", "--fix", &copy]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), text, "withheld");
    let (code, out, err) = tdspec(&["lint", "--fix", "--unsafe-fixes", &copy]);
    assert_eq!(code, 0, "{err}");
    // The summary calls a config a config.
    assert!(out.contains("no findings in 1 config"), "{out}");
    let (_, out, _) = tdspec(&["lint", &copy, "specs/small_odenet_mnist.tds"]);
    assert!(out.contains("in 1 spec and 1 config:"), "{out}");
    let fixed = std::fs::read_to_string(&copy).unwrap();
    let before: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let after: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&fixed).unwrap();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert_eq!(after["norm_num_groups"], 4);
    let (_, out, _) = tdspec(&["lint", "--format", "json", &copy]);
    assert_eq!(out.trim(), "[]");
    assert_eq!(params(&copy), 17_217_923);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_finding_about_a_left_out_key_points_at_the_class_and_says_the_default() {
    let (code, out, _) = tdspec(&["lint", "tests/diffusers/ddpm-cifar10-32.config.json"]);
    assert_eq!(code, 0);
    assert!(out.contains("`resnet_time_scale_shift` is not set: diffusers' default is \"default\""));
    assert!(out.contains("\"_class_name\": \"UNet2DModel\""), "{out}");
    assert!(out.contains("set \"norm_num_groups\": 8"), "{out}");
}

#[test]
fn unsupported_configs_are_refused_whole_with_the_key() {
    let dir = scratch("refused");
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"_class_name": "UNet2DConditionModel", "sample_size": 64, "cross_attention_dim": 768}"#,
            "E402",
            "a \"UNet2DConditionModel\" config: tdspec imports diffusers' UNet2DModel configs",
        ),
        (
            r#"{"sample_size": 32, "time_embedding_type": "gaussian"}"#,
            "E401",
            "`time_embedding_type` = \"gaussian\" is not supported",
        ),
        (
            r#"{"sample_size": 32, "layers_per_blok": 2}"#,
            "E401",
            "unknown UNet2DModel option `layers_per_blok`",
        ),
        (
            r#"{"sample_size": 32, "layers_per_block": "two"}"#,
            "E403",
            "`layers_per_block` must be a positive whole number, found \"two\"",
        ),
        (
            r#"{"sample_size": 32, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"]}"#,
            "E401",
            "`down_block_types` = \"CrossAttnDownBlock2D\" is not supported",
        ),
        (
            r#"{"sample_size": 32, "num_class_embeds": 10, "class_embed_type": "timestep"}"#,
            "E401",
            "`class_embed_type` = \"timestep\" is not supported",
        ),
        (
            r#"{"in_channels": 3}"#,
            "E401",
            "the config sets no `sample_size`",
        ),
        (
            "{\n  \"sample_size\": 32,\n  \"in_channels\" 3\n}",
            "E403",
            "the config is not valid JSON",
        ),
        ("[1, 2]", "E403", "expected a JSON object"),
    ];
    for (i, (json, code, message)) in cases.iter().enumerate() {
        let config = dir.join(format!("case{i}.config.json"));
        std::fs::write(&config, json).unwrap();
        let c = config.display().to_string();
        for cmd in ["check", "lint"] {
            let (status, out, err) = tdspec(&[cmd, "--format", "json", &c]);
            assert_eq!(status, 1, "{cmd} {json}: {err}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let d = v.as_array().unwrap().first().unwrap().clone();
            assert_eq!(d["code"], *code, "{json}");
            assert!(
                d["message"].as_str().unwrap().contains(message),
                "{json}: {}",
                d["message"]
            );
            assert_eq!(d["file"], c.as_str());
        }
        let spec = dir.join(format!("case{i}.tds"));
        let s = spec.display().to_string();
        let (status, _, err) = tdspec(&["import", "diffusers", &c, "-o", &s]);
        assert_eq!(status, 1, "{json}");
        assert!(err.contains("nothing imported"), "{err}");
        assert!(!spec.exists(), "no partial import");
    }
    // The did-you-mean and the entry's span.
    let (_, _, err) = tdspec(&[
        "check",
        &dir.join("case2.config.json").display().to_string(),
    ]);
    assert!(err.contains("did you mean `layers_per_block`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small 28x28 grey UNet2DModel that trains on the embedded digits (a learned time table,
/// so its gradient is exercised too).
const DIGITS: &str = r#"{
  "_class_name": "UNet2DModel",
  "time_embedding_type": "learned",
  "num_train_timesteps": 1000,
  "block_out_channels": [16, 32],
  "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
  "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
  "in_channels": 1,
  "out_channels": 1,
  "layers_per_block": 1,
  "norm_num_groups": 8,
  "sample_size": 28
}"#;

#[test]
fn train_init_run_sample_and_probe_take_a_config() {
    let dir = scratch("digits");
    let config = dir.join("digits.config.json");
    std::fs::write(&config, DIGITS).unwrap();
    let c = config.display().to_string();
    let d = |f: &str| dir.join(f).display().to_string();
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            c.as_str(),
            "--steps",
            "2",
            "--batch",
            "4",
            "--limit-train",
            "32",
            "--eval-samples",
            "8",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        tdspec(&args)
    };
    let (code, _, err) = train(&d("a"), &[]);
    assert_eq!(code, 0, "{err}");
    // The run keeps the spec the config reads as.
    let kept = std::fs::read_to_string(dir.join("a/spec.tds")).unwrap();
    assert!(kept.contains("model digits"), "{kept}");
    let ckpt = d("a/checkpoint.safetensors");
    let (code, _, err) = train(&d("b"), &["--init", &ckpt]);
    assert_eq!(code, 0, "{err}");

    // Weights of another model are refused by name or shape before anything is written.
    let other = dir.join("other.config.json");
    std::fs::write(&other, DIGITS.replace("[16, 32]", "[8, 16]")).unwrap();
    let o = other.display().to_string();
    let (code, _, err) = tdspec(&[
        "train",
        &o,
        "--steps",
        "1",
        "--out",
        &d("c"),
        "--init",
        &ckpt,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shape") || err.contains("expects"), "{err}");
    assert!(!dir.join("c/run.json").exists());

    // One evaluation on given tensors, and sampling and probing from bare weights.
    let input = dir.join("input.safetensors");
    let x: Vec<f32> = (0..2 * 28 * 28)
        .map(|i| ((i % 7) as f32 - 3.0) / 3.0)
        .collect();
    tdspec_runtime::params::write_safetensors(
        &input,
        &[
            ("x".into(), vec![2, 1, 28, 28], x),
            ("t".into(), vec![2], vec![10.0, 900.0]),
        ],
        Default::default(),
    )
    .unwrap();
    let (code, _, err) = tdspec(&[
        "run",
        &c,
        "--checkpoint",
        &ckpt,
        "--input",
        &input.display().to_string(),
        "-o",
        &d("y.safetensors"),
    ]);
    assert_eq!(code, 0, "{err}");
    let y = tdspec_runtime::params::read_safetensors(&dir.join("y.safetensors")).unwrap();
    assert_eq!(y.tensors["y"].0, vec![2, 1, 28, 28]);
    let (code, _, err) = tdspec(&[
        "sample",
        &ckpt,
        "--spec",
        &c,
        "--n",
        "2",
        "--steps",
        "2",
        "-o",
        &d("grid.png"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("grid.png").exists());
    let (code, out, err) = tdspec(&[
        "probe",
        &c,
        "--checkpoint",
        &ckpt,
        "--seeds",
        "2",
        "--max-seeds",
        "2",
        "--format",
        "json",
    ]);
    assert!(code == 0 || code == 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.to_string().contains("norm2"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A class-conditional UNet2DModel (`num_class_embeds`): trained on the embedded digits with
/// their labels; `run` reads the labels beside x and t (and refuses a batch without them);
/// `sample --class` draws one class; the probe changes the label instead of t.
#[test]
fn a_class_conditional_config_trains_runs_samples_and_probes_its_label() {
    let dir = scratch("classes");
    let config = dir.join("digits.config.json");
    let json = DIGITS.replace(
        "\"time_embedding_type\": \"learned\",",
        "\"num_class_embeds\": 10,",
    );
    std::fs::write(&config, json).unwrap();
    let c = config.display().to_string();
    let d = |f: &str| dir.join(f).display().to_string();
    let (code, _, err) = tdspec(&[
        "train",
        &c,
        "--steps",
        "2",
        "--batch",
        "4",
        "--limit-train",
        "32",
        "--eval-samples",
        "8",
        "--out",
        &d("a"),
    ]);
    assert_eq!(code, 0, "{err}");
    let ckpt = d("a/checkpoint.safetensors");
    let x: Vec<f32> = (0..2 * 28 * 28)
        .map(|i| ((i % 5) as f32 - 2.0) / 2.0)
        .collect();
    let write = |name: &str, labels: Option<Vec<f32>>| {
        let mut t = vec![
            ("x".to_string(), vec![2, 1, 28, 28], x.clone()),
            ("t".to_string(), vec![2], vec![10.0, 900.0]),
        ];
        if let Some(l) = labels {
            t.push(("class_labels".to_string(), vec![2], l));
        }
        let p = dir.join(name);
        tdspec_runtime::params::write_safetensors(&p, &t, Default::default()).unwrap();
        p.display().to_string()
    };
    let run = |input: &str, out: &str| {
        tdspec(&[
            "run",
            &c,
            "--checkpoint",
            &ckpt,
            "--input",
            input,
            "-o",
            &d(out),
        ])
    };
    let (code, _, err) = run(&write("bare.safetensors", None), "y0.safetensors");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("class_labels"), "{err}");
    let (code, _, err) = run(
        &write("bad.safetensors", Some(vec![3.0, 10.0])),
        "y0.safetensors",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("0..10"), "{err}");
    // Different labels, different outputs.
    let (code, _, err) = run(
        &write("a.safetensors", Some(vec![3.0, 7.0])),
        "ya.safetensors",
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &write("b.safetensors", Some(vec![4.0, 7.0])),
        "yb.safetensors",
    );
    assert_eq!(code, 0, "{err}");
    let y = |f: &str| {
        tdspec_runtime::params::read_safetensors(&dir.join(f))
            .unwrap()
            .tensors["y"]
            .1
            .clone()
    };
    let (ya, yb) = (y("ya.safetensors"), y("yb.safetensors"));
    let per = 28 * 28;
    assert_ne!(
        ya[..per],
        yb[..per],
        "the label of sample 0 changes its output"
    );
    assert_eq!(ya[per..], yb[per..], "sample 1 kept its label");
    let sample = |class: &str| {
        tdspec(&[
            "sample",
            &ckpt,
            "--spec",
            &c,
            "--n",
            "2",
            "--steps",
            "2",
            "--class",
            class,
            "-o",
            &d("grid.png"),
        ])
    };
    let (code, _, err) = sample("3");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = sample("12");
    assert_ne!(code, 0);
    assert!(err.contains("0..10"), "{err}");
    let (code, out, err) = tdspec(&[
        "probe",
        &c,
        "--vary",
        "label",
        "--seeds",
        "2",
        "--max-seeds",
        "2",
        "--format",
        "json",
    ]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(out.contains("temb_proj"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
