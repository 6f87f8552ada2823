#pragma once
/// \file state.hpp
/// Accumulation states: exact linear CKA over rows that arrive in chunks, from several sources, in any
/// order. A state is fed with `add(chunk)`, combined with `merge(other)` (or by summing the flat arrays
/// of states that share a shift, as MPI_Allreduce or torch.distributed.all_reduce do), saved and loaded,
/// and finished with `hsic`/`cka`. Its memory does not depend on the number of rows.
///
/// The mathematics (docs/math.md, "Streaming and merging"): pick a shift m per representation; with
/// x̃ = x − m_x, ỹ = y − m_y, a = ‖x̃‖², b = ‖ỹ‖² and z = [1, x̃, ỹ, a, b], the state is S = Σ z zᵀ
/// ((3 + d1 + d2)² doubles). Finishing moves S exactly to the sample mean and reads the centered
/// co-moments and row-norm sums that both HSIC estimators need. The shift only matters for rounding: a
/// shift near the mean (the default: the first chunk's mean) keeps a large common offset harmless.

#include <cka/detail/checks.hpp>
#include <cka/detail/moments.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/errors.hpp>
#include <cka/estimator.hpp>
#include <cka/npy.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace cka {
namespace detail {

/// How a state reads a chunk: `chunk_input<X>` holds a view `get()` of it as an Eigen matrix. This
/// primary template takes Eigen expressions; <cka/xtensor.hpp> specialises it for xtensor expressions.
template <class X, class = void>
struct chunk_input {
  static_assert(std::is_base_of_v<Eigen::MatrixBase<X>, X>,
                "cka: a chunk must be an Eigen dense expression (or an xtensor one, with <cka/xtensor.hpp>)");
  view_t<X> view;
  chunk_input(const X& x, const char*, const char*) : view(x) {}
  const view_t<X>& get() const { return view; }
};

/// Moves a state's moments to a caller's shift after checking it.
template <class A>
void set_checked_shift(const char* fn, moments<A>& m, const vector<A>& shift) {
  if (shift.size() != m.features()) fail_argument(fn, "the shift has ", shift.size(), " values but the state has ", m.features(), " features");
  require_finite(fn, "the shift", shift);
  m.move_shift(shift);
}

/// Whether s is a positive, finite power of two (what a state's scale must be).
template <class A>
bool power_of_two(const A& s) {
  int e = 0;
  using std::frexp;
  return s > A(0) && is_finite_value(s) && frexp(s, &e) == A(0.5);
}

/// Moves a state's moments to a caller's scales (one power of two per representation) after checking them.
template <class A>
void set_checked_scale(const char* fn, moments<A>& m, const vector<A>& scale) {
  if (scale.size() != m.blocks()) fail_argument(fn, "the scale has ", scale.size(), " values but the state has ", m.blocks(), " representations");
  for (Eigen::Index b = 0; b < scale.size(); ++b)
    if (!power_of_two(scale(b))) fail_argument(fn, "scale ", b, " is ", scale(b), "; the scales are powers of two");
  m.set_scale(scale);
}

/// A saved state that cannot be read: throws cka::npy::error "path: not a saved <what> (why)".
struct state_file_error {
  std::string path;
  const char* what;
  [[noreturn]] void operator()(const std::string& why) const {
    throw npy::error(path + ": not a saved " + what + " (" + why + ")");
  }
};

/// A state as one float64 record: `head` (its tag and widths), then [has_shift, shift…, has_scale,
/// scales…, S (column-major)] — what `save` writes to its .npy file and what pickling carries.
inline vector<double> state_record(const std::vector<double>& head, const moments<double>& m) {
  const Eigen::Index h = Eigen::Index(head.size()), f = m.features(), l = m.blocks();
  vector<double> out(h + 1 + f + 1 + l + m.raw().size());
  for (Eigen::Index i = 0; i < h; ++i) out(i) = head[std::size_t(i)];
  out(h) = m.has_shift() ? 1.0 : 0.0;
  out.segment(h + 1, f) = m.shift();
  out(h + 1 + f) = m.has_scale() ? 1.0 : 0.0;
  out.segment(h + 2 + f, l) = m.scale();
  out.tail(m.raw().size()) = m.raw().reshaped();
  return out;
}

/// The values of a saved state's .npy file (one row, or 1-D), or throws "path: not a saved <what> (…)".
inline vector<double> saved_record(const std::string& path, const char* what) {
  const npy::array a = npy::load(path);
  if (a.values.rows() != 1) state_file_error{path, what}("no state header");
  return a.values.row(0).transpose();
}

/// The side 1 + P + L of the flat array of a state of L blocks of P features in all (moments::dim), in
/// double so that no sum of widths wraps.
inline double state_side(const std::vector<Eigen::Index>& widths) {
  double side = 1 + double(widths.size());
  for (Eigen::Index w : widths) side += double(w);
  return side;
}

/// Throws cka::invalid_argument when a state of these widths (each ≥ 1) would have a flat array of more
/// values of A than memory can address (its side beyond 2³⁰ for double), rather than a size that wraps.
template <class A>
void require_addressable_state(const char* fn, const std::vector<Eigen::Index>& widths) {
  const auto most = Eigen::Index(std::sqrt(double(std::numeric_limits<std::ptrdiff_t>::max() / std::ptrdiff_t(sizeof(A)))));
  if (state_side(widths) <= double(most)) return;
  std::string list;
  for (std::size_t i = 0; i < widths.size() && i < 4; ++i) list += (i > 0 ? ", " : "") + concat(widths[i]);
  if (widths.size() > 4) list += ", ...";
  fail_argument(fn, "widths ", list, " need a state of side 1 + features + layers beyond ", most,
                ", whose square of values memory cannot address");
}

/// `count` widths read from a saved state: whole numbers ≥ 1, below 10⁶ in all, that a body of `length`
/// values fits ([has_shift, shift, (has_scale, scales,) S] with `scaled`) — checked before the state is
/// allocated, so that a header's widths never size an allocation.
inline std::vector<Eigen::Index> state_widths(const state_file_error& bad, const double* w, Eigen::Index count, Eigen::Index length,
                                              bool scaled) {
  std::vector<Eigen::Index> out;
  double total = 0;
  for (Eigen::Index i = 0; i < count; ++i) {
    if (!(w[i] >= 1 && w[i] == std::floor(w[i]) && w[i] < 1e6)) bad("widths: " + concat(w[i]) + " is not a whole number from 1 to 999999");
    total += w[i];
    out.push_back(Eigen::Index(w[i]));
  }
  if (total >= 1e6) bad("widths of " + concat(total) + " features in all");
  const Eigen::Index f = Eigen::Index(total), p = Eigen::Index(state_side(out));
  if (length != 1 + f + (scaled ? 1 + count : 0) + p * p) bad("its length does not match its widths");
  return out;
}

/// Reads [has_shift, shift…, (has_scale, scales…,) S] (`scaled`: the scale part is there; its length
/// checked by state_widths) into m, made for the saved widths, checking every field and the invariants of
/// S (moments::inconsistency).
inline void load_state_body(const state_file_error& bad, const double* v, bool scaled, moments<double>& m) {
  const Eigen::Index f = m.features(), l = m.blocks(), p = m.dim();
  const double flag = v[0];
  if (flag != 0.0 && flag != 1.0) bad("the shift flag is " + concat(flag) + ", not 0 or 1");
  const vector<double> shift = Eigen::Map<const vector<double>>(v + 1, f);
  if (flag == 1.0) m.set_shift(shift);
  else if (!shift.isZero(0)) bad("a shift is stored but its flag says none is fixed");
  const double* s = v + 1 + f;
  if (scaled) {
    const vector<double> scales = Eigen::Map<const vector<double>>(s + 1, l);
    if (s[0] != 0.0 && s[0] != 1.0) bad("the scale flag is not 0 or 1");
    for (Eigen::Index b = 0; b < l; ++b)
      if (!power_of_two(scales(b))) bad("a scale is not a power of two");
    if (s[0] == 1.0) m.set_scale(scales);
    else if (scales != vector<double>::Ones(l)) bad("scales are stored but their flag says none are fixed");
    s += 1 + l;
  } else if (s[0] != 0.0) {  // the earlier format: rows were stored unscaled
    m.set_scale(vector<double>::Ones(l));
  }
  m.raw().reshaped() = Eigen::Map<const vector<double>>(s, p * p);
  if (m.count() != 0.0 && !m.has_scale()) bad("rows are stored but no scale is fixed");
  const std::string why = m.inconsistency();
  if (!why.empty()) bad(why);
}

template <class T>
constexpr bool is_chunk_scalar = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                 std::is_same_v<T, long double> || !std::is_arithmetic_v<T>;

}  // namespace detail

