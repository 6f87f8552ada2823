// Significance: permutation and analytic independence tests, jackknife intervals.

#include "common.hpp"

#include <cka/inference.hpp>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

namespace cka::python {

using namespace nb::literals;

void register_inference(nb::module_& m) {
  m.def(
      "permutation_test",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool debiased, nb::handle permutations, nb::handle seed) {
        const char* fn = "permutation_test";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        cka::permutation_options o;
        o.count = std::size_t(int_arg(fn, "permutations", permutations, 1, std::numeric_limits<long long>::max()));
        o.seed = seed_arg(fn, seed);
        const cka::estimator est = estimator_of(debiased);
        unlocked_computation unlocked;
        const cka::permutation_result r = std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) { return cka::permutation_test(xv, yv, kk, est, o); });
            },
            k);
        return std::make_tuple(r.value, r.p_value, (long long)r.permutations);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "debiased"_a = false, "permutations"_a = 1000,
      "seed"_a = 0);

  m.def(
      "independence_test",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool debiased) {
        const char* fn = "independence_test";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        const cka::estimator est = estimator_of(debiased);
        unlocked_computation unlocked;
        const cka::independence_result r = std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) { return cka::independence_test(xv, yv, kk, est); });
            },
            k);
        return std::make_tuple(r.value, r.z, r.p_value, r.degenerate);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "debiased"_a = false);

  m.def(
      "jackknife",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool debiased, double level) {
        const char* fn = "jackknife";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        const cka::estimator est = estimator_of(debiased);
        cka::jackknife_options o;
        o.level = level;
        cka::jackknife_result r;
        {
          unlocked_computation unlocked;
          r = std::visit(
              [&](const auto& kk) {
                return visit2(xa, ya, [&](const auto& xv, const auto& yv) { return cka::jackknife(xv, yv, kk, est, o); });
              },
              k);
        }
        return nb::make_tuple(r.value, r.standard_error, r.lower, r.upper, to_numpy(std::move(r.leave_one_out)));
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "debiased"_a = false, "level"_a = 0.95);
}

}  // namespace cka::python
