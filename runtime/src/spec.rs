//! Spec files on disk: paths in (files, or directories searched for `.tds` files in a stable
//! order); the source text and its checked models out, or a [`SpecError`] that says what is
//! wrong: an unreadable or non-UTF-8 file, the spec's own diagnostics (for the caller to
//! render), or a file with more models than a command can take. Also linting a file and
//! writing its fixes back atomically (`lint --fix`), and formatting one in the canonical layout
//! (`fmt`), so a failure never leaves a half-written spec.

use std::path::{Path, PathBuf};
use tdspec_compiler::accounting::report::{survival_report, survival_text, NormReport};
use tdspec_compiler::diagnostics::{Diagnostic, Severity, SourceFile};
use tdspec_compiler::fmt::{format_source, unified_diff, FmtError};
use tdspec_compiler::import::diffusers;
use tdspec_compiler::ir::ModelIr;
use tdspec_compiler::lint::{self, LintOptions};
use tdspec_compiler::sema::check_source;

/// Why a spec file could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read (or is not UTF-8 text).
    #[error("{0}")]
    Io(String),
    /// The spec has errors; each diagnostic points into `src`.
    #[error("{}: {} error(s)", .src.name, .diagnostics.len())]
    Invalid {
        src: SourceFile,
        diagnostics: Vec<Diagnostic>,
    },
    /// The file defines several models where one was expected.
    #[error("{name} defines {count} models; train one spec per file")]
    NotOne { name: String, count: usize },
}

/// Expands directories to the `.tds` files under them (sorted); files are kept as given.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    // Each file once, however often it is named or linked (by the file it resolves to).
    let mut seen = std::collections::HashSet::new();
    let mut keep = |p: PathBuf, id: Option<FileIdentity>, out: &mut Vec<PathBuf>| {
        if seen.insert(id.unwrap_or_else(|| file_identity(&p))) {
            out.push(p);
        }
    };
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)
                .map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
            found.sort_by(|a, b| a.0.cmp(&b.0));
            if found.is_empty() {
                return Err(format!("no .tds files under {}", p.display()));
            }
            for (f, id) in found {
                keep(f, id, &mut out);
            }
        } else if p.exists() {
            keep(p.clone(), None, &mut out);
        } else {
            return Err(format!("no such file or directory: {}", p.display()));
        }
    }
    Ok(out)
}

/// What a path resolves to: the device and inode of the file behind any links (one `stat`,
/// where resolving the canonical path reads every component's link), or the canonical path
/// where the platform has no inodes.
#[derive(PartialEq, Eq, Hash)]
enum FileIdentity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_identity(p: &Path) -> FileIdentity {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(p) {
        use std::os::unix::fs::MetadataExt;
        return FileIdentity::Inode(m.dev(), m.ino());
    }
    FileIdentity::Path(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// The `.tds` files under `dir`, each with its identity where the directory listing gives it
/// (a file that is not a link: the directory's device and the entry's inode, no `stat` per
/// file). Linked directories are not followed (a link back into the tree would loop); linked
/// files are listed.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, Option<FileIdentity>)>) -> std::io::Result<()> {
    #[cfg(unix)]
    let device = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| m.dev())
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        // The entry's own type needs no `stat` on most file systems; a link is resolved.
        let kind = entry.file_type()?;
        let dir = match kind.is_symlink() {
            true => path.is_dir(),
            false => kind.is_dir(),
        };
        if dir {
            if !kind.is_symlink() {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "tds") {
            #[cfg(unix)]
            let id = {
                use std::os::unix::fs::DirEntryExt;
                device
                    .filter(|_| !kind.is_symlink())
                    .map(|dev| FileIdentity::Inode(dev, entry.ino()))
            };
            #[cfg(not(unix))]
            let id = None;
            out.push((path, id));
        }
    }
    Ok(())
}

/// The largest spec file read (a spec of 100,000 statements is about 3 MiB).
pub const MAX_SPEC_BYTES: u64 = 64 << 20;

/// Reads a spec file as UTF-8 text, named by its path as given.
pub fn read(path: &Path) -> Result<SourceFile, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    // Room for a reference-size spec: it is read in one call, with no `stat` to size the
    // buffer; a larger file grows it as it is read, and is read only so far.
    let mut bytes = Vec::with_capacity(32 << 10);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    bytes.shrink_to_fit();
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(format!(
            "{} is larger than the {} MiB a spec may have",
            path.display(),
            MAX_SPEC_BYTES >> 20
        ));
    }
    // A UTF-8 byte-order mark is not part of the text.
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

