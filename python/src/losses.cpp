// The RCKA distillation losses with their analytic gradients with respect to the student.

#include "common.hpp"

#include <cka/rcka.hpp>

#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

namespace cka::python {

using namespace nb::literals;

namespace {

/// (value, grad, skipped) of a loss on two B×C matrices; grad is float32/float64 like the student and in
/// its order (C order unless the student is Fortran-ordered), written by the library in place: a PyTorch
/// parameter's gradient in its own layout, which autograd then keeps without a copy.
template <class Loss>
nb::tuple matrix_loss(const char* fn, nb::handle student, nb::handle teacher, Loss&& loss) {
  matrix_arg s = to_matrix(fn, "student", student), t = to_matrix(fn, "teacher", teacher);
  if (s.is_double != t.is_double) {
    type_error(std::string("cka.") + fn + ": student and teacher have different dtypes (" +
               (s.is_double ? "float64" : "float32") + " and " + (t.is_double ? "float64" : "float32") +
               "); the gradient has the student's dtype, so pass both in one dtype");
  }
  const bool row_major = s.row_major;
  return visit2(s, t, [&](const auto& sv, const auto& tv) {
    using T = typename std::decay_t<decltype(sv)>::Scalar;
    auto run = [&](auto grad) {
      cka::rcka::loss_value<T> r;
      {
        unlocked_computation unlocked;
        r = loss(sv, tv, grad);
      }
      return nb::make_tuple(double(r.value), to_numpy(std::move(grad)), (long long)r.skipped);
    };
    if (row_major) return run(Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>(sv.rows(), sv.cols()));
    return run(cka::matrix<T>(sv.rows(), sv.cols()));
  });
}

}  // namespace

void register_losses(nb::module_& m) {
  auto pairwise = [&m](const char* name, auto loss) {
    m.def(
        name,
        [name, loss](nb::handle student, nb::handle teacher, bool centered, bool row_normalize, bool debiased,
                     const std::string& on_undefined, const std::string& products) {
          const auto o = options_of(name, centered, row_normalize, debiased, on_undefined, products);
          return matrix_loss(name, student, teacher,
                             [&](const auto& s, const auto& t, auto& g) { return loss(s, t, g, o); });
        },
        "student"_a, "teacher"_a, nb::kw_only(), "centered"_a = true, "row_normalize"_a = false,
        "debiased"_a = false, "on_undefined"_a = "skip", "products"_a = "exact");
  };
  pairwise("sample_relation_loss", [](const auto& s, const auto& t, auto& g, const auto& o) {
    return cka::rcka::sample_relation_loss(s, t, g, o);
  });
  pairwise("class_relation_loss", [](const auto& s, const auto& t, auto& g, const auto& o) {
    return cka::rcka::class_relation_loss(s, t, g, o);
  });
  pairwise("feature_loss",
           [](const auto& s, const auto& t, auto& g, const auto& o) { return cka::rcka::feature_loss(s, t, g, o); });

  m.def(
      "rcka_loss",
      [](nb::handle student, nb::handle teacher, double sample, double cls, bool centered, bool row_normalize,
         bool debiased, const std::string& on_undefined, const std::string& products) {
        const char* fn = "rcka_loss";
        const auto o = options_of(fn, centered, row_normalize, debiased, on_undefined, products);
        const cka::rcka::rcka_weights w{sample, cls};
        return matrix_loss(fn, student, teacher,
                           [&](const auto& s, const auto& t, auto& g) { return cka::rcka::rcka_loss(s, t, g, w, o); });
      },
      "student"_a, "teacher"_a, nb::kw_only(), "sample"_a = 1.0, "cls"_a = 1.0, "centered"_a = true,
      "row_normalize"_a = false, "debiased"_a = false, "on_undefined"_a = "skip", "products"_a = "exact");

  m.def(
      "patch_loss",
      [](nb::handle student, nb::handle teacher, nb::handle patch_h, nb::handle patch_w, bool centered,
         bool row_normalize, bool debiased, const std::string& on_undefined, const std::string& products) {
        const char* fn = "patch_loss";
        const auto o = options_of(fn, centered, row_normalize, debiased, on_undefined, products);
        const index ph = index(int_arg(fn, "patch_h", patch_h)), pw = index(int_arg(fn, "patch_w", patch_w));
        index ss[4], ts[4];
        matrix_arg s = to_maps(fn, "student", student, ss), t = to_maps(fn, "teacher", teacher, ts);
        if (ss[0] != ts[0] || ss[1] != ts[1] || ss[2] != ts[2] || ss[3] != ts[3]) {
          value_error("cka.patch_loss: student has shape (" + std::to_string(ss[0]) + ", " + std::to_string(ss[1]) +
                      ", " + std::to_string(ss[2]) + ", " + std::to_string(ss[3]) + ") but teacher (" +
                      std::to_string(ts[0]) + ", " + std::to_string(ts[1]) + ", " + std::to_string(ts[2]) + ", " +
                      std::to_string(ts[3]) + "); PCKA compares maps of one shape");
        }
        if (s.is_double != t.is_double) {
          type_error("cka.patch_loss: student and teacher have different dtypes; pass both in one dtype");
        }
        const cka::rcka::map_shape shape{ss[0], ss[1], ss[2], ss[3]};
        return visit2(s, t, [&](const auto& sv, const auto& tv) {
          using T = typename std::decay_t<decltype(sv)>::Scalar;
          cka::rcka::loss_result<T> r;
          {
            unlocked_computation unlocked;
            r = cka::rcka::patch_loss(sv, tv, shape, ph, pw, o);
          }
          // The gradient, one column in NCHW order (to_maps), is the maps' shape in C order: handed out as it is.
          auto* owned = new cka::matrix<T>(std::move(r.grad));
          nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<cka::matrix<T>*>(p); });
          const std::size_t dims[4] = {std::size_t(ss[0]), std::size_t(ss[1]), std::size_t(ss[2]), std::size_t(ss[3])};
          nb::object grad = nb::cast(nb::ndarray<nb::numpy, T>(owned->data(), 4, dims, owner));
          return nb::make_tuple(double(r.value), grad, (long long)r.skipped);
        });
      },
      "student"_a, "teacher"_a, nb::kw_only(), "patch_h"_a = 16, "patch_w"_a = 16, "centered"_a = true,
      "row_normalize"_a = false, "debiased"_a = false, "on_undefined"_a = "skip", "products"_a = "exact");
}

}  // namespace cka::python
