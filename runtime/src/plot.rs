//! PNG figures for run directories and experiments: image batches (`N x C x H x W` values in
//! `[0, 1]`), metric series (`(x, y)` points per named series) or per-variant values with
//! optional error bars go in; a PNG file comes out, written atomically (temporary file, then
//! rename). Text (titles, tick and legend labels) is drawn with a built-in 5x7 bitmap font, so
//! no font files are needed. Non-finite values are skipped and empty input draws empty axes:
//! nothing here panics on data.

use crate::RuntimeError;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Largest side of an image written here, in pixels.
const MAX_SIDE: usize = 8_192;
/// Gap colour between grid cells.
const GAP: u8 = 128;
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const AXIS: [u8; 3] = [60, 60, 60];
const GRID: [u8; 3] = [228, 228, 228];
const TEXT: [u8; 3] = [20, 20, 20];
/// Series colours (matplotlib's tab10).
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Writes `n` images (`n x c x h x w`, values in `[0, 1]`, clamped; NaN is black) as a grid
/// of `cols` columns (0 picks a near-square grid) with 1-pixel gaps and border, grayscale when
/// `c == 1` and RGB when `c == 3`.
pub fn save_grid(
    path: &Path,
    images: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    cols: usize,
) -> Result<(), RuntimeError> {
    if c != 1 && c != 3 {
        return Err(RuntimeError::Unsupported(format!(
            "image grid: {c} channels; only 1 (grayscale) or 3 (RGB) can be written"
        )));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(RuntimeError::Data(format!(
            "image grid: nothing to draw ({n} images of {h} x {w})"
        )));
    }
    let len = n
        .checked_mul(c)
        .and_then(|v| v.checked_mul(h))
        .and_then(|v| v.checked_mul(w));
    if len != Some(images.len()) {
        return Err(RuntimeError::Data(format!(
            "image grid: {} values given for {n} x {c} x {h} x {w} images",
            images.len()
        )));
    }
    let cols = if cols == 0 {
        (1..=n).find(|k| k * k >= n).unwrap_or(n)
    } else {
        cols.min(n)
    };
    let rows = n.div_ceil(cols);
    let side = |k: usize, s: usize| k.checked_mul(s + 1).and_then(|v| v.checked_add(1));
    let (gw, gh) = match (side(cols, w), side(rows, h)) {
        (Some(gw), Some(gh)) if gw <= MAX_SIDE && gh <= MAX_SIDE => (gw, gh),
        _ => {
            return Err(RuntimeError::TooLarge(format!(
                "image grid of {rows} x {cols} images of {h} x {w} exceeds {MAX_SIDE} pixels a side"
            )))
        }
    };
    let mut buf = vec![GAP; gw * gh * c];
    let to_u8 = |v: f32| {
        if v.is_nan() {
            0
        } else {
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        }
    };
    for (k, img) in images.chunks_exact(c * h * w).enumerate() {
        let (r0, c0) = ((k / cols) * (h + 1) + 1, (k % cols) * (w + 1) + 1);
        for y in 0..h {
            for x in 0..w {
                let o = ((r0 + y) * gw + c0 + x) * c;
                for ch in 0..c {
                    buf[o + ch] = to_u8(img[(ch * h + y) * w + x]);
                }
            }
        }
    }
    let color = if c == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    };
    write_png(path, gw, gh, color, &buf)
}

