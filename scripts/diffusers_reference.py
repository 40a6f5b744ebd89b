"""Builds diffusers' UNet2DModel from a config.json with seeded random weights, saves them with
diffusers' names, and evaluates it once on seeded inputs; tdspec's opt-in parity test
(tests/diffusers_parity.rs) compares `tdspec run` against the output.

usage: python diffusers_reference.py CONFIG.json OUTDIR [BATCH]
writes OUTDIR/diffusion_pytorch_model.safetensors, OUTDIR/input.safetensors (x, t, and
class_labels for a class-conditional config) and
OUTDIR/reference.safetensors (y); prints the parameter count.
"""

import json
import math
import sys

import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file


def main():
    config_path, out = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    with open(config_path) as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(0)
    model = UNet2DModel(**config).eval()
    # Move norms off their identity initialization so their mapping is tested too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    c, s = model.config.in_channels, model.config.sample_size
    x = torch.randn(batch, c, s, s)
    steps = config.get("num_train_timesteps") or 1000
    t = torch.randint(0, steps, (batch,)).float()
    if model.config.time_embedding_type == "fourier":
        # Noise levels, log-uniform in [0.01, 50] (the Fourier features are of log t).
        t = torch.empty(batch).uniform_(math.log(0.01), math.log(50.0)).exp()
    with torch.no_grad():
        # A learned time table (nn.Embedding) takes integer steps.
        steps_in = t.long() if model.config.time_embedding_type == "learned" else t
        classes = model.config.num_class_embeds
        labels = torch.randint(0, classes, (batch,)) if classes else None
        y = model(x, steps_in, class_labels=labels).sample
    io = {"x": x.contiguous(), "t": t.contiguous()}
    if labels is not None:
        # tdspec reads labels as f32 under the label input's name.
        io["class_labels"] = labels.float().contiguous()
    save_file(io, f"{out}/input.safetensors")
    save_file({"y": y.contiguous()}, f"{out}/reference.safetensors")
    print(sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
