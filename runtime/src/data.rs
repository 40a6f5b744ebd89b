//! Image classification data sets for training: files on disk (MNIST IDX, gzip-compressed or
//! raw; CIFAR-10 binary batches) or the MNIST subset embedded in the binary go in; a validated
//! [`Split`] comes out, each [`Dataset`] holding `N x C x H x W` pixels as `f32` in `[0, 1]` and
//! one `u8` class label per image. Every check (magic numbers, dimensions, file sizes against
//! their headers, label ranges, image/label counts) fails with a [`RuntimeError`] that names the
//! file and what is wrong; no input makes the parsers panic. Also the `--data` argument parser,
//! mini-batch gathering and random horizontal flips for CIFAR batches.

use crate::RuntimeError;
use flate2::read::MultiGzDecoder;
use rand::rngs::StdRng;
use rand::Rng;
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
/// Bytes of one CIFAR-10 record: a label byte and 3 x 32 x 32 pixel bytes.
pub const CIFAR_RECORD: usize = 1 + CIFAR_PIXELS;
const CIFAR_PIXELS: usize = 3 * 32 * 32;
/// Largest decompressed size accepted from a gzip file (full MNIST is 47 MB).
const MAX_DECOMPRESSED: u64 = 1 << 30;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Images and labels of one part (train or test) of a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n x channels x height x width` pixels in `[0, 1]`, row-major; callers rescale.
    pub images: Vec<f32>,
    /// One class per image, each `< classes`.
    pub labels: Vec<u8>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
}

impl Dataset {
    /// Number of `f32` values of one image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixels of image `i`, or `None` when `i >= n`.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let len = self.image_len();
        self.images
            .get(i.checked_mul(len)?..(i + 1).checked_mul(len)?)
    }

    /// How many images each class has (`classes` entries).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The first `k` images (all of them when `k >= n`), e.g. for short test runs.
    pub fn take(&self, k: usize) -> Dataset {
        let k = k.min(self.n).min(self.labels.len());
        let len = (k * self.image_len()).min(self.images.len());
        Dataset {
            images: self.images[..len].to_vec(),
            labels: self.labels[..k].to_vec(),
            n: k,
            ..*self
        }
    }
}

/// The train and test parts of a data set and where they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
    /// Human-readable origin, e.g. `MNIST from data/mnist` (for logs and run directories).
    pub source: String,
}

/// Where to take data from: the value of the CLI's `--data` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The MNIST subset compiled into the binary (`--data embedded`, or no `--data`).
    Embedded,
    /// A directory of MNIST IDX files (`--data mnist:DIR`).
    Mnist(PathBuf),
    /// A directory of CIFAR-10 binary batches (`--data cifar10:DIR`).
    Cifar10(PathBuf),
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Embedded => write!(f, "embedded"),
            DataSource::Mnist(p) => write!(f, "mnist:{}", p.display()),
            DataSource::Cifar10(p) => write!(f, "cifar10:{}", p.display()),
        }
    }
}

/// Parses the CLI's `--data` value: `mnist:DIR`, `cifar10:DIR` or `embedded`. The directory
/// must exist; the files in it are checked only by [`load`].
pub fn parse_data_arg(arg: &str) -> Result<DataSource, RuntimeError> {
    let arg = arg.trim();
    if arg.eq_ignore_ascii_case("embedded") {
        return Ok(DataSource::Embedded);
    }
    let Some((scheme, dir)) = arg.split_once(':') else {
        return Err(RuntimeError::Data(format!(
            "`--data {arg}`: expected `mnist:DIR`, `cifar10:DIR` or `embedded`"
        )));
    };
    let make: fn(PathBuf) -> DataSource = match scheme.to_ascii_lowercase().as_str() {
        "mnist" => DataSource::Mnist,
        "cifar10" | "cifar-10" => DataSource::Cifar10,
        _ => {
            return Err(RuntimeError::Data(format!(
                "`--data {arg}`: unknown data set `{scheme}`; expected `mnist:DIR` or `cifar10:DIR`"
            )))
        }
    };
    if dir.is_empty() {
        return Err(RuntimeError::Data(format!(
            "`--data {arg}`: missing directory after `{scheme}:`"
        )));
    }
    let path = PathBuf::from(dir);
    if !path.exists() {
        return Err(RuntimeError::Data(format!(
            "`--data {arg}`: directory {} does not exist",
            path.display()
        )));
    }
    if !path.is_dir() {
        return Err(RuntimeError::Data(format!(
            "`--data {arg}`: {} is not a directory",
            path.display()
        )));
    }
    Ok(make(path))
}

/// Loads the data set `src` names; `None` (no `--data`) means the embedded MNIST subset.
pub fn load(src: Option<&DataSource>) -> Result<Split, RuntimeError> {
    match src {
        None | Some(DataSource::Embedded) => embedded_mnist(),
        Some(DataSource::Mnist(dir)) => load_mnist(dir),
        Some(DataSource::Cifar10(dir)) => load_cifar10(dir),
    }
}

/// The data set a `--data` argument names (the embedded digits when absent), cut to its
/// first `limit` training samples (and `max(limit, 100)` test samples) when given.
pub fn load_arg(arg: Option<&str>, limit: Option<usize>) -> Result<Split, RuntimeError> {
    let src = arg.map(parse_data_arg).transpose()?;
    let mut split = load(src.as_ref())?;
    if let Some(k) = limit {
        split.train = split.train.take(k);
        split.test = split.test.take(k.max(100));
    }
    Ok(split)
}

/// Gathers the images and labels at `idx` (in that order) into one contiguous batch:
/// `idx.len() x C x H x W` pixels and `idx.len()` labels.
///
/// # Panics
/// When an index is `>= ds.n` (indices come from the training loop, not from user data).
pub fn batch(ds: &Dataset, idx: &[usize]) -> (Vec<f32>, Vec<u8>) {
    let len = ds.image_len();
    let mut images = Vec::with_capacity(idx.len() * len);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        assert!(i < ds.n, "batch index {i} out of range for {} images", ds.n);
        images.extend_from_slice(&ds.images[i * len..(i + 1) * len]);
        labels.push(ds.labels[i]);
    }
    (images, labels)
}

/// Flips each of the `n` images of a `n x c x h x w` batch left-right with probability `p`
/// (clamped to `[0, 1]`; NaN counts as 0), drawing one decision per image from `rng`. Only
/// whole images inside `images` are touched when it is shorter than `n * c * h * w`.
pub fn hflip_batch(
    images: &mut [f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    rng: &mut StdRng,
    p: f64,
) {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    let Some(len) = c.checked_mul(h).and_then(|v| v.checked_mul(w)) else {
        return;
    };
    if len == 0 || w < 2 {
        return;
    }
    for img in images.chunks_exact_mut(len).take(n) {
        if rng.gen_bool(p) {
            for row in img.chunks_exact_mut(w) {
                row.reverse();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MNIST
// ---------------------------------------------------------------------------------------------

const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Loads MNIST (or any IDX data set laid out the same way, e.g. Fashion-MNIST) from `dir`:
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, each raw or gzip-compressed (`.gz`; detected by its magic bytes).
pub fn load_mnist(dir: &Path) -> Result<Split, RuntimeError> {
    let [tri, trl, tei, tel] = MNIST_FILES.map(|base| find_idx_file(dir, base));
    let read = |p: Result<PathBuf, RuntimeError>| -> Result<(String, Vec<u8>), RuntimeError> {
        let p = p?;
        let bytes = std::fs::read(&p)
            .map_err(|e| RuntimeError::Io(format!("cannot read {}: {e}", p.display())))?;
        Ok((p.display().to_string(), bytes))
    };
    let (tri_name, tri_bytes) = read(tri)?;
    let (trl_name, trl_bytes) = read(trl)?;
    let (tei_name, tei_bytes) = read(tei)?;
    let (tel_name, tel_bytes) = read(tel)?;
    let train = parse_mnist(&tri_name, &tri_bytes, &trl_name, &trl_bytes)?;
    let test = parse_mnist(&tei_name, &tei_bytes, &tel_name, &tel_bytes)?;
    check_same_shape(&train, &test, &tri_name, &tei_name)?;
    Ok(Split {
        train,
        test,
        source: format!("MNIST from {}", dir.display()),
    })
}

/// The 10,000-digit MNIST subset compiled into the binary (8,000 train / 2,000 test; see
/// `runtime/data/mnist-10k/README.md` for its provenance).
pub fn embedded_mnist() -> Result<Split, RuntimeError> {
    const TRI: &[u8] = include_bytes!("../data/mnist-10k/train-images-idx3-ubyte.gz");
    const TRL: &[u8] = include_bytes!("../data/mnist-10k/train-labels-idx1-ubyte.gz");
    const TEI: &[u8] = include_bytes!("../data/mnist-10k/t10k-images-idx3-ubyte.gz");
    const TEL: &[u8] = include_bytes!("../data/mnist-10k/t10k-labels-idx1-ubyte.gz");
    let train = parse_mnist(
        "embedded train-images-idx3-ubyte.gz",
        TRI,
        "embedded train-labels-idx1-ubyte.gz",
        TRL,
    )?;
    let test = parse_mnist(
        "embedded t10k-images-idx3-ubyte.gz",
        TEI,
        "embedded t10k-labels-idx1-ubyte.gz",
        TEL,
    )?;
    Ok(Split {
        train,
        test,
        source: "embedded MNIST subset (8,000 train / 2,000 test)".to_string(),
    })
}

/// Parses one MNIST part from the bytes of its image file and its label file (each raw or
/// gzip-compressed). The names are only used in error messages.
pub fn parse_mnist(
    images_name: &str,
    images_bytes: &[u8],
    labels_name: &str,
    labels_bytes: &[u8],
) -> Result<Dataset, RuntimeError> {
    let img = maybe_gunzip(images_name, images_bytes)?;
    let (n, rows, cols, pixels) = parse_idx_images(images_name, &img)?;
    let lab = maybe_gunzip(labels_name, labels_bytes)?;
    let labels = parse_idx_labels(labels_name, &lab)?;
    if labels.len() != n {
        return Err(RuntimeError::Data(format!(
            "{labels_name} has {} labels but {images_name} has {n} images",
            labels.len()
        )));
    }
    Ok(Dataset {
        images: pixels.iter().map(|&b| b as f32 / 255.0).collect(),
        labels: labels.to_vec(),
        n,
        channels: 1,
        height: rows,
        width: cols,
        classes: 10,
    })
}

/// Finds `base`, `base.gz` or the dotted spelling some mirrors use (`train-images.idx3-ubyte`).
fn find_idx_file(dir: &Path, base: &str) -> Result<PathBuf, RuntimeError> {
    let dotted = base.replacen("-idx", ".idx", 1);
    let candidates = [
        base.to_string(),
        format!("{base}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    for c in &candidates {
        let p = dir.join(c);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(RuntimeError::Io(format!(
        "{}: missing MNIST file {base} (or {base}.gz)",
        dir.display()
    )))
}

/// Decompresses `bytes` when they start with the gzip magic, else borrows them.
fn maybe_gunzip<'a>(name: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, RuntimeError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            RuntimeError::Data(format!("{name}: gzip stream is corrupt or truncated ({e})"))
        })?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(RuntimeError::Data(format!(
            "{name}: decompresses to more than {MAX_DECOMPRESSED} bytes"
        )));
    }
    Ok(Cow::Owned(out))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

fn magic_hint(magic: u32) -> &'static str {
    match magic {
        IDX_IMAGES_MAGIC => " (this is an IDX image file)",
        IDX_LABELS_MAGIC => " (this is an IDX label file)",
        _ if magic >> 16 == 0 && matches!((magic >> 8) & 0xff, 0x08..=0x0e) => {
            " (an IDX file of another element type or number of dimensions)"
        }
        _ => " (not an IDX file)",
    }
}

/// `(n, rows, cols, pixels)` of an uncompressed IDX image file.
fn parse_idx_images<'a>(
    name: &str,
    bytes: &'a [u8],
) -> Result<(usize, usize, usize, &'a [u8]), RuntimeError> {
    let header = |what: &str| {
        RuntimeError::Data(format!(
            "{name}: file is truncated: {} bytes, shorter than the 16-byte IDX image header ({what})",
            bytes.len()
        ))
    };
    let magic = be_u32(bytes, 0).ok_or_else(|| header("magic number"))?;
    if magic != IDX_IMAGES_MAGIC {
        return Err(RuntimeError::Data(format!(
            "{name}: wrong magic number 0x{magic:08x}, expected 0x{IDX_IMAGES_MAGIC:08x} for an IDX image file{}",
            magic_hint(magic)
        )));
    }
    let n = be_u32(bytes, 4).ok_or_else(|| header("image count"))? as usize;
    let rows = be_u32(bytes, 8).ok_or_else(|| header("rows"))? as usize;
    let cols = be_u32(bytes, 12).ok_or_else(|| header("columns"))? as usize;
    if n == 0 {
        return Err(RuntimeError::Data(format!("{name}: header says 0 images")));
    }
    if rows == 0 || cols == 0 {
        return Err(RuntimeError::Data(format!(
            "{name}: header gives an empty image size {rows} x {cols}"
        )));
    }
    let expected = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .and_then(|v| v.checked_add(16));
    let Some(expected) = expected else {
        return Err(RuntimeError::Data(format!(
            "{name}: header dimensions {n} x {rows} x {cols} are too large"
        )));
    };
    check_size(name, bytes.len(), expected, || {
        format!("{n} images of {rows} x {cols}")
    })?;
    Ok((n, rows, cols, &bytes[16..]))
}

/// Labels of an uncompressed IDX label file, each checked to be in `0..=9`.
fn parse_idx_labels<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a [u8], RuntimeError> {
    let header = |what: &str| {
        RuntimeError::Data(format!(
            "{name}: file is truncated: {} bytes, shorter than the 8-byte IDX label header ({what})",
            bytes.len()
        ))
    };
    let magic = be_u32(bytes, 0).ok_or_else(|| header("magic number"))?;
    if magic != IDX_LABELS_MAGIC {
        return Err(RuntimeError::Data(format!(
            "{name}: wrong magic number 0x{magic:08x}, expected 0x{IDX_LABELS_MAGIC:08x} for an IDX label file{}",
            magic_hint(magic)
        )));
    }
    let n = be_u32(bytes, 4).ok_or_else(|| header("label count"))? as usize;
    if n == 0 {
        return Err(RuntimeError::Data(format!("{name}: header says 0 labels")));
    }
    let Some(expected) = n.checked_add(8) else {
        return Err(RuntimeError::Data(format!(
            "{name}: header label count {n} is too large"
        )));
    };
    check_size(name, bytes.len(), expected, || format!("{n} labels"))?;
    let labels = &bytes[8..];
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l > 9) {
        return Err(RuntimeError::Data(format!(
            "{name}: label {l} of item {i} is out of range (classes are 0-9)"
        )));
    }
    Ok(labels)
}

/// Fails unless a file of `actual` bytes has the `expected` size its header implies.
fn check_size(
    name: &str,
    actual: usize,
    expected: usize,
    what: impl Fn() -> String,
) -> Result<(), RuntimeError> {
    if actual < expected {
        Err(RuntimeError::Data(format!(
            "{name}: file is truncated: header says {}, which needs {expected} bytes, but the data has {actual} bytes",
            what()
        )))
    } else if actual > expected {
        Err(RuntimeError::Data(format!(
            "{name}: unexpected trailing data: header says {}, which needs {expected} bytes, but the data has {actual} bytes",
            what()
        )))
    } else {
        Ok(())
    }
}

fn check_same_shape(
    train: &Dataset,
    test: &Dataset,
    train_name: &str,
    test_name: &str,
) -> Result<(), RuntimeError> {
    let s = |d: &Dataset| (d.channels, d.height, d.width);
    if s(train) != s(test) {
        return Err(RuntimeError::Data(format!(
            "{test_name} holds {}x{}x{} images but {train_name} holds {}x{}x{}",
            test.channels, test.height, test.width, train.channels, train.height, train.width
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10
// ---------------------------------------------------------------------------------------------

/// Loads CIFAR-10 from `dir` (or its `cifar-10-batches-bin` subdirectory, as the official
/// archive unpacks): `data_batch_1.bin` to `data_batch_5.bin` for training and `test_batch.bin`
/// for testing. Each file holds records of a label byte and 3 x 32 x 32 pixel bytes (10,000
/// records in the official files; any positive multiple of 3,073 bytes is accepted).
pub fn load_cifar10(dir: &Path) -> Result<Split, RuntimeError> {
    let nested = dir.join("cifar-10-batches-bin");
    let base = if !dir.join("data_batch_1.bin").exists() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let read = |file: &str| -> Result<Dataset, RuntimeError> {
        let p = base.join(file);
        if !p.is_file() {
            return Err(RuntimeError::Io(format!(
                "{}: missing CIFAR-10 file {file}",
                base.display()
            )));
        }
        let bytes = std::fs::read(&p)
            .map_err(|e| RuntimeError::Io(format!("cannot read {}: {e}", p.display())))?;
        parse_cifar_batch(&p.display().to_string(), &bytes)
    };
    let mut train = read("data_batch_1.bin")?;
    for k in 2..=5 {
        let part = read(&format!("data_batch_{k}.bin"))?;
        train.images.extend_from_slice(&part.images);
        train.labels.extend_from_slice(&part.labels);
        train.n += part.n;
    }
    let test = read("test_batch.bin")?;
    Ok(Split {
        train,
        test,
        source: format!("CIFAR-10 from {}", base.display()),
    })
}

/// Parses one CIFAR-10 binary batch file (`name` is only used in error messages).
pub fn parse_cifar_batch(name: &str, bytes: &[u8]) -> Result<Dataset, RuntimeError> {
    if bytes.is_empty() {
        return Err(RuntimeError::Data(format!("{name}: file is empty")));
    }
    let (n, left_over) = (bytes.len() / CIFAR_RECORD, bytes.len() % CIFAR_RECORD);
    if left_over > 0 {
        return Err(RuntimeError::Data(format!(
            "{name}: size {} bytes is not a multiple of the {CIFAR_RECORD}-byte CIFAR-10 record \
             (1 label byte + 3072 pixel bytes): {n} whole records and {left_over} bytes left \
             over; the file is truncated or not a CIFAR-10 binary batch",
            bytes.len(),
        )));
    }
    let mut images = Vec::with_capacity(n * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        let l = rec[0];
        if l > 9 {
            return Err(RuntimeError::Data(format!(
                "{name}: label {l} of record {i} (byte offset {}) is out of range (classes are 0-9)",
                i * CIFAR_RECORD
            )));
        }
        labels.push(l);
        images.extend(rec[1..].iter().map(|&b| b as f32 / 255.0));
    }
    Ok(Dataset {
        images,
        labels,
        n,
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    })
}
