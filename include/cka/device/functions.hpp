#pragma once
/// \file device/functions.hpp
/// The device functions, written once over the backend trait (device/detail/backend.hpp) for every
/// context: omp and cpp (host memory; cka/device.hpp) and cuda (device memory; cka/device/cuda.hpp), whose
/// headers supply context_traits — the backend (policy, products, scratch, read-backs) and the tile plan.
/// Each function checks shapes on the host, reads its inputs once for their checks and statistics, and
/// reads results back once (docs/device.md has each function's launches and synchronisations). Include
/// cka/device.hpp or cka/device/cuda.hpp, not this header.

#include <cka/compute.hpp>
#include <cka/detail/fail.hpp>
#include <cka/detail/ratio.hpp>
#include <cka/device/detail/checks.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/kernel_sums.hpp>
#include <cka/device/detail/mmd.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/detail/relation.hpp>
#include <cka/device/view.hpp>
#include <cka/estimator.hpp>
#include <cka/inner_product_kernels.hpp>
#include <cka/rbf_parameters.hpp>
#include <cka/rcka_options.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace cka {
namespace device {
namespace detail {

template <class Context, class = void>
struct is_context_impl : std::false_type {};
template <class Context>
struct is_context_impl<Context, std::void_t<decltype(context_traits<Context>::host_memory)>> : std::true_type {};
template <class Context>
constexpr bool is_context = is_context_impl<Context>::value;

/// The scalar of two input views (const or not), which must agree.
template <class TX, class TY>
using scalar_of = std::enable_if_t<std::is_same_v<std::remove_const_t<TX>, std::remove_const_t<TY>>, std::remove_const_t<TX>>;

template <class Context>
auto backend_for(const Context& ctx, const char* fn) {
  return context_traits<Context>::backend(ctx, fn);
}

inline double cka_of(const char* fn, const centered_totals& s) {
  return cka::detail::cka_ratio(fn, cka::detail::centered_sums<double>{s.kl, s.kk, s.ll, s.ref_k, s.ref_l});
}

/// Kernel CKA by the device tile engine (kernel_sums.hpp), for kernels it evaluates (is_tile_kernel),
/// with a plan (tile side, the median's limits: tests choose small ones).
template <class Context, class TX, class TY, class KX, class KY, class T = scalar_of<TX, TY>>
T tile_kernel_cka(const Context& ctx, matrix_view<TX> x, matrix_view<TY> y, const KX& kx, const KY& ky, estimator est,
                  const tile_plan& plan = {}) {
  const char* fn = "kernel_cka";
  const auto be = backend_for(ctx, fn);
  const auto sx = strided_of(x), sy = strided_of(y);
  require_pair(fn, sx, sy, min_samples(est));
  auto scratch = be.scratch(std::size_t(kernel_cka_scratch(x.rows, x.cols, y.cols, plan.tile)));
  const auto s = kernel_cka_sums(make_tile_engine(be, plan), sx, sy, tile_request_of(kx), tile_request_of(ky),
                                 est, scratch.get());
  return T(cka_of(fn, s));
}

/// Squared MMD by the device tile engine (mmd2's checks first); the linear kernel by its closed form.
template <class Context, class TX, class TY, class K, class T = scalar_of<TX, TY>>
T tile_mmd2(const Context& ctx, matrix_view<TX> x, matrix_view<TY> y, const K& k, estimator est, const tile_plan& plan = {}) {
  const char* fn = "mmd2";
  const auto be = backend_for(ctx, fn);
  const auto sx = strided_of(x), sy = strided_of(y);
  require_samples_pair(fn, sx, sy, est == estimator::biased ? 1 : 2);
  const tile_request r = tile_request_of(k);
  if (r.form == tile_form::linear) {
    auto scratch = be.scratch(std::size_t(linear_mmd2_scratch(x.rows, y.rows, x.cols)));
    return T(linear_mmd2(be, sx, sy, est, scratch.get()));
  }
  auto scratch = be.scratch(std::size_t(kernel_mmd2_scratch(x.rows, y.rows, x.cols, plan.tile)));
  return T(kernel_mmd2(make_tile_engine(be, plan), sx, sy, r, est, scratch.get()));
}

}  // namespace detail
}  // namespace device

