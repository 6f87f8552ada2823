#pragma once
// Private: shifted second moments of B representations over rows — the accumulation primitive of every
// linear-kernel state (two representations for linear CKA, L layers for the similarity matrix, student and
// teacher for the relation losses).
//
// For row i and representation b, with a shift m_b fixed once, let x̃_b = x_b,i − m_b and a_b = ‖x̃_b‖².
// z_i = [1, x̃_1, …, x̃_B, a_1, …, a_B] has p = 1 + Σd_b + B entries and the state is S = Σ_i z_i z_iᵀ (its
// lower triangle; the upper one stays zero). Adding h rows is one symmetric rank-h update; merging states
// with the same shift is addition of S, so S is a flat, addable array. Changing the shift by δ is linear:
// z′ = T z with T unit-triangular, S′ = T S Tᵀ exactly; finishing moves to the sample mean (δ_b = Σx̃_b/n)
// and reads the centered co-moment blocks and the row-norm sums (a′_b = ‖x_b,i − μ_b‖²) off S′.
// Scale: block b's rows enter as s_b·(x_b − m_b), s_b a power of two fixed by the first rows (1 unless their
// magnitudes lie beyond 2^±200, where the fourth moments in S would overflow or underflow), so S is in
// scaled units: exact, and CKA does not see it; HSIC divides it out. Changing s_b by r multiplies S's
// feature rows and columns of block b by r and its norm row and column by r² (exact).

#include <cka/detail/checks.hpp>
#include <cka/detail/interrupt.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/workspace.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka::detail {

/// Whether n can be the sample count of a moment state (S's corner Σ 1): a whole number from 0 to 2⁵³.
template <class A>
bool whole_count(const A& n) {
  using std::floor;
  return n >= A(0) && n <= A(9007199254740992.0) && n == floor(n);
}

/// A state's sample count as an index. A flat array written with another corner — a NaN, an infinity, a
/// mean of counts — is cka::invalid_argument naming fn, never converted (that conversion is undefined).
template <class A>
Eigen::Index sample_count(const char* fn, const A& n) {
  if (!whole_count(n)) {
    fail_argument(fn, "the state's sample count (the first value of its flat array) is ", n,
                  "; a sum of states' counts is a whole number from 0 to 2^53");
  }
  return static_cast<Eigen::Index>(n);
}

template <class A>
class moments {
 public:
  /// Whether add polls for an interrupt between chunks: set by one-shot computations (linear_cka, the
  /// similarity matrix), whose temporary state an interrupt may leave half-filled; never by the
  /// accumulation states, whose add must be done whole or not at all.
  bool interruptible = false;

  moments() = default;
  explicit moments(std::vector<Eigen::Index> widths) : width_(std::move(widths)) {
    Eigen::Index at = 1;
    for (Eigen::Index w : width_) {
      offset_.push_back(at);
      at += w;
    }
    features_ = at - 1;
    dim_ = at + Eigen::Index(width_.size());
    s_ = matrix<A>::Zero(dim_, dim_);
    shift_ = vector<A>::Zero(features_);
    scale_ = vector<A>::Ones(blocks());
  }

  Eigen::Index blocks() const { return Eigen::Index(width_.size()); }
  Eigen::Index width(Eigen::Index b) const { return width_[std::size_t(b)]; }
  /// Index in z of block b's first feature, and of its squared norm a_b.
  Eigen::Index offset(Eigen::Index b) const { return offset_[std::size_t(b)]; }
  Eigen::Index norm_index(Eigen::Index b) const { return 1 + features_ + b; }
  Eigen::Index dim() const { return dim_; }
  Eigen::Index features() const { return features_; }
  /// Rows added so far (S's corner Σ 1, exact below 2⁵³).
  A count() const { return s_(0, 0); }

