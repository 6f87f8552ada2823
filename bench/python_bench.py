#!/usr/bin/env python3
"""The Python package's cost: call overhead on tiny inputs, cka.linear_cka at the shapes of bench_cka's
BM_linear_cka (compare with that binary in the same session), and cka.torch.rcka_loss forward + backward
against PyTorch autograd on the same loss (B x C shapes from --loss-shapes, default 256x1000; float32 and
float64; on the CPU, and on the GPU too where PyTorch has CUDA and cka was built with CKA_CUDA); with
--losses, the single terms sample_relation_loss and class_relation_loss too, and patch_loss (PCKA, 16 x 16
patches) on NCHW maps of --patch-shape; with --products exact input, the float32 losses on the CPU under
either products setting. Medians of repeated runs, the two losses interleaved.

Run: PYTHONPATH=build/python python3 bench/python_bench.py [--loss-shapes 64x100 256x1000 1024x1000]
[--losses rcka sample class patch] [--products exact input] (or after pip install .)"""
import argparse
import statistics
import time

import numpy as np

import cka


def median_time(fn, repeat, number):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def interleaved(label, ours, peer, number):
    """Times ours and peer in alternating rounds (so that a change in the machine's state between the two
    does not bias the ratio): the medians of nine rounds of `number` calls, printed under label."""
    t_ours, t_peer = [], []
    for _ in range(9):
        t_ours.append(median_time(ours, 1, number))
        t_peer.append(median_time(peer, 1, number))
    t_ours, t_peer = statistics.median(t_ours), statistics.median(t_peer)
    print(f"{label}: cka.torch {t_ours * 1e3:.3f} ms, PyTorch autograd {t_peer * 1e3:.3f} ms, "
          f"ratio {t_peer / t_ours:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss-shapes", nargs="+", default=["256x1000"], help="B x C of the logits, e.g. 256x1000")
    parser.add_argument("--losses", nargs="+", default=["rcka"], choices=["rcka", "sample", "class", "patch"],
                        help="the losses compared (default: rcka_loss alone)")
    parser.add_argument("--patch-shape", default="4x256x64x64",
                        help="B x C x H x W of patch_loss's maps (H and W multiples of 16)")
    parser.add_argument("--products", nargs="+", default=["exact"], choices=["exact", "input"],
                        help="cka's products setting for float32 losses on the CPU (float64 and CUDA: exact)")
    parser.add_argument("--skip-linear", action="store_true", help="only the losses")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.loss_shapes]
    rng = np.random.default_rng(0)
    tiny_x, tiny_y = rng.standard_normal((8, 2)), rng.standard_normal((8, 2))
    floor = median_time(lambda: None, 7, 20000)
    t = median_time(lambda: cka.linear_cka(tiny_x, tiny_y), 7, 20000) - floor
    print(f"call, linear_cka 8x2 + 8x2 (whole call, the computation included): {t * 1e6:.2f} us")
    t = median_time(lambda: cka.kernel_cka(tiny_x, tiny_y, cka.RBF(sigma=1.0)), 7, 20000) - floor
    print(f"call, kernel_cka RBF 8x2: {t * 1e6:.2f} us")
    for n, d in () if args.skip_linear else ((4096, 512), (20000, 256)):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        t = median_time(lambda: cka.linear_cka(x, y), 5, 3)
        print(f"cka.linear_cka double {n}x{d} (+{d}): {t * 1e3:.2f} ms  (C++: bench_cka BM_linear_cka<double>/{n}/{d})")
    try:
        import torch
    except ImportError:
        print("PyTorch missing: the loss comparison is skipped")
        return
    import cka.torch as ckat

    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and cka._core.has_cuda else [])
    for device in devices:
        for loss in args.losses:
            if loss == "patch":
                if device == "cpu":  # patch_loss has no CUDA path
                    for products in args.products:
                        compare_patch(torch, ckat, tuple(int(v) for v in args.patch_shape.split("x")), products)
                continue
            for b, c in shapes:
                for dtype in (torch.float32, torch.float64):
                    for products in args.products if dtype == torch.float32 and device == "cpu" else ["exact"]:
                        compare_losses(torch, ckat, loss, device, b, c, dtype, products)


