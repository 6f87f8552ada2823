#pragma once
// Shared by the binding's translation units: kernels from Python objects, estimator flags, results as
// NumPy arrays without a copy, and the registration functions of each unit.

#include "arrays.hpp"

#include <cka/compute.hpp>
#include <cka/estimator.hpp>
#include <cka/interrupt.hpp>
#include <cka/kernels.hpp>
#include <cka/rcka_options.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace cka::python {

using kernel = std::variant<cka::linear_kernel, cka::rbf_kernel, cka::polynomial_kernel>;

/// An integer argument — a Python int or anything with __index__ (NumPy integers) — as a Python int
/// (new reference): TypeError naming fn and name for another type (2.5, "3").
inline nb::object index_of(const char* fn, const char* name, nb::handle h) {
  PyObject* i = PyNumber_Index(h.ptr());
  if (i == nullptr) {
    PyErr_Clear();
    type_error(std::string("cka.") + fn + ": " + name + " must be an int, not " + py_type_name(h));
  }
  return nb::steal(i);
}

/// index_of's value within [lo, hi] (by default: any that fits in 64 bits), else ValueError naming fn,
/// name and the value (2**70 included); the range checks of the library itself follow.
inline long long int_arg(const char* fn, const char* name, nb::handle h,
                         long long lo = std::numeric_limits<long long>::min(),
                         long long hi = std::numeric_limits<long long>::max()) {
  const nb::object i = index_of(fn, name, h);
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 && lo == std::numeric_limits<long long>::min() && hi == std::numeric_limits<long long>::max()) {
    value_error(std::string("cka.") + fn + ": " + name + " = " + nb::str(i).c_str() + " does not fit in 64 bits");
  }
  if (overflow != 0 || v < lo || v > hi) {
    value_error(std::string("cka.") + fn + ": " + name + " = " + nb::str(i).c_str() + " must lie in [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v;
}

/// A seed: an int in [0, 2^64), else TypeError or ValueError naming fn.
inline unsigned long long seed_arg(const char* fn, nb::handle h) {
  const nb::object i = index_of(fn, "seed", h);
  const unsigned long long v = PyLong_AsUnsignedLongLong(i.ptr());
  if (PyErr_Occurred() != nullptr) {
    PyErr_Clear();
    value_error(std::string("cka.") + fn + ": seed = " + nb::str(i).c_str() + " must lie in [0, 2**64)");
  }
  return v;
}

/// The kernel of a `kernel=` argument: a cka.Linear, cka.RBF or cka.Polynomial object, or the names
/// "linear" and "rbf" (the median rule with fraction 1); None is the linear kernel.
inline kernel to_kernel(const char* fn, nb::handle h) {
  if (h.is_none()) return cka::linear_kernel{};
  if (nb::isinstance<cka::linear_kernel>(h)) return nb::cast<cka::linear_kernel>(h);
  if (nb::isinstance<cka::rbf_kernel>(h)) return nb::cast<cka::rbf_kernel>(h);
  if (nb::isinstance<cka::polynomial_kernel>(h)) return nb::cast<cka::polynomial_kernel>(h);
  if (nb::isinstance<nb::str>(h)) {
    const std::string name = nb::cast<std::string>(h);
    if (name == "linear") return cka::linear_kernel{};
    if (name == "rbf") return cka::rbf_kernel::median();
    value_error(std::string("cka.") + fn + ": kernel '" + name + "' is not known; use 'linear', 'rbf', "
                "cka.Linear(), cka.RBF(...) or cka.Polynomial(...)");
  }
  type_error(std::string("cka.") + fn + ": kernel must be cka.Linear(), cka.RBF(...), cka.Polynomial(...), "
             "'linear' or 'rbf', not " + py_type_name(h));
}

/// One of a keyword's named values: `Value choice_of(where, name, given, table)` gives the value that
/// `table` pairs with the string `given`, else raises ValueError "cka.<where>: <name> = '<given>'; use 'a',
/// 'b' or 'c'"; `name_of(table, value)` is the inverse.
template <class Value, std::size_t N>
using choices = std::pair<const char*, Value>[N];

template <class Value, std::size_t N>
Value choice_of(const std::string& where, const char* name, const std::string& given, const choices<Value, N>& table) {
  for (const auto& [text, value] : table) {
    if (given == text) return value;
  }
  std::string allowed;
  for (std::size_t i = 0; i < N; ++i) {
    allowed += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + "'" + table[i].first + "'";
  }
  value_error("cka." + where + ": " + name + " = '" + given + "'; use " + allowed);
}

template <class Value, std::size_t N>
const char* name_of(const choices<Value, N>& table, Value value) {
  for (const auto& [text, v] : table) {
    if (v == value) return text;
  }
  return "?";
}

inline constexpr choices<cka::median_rule, 3> median_rules = {{"all_pairs", cka::median_rule::all_pairs},
                                                              {"off_diagonal", cka::median_rule::off_diagonal},
                                                              {"nonzero", cka::median_rule::nonzero}};
inline constexpr choices<cka::rcka::undefined_policy, 2> undefined_policies = {
    {"skip", cka::rcka::undefined_policy::skip}, {"raise", cka::rcka::undefined_policy::raise}};
inline constexpr choices<cka::rcka::product_precision, 2> product_precisions = {
    {"exact", cka::rcka::product_precision::exact}, {"input", cka::rcka::product_precision::input}};

inline cka::estimator estimator_of(bool debiased) {
  return debiased ? cka::estimator::unbiased : cka::estimator::biased;
}

/// The relation_options of the losses' keyword arguments; on_undefined is "skip" or "raise", products
/// "exact" or "input".
inline cka::rcka::relation_options options_of(const char* fn, bool centered, bool row_normalize, bool debiased,
                                              const std::string& on_undefined, const std::string& products) {
  cka::rcka::relation_options o;
  o.centered = centered;
  o.row_normalize = row_normalize;
  o.est = estimator_of(debiased);
  o.on_undefined = choice_of(fn, "on_undefined", on_undefined, undefined_policies);
  o.products = choice_of(fn, "products", products, product_precisions);
  return o;
}

/// compute_options with a byte budget (None: the library's default, half the physical memory).
inline cka::compute_options compute_of(const char* fn, std::optional<double> max_bytes) {
  cka::compute_options co;
  if (max_bytes) {
    if (!(*max_bytes >= 1.0 && *max_bytes < 9.0e18)) {
      std::ostringstream given;  // as Python would print it: 0, 0.5, 1.18059e+21, nan
      given << *max_bytes;
      value_error(std::string("cka.") + fn + ": max_bytes = " + given.str() + "; give a number of bytes from 1 to 9e18, or None");
    }
    co.max_bytes = std::size_t(*max_bytes);
  }
  return co;
}

/// Thrown through the library by the signal check of `unlocked_computation` when a Python signal handler
/// raised (Ctrl-C: KeyboardInterrupt); the module's translator raises that exception again in Python.
struct interrupted {};

/// The exception a signal handler raised during this thread's computation, held (owned) until the
/// translator gives it back to Python.
struct pending_signal {
  PyObject* type = nullptr;
  PyObject* value = nullptr;
  PyObject* trace = nullptr;
};
inline pending_signal& this_thread_signal() {
  thread_local pending_signal held;
  return held;
}

/// Releases the GIL for a computation and lets Ctrl-C stop it: on Python's main thread (the only one that
/// runs signal handlers) the library's long loops run them every 50 ms or so, taking the GIL for the
/// moment; when one raises, the computation is abandoned and its exception (KeyboardInterrupt) is raised
/// as the call returns. Without a signal the cost is a clock read per unit of work; on other threads,
/// nothing.
class unlocked_computation {
 public:
  unlocked_computation() = default;
  unlocked_computation(const unlocked_computation&) = delete;
  unlocked_computation& operator=(const unlocked_computation&) = delete;

 private:
  /// Whether the caller (holding the GIL) is Python's main thread.
  static bool on_main_thread() {
    static const unsigned long main_ident =
        nb::cast<unsigned long>(nb::module_::import_("threading").attr("main_thread")().attr("ident"));
    return PyThread_get_thread_ident() == main_ident;
  }
  static void run_signal_handlers() {
    nb::gil_scoped_acquire locked;
    if (PyErr_CheckSignals() == 0) return;
    pending_signal& held = this_thread_signal();
    Py_CLEAR(held.type);
    Py_CLEAR(held.value);
    Py_CLEAR(held.trace);
#if PY_VERSION_HEX >= 0x030C0000
    held.value = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&held.type, &held.value, &held.trace);
#endif
    throw interrupted{};
  }
  const bool main_ = on_main_thread();
  nb::gil_scoped_release unlocked_;  // released after the question above, taken back last
  cka::interrupt_check check_{main_ ? std::function<void()>(&unlocked_computation::run_signal_handlers) : nullptr};
};

