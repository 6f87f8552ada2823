// Pairwise functions: linear and kernel CKA, HSIC and CKA of Grams, MMD², the CKA–MMD decomposition.

#include "common.hpp"

#include <cka/cka.hpp>
#include <cka/mmd_bound.hpp>

#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

namespace cka::python {

using namespace nb::literals;

void register_similarity(nb::module_& m) {
  m.def(
      "linear_cka",
      [](nb::handle x, nb::handle y, bool debiased) {
        matrix_arg xa = to_matrix("linear_cka", "x", x), ya = to_matrix("linear_cka", "y", y);
        const cka::estimator est = estimator_of(debiased);
        nb::gil_scoped_release unlocked;
        return visit2(xa, ya, [&](const auto& xv, const auto& yv) { return double(cka::linear_cka(xv, yv, est)); });
      },
      "x"_a, "y"_a, nb::kw_only(), "debiased"_a = false);

  m.def(
      "kernel_cka",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool debiased, std::optional<double> max_bytes) {
        const char* fn = "kernel_cka";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        const cka::estimator est = estimator_of(debiased);
        const cka::compute_options co = compute_of(fn, max_bytes);
        nb::gil_scoped_release unlocked;
        return std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) {
                return double(cka::kernel_cka(xv, yv, kk, est, co));
              });
            },
            k);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "debiased"_a = false, "max_bytes"_a = nb::none());

  m.def(
      "hsic",
      [](nb::handle k, nb::handle l, bool debiased) {
        matrix_arg ka = to_matrix("hsic", "k", k), la = to_matrix("hsic", "l", l);
        const cka::estimator est = estimator_of(debiased);
        nb::gil_scoped_release unlocked;
        return visit2(ka, la, [&](const auto& kv, const auto& lv) { return double(cka::hsic(kv, lv, est)); });
      },
      "k"_a, "l"_a, nb::kw_only(), "debiased"_a = false);

  m.def(
      "gram_cka",
      [](nb::handle k, nb::handle l, bool debiased) {
        matrix_arg ka = to_matrix("gram_cka", "k", k), la = to_matrix("gram_cka", "l", l);
        const cka::estimator est = estimator_of(debiased);
        nb::gil_scoped_release unlocked;
        return visit2(ka, la, [&](const auto& kv, const auto& lv) { return double(cka::gram_cka(kv, lv, est)); });
      },
      "k"_a, "l"_a, nb::kw_only(), "debiased"_a = false);

  m.def(
      "mmd2",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool debiased, std::optional<double> max_bytes) {
        const char* fn = "mmd2";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        const cka::estimator est = estimator_of(debiased);
        const cka::compute_options co = compute_of(fn, max_bytes);
        nb::gil_scoped_release unlocked;
        return std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) {
                return double(cka::mmd2(xv, yv, kk, est, co));
              });
            },
            k);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "debiased"_a = false, "max_bytes"_a = nb::none());

  m.def(
      "mmd_bound",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool centered) {
        const char* fn = "mmd_bound";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        nb::gil_scoped_release unlocked;
        return std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) {
                const auto r = cka::mmd_bound(xv, yv, kk, centered);
                return std::array<double, 5>{double(r.alignment), double(r.constant), double(r.discrepancy),
                                             double(r.mean_gap), double(r.bound)};
              });
            },
            k);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "centered"_a = false);
}

}  // namespace cka::python