/// HSIC of two n×n Gram views on a context's memory; as hsic(K, L, est) (same checks, same errors; values
/// to rounding). Two passes over each matrix (device/detail/hsic.hpp): line sums with the finiteness and
/// symmetry checks folded in, then the centered products; 4 launches, 1 synchronisation; scratch O(n).
/// A value beyond T's range (products that overflow double) is the host's overflow error.
template <class Context, class TK, class TL, class T = device::detail::scalar_of<TK, TL>,
          class = std::enable_if_t<device::detail::is_context<Context>>>
T hsic(const Context& ctx, device::matrix_view<TK> k, device::matrix_view<TL> l, estimator est = estimator::biased) {
  const auto be = device::detail::backend_for(ctx, "hsic");
  const double value = device::detail::gram_hsic(be, device::detail::strided_of(k), device::detail::strided_of(l), est,
                                                  double(std::numeric_limits<T>::epsilon()));
  if (!(std::abs(value) <= double(std::numeric_limits<T>::max()))) cka::detail::fail_hsic_overflow("hsic", value);
  return T(value);
}

/// Linear CKA of two views on a context's memory; as linear_cka(X, Y, est) (same errors; values to
/// rounding). One read of the inputs (checks, column means, power-of-two scales), then the cheaper form, as
/// on the host: features — chunks of rows shifted by their first row accumulated into the (D+1)² moment
/// matrix by the backend's symmetric product (n·(d1+d2)² flops, a chunk of at most 16 MiB, no copy of the
/// inputs), the centering exact at the end — or, with fewer samples than features (a batch of wide
/// layers), the centered features [Xc Yc] and the two n×n Grams (n²·(d1+d2) flops). 7 launches for one
/// chunk (2 more per chunk, 1 more unbiased), 1 synchronisation.
template <class Context, class TX, class TY, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::is_context<Context>>>
T linear_cka(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, estimator est = estimator::biased) {
  const char* fn = "linear_cka";
  const auto be = device::detail::backend_for(ctx, fn);
  const auto sx = device::detail::strided_of(x), sy = device::detail::strided_of(y);
  device::detail::require_pair(fn, sx, sy, min_samples(est));
  auto scratch = be.scratch(std::size_t(device::detail::linear_scratch(x.rows, x.cols + y.cols)));
  return T(device::detail::cka_of(fn, device::detail::linear_sums(be, scratch.get(), sx, sy, est)));
}

/// Kernel CKA of two views; as kernel_cka(X, Y, kx, ky, est, co) (same errors; values to rounding). Two
/// linear kernels: linear_cka(ctx, X, Y, est). Other pairs of linear_kernel, polynomial_kernel and RBF
/// kernels (rbf_kernel or rbf_parameters): the device tile engine (device/detail/kernel_sums.hpp): one read
/// of the inputs, the rows written once (8·n·(d1+d2) bytes; centered but for the polynomial kernel), then
/// tiles of G = Z_I·Z_Jᵀ (the backend's product) whose kernel values the passes read off G: the exact
/// median by bit-pattern selection where a median rule asks for it, pass A (row sums), pass B (centered
/// products); 2·n²·(d1+d2) flops per pass, no n×n buffer. Other (generic) kernels: on host memory the host
/// function on maps of the views (compute_options apply to it only); not on CUDA.
template <class Context, class TX, class TY, class KX, class KY, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::is_context<Context>>>
T kernel_cka(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const KX& kx, const KY& ky,
             estimator est = estimator::biased, const compute_options& co = {}) {
  using traits = device::detail::context_traits<Context>;
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    return linear_cka(ctx, x, y, est);
  } else if constexpr (device::detail::is_tile_kernel<KX> && device::detail::is_tile_kernel<KY>) {
    return device::detail::tile_kernel_cka(ctx, x, y, kx, ky, est, traits::plan(x.rows));
  } else {
    static_assert(traits::host_memory && sizeof(KX) > 0,
                  "cka::kernel_cka on CUDA takes linear_kernel, polynomial_kernel and RBF kernels (rbf_parameters); for "
                  "another kernel, form its Gram matrices and call cka::hsic(ctx, K, L, est)");
    return traits::generic_kernel_cka(ctx, x, y, kx, ky, est, co);
  }
}

