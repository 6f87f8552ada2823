// The RCKA loss on CUDA tensors of LibTorch through cka::device views: the tensors' own device memory (a
// transposed, non-contiguous student), torch's current stream, the gradient written straight into a CUDA
// tensor — no copy to the host. Checks the value and the gradient against torch's autograd of the same
// loss in torch ops. Built when CMake finds a CUDA build of LibTorch and CKA_CUDA=ON (Debian's LibTorch is
// CPU-only: examples/rcka_libtorch_views.cpp is its CPU twin on the OMP context).
#include <cka/device/cuda.hpp>

#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

namespace {

/// 1 − linear CKA of the B×B Grams of the rows and of the C×C Grams of the columns (biased), weighted, in
/// torch ops for autograd.
torch::Tensor torch_rcka_loss(const torch::Tensor& s, const torch::Tensor& t, double ws, double wc) {
  auto relation = [](const torch::Tensor& a, const torch::Tensor& b) {
    const torch::Tensor ac = a - a.mean(0, true), bc = b - b.mean(0, true);
    const torch::Tensor k = ac.matmul(ac.t()), l = bc.matmul(bc.t());
    return 1 - (k * l).sum() / (k.norm() * l.norm());
  };
  return ws * relation(s, t) + wc * relation(s.t(), t.t());
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  torch::manual_seed(7);
  const auto on_gpu = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat64);
  const torch::Tensor teacher = torch::randn({256, 100}, on_gpu);
  const torch::Tensor storage = (teacher.t() + 0.7 * torch::randn({100, 256}, on_gpu)).contiguous();
  const torch::Tensor student = storage.t();  // strides (1, 256)
  torch::Tensor grad = torch::empty({256, 100}, on_gpu);

  // The work is queued on torch's current stream, so it orders with the tensors' producers.
  const cka::device::cuda ctx{c10::cuda::getCurrentCUDAStream().stream()};
  const cka::rcka::rcka_weights weights{15.0, 15.0};
  // A 2-D double CUDA tensor's memory as a view: data_ptr, sizes, strides (no copy, no contiguous()).
  const auto view = [](const torch::Tensor& t) {
    return cka::device::matrix_view<const double>{t.data_ptr<double>(), t.size(0), t.size(1), t.stride(0), t.stride(1)};
  };
  const auto r = cka::rcka::rcka_loss(ctx, view(student), view(teacher),
                                      cka::device::matrix_view<double>{grad.data_ptr<double>(), 256, 100, grad.stride(0),
                                                                       grad.stride(1)},
                                      weights);

  const torch::Tensor s = student.clone().requires_grad_(true);
  const torch::Tensor loss = torch_rcka_loss(s, teacher, weights.sample, weights.cls);
  loss.backward();
  const double value_error = std::abs(double(r.value) - loss.item<double>()) / std::abs(loss.item<double>());
  const double grad_error = (grad - s.grad()).abs().max().item<double>() / s.grad().abs().max().item<double>();
  std::printf("rcka_loss on CUDA %.12f (autograd %.12f); gradient max relative difference %.2e\n", double(r.value),
              loss.item<double>(), grad_error);
  return value_error < 1e-10 && grad_error < 1e-10 ? 0 : 1;
}
