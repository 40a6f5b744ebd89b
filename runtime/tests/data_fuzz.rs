//! Property tests: no byte string makes the MNIST or CIFAR-10 parsers (or the `--data`
//! parser) panic, whether it is random, starts with the gzip magic, or carries a valid IDX
//! header over a random body.

use proptest::prelude::*;
use tdspec_runtime::data::{parse_cifar_batch, parse_data_arg, parse_mnist};

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mnist_parser_never_panics(a in proptest::collection::vec(any::<u8>(), 0..300),
                                 b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_mnist("a", &a, "b", &b);
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&a);
        let _ = parse_mnist("a", &gz, "b", &gz);
    }

    #[test]
    fn mnist_parser_with_valid_headers_never_panics(
        n in 0u32..6, rows in 0u32..5, cols in 0u32..5,
        body in proptest::collection::vec(any::<u8>(), 0..120),
        labels in proptest::collection::vec(any::<u8>(), 0..8),
        big in any::<[u32; 3]>(),
    ) {
        let mut img = header(0x803, &[n, rows, cols]);
        img.extend_from_slice(&body);
        let mut lab = header(0x801, &[labels.len() as u32]);
        lab.extend_from_slice(&labels);
        if let Ok(ds) = parse_mnist("img", &img, "lab", &lab) {
            prop_assert_eq!(ds.images.len(), ds.n * ds.height * ds.width);
            prop_assert!(ds.labels.iter().all(|&l| l < 10));
        }
        let _ = parse_mnist("img", &header(0x803, &big), "lab", &header(0x801, &big[..1]));
    }

    #[test]
    fn cifar_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..7000)) {
        if let Ok(ds) = parse_cifar_batch("c", &bytes) {
            prop_assert_eq!(ds.n * 3073, bytes.len());
        }
    }

    #[test]
    fn data_arg_parser_never_panics(s in ".{0,40}") {
        let _ = parse_data_arg(&s);
    }
}