/// Draws one or more named series of `(x, y)` points (e.g. loss against step) as lines on
/// shared axes, with ticks, a title and a legend giving each series' colour and its min and
/// max. Non-finite points break a line; empty series are listed in the legend but not drawn.
pub fn save_curves(
    path: &Path,
    title: &str,
    series: &[(&str, &[(f64, f64)])],
) -> Result<(), RuntimeError> {
    let (width, height) = (800, 500);
    let mut cv = Canvas::new(width, height);
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let xs = Range::of(
        series
            .iter()
            .flat_map(|s| s.1.iter().filter(finite).map(|p| p.0)),
    );
    let ys = Range::of(
        series
            .iter()
            .flat_map(|s| s.1.iter().filter(finite).map(|p| p.1)),
    );
    let legend_rows = series.len().min(8);
    let top = 34 + legend_rows as i64 * 11;
    let plot = Rect {
        x0: 78,
        y0: top,
        x1: width as i64 - 24,
        y1: height as i64 - 40,
    };
    cv.text_centered(width as i64 / 2, 8, title, 2, TEXT);
    let (xs, ys) = (padded(xs), padded(ys));
    draw_axes(&mut cv, &plot, &xs, &ys, true);
    if series.iter().all(|s| !s.1.iter().any(|p| finite(&p))) {
        cv.text_centered(
            (plot.x0 + plot.x1) / 2,
            (plot.y0 + plot.y1) / 2 - 3,
            "no data",
            1,
            TEXT,
        );
    }
    for (k, (_, pts)) in series.iter().enumerate() {
        let col = PALETTE[k % PALETTE.len()];
        let mut prev: Option<(i64, i64)> = None;
        for p in pts.iter() {
            let cur = if finite(&p) {
                Some((plot.map_x(&xs, p.0), plot.map_y(&ys, p.1)))
            } else {
                None
            };
            match (prev, cur) {
                (Some(a), Some(b)) => cv.line(a, b, col, &plot),
                (None, Some(b)) => cv.dot(b, col, &plot),
                _ => {}
            }
            prev = cur;
        }
    }
    // Legend: swatch, name, min and max of y.
    for (k, (name, pts)) in series.iter().take(legend_rows).enumerate() {
        let y = 30 + k as i64 * 11;
        let col = PALETTE[k % PALETTE.len()];
        cv.fill(plot.x0, y + 2, 14, 3, col);
        let r = Range::of(pts.iter().filter(finite).map(|p| p.1));
        let stats = match r {
            Some(r) => format!("  min {}  max {}", fmt_num(r.lo), fmt_num(r.hi)),
            None => "  (no finite values)".to_string(),
        };
        cv.text(plot.x0 + 20, y, &format!("{name}{stats}"), 1, TEXT);
    }
    if series.len() > legend_rows {
        let more = format!("+{} more", series.len() - legend_rows);
        cv.text(plot.x1 - 6 * more.len() as i64, 30, &more, 1, TEXT);
    }
    cv.save(path)
}

/// Draws one bar per label (e.g. a metric per model variant), optionally with symmetric error
/// bars, each value printed above its bar. Non-finite values draw no bar and print `n/a`.
pub fn save_bars(
    path: &Path,
    title: &str,
    labels: &[&str],
    values: &[f64],
    errors: Option<&[f64]>,
) -> Result<(), RuntimeError> {
    if labels.len() != values.len() {
        return Err(RuntimeError::Internal(format!(
            "bar chart: {} labels for {} values",
            labels.len(),
            values.len()
        )));
    }
    if let Some(e) = errors {
        if e.len() != values.len() {
            return Err(RuntimeError::Internal(format!(
                "bar chart: {} error bars for {} values",
                e.len(),
                values.len()
            )));
        }
    }
    let n = values.len();
    // Wide enough for the title (drawn at scale 2: 12 pixels per character).
    let width = (120 + 90 * n)
        .clamp(480, 2400)
        .max(title.chars().count() * 12 + 40);
    let height = 420;
    let mut cv = Canvas::new(width, height);
    let err = |i: usize| {
        errors
            .and_then(|e| e.get(i).copied())
            .filter(|e| e.is_finite())
            .map(f64::abs)
            .unwrap_or(0.0)
    };
    let ok = |i: usize| values[i].is_finite();
    let ys = Range::of(
        (0..n)
            .filter(|&i| ok(i))
            .flat_map(|i| [values[i] - err(i), values[i] + err(i)])
            .filter(|v| v.is_finite())
            .chain(std::iter::once(0.0)),
    );
    let plot = Rect {
        x0: 78,
        y0: 40,
        x1: width as i64 - 20,
        y1: height as i64 - 34,
    };
    cv.text_centered(width as i64 / 2, 8, title, 2, TEXT);
    let ys = padded(ys);
    let xs = Range { lo: 0.0, hi: 1.0 };
    draw_axes(&mut cv, &plot, &xs, &ys, false);
    if n == 0 {
        cv.text_centered(
            (plot.x0 + plot.x1) / 2,
            (plot.y0 + plot.y1) / 2 - 3,
            "no data",
            1,
            TEXT,
        );
        return cv.save(path);
    }
    let slot = (plot.x1 - plot.x0) as f64 / n as f64;
    let bar_w = ((slot * 0.6) as i64).max(1);
    let zero = plot.map_y(&ys, 0.0);
    for i in 0..n {
        let cx = plot.x0 + (slot * (i as f64 + 0.5)) as i64;
        let col = PALETTE[i % PALETTE.len()];
        // Label under the axis, cut to the slot's width.
        let max_chars = ((slot as i64 - 2) / 6).max(1) as usize;
        let label = clip_text(labels[i], max_chars);
        cv.text_centered(cx, plot.y1 + 8, &label, 1, TEXT);
        if !ok(i) {
            cv.text_centered(cx, zero - 10, "n/a", 1, TEXT);
            continue;
        }
        let v = values[i];
        let top = plot.map_y(&ys, v);
        let (y0, y1) = (top.min(zero), top.max(zero));
        cv.fill(cx - bar_w / 2, y0, bar_w, (y1 - y0).max(1), col);
        let e = err(i);
        let mut label_y = top.min(zero) - 10;
        if e > 0.0 {
            let (ya, yb) = (plot.map_y(&ys, v + e), plot.map_y(&ys, v - e));
            cv.line((cx, ya), (cx, yb), BLACK, &plot);
            let cap = (bar_w / 4).clamp(2, 8);
            cv.line((cx - cap, ya), (cx + cap, ya), BLACK, &plot);
            cv.line((cx - cap, yb), (cx + cap, yb), BLACK, &plot);
            label_y = label_y.min(ya.min(yb) - 10);
        }
        cv.text_centered(cx, label_y.max(plot.y0 - 10), &fmt_num(v), 1, TEXT);
    }
    cv.save(path)
}

