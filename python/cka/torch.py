"""The RCKA losses as PyTorch autograd functions, with the library's analytic gradient as the backward.

``rcka_loss(student, teacher, sample=1.0, cls=1.0, **options)`` and the single terms take B x C logits
(``patch_loss`` NCHW maps); the teacher is a constant (pass ``teacher.detach()``). CPU tensors are read in
place; the gradient comes back in the student's dtype. float16 and bfloat16 logits (mixed precision,
autocast) are computed in float32 from a float32 copy: the loss is float32, the gradient the student's
dtype. The backward is the library's analytic gradient, so the losses are differentiable once: a second
derivative through them (``create_graph=True``) raises.

CUDA tensors (all but ``patch_loss``) run on the device backend in a build of cka with ``CKA_CUDA``
(``cka._core.has_cuda``): read in place, on the current stream, the value and the gradient left on the
GPU. Without a CUDA build, CUDA tensors raise a clear error.

Bad data (a non-finite logit, an overflow, an undefined term under ``on_undefined="raise"``) raise the
library's error by default (``check=True``; on CUDA one wait for a status value). With ``check=False``
they give a NaN value and a zero gradient instead, on either device (on CUDA nothing waits), so that a
training step is never aborted; malformed arguments (shapes, options) raise either way.
"""

import numbers

import torch

from . import _core

__all__ = ["rcka_loss", "sample_relation_loss", "class_relation_loss", "feature_loss", "patch_loss", "RCKALoss"]

_OPTIONS = ("centered", "row_normalize", "debiased", "on_undefined", "products")
_DEFAULTS = {"centered": True, "row_normalize": False, "debiased": False, "on_undefined": "skip", "products": "exact"}
_CUDA_LOSSES = ("rcka_loss", "sample_relation_loss", "class_relation_loss", "feature_loss")
_HALF = (torch.float16, torch.bfloat16)


def _check(name, student, teacher):
    for label, t in (("student", student), ("teacher", teacher)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"cka.torch.{name}: {label} must be a torch.Tensor, not {type(t).__name__}")
    if student.device != teacher.device:
        raise ValueError(f"cka.torch.{name}: student is on {student.device} but teacher on {teacher.device}; "
                         "put both on one device")
    if student.device.type == "cuda":
        if not _core.has_cuda:
            raise ValueError(
                f"cka.torch.{name}: the tensors are on {student.device}, but this build of cka has no CUDA "
                "backend; move the tensors to the CPU or build cka with -DCKA_CUDA=ON")
        if name not in _CUDA_LOSSES:
            raise ValueError(f"cka.torch.{name}: no CUDA path for this loss; move the tensors to the CPU")
    elif student.device.type != "cpu":
        raise ValueError(f"cka.torch.{name}: the tensors are on {student.device}; cka takes CPU tensors "
                         "(and CUDA tensors in a CUDA build)")
    if teacher.requires_grad:
        raise ValueError(f"cka.torch.{name}: the teacher is a constant of the loss (no gradient is computed "
                         "for it); pass teacher.detach()")


def _cuda_forward(name, student, teacher, kwargs, check):
    """Queues the loss on the current stream of the tensors' device; returns (value, grad, status)."""
    grad = torch.empty_like(student, memory_format=torch.contiguous_format)
    value = torch.empty((1,), dtype=student.dtype, device=student.device)
    status = torch.empty((1,), dtype=torch.int64, device=student.device)
    options = dict(_DEFAULTS, **{k: v for k, v in kwargs.items() if k in _OPTIONS})
    stream = torch.cuda.current_stream(student.device).cuda_stream
    _core.cuda_loss(name, student, teacher, grad, value, status, stream, float(kwargs.get("sample", 1.0)),
                    float(kwargs.get("cls", 1.0)), bool(options["centered"]), bool(options["row_normalize"]),
                    bool(options["debiased"]), str(options["on_undefined"]), str(options["products"]))
    if check:
        _core.check_loss_status(name, int(status.item()))  # one wait, for the library's error
    return value.reshape(()), grad, status


class _FirstOrder(torch.autograd.Function):
    """grad_output * grad, tied to the student, whose own derivative raises: the gradient is the library's
    numbers, not a graph, so a second derivative through a loss (create_graph=True) must not be 0."""

    @staticmethod
    def forward(ctx, student, grad_output, grad):
        return grad_output * grad

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError("cka.torch: the losses are differentiable once (their backward is the library's "
                           "analytic gradient); a second derivative through them is not available")


def _unchecked(core, s, teacher, kwargs):
    """The CPU loss with check=False: bad data give (NaN, a zero gradient, -1) as on CUDA, where the
    library would raise; malformed arguments still raise, as they do on CUDA. The library checks the
    inputs itself: they are scanned here only when it raised (a pre-scan cost 0.46 ms at B = 128, C = 1000,
    a third of the loss)."""
    try:
        return core(s, teacher, **kwargs)
    except _core.UndefinedError:  # overflow, or an undefined term under on_undefined="raise"
        pass
    except ValueError:  # a NaN or Inf in the inputs, or a malformed argument (raised again below)
        if bool(torch.isfinite(s).all()) and bool(torch.isfinite(teacher).all()):
            raise
    zero = torch.zeros_like(s, memory_format=torch.contiguous_format)
    try:  # the shapes and options raise whatever the data: checked on zeros of the same shapes
        core(zero, torch.zeros_like(teacher), **kwargs)
    except _core.UndefinedError:
        pass
    return float("nan"), zero.numpy(), -1


