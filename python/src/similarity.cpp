// Pairwise functions: linear and kernel CKA, HSIC and CKA of Grams, MMD², the CKA–MMD decomposition.

#include "common.hpp"

#include <cka/cka.hpp>
#include <cka/mmd_bound.hpp>

#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

namespace cka::python {

using namespace nb::literals;

namespace {

/// f(x, y, *, debiased=False) -> float over two matrices named a and b.
template <class Op>
void def_pair(nb::module_& m, const char* name, const char* a, const char* b, const char* doc, Op op) {
  m.def(
      name,
      [name, a, b, op](nb::handle x, nb::handle y, bool debiased) {
        matrix_arg xa = to_matrix(name, a, x), ya = to_matrix(name, b, y);
        const cka::estimator est = estimator_of(debiased);
        unlocked_computation unlocked;
        return visit2(xa, ya, [&](const auto& xv, const auto& yv) { return double(op(xv, yv, est)); });
      },
      nb::arg(a), nb::arg(b), nb::kw_only(), "debiased"_a = false, doc);
}

/// f(x, y, kernel=None, *, debiased=False, max_bytes=None) -> float.
template <class Op>
void def_kernel_pair(nb::module_& m, const char* name, const char* doc, Op op) {
  m.def(
      name,
      [name, op](nb::handle x, nb::handle y, nb::handle kernel_arg, bool debiased, std::optional<double> max_bytes) {
        matrix_arg xa = to_matrix(name, "x", x), ya = to_matrix(name, "y", y);
        const kernel k = to_kernel(name, kernel_arg);
        const cka::estimator est = estimator_of(debiased);
        const cka::compute_options co = compute_of(name, max_bytes);
        unlocked_computation unlocked;
        return std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) { return double(op(xv, yv, kk, est, co)); });
            },
            k);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "debiased"_a = false, "max_bytes"_a = nb::none(), doc);
}

}  // namespace

void register_similarity(nb::module_& m) {
  def_pair(m, "linear_cka", "x", "y",
           "Linear CKA of x (n, d1) and y (n, d2): ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), Xc the\n"
           "column-centered x; debiased=True: Song et al.'s unbiased HSIC in all three terms (may be negative).\n"
           "Cost min(n (d1+d2)^2, n^2 (d1+d2)). ValueError for different n, n < 2 (4 debiased), NaN/Inf;\n"
           "cka.UndefinedError for a constant representation.",
           [](const auto& x, const auto& y, cka::estimator est) { return cka::linear_cka(x, y, est); });
  def_pair(m, "hsic", "k", "l",
           "HSIC of two symmetric n x n Grams: tr(KHLH)/(n-1)^2, or Song et al.'s unbiased estimator\n"
           "(debiased=True, n >= 4, may be negative). O(n^2), no copy. ValueError for a non-square,\n"
           "asymmetric or non-finite Gram.",
           [](const auto& k, const auto& l, cka::estimator est) { return cka::hsic(k, l, est); });
  def_pair(m, "gram_cka", "k", "l",
           "CKA of two symmetric Grams: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), one estimator in all three\n"
           "terms. O(n^2), no copy. Errors as hsic; cka.UndefinedError when a Gram is constant after centering.",
           [](const auto& k, const auto& l, cka::estimator est) { return cka::gram_cka(k, l, est); });
  def_kernel_pair(m, "kernel_cka",
                  "CKA of gram(x, kernel) and gram(y, kernel) (a median bandwidth resolved per representation);\n"
                  "kernel: cka.Linear() (None), cka.RBF(...), cka.Polynomial(...), 'linear' or 'rbf'. RBF and\n"
                  "polynomial run on the tile engine: tiles stored within max_bytes (default: half the memory),\n"
                  "else recomputed, nothing n x n. Errors as linear_cka; cka.UndefinedError for a zero median\n"
                  "bandwidth or an overflow.",
                  [](const auto& x, const auto& y, const auto& k, cka::estimator est, const cka::compute_options& co) {
                    return cka::kernel_cka(x, y, k, est, co);
                  });
  def_kernel_pair(m, "mmd2",
                  "Squared MMD between samples x (m, d) and y (n, d) (Gretton et al. 2012): biased\n"
                  "mean(Kxx) + mean(Kyy) - 2 mean(Kxy), or debiased=True with the diagonals left out. The\n"
                  "kernel acts on the pooled sample (a median bandwidth from the pooled distances); the linear\n"
                  "kernel takes the closed form ||mean(x) - mean(y)||^2 in O((m+n) d).",
                  [](const auto& x, const auto& y, const auto& k, cka::estimator est, const cka::compute_options& co) {
                    return cka::mmd2(x, y, k, est, co);
                  });

  m.def(
      "mmd_bound",
      [](nb::handle x, nb::handle y, nb::handle kernel_arg, bool centered) {
        const char* fn = "mmd_bound";
        matrix_arg xa = to_matrix(fn, "x", x), ya = to_matrix(fn, "y", y);
        const kernel k = to_kernel(fn, kernel_arg);
        unlocked_computation unlocked;
        return std::visit(
            [&](const auto& kk) {
              return visit2(xa, ya, [&](const auto& xv, const auto& yv) {
                const auto r = cka::mmd_bound(xv, yv, kk, cka::mmd_bound_options{centered});
                return std::array<double, 5>{double(r.alignment), double(r.constant), double(r.discrepancy),
                                             double(r.mean_gap), double(r.bound)};
              });
            },
            k);
      },
      "x"_a, "y"_a, "kernel"_a = nb::none(), nb::kw_only(), "centered"_a = false);
}

}  // namespace cka::python
