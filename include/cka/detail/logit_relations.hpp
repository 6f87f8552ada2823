#pragma once
// Private: both relations of the RCKA loss (the Grams of the rows and of the columns of two logit matrices)
// from one symmetric product, and the gradient of their weighted loss from one more product, for centered
// biased CKA without row scaling.

#include <cka/detail/float_products.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/ratio.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/scale.hpp>
#include <cka/detail/workspace.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

namespace cka::detail {

/// One side of logit_relations, in units scaled by the power of two `scale`: γ the column means of
/// Y = S·H_m (rows centered), ρ = H_n·(row means of S).
template <class A>
struct logit_side {
  A scale = A(1);
  vector<A> gamma, rho;
  bool finite = true;  ///< false if a row's sum was not finite: a NaN or Inf in x (or an overflow)
};

/// Writes the doubly centered Z = H_n·S·H_m of x (n×m), scaled by a power of two (detail/scale.hpp), into
/// z (n×m, row-major) and returns γ and ρ. Offsets far above the spread cost no accuracy, whether they are
/// the rows', the columns' or both: each row less its mean is formed exactly as a sum of two doubles
/// (Knuth's TwoSum), the column means are taken from the larger parts and subtracted from them — exactly
/// where they agree in magnitude — before the smaller parts are added, and what rounding leaves of the
/// row and column means is taken out again; ρ comes from the rows less the first. A constant — all rows
/// the same, or every row of one value — leaves Z and ρ (and γ) exactly zero: a vanishing relation, never
/// rounding. A NaN or Inf in x makes a row's sum non-finite, which `finite` reports (the caller then names
/// the culprit). x is read once (into z, where the row statistics are taken while the row is in cache);
/// then two passes over z and one to write it.
template <class A, class X, class Z>
logit_side<A> doubly_centered(const X& x, Z&& z) {
  const Eigen::Index n = x.rows(), m = x.cols();
  logit_side<A> side;
  vector<A> hi(n), lo(n), shifted(n);  // the rows' means as hi + lo; the means of S − 1·S_0
  std::vector<char> flat(std::size_t(n), 0);
  // Each row's statistics, from z's row i (S's row, scaled).
  auto statistics = [&](Eigen::Index i) {
    const auto a = z.row(i).array();
    shifted(i) = (a - z.row(0).array()).sum() / A(m);
    flat[std::size_t(i)] = a.minCoeff() == a.maxCoeff();
    if (flat[std::size_t(i)]) return;
    hi(i) = a.sum() / A(m);
    lo(i) = (a - hi(i)).sum() / A(m);
  };
  A top(0);
  for (Eigen::Index i = 0; i < n; ++i) {
    z.row(i) = x.row(i).template cast<A>();
    top = std::max(top, z.row(i).cwiseAbs().maxCoeff());
    statistics(i);
  }
  side.scale = power_of_two_scale(top);
  if (side.scale != A(1)) {
    for (Eigen::Index i = 0; i < n; ++i) {
      z.row(i) *= side.scale;
      statistics(i);
    }
  }
  bool finite = true;
  for (Eigen::Index i = 0; i < n; ++i) finite = finite && is_finite_value(shifted(i));
  side.finite = finite;
  using row_array = Eigen::Array<A, 1, Eigen::Dynamic>;
  row_array y(m), e(m);
  // The row of S less its mean, exactly: y + e = a − hi − lo, zero for a flat row (TwoSum(a, −hi): y the
  // rounded sum, its error (a − (y − b)) + (−hi − b) with b = y − a).
  auto split = [&](Eigen::Index i) {
    const auto a = z.row(i).array();
    if (flat[std::size_t(i)]) {
      y.setZero();
      e.setZero();
      return;
    }
    y = a - hi(i);
    e = (a - (y - (y - a))) + (-hi(i) - (y - a)) - lo(i);
  };
  bool identical = true;
  for (Eigen::Index i = 1; i < n && identical; ++i) identical = x.row(i) == x.row(0);
  if (identical) {
    split(0);
    side.gamma = (y + e).matrix().transpose();
    side.rho = vector<A>::Zero(n);
    z.setZero();
    return side;
  }
  row_array g = row_array::Zero(m);
  for (Eigen::Index i = 0; i < n; ++i)
    if (!flat[std::size_t(i)]) g += z.row(i).array() - hi(i);
  g /= A(n);
  // Z's rows, less what rounding left of their means; then less what is left of the columns'.
  row_array rest = row_array::Zero(m);
  for (Eigen::Index i = 0; i < n; ++i) {
    split(i);
    auto row = z.row(i).array();
    row = (y - g) + e;
    row -= row.sum() / A(m);
    rest += row;
  }
  rest /= A(n);
  z.rowwise() -= rest.matrix();
  side.gamma = (g + rest).matrix().transpose();
  const A mean = shifted.mean();
  side.rho = shifted.array() - mean;
  side.rho.array() -= side.rho.mean();
  return side;
}

/// Both RCKA relations of s and t (n×m each, 2 ≤ n ≤ m; finite): the n×n centered Grams of the rows and the
/// m×m centered Grams of the columns, and the gradient of a weighted sum of their alignments. With
/// Y = S·H_m, γ its column means, Z = H_n·S·H_m and ρ = H_n·(row means of S), P = [Z_s; Z_t][Z_s; Z_t]ᵀ
/// (its lower triangle by SYRK, then mirrored) holds every product:
///   rows:    K = H_n S Sᵀ H_n = P_ss + m·ρρᵀ,                               a_rows = ⟨K_s, K_t⟩ / (‖K_s‖‖K_t‖)
///   columns: Q_st = Y_s Y_tᵀ = P_st + Z_sγ_t 1ᵀ + 1(Z_tγ_s)ᵀ + (γ_s·γ_t)11ᵀ,   a_cols = ‖Q_st‖² / (‖Q_ss‖‖Q_tt‖)
/// (the m×m Grams Y_sᵀY_s never appear: ⟨Y_sᵀY_s, Y_tᵀY_t⟩ = ‖Y_s Y_tᵀ‖²). A relation vanishes only when a
/// Gram is exactly zero (a constant; see doubly_centered). Cost 4n²m flops for P, O(nm) passes and O(n²)
/// work; memory (3n + 3)·m + 6n² + 3n values, the thread's reused workspace (detail/workspace.hpp). With
/// float_products, P and the gradient's product by [Z_s; Z_t] run in float (detail/float_products.hpp; the
/// gradient's three rank-one rows stay in double), and 2nm floats more are held.
template <class A>
class logit_relations {
 public:
  template <class MS, class MT>
  logit_relations(const MS& s, const MT& t, bool float_products = false)
      : n_(s.rows()), m_(s.cols()),
        work_(std::size_t((2 * n_ + 3) * m_ + 4 * n_ * n_ + n_ * (2 * n_ + 3) + n_ * m_)),
        z_(work_.data(), 2 * n_ + 3, m_), p_(z_.data() + z_.size(), 2 * n_, 2 * n_) {
    // The two sides at once (independent passes over their inputs and rows of z).
    logit_side<A>* sides[2] = {&s_, &t_};
#if defined(_OPENMP)
#pragma omp parallel for num_threads(2) if (n_ * m_ >= 16384)
#endif
    for (int k = 0; k < 2; ++k) {
      *sides[k] = k == 0 ? doubly_centered<A>(s, z_.topRows(n_)) : doubly_centered<A>(t, z_.middleRows(n_, n_));
    }
    // Rows 2n.. of z: 1ᵀ, γ_sᵀ, γ_tᵀ, the right factors of the gradient's rank-one terms.
    z_.row(2 * n_).setOnes();
    z_.row(2 * n_ + 1) = s_.gamma.transpose();
    z_.row(2 * n_ + 2) = t_.gamma.transpose();
    if (float_products) {
      zf_.emplace(z_.topRows(2 * n_));
      float_gram_into(p_, zf_->x, zf_->exponent);
    } else {
      p_.setZero();
      add_lower_outer(p_, z_.topRows(2 * n_));
      mirror_lower(p_);
    }
    // [Z_s; Z_t]·γ_s and ·γ_t: u_s = Z_sγ_s, v_ts = Z_tγ_s, v_st = Z_sγ_t, u_t = Z_tγ_t.
    const vector<A> vs = z_.topRows(2 * n_) * s_.gamma, vt = z_.topRows(2 * n_) * t_.gamma;
    us_ = vs.head(n_);
    vts_ = vs.tail(n_);
    vst_ = vt.head(n_);
    ut_ = vt.tail(n_);
    gss_ = s_.gamma.squaredNorm();
    gtt_ = t_.gamma.squaredNorm();
    gst_ = s_.gamma.dot(t_.gamma);
    // The six sums in one pass down the columns.
    A kl(0), kk(0), ll(0), pp(0), qq(0), rr(0);
    for (Eigen::Index j = 0; j < n_; ++j) {
      const auto ks = k_s(j);
      const auto kt = k_t(j);
      const auto qs = q_ss(j);
      const auto qt = q_tt(j);
      const auto q = q_st(j);
      kl += (ks * kt).sum();
      kk += ks.square().sum();
      ll += kt.square().sum();
      pp += q.square().sum();
      qq += qs.square().sum();
      rr += qt.square().sum();
    }
    rows_ = {kl, kk, ll, kk, ll};
    cols_ = {pp, qq, rr, qq, rr};
  }

