"""cka.torch: the losses as autograd functions (gradcheck in double), the module, and their errors."""
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cka  # noqa: E402
import cka.torch as ckat  # noqa: E402
import oracle  # noqa: E402

OPTIONS = [dict(), dict(centered=False, row_normalize=True), dict(debiased=True)]


def logits(seed, b=7, c=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=dtype)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("name", ["rcka_loss", "sample_relation_loss", "class_relation_loss", "feature_loss"])
def test_gradcheck(name, options):
    s = logits(1).requires_grad_()
    t = logits(2) + 0.5 * s.detach()
    fn = getattr(ckat, name)
    assert torch.autograd.gradcheck(lambda a: fn(a, t, **options), (s,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradcheck_patch_loss():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 2, 6, 6, generator=g, dtype=torch.float64).requires_grad_()
    t = torch.randn(2, 2, 6, 6, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: ckat.patch_loss(a, t, 3, 3), (s,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_value_matches_numpy_oracle_and_float32_grad():
    s = logits(4, 16, 10, torch.float32).requires_grad_()
    t = logits(5, 16, 10, torch.float32)
    loss = ckat.rcka_loss(s, t, sample=1.0, cls=2.0)
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert math.isclose(loss.item(), oracle.rcka_loss(s.detach().numpy(), t.numpy(), 1.0, 2.0), rel_tol=1e-5)
    loss.backward()
    assert s.grad.dtype == torch.float32
    _, grad = cka.rcka_loss(s.detach().numpy(), t.numpy(), sample=1.0, cls=2.0)
    np.testing.assert_allclose(s.grad.numpy(), grad, rtol=1e-6)


@pytest.mark.parametrize("name", ["sample_relation_loss", "patch_loss"])
def test_backward_scales_and_accumulates(name):
    # backward hands out the library's gradient as it is when grad_output is 1: scaled losses, repeated
    # backward passes (retain_graph) and accumulation into .grad must still add up.
    g = torch.Generator().manual_seed(21)
    shape = (2, 3, 8, 8) if name == "patch_loss" else (12, 7)
    s0 = torch.randn(*shape, generator=g)
    t = torch.randn(*shape, generator=g)
    fn = getattr(ckat, name)
    args = (4, 4) if name == "patch_loss" else ()
    s = s0.clone().requires_grad_()
    fn(s, t, *args).backward()
    once = s.grad.clone()
    assert once.abs().max() > 0
    s = s0.clone().requires_grad_()
    (3.0 * fn(s, t, *args)).backward()
    torch.testing.assert_close(s.grad, 3.0 * once, rtol=1e-6, atol=0)
    s = s0.clone().requires_grad_()
    loss = fn(s, t, *args)
    for _ in range(3):
        loss.backward(retain_graph=True)
    torch.testing.assert_close(s.grad, 3.0 * once, rtol=1e-6, atol=0)
    s = s0.clone().requires_grad_()
    fn(s, t, *args).backward()
    fn(s, t, *args).backward()
    torch.testing.assert_close(s.grad, 2.0 * once, rtol=1e-6, atol=0)
    # The first gradient, left in .grad, is not changed by a later call of the loss.
    kept = s.grad
    before = kept.clone()
    fn(s0.clone().requires_grad_(), t, *args).backward()
    assert torch.equal(kept, before)


@pytest.mark.parametrize("name", ["rcka_loss", "sample_relation_loss", "class_relation_loss", "feature_loss", "patch_loss"])
def test_the_gradient_is_written_in_the_students_layout_and_kept_by_autograd(name):
    # The library writes the gradient in the student's order (C order for a PyTorch tensor), so autograd's
    # accumulation keeps the very tensor the backward returned: no layout copy. A transposed (Fortran-order)
    # student gets a Fortran-order gradient; the values agree with the C-order student's.
    g = torch.Generator().manual_seed(23)
    shape = (2, 3, 8, 8) if name == "patch_loss" else (12, 7)
    args = (4, 4) if name == "patch_loss" else ()
    fn = getattr(ckat, name)
    s = torch.randn(*shape, generator=g).requires_grad_()
    t = torch.randn(*shape, generator=g)
    seen = []
    s.register_hook(lambda grad: seen.append((grad.data_ptr(), grad.stride())))
    fn(s, t, *args).backward()
    assert s.grad.is_contiguous()
    assert seen == [(s.grad.data_ptr(), s.grad.stride())]
    if name == "patch_loss":
        return
    sf = s.detach().t().contiguous().t().requires_grad_()  # the same values, Fortran order
    assert sf.stride() == (1, 12)
    fn(sf, t, *args).backward()
    assert sf.grad.stride() == (1, 12)
    torch.testing.assert_close(sf.grad, s.grad, rtol=1e-6, atol=1e-7)
    _, grad = getattr(cka, name)(s.detach().numpy(), t.numpy())
    assert grad.flags.c_contiguous
    _, grad = getattr(cka, name)(np.asfortranarray(s.detach().numpy()), t.numpy())
    assert grad.flags.f_contiguous


@pytest.mark.parametrize("name", ["rcka_loss", "sample_relation_loss", "class_relation_loss", "feature_loss", "patch_loss"])
def test_float32_products_stay_within_their_bound_of_the_float64_oracle(name):
    # products="input": float32 Grams and gradient product for float32 input. The value within
    # 4·sqrt(k)·2^-24 of the float64 loss, the gradient within that over sqrt(loss) of its norm (k the
    # products' depth); float64 input ignores the option (the same numbers as "exact").
    g = torch.Generator().manual_seed(11)
    shape = (3, 4, 8, 8) if name == "patch_loss" else (64, 300)
    s = torch.randn(*shape, generator=g)
    t = (s + torch.randn(*shape, generator=g))
    fn = getattr(ckat, name)
    args = (4, 4) if name == "patch_loss" else ()
    k = 3 * 16 if name == "patch_loss" else 300
    bound = 4 * math.sqrt(k) * 2.0 ** -24
    ref_in = s.double().requires_grad_()
    reference = fn(ref_in, t.double(), *args)
    reference.backward()
    ref_grad = ref_in.grad
    a = s.clone().requires_grad_()
    value = fn(a, t, *args, products="input")
    value.backward()
    assert value.dtype == torch.float32 and a.grad.dtype == torch.float32
    assert abs(value.item() - reference.item()) <= bound
    err = torch.linalg.norm(a.grad.double() - ref_grad) / torch.linalg.norm(ref_grad)
    assert err <= bound / math.sqrt(reference.item())
    d = s.double().requires_grad_()
    fn(d, t.double(), *args, products="input").backward()
    assert torch.equal(d.grad, ref_grad)


def test_module_trains_a_student_towards_the_teacher():
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    teacher = torch.nn.Linear(8, 4)
    student = torch.nn.Linear(8, 4)
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    criterion = ckat.RCKALoss(sample=1.0, cls=1.0)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = criterion(student(x), teacher(x))
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
    assert "sample=1.0" in repr(criterion)


def test_errors():
    s, t = logits(1).requires_grad_(), logits(2)
    with pytest.raises(ValueError, match="teacher.detach"):
        ckat.rcka_loss(s, t.requires_grad_())
    with pytest.raises(TypeError, match="torch.Tensor"):
        ckat.rcka_loss(s, t.detach().numpy())
    with pytest.raises(TypeError, match="unexpected option"):
        ckat.sample_relation_loss(s, logits(2), centred=True)
    with pytest.raises(ValueError, match="not finite"):
        ckat.rcka_loss(s, torch.full((7, 5), float("nan"), dtype=torch.float64))


def test_learned_weights_get_their_gradient():
    # A weight tensor that requires a gradient (learned loss weights) was converted to a float: the loss
    # did not depend on it in autograd, and its gradient was silently None.
    s, t = logits(1).requires_grad_(), logits(2)
    w = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    loss = ckat.rcka_loss(s, t, sample=w, cls=0.5)
    gw, gs = torch.autograd.grad(loss, (w, s))
    fixed = ckat.rcka_loss(s, t, sample=2.0, cls=0.5)
    assert loss.item() == pytest.approx(fixed.item(), rel=1e-12)
    assert gw.item() == pytest.approx(ckat.sample_relation_loss(s, t).item(), rel=1e-12)  # d loss / d sample
    assert torch.allclose(gs, torch.autograd.grad(fixed, s)[0], rtol=1e-12, atol=1e-15)
    assert torch.autograd.gradcheck(lambda a, b: ckat.rcka_loss(a, t, sample=b), (s, w))
    # One-element weights of any kind are numbers; others are refused, naming the weight.
    assert ckat.rcka_loss(s, t, sample=torch.tensor([2.0]), cls=np.float32(0.5)).item() == pytest.approx(fixed.item())
    with pytest.raises(ValueError, match="weight sample .* shape \\(2,\\)"):
        ckat.rcka_loss(s, t, sample=torch.ones(2))
    with pytest.raises(TypeError, match="weight cls must be a number, not str"):
        ckat.rcka_loss(s, t, cls="1")
    with pytest.raises(ValueError, match="must be finite"), warnings.catch_warnings():
        warnings.simplefilter("error")  # the message shows the weight without converting a grad tensor
        ckat.rcka_loss(s, t, sample=torch.tensor(float("nan"), requires_grad=True))
    w = torch.tensor(float("inf"), dtype=torch.float64, requires_grad=True)
    loss = ckat.rcka_loss(s, t, sample=w, check=False)  # a training step is not aborted: NaN, zero gradients
    gw, gs = torch.autograd.grad(loss, (w, s))
    assert torch.isnan(loss) and gw.item() == 0 and not gs.any()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_logits_are_computed_in_float32(half):
    # Mixed precision (autocast) hands the loss float16 or bfloat16 logits: they raised a TypeError.
    s, t = logits(6, 16, 10, half).requires_grad_(), logits(7, 16, 10, half)
    loss = ckat.rcka_loss(s, t)
    loss.backward()
    s32 = s.detach().float().requires_grad_()
    expected = ckat.rcka_loss(s32, t.float())
    expected.backward()
    assert loss.dtype == torch.float32 and loss.item() == expected.item()
    assert s.grad.dtype == half and torch.equal(s.grad, s32.grad.to(half))
    # Under CPU autocast, a linear layer's bfloat16 output trains through the loss.
    layer = torch.nn.Linear(4, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(16, 4))
        assert out.dtype == torch.bfloat16
        ckat.rcka_loss(out, t.float()).backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_check_false_gives_nan_and_a_zero_gradient_on_the_cpu_as_on_cuda():
    # check=False was a CUDA-only option: on the CPU bad data raised all the same, aborting the step.
    s, t = logits(1).requires_grad_(), logits(2)
    bad = t.clone()
    bad[3, 2] = float("inf")
    for teacher, options in ((bad, {}), (torch.ones(7, 5, dtype=torch.float64), dict(on_undefined="raise"))):
        with pytest.raises(ValueError):
            ckat.rcka_loss(s, teacher, **options)
        s.grad = None
        loss = ckat.sample_relation_loss(s, teacher, check=False, **options)
        loss.backward()
        assert math.isnan(loss.item()) and torch.count_nonzero(s.grad).item() == 0
    # Good data: the checked value; malformed arguments raise whatever the data.
    assert ckat.rcka_loss(s, t, check=False).item() == ckat.rcka_loss(s, t).item()
    with pytest.raises(ValueError):
        ckat.rcka_loss(s, bad[:4], check=False)
    with pytest.raises(ValueError, match="on_undefined"):
        ckat.rcka_loss(s, bad, check=False, on_undefined="ignore")


def test_second_derivative_raises_rather_than_vanishing():
    # backward returned grad_output * (a saved constant): a Hessian-vector product through the loss was
    # silently missing its CKA part.
    s, t = logits(1).requires_grad_(), logits(2)
    loss = ckat.rcka_loss(s, t) + (s ** 2).sum()
    (g,) = torch.autograd.grad(loss, s, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        (g * g).sum().backward()
    # A first derivative with create_graph=True is still the library's gradient.
    np.testing.assert_allclose(g.detach().numpy(), cka.rcka_loss(s.detach().numpy(), t.numpy())[1] + 2 * s.detach().numpy(),
                               rtol=1e-12)


def test_other_devices_are_refused_with_the_device_named():
    # The meta device has no memory: a clear error, not a crash (as for any tensor cka cannot read).
    s, t = torch.empty(7, 5, device="meta"), torch.empty(7, 5, device="meta")
    with pytest.raises(ValueError, match="meta"):
        ckat.rcka_loss(s, t)
    with pytest.raises(ValueError, match="one device"):
        ckat.rcka_loss(logits(1), torch.empty(7, 5, device="meta"))


def cuda_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the losses on CUDA tensors are not exercised")
    if not cka._core.has_cuda:
        pytest.skip("this build of cka has no CUDA backend (CKA_CUDA off): the CUDA losses are not built")


def test_cuda_tensors_without_a_cuda_build_are_refused():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the refusal of CUDA tensors is not exercised")
    if cka._core.has_cuda:
        pytest.skip("this build has the CUDA backend: CUDA tensors are taken, not refused")
    with pytest.raises(ValueError, match="CKA_CUDA"):
        ckat.rcka_loss(logits(1).cuda(), logits(2).cuda())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("name", ["rcka_loss", "sample_relation_loss", "class_relation_loss", "feature_loss"])
def test_cuda_losses_equal_the_cpu_losses(name, options, dtype):
    # The device backend on the GPU against the host path on the same values: the value and the gradient to
    # the type's rounding; a transposed (column-major) student is read in place.
    cuda_or_skip()
    fn = getattr(ckat, name)
    tol = 1e-10 if dtype == torch.float64 else 2e-4
    s_cpu = logits(6, 33, 9, dtype)
    t_cpu = logits(7, 33, 9, dtype) + 0.3 * s_cpu
    for student in (s_cpu, s_cpu.t().contiguous().t()):
        s = student.cuda().requires_grad_()
        loss = fn(s, t_cpu.cuda(), **options)
        assert loss.device == s.device and loss.dtype == dtype and loss.shape == ()
        loss.backward()
        c = student.clone().requires_grad_()
        ref = fn(c, t_cpu, **options)
        ref.backward()
        assert math.isclose(loss.item(), ref.item(), rel_tol=tol, abs_tol=tol)
        torch.testing.assert_close(s.grad.cpu(), c.grad, rtol=tol, atol=tol)


def test_cuda_gradcheck_and_errors():
    cuda_or_skip()
    s = logits(1).cuda().requires_grad_()
    t = logits(2).cuda() + 0.5 * s.detach()
    assert torch.autograd.gradcheck(lambda a: ckat.rcka_loss(a, t), (s,), eps=1e-6, atol=1e-7, rtol=1e-6)
    bad = torch.full((7, 5), float("nan"), dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match="not finite"):
        ckat.rcka_loss(s, bad)
    # check=False: nothing waits; bad data give a NaN value and a zero gradient.
    loss = ckat.rcka_loss(s, bad, check=False)
    loss.backward()
    assert math.isnan(loss.item()) and torch.count_nonzero(s.grad).item() == 0
    with pytest.raises(ValueError, match="no CUDA path"):
        ckat.patch_loss(torch.zeros(2, 2, 6, 6, device="cuda"), torch.zeros(2, 2, 6, 6, device="cuda"), 3, 3)
