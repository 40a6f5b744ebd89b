//! Data loaders: the embedded MNIST subset, MNIST IDX files (raw and gzip) and CIFAR-10
//! batches written to temporary directories, every validation error, the `--data` parser,
//! batching and horizontal flips.

use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::io::Write;
use std::path::Path;
use tdspec_runtime::data::{
    batch, embedded_mnist, hflip_batch, load, load_cifar10, load_mnist, parse_data_arg, DataSource,
    Dataset,
};
use tdspec_runtime::RuntimeError;

fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend((0..n * rows * cols).map(|i| (i * 7 % 256) as u8));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x801u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a small valid MNIST directory (6 train, 3 test images of 4 x 3), gzipped or raw.
fn write_mnist(dir: &Path, gzip: bool) {
    let files = [
        ("train-images-idx3-ubyte", idx_images(6, 4, 3)),
        ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3, 9, 5])),
        ("t10k-images-idx3-ubyte", idx_images(3, 4, 3)),
        ("t10k-labels-idx1-ubyte", idx_labels(&[7, 8, 9])),
    ];
    for (name, bytes) in files {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn data_err(r: Result<impl std::fmt::Debug, RuntimeError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn check_dataset(ds: &Dataset) {
    assert_eq!(ds.images.len(), ds.n * ds.channels * ds.height * ds.width);
    assert_eq!(ds.labels.len(), ds.n);
    assert!(ds.labels.iter().all(|&l| (l as usize) < ds.classes));
    assert!(ds.images.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn embedded_mnist_has_the_documented_counts() {
    let split = embedded_mnist().unwrap();
    assert_eq!(
        split.source,
        "embedded MNIST subset (8,000 train / 2,000 test)"
    );
    for (ds, n) in [(&split.train, 8000), (&split.test, 2000)] {
        assert_eq!(ds.n, n);
        assert_eq!(
            (ds.channels, ds.height, ds.width, ds.classes),
            (1, 28, 28, 10)
        );
        check_dataset(ds);
        let counts = ds.class_counts();
        assert!(counts.iter().all(|&c| c > n / 20), "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), n);
    }
    // Real digits: dark background, some bright strokes.
    let img = split.train.image(0).unwrap();
    assert_eq!(img[0], 0.0);
    assert!(img.iter().any(|&v| v > 0.9));
    // `load(None)` is the embedded set.
    assert_eq!(load(None).unwrap(), split);
}

#[test]
fn embedded_files_match_loading_the_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    let from_dir = load_mnist(&dir).unwrap();
    let emb = embedded_mnist().unwrap();
    assert_eq!(from_dir.train, emb.train);
    assert_eq!(from_dir.test, emb.test);
}

#[test]
fn raw_and_gzip_mnist_load_the_same() {
    let raw = tempfile::tempdir().unwrap();
    let gzd = tempfile::tempdir().unwrap();
    write_mnist(raw.path(), false);
    write_mnist(gzd.path(), true);
    let a = load_mnist(raw.path()).unwrap();
    let b = load_mnist(gzd.path()).unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!((a.train.n, a.test.n), (6, 3));
    assert_eq!((a.train.height, a.train.width), (4, 3));
    assert_eq!(a.train.labels, vec![0, 1, 2, 3, 9, 5]);
    assert_eq!(a.train.images[1], 7.0 / 255.0);
    check_dataset(&a.train);
    assert!(a.source.contains(&raw.path().display().to_string()));
    let src = parse_data_arg(&format!("mnist:{}", gzd.path().display())).unwrap();
    assert_eq!(load(Some(&src)).unwrap().train, a.train);
}

#[test]
fn gzip_is_detected_by_magic_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false);
    // A gzip stream under the raw name still loads.
    let p = dir.path().join("train-labels-idx1-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, gz(&bytes)).unwrap();
    assert_eq!(load_mnist(dir.path()).unwrap().train.n, 6);
}

/// Replaces one file of a valid raw MNIST directory and returns the load error.
fn mnist_error_with(file: &str, bytes: Vec<u8>) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false);
    std::fs::write(dir.path().join(file), bytes).unwrap();
    let e = data_err(load_mnist(dir.path()));
    assert!(e.contains(file), "error does not name {file}: {e}");
    e
}

#[test]
fn truncated_images_name_expected_and_actual_size() {
    let mut bytes = idx_images(6, 4, 3);
    bytes.truncate(16 + 50);
    let e = mnist_error_with("train-images-idx3-ubyte", bytes);
    assert!(e.contains("truncated"), "{e}");
    assert!(e.contains("88 bytes") && e.contains("66 bytes"), "{e}");
    assert!(e.contains("6 images of 4 x 3"), "{e}");
}

#[test]
fn truncated_header_is_reported() {
    let e = mnist_error_with("t10k-images-idx3-ubyte", vec![0, 0, 8, 3, 0, 0]);
    assert!(e.contains("truncated") && e.contains("header"), "{e}");
    let e = mnist_error_with("t10k-labels-idx1-ubyte", vec![]);
    assert!(e.contains("truncated") && e.contains("0 bytes"), "{e}");
}

#[test]
fn truncated_gzip_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), true);
    let p = dir.path().join("train-images-idx3-ubyte.gz");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&p, bytes).unwrap();
    let e = data_err(load_mnist(dir.path()));
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
    assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
}

