// cka._core_<target>: the library's functions on arrays from NumPy, PyTorch, JAX and anything with
// __dlpack__, compiled once per instruction-set target (CKA_PYTHON_MODULE, CKA_PYTHON_TARGET; see
// python/CMakeLists.txt); cka/_core.py imports the one this processor runs best.
// cka::invalid_argument becomes ValueError, cka::domain_error (an undefined value) cka.UndefinedError (a
// ValueError), cka::backend_error (a failed backend or resource) cka.BackendError (a RuntimeError); the
// pure-Python package `cka` re-exports these names.

#include "common.hpp"

#include <cka/version.hpp>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

namespace cka::python {

void register_kernels(nb::module_& m) {
  nb::class_<cka::linear_kernel>(m, "Linear", "The linear kernel k(x, y) = ⟨x, y⟩.")
      .def(nb::init<>())
      .def("__repr__", [](const cka::linear_kernel&) { return "cka.Linear()"; });

  nb::class_<cka::rbf_kernel>(m, "RBF",
                              "The Gaussian kernel exp(−‖x − y‖² / (2σ²)).\n\n"
                              "RBF(sigma=s) fixes σ; RBF() or RBF(median=f, rule=r) sets σ² = f² · median of the "
                              "squared distances, per representation. rule: 'all_pairs' (all n² entries with the "
                              "zero diagonal, NumPy's median: Kornblith et al.), 'off_diagonal' (the n(n−1)/2 "
                              "pairs) or 'nonzero' (pairs at a positive distance).")
      .def(
          "__init__",
          [](cka::rbf_kernel* self, std::optional<double> sigma, double median, const std::string& rule) {
            const cka::median_rule r = choice_of("RBF", "rule", rule, median_rules);
            if (sigma) {
              new (self) cka::rbf_kernel(*sigma);
            } else {
              new (self) cka::rbf_kernel(cka::rbf_kernel::median(median, r));
            }
          },
          nb::arg("sigma") = nb::none(), nb::arg("median") = 1.0, nb::arg("rule") = "all_pairs")
      .def_prop_ro("sigma", [](const cka::rbf_kernel& k) -> std::optional<double> {
        if (k.uses_median()) return std::nullopt;
        return k.sigma();
      })
      .def_prop_ro("median", [](const cka::rbf_kernel& k) -> std::optional<double> {
        if (!k.uses_median()) return std::nullopt;
        return k.fraction();
      })
      .def_prop_ro("rule", [](const cka::rbf_kernel& k) { return name_of(median_rules, k.rule()); })
      .def("__repr__", [](const cka::rbf_kernel& k) {
        if (!k.uses_median()) return "cka.RBF(sigma=" + std::string(nb::str(nb::float_(k.sigma())).c_str()) + ")";
        return "cka.RBF(median=" + std::string(nb::str(nb::float_(k.fraction())).c_str()) + ", rule='" +
               name_of(median_rules, k.rule()) + "')";
      });

  nb::class_<cka::polynomial_kernel>(m, "Polynomial", "The polynomial kernel (gamma·⟨x, y⟩ + coef0)^degree.")
      .def(
          "__init__",
          [](cka::polynomial_kernel* self, nb::handle degree, double gamma, double coef0) {
            const long long d = int_arg("Polynomial", "degree", degree, 1, std::numeric_limits<int>::max());
            new (self) cka::polynomial_kernel{int(d), gamma, coef0};
            self->require_valid();
          },
          nb::arg("degree") = 2, nb::arg("gamma") = 1.0, nb::arg("coef0") = 1.0)
      .def_ro("degree", &cka::polynomial_kernel::degree)
      .def_ro("gamma", &cka::polynomial_kernel::gamma)
      .def_ro("coef0", &cka::polynomial_kernel::coef0)
      .def("__repr__", [](const cka::polynomial_kernel& k) {
        return "cka.Polynomial(degree=" + std::to_string(k.degree) + ", gamma=" +
               std::string(nb::str(nb::float_(k.gamma)).c_str()) + ", coef0=" +
               std::string(nb::str(nb::float_(k.coef0)).c_str()) + ")";
      });
}

}  // namespace cka::python

NB_MODULE(CKA_PYTHON_MODULE, m) {
  using namespace cka::python;
  m.doc() = "cka's compiled core; use the package `cka`.";
  m.attr("built_for") = CKA_PYTHON_TARGET;  // "baseline", "native" or "x86-64-v3"
  m.attr("__version__") = std::to_string(CKA_VERSION_MAJOR) + "." + std::to_string(CKA_VERSION_MINOR) + "." +
                          std::to_string(CKA_VERSION_PATCH);
  // cka::domain_error (undefined for these data, or overflow) → cka.UndefinedError, a ValueError;
  // std::invalid_argument (cka::invalid_argument, cka::npy::error) → ValueError by nanobind's default.
  nb::exception<cka::domain_error>(m, "UndefinedError", PyExc_ValueError);
  // cka::backend_error (a backend or resource failed, not the data) → cka.BackendError, a RuntimeError.
  nb::exception<cka::backend_error>(m, "BackendError", PyExc_RuntimeError);
  // A computation stopped by a signal (unlocked_computation): the handler's exception, KeyboardInterrupt.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const interrupted&) {
      raise_pending_signal();
    }
  });
  register_kernels(m);
  register_similarity(m);
  register_matrix(m);
  register_inference(m);
  register_losses(m);
  register_states(m);
  register_heatmap(m);
#if defined(CKA_PYTHON_CUDA)
  register_cuda_losses(m);  // the losses on CUDA tensors; sets has_cuda
#else
  m.attr("has_cuda") = false;
#endif
}