// ---------------------------------------------------------------------------------------------
// Axes and numbers
// ---------------------------------------------------------------------------------------------

/// A closed interval of data values.
#[derive(Clone, Copy, Debug)]
struct Range {
    lo: f64,
    hi: f64,
}

impl Range {
    /// Smallest interval holding every (finite) value, or `None` when there are none.
    fn of(vals: impl Iterator<Item = f64>) -> Option<Range> {
        vals.filter(|v| v.is_finite()).fold(None, |r, v| match r {
            None => Some(Range { lo: v, hi: v }),
            Some(r) => Some(Range {
                lo: r.lo.min(v),
                hi: r.hi.max(v),
            }),
        })
    }
}

/// A slightly padded interval with a finite, positive span (`[0, 1]` for no data).
fn padded(r: Option<Range>) -> Range {
    let Some(Range { lo, hi }) = r else {
        return Range { lo: 0.0, hi: 1.0 };
    };
    // Clamp away from f64::MAX so that spans and ticks stay finite.
    let (lo, hi) = (lo.clamp(-1e300, 1e300), hi.clamp(-1e300, 1e300));
    let span = hi - lo;
    if span <= 1e-9 * lo.abs().max(hi.abs()) || span < 1e-300 {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return Range {
            lo: lo - pad,
            hi: hi + pad,
        };
    }
    Range {
        lo: lo - span * 0.04,
        hi: hi + span * 0.04,
    }
}

/// Four to eight round tick positions inside `r` (1, 2 or 5 times a power of ten apart), each
/// with its label.
fn ticks(r: &Range) -> Vec<(f64, String)> {
    let span = r.hi - r.lo;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    // The finest 1-2-5 step that gives at most 8 intervals (so 4 to 8 ticks).
    let raw = span / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 8.0 + 1e-9)
        .unwrap_or(10.0 * mag);
    if !(step.is_finite() && step > 0.0) {
        return Vec::new();
    }
    let first = (r.lo / step).ceil();
    (0..12)
        .map(|k| (first + k as f64) * step)
        .take_while(|t| *t <= r.hi + step * 1e-9)
        .map(|t| if t.abs() < step * 1e-9 { 0.0 } else { t })
        .map(|t| (t, fmt_tick(t, step)))
        .collect()
}

/// A tick label with as many decimals as the tick spacing `step` needs.
fn fmt_tick(t: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0);
    if t.abs() >= 1e6 || decimals > 6.0 {
        return fmt_num(t);
    }
    format!("{t:.prec$}", prec = decimals as usize)
}

/// A short rendering of `v` for labels: plain decimals for moderate magnitudes, otherwise
/// scientific notation.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if (1e-3..1e6).contains(&a) {
        let digits = if a >= 100.0 {
            0
        } else if a >= 10.0 {
            1
        } else if a >= 1.0 {
            2
        } else {
            (3 - a.log10().floor() as i32).clamp(3, 6) as usize
        };
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.2e}")
    }
}

fn clip_text(s: &str, max_chars: usize) -> String {
    let count = s.chars().count();
    if count <= max_chars {
        s.to_string()
    } else if max_chars <= 1 {
        s.chars().take(max_chars).collect()
    } else {
        let mut t: String = s.chars().take(max_chars - 1).collect();
        t.push('.');
        t
    }
}

