// The RCKA losses on CUDA memory for the Python package (a build with CKA_CUDA): the device backend on the
// caller's stream, nothing copied to the host and nothing waited for. Free of Python (cuda_losses.hpp is
// the seam); compiled by nvcc into its own library, linked into cka._core.

#include "cuda_losses.hpp"

#include <cka/device/cuda.hpp>

#include <map>
#include <mutex>
#include <utility>

namespace cka::python::cuda {

namespace {

/// Makes `device` the current device of this library's CUDA runtime for a scope (the runtime PyTorch links
/// keeps its own current device, so torch.cuda.device does not reach here).
class device_scope {
 public:
  explicit device_scope(int device) {
    cka::device::detail::check_cuda("rcka_loss", cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) cka::device::detail::check_cuda("rcka_loss", cudaSetDevice(device), "cudaSetDevice");
  }
  ~device_scope() { cudaSetDevice(previous_); }
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;

 private:
  int previous_ = 0;
};

/// The context of a device and stream, made once with its cuBLAS handle, so that a training loop does not
/// create a handle per step. The contexts are never destroyed: the CUDA driver may be gone by the time
/// static objects are.
const cka::device::cuda& context_for(int device, std::uintptr_t stream) {
  static std::mutex guard;
  static std::map<std::pair<int, std::uintptr_t>, const cka::device::cuda*> contexts;
  const std::lock_guard<std::mutex> lock(guard);
  const auto key = std::make_pair(device, stream);
  auto it = contexts.find(key);
  if (it == contexts.end()) {
    auto* made = new cka::device::cuda(reinterpret_cast<cudaStream_t>(stream));
    made->blas();  // the handle, made under the lock
    it = contexts.emplace(key, made).first;
  }
  return *it->second;
}

template <class T>
void queue(loss which, int device, std::uintptr_t stream, device::matrix_view<const T> s, device::matrix_view<const T> t,
           device::matrix_view<T> g, device::loss_slot<T> out, const rcka::rcka_weights& w,
           const rcka::relation_options& o) {
  const device_scope on(device);
  const cka::device::cuda& ctx = context_for(device, stream);
  switch (which) {
    case loss::rcka: rcka::rcka_loss(ctx, s, t, g, out, w, o); break;
    case loss::sample_relation: rcka::sample_relation_loss(ctx, s, t, g, out, o); break;
    case loss::class_relation: rcka::class_relation_loss(ctx, s, t, g, out, o); break;
    case loss::feature: rcka::feature_loss(ctx, s, t, g, out, o); break;
  }
}

}  // namespace

void queue_loss(loss which, int device, std::uintptr_t stream, device::matrix_view<const double> s,
                device::matrix_view<const double> t, device::matrix_view<double> g, device::loss_slot<double> out,
                const rcka::rcka_weights& w, const rcka::relation_options& o) {
  queue(which, device, stream, s, t, g, out, w, o);
}
void queue_loss(loss which, int device, std::uintptr_t stream, device::matrix_view<const float> s,
                device::matrix_view<const float> t, device::matrix_view<float> g, device::loss_slot<float> out,
                const rcka::rcka_weights& w, const rcka::relation_options& o) {
  queue(which, device, stream, s, t, g, out, w, o);
}

}  // namespace cka::python::cuda
