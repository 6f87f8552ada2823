// similarity_matrix and similarity_tests: CKA (and its significance) of every pair of layers, or of one
// list against another.

#include "common.hpp"

#include <cka/inference.hpp>
#include <cka/similarity_matrix.hpp>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <limits>

namespace cka::python {

using namespace nb::literals;

namespace {

std::vector<matrix_arg> layers_of(const char* fn, const char* name, nb::handle list) {
  nb::ndarray<nb::ro> one;
  if (!nb::isinstance<nb::sequence>(list) || nb::isinstance<nb::str>(list) || nb::try_cast(list, one, false)) {
    type_error(std::string("cka.") + fn + ": " + name + " must be a list of 2-D arrays, not " + py_type_name(list));
  }
  std::vector<matrix_arg> out;
  std::size_t i = 0;
  for (nb::handle h : list) {
    const std::string label = std::string(name) + "[" + std::to_string(i++) + "]";
    out.push_back(to_matrix(fn, label.c_str(), h));
  }
  return out;
}

/// Calls f(std::vector<view>) with one view type for all layers: float64 if any layer is, C order unless
/// every layer is Fortran-ordered (the others are copied once).
template <class F>
decltype(auto) visit_layers(std::vector<matrix_arg>& all, F&& f) {
  bool any_double = false, all_col = !all.empty();
  for (const auto& m : all) {
    any_double = any_double || m.is_double;
    all_col = all_col && !m.row_major;
  }
  for (auto& m : all) {
    if (any_double) promote(m);
    if (!all_col) make_row_major(m);
  }
  auto with = [&](auto tag, auto order) -> decltype(auto) {
    using T = decltype(tag);
    constexpr int O = decltype(order)::value;
    std::vector<map_of<T, O>> views;
    views.reserve(all.size());
    for (const auto& m : all) views.emplace_back(static_cast<const T*>(m.ptr()), m.rows, m.cols, Eigen::OuterStride<>(m.outer));
    return f(views);
  };
  using row = std::integral_constant<int, Eigen::RowMajor>;
  using col = std::integral_constant<int, Eigen::ColMajor>;
  if (any_double) return all_col ? with(double{}, col{}) : with(double{}, row{});
  return all_col ? with(float{}, col{}) : with(float{}, row{});
}

/// A `progress` argument (False, True: a line on stderr, or a callable (done, total)) as the library's
/// callback. An exception from the callable stops the computation (on the calling thread; the library
/// carries it out of its parallel loops): catch `failed` around the call and `rethrow()` it.
class progress_report {
 public:
  struct failed {};
  progress_report(const char* fn, nb::handle progress) : fn_(fn), progress_(progress) {
    if (!progress.is_none() && !PyCallable_Check(progress.ptr()) && !nb::isinstance<nb::bool_>(progress)) {
      type_error(std::string("cka.") + fn + ": progress must be a bool or a callable (done, total), not " +
                 py_type_name(progress));
    }
  }
  std::function<void(std::size_t, std::size_t)> callback() const {
    if (PyCallable_Check(progress_.ptr())) {
      // A handle, not an object: the library copies the options without the GIL, and a handle's copy
      // touches no reference count (the caller's reference keeps the callable alive for the call).
      nb::handle cb = progress_;
      std::exception_ptr* error = &error_;
      return [cb, error](std::size_t done, std::size_t total) {
        nb::gil_scoped_acquire locked;
        try {
          cb(done, total);
        } catch (...) {
          *error = std::current_exception();
          throw failed{};
        }
      };
    }
    if (nb::isinstance<nb::bool_>(progress_) && nb::cast<bool>(progress_)) {
      const char* fn = fn_;
      return [fn](std::size_t done, std::size_t total) {
        std::fprintf(stderr, "\rcka.%s: %zu/%zu%s", fn, done, total, done == total ? "\n" : "");
      };
    }
    return {};
  }
  [[noreturn]] void rethrow() const { std::rethrow_exception(error_); }