/// Checks a source text: its models, or its diagnostics.
pub fn check(src: SourceFile) -> Result<(SourceFile, Vec<ModelIr>), SpecError> {
    match check_source(&src.text) {
        Ok(models) => Ok((src, models)),
        Err(diagnostics) => Err(SpecError::Invalid { src, diagnostics }),
    }
}

/// Reads and checks a spec file, or imports a diffusers `UNet2DModel` config (`*.json`): then
/// the source is the spec it reads as, and errors point into the config.
pub fn load(path: &Path) -> Result<(SourceFile, Vec<ModelIr>), SpecError> {
    if !is_config(path) {
        return check(read(path).map_err(SpecError::Io)?);
    }
    let (src, models) = import_config(path)?;
    // Positions in the spec it reads as (`tdspec import diffusers` prints it) are named so.
    Ok((
        SourceFile::new(format!("{} [imported spec]", src.name), src.text),
        models,
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// Whether `path` names a model config (`*.json`) rather than a spec.
pub fn is_config(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// The model name for a config file: from its name (`ddpm-cifar10-32.config.json` is
/// `ddpm_cifar10_32`), or its directory's for a plain `config.json`.
pub fn config_model(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let named = match file.as_str() {
        "config.json" => std::fs::canonicalize(path)
            .ok()
            .and_then(|p| Some(p.parent()?.file_name()?.to_string_lossy().to_string()))
            .unwrap_or_else(|| "unet".into()),
        _ => file,
    };
    diffusers::model_name(&named)
}

/// The spec a diffusers config reads as (`tdspec import diffusers`; named by the config) and
/// its model, or the errors pointing into the config.
pub fn import_config(path: &Path) -> Result<(SourceFile, Vec<ModelIr>), SpecError> {
    let src = read(path).map_err(SpecError::Io)?;
    match diffusers::check_config(&src.text, &config_model(path), &file_name(path)) {
        Ok((imp, models)) => Ok((SourceFile::new(src.name, imp.spec), models)),
        Err(diagnostics) => Err(SpecError::Invalid { src, diagnostics }),
    }
}

/// Reads and checks a spec file that must define exactly one model.
pub fn load_one(path: &Path) -> Result<(ModelIr, SourceFile), SpecError> {
    let (src, mut models) = load(path)?;
    if models.len() != 1 {
        return Err(SpecError::NotOne {
            name: src.name,
            count: models.len(),
        });
    }
    Ok((models.remove(0), src))
}

/// Replaces the spec at `path`, read as `original`, with `text`: written to a temporary file
/// beside it and renamed over it (keeping its permissions), so a failure never leaves a
/// half-written file. A link is followed (its target is rewritten, the link stays); a read-only
/// file, or one that changed since it was read, is left alone and the error says so.
pub fn write_atomically(path: &Path, original: &str, text: &str) -> Result<(), String> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let meta = std::fs::metadata(&target).ok();
    if meta.as_ref().is_some_and(|m| m.permissions().readonly()) {
        return Err(format!(
            "{} is read-only; it was not rewritten",
            path.display()
        ));
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spec".into());
    let tmp = dir.join(format!(".{name}.tdspec-fix-{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, text) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    if let Some(meta) = meta {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    // Someone else's edit since the read wins: nothing is overwritten.
    if read(&target).map(|s| s.text).ok().as_deref() != Some(original) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{} changed while tdspec worked on it; it was not rewritten (run again)",
            path.display()
        ));
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}

/// Writes a new spec file (`tdspec import -o`): refused where one exists unless `force`, and
/// written whole or not at all (a temporary file beside it, then linked or renamed in place).
pub fn write_spec_file(path: &Path, text: &str, force: bool) -> Result<(), String> {
    if path.exists() {
        if !force {
            return Err(format!(
                "{} exists; pass --force to replace it",
                path.display()
            ));
        }
        let original = read(path)?.text;
        return write_atomically(path, &original, text);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spec".into());
    let tmp = dir.join(format!(".{name}.tdspec-new-{}", std::process::id()));
    let result = std::fs::write(&tmp, text)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
        .and_then(|_| {
            // A link never replaces a file someone created meanwhile.
            std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    format!("{} appeared meanwhile; it was not replaced", path.display())
                }
                _ => format!("cannot write {}: {e}", path.display()),
            })
        });
    let _ = std::fs::remove_file(&tmp);
    result
}

/// A linted spec file: its source as it now is, its findings (or its errors), and what fixing
/// did to it.
pub struct Linted {
    pub src: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
    pub fixes: Fixes,
    /// Per model (name, its accounting as text, and for machines): every normalization the
    /// time signal reaches, per origin (`tdspec lint --survival`; empty unless
    /// [`LintOptions::survival`] asks for it).
    pub survival: Vec<(String, String, Vec<NormReport>)>,
}

impl Linted {
    /// `tdspec lint`'s text for this file: each finding as `render` draws it, then its fix,
    /// then (with `survival`) the survival tables.
    pub fn text(
        &self,
        render: impl Fn(&SourceFile, &Diagnostic) -> String,
        survival: bool,
    ) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&render(&self.src, d));
            out.push_str(&lint::render_fix(&self.src, d));
            out.push('\n');
        }
        if survival {
            out.push_str(&self.survival_text());
        }
        out
    }
    /// `--survival`'s text: per model, every normalization the time signal reaches.
    pub fn survival_text(&self) -> String {
        let mut out = String::new();
        for (model, text, _) in &self.survival {
            out.push_str(&format!(
                "{}: model {model}: time-signal survival at initialization\n",
                self.src.name
            ));
            if text.is_empty() {
                out.push_str("  the time signal reaches no normalization\n");
            }
            out.push_str(text);
            out.push('\n');
        }
        out
    }
    /// `--survival`'s JSON: `{file, model, norms}` per model.
    pub fn survival_json(&self) -> Vec<serde_json::Value> {
        self.survival
            .iter()
            .map(|(model, _, norms)| {
                serde_json::json!({"file": self.src.name, "model": model, "norms": norms})
            })
            .collect()
    }
}