/// Exact linear CKA of X (n×d1) and Y (n×d2) whose rows arrive in chunks. Scalar A is the accumulation
/// type (`linear_state` = double; float chunks are converted). Memory (3 + d1 + d2)² values; `add` costs
/// h·(3 + d1 + d2)²·(1 + 1/6) flops for h rows (one symmetric rank-h update), finishing O((d1 + d2)²).
template <class A>
class basic_linear_state {
 public:
  using scalar = A;

  /// An empty state; the shift is fixed by the first chunk added (its mean).
  basic_linear_state(Eigen::Index d1, Eigen::Index d2) : m_(widths("linear_state", d1, d2)) {}

  /// An empty state with the shift fixed in advance — what several processes must agree on before their
  /// flat arrays can be summed (e.g. rank 0's first-chunk mean, `shift_x()`/`shift_y()`, broadcast).
  /// Throws cka::invalid_argument for a non-finite shift.
  template <class DX, class DY>
  basic_linear_state(const Eigen::MatrixBase<DX>& shift_x, const Eigen::MatrixBase<DY>& shift_y)
      : m_(widths("linear_state", shift_x.size(), shift_y.size())) {
    vector<A> m(shift_x.size() + shift_y.size());
    for (Eigen::Index i = 0; i < shift_x.size(); ++i) m(i) = A(shift_x.derived().reshaped()(i));
    for (Eigen::Index i = 0; i < shift_y.size(); ++i) m(shift_x.size() + i) = A(shift_y.derived().reshaped()(i));
    detail::require_finite("linear_state", "the shift", m);
    m_.set_shift(m);
  }