/// The plotting area in canvas pixels (inclusive corners).
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl Rect {
    fn map_x(&self, r: &Range, v: f64) -> i64 {
        let t = (v - r.lo) / (r.hi - r.lo);
        to_px(self.x0 as f64 + t * (self.x1 - self.x0) as f64)
    }
    fn map_y(&self, r: &Range, v: f64) -> i64 {
        let t = (v - r.lo) / (r.hi - r.lo);
        to_px(self.y1 as f64 - t * (self.y1 - self.y0) as f64)
    }
    fn contains(&self, x: i64, y: i64) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }
}

/// Rounds to a pixel, keeping far-off values bounded so that line drawing stays cheap.
fn to_px(v: f64) -> i64 {
    if v.is_nan() {
        return -100_000;
    }
    v.round().clamp(-100_000.0, 100_000.0) as i64
}

/// Frame, grid lines, ticks and tick labels; x ticks only when `x_ticks`.
fn draw_axes(cv: &mut Canvas, plot: &Rect, xs: &Range, ys: &Range, x_ticks: bool) {
    for (t, s) in ticks(ys) {
        let y = plot.map_y(ys, t);
        cv.hline(plot.x0, plot.x1, y, GRID);
        cv.hline(plot.x0 - 4, plot.x0, y, AXIS);
        cv.text(
            plot.x0 - 7 - 6 * s.chars().count() as i64,
            y - 3,
            &s,
            1,
            TEXT,
        );
    }
    if x_ticks {
        for (t, s) in ticks(xs) {
            let x = plot.map_x(xs, t);
            cv.vline(x, plot.y0, plot.y1, GRID);
            cv.vline(x, plot.y1, plot.y1 + 4, AXIS);
            cv.text_centered(x, plot.y1 + 8, &s, 1, TEXT);
        }
    }
    cv.hline(plot.x0, plot.x1, plot.y0, AXIS);
    cv.hline(plot.x0, plot.x1, plot.y1, AXIS);
    cv.vline(plot.x0, plot.y0, plot.y1, AXIS);
    cv.vline(plot.x1, plot.y0, plot.y1, AXIS);
}

// ---------------------------------------------------------------------------------------------
// Raster canvas and bitmap font
// ---------------------------------------------------------------------------------------------