class _Loss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student, teacher, name, core, kwargs, check):
        s = student.detach()
        if s.is_cuda:
            value, grad, status = _cuda_forward(name, s, teacher, kwargs, check)
            ctx.save_for_backward(grad, student)
            ctx.skipped = status
            return value
        if check:
            value, grad, skipped = core(s, teacher, **kwargs)
        else:
            value, grad, skipped = _unchecked(core, s, teacher, kwargs)
        ctx.save_for_backward(torch.from_numpy(grad), student)
        ctx.skipped = skipped
        return torch.tensor(value, dtype=student.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grad, student = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: keep the graph, and fail where it is differentiated
            return _FirstOrder.apply(student, grad_output, grad), None, None, None, None, None
        if not grad.is_cuda and float(grad_output) == 1.0:  # the loss itself: its gradient as it is, no pass
            return grad, None, None, None, None, None
        return grad_output * grad, None, None, None, None, None


def _apply(name, core, student, teacher, kwargs):
    check = kwargs.pop("check", True)
    _check(name, student, teacher)
    for key in kwargs:
        if key not in _OPTIONS and key not in ("sample", "cls", "patch_h", "patch_w"):
            raise TypeError(f"cka.torch.{name}: unexpected option {key!r}")
    # Half-precision logits: a float32 copy (autograd casts the gradient back to the student's dtype).
    if student.dtype in _HALF:
        student = student.float()
    if teacher.dtype in _HALF:
        teacher = teacher.float()
    return _Loss.apply(student, teacher, name, core, kwargs, check)


def _weight(label, w):
    """A weight as a float, or as the one-element tensor it is where it requires a gradient."""
    if isinstance(w, torch.Tensor):
        if w.numel() != 1:
            raise ValueError(f"cka.torch.rcka_loss: the weight {label} must be a number or a one-element tensor, "
                             f"not a tensor of shape {tuple(w.shape)}")
        return w.reshape(()) if w.requires_grad else float(w)
    if not isinstance(w, numbers.Real):
        raise TypeError(f"cka.torch.rcka_loss: the weight {label} must be a number, not {type(w).__name__}")
    return float(w)


def rcka_loss(student, teacher, sample=1.0, cls=1.0, **options):
    """sample * (1 - CKA of the sample relations) + cls * (1 - CKA of the class relations), differentiable
    in ``student`` (B x C logits) and in a weight that is a tensor requiring a gradient (learned weights:
    then the two terms are computed separately and combined by autograd). Options: centered,
    row_normalize, debiased, on_undefined, products ("exact" or "input": float32 products for float32
    logits on the CPU, about twice as fast; CUDA tensors compute in float64 either way; see
    cka.sample_relation_loss), and check (default True: raise the library's error for bad
    data, a non-finite weight included; False: a NaN value and a zero gradient)."""
    sample, cls = _weight("sample", sample), _weight("cls", cls)
    if isinstance(sample, torch.Tensor) or isinstance(cls, torch.Tensor):
        return _learned(student, teacher, sample, cls, options)
    return _apply("rcka_loss", _core.rcka_loss, student, teacher, dict(options, sample=sample, cls=cls))


def _learned(student, teacher, sample, cls, options):
    """rcka_loss with a weight that requires a gradient: the two terms combined by autograd. A non-finite
    weight raises with check=True (one wait for it); with check=False it gives a NaN value and zero
    gradients (the weights replaced by 0 inside, so that no inf·0 reaches a gradient), without waiting."""
    finite = [torch.isfinite(torch.as_tensor(w)) for w in (sample, cls)]
    check = options.get("check", True)
    if check and not all(bool(f) for f in finite):
        shown = [float(w.detach()) if isinstance(w, torch.Tensor) else w for w in (sample, cls)]
        raise ValueError(f"cka.torch.rcka_loss: the weights sample = {shown[0]} and cls = {shown[1]} "
                         "must be finite")
    terms = (sample_relation_loss(student, teacher, **options), class_relation_loss(student, teacher, **options))
    if check:
        return sample * terms[0] + cls * terms[1]
    safe = [torch.where(f, torch.as_tensor(w), torch.zeros_like(torch.as_tensor(w))) for w, f in zip((sample, cls), finite)]
    value = safe[0] * terms[0] + safe[1] * terms[1]
    ok = (finite[0] & finite[1]).to(value.device)
    return torch.where(ok, value, torch.full_like(value, float("nan")))


def sample_relation_loss(student, teacher, **options):
    """1 - CKA of the B x B row Grams, differentiable in ``student``."""
    return _apply("sample_relation_loss", _core.sample_relation_loss, student, teacher, options)


def class_relation_loss(student, teacher, **options):
    """1 - CKA of the C x C column Grams, differentiable in ``student``."""
    return _apply("class_relation_loss", _core.class_relation_loss, student, teacher, options)


def feature_loss(student, teacher, **options):
    """FCKA on B x (C*H*W) features, differentiable in ``student``."""
    return _apply("feature_loss", _core.feature_loss, student, teacher, options)


def patch_loss(student, teacher, patch_h=16, patch_w=16, **options):
    """PCKA on NCHW maps, differentiable in ``student``."""
    return _apply("patch_loss", _core.patch_loss, student, teacher, dict(options, patch_h=patch_h, patch_w=patch_w))


class RCKALoss(torch.nn.Module):
    """``RCKALoss(sample=1.0, cls=1.0, **options)(student_logits, teacher_logits)``: the RCKA loss as a
    module (the teacher's logits are detached)."""

    def __init__(self, sample=1.0, cls=1.0, **options):
        super().__init__()
        self.sample = sample
        self.cls = cls
        self.options = options

    def forward(self, student, teacher):
        return rcka_loss(student, teacher.detach(), self.sample, self.cls, **self.options)

    def extra_repr(self):
        return f"sample={self.sample}, cls={self.cls}" + "".join(f", {k}={v!r}" for k, v in self.options.items())