  bool has_shift() const { return has_shift_; }
  const vector<A>& shift() const { return shift_; }
  /// Fixes the shift (all blocks concatenated); only while no row has been added.
  void set_shift(const vector<A>& m) {
    shift_ = m;
    has_shift_ = true;
  }
  /// Moves the state to shift m exactly (the triangular map T), or fixes m while no row has a shift yet.
  void move_shift(const vector<A>& m) {
    if (!has_shift_ && count() == A(0)) {
      set_shift(m);
      return;
    }
    if (shift_ == m) return;
    const matrix<A> moved = shifted(full(s_), scaled_delta(vector<A>(m - shift_)));
    s_ = moved.template triangularView<Eigen::Lower>();
    shift_ = m;
  }

  /// The blocks' scales (powers of two) and whether they are fixed (by the first rows, or set_scale).
  const vector<A>& scale() const { return scale_; }
  bool has_scale() const { return has_scale_; }
  /// Moves the state to scales s (powers of two, one per block) exactly, or fixes them before any row.
  void set_scale(const vector<A>& s) {
    if (has_scale_ && count() != A(0)) {
      matrix<A> f = full(s_);
      rescale(f, vector<A>(s.cwiseQuotient(scale_)));
      s_ = f.template triangularView<Eigen::Lower>();
    }
    scale_ = s;
    has_scale_ = true;
  }
  matrix<A>& raw() { return s_; }
  /// Why S cannot be a sum of rows z zᵀ (empty if it can, to rounding): what a loaded flat array must
  /// satisfy. The count is a whole number in [0, 2⁵³]; no rows and no shift means S = 0; the upper triangle is
  /// zero; the diagonal is non-negative; |S_ij| ≤ √(S_ii S_jj) (a Gram matrix; 1e-6 relative slack for
  /// rounding); each row-norm sum Σa_b equals the trace of its block (the same slack). O(p²).
  std::string inconsistency() const {
    const A n = count(), slack = A(1e-6);
    if (!whole_count(n)) return concat("the sample count is ", n);
    if (!has_shift_ && !s_.isZero(0)) return "rows are stored but no shift is fixed";
    for (Eigen::Index j = 1; j < dim_; ++j)
      for (Eigen::Index i = 0; i < j; ++i)
        if (s_(i, j) != A(0)) return "the upper triangle of its moment matrix is not zero";
    for (Eigen::Index i = 0; i < dim_; ++i)
      if (s_(i, i) < A(0)) return concat("moment ", i, " on the diagonal is negative (", s_(i, i), ")");
    for (Eigen::Index j = 0; j < dim_; ++j) {
      const A rj = std::sqrt(s_(j, j));
      for (Eigen::Index i = j + 1; i < dim_; ++i)
        if (std::abs(s_(i, j)) > (1 + slack) * rj * std::sqrt(s_(i, i))) {
          return concat("moments ", i, " and ", j, " break the Cauchy-Schwarz bound of a sum of squares");
        }
    }
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      const A trace = s_.diagonal().segment(offset(b), width(b)).sum(), sum = s_(norm_index(b), 0);
      if (std::abs(sum - trace) > slack * trace) return concat("the squared-norm sum of block ", b, " is ", sum, " but its trace is ", trace);
    }
    return {};
  }
  const matrix<A>& raw() const { return s_; }

  /// Adds h rows. load(b, r0, rows, dest) writes rows r0 … r0+rows−1 of representation b, converted to A,
  /// into dest (rows × width(b)); it is called for disjoint strips of rows, from several OpenMP threads at
  /// once (it must only read its source). Rows go through one buffer (the thread's workspace) of at most
  /// chunk_values entries with storage order Order (that of the input, so the copy walks memory in order),
  /// written strip by strip: each strip is loaded, shifted, scaled and given its squared norms while it is
  /// in cache, then the chunk is one symmetric product. Without a shift, the first rows fix it at their
  /// mean, computed as first row + mean of the differences so that a constant column gets its value exactly
  /// (and then contributes exact zeros). Throws cka::domain_error (overflow) if a squared row norm exceeds
  /// the range of A; inputs must be finite (the caller checks).
  template <int Order, class Load>
  void add(const char* fn, Eigen::Index h, Load&& load) {
    if (h <= 0) return;
    // Sub-chunks of equal size, at least 512 rows deep where there are (no short last one: a thin GEMM
    // runs far below the rate of a deep one).
    const Eigen::Index most = std::max<Eigen::Index>(512, chunk_values / std::max<Eigen::Index>(dim_, 1));
    const Eigen::Index parts = (h + most - 1) / most;
    const Eigen::Index chunk = (h + parts - 1) / parts;
    // The buffer is the thread's reused workspace: a fresh 8 MiB allocation per call would pay its page faults.
    const workspace_lease<A> lease(std::size_t(chunk * dim_));
    Eigen::Map<Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Order>> buf(lease.data(), chunk, dim_);
    for (Eigen::Index r0 = 0; r0 < h; r0 += chunk) {
      if (interruptible) poll_interrupt();
      const Eigen::Index hh = std::min(chunk, h - r0);
      auto z = buf.topRows(hh);
      const bool fixed = has_shift_ && has_scale_;
      // Fixed shift and scales: each strip is finished as it is loaded. Otherwise the first rows are loaded
      // whole, fix the shift and scales, and are then finished strip by strip.
      Eigen::Index bad = for_strips(hh, [&](Eigen::Index s0, Eigen::Index sh) {
        auto strip = z.middleRows(s0, sh);
        for (Eigen::Index b = 0; b < blocks(); ++b) load(b, r0 + s0, sh, strip.middleCols(offset(b), width(b)));
        return fixed ? finish_strip(strip) : blocks();
      });
      if (!fixed) {
        fix_shift_and_scale(z);
        bad = for_strips(hh, [&](Eigen::Index s0, Eigen::Index sh) { return finish_strip(z.middleRows(s0, sh)); });
      }
      if (bad < blocks()) {
        fail_domain(fn, "overflow: a squared row norm of representation ", bad + 1,
                    " exceeds the range of the accumulation type; rescale it (CKA with the linear kernel is "
                    "scale-invariant)");
      }
      add_lower_outer(s_, z.transpose());
    }
  }

  /// Adds the rows of two views (a two-block state: x → block 0, y → block 1), buffered in x's storage
  /// order. The views were checked by the caller (same rows, right widths, finite).
  template <class VX, class VY>
  void add_pair(const char* fn, const VX& x, const VY& y) {
    add<VX::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>(
        fn, x.rows(), [&](Eigen::Index b, Eigen::Index r0, Eigen::Index h, auto&& dest) {
          if (b == 0) dest = x.middleRows(r0, h).template cast<A>();
          else dest = y.middleRows(r0, h).template cast<A>();
        });
  }

  /// Adds another state over the same blocks; a different shift is moved to this one first (exactly, by
  /// the triangular map T). An empty state without a shift takes the other's shift.
  void merge(const char* fn, const moments& other) {
    if (other.width_ != width_) fail_argument(fn, "the states have different widths");
    if (other.count() == A(0) && !other.has_shift_) return;
    if (!has_shift_ && count() == A(0)) {
      *this = other;
      return;
    }
    if (other.count() == A(0)) return;  // nothing to add
    if (!has_scale_) {  // no rows here yet: take the other's scales
      scale_ = other.scale_;
      has_scale_ = true;
    }
    if (other.shift_ == shift_ && other.scale_ == scale_) {
      s_ += other.s_;
      return;
    }
    matrix<A> f = full(other.s_);
    if (other.scale_ != scale_) rescale(f, vector<A>(scale_.cwiseQuotient(other.scale_)));
    const matrix<A> moved = shifted(std::move(f), scaled_delta(vector<A>(shift_ - other.shift_)));
    s_ += moved.template triangularView<Eigen::Lower>();
  }

  /// S moved to the sample mean, full and symmetric: the centered co-moments C_bc = Σ (x_b − μ_b)(x_c − μ_c)ᵀ
  /// in the feature blocks, Σ k_b in (norm_index(b), 0) and Σ k_b k_c in (norm_index(b), norm_index(c)),
  /// with k_b,i = ‖x_b,i − μ_b‖². O(p²).
  matrix<A> centered() const { return centered_from(s_); }

  /// The same, built in the state's own storage (no p×p allocation, whose page faults cost as much as the
  /// transform at large p). The state is consumed: only for callers that finish a temporary state.
  matrix<A> take_centered() { return centered_from(std::move(s_)); }

  /// c (a matrix in S's layout, e.g. centered()) in the data's units: the scales divided out.
  matrix<A> unscaled(matrix<A> c) const {
    rescale(c, vector<A>(scale_.cwiseInverse()));
    return c;
  }

  /// The uncentered (shifted) self-product of block b, the reference that tells a vanishing centered
  /// co-moment from rounding.
  A reference(Eigen::Index b) const {
    const Eigen::Index o = offset(b), w = width(b);
    A sum(0);
    for (Eigen::Index j = 0; j < w; ++j) {  // the lower triangle: off-diagonal entries count twice
      const auto seg = s_.col(o + j).segment(o + j, w - j);
      sum += A(2) * seg.squaredNorm() - seg(0) * seg(0);
    }
    return sum;
  }

  /// Centered sums of blocks b and c from the centered matrix: ‖C_bc‖², ‖C_bb‖², ‖C_cc‖², plus the
  /// unbiased estimator's row-norm terms (see unbiased_feature_terms).
  centered_sums<A> pair_sums(const matrix<A>& c, Eigen::Index b, Eigen::Index d, estimator est) const {
    return sums_with(c, b, d, est, reference(b), reference(d));
  }
  /// The same with the state finished in its own storage (take_centered: no p×p copy), for callers that
  /// finish a temporary state: the centered matrix is left in c, the state empty.
  centered_sums<A> take_pair_sums(Eigen::Index b, Eigen::Index d, estimator est, matrix<A>& c) {
    const A rb = reference(b), rd = reference(d);  // read off S before it is consumed
    c = take_centered();
    return sums_with(c, b, d, est, rb, rd);
  }
  /// The reference of block b's self-product under `est`: the uncentered one, raised for the unbiased
  /// estimator to the size of the terms that cancel (first_order_reference).
  A reference(Eigen::Index b, const matrix<A>& c, estimator est) const { return reference_of(reference(b), c, b, est); }
  A reference_of(const A& uncentered, const matrix<A>& c, Eigen::Index b, estimator est) const {
    if (est == estimator::biased) return uncentered;
    const unbiased_feature_terms<A> t{static_cast<Eigen::Index>(c(0, 0))};
    const A size = A(c.block(offset(b), offset(b), width(b), width(b)).squaredNorm() +
                     t.magnitude(c(norm_index(b), 0), c(norm_index(b), 0), c(norm_index(b), norm_index(b))));
    return first_order_reference(uncentered, size, static_cast<Eigen::Index>(c(0, 0)));
  }
  /// ‖C_bb‖² (+ the unbiased terms): n(n−3)·HSIC_u(K_b, K_b), or (n−1)²·HSIC(K_b, K_b).
  A self_sum(const matrix<A>& c, Eigen::Index b, estimator est) const {
    A v = c.block(offset(b), offset(b), width(b), width(b)).squaredNorm();
    if (est == estimator::unbiased) v += terms(c, b, b);
    return v;
  }
  /// The cross sum alone: ‖C_bd‖² (+ the unbiased terms).
  A cross_sum(const matrix<A>& c, Eigen::Index b, Eigen::Index d, estimator est) const {
    A v = c.block(offset(d), offset(b), width(d), width(b)).squaredNorm();
    if (est == estimator::unbiased) v += terms(c, b, d);
    return v;
  }

 private:
  centered_sums<A> sums_with(const matrix<A>& c, Eigen::Index b, Eigen::Index d, estimator est, const A& rb, const A& rd) const {
    return {cross_sum(c, b, d, est), self_sum(c, b, est), self_sum(c, d, est), reference_of(rb, c, b, est),
            reference_of(rd, c, d, est)};
  }
  /// Rows per strip: about 256 KiB of the buffer, so a strip stays in a core's cache between its load and
  /// its finish.
  Eigen::Index strip_rows() const { return std::max<Eigen::Index>(8, (Eigen::Index(1) << 15) / std::max<Eigen::Index>(dim_, 1)); }

  /// Calls f(s0, rows) for the strips of h rows, spread over Eigen::nbThreads() OpenMP threads; the
  /// least of f's results (block indices, blocks() for none). An exception thrown by f is rethrown here,
  /// after the loop.
  template <class F>
  Eigen::Index for_strips(Eigen::Index h, F&& f) const {
    const Eigen::Index step = strip_rows(), strips = (h + step - 1) / step;
    Eigen::Index least = blocks();
    std::exception_ptr error;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(Eigen::nbThreads()) if (strips > 1) reduction(min : least)
#endif
    for (Eigen::Index k = 0; k < strips; ++k) {
      try {
        const Eigen::Index s0 = k * step;
        least = std::min(least, f(s0, std::min(step, h - s0)));
      } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(cka_moments_strips)
#endif
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return least;
  }

  /// The first rows fix the shift (their mean, as first row + mean of the differences) where none is
  /// fixed, then, where none are, the blocks' scales, each from its largest shifted magnitude.
  template <class Z>
  void fix_shift_and_scale(const Z& z) {
    if (!has_shift_) {
      for (Eigen::Index b = 0; b < blocks(); ++b) {
        const auto x = z.middleCols(offset(b), width(b));
        const Eigen::Matrix<A, 1, Eigen::Dynamic> first = x.row(0);
        shift_.segment(offset(b) - 1, width(b)) = (first + (x.rowwise() - first).colwise().sum() / A(z.rows())).transpose();
      }
      has_shift_ = true;
    }
    if (!has_scale_) {
      for (Eigen::Index b = 0; b < blocks(); ++b) {
        const auto x = z.middleCols(offset(b), width(b));
        scale_(b) = x.size() == 0 ? A(1)
                                  : safe_scale_for<A>(A((x.rowwise() - shift_.segment(offset(b) - 1, width(b)).transpose())
                                                            .cwiseAbs()
                                                            .maxCoeff()));
      }
      has_scale_ = true;
    }
  }

  /// A loaded strip of z finished: the constant 1, each block shifted and scaled, its squared row norms.
  /// The first block whose squared norm overflowed, or blocks().
  template <class Z>
  Eigen::Index finish_strip(Z strip) const {
    strip.col(0).setOnes();
    Eigen::Index bad = blocks();
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      auto x = strip.middleCols(offset(b), width(b));
      x.rowwise() -= shift_.segment(offset(b) - 1, width(b)).transpose();
      if (scale_(b) != A(1)) x *= scale_(b);
      strip.col(norm_index(b)) = x.rowwise().squaredNorm();
      if (bad == blocks() && !strip.col(norm_index(b)).allFinite()) bad = b;
    }
    return bad;
  }

  A terms(const matrix<A>& c, Eigen::Index b, Eigen::Index d) const {
    const unbiased_feature_terms<A> t{static_cast<Eigen::Index>(c(0, 0))};  // n: the corner, kept by T
    return t(c(norm_index(b), 0), c(norm_index(d), 0), c(norm_index(b), norm_index(d)));
  }

  matrix<A> centered_from(matrix<A> f) const {
    mirror_lower(f);
    const A n = f(0, 0);
    if (!(n > A(0))) return f;
    const vector<A> delta = f.col(0).segment(1, features_) / n;
    return shifted(std::move(f), delta);
  }

  static matrix<A> full(matrix<A> g) {
    mirror_lower(g);  // tiled: a plain transpose strides through memory
    return g;
  }

  /// T·M for the shift change δ (all blocks): rows x_b −= δ_b·row 0; rows a_b += −2δ_bᵀ·rows x_b + ‖δ_b‖²·row 0
  /// (the a rows first, since they read the old x rows).
  void apply_left(matrix<A>& m, const vector<A>& delta) const {
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      const auto db = delta.segment(offset(b) - 1, width(b));
      const Eigen::Matrix<A, 1, Eigen::Dynamic> change =
          A(-2) * (db.transpose() * m.middleRows(offset(b), width(b))) + db.squaredNorm() * m.row(0);
      m.row(norm_index(b)) += change;
    }
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      const auto db = delta.segment(offset(b) - 1, width(b));
      m.middleRows(offset(b), width(b)) -= db * m.row(0);
    }
  }

  /// M·Tᵀ, the same map on the columns (contiguous in column-major storage).
  void apply_right(matrix<A>& m, const vector<A>& delta) const {
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      const auto db = delta.segment(offset(b) - 1, width(b));
      vector<A> change = m.middleCols(offset(b), width(b)) * db;  // one product, then the vector terms (an
      change = A(-2) * change + db.squaredNorm() * m.col(0);        // expression holding the product trips GCC 12)
      m.col(norm_index(b)) += change;
    }
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      const auto db = delta.segment(offset(b) - 1, width(b));
      m.middleCols(offset(b), width(b)) -= m.col(0) * db.transpose();
    }
  }

  /// T F Tᵀ: rows, then columns.
  matrix<A> shifted(matrix<A> f, const vector<A>& delta) const {
    apply_left(f, delta);
    apply_right(f, delta);
    return f;
  }

  /// A shift change in the data's units, in S's (scaled) units.
  vector<A> scaled_delta(vector<A> delta) const {
    for (Eigen::Index b = 0; b < blocks(); ++b) delta.segment(offset(b) - 1, width(b)) *= scale_(b);
    return delta;
  }

  /// Multiplies block b's feature rows and columns of the full matrix f by r_b and its norm row and column
  /// by r_b² (powers of two: exact).
  void rescale(matrix<A>& f, const vector<A>& r) const {
    for (Eigen::Index b = 0; b < blocks(); ++b) {
      if (r(b) == A(1)) continue;
      f.middleRows(offset(b), width(b)) *= r(b);
      f.middleCols(offset(b), width(b)) *= r(b);
      f.row(norm_index(b)) *= r(b) * r(b);
      f.col(norm_index(b)) *= r(b) * r(b);
    }
  }

  std::vector<Eigen::Index> width_, offset_;
  Eigen::Index features_ = 0, dim_ = 0;
  vector<A> shift_, scale_;
  bool has_shift_ = false, has_scale_ = false;
  matrix<A> s_;
};

