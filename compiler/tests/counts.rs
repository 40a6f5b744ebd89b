use tdspec_compiler::sema::check_source;

fn count(path: &str) -> usize {
    let src =
        std::fs::read_to_string(format!("{}/../specs/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    match check_source(&src) {
        Ok(m) => m[0].param_count(),
        Err(d) => panic!("{path}: {d:#?}"),
    }
}

#[test]
fn odenet_mnist() {
    assert_eq!(count("odenet_mnist.tds"), 208_266);
}

#[test]
fn ddpm_cifar10() {
    assert_eq!(count("ddpm_cifar10.tds"), 35_746_307);
}