/// Squared MMD of two sample views; as mmd2(X, Y, kernel, est, co) (same errors; values to rounding). The
/// linear kernel by its closed form (one read of the inputs, a pass of column sums, O((m+n)d)); polynomial
/// and RBF kernels by the device tile engine over the pooled sample (written once): its exact median where
/// a median rule asks for it, then one pass of block sums, (m+n)²·d flops, no (m+n)² buffer. Other kernels:
/// on host memory the host function on maps of the views; not on CUDA.
template <class Context, class TX, class TY, class Kernel, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::is_context<Context>>>
T mmd2(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const Kernel& kernel,
       estimator est = estimator::biased, const compute_options& co = {}) {
  using traits = device::detail::context_traits<Context>;
  if constexpr (device::detail::is_tile_kernel<Kernel>) {
    return device::detail::tile_mmd2(ctx, x, y, kernel, est, traits::plan(x.rows + y.rows));
  } else {
    static_assert(traits::host_memory && sizeof(Kernel) > 0,
                  "cka::mmd2 on CUDA takes linear_kernel, polynomial_kernel and RBF kernels (rbf_parameters)");
    return traits::generic_mmd2(ctx, x, y, kernel, est, co);
  }
}

namespace rcka {
namespace detail {

/// The engine's mode for the options (device/detail/relation.hpp).
inline device::detail::relation_mode mode_of(const relation_options& opts) {
  device::detail::relation_mode m;
  m.centered = opts.centered;
  m.row_normalize = opts.row_normalize;
  m.est = opts.est;
  m.skip = opts.on_undefined == undefined_policy::skip;
  return m;
}

/// The strided forms of a loss's three views.
template <class TS, class TT, class T>
struct loss_views {
  device::detail::strided<std::remove_const_t<TS>> s;
  device::detail::strided<std::remove_const_t<TS>> t;
  device::detail::strided_out<T> g;
  loss_views(device::matrix_view<TS> student, device::matrix_view<TT> teacher, device::matrix_view<T> grad)
      : s{student.ptr, student.rows, student.cols, student.row_stride, student.col_stride},
        t{teacher.ptr, teacher.rows, teacher.cols, teacher.row_stride, teacher.col_stride},
        g{grad.ptr, grad.rows, grad.cols, grad.row_stride, grad.col_stride} {
    static_assert(std::is_same_v<device::detail::scalar_of<TS, TT>, T>, "cka::rcka: student, teacher and grad need one scalar type");
  }
};

/// A loss of one or both relations by the device relation engine, waiting for it: the shapes, then each
/// term (one read-back each); the gradient of the rows term times w_rows written into grad, the columns
/// term's (times w_columns) written or added; a value or gradient beyond T's range an overflow error.
template <class Context, class TS, class TT, class T>
device::loss_value<T> engine_loss(const Context& ctx, const char* fn, device::matrix_view<TS> student,
                                  device::matrix_view<TT> teacher, device::matrix_view<T> grad, const relation_options& opts,
                                  device::detail::relations which, double w_rows = 1.0, double w_columns = 1.0) {
  const loss_views<TS, TT, T> v(student, teacher, grad);
  const auto be = device::detail::backend_for(ctx, fn);
  device::detail::require_relation_shapes(fn, v.s, v.t, v.g, which != device::detail::relations::rows);
  const device::detail::relation_mode mode = mode_of(opts);
  cka::detail::side_names sides = cka::detail::relation_sides();
  if (!opts.centered) sides.condition = "vanishes";
  auto ratio = [&](const device::detail::centered_totals& c) {
    return cka::detail::cka_ratio(fn, cka::detail::centered_sums<double>{c.kl, c.kk, c.ll, c.ref_k, c.ref_l},
                                  mode.skip ? cka::detail::when_undefined::nan : cka::detail::when_undefined::raise, sides);
  };
  auto term = [&](bool columns, double weight, bool accumulate) {
    device::detail::relation_mode m = mode;
    m.transposed = columns;
    return device::detail::relation_term(be, ratio, columns ? device::detail::transposed(v.s) : v.s,
                                         columns ? device::detail::transposed(v.t) : v.t, columns ? v.g.transposed() : v.g,
                                         m, weight, accumulate);
  };
  if (which == device::detail::relations::both) {
    const auto a = term(false, w_rows, false), b = term(true, w_columns, true);
    const T value = T(T(w_rows) * T(a.value) + T(w_columns) * T(b.value));
    if (!(value - value == T(0))) cka::detail::fail_loss_overflow(fn);  // weights beyond T's range
    return {value, a.skipped + b.skipped};
  }
  const auto r = term(which == device::detail::relations::columns, 1.0, false);
  return {T(r.value), r.skipped};
}

/// A loss left in the context's memory (the loss_slot variants) by the device relation engine: nothing
/// read back.
template <class Context, class TS, class TT, class T>
void slot_loss(const Context& ctx, const char* fn, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
               device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts,
               device::detail::relations which, double w_rows = 1.0, double w_columns = 1.0) {
  const loss_views<TS, TT, T> v(student, teacher, grad);
  device::detail::relation_loss_async(device::detail::backend_for(ctx, fn), v.s, v.t, v.g, mode_of(opts), which, w_rows,
                                      w_columns, out.value, out.status);
}

}  // namespace detail

/// sample_relation_loss on views: 1 − the alignment (opts) of the B×B Grams of the rows of student and
/// teacher (any strides), the value returned with its skip count, ∂loss/∂student written into grad (the
/// student's shape, any strides; only its elements are written). By the device relation engine
/// (device/detail/relation.hpp) for every relation_options; values and gradients as the host function's to
/// rounding. Cost: two B×B Grams, one B×B×C product, O(B²) passes; one synchronisation. Same errors as
/// the host function, plus cka::invalid_argument for a bad layout or a gradient view of the wrong shape.
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
device::loss_value<T> sample_relation_loss(const Context& ctx, device::matrix_view<TS> student,
                                           device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                           const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad, opts, device::detail::relations::rows);
}