/// CKA of every pair of blocks of a moment state (B×B, symmetric), NaN in the rows and columns of blocks
/// with zero variance. Throws cka::invalid_argument for too few rows; cka::domain_error for overflow.
/// A non-const state is finished in its own storage and left empty (take_centered).
template <class A, class M>
matrix<A> pairwise_cka(const char* fn, M&& m, estimator est) {
  require_samples(fn, "the state", sample_count(fn, m.count()), min_samples(est), estimator_name(est));
  const Eigen::Index l = m.blocks();
  vector<A> self(l), ref(l);
  for (Eigen::Index b = 0; b < l; ++b) ref(b) = m.reference(b);  // before a consuming finish
  matrix<A> c;
  if constexpr (std::is_const_v<std::remove_reference_t<M>>) {
    c = m.centered();
  } else {
    c = m.take_centered();
  }
  for (Eigen::Index b = 0; b < l; ++b) {
    self(b) = m.self_sum(c, b, est);
    ref(b) = m.reference_of(ref(b), c, b, est);
  }
  matrix<A> out(l, l);
  for (Eigen::Index b = 0; b < l; ++b)
    for (Eigen::Index d = 0; d <= b; ++d) {
      const centered_sums<A> s{b == d ? self(b) : m.cross_sum(c, d, b, est), self(b), self(d), ref(b), ref(d)};
      out(b, d) = out(d, b) = cka_ratio(fn, s, when_undefined::nan);
    }
  return out;
}

}  // namespace cka::detail