/// What fixing did to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixes {
    /// Nothing: no fix was asked for, or none is available.
    None,
    /// This many fixes are available, but they change the model and unsafe fixes were not
    /// allowed.
    Withheld(usize),
    /// Fixes applied and written back; `skipped` ones overlapped another (lint again).
    Applied { applied: usize, skipped: usize },
}

/// Lint options from `--select`, `--ignore` and `--deny` (codes or prefixes; `warnings` in
/// `deny` denies every warning), with fixes computed. Blank entries are ignored; a malformed
/// pattern is an error.
pub fn lint_options(
    select: &[String],
    ignore: &[String],
    deny: &[String],
) -> Result<LintOptions, String> {
    let mut opts = LintOptions {
        fixes: true,
        ..Default::default()
    };
    let patterns = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    for (list, out) in [(select, &mut opts.select), (ignore, &mut opts.ignore)] {
        for p in patterns(list) {
            lint::check_pattern(&p)?;
            out.push(p);
        }
    }
    for p in patterns(deny) {
        if p.eq_ignore_ascii_case("warnings") {
            opts.deny_warnings = true;
        } else {
            lint::check_pattern(&p)?;
            opts.deny.push(p);
        }
    }
    Ok(opts)
}

impl Linted {
    /// The line that says what fixing did, if it did or withheld anything.
    pub fn fix_note(&self) -> Option<String> {
        let es = |n: usize| if n == 1 { "" } else { "es" };
        let name = &self.src.name;
        match self.fixes {
            Fixes::None => None,
            Fixes::Withheld(n) => Some(format!(
                "{name}: {n} fix{} available but not applied: every tdspec fix changes the model; add --unsafe-fixes to apply",
                es(n)
            )),
            Fixes::Applied { applied: n, skipped: 0 } => {
                Some(format!("{name}: applied {n} fix{}", es(n)))
            }
            Fixes::Applied { applied: n, skipped: k } => Some(format!(
                "{name}: applied {n} fix{}; {k} overlapping fix{} skipped (run again)",
                es(n),
                es(k)
            )),
        }
    }
}