/// The exception translator's part: raises the held signal exception (KeyboardInterrupt if none is held).
inline void raise_pending_signal() {
  pending_signal& held = this_thread_signal();
#if PY_VERSION_HEX >= 0x030C0000
  if (held.value != nullptr) {
    PyErr_SetRaisedException(held.value);  // steals the reference
    held = pending_signal{};
    return;
  }
#else
  if (held.type != nullptr) {
    PyErr_Restore(held.type, held.value, held.trace);  // steals the references
    held = pending_signal{};
    return;
  }
#endif
  PyErr_SetNone(PyExc_KeyboardInterrupt);
}

/// A NumPy array that owns an Eigen matrix (moved, not copied), in the matrix's storage order.
template <class M>
nb::object to_numpy(M&& value) {
  using plain = std::decay_t<M>;
  using T = typename plain::Scalar;
  auto* owned = new plain(std::forward<M>(value));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<plain*>(p); });
  const std::size_t shape[2] = {std::size_t(owned->rows()), std::size_t(owned->cols())};
  const int64_t strides[2] = {plain::IsRowMajor ? int64_t(owned->cols()) : 1,
                              plain::IsRowMajor ? 1 : int64_t(owned->rows())};
  return nb::cast(nb::ndarray<nb::numpy, T>(owned->data(), 2, shape, owner, strides));
}

/// A 1-D NumPy array owning a std::vector.
template <class T>
nb::object to_numpy(std::vector<T>&& value) {
  auto* owned = new std::vector<T>(std::move(value));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  const std::size_t shape[1] = {owned->size()};
  return nb::cast(nb::ndarray<nb::numpy, T>(owned->data(), 1, shape, owner));
}

void register_kernels(nb::module_& m);
void register_similarity(nb::module_& m);
void register_matrix(nb::module_& m);
void register_inference(nb::module_& m);
void register_losses(nb::module_& m);
void register_states(nb::module_& m);
void register_heatmap(nb::module_& m);
#if defined(CKA_PYTHON_CUDA)
void register_cuda_losses(nb::module_& m);  // cuda_losses.cu, in a build with CKA_CUDA
#endif

}  // namespace cka::python
