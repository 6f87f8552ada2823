#!/usr/bin/env python3
"""Runs the tutorial's dump() (docs/tutorial.md, the block starting '# cka tutorial: dump()') on a tiny
transformer with padded batches of different lengths and tuple/dict outputs, and on a tiny conv net, then
cka-similarity on the files it wrote. Usage: test_tutorial.py TUTORIAL.md BINARY. Exit 77 without PyTorch."""
import os
import re
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:
    print(f"test_tutorial.py: skipped: {e} (Debian: python3-torch)")
    sys.exit(77)

TUTORIAL, BINARY = sys.argv[1], os.path.abspath(sys.argv[2])
blocks = re.findall(r"```python\n(.*?)```", open(TUTORIAL, encoding="utf-8").read(), re.S)
code = [b for b in blocks if b.startswith("# cka tutorial: dump()")]
if len(code) != 1:
    print("FAILED: the tutorial has no block starting '# cka tutorial: dump()'")
    sys.exit(1)
namespace = {}
exec(code[0], namespace)
dump = namespace["dump"]
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAILED:", what)


torch.manual_seed(0)


class Block(nn.Module):
    """An attention block that returns a tuple, as transformer layers do."""

    def __init__(self, d):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x, pad):
        a, w = self.attn(x, x, x, key_padding_mask=pad)
        x = x + a
        return (x + self.ff(x), w)


class TinyEncoder(nn.Module):
    def __init__(self, vocab=50, d=16, depth=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d) for _ in range(depth))
        self.head = nn.Linear(d, 4)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x, attention_mask == 0)[0]
        return {"last_hidden_state": x, "logits": self.head(x[:, 0])}


# Batches padded to their own longest sentence: T differs between batches.
batches = []
rng = np.random.default_rng(1)
for b in range(6):
    lengths = rng.integers(3, 5 + 3 * b, size=8)
    t = int(lengths.max())
    ids = torch.zeros(8, t, dtype=torch.long)
    mask = torch.zeros(8, t, dtype=torch.long)
    for i, l in enumerate(lengths):
        ids[i, :l] = torch.from_numpy(rng.integers(1, 50, size=l))
        mask[i, :l] = 1
    batches.append({"input_ids": ids, "attention_mask": mask})
n = 48

with tempfile.TemporaryDirectory() as tmp:
    enc_a, enc_b = TinyEncoder(), TinyEncoder()
    names = ["embed", "layers.0", "layers.1", "layers.2", "head"]
    dump(enc_a, batches, names, os.path.join(tmp, "a"), tokens="mean")
    dump(enc_b, batches, names, os.path.join(tmp, "b"), tokens="first", dtype=np.float16)
    files = sorted(os.listdir(os.path.join(tmp, "a")))
    check(len(files) == 5, f"encoder files: {files}")
    x = np.load(os.path.join(tmp, "a", "1_layers_0.npy"))
    check(x.shape == (n, 16), f"mean over tokens gives (n, D): {x.shape}")
    # The mean over real tokens, recomputed for the first batch by hand.
    with torch.no_grad():
        ids, mask = batches[0]["input_ids"], batches[0]["attention_mask"]
        h = enc_a.layers[0](enc_a.embed(ids), mask == 0)[0]
        manual = np.stack([h[i, : int(mask[i].sum())].mean(0).numpy() for i in range(8)])
    check(np.allclose(x[:8], manual, atol=1e-6), "mean over the real tokens only")
    p = subprocess.run([BINARY, os.path.join(tmp, "a"), "--vs", os.path.join(tmp, "b"), "-q"],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"cka-similarity on the encoder dumps: {p.returncode} {p.stderr}")
    header = p.stdout.split("\n")[0].split(",")[1:]
    check(header == ["0_embed", "1_layers_0", "2_layers_1", "3_layers_2", "4_head"], f"layer order: {header}")

    # nn.TransformerEncoder in eval mode with a padding mask: its layers return nested (ragged) tensors,
    # which dump() pads back (issue 25, item 20). The mean over real tokens equals the padded model's.
    class TorchEncoder(nn.Module):
        def __init__(self, d=16):
            super().__init__()
            self.embed = nn.Embedding(50, d)
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 2, 32, batch_first=True), 2,
                                                 enable_nested_tensor=True)

        def forward(self, input_ids, attention_mask):
            return self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nested tensors are in prototype stage"
        torch_enc = TorchEncoder()
        dump(torch_enc, batches, ["encoder.layers.0", "encoder.layers.1"], os.path.join(tmp, "nested"), tokens="mean")
        nested = np.load(os.path.join(tmp, "nested", "0_encoder_layers_0.npy"))
        check(nested.shape == (n, 16) and np.isfinite(nested).all(), f"nested tensor outputs: {nested.shape}")
        with torch.no_grad():
            ids, mask = batches[0]["input_ids"], batches[0]["attention_mask"]
            h = torch_enc.encoder.layers[0](torch_enc.embed(ids), src_key_padding_mask=mask == 0)
            if getattr(h, "is_nested", False):
                h = h.to_padded_tensor(0.0)
            manual = np.stack([h[i, : int(mask[i].sum())].mean(0).numpy() for i in range(8)])
        check(np.allclose(nested[:8], manual, atol=1e-5), "nested: mean over the real tokens")

    # A conv net: flattened and pooled maps; float16 dumps change CKA in the 4th digit at most.
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    images = [(torch.randn(10, 3, 12, 12), torch.zeros(10)) for _ in range(5)]
    layers = ["1", "3", "6"]
    dump(conv, images, layers, os.path.join(tmp, "flat"), maps="flatten")
    dump(conv, images, layers, os.path.join(tmp, "pool"), maps="pool")
    dump(conv, images, layers, os.path.join(tmp, "half"), maps="flatten", dtype=np.float16)
    check(np.load(os.path.join(tmp, "flat", "0_1.npy")).shape == (50, 8 * 12 * 12), "flattened conv map")
    check(np.load(os.path.join(tmp, "pool", "0_1.npy")).shape == (50, 8), "pooled conv map")
    results = {}
    for d in ("flat", "pool", "half"):
        p = subprocess.run([BINARY, os.path.join(tmp, d), "-q"], capture_output=True, text=True)
        check(p.returncode == 0, f"cka-similarity on {d}: {p.stderr}")
        results[d] = np.array([[float(v) for v in line.split(",")[1:]] for line in p.stdout.strip().split("\n")[1:]])
        check(np.allclose(np.diag(results[d]), 1), f"{d}: diagonal 1")
    check(np.abs(results["half"] - results["flat"]).max() < 1e-3, f"float16 dumps: {np.abs(results['half'] - results['flat']).max()}")

print(f"test_tutorial.py: {'FAILED' if failures else 'passed'}")
sys.exit(1 if failures else 0)
