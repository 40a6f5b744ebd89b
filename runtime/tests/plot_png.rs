//! PNG figures: sample grids, line plots and bar charts decode with the expected size, colour
//! type and non-constant content; empty, NaN and infinite input does not panic; writes leave
//! no temporary files behind.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use tdspec_runtime::plot::{save_bars, save_curves, save_grid};

/// A named series as `save_curves` takes it.
type Series<'a> = (&'a str, &'a [(f64, f64)]);

/// Decodes `path`: (width, height, color type, pixel bytes).
fn decode(path: &Path) -> (u32, u32, png::ColorType, Vec<u8>) {
    let dec = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

fn distinct_colors(px: &[u8], ch: usize) -> usize {
    let mut set: Vec<&[u8]> = px.chunks(ch).collect();
    set.sort();
    set.dedup();
    set.len()
}

/// Only `names` are in `dir` (no leftover temporary files).
fn only_files(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

#[test]
fn grayscale_grid_has_gaps_and_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w) = (10, 28, 28);
    let images: Vec<f32> = (0..n * h * w).map(|i| (i % 97) as f32 / 96.0).collect();
    let p = dir.path().join("grid.png");
    save_grid(&p, &images, n, 1, h, w, 5).unwrap();
    let (gw, gh, ct, px) = decode(&p);
    assert_eq!((gw, gh), (5 * 29 + 1, 2 * 29 + 1));
    assert_eq!(ct, png::ColorType::Grayscale);
    assert_eq!(px[0], 128, "border is the gap colour");
    // Image 0's first pixel sits inside the 1-pixel border; value 0 -> black, 1/96 etc.
    assert_eq!(px[gw as usize + 1], 0);
    assert_eq!(px[gw as usize + 2], (255.0f32 / 96.0).round() as u8);
    assert!(distinct_colors(&px, 1) > 50);
    only_files(dir.path(), &["grid.png"]);
}

#[test]
fn rgb_grid_auto_columns_and_clamping() {
    let dir = tempfile::tempdir().unwrap();
    let (n, c, h, w) = (5, 3, 4, 6);
    let mut images: Vec<f32> = (0..n * c * h * w)
        .map(|i| (i % 7) as f32 / 3.0 - 1.0)
        .collect();
    images[0] = f32::NAN;
    images[1] = f32::INFINITY;
    // A nested output directory is created.
    let p = dir.path().join("sub/dir/rgb.png");
    save_grid(&p, &images, n, c, h, w, 0).unwrap();
    let (gw, gh, ct, px) = decode(&p);
    // 5 images -> 3 columns, 2 rows.
    assert_eq!((gw, gh), (3 * 7 + 1, 2 * 5 + 1));
    assert_eq!(ct, png::ColorType::Rgb);
    let first = (gw as usize + 1) * 3;
    assert_eq!(px[first], 0, "NaN draws black");
    assert_eq!(px[first + 3], 255, "infinity clamps to white");
    assert!(distinct_colors(&px, 3) > 3);
}

#[test]
fn grid_rejects_bad_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.png");
    let e = save_grid(&p, &[0.0; 10], 2, 1, 2, 2, 2).unwrap_err();
    assert!(
        e.to_string().contains("10 values given for 2 x 1 x 2 x 2"),
        "{e}"
    );
    let e = save_grid(&p, &[0.0; 8], 2, 2, 1, 2, 2).unwrap_err();
    assert!(e.to_string().contains("2 channels"), "{e}");
    let e = save_grid(&p, &[], 0, 1, 28, 28, 8).unwrap_err();
    assert!(e.to_string().contains("nothing to draw"), "{e}");
    let e = save_grid(&p, &[0.0; 4], 1, 1, 1, usize::MAX / 2, 1).unwrap_err();
    assert!(e.to_string().contains("values given"), "{e}");
    let e = save_grid(&p, &vec![0.0; 10_000], 1, 1, 1, 10_000, 1).unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    only_files(dir.path(), &[]);
}

#[test]
fn curves_draw_lines_in_distinct_colours() {
    let dir = tempfile::tempdir().unwrap();
    let loss: Vec<(f64, f64)> = (0..200)
        .map(|i| (i as f64, 2.3 * (-(i as f64) / 50.0).exp()))
        .collect();
    let acc: Vec<(f64, f64)> = (0..200)
        .map(|i| (i as f64, 1.0 - (-(i as f64) / 30.0).exp()))
        .collect();
    let p = dir.path().join("curves.png");
    save_curves(
        &p,
        "Loss and accuracy",
        &[("train loss", &loss), ("test acc", &acc)],
    )
    .unwrap();
    let (w, h, ct, px) = decode(&p);
    assert_eq!((w, h, ct), (800, 500, png::ColorType::Rgb));
    let count = |c: [u8; 3]| px.chunks(3).filter(|p| *p == c).count();
    // The two series' colours (tab10 blue and orange) both appear as lines.
    assert!(count([31, 119, 180]) > 300, "{}", count([31, 119, 180]));
    assert!(count([255, 127, 14]) > 300, "{}", count([255, 127, 14]));
    assert!(distinct_colors(&px, 3) >= 5);
    only_files(dir.path(), &["curves.png"]);
}