/// class_relation_loss on views: the C×C Grams of the columns (the same C); as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
device::loss_value<T> class_relation_loss(const Context& ctx, device::matrix_view<TS> student,
                                          device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                          const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::class_relation_loss", student, teacher, grad, opts, device::detail::relations::columns);
}

/// feature_loss (FCKA) on views of flattened feature maps; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
device::loss_value<T> feature_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                                   device::matrix_view<T> grad, const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::feature_loss", student, teacher, grad, opts, device::detail::relations::rows);
}

/// rcka_loss on views: weights.sample · sample relation + weights.cls · class relation, the gradients
/// combined in grad; as sample_relation_loss(ctx, …), two synchronisations.
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
device::loss_value<T> rcka_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                                device::matrix_view<T> grad, const rcka_weights& weights = {},
                                const relation_options& opts = {}) {
  weights.require_finite("rcka::rcka_loss");
  return detail::engine_loss(ctx, "rcka::rcka_loss", student, teacher, grad, opts, device::detail::relations::both,
                             weights.sample, weights.cls);
}

/// The loss_slot variants for a training loop: nothing is read back, nothing waits. The value and status
/// are left in the context's memory (out: pointers there; status may be null), the gradient in grad, all
/// queued on the context (on CUDA its stream). Shape errors throw at once; an error in the data (a
/// non-finite element, an overflow, an undefined term under the raise policy) leaves value NaN, a zero
/// gradient and a negative status, which device::check_loss_status turns into the exception once the
/// caller has read it back.
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
void sample_relation_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                          device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad, out, opts, device::detail::relations::rows);
}

/// class_relation_loss left in a loss_slot; as sample_relation_loss(ctx, …, out, opts).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
void class_relation_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                         device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::class_relation_loss", student, teacher, grad, out, opts, device::detail::relations::columns);
}

/// feature_loss left in a loss_slot; as sample_relation_loss(ctx, …, out, opts).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
void feature_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                  device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::feature_loss", student, teacher, grad, out, opts, device::detail::relations::rows);
}

/// rcka_loss left in a loss_slot; as sample_relation_loss(ctx, …, out, opts).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::is_context<Context>>>
void rcka_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
               device::matrix_view<T> grad, device::loss_slot<T> out, const rcka_weights& weights = {},
               const relation_options& opts = {}) {
  weights.require_finite("rcka::rcka_loss");
  detail::slot_loss(ctx, "rcka::rcka_loss", student, teacher, grad, out, opts, device::detail::relations::both,
                    weights.sample, weights.cls);
}

}  // namespace rcka
}  // namespace cka
