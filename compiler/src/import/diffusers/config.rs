//! Reading a `UNet2DModel` config: every key checked against diffusers' options, defaults
//! filled in, unsupported keys and values refused with the entry they are in.

use super::super::json::{self, Entry, Layout};
use crate::ast::Span;
use crate::diagnostics::Diagnostic;
use serde_json::{Map, Value};

/// diffusers' `UNet2DModel.__init__` defaults (diffusers 0.42), as JSON.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("sample_size", "null"),
    ("in_channels", "3"),
    ("out_channels", "3"),
    ("center_input_sample", "false"),
    ("time_embedding_type", "\"positional\""),
    ("time_embedding_dim", "null"),
    ("freq_shift", "0"),
    ("flip_sin_to_cos", "true"),
    (
        "down_block_types",
        "[\"DownBlock2D\", \"AttnDownBlock2D\", \"AttnDownBlock2D\", \"AttnDownBlock2D\"]",
    ),
    ("mid_block_type", "\"UNetMidBlock2D\""),
    (
        "up_block_types",
        "[\"AttnUpBlock2D\", \"AttnUpBlock2D\", \"AttnUpBlock2D\", \"UpBlock2D\"]",
    ),
    ("block_out_channels", "[224, 448, 672, 896]"),
    ("layers_per_block", "2"),
    ("mid_block_scale_factor", "1"),
    ("downsample_padding", "1"),
    ("downsample_type", "\"conv\""),
    ("upsample_type", "\"conv\""),
    ("dropout", "0.0"),
    ("act_fn", "\"silu\""),
    ("attention_head_dim", "8"),
    ("norm_num_groups", "32"),
    ("attn_norm_num_groups", "null"),
    ("norm_eps", "1e-05"),
    ("resnet_time_scale_shift", "\"default\""),
    ("add_attention", "true"),
    ("class_embed_type", "null"),
    ("num_class_embeds", "null"),
    ("num_train_timesteps", "null"),
];

/// How a UNet2DModel embeds its time input (`time_embedding_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeEmbedding {
    Positional,
    Learned,
    Fourier,
}

/// The UNet2DModel options tdspec reproduces, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct UNetConfig {
    pub sample_size: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub time_embedding_dim: usize,
    pub freq_shift: f64,
    pub flip_sin_to_cos: bool,
    /// `time_embedding_type`: sinusoidal ("positional"), a table of a row per step
    /// ("learned"), or Gaussian Fourier features of log σ with the output divided by σ
    /// ("fourier").
    pub time_embedding: TimeEmbedding,
    /// `num_class_embeds`: a learned row per class label added to the time embedding.
    pub num_class_embeds: Option<usize>,
    pub down_attention: Vec<bool>,
    pub up_attention: Vec<bool>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub downsample_padding: usize,
    pub dropout: f64,
    pub act: &'static str,
    pub attention_head_dim: Option<usize>,
    pub norm_num_groups: usize,
    pub attn_norm_num_groups: Option<usize>,
    pub norm_eps: f64,
    pub scale_shift: bool,
    pub add_attention: bool,
    pub num_train_timesteps: usize,
}