  /// The sums of the rows' relation and of the columns' (for cka_ratio; the references are the self-sums,
  /// so only an exactly zero Gram vanishes).
  const centered_sums<A>& rows_sums() const { return rows_; }
  const centered_sums<A>& cols_sums() const { return cols_; }
  /// False if an input holds a NaN or Inf (see doubly_centered); the sums are then meaningless.
  bool finite() const { return s_.finite && t_.finite; }

  /// ∂/∂S of w_rows·(1 − a_rows) + w_cols·(1 − a_cols) for the alignments a from the sums above; a term with
  /// a NaN alignment (undefined, skipped) is left out. With W = K_t/(‖K_s‖‖K_t‖) − a_rows·K_s/‖K_s‖²,
  /// V_t = 2Q_st/(‖Q_ss‖‖Q_tt‖) and V_s = −2a_cols·Q_ss/‖Q_ss‖²:
  ///   ∂a_rows/∂S = 2W(Z_s + ρ1ᵀ),   ∂a_cols/∂S = V_t Y_t + V_s Y_s = V_t Z_t + V_s Z_s + V_t1 γ_tᵀ + V_s1 γ_sᵀ,
  /// all one product [M_s | M_t | c | d_s | d_t]·[Z_s; Z_t; 1ᵀ; γ_sᵀ; γ_tᵀ] (4n²m flops), written into
  /// `out` in its scalar type: n×m, or m×n with `transposed` (any layout; sized by the caller).
  template <class Out>
  void gradient_into(Out& out, A w_rows, A a_rows, A w_cols, A a_cols, bool transposed) {
    using std::sqrt;
    const bool rows = a_rows == a_rows, cols = a_cols == a_cols;
    if (!rows && !cols) {
      out.setZero();
      return;
    }
    // The coefficients of W and V, the scale (∂/∂S = scale·∂/∂(scale·S)) and the weights folded in.
    const A sc = s_.scale;
    A wt(0), ws(0), vt(0), vs(0);
    if (rows) {
      wt = A(-2) * w_rows * sc / sqrt(rows_.kk) / sqrt(rows_.ll);
      ws = A(2) * w_rows * sc * a_rows / rows_.kk;
    }
    if (cols) {
      vt = A(-2) * w_cols * sc / sqrt(cols_.kk) / sqrt(cols_.ll);
      vs = A(2) * w_cols * sc * a_cols / cols_.kk;
    }
    Eigen::Map<matrix<A>> f(p_.data() + p_.size(), n_, 2 * n_ + 3);  // [M_s | M_t | c | d_s | d_t]
    f.rightCols(3).setZero();
    for (Eigen::Index j = 0; j < n_; ++j) {
      const auto k = wt * k_t(j) + ws * k_s(j);
      const auto q = vs * q_ss(j);
      f.col(j) = k + q;
      f.col(n_ + j) = vt * q_st(j);
      f.col(2 * n_) += (k * s_.rho(j)).matrix();
      f.col(2 * n_ + 1) += q.matrix();
      f.col(2 * n_ + 2) += f.col(n_ + j);
    }
    Eigen::Map<matrix<A>> g(f.data() + f.size(), n_, m_);
    if (zf_) {
      const float_factor<> ff(f.leftCols(2 * n_));
      float_product_into(g, ff.x, ff.exponent, zf_->x, zf_->exponent);
      g.noalias() += f.rightCols(3) * z_.bottomRows(3);
    } else {
      product_into(g, f, z_);
    }
    if (transposed) {
      convert_into(out, g.transpose());
    } else {
      convert_into(out, g);
    }
  }

