//! Snapshots of the PyTorch emitter's `model.py` for the reference specs (and `train.py` for
//! one diffusion and one ODE spec), so any change to the generated code shows in review.

use tdspec_compiler::emit::pytorch;
use tdspec_compiler::sema::check_source;
use tdspec_compiler::syntax::parse;

fn emitted(spec: &str, file: &str) -> String {
    let path = format!("{}/../specs/{spec}.tds", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("read spec");
    let ast = parse(&text).expect("spec parses");
    let models = check_source(&text).expect("spec checks");
    let files = pytorch::emit(&ast, &models[0], &text).expect("emits");
    files
        .into_iter()
        .find(|f| f.path == file)
        .map(|f| f.contents)
        .expect("file emitted")
}

macro_rules! model_snapshot {
    ($name:ident, $spec:literal) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(concat!("model_py_", $spec), emitted($spec, "model.py"));
        }
    };
}

model_snapshot!(odenet_mnist, "odenet_mnist");
model_snapshot!(odenet_mnist_positional, "odenet_mnist_positional");
model_snapshot!(odenet_mnist_batchnorm, "odenet_mnist_batchnorm");
model_snapshot!(small_odenet_mnist, "small_odenet_mnist");
model_snapshot!(ddpm_cifar10, "ddpm_cifar10");
model_snapshot!(ddpm_cifar10_bias, "ddpm_cifar10_bias");
model_snapshot!(adm_cifar10, "adm_cifar10");
model_snapshot!(small_ddpm_mnist, "small_ddpm_mnist");
model_snapshot!(small_ddpm_mnist_positional, "small_ddpm_mnist_positional");

#[test]
fn train_py_small_ddpm_mnist() {
    insta::assert_snapshot!(emitted("small_ddpm_mnist", "train.py"));
}

#[test]
fn train_py_odenet_mnist() {
    insta::assert_snapshot!(emitted("odenet_mnist", "train.py"));
}

#[test]
fn every_reference_spec_emits() {
    let dir = format!("{}/../specs", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).expect("specs dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tds") {
            let text = std::fs::read_to_string(&path).expect("read");
            let ast = parse(&text).expect("parses");
            for m in check_source(&text).expect("checks") {
                let files = pytorch::emit(&ast, &m, &text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let model = &files[0].contents;
                assert!(model.contains("def build_model():"), "{}", path.display());
                assert!(model.contains(&format!("PARAMETERS = {}", m.param_count())));
            }
        }
    }
}

fn emitted_src(text: &str) -> String {
    let ast = parse(text).expect("spec parses");
    let models = check_source(text).expect("spec checks");
    let files = pytorch::emit(&ast, &models[0], text).expect("emits");
    files[0].contents.clone()
}

#[test]
fn an_ode_function_is_named_after_its_block_wherever_it_is_called() {
    let py = emitted_src(
        "model m {
            input x: image[1, 8, 8]
            time  t: continuous, shared
            block f(h) {
                return h | conv3(8, time = concat) as c1 | tanh
            }
            block stage(h) {
                a = h | conv3(8) as pre
                return a | ode(f, solver = euler(steps = 2)) as solve
            }
            return x | conv3(8) | stage | conv3(1)
        }",
    );
    assert!(py.contains("class F(nn.Module):\n    \"\"\"`block f(h)`. The right-hand side"));
    assert!(py.contains("class FODE(F):"));
    assert!(py.contains("class Stage(nn.Module):"));
    assert!(py.contains("self.solve = FODE()"));
}

#[test]
fn a_block_of_block_calls_is_a_class_of_its_own() {
    let py = emitted_src(
        "model m {
            input x: image[2, 8, 8]
            time  t: continuous, shared
            block unit(out)(h) {
                return h | conv3(out) as c | relu
            }
            block twice(out)(h) {
                return h | unit(out) | unit(out)
            }
            y = x | twice(4) | twice(4)
            return y | conv3(2, time = concat(positional))
        }",
    );
    assert!(py.contains("class Twice(nn.Module):"), "{py}");
    assert!(py.contains("self.out = nn.Sequential(Unit("), "{py}");
    assert!(py.contains("self.y = nn.Sequential(Twice("), "{py}");
}