 private:
  const char* fn_;
  nb::handle progress_;
  mutable std::exception_ptr error_;
};

/// `layers` and, with `vs`, the columns' layers after them (`rows` counts the first list).
struct layer_lists {
  std::vector<matrix_arg> all;
  std::size_t rows = 0;
  bool square = true;
};
layer_lists layer_lists_of(const char* fn, nb::handle layers, nb::handle vs) {
  layer_lists l;
  l.all = layers_of(fn, "layers", layers);
  l.rows = l.all.size();
  l.square = vs.is_none();
  if (!l.square) {
    std::vector<matrix_arg> cols = layers_of(fn, "vs", vs);
    for (auto& c : cols) l.all.push_back(std::move(c));
  }
  return l;
}

/// f(rows, cols, kernel) under the kernel's type and one view type for all layers (visit_layers): cols
/// points at the columns' views, or is null for the square form.
template <class F>
decltype(auto) on_layer_views(layer_lists& l, const kernel& k, F&& f) {
  return std::visit(
      [&](const auto& kk) {
        return visit_layers(l.all, [&](const auto& views) {
          using V = typename std::decay_t<decltype(views)>::value_type;
          if (l.square) return f(views, static_cast<const std::vector<V>*>(nullptr), kk);
          const std::vector<V> first(views.begin(), views.begin() + std::ptrdiff_t(l.rows));
          const std::vector<V> second(views.begin() + std::ptrdiff_t(l.rows), views.end());
          return f(first, &second, kk);
        });
      },
      k);
}

std::vector<std::pair<std::size_t, std::string>> undefined_of(const std::vector<cka::undefined_layer>& layers) {
  std::vector<std::pair<std::size_t, std::string>> out;
  for (const auto& u : layers) out.emplace_back(u.layer, u.cause);
  return out;
}

}  // namespace

void register_matrix(nb::module_& m) {
  m.def(
      "similarity_matrix",
      [](nb::handle layers, nb::handle kernel_arg, nb::handle vs, bool debiased, nb::handle minibatch,
         nb::handle progress, std::optional<double> max_bytes) {
        const char* fn = "similarity_matrix";
        layer_lists lists = layer_lists_of(fn, layers, vs);
        const kernel k = to_kernel(fn, kernel_arg);
        cka::similarity_matrix_options o;
        o.est = estimator_of(debiased);
        if (!minibatch.is_none()) {
          const long long b = int_arg(fn, "minibatch", minibatch);
          if (b < 4) {
            value_error("cka.similarity_matrix: minibatch = " + std::to_string(b) +
                        "; minibatch CKA needs batches of at least 4 samples (or None for all samples at once)");
          }
          o.minibatch = Eigen::Index(b);
        }
        const progress_report report(fn, progress);
        o.progress = report.callback();
        const cka::compute_options co = compute_of(fn, max_bytes);
        cka::basic_similarity_result<double> r;
        try {
          unlocked_computation unlocked;
          r = on_layer_views(lists, k, [&](const auto& rows, const auto* cols, const auto& kk) {
            return cols ? cka::similarity_matrix(rows, *cols, kk, o, co) : cka::similarity_matrix(rows, kk, o, co);
          });
        } catch (const progress_report::failed&) {
          report.rethrow();
        }
        return nb::make_tuple(to_numpy(std::move(r.values)), undefined_of(r.undefined), (long long)r.dropped_samples);
      },
      "layers"_a, "kernel"_a = nb::none(), nb::kw_only(), "vs"_a = nb::none(), "debiased"_a = false,
      "minibatch"_a = nb::none(), "progress"_a = false, "max_bytes"_a = nb::none());

  m.def(
      "similarity_tests",
      [](nb::handle layers, nb::handle kernel_arg, nb::handle vs, bool debiased, nb::handle permutations, nb::handle seed,
         double level, nb::handle progress, std::optional<double> max_bytes) {
        const char* fn = "similarity_tests";
        layer_lists lists = layer_lists_of(fn, layers, vs);
        const kernel k = to_kernel(fn, kernel_arg);
        cka::similarity_tests_options o;
        o.est = estimator_of(debiased);
        o.permutations = std::size_t(int_arg(fn, "permutations", permutations, 0, std::numeric_limits<long long>::max()));
        o.seed = seed_arg(fn, seed);
        o.level = level;
        o.max_bytes = compute_of(fn, max_bytes).max_bytes;
        const progress_report report(fn, progress);
        o.progress = report.callback();
        cka::similarity_tests_result r;
        try {
          unlocked_computation unlocked;
          r = on_layer_views(lists, k, [&](const auto& rows, const auto* cols, const auto& kk) {
            return cols ? cka::similarity_tests(rows, *cols, kk, o) : cka::similarity_tests(rows, kk, o);
          });
        } catch (const progress_report::failed&) {
          report.rethrow();
        }
        nb::object lower = nb::none(), upper = nb::none();
        if (level > 0) {
          lower = to_numpy(std::move(r.lower));
          upper = to_numpy(std::move(r.upper));
        }
        return nb::make_tuple(to_numpy(std::move(r.values)), to_numpy(std::move(r.p_value)), lower, upper,
                              undefined_of(r.undefined), r.degenerate);
      },
      "layers"_a, "kernel"_a = nb::none(), nb::kw_only(), "vs"_a = nb::none(), "debiased"_a = false,
      "permutations"_a = 0, "seed"_a = 0, "level"_a = 0.0, "progress"_a = false, "max_bytes"_a = nb::none());
}

}  // namespace cka::python
