#!/usr/bin/env python3
"""Distillation in PyTorch with cka.torch: the Python twin of distill_without_framework.cpp.

A softmax-regression student (logits = x·W + b) learns 4 Gaussian classes in 12 dimensions from a fixed
linear teacher with cross-entropy plus the RCKA loss; the RCKA term's backward is cka's analytic
gradient (cka.torch.RCKALoss), autograd does the rest. Prints the loss terms every 20 steps and the
held-out accuracies; exits 1 if the student ends far below the teacher.

Run: python3 examples/distill_torch.py   (after `pip install .`, or with PYTHONPATH at a build's python/)
"""
import sys

import torch

import cka.torch as ckat

torch.manual_seed(7)
MEANS = 1.2 * torch.randn(4, 12, dtype=torch.float64)  # the 4 class means


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    return MEANS[y] + torch.randn(n, 12, generator=g, dtype=torch.float64), y


def main():
    x, y = make_data(512, 1)
    x_test, y_test = make_data(1024, 2)
    teacher_w = 2.0 * MEANS.T  # a good classifier for these blobs, read off the class means
    # A random start: at W = 0 every logit row is equal and the relation CKA is undefined (skipped).
    student = torch.nn.Linear(12, 4, dtype=torch.float64)
    with torch.no_grad():
        student.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(3))
        student.bias.zero_()
    rcka = ckat.RCKALoss(sample=1.0, cls=1.0)
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    batch = 64
    for step in range(201):
        r0 = (step * batch) % len(x)
        xb, yb = x[r0:r0 + batch], y[r0:r0 + batch]
        logits = student(xb)
        ce = torch.nn.functional.cross_entropy(logits, yb)
        kd = rcka(logits, xb @ teacher_w)
        opt.zero_grad()
        (ce + kd).backward()
        opt.step()
        if step % 20 == 0:
            print(f"step {step:3d}  cross-entropy {ce.item():.4f}  rcka {kd.item():.4f}")
    with torch.no_grad():
        student_acc = (student(x_test).argmax(1) == y_test).double().mean().item()
        teacher_acc = ((x_test @ teacher_w).argmax(1) == y_test).double().mean().item()
    print(f"held-out accuracy: student {student_acc:.3f}, teacher {teacher_acc:.3f}")
    return 0 if student_acc > teacher_acc - 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
