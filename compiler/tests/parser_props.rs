//! Property tests: parsing and checking never panic, on arbitrary text and on mutations of
//! the reference specs, and every span a diagnostic reports lies inside the input.

use proptest::prelude::*;
use tdspec_compiler::sema::check_source;

fn spec_texts() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("specs dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "tds"))
        .map(|e| std::fs::read_to_string(e.path()).expect("read spec"))
        .collect();
    v.sort();
    v
}

fn assert_spans_inside(src: &str) {
    if let Err(diags) = check_source(src) {
        assert!(!diags.is_empty(), "an error result carries diagnostics");
        for d in diags {
            for l in &d.labels {
                assert!(
                    l.span.start <= l.span.end && l.span.end <= src.len(),
                    "{d:?} outside {}",
                    src.len()
                );
                assert!(
                    src.is_char_boundary(l.span.start) && src.is_char_boundary(l.span.end),
                    "{d:?}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        assert_spans_inside(&s);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(prop_oneof![
        Just("model"), Just("m"), Just("{"), Just("}"), Just("("), Just(")"), Just("["), Just("]"),
        Just("|"), Just("+"), Just("="), Just(","), Just(":"), Just("input"), Just("x"), Just("image"),
        Just("time"), Just("t"), Just("continuous"), Just("conv3"), Just("64"), Just("norm"),
        Just("group"), Just("relu"), Just("return"), Just("block"), Just("embed"), Just("inject"),
        Just("\n"), Just("1e-3"), Just("as"), Just("#[allow(TD102)]"), Just("ode"), Just("unet"),
    ], 0..60)) {
        let s = tokens.join(" ");
        assert_spans_inside(&s);
    }

    #[test]
    fn mutated_specs_never_panic(idx in 0usize..64, cut in 0usize..4000, len in 0usize..40, insert in "\\PC{0,12}") {
        let specs = spec_texts();
        let src = &specs[idx % specs.len()];
        let mut start = cut.min(src.len());
        while !src.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(src.len());
        while !src.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &src[..start], insert, &src[end..]);
        assert_spans_inside(&mutated);
    }
}

#[test]
fn every_reference_spec_checks() {
    for s in spec_texts() {
        assert!(check_source(&s).is_ok(), "{s}");
    }
}