#[test]
fn curves_survive_empty_nan_and_extreme_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.png");
    let nan = [
        (0.0, f64::NAN),
        (1.0, 1.0),
        (f64::INFINITY, 2.0),
        (3.0, 0.5),
        (4.0, f64::NEG_INFINITY),
    ];
    let empty: [(f64, f64); 0] = [];
    let single = [(5.0, 5.0)];
    let constant = [(0.0, 3.0), (10.0, 3.0)];
    let extreme = [
        (-f64::MAX, f64::MAX),
        (f64::MAX, -f64::MAX),
        (0.0, f64::MIN_POSITIVE),
    ];
    let tiny = [(0.0, 1.0), (1.0, 1.0 + 1e-15)];
    let all_nan = [(f64::NAN, f64::NAN)];
    let cases: Vec<Vec<Series>> = vec![
        vec![],
        vec![("empty", &empty)],
        vec![("all nan", &all_nan)],
        vec![("nan", &nan), ("empty", &empty)],
        vec![("single", &single)],
        vec![("constant", &constant)],
        vec![("extreme", &extreme)],
        vec![("tiny", &tiny)],
        (0..12).map(|_| ("many", &nan[..])).collect(),
    ];
    for series in &cases {
        save_curves(&p, "", series).unwrap();
        let (w, h, _, px) = decode(&p);
        assert_eq!((w, h), (800, 500));
        assert!(distinct_colors(&px, 3) > 1);
    }
    let long_title: String = "é∑ weird title ".repeat(20);
    save_curves(&p, &long_title, &[("ünïcode", &single)]).unwrap();
    only_files(dir.path(), &["c.png"]);
}

#[test]
fn bars_with_error_bars() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bars.png");
    let labels = ["canceled", "baseline", "remedy"];
    save_bars(
        &p,
        "eps-MSE",
        &labels,
        &[0.12, 0.11, 0.095],
        Some(&[0.01, 0.005, 0.02]),
    )
    .unwrap();
    let (w, h, ct, px) = decode(&p);
    assert_eq!((w, h, ct), (480, 420, png::ColorType::Rgb));
    for c in [[31, 119, 180], [255, 127, 14], [44, 160, 44]] {
        assert!(
            px.chunks(3).filter(|p| *p == c).count() > 500,
            "bar colour {c:?} missing"
        );
    }
    // Wider for many bars.
    let many: Vec<String> = (0..12)
        .map(|i| format!("variant-with-a-long-name-{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
    let vals: Vec<f64> = (0..12).map(|i| i as f64 - 5.0).collect();
    save_bars(&p, "signed", &many, &vals, None).unwrap();
    let (w, _, _, px) = decode(&p);
    assert_eq!(w, 120 + 90 * 12);
    assert!(distinct_colors(&px, 3) > 10);
    only_files(dir.path(), &["bars.png"]);
}

#[test]
fn bars_survive_nan_and_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.png");
    save_bars(&p, "", &[], &[], None).unwrap();
    save_bars(
        &p,
        "nan",
        &["a", "b", "c"],
        &[f64::NAN, 1.0, f64::INFINITY],
        Some(&[1.0, f64::NAN, 0.1]),
    )
    .unwrap();
    save_bars(&p, "all nan", &["a"], &[f64::NAN], None).unwrap();
    save_bars(
        &p,
        "huge",
        &["a", "b"],
        &[f64::MAX, -f64::MAX],
        Some(&[f64::MAX, 0.0]),
    )
    .unwrap();
    save_bars(&p, "zero", &["a", ""], &[0.0, 0.0], Some(&[0.0, -1.0])).unwrap();
    let (w, h, _, px) = decode(&p);
    assert_eq!((w, h), (480, 420));
    assert!(distinct_colors(&px, 3) > 1);
    let e = save_bars(&p, "", &["a"], &[1.0, 2.0], None).unwrap_err();
    assert!(e.to_string().contains("1 labels for 2 values"), "{e}");
    let e = save_bars(&p, "", &["a"], &[1.0], Some(&[])).unwrap_err();
    assert!(e.to_string().contains("0 error bars for 1 values"), "{e}");
    only_files(dir.path(), &["b.png"]);
}