  /// Adds the rows of X (h×d1) and Y (h×d2): any Eigen expressions (xtensor ones with <cka/xtensor.hpp>),
  /// float, double or wider, viewed without a copy. Throws cka::invalid_argument (state unchanged) for
  /// different row counts, wrong widths or a NaN/±Inf entry; cka::domain_error for overflow of the
  /// squared row norms (the state is then unusable).
  template <class X, class Y>
  void add(const X& x, const Y& y) {
    const char* fn = "linear_state::add";
    const detail::chunk_input<X> xi(x, fn, "X");
    const detail::chunk_input<Y> yi(y, fn, "Y");
    const auto& xv = xi.get();
    const auto& yv = yi.get();
    using TX = typename std::decay_t<decltype(xv)>::Scalar;
    static_assert(detail::is_chunk_scalar<TX>, "cka::linear_state::add: integer chunks are not accepted; convert them to float or double");
    detail::require_same_samples(fn, "X", xv, "Y", yv);
    if (xv.cols() != m_.width(0) || yv.cols() != m_.width(1)) {
      detail::fail_argument(fn, "the chunks have ", xv.cols(), " and ", yv.cols(), " features but the state was made for ",
                            m_.width(0), " and ", m_.width(1));
    }
    detail::require_finite(fn, "X", xv);
    detail::require_finite(fn, "Y", yv);
    m_.add_pair(fn, xv, yv);
  }

  /// Adds the rows of another state over the same widths (its shift may differ: it is moved exactly).
  /// The result does not depend on the order of merges beyond rounding.
  void merge(const basic_linear_state& other) { m_.merge("linear_state::merge", other.m_); }

  /// Rows added so far. Throws cka::invalid_argument where the flat array's first value (the count) was
  /// written with something no sum of states has (a NaN, a fraction).
  Eigen::Index samples() const { return detail::sample_count("linear_state::samples", m_.count()); }
  Eigen::Index x_features() const { return m_.width(0); }
  Eigen::Index y_features() const { return m_.width(1); }
  /// The widths the state was made for: {d1, d2}.
  std::vector<Eigen::Index> widths() const { return {m_.width(0), m_.width(1)}; }

