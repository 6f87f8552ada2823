// The RCKA loss on LibTorch tensors through cka::device views: the tensors' own memory, any strides (here a
// transposed, non-contiguous student), the gradient written straight into a tensor. The CPU tensors go
// through the OMP context; a CUDA build of LibTorch will pass the same views to the CUDA context.
// Checks the value and the gradient against torch's autograd of the same loss written in torch ops.
#include <cka/device.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>

namespace {

/// A 2-D float tensor's memory as a view: data_ptr, sizes, strides (no copy, no contiguous()).
cka::device::matrix_view<const float> view_of(const torch::Tensor& t) {
  return {t.data_ptr<float>(), t.size(0), t.size(1), t.stride(0), t.stride(1)};
}

/// 1 − linear CKA of the B×B Grams of the rows, in torch ops (biased estimator), for autograd.
torch::Tensor torch_relation_loss(const torch::Tensor& s, const torch::Tensor& t) {
  auto centered_gram = [](const torch::Tensor& x) {
    const torch::Tensor xc = x - x.mean(0, true);
    return xc.matmul(xc.t());
  };
  const torch::Tensor k = centered_gram(s), l = centered_gram(t);
  return 1 - (k * l).sum() / (k.norm() * l.norm());
}

}  // namespace

int main() {
  torch::manual_seed(7);
  const torch::Tensor teacher = torch::randn({64, 10});
  // The student's logits stored class-major (10×64) and used transposed: strides (1, 64).
  const torch::Tensor storage = (teacher.t() + 0.7 * torch::randn({10, 64})).contiguous();
  const torch::Tensor student = storage.t();
  torch::Tensor grad = torch::empty({64, 10});

  const auto r = cka::rcka::sample_relation_loss(cka::device::omp{}, view_of(student), view_of(teacher),
                                                 cka::device::matrix_view<float>{grad.data_ptr<float>(), 64, 10,
                                                                                 grad.stride(0), grad.stride(1)});

  const torch::Tensor s = student.clone().requires_grad_(true);
  const torch::Tensor loss = torch_relation_loss(s, teacher);
  loss.backward();
  const double value_error = std::abs(double(r.value) - loss.item<double>());
  const double grad_error = (grad - s.grad()).abs().max().item<double>() / s.grad().abs().max().item<double>();
  std::printf("sample-relation loss %.6f (autograd %.6f); gradient max relative difference %.2e\n", double(r.value),
              loss.item<double>(), grad_error);
  return value_error < 1e-5 && grad_error < 1e-4 ? 0 : 1;
}