/// Writes `lint`'s closing messages to `out`, each on its line, and flushes it (the files'
/// texts went through `out` as they were ready).
pub fn write_messages(out: &mut impl std::io::Write, messages: &[String]) -> std::io::Result<()> {
    for m in messages {
        out.write_all(m.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// What `tdspec lint`'s closing line counts, gathered file by file (so a caller need not keep
/// every file's findings to state it).
#[derive(Debug, Clone, Default)]
pub struct LintTally {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    /// Findings with a fix.
    pub fixable: usize,
    pub specs: usize,
    /// Diffusers configs among the files.
    pub configs: usize,
}

impl LintTally {
    pub fn add(&mut self, f: &Linted) {
        for d in &f.diagnostics {
            match d.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
                Severity::Info => self.infos += 1,
            }
            self.fixable += usize::from(d.fix.is_some());
        }
        match is_config(Path::new(&f.src.name)) {
            true => self.configs += 1,
            false => self.specs += 1,
        }
    }

    /// The closing line: findings by severity, and how many have a fix (mentioned unless
    /// fixes were asked for).
    pub fn summary(&self, fix: bool) -> String {
        let s = |k: usize| if k == 1 { "" } else { "s" };
        let (specs, configs) = (self.specs, self.configs);
        // Specs and diffusers configs, each called what it is.
        let what = match (specs, configs) {
            (_, 0) => format!("{specs} spec{}", s(specs)),
            (0, _) => format!("{configs} config{}", s(configs)),
            _ => format!(
                "{specs} spec{} and {configs} config{}",
                s(specs),
                s(configs)
            ),
        };
        let (errors, warnings, infos) = (self.errors, self.warnings, self.infos);
        let total = errors + warnings + infos;
        if total == 0 {
            return format!("no findings in {what}");
        }
        let mut line = format!(
            "{total} finding{} in {what}: {errors} error{}, {warnings} warning{}, {infos} info",
            s(total),
            s(errors),
            s(warnings),
        );
        if self.fixable > 0 && !fix {
            line += &format!(
                "; {} with an unsafe fix (--fix --unsafe-fixes)",
                self.fixable
            );
        }
        line
    }
}

type Survival = Vec<(String, String, Vec<NormReport>)>;

/// The findings of linted models (or the errors), with their survival reports.
fn findings(
    r: Result<Vec<lint::ModelReport>, Vec<Diagnostic>>,
    tables: bool,
) -> (Vec<Diagnostic>, Survival) {
    match r {
        Ok(reports) => {
            let survival = reports
                .iter()
                .filter(|_| tables)
                .map(|r| {
                    (
                        r.model.name.clone(),
                        survival_text(&r.accounting),
                        survival_report(&r.accounting),
                    )
                })
                .collect();
            (
                reports.into_iter().flat_map(|r| r.diagnostics).collect(),
                survival,
            )
        }
        Err(errors) => (errors, Vec::new()),
    }
}

/// [`lint_file`] for each path, in order, on up to `threads` threads (each file is linted
/// by one thread, the results come back in the order of `paths`). Files are independent, so
/// the results are those of linting them one after the other.
pub fn lint_files(
    paths: &[PathBuf],
    opts: &LintOptions,
    fix: bool,
    unsafe_fixes: bool,
    threads: usize,
) -> Vec<Result<Linted, String>> {
    let mut all = Vec::with_capacity(paths.len());
    let each = |r: Result<(Linted, ()), String>| all.push(r.map(|(l, ())| l));
    lint_files_each(paths, (opts, fix, unsafe_fixes), threads, |_| (), each);
    all
}

/// [`lint_files`], each file's result also passed to `then` on the thread that linted it (the
/// caller's rendering of it, say: then it runs in parallel and overlaps the linting), and each
/// result handed to `each` on the calling thread, in the order of `paths`, as soon as it and
/// those before it are done: a caller that writes each file's report then holds no more than
/// the files still out of order (not every file's findings until the last is linted), and its
/// writing overlaps the linting.
pub fn lint_files_each<T: Send>(
    paths: &[PathBuf],
    (opts, fix, unsafe_fixes): (&LintOptions, bool, bool),
    threads: usize,
    then: impl Fn(&Linted) -> T + Sync,
    mut each: impl FnMut(Result<(Linted, T), String>),
) {
    let one = |p: &PathBuf| {
        lint_file(p, opts, fix, unsafe_fixes).map(|l| {
            let t = then(&l);
            (l, t)
        })
    };
    let threads = threads.clamp(1, paths.len().max(1));
    if threads == 1 {
        return paths.iter().map(one).for_each(each);
    }
    // Files are handed out one at a time: one large file does not hold up a fixed share. The
    // calling thread lints too, and hands out what is ready between its files (a thread of its
    // own would compete with the workers for the cores).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take = || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        paths.get(i).map(|p| (i, p))
    };
    let mut slots: Vec<Option<Result<(Linted, T), String>>> =
        (0..paths.len()).map(|_| None).collect();
    let mut ready = 0;
    let mut hand_out = |slots: &mut Vec<Option<_>>| {
        while let Some(r) = slots.get_mut(ready).and_then(Option::take) {
            each(r);
            ready += 1;
        }
    };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let workers: Vec<_> = (1..threads)
            .map(|_| {
                let (tx, take, one) = (tx.clone(), &take, &one);
                scope.spawn(move || {
                    while let Some((i, p)) = take() {
                        if tx.send((i, one(p))).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        while let Some((i, p)) = take() {
            slots[i] = Some(one(p));
            rx.try_iter().for_each(|(i, r)| slots[i] = Some(r));
            hand_out(&mut slots);
        }
        // Ends when every worker has finished (or panicked: its sender is dropped too).
        for (i, r) in rx {
            slots[i] = Some(r);
            hand_out(&mut slots);
        }
        for w in workers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    for (r, p) in slots.into_iter().zip(paths).skip(ready) {
        each(r.unwrap_or_else(|| Err(format!("{}: not linted", p.display()))));
    }
}

/// The threads `lint` uses: what the machine offers.
pub fn lint_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Lints the spec at `path`, or the diffusers config (findings and fixes then point into the
/// JSON). With `fix`, applies the available fixes when `unsafe_fixes` allows it (every fix
/// changes the model), rewrites the file atomically and lints it again.
pub fn lint_file(
    path: &Path,
    opts: &LintOptions,
    fix: bool,
    unsafe_fixes: bool,
) -> Result<Linted, String> {
    let src = read(path)?;
    let (model, source) = (config_model(path), file_name(path));
    let config = is_config(path);
    let lint = |text: &str| match config {
        true => findings(
            diffusers::lint_config(text, &model, &source, opts).map(|r| r.1),
            opts.survival,
        ),
        false => findings(lint::lint_source(text, opts), opts.survival),
    };
    let (diagnostics, survival) = lint(&src.text);
    let available = diagnostics.iter().filter(|d| d.fix.is_some()).count();
    let fixes = match (fix && available > 0, unsafe_fixes) {
        (false, _) => Fixes::None,
        (true, false) => Fixes::Withheld(available),
        (true, true) => {
            let outcome = match config {
                true => diffusers::apply_config_fixes(&src.text, &model, &diagnostics),
                false => lint::apply_fixes(&src.text, &diagnostics),
            }
            .map_err(|errs| {
                let what = if config {
                    "config would not import"
                } else {
                    "spec would not pass `check`"
                };
                format!(
                    "{}: the fixed {what} ({}); the file is unchanged",
                    src.name,
                    errs.first()
                        .map(|d| d.message.as_str())
                        .unwrap_or("unknown error")
                )
            })?;
            write_atomically(path, &src.text, &outcome.text)?;
            let src = SourceFile::new(src.name, outcome.text);
            let (diagnostics, survival) = lint(&src.text);
            let fixes = Fixes::Applied {
                applied: outcome.applied,
                skipped: outcome.skipped,
            };
            return Ok(Linted {
                src,
                diagnostics,
                fixes,
                survival,
            });
        }
    };
    Ok(Linted {
        src,
        diagnostics,
        fixes,
        survival,
    })
}

/// What formatting did to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Formatted {
    /// It was already in the canonical layout.
    Unchanged,
    /// It was rewritten in the canonical layout.
    Reformatted,
    /// Checking only: the unified diff of what formatting would change.
    Diff(String),
}

/// Why a file could not be formatted.
#[derive(Clone, Debug)]
pub enum FormatError {
    /// The spec does not parse: the parser's diagnostic, pointing into `src`.
    Parse(SourceFile, Box<Diagnostic>),
    /// An unreadable or read-only file, a failed write, or a formatter bug.
    Other(String),
}

/// Formats the spec at `path` in the canonical layout: rewritten atomically (keeping its
/// permissions; a read-only file is an error), or with `check` only the diff.
pub fn format_file(path: &Path, check: bool) -> Result<Formatted, FormatError> {
    let src = read(path).map_err(FormatError::Other)?;
    let out = match format_source(&src.text) {
        Ok(out) => out,
        Err(FmtError::Parse(d)) => return Err(FormatError::Parse(src, Box::new(d))),
        Err(e @ FmtError::Internal(_)) => {
            return Err(FormatError::Other(format!("{}: {e}", src.name)))
        }
    };
    if out == src.text {
        return Ok(Formatted::Unchanged);
    }
    if check {
        return Ok(Formatted::Diff(unified_diff(&src.name, &src.text, &out)));
    }
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
        let why = format!("cannot format {}: the file is read-only", src.name);
        return Err(FormatError::Other(why));
    }
    write_atomically(path, &src.text, &out).map_err(FormatError::Other)?;
    Ok(Formatted::Reformatted)
}
