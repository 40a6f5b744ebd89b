# ---- section: timestep_embedding ----
def timestep_embedding(t, dim, scale=1.0, flip=False, shift=1.0, max_period=10000.0):
    """The sinusoidal embedding [sin(s t f_i), cos(s t f_i)] (cosines first when `flip`),
    f_i = max_period^(-i / (dim/2 - shift)) (f_0 = 1), s the scale on t; DDPM's is shift 1,
    max period 10,000. Computed in float64 like tdspec's runtime."""
    t = torch.as_tensor(t).reshape(-1).double() * scale
    half = dim // 2
    i = torch.arange(half, dtype=torch.float64, device=t.device)
    denom = half - shift if half > 1 else 1.0
    freqs = torch.exp(-math.log(max_period) * i / denom)
    args = t[:, None] * freqs[None, :]
    parts = [args.cos(), args.sin()] if flip else [args.sin(), args.cos()]
    return torch.cat(parts, dim=1).float()


class SinusoidalEmbedding(nn.Module):
    """`sinusoidal(dim, scale = s, flip = f, shift = k, max_period = p)`: t [B] -> [B, dim]."""

    def __init__(self, dim, scale=1.0, flip=False, shift=1.0, max_period=10000.0):
        super().__init__()
        self.dim = dim
        self.options = dict(scale=scale, flip=flip, shift=shift, max_period=max_period)

    def forward(self, t):
        return timestep_embedding(t, self.dim, **self.options)


# ---- section: time_table ----
class TimeTable(nn.Embedding):
    """`learned(dim)`: one learned row per step; t [B] (integer steps, as floats) -> [B, dim]."""

    def __init__(self, steps, dim):
        super().__init__(steps, dim)

    def forward(self, t):
        rows = torch.as_tensor(t).reshape(-1).round().clamp(0, self.num_embeddings - 1).long()
        return super().forward(rows.to(self.weight.device))


