#!/usr/bin/env python3
"""The PyTorch peer of bench/gpu/run.sh: the same estimators on the same shapes on the GPU, timed with CUDA
events, in float64 as cka computes them: linear CKA (biased, centered features, ZᵀZ or two n×n Grams as the
shape favours) and the RCKA sample-relation loss with its gradient by autograd. Prints one line per case.
Usage: python3 bench/gpu/torch_peer.py   (needs a CUDA build of PyTorch)."""
import torch


def linear_cka(x, y):
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    if x.shape[0] < x.shape[1] + y.shape[1]:  # two n×n Grams
        k, l = x @ x.T, y @ y.T
        return (k * l).sum() / (k.norm() * l.norm())
    return (y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())


def sample_loss(s, t):
    s = s.double() - s.double().mean(0)
    t = t.double() - t.double().mean(0)
    k, l = s @ s.T, t @ t.T
    return 1 - (k * l).sum() / (k.norm() * l.norm())


def timed(f, repeats):
    f()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        f()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeats


def main():
    if not torch.cuda.is_available():
        print("skipped: no CUDA in this PyTorch")
        return
    print("torch", torch.__version__, torch.cuda.get_device_name(0))
    g = torch.Generator(device="cuda").manual_seed(7)
    for n, d1, d2, repeats in [(1000000, 256, 256, 5), (100000, 1024, 1024, 5), (256, 4096, 4096, 20), (1024, 8192, 8192, 10)]:
        z = torch.randn(n, d1 + d2, device="cuda", dtype=torch.float64, generator=g)
        x, y = z[:, :d1], z[:, d1:]
        ms = timed(lambda: linear_cka(x, y).item(), repeats)
        print(f"torch linear_cka n = {n}, d1 = {d1}, d2 = {d2}: {ms:.3f} ms")
        del z, x, y
    s = torch.randn(1024, 1000, device="cuda", dtype=torch.float32, generator=g)
    t = torch.randn(1024, 1000, device="cuda", dtype=torch.float32, generator=g)

    def loss_and_grad():
        sv = s.clone().requires_grad_(True)
        value = sample_loss(sv, t)
        value.backward()
        return value.item()

    print(f"torch sample_relation_loss B = 1024, C = 1000 (float in, float64 math) with autograd: "
          f"{timed(loss_and_grad, 10):.3f} ms; forward {timed(lambda: sample_loss(s, t).item(), 10):.3f} ms")


if __name__ == "__main__":
    main()