  /// Whether the shift is fixed (given to the constructor, or taken from the first chunk).
  bool has_shift() const { return m_.has_shift(); }
  vector<A> shift_x() const { return m_.shift().head(m_.width(0)); }
  vector<A> shift_y() const { return m_.shift().tail(m_.width(1)); }
  /// Both shifts, X's then Y's (empty while none is fixed).
  vector<A> shift() const { return has_shift() ? m_.shift() : vector<A>(); }
  /// Fixes the shift (d1 + d2 values, X's then Y's), moving the rows already added to it exactly: how
  /// states are brought to one shift before their flat arrays are summed (cka::mpi::allreduce does this).
  /// Throws cka::invalid_argument for a wrong length or a non-finite value.
  void set_shift(const vector<A>& m) { set_checked_shift("linear_state::set_shift", m_, m); }
  /// The power-of-two scales of X's and Y's rows in the flat array ({1, 1} unless the first rows' magnitudes
  /// lie beyond 2^±200), whether they are fixed, and moving to others exactly: states sum as flat arrays
  /// when their shifts and scales agree (cka::mpi::allreduce brings them to one of each).
  vector<A> scale() const { return m_.scale(); }
  bool has_scale() const { return m_.has_scale(); }
  void set_scale(const vector<A>& s) { set_checked_scale("linear_state::set_scale", m_, s); }

  /// HSIC of the linear Grams of all rows added: biased tr(KHLH)/(n−1)² or Song's unbiased estimator,
  /// equal to cka::hsic(X Xᵀ, Y Yᵀ, est). Throws cka::invalid_argument if fewer than min_samples(est)
  /// rows were added; cka::domain_error (overflow) if HSIC or its sums exceed the range of A.
  A hsic(estimator est = estimator::biased) const {
    const char* fn = "linear_state::hsic";
    require_rows(fn, est);
    const matrix<A> c = m_.centered();
    const vector<A>& s = m_.scale();  // the rows entered scaled: HSIC scales by s_x²·s_y²
    const A value = A(A(A(m_.cross_sum(c, 0, 1, est) / detail::hsic_denominator<A>(samples(), est)) / (s(0) * s(0))) / (s(1) * s(1)));
    if (!detail::is_finite_value(value) || !c.allFinite()) {
      detail::fail_domain(fn, "overflow: HSIC or the centered co-moments exceed the range of the accumulation type (",
                          value, "); rescale the rows");
    }
    return value;
  }

  /// Linear CKA of all rows added, equal to cka::linear_cka(X, Y, est) on the rows stacked.
  /// Throws as linear_cka: cka::invalid_argument for too few rows, cka::domain_error for zero variance or
  /// overflow.
  A cka(estimator est = estimator::biased) const {
    const char* fn = "linear_state::cka";
    require_rows(fn, est);
    return detail::cka_ratio(fn, sums(est));
  }

  /// The flat array: `size()` values of type A such that the elementwise sum of the arrays of states with
  /// the same shift and widths is the array of their merge. Write into `data()` to load a reduced sum.
  A* data() { return m_.raw().data(); }
  const A* data() const { return m_.raw().data(); }
  std::size_t size() const { return std::size_t(m_.raw().size()); }

  /// The state as one float64 record (format tag, widths, shift, scales, flat array: 7 + d1 + d2 +
  /// (3 + d1 + d2)² values); `from_record` rebuilds it, checking every field and the invariants of the flat
  /// array. What `save` writes and Python's pickling carries.
  vector<double> record() const {
    static_assert(std::is_same_v<A, double>, "cka::linear_state: records need the double state");
    return detail::state_record({format_tag, double(m_.width(0)), double(m_.width(1))}, m_);
  }
  /// Throws cka::npy::error (a cka::invalid_argument) "source: not a saved cka::linear_state (why)" for a
  /// record that is not one; its widths are checked against its length before anything is allocated.
  static basic_linear_state from_record(const vector<double>& v, const std::string& source = "the record") {
    static_assert(std::is_same_v<A, double>, "cka::linear_state: records need the double state");
    const detail::state_file_error bad{source, "cka::linear_state"};
    if (v.size() < 4 || (v(0) != format_tag && v(0) != unscaled_format_tag)) bad("no state header");
    if (!v.allFinite()) bad("non-finite values");
    const bool scaled = v(0) == format_tag;
    const std::vector<Eigen::Index> w = detail::state_widths(bad, v.data() + 1, 2, v.size() - 3, scaled);
    basic_linear_state s{w[0], w[1]};
    detail::load_state_body(bad, v.data() + 3, scaled, s.m_);
    return s;
  }