# ---- section: fourier_time ----
class FourierTime(nn.Module):
    """`fourier(dim)`: Gaussian random Fourier features of log t (or of t); `dim // 2` frozen
    frequencies `weight` ~ N(0, scale^2); sines then cosines (cosines first with flip)."""

    def __init__(self, dim, scale=16.0, log=True, flip=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim // 2) * scale, requires_grad=False)
        self.log, self.flip = log, flip

    def forward(self, t):
        u = torch.log(t) if self.log else t
        arg = u[:, None] * self.weight[None, :] * 2 * math.pi
        parts = [torch.cos(arg), torch.sin(arg)] if self.flip else [torch.sin(arg), torch.cos(arg)]
        return torch.cat(parts, dim=-1)


# ---- section: positional_pattern ----
def positional_pattern(like):
    """tdspec's fixed zero-mean pattern P_c(h, w) = cos(pi f_y (h + 1/2) / H) + cos(pi f_x (w + 1/2) / W),
    f_y = 1 + c mod 3, f_x = 1 + (c // 3) mod 3, as a [C, H, W] tensor for the shape of `like`."""
    channels, height, width = like.shape[-3:]
    c = torch.arange(channels, dtype=torch.float64)
    fy = (1 + c % 3)[:, None, None]
    fx = (1 + (c // 3) % 3)[:, None, None]
    h = torch.arange(height, dtype=torch.float64)[None, :, None]
    w = torch.arange(width, dtype=torch.float64)[None, None, :]
    p = torch.cos(math.pi * fy * (h + 0.5) / height) + torch.cos(math.pi * fx * (w + 0.5) / width)
    return p.to(device=like.device, dtype=like.dtype)


def add_positional(h, emb):
    """`inject(e, positional)`: h + e_c * P_c(h, w), a spatially varying offset map."""
    return h + emb[:, :, None, None] * positional_pattern(h)


# ---- section: concat_conv ----
class ConcatConv2d(nn.Conv2d):
    """ConcatConv: a convolution over [time channel, x]. The time channel (channel 0) is t * J
    (all ones) or, with positional=True, t * P_0(h, w)."""

    def __init__(self, in_channels, out_channels, kernel_size, positional=False, **kwargs):
        super().__init__(in_channels + 1, out_channels, kernel_size, **kwargs)
        self.positional = positional

    def forward(self, t, x):
        b, _, h, w = x.shape
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(b, 1, h, w)
        if self.positional:
            tt = tt * positional_pattern(x[:, :1])
        return super().forward(torch.cat([tt, x], dim=1))


# ---- section: batch_norm ----
class BatchNorm(nn.Module):
    """BatchNorm (momentum 0.1, eps 1e-5) with exactly tdspec's tensors: weight, bias and the
    running_mean / running_var buffers (no num_batches_tracked)."""

    def __init__(self, channels, eps=1e-5, momentum=0.1, persistent=True, affine=True):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.register_buffer("running_mean", torch.zeros(channels), persistent=persistent)
        self.register_buffer("running_var", torch.ones(channels), persistent=persistent)

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)


# ---- section: channel_layer_norm ----
class ChannelLayerNorm(nn.Module):
    """LayerNorm over the C channels at each position of a [B, C, H, W] map (transformer
    style; nn.LayerNorm(C) on channels-last), with tdspec's tensors: weight and bias of C."""

    def __init__(self, channels, eps=1e-5, affine=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


# ---- section: attention ----
class Attention(nn.Module):
    """DDPM self-attention: norm -> 1x1 conv to q, k, v -> softmax(q^T k / sqrt(C / heads)) v
    per head -> 1x1 projection -> + input. `groups=None` normalizes with BatchNorm, `groups=0`
    not at all."""

    def __init__(self, channels, heads=1, groups=32, eps=1e-5):
        super().__init__()
        self.heads = heads
        if groups is None:
            self.norm = BatchNorm(channels, eps, persistent=False)
        elif groups == 0:
            self.norm = nn.Identity()
        else:
            self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        weights = torch.einsum("bhci,bhcj->bhij", q, k) * (c // self.heads) ** -0.5
        out = torch.einsum("bhij,bhcj->bhci", weights.softmax(dim=-1), v)
        return x + self.proj(out.reshape(b, c, h, w))


# ---- section: scale_shift ----
def scale_shift(h, emb):
    """ADM's modulation h * (1 + scale) + shift; `emb` holds the scale in its first C outputs
    and the shift in its last C."""
    scale, shift = emb.chunk(2, dim=1)
    if h.dim() == 4:
        scale, shift = scale[:, :, None, None], shift[:, :, None, None]
    return h * (1 + scale) + shift


# ---- section: solve_ode ----
def solve_ode(f, h, t0, t1, solver):
    """h(t1) for h' = f(t, h), h(t0) = h, backpropagating through the solver. dopri5 and euler
    run in torchdiffeq; rk4 is the classic 4th-order Runge-Kutta step that tdspec takes
    (torchdiffeq's "rk4" is the 3/8-rule variant, which would not match tdspec's numbers)."""
    method = solver["method"]
    if method == "dopri5":
        t = torch.tensor([t0, t1], dtype=h.dtype, device=h.device)
        return odeint(f, h, t, method="dopri5", rtol=solver["rtol"], atol=solver["atol"])[-1]
    dt = (t1 - t0) / solver["steps"]
    if method == "euler":
        t = torch.tensor([t0, t1], dtype=h.dtype, device=h.device)
        return odeint(f, h, t, method="euler", options=dict(step_size=dt))[-1]
    for i in range(solver["steps"]):
        t = t0 + dt * i
        k1 = f(torch.tensor(t, dtype=h.dtype, device=h.device), h)
        k2 = f(torch.tensor(t + dt / 2, dtype=h.dtype, device=h.device), h + k1 * (dt / 2))
        k3 = f(torch.tensor(t + dt / 2, dtype=h.dtype, device=h.device), h + k2 * (dt / 2))
        k4 = f(torch.tensor(t + dt, dtype=h.dtype, device=h.device), h + k3 * dt)
        h = h + k1 * (dt / 6) + k2 * (dt / 3) + k3 * (dt / 3) + k4 * (dt / 6)
    return h


# ---- section: checkpoint ----
def load_tdspec_checkpoint(model, path, ema=False):
    """Loads a tdspec safetensors checkpoint (parameter names = state_dict keys). Tensors named
    `__...` (optimizer moments, EMA) are skipped; with ema=True the `__ema.` weights are loaded
    in place of the raw ones when the checkpoint has them. Returns the file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata() or {}
    own = model.state_dict()
    state = {k: v for k, v in tensors.items() if not k.startswith("__")}
    if ema:
        for k in list(state):
            if "__ema." + k in tensors:
                state[k] = tensors["__ema." + k]
    state = {k: v.reshape(own[k].shape) if k in own else v for k, v in state.items()}
    model.load_state_dict(state)
    return meta