/// diffusers' default of `key`, as JSON text.
pub(super) fn default_text(key: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn default_of(key: &str) -> Option<Value> {
    default_text(key).and_then(|v| serde_json::from_str(v).ok())
}

struct Reader<'a> {
    map: &'a Map<String, Value>,
    layout: &'a Layout,
    diags: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn entry(&self, key: &str) -> Option<&Entry> {
        self.layout.get(key)
    }
    /// The value and where it is (the value's span, or the object's `{` for a default).
    fn get(&self, key: &str) -> (Value, Span, bool) {
        match (self.map.get(key), self.entry(key)) {
            (Some(v), Some(e)) => (v.clone(), e.value_span, true),
            _ => (
                default_of(key).unwrap_or(Value::Null),
                self.layout.open,
                false,
            ),
        }
    }
    fn type_error(&mut self, key: &str, want: &str, v: &Value, span: Span) {
        self.diags.push(
            Diagnostic::error("E403", format!("`{key}` must be {want}, found {v}"))
                .with_primary(span, format!("not {want}")),
        );
    }
    fn unsupported(&mut self, key: &str, v: &Value, span: Span, why: impl Into<String>) {
        let shown = match v {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        self.diags.push(
            Diagnostic::error("E401", format!("`{key}` = {shown} is not supported"))
                .with_primary(span, why.into()),
        );
    }
    fn uint(&mut self, key: &str) -> Option<usize> {
        let (v, span, _) = self.get(key);
        match v.as_u64().filter(|&n| n > 0 && n <= 1 << 24) {
            Some(n) => Some(n as usize),
            None => {
                self.type_error(key, "a positive whole number", &v, span);
                None
            }
        }
    }
    fn opt_uint(&mut self, key: &str) -> Option<Option<usize>> {
        let (v, _, _) = self.get(key);
        if v.is_null() {
            return Some(None);
        }
        self.uint(key).map(Some)
    }
    fn float(&mut self, key: &str) -> Option<f64> {
        let (v, span, _) = self.get(key);
        match v.as_f64() {
            Some(x) => Some(x),
            None => {
                self.type_error(key, "a number", &v, span);
                None
            }
        }
    }
    fn boolean(&mut self, key: &str) -> Option<bool> {
        let (v, span, _) = self.get(key);
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.type_error(key, "true or false", &v, span);
                None
            }
        }
    }
    /// The meaning of a string option: one of `options` (value, meaning); E403 for a value
    /// that is not a string, E401 with `why` for another string or null.
    fn pick<T: Copy>(&mut self, key: &str, options: &[(&str, T)], why: &str) -> Option<T> {
        let (v, span, _) = self.get(key);
        if !v.is_string() && !v.is_null() {
            self.type_error(key, "a string", &v, span);
            return None;
        }
        let found = options
            .iter()
            .find(|(o, _)| v.as_str() == Some(o))
            .map(|(_, t)| *t);
        if found.is_none() {
            self.unsupported(key, &v, span, why);
        }
        found
    }
    /// A value that must be one of `allowed` (its JSON text), with the reason otherwise.
    fn only(&mut self, key: &str, allowed: &[&str], why: &str) {
        let (v, span, _) = self.get(key);
        let ok = allowed
            .iter()
            .any(|a| serde_json::from_str::<Value>(a).is_ok_and(|w| same(&w, &v)));
        if !ok {
            self.unsupported(key, &v, span, why);
        }
    }
    fn list<T>(
        &mut self,
        key: &str,
        want: &str,
        item: impl Fn(&Value) -> Option<T>,
    ) -> Option<Vec<(T, Span)>> {
        let (v, span, present) = self.get(key);
        let Value::Array(items) = &v else {
            self.type_error(key, &format!("a list of {want}"), &v, span);
            return None;
        };
        let spans: Vec<Span> = match (present, self.entry(key)) {
            (true, Some(e)) => e.items.clone(),
            _ => vec![span; items.len()],
        };
        let mut out = Vec::new();
        for (x, s) in items.iter().zip(spans) {
            match item(x) {
                Some(t) => out.push((t, s)),
                None => {
                    self.type_error(key, &format!("a list of {want}"), x, s);
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// Numbers compare by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A JSON syntax error of serde_json's, as a diagnostic at its position.
fn syntax_error(text: &str, e: &serde_json::Error) -> Diagnostic {
    let at = json::offset_of(text, e.line(), e.column());
    let end = (at + 1).min(text.len());
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    Diagnostic::error("E403", format!("the config is not valid JSON: {msg}"))
        .with_primary(Span::new(at.min(end), end), "here")
}

/// Reads a `UNet2DModel` config.
pub fn read_config(text: &str) -> Result<(UNetConfig, Layout), Vec<Diagnostic>> {
    let value: Value = serde_json::from_str(text).map_err(|e| vec![syntax_error(text, &e)])?;
    let layout = json::layout(text).map_err(|(span, what)| {
        vec![Diagnostic::error("E403", format!("expected {what}")).with_primary(span, "here")]
    })?;
    let Value::Object(map) = &value else {
        unreachable!("the layout is an object")
    };
    let mut r = Reader {
        map,
        layout: &layout,
        diags: Vec::new(),
    };
    let cfg = read_fields(&mut r);
    match (cfg, r.diags.is_empty()) {
        (Some(c), true) => Ok((c, layout)),
        _ => {
            let mut d = r.diags;
            if d.is_empty() {
                d.push(Diagnostic::error("E403", "the config cannot be read"));
            }
            Err(d)
        }
    }
}

/// Per block of `key`: whether it is the attention kind of `plain` (`DownBlock2D` or
/// `AttnDownBlock2D`); any other block is E401 at its item.
fn block_kinds(
    r: &mut Reader,
    key: &str,
    blocks: &[(String, Span)],
    plain: &str,
) -> Option<Vec<bool>> {
    let attn = format!("Attn{plain}");
    let mut out = Vec::new();
    for (name, span) in blocks {
        match name {
            n if n == plain => out.push(false),
            n if *n == attn => out.push(true),
            other => {
                let why = format!("tdspec imports {plain} and {attn}");
                r.unsupported(key, &Value::String(other.clone()), *span, why);
            }
        }
    }
    (out.len() == blocks.len()).then_some(out)
}

fn read_fields(r: &mut Reader) -> Option<UNetConfig> {
    // The class first: another model's config is not read key by key.
    if let Some(e) = r.entry("_class_name") {
        let span = e.value_span;
        match r.map.get("_class_name") {
            Some(Value::String(s)) if s == "UNet2DModel" => {}
            other => {
                let shown = other.map(|v| v.to_string()).unwrap_or_default();
                r.diags.push(
                    Diagnostic::error(
                        "E402",
                        format!("a {shown} config: tdspec imports diffusers' UNet2DModel configs"),
                    )
                    .with_primary(span, "not \"UNet2DModel\"")
                    .with_help(
                        "UNet2DConditionModel (text conditioning, cross-attention) and other \
                         diffusers models are not expressible in tdspec",
                    ),
                );
                return None;
            }
        }
    }
    for e in &r.layout.entries {
        if e.key.starts_with('_') || DEFAULTS.iter().any(|(k, _)| *k == e.key) {
            continue;
        }
        let d = Diagnostic::error("E401", format!("unknown UNet2DModel option `{}`", e.key))
            .with_primary(e.key_span, "diffusers' UNet2DModel takes no such option")
            .suggest(&e.key, DEFAULTS.iter().map(|(k, _)| *k));
        r.diags.push(d);
    }
    let sample_size = {
        let (v, span, present) = r.get("sample_size");
        match &v {
            Value::Array(a) if a.len() == 2 && a[0] == a[1] => a[0].as_u64().map(|n| n as usize),
            Value::Array(_) => {
                r.unsupported("sample_size", &v, span, "tdspec's UNet takes square inputs");
                None
            }
            Value::Null if !present => {
                r.diags.push(
                    Diagnostic::error("E401", "the config sets no `sample_size`")
                        .with_primary(span, "a spec fixes the input size")
                        .with_help("add e.g. `\"sample_size\": 32`"),
                );
                None
            }
            _ => r.uint("sample_size"),
        }
    };
    let in_channels = r.uint("in_channels");
    let out_channels = r.uint("out_channels");
    r.only(
        "center_input_sample",
        &["false"],
        "tdspec feeds the input as given (2x - 1 is not applied)",
    );
    let time_embedding = r.pick(
        "time_embedding_type",
        &[
            ("positional", TimeEmbedding::Positional),
            ("learned", TimeEmbedding::Learned),
            ("fourier", TimeEmbedding::Fourier),
        ],
        "tdspec imports the \"positional\", \"learned\" and \"fourier\" time embeddings",
    );
    let freq_shift = r.float("freq_shift");
    let flip = r.boolean("flip_sin_to_cos");
    r.only(
        "mid_block_type",
        &["\"UNetMidBlock2D\""],
        "tdspec's UNet has the UNetMidBlock2D middle",
    );
    let down = r.list("down_block_types", "block names", |v| {
        v.as_str().map(str::to_string)
    });
    let up = r.list("up_block_types", "block names", |v| {
        v.as_str().map(str::to_string)
    });
    let channels = r.list("block_out_channels", "channel counts", |v| {
        v.as_u64()
            .filter(|&n| n > 0 && n <= 1 << 20)
            .map(|n| n as usize)
    });
    let layers = r.uint("layers_per_block");
    r.only(
        "mid_block_scale_factor",
        &["1"],
        "tdspec's middle block does not rescale its output",
    );
    let downsample_padding = {
        let (v, span, _) = r.get("downsample_padding");
        match v.as_u64() {
            Some(p @ (0 | 1)) => Some(p as usize),
            _ => {
                r.unsupported(
                    "downsample_padding",
                    &v,
                    span,
                    "tdspec down-samples with padding 1 or diffusers' 0",
                );
                None
            }
        }
    };
    r.only(
        "downsample_type",
        &["\"conv\""],
        "tdspec down-samples with a strided conv",
    );
    r.only(
        "upsample_type",
        &["\"conv\""],
        "tdspec up-samples with nearest neighbours and a conv",
    );
    let dropout = {
        let (v, span, _) = r.get("dropout");
        match v.as_f64() {
            Some(p) if (0.0..1.0).contains(&p) => Some(p),
            _ => {
                r.type_error("dropout", "a probability in [0, 1)", &v, span);
                None
            }
        }
    };
    let act = r.pick(
        "act_fn",
        &[("silu", "silu"), ("swish", "silu"), ("relu", "relu")],
        "tdspec imports silu (swish) and relu",
    );
    let head_dim = r.opt_uint("attention_head_dim");
    let groups = r.uint("norm_num_groups");
    let attn_groups = r.opt_uint("attn_norm_num_groups");
    let eps = {
        let (v, span, _) = r.get("norm_eps");
        match v.as_f64() {
            Some(e) if e > 0.0 && e <= 1.0 => Some(e),
            _ => {
                r.type_error("norm_eps", "a number in (0, 1]", &v, span);
                None
            }
        }
    };
    let scale_shift = r.pick(
        "resnet_time_scale_shift",
        &[("default", false), ("scale_shift", true)],
        "tdspec imports \"default\" (an offset before norm2) and \"scale_shift\"",
    );
    let add_attention = r.boolean("add_attention");
    r.only(
        "class_embed_type",
        &["null"],
        "tdspec imports class labels as a learned table (`num_class_embeds`, no `class_embed_type`)",
    );
    let classes = r.opt_uint("num_class_embeds");
    let steps = r.opt_uint("num_train_timesteps");
    if time_embedding == Some(TimeEmbedding::Learned) && steps == Some(None) {
        let (v, span, _) = r.get("time_embedding_type");
        r.unsupported(
            "time_embedding_type",
            &v,
            span,
            "a learned table needs `num_train_timesteps` (its rows)",
        );
    }
    let time_dim = r.opt_uint("time_embedding_dim");

    let (down, up, channels) = (down?, up?, channels?);
    let down_attention = block_kinds(r, "down_block_types", &down, "DownBlock2D");
    let up_attention = block_kinds(r, "up_block_types", &up, "UpBlock2D");
    let (down_attention, mut up_attention) = (down_attention?, up_attention?);
    let mut bad = false;
    let levels = channels.len();
    let (_, cspan, _) = r.get("block_out_channels");
    if levels == 0 {
        r.type_error(
            "block_out_channels",
            "a non-empty list",
            &Value::Array(vec![]),
            cspan,
        );
        return None;
    }
    for (key, n) in [
        ("down_block_types", down.len()),
        ("up_block_types", up.len()),
    ] {
        if n != levels {
            let (_, span, _) = r.get(key);
            r.diags.push(
                Diagnostic::error(
                    "E403",
                    format!("`{key}` names {n} blocks for {levels} levels"),
                )
                .with_primary(span, format!("{n} blocks"))
                .with_secondary(cspan, format!("{levels} channel counts")),
            );
            bad = true;
        }
    }
    let base = channels[0].0;
    for (c, span) in &channels {
        if c % base != 0 {
            r.diags.push(
                Diagnostic::error(
                    "E401",
                    format!(
                        "`block_out_channels` has {c}, not a multiple of the first level's {base}"
                    ),
                )
                .with_primary(*span, "tdspec's UNet has multiples of its base channels"),
            );
            bad = true;
        }
    }
    if bad {
        return None;
    }
    // diffusers' up blocks run from the lowest resolution: up_blocks[k] is level L-1-k.
    up_attention.reverse();
    Some(UNetConfig {
        sample_size: sample_size?,
        in_channels: in_channels?,
        out_channels: out_channels?,
        time_embedding_dim: time_dim?.unwrap_or(4 * base),
        freq_shift: freq_shift?,
        flip_sin_to_cos: flip?,
        time_embedding: time_embedding?,
        down_attention,
        up_attention,
        block_out_channels: channels.iter().map(|c| c.0).collect(),
        layers_per_block: layers?,
        downsample_padding: downsample_padding?,
        dropout: dropout?,
        act: act?,
        attention_head_dim: head_dim?,
        norm_num_groups: groups?,
        attn_norm_num_groups: attn_groups?,
        norm_eps: eps?,
        scale_shift: scale_shift?,
        add_attention: add_attention?,
        num_train_timesteps: steps?.unwrap_or(1000),
        num_class_embeds: classes?,
    })
}