  /// Saves the state (its record) as a 1-D float64 .npy file; `load` reads it back (files of the earlier
  /// format, without scales, too) with from_record's checks. Throws cka::npy::error naming the file if it
  /// cannot be written or read, or is not a saved linear_state.
  void save(const std::string& path) const { npy::save(path, record().transpose()); }
  static basic_linear_state load(const std::string& path) {
    return from_record(detail::saved_record(path, "cka::linear_state"), path);
  }

  /// The centered co-moment matrix (full, symmetric, (3 + d1 + d2)²; see detail/moments.hpp for its layout).
  matrix<A> centered_moments() const { return m_.unscaled(m_.centered()); }

 private:
  static constexpr double format_tag = 20261204.0, unscaled_format_tag = 20261126.0;
  // The centered sums behind cka().
  detail::centered_sums<A> sums(estimator est) const { return m_.pair_sums(m_.centered(), 0, 1, est); }
  static std::vector<Eigen::Index> widths(const char* fn, Eigen::Index d1, Eigen::Index d2) {
    if (d1 < 1 || d2 < 1) detail::fail_argument(fn, "widths d1 = ", d1, " and d2 = ", d2, " must be at least 1");
    detail::require_addressable_state<A>(fn, {d1, d2});
    return {d1, d2};
  }
  void require_rows(const char* fn, estimator est) const {
    detail::require_samples(fn, "the state", detail::sample_count(fn, m_.count()), min_samples(est), detail::estimator_name(est));
  }
  detail::moments<A> m_;
};

using linear_state = basic_linear_state<double>;

/// Exact linear CKA between every pair of L representations (layers) whose rows arrive in chunks: one
/// joint state of (1 + P + L)² values, P = Σ dᵢ. `add` takes one chunk per layer (same rows); costs
/// h·(1 + P + L)²·(1 + 1/6) flops for h rows. Merging, shifts and errors as for linear_state.
template <class A>
class basic_layers_state {
 public:
  using scalar = A;
  explicit basic_layers_state(const std::vector<Eigen::Index>& widths) : m_(checked(widths)) {}

  /// Adds the same h rows of every layer: chunks[i] is h×dᵢ (any Eigen expressions of one type, e.g.
  /// Eigen::Map or Eigen::Ref). Throws cka::invalid_argument (state unchanged) for a wrong count, width or
  /// row count, or NaN/±Inf; cka::domain_error for overflow.
  template <class M>
  void add(const std::vector<M>& chunks) {
    const char* fn = "layers_state::add";
    if (Eigen::Index(chunks.size()) != m_.blocks()) {
      detail::fail_argument(fn, chunks.size(), " chunks given for a state of ", m_.blocks(), " layers");
    }
    using V = detail::view_t<M>;
    std::vector<V> views;
    views.reserve(chunks.size());
    for (const auto& c : chunks) views.emplace_back(c);
    const Eigen::Index h = views[0].rows();
    for (std::size_t i = 0; i < views.size(); ++i) {
      if (views[i].rows() != h) detail::fail_argument(fn, "layer ", i, " has ", views[i].rows(), " rows in this chunk but layer 0 has ", h);
      if (views[i].cols() != m_.width(Eigen::Index(i))) {
        detail::fail_argument(fn, "layer ", i, " has ", views[i].cols(), " features but the state was made for ", m_.width(Eigen::Index(i)));
      }
      detail::require_finite(fn, "a layer", views[i]);
    }
    constexpr int order = V::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor;
    m_.template add<order>(fn, h, [&](Eigen::Index b, Eigen::Index r0, Eigen::Index hh, auto&& dest) {
      dest = views[std::size_t(b)].middleRows(r0, hh).template cast<A>();
    });
  }
  void merge(const basic_layers_state& other) { m_.merge("layers_state::merge", other.m_); }
  /// The shift (all layers' features concatenated; empty while none is fixed) and, as for linear_state,
  /// fixing it with the rows already added moved exactly.
  bool has_shift() const { return m_.has_shift(); }
  vector<A> shift() const { return has_shift() ? m_.shift() : vector<A>(); }
  void set_shift(const vector<A>& m) { set_checked_shift("layers_state::set_shift", m_, m); }
  /// The layers' power-of-two scales in the flat array, as for linear_state.
  vector<A> scale() const { return m_.scale(); }
  bool has_scale() const { return m_.has_scale(); }
  void set_scale(const vector<A>& s) { set_checked_scale("layers_state::set_scale", m_, s); }
  Eigen::Index samples() const { return detail::sample_count("layers_state::samples", m_.count()); }
  Eigen::Index layers() const { return m_.blocks(); }
  /// The layers' widths, in the order the state was made with.
  std::vector<Eigen::Index> widths() const {
    std::vector<Eigen::Index> w;
    for (Eigen::Index b = 0; b < m_.blocks(); ++b) w.push_back(m_.width(b));
    return w;
  }
  A* data() { return m_.raw().data(); }
  const A* data() const { return m_.raw().data(); }
  std::size_t size() const { return std::size_t(m_.raw().size()); }