 private:
  /// Column j of each Gram (an array expression) from P and the rank-one terms.
  auto k_s(Eigen::Index j) const { return p_.col(j).head(n_).array() + A(m_) * s_.rho(j) * s_.rho.array(); }
  auto k_t(Eigen::Index j) const { return p_.col(n_ + j).tail(n_).array() + A(m_) * t_.rho(j) * t_.rho.array(); }
  auto q_ss(Eigen::Index j) const { return p_.col(j).head(n_).array() + us_.array() + (us_(j) + gss_); }
  auto q_tt(Eigen::Index j) const { return p_.col(n_ + j).tail(n_).array() + ut_.array() + (ut_(j) + gtt_); }
  auto q_st(Eigen::Index j) const { return p_.col(n_ + j).head(n_).array() + vst_.array() + (vts_(j) + gst_); }

  using row_major = Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Index n_, m_;
  workspace_lease<A> work_;         ///< z, p, then the gradient's factor and product
  Eigen::Map<row_major> z_;         ///< [Z_s; Z_t; 1ᵀ; γ_sᵀ; γ_tᵀ]
  Eigen::Map<matrix<A>> p_;         ///< [Z_s; Z_t][Z_s; Z_t]ᵀ
  std::optional<float_factor<true>> zf_;  ///< [Z_s; Z_t] in float, with float_products
  logit_side<A> s_, t_;
  vector<A> us_, ut_, vst_, vts_;
  A gss_ = A(0), gtt_ = A(0), gst_ = A(0);
  centered_sums<A> rows_{}, cols_{};
};

}  // namespace cka::detail