#[test]
fn trailing_data_is_reported() {
    let mut bytes = idx_labels(&[0, 1, 2, 3, 9, 5]);
    bytes.push(0);
    let e = mnist_error_with("train-labels-idx1-ubyte", bytes);
    assert!(e.contains("trailing data") && e.contains("15 bytes"), "{e}");
}

#[test]
fn wrong_magic_is_reported() {
    // Labels where images belong.
    let e = mnist_error_with("train-images-idx3-ubyte", idx_labels(&[1, 2]));
    assert!(e.contains("wrong magic number 0x00000801"), "{e}");
    assert!(e.contains("expected 0x00000803"), "{e}");
    assert!(e.contains("label file"), "{e}");
    // Images where labels belong.
    let e = mnist_error_with("t10k-labels-idx1-ubyte", idx_images(3, 4, 3));
    assert!(e.contains("wrong magic number 0x00000803"), "{e}");
    assert!(e.contains("expected 0x00000801"), "{e}");
    // Not an IDX file at all.
    let e = mnist_error_with("t10k-labels-idx1-ubyte", b"hello world!".to_vec());
    assert!(e.contains("not an IDX file"), "{e}");
}

#[test]
fn bad_label_is_reported() {
    let e = mnist_error_with("t10k-labels-idx1-ubyte", idx_labels(&[7, 10, 9]));
    assert!(e.contains("label 10 of item 1 is out of range"), "{e}");
}

#[test]
fn mismatched_counts_are_reported() {
    let e = mnist_error_with("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3]));
    assert!(e.contains("4 labels") && e.contains("6 images"), "{e}");
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn empty_and_oversized_headers_are_reported() {
    let e = mnist_error_with("train-images-idx3-ubyte", idx_images(0, 4, 3));
    assert!(e.contains("0 images"), "{e}");
    let e = mnist_error_with("train-images-idx3-ubyte", idx_images(2, 0, 3));
    assert!(e.contains("empty image size"), "{e}");
    let mut huge = Vec::new();
    for x in [0x803u32, u32::MAX, u32::MAX, u32::MAX] {
        huge.extend_from_slice(&x.to_be_bytes());
    }
    let e = mnist_error_with("train-images-idx3-ubyte", huge);
    assert!(e.contains("too large") || e.contains("truncated"), "{e}");
}

#[test]
fn train_and_test_shapes_must_agree() {
    let e = mnist_error_with("t10k-images-idx3-ubyte", idx_images(3, 3, 4));
    assert!(e.contains("1x3x4") && e.contains("1x4x3"), "{e}");
}

#[test]
fn missing_mnist_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let e = data_err(load_mnist(dir.path()));
    assert!(
        e.contains("missing MNIST file t10k-labels-idx1-ubyte"),
        "{e}"
    );
}

fn cifar_records(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        v.push(l);
        // Channel k of record i is filled with 10 * i + k.
        for k in 0..3u8 {
            v.extend_from_slice(&[10 * i as u8 + k; 1024]);
        }
    }
    v
}

fn write_cifar(dir: &Path) {
    for k in 1..=5u8 {
        let labels: Vec<u8> = (0..k).map(|i| (i + k) % 10).collect();
        std::fs::write(
            dir.join(format!("data_batch_{k}.bin")),
            cifar_records(&labels),
        )
        .unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_records(&[3, 4])).unwrap();
}

#[test]
fn cifar10_loads_synthetic_batches() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let split = load_cifar10(dir.path()).unwrap();
    assert_eq!(split.train.n, 1 + 2 + 3 + 4 + 5);
    assert_eq!(split.test.n, 2);
    for ds in [&split.train, &split.test] {
        assert_eq!(
            (ds.channels, ds.height, ds.width, ds.classes),
            (3, 32, 32, 10)
        );
        check_dataset(ds);
    }
    assert_eq!(split.train.labels[..3], [1, 2, 3]);
    assert_eq!(split.test.labels, vec![3, 4]);
    // Channel-major layout: record 1's green plane is 11 everywhere.
    let img = split.test.image(1).unwrap();
    assert_eq!(img[0], 10.0 / 255.0);
    assert_eq!(img[1024], 11.0 / 255.0);
    assert_eq!(img[3071], 12.0 / 255.0);
    let src = parse_data_arg(&format!("cifar10:{}", dir.path().display())).unwrap();
    assert_eq!(load(Some(&src)).unwrap(), split);
}

#[test]
fn cifar10_accepts_the_archive_subdirectory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    write_cifar(&sub);
    assert_eq!(load_cifar10(dir.path()).unwrap().test.n, 2);
}