  /// The state as one float64 record (format tag, layer count, widths, shift, scales, flat array), as for
  /// linear_state; `from_record` rebuilds it with every check, throwing cka::npy::error "source: not a saved
  /// cka::layers_state (why)".
  vector<double> record() const {
    static_assert(std::is_same_v<A, double>, "cka::layers_state: records need the double state");
    std::vector<double> head{format_tag, double(m_.blocks())};
    for (Eigen::Index b = 0; b < m_.blocks(); ++b) head.push_back(double(m_.width(b)));
    return detail::state_record(head, m_);
  }
  static basic_layers_state from_record(const vector<double>& v, const std::string& source = "the record") {
    static_assert(std::is_same_v<A, double>, "cka::layers_state: records need the double state");
    const detail::state_file_error bad{source, "cka::layers_state"};
    if (v.size() < 3 || v(0) != format_tag) bad("no state header");
    if (!v.allFinite()) bad("non-finite values");
    const double layers = v(1);
    if (!(layers >= 1 && layers == std::floor(layers) && layers + 2 <= double(v.size()))) bad("a bad layer count");
    const Eigen::Index l = Eigen::Index(layers);
    basic_layers_state s{detail::state_widths(bad, v.data() + 2, l, v.size() - 2 - l, true)};
    detail::load_state_body(bad, v.data() + 2 + l, true, s.m_);
    return s;
  }

  /// Saves the state (its record) as a 1-D float64 .npy file; `load` reads it back with from_record's
  /// checks. Throws cka::npy::error naming the file if it cannot be written or read, or is not a saved
  /// layers_state.
  void save(const std::string& path) const { npy::save(path, record().transpose()); }
  static basic_layers_state load(const std::string& path) {
    return from_record(detail::saved_record(path, "cka::layers_state"), path);
  }

  /// CKA of every pair (L×L, symmetric), NaN in the rows and columns of layers with zero variance.
  /// Throws cka::invalid_argument for too few rows; cka::domain_error for overflow.
  matrix<A> cka(estimator est = estimator::biased) const { return detail::pairwise_cka<A>("layers_state::cka", m_, est); }

 private:
  static std::vector<Eigen::Index> checked(const std::vector<Eigen::Index>& widths) {
    if (widths.empty()) detail::fail_argument("layers_state", "needs at least one layer");
    for (std::size_t i = 0; i < widths.size(); ++i)
      if (widths[i] < 1) detail::fail_argument("layers_state", "layer ", i, " has width ", widths[i], "; at least 1 is needed");
    detail::require_addressable_state<A>("layers_state", widths);
    return widths;
  }
  static constexpr double format_tag = 20261205.0;
  detail::moments<A> m_;
};

using layers_state = basic_layers_state<double>;

}  // namespace cka