/// An RGB raster with clipped drawing primitives.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: WHITE.repeat(w * h),
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let o = (y as usize * self.w + x as usize) * 3;
        self.px[o..o + 3].copy_from_slice(&c);
    }

    fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        let (xa, xb) = (x.max(0), (x + w).min(self.w as i64));
        let (ya, yb) = (y.max(0), (y + h).min(self.h as i64));
        for yy in ya..yb {
            for xx in xa..xb {
                self.set(xx, yy, c);
            }
        }
    }

    fn hline(&mut self, x0: i64, x1: i64, y: i64, c: [u8; 3]) {
        self.fill(x0, y, x1 - x0 + 1, 1, c);
    }

    fn vline(&mut self, x: i64, y0: i64, y1: i64, c: [u8; 3]) {
        self.fill(x, y0, 1, y1 - y0 + 1, c);
    }

    /// A 2-pixel-thick line from `a` to `b`, drawn only inside `clip`.
    fn line(&mut self, a: (i64, i64), b: (i64, i64), c: [u8; 3], clip: &Rect) {
        let (mut x, mut y) = a;
        let (dx, dy) = ((b.0 - x).abs(), -(b.1 - y).abs());
        let (sx, sy) = (if x < b.0 { 1 } else { -1 }, if y < b.1 { 1 } else { -1 });
        let steep = -dy > dx;
        let mut err = dx + dy;
        loop {
            for (ox, oy) in [(0, 0), if steep { (1, 0) } else { (0, 1) }] {
                if clip.contains(x + ox, y + oy) {
                    self.set(x + ox, y + oy, c);
                }
            }
            if (x, y) == b {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A 3x3 dot (for isolated points).
    fn dot(&mut self, p: (i64, i64), c: [u8; 3], clip: &Rect) {
        for dy in -1..=1 {
            for dx in -1..=1 {
                if clip.contains(p.0 + dx, p.1 + dy) {
                    self.set(p.0 + dx, p.1 + dy, c);
                }
            }
        }
    }

    /// Draws `s` with its top-left corner at `(x, y)`, each glyph 5x7 pixels times `scale`
    /// with one pixel (times `scale`) between glyphs.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            let gx = x + k as i64 * 6 * scale;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.fill(gx + col * scale, y + row as i64 * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    fn text_centered(&mut self, cx: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        let w = (s.chars().count() as i64 * 6 - 1) * scale;
        self.text(cx - w / 2, y, s, scale, c);
    }

    fn save(&self, path: &Path) -> Result<(), RuntimeError> {
        write_png(path, self.w, self.h, png::ColorType::Rgb, &self.px)
    }
}

/// Rows (top to bottom, 5 low bits, leftmost pixel in bit 4) of the glyph for `ch`: printable
/// ASCII letters, digits and common punctuation; anything else draws as `?`.
fn glyph(ch: char) -> [u8; 7] {
    FONT.iter()
        .find(|(c, _)| *c == ch)
        .map(|(_, g)| *g)
        .unwrap_or([0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04])
}

const FONT: [(char, [u8; 7]); 86] = [
    (' ', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
    ('0', [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e]),
    ('1', [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e]),
    ('2', [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f]),
    ('3', [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e]),
    ('4', [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02]),
    ('5', [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e]),
    ('6', [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e]),
    ('7', [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08]),
    ('8', [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e]),
    ('9', [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c]),
    ('A', [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11]),
    ('B', [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e]),
    ('C', [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e]),
    ('D', [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c]),
    ('E', [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f]),
    ('F', [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10]),
    ('G', [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f]),
    ('H', [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11]),
    ('I', [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e]),
    ('J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c]),
    ('K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f]),
    ('M', [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11]),
    ('O', [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e]),
    ('P', [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10]),
    ('Q', [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d]),
    ('R', [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11]),
    ('S', [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e]),
    ('T', [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e]),
    ('V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04]),
    ('W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a]),
    ('X', [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11]),
    ('Y', [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04]),
    ('Z', [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f]),
    ('.', [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c]),
    (',', [0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08]),
    ('-', [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00]),
    ('+', [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00]),
    ('=', [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00]),
    (':', [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00]),
    ('_', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f]),
    ('/', [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00]),
    ('(', [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02]),
    (')', [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08]),
    ('[', [0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e]),
    (']', [0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e]),
    ('<', [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02]),
    ('>', [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08]),
    ('%', [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03]),
    ('*', [0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00]),
    ('#', [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a]),
    ('!', [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04]),
    ('?', [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04]),
    ('\'', [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00]),
    ('"', [0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00]),
    ('|', [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('^', [0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00]),
    ('a', [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f]),
    ('b', [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e]),
    ('c', [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e]),
    ('d', [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f]),
    ('e', [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e]),
    ('f', [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08]),
    ('g', [0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e]),
    ('h', [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11]),
    ('i', [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e]),
    ('j', [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c]),
    ('k', [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12]),
    ('l', [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e]),
    ('m', [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11]),
    ('n', [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11]),
    ('o', [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e]),
    ('p', [0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10]),
    ('q', [0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01]),
    ('r', [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10]),
    ('s', [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e]),
    ('t', [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06]),
    ('u', [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d]),
    ('v', [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04]),
    ('w', [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a]),
    ('x', [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11]),
    ('y', [0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e]),
    ('z', [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f]),
];

// ---------------------------------------------------------------------------------------------
// PNG output
// ---------------------------------------------------------------------------------------------

/// Encodes `data` (8-bit samples, rows top to bottom) and writes it to `path` through a
/// temporary file in the same directory and a rename. Creates missing parent directories.
fn write_png(
    path: &Path,
    width: usize,
    height: usize,
    color: png::ColorType,
    data: &[u8],
) -> Result<(), RuntimeError> {
    let io = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        RuntimeError::Io(format!("{what} {}: {e}", p.display()))
    };
    let (Ok(w32), Ok(h32)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(RuntimeError::TooLarge(format!(
            "{}: image of {width} x {height} pixels is too large",
            path.display()
        )));
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io("cannot create directory", &parent, &e))?;
    let Some(file_name) = path.file_name() else {
        return Err(RuntimeError::Io(format!(
            "{}: not a file path",
            path.display()
        )));
    };
    let tmp = parent.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| io("cannot create", &tmp, &e))?;
        let mut out = BufWriter::new(file);
        let mut enc = png::Encoder::new(&mut out, w32, h32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| io("cannot write", &tmp, &e))?;
        writer
            .write_image_data(data)
            .map_err(|e| io("cannot write", &tmp, &e))?;
        writer.finish().map_err(|e| io("cannot write", &tmp, &e))?;
        let file = out
            .into_inner()
            .map_err(|e| io("cannot write", &tmp, &e.error().to_string()))?;
        file.sync_all().map_err(|e| io("cannot write", &tmp, &e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("cannot move into place", path, &e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