def compare_losses(torch, ckat, loss, device, b, c, dtype, products):
    s0 = torch.randn(b, c, dtype=dtype, device=device)
    t0 = torch.randn(b, c, dtype=dtype, device=device)

    def aligned(x, y):
        return (x * y).sum() / (x.norm() * y.norm())

    # Each loss in its cheapest PyTorch form, autograd for the gradient: 1 - CKA of the sample relations
    # (centered B x B Grams); 1 - CKA of the class relations (columns as samples, centered over classes;
    # feature-space form with B x B products); rcka_loss their sum.
    def torch_sample(s, t):
        sc, tc = s - s.mean(0, keepdim=True), t - t.mean(0, keepdim=True)
        return 1 - aligned(sc @ sc.T, tc @ tc.T)

    def torch_class(s, t):
        sr, tr = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
        return 1 - (sr @ tr.T).square().sum() / ((sr @ sr.T).norm() * (tr @ tr.T).norm())

    torch_loss, name = {
        "rcka": (lambda s, t: torch_sample(s, t) + torch_class(s, t), "rcka_loss"),
        "sample": (torch_sample, "sample_relation_loss"),
        "class": (torch_class, "class_relation_loss"),
    }[loss]
    cka_loss = getattr(ckat, name)

    def done():
        if device == "cuda":
            torch.cuda.synchronize()

    def ours():
        s = s0.clone().requires_grad_()
        cka_loss(s, t0, check=False, products=products).backward()
        done()

    def peer():
        s = s0.clone().requires_grad_()
        torch_loss(s, t0).backward()
        done()

    s = s0.clone().requires_grad_()
    x, y = cka_loss(s, t0, products=products), torch_loss(s, t0)
    print(f"values {device} {b}x{c}: cka {x.item():.6f}, PyTorch {y.item():.6f}; torch threads {torch.get_num_threads()}")
    number = max(1, min(10, int(2e9 / (b * b * c + b * c * c))))
    label = f"{name} forward+backward {device} {b}x{c} {str(dtype)[6:]}" + (" products=input" if products == "input" else "")
    interleaved(label, ours, peer, number)


def compare_patch(torch, ckat, shape, products, p=16):
    b, c, h, w = shape
    if h % p or w % p:
        raise SystemExit(f"--patch-shape: H and W must be multiples of {p}")
    s0, t0 = torch.randn(*shape), torch.randn(*shape)

    def torch_patch(s, t):
        # Per channel, the patches as rows of a (patches x B*p*p) matrix, centered over the patches; the
        # channels' Grams by one batched product; 1 - CKA averaged over the channels; autograd.
        def grams(x):
            m = x.reshape(b, c, h // p, p, w // p, p).permute(1, 2, 4, 0, 3, 5).reshape(c, (h // p) * (w // p), b * p * p)
            m = m - m.mean(1, keepdim=True)
            return m @ m.transpose(1, 2)

        ks, kt = grams(s), grams(t)
        a = (ks * kt).sum((1, 2)) / (ks.square().sum((1, 2)).sqrt() * kt.square().sum((1, 2)).sqrt())
        return (1 - a).mean()

    def ours():
        s = s0.clone().requires_grad_()
        ckat.patch_loss(s, t0, p, p, check=False, products=products).backward()

    def peer():
        s = s0.clone().requires_grad_()
        torch_patch(s, t0).backward()

    s = s0.clone().requires_grad_()
    print(f"values cpu patch {b}x{c}x{h}x{w}: cka {ckat.patch_loss(s, t0, p, p).item():.6f}, "
          f"PyTorch {torch_patch(s, t0).item():.6f}")
    interleaved(f"patch_loss forward+backward cpu {b}x{c}x{h}x{w} float32" + (" products=input" if products == "input" else ""),
                ours, peer, 3)


if __name__ == "__main__":
    main()
