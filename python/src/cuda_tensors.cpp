// The RCKA losses on CUDA tensors (a build with CKA_CUDA): the tensors read and written in place through
// DLPack, the work queued on the caller's stream by cuda_losses.cu. cka.torch allocates the outputs.

#include "common.hpp"
#include "cuda_losses.hpp"

#include <nanobind/stl/string.h>

#include <cstdint>
#include <string>

namespace cka::python {

using namespace nb::literals;

namespace {

using cuda_array = nb::ndarray<nb::device::cuda>;

bool is_float(const cuda_array& a, unsigned bits) {
  return dtype_is_float(a.dtype(), bits);
}

/// The view of a 2-D tensor (strides in elements, as DLPack gives them).
template <class T>
cka::device::matrix_view<T> view_of(const cuda_array& a) {
  return {static_cast<T*>(a.data()), std::int64_t(a.shape(0)), std::int64_t(a.shape(1)), std::int64_t(a.stride(0)),
          std::int64_t(a.stride(1))};
}

cuda::loss loss_of(const std::string& fn) {
  if (fn == "rcka_loss") return cuda::loss::rcka;
  if (fn == "sample_relation_loss") return cuda::loss::sample_relation;
  if (fn == "class_relation_loss") return cuda::loss::class_relation;
  if (fn == "feature_loss") return cuda::loss::feature;
  value_error("cka.torch." + fn + " has no CUDA path; move the tensors to the CPU");
}

template <class T>
void queue(cuda::loss which, const cuda_array& s, const cuda_array& t, const cuda_array& g, const cuda_array& value,
           const cuda_array& status, std::uintptr_t stream, const cka::rcka::rcka_weights& w,
           const cka::rcka::relation_options& o) {
  const cka::device::loss_slot<T> out{static_cast<T*>(value.data()), static_cast<std::int64_t*>(status.data())};
  const int device = s.device_id();
  nb::gil_scoped_release unlocked;
  cuda::queue_loss(which, device, stream, view_of<const T>(s), view_of<const T>(t), view_of<T>(g), out, w, o);
}

}  // namespace

void register_cuda_losses(nb::module_& m) {
  m.attr("has_cuda") = true;
  m.def(
      "cuda_loss",
      [](const std::string& fn, cuda_array student, cuda_array teacher, cuda_array grad, cuda_array value,
         cuda_array status, std::uintptr_t stream, double sample, double cls, bool centered, bool row_normalize,
         bool debiased, const std::string& on_undefined, const std::string& products) {
        const cuda::loss which = loss_of(fn);
        const std::string name = "cka.torch." + fn;
        if (student.ndim() != 2 || teacher.ndim() != 2) {
          value_error(name + ": student and teacher must be 2-D (B x C) tensors, not of " +
                      std::to_string(student.ndim()) + " and " + std::to_string(teacher.ndim()) + " dimensions");
        }
        const bool f64 = is_float(student, 64);
        if (!(f64 || is_float(student, 32)) || !is_float(teacher, f64 ? 64 : 32)) {
          type_error(name + ": student and teacher must both be float32 or both float64, not " +
                     dtype_name(student.dtype()) + " and " + dtype_name(teacher.dtype()));
        }
        const int dev = student.device_id();
        if (teacher.device_id() != dev || grad.device_id() != dev || value.device_id() != dev || status.device_id() != dev) {
          value_error(name + ": student and teacher are on different CUDA devices (" + std::to_string(dev) + " and " +
                      std::to_string(teacher.device_id()) + "); put them on one");
        }
        if (grad.ndim() != 2 || grad.shape(0) != student.shape(0) || grad.shape(1) != student.shape(1) ||
            !is_float(grad, f64 ? 64 : 32) || value.size() != 1 || !is_float(value, f64 ? 64 : 32) ||
            status.size() != 1 || !(status.dtype() == nb::dtype<std::int64_t>())) {
          value_error(name + ": the output tensors do not match the student (cka.torch allocates them)");
        }
        const auto o = options_of(fn.c_str(), centered, row_normalize, debiased, on_undefined, products);
        const cka::rcka::rcka_weights w{sample, cls};
        if (f64) {
          queue<double>(which, student, teacher, grad, value, status, stream, w, o);
        } else {
          queue<float>(which, student, teacher, grad, value, status, stream, w, o);
        }
      },
      "fn"_a, "student"_a, "teacher"_a, "grad"_a, "value"_a, "status"_a, "stream"_a, "sample"_a, "cls"_a,
      "centered"_a, "row_normalize"_a, "debiased"_a, "on_undefined"_a, "products"_a);
  m.def("check_loss_status", [](const std::string& fn, long long status) {
    cka::device::check_loss_status(("rcka::" + fn).c_str(), std::int64_t(status));
  });
}

}  // namespace cka::python