#[test]
fn cifar10_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let p = dir.path().join("data_batch_2.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(3073 + 100);
    std::fs::write(&p, bytes).unwrap();
    let e = data_err(load_cifar10(dir.path()));
    assert!(e.contains("data_batch_2.bin"), "{e}");
    assert!(e.contains("not a multiple of the 3073-byte"), "{e}");
    assert!(e.contains("1 whole records and 100 bytes left over"), "{e}");

    write_cifar(dir.path());
    std::fs::write(dir.path().join("test_batch.bin"), cifar_records(&[3, 12])).unwrap();
    let e = data_err(load_cifar10(dir.path()));
    assert!(
        e.contains("test_batch.bin") && e.contains("label 12 of record 1"),
        "{e}"
    );

    write_cifar(dir.path());
    std::fs::write(dir.path().join("data_batch_4.bin"), b"").unwrap();
    let e = data_err(load_cifar10(dir.path()));
    assert!(e.contains("data_batch_4.bin") && e.contains("empty"), "{e}");

    std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
    let e = data_err(load_cifar10(dir.path()));
    assert!(e.contains("missing CIFAR-10 file data_batch_4.bin"), "{e}");
}

#[test]
fn data_argument_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    assert_eq!(
        parse_data_arg(&format!("mnist:{d}")).unwrap(),
        DataSource::Mnist(dir.path().to_path_buf())
    );
    assert_eq!(
        parse_data_arg(&format!("cifar10:{d}")).unwrap(),
        DataSource::Cifar10(dir.path().to_path_buf())
    );
    assert_eq!(parse_data_arg("embedded").unwrap(), DataSource::Embedded);
    assert_eq!(DataSource::Mnist("x".into()).to_string(), "mnist:x");

    let e = data_err(parse_data_arg(&format!("svhn:{d}")));
    assert!(e.contains("unknown data set `svhn`"), "{e}");
    let e = data_err(parse_data_arg("mnist:"));
    assert!(e.contains("missing directory"), "{e}");
    let e = data_err(parse_data_arg("mnist:/no/such/dir/tdspec"));
    assert!(e.contains("/no/such/dir/tdspec does not exist"), "{e}");
    let e = data_err(parse_data_arg("mnist"));
    assert!(e.contains("expected `mnist:DIR`"), "{e}");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let e = data_err(parse_data_arg(&format!("cifar10:{}", file.display())));
    assert!(e.contains("is not a directory"), "{e}");
}

fn tiny() -> Dataset {
    Dataset {
        images: (0..4 * 2 * 3).map(|v| v as f32).collect(),
        labels: vec![3, 1, 4, 1],
        n: 4,
        channels: 1,
        height: 2,
        width: 3,
        classes: 10,
    }
}

#[test]
fn batch_gathers_in_order() {
    let ds = tiny();
    let (x, y) = batch(&ds, &[2, 0, 2]);
    assert_eq!(y, vec![4, 3, 4]);
    assert_eq!(x.len(), 18);
    assert_eq!(x[..6], [12.0, 13.0, 14.0, 15.0, 16.0, 17.0]);
    assert_eq!(x[6..12], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let (x, y) = batch(&ds, &[]);
    assert!(x.is_empty() && y.is_empty());
    assert_eq!(ds.take(2).labels, vec![3, 1]);
    assert_eq!(ds.take(2).images.len(), 12);
    assert_eq!(ds.take(99), ds);
    assert!(ds.image(4).is_none());
}

#[test]
fn hflip_flips_rows_of_every_channel() {
    // 2 images, 2 channels, 2 x 3.
    let orig: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let mut x = orig.clone();
    let mut rng = StdRng::seed_from_u64(0);
    hflip_batch(&mut x, 2, 2, 2, 3, &mut rng, 1.0);
    assert_eq!(x[..6], [2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    assert_eq!(x[21..], [23.0, 22.0, 21.0]);
    // Flipping twice restores; p = 0 and NaN leave the batch alone.
    hflip_batch(&mut x, 2, 2, 2, 3, &mut rng, 1.0);
    assert_eq!(x, orig);
    hflip_batch(&mut x, 2, 2, 2, 3, &mut rng, 0.0);
    hflip_batch(&mut x, 2, 2, 2, 3, &mut rng, f64::NAN);
    assert_eq!(x, orig);
    // A short buffer and degenerate sizes do not panic.
    hflip_batch(&mut x[..7], 2, 2, 2, 3, &mut rng, 1.0);
    hflip_batch(&mut x, 5, 0, 2, 3, &mut rng, 7.0);
}

#[test]
fn hflip_is_random_and_seeded() {
    let (n, w) = (1000, 4);
    let base: Vec<f32> = (0..n * w).map(|i| (i % w) as f32).collect();
    let run = |seed| {
        let mut x = base.clone();
        hflip_batch(&mut x, n, 1, 1, w, &mut StdRng::seed_from_u64(seed), 0.5);
        x
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    let flipped = a.chunks(w).filter(|r| r[0] == 3.0).count();
    assert!((400..600).contains(&flipped), "{flipped}");
}
