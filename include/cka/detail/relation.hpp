#pragma once
// Private: the alignment of two row-relation Grams and its analytic gradient, shared by every RCKA loss.

#include <cka/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <cmath>

namespace cka::rcka {

/// How two relation Grams are compared.
/// - `centered = true` (default): true CKA with estimator `est`.
/// - `{centered = false, row_normalize = true}`: the alignment of the paper's official code — the
///   uncentred cosine of the Grams after scaling each Gram row i by 1/√G_ii.
/// - `{centered = false, row_normalize = false}`: the plain uncentred cosine of the Grams.
/// `row_normalize` with `centered = true` scales the rows first and then applies H·H; it needs the
/// biased estimator (the U-centering is defined for symmetric Grams only).
struct relation_options {
  bool centered = true;
  bool row_normalize = false;
  estimator est = estimator::biased;
};

}  // namespace cka::rcka

namespace cka::detail {

/// The alignment a of the Grams of the rows of s (n×ds, the student) and t (n×dt, the teacher), and,
/// when asked, ∂a/∂s (n×ds). With P the (row-scaled) student Gram, A = C(P) its centring (or P), and M
/// the same for the teacher:
///   a = ⟨A, M⟩ / (‖A‖‖M‖),  ∂a/∂P = W = M/(‖A‖‖M‖) − a·A/‖A‖²
/// (both centerings are self-adjoint and idempotent, so C disappears from W). Row scaling
/// P = diag(K_ii^−½)·K adds a diagonal term; then ∂a/∂s = (G + Gᵀ)·s for G = ∂a/∂K.
/// Cost: two n×n Grams (n²(ds+dt) flops) and, for the gradient, one n×n×ds product; O(n²) otherwise —
/// or, for centred CKA without row scaling and ds + dt < n, O(n(ds+dt)²) in feature space.
template <class A>
struct relation_value {
  A alignment;
  matrix<A> grad;
};

/// Centred CKA of the row Grams computed in feature space, for ds + dt < n: with Xs, Xt the column-centred
/// inputs, p = ‖XsᵀXt‖², q = ‖XsᵀXs‖², r = ‖XtᵀXt‖² (plus the unbiased estimator's row-norm terms, as in
/// linear_sums_features), a = p/√(qr) and
///   ∂a/∂Xs = ∂p/√(qr) − a/(2q)·∂q,  ∂p = 2Xt(XsᵀXt)ᵀ [+ 2(c₂Σk_t − c₁k_t)∘Xs],  ∂q = 4Xs(XsᵀXs) [+ 4(c₂Σk_s − c₁k_s)∘Xs],
/// column-centred at the end (the chain rule through Xs = HS). Cost O(n(ds + dt)²) instead of O(n²(ds + dt)).
template <class A, class MS, class MT>
relation_value<A> feature_space_relation(const char* fn, const MS& s, const MT& t, estimator est, bool want_grad) {
  using std::sqrt;
  const matrix<A> xs = centered_columns<A>(s), xt = centered_columns<A>(t);
  const matrix<A> mst = xs.transpose() * xt, mss = xs.transpose() * xs, mtt = xt.transpose() * xt;
  A p = mst.squaredNorm(), q = mss.squaredNorm(), r = mtt.squaredNorm();
  const bool unbiased = est == estimator::unbiased;
  const vector<A> ks = unbiased ? vector<A>(xs.rowwise().squaredNorm()) : vector<A>();
  const vector<A> kt = unbiased ? vector<A>(xt.rowwise().squaredNorm()) : vector<A>();
  const unbiased_feature_terms<A> terms(xs.rows());
  const A c1 = terms.c1, c2 = terms.c2;
  if (unbiased) {
    p += terms(ks, kt);
    q += terms(ks, ks);
    r += terms(kt, kt);
  }
  // Constant columns are zeroed exactly, so a constant representation gives exactly q = 0 or r = 0.
  if (!(q > A(0))) fail_domain(fn, "the student's relation Gram vanishes after centering (a constant student), so the alignment is undefined");
  if (!(r > A(0))) fail_domain(fn, "the teacher's relation Gram vanishes after centering (a constant teacher), so the alignment is undefined");
  relation_value<A> out{A(p / sqrt(A(q * r))), matrix<A>()};
  if (!want_grad) return out;
  matrix<A> dp = A(2) * xt * mst.transpose();
  matrix<A> dq = A(4) * xs * mss;
  if (unbiased) {
    dp += (A(2) * (c2 * kt.sum() - c1 * kt.array())).matrix().asDiagonal() * xs;
    dq += (A(4) * (c2 * ks.sum() - c1 * ks.array())).matrix().asDiagonal() * xs;
  }
  out.grad = dp / sqrt(A(q * r)) - (out.alignment / (A(2) * q)) * dq;
  const Eigen::Matrix<A, 1, Eigen::Dynamic> mean = out.grad.colwise().mean();
  out.grad.rowwise() -= mean;
  return out;
}

template <class A, class MS, class MT>
relation_value<A> row_relation(const char* fn, const MS& s, const MT& t, const rcka::relation_options& o,
                               bool want_grad) {
  using std::sqrt;
  const Eigen::Index n = s.rows();
  if (o.row_normalize && o.centered && o.est == estimator::unbiased) {
    fail_argument(fn, "row_normalize with centered = true needs estimator::biased (U-centering is defined "
                      "for symmetric Grams only)");
  }
  require_samples(fn, "the student", n, o.centered ? min_samples(o.est) : 2,
                  o.centered ? estimator_name(o.est) : "an uncentred alignment");
  // Centred CKA without row scaling works on centred features: H K H = Xc Xcᵀ, and float data with a
  // large offset keeps its accuracy. With fewer features than rows it never forms the n×n Grams.
  const bool centre_features = o.centered && !o.row_normalize;
  if (centre_features && s.cols() + t.cols() < n) return feature_space_relation<A>(fn, s, t, o.est, want_grad);
  const matrix<A> xs = centre_features ? centered_columns<A>(s) : matrix<A>(s.template cast<A>());
  const matrix<A> xt = centre_features ? centered_columns<A>(t) : matrix<A>(t.template cast<A>());
  const matrix<A> ks = symmetric_outer<A>(xs);
  const matrix<A> kt = symmetric_outer<A>(xt);

  auto inverse_root_diagonal = [&](const matrix<A>& k, const char* who) {
    vector<A> inv(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      if (!(k(i, i) > A(0))) {
        fail_domain(fn, who, " row ", i, " is zero, so row_normalize would divide by zero");
      }
      inv(i) = A(A(1) / sqrt(k(i, i)));
    }
    return inv;
  };
  const vector<A> inv_s = o.row_normalize ? inverse_root_diagonal(ks, "the student's") : vector<A>();
  const vector<A> inv_t = o.row_normalize ? inverse_root_diagonal(kt, "the teacher's") : vector<A>();
  auto prepare = [&](const matrix<A>& k, const vector<A>& inv) {
    matrix<A> p = o.row_normalize ? matrix<A>(inv.asDiagonal() * k) : k;
    const bool already_centred = centre_features && o.est == estimator::biased;
    return (o.centered && !already_centred) ? centered_dense<A>(std::move(p), o.est) : p;
  };
  const matrix<A> am = prepare(ks, inv_s);
  const matrix<A> mm = prepare(kt, inv_t);

  const A eps = Eigen::NumTraits<A>::epsilon();
  const A floor = A(64) * A(64) * eps * eps;
  const A na2 = am.squaredNorm(), nm2 = mm.squaredNorm();
  if (!(na2 > floor * ks.squaredNorm())) {
    fail_domain(fn, "the student's relation Gram vanishes", o.centered ? " after centering" : "",
                " (a constant student), so the alignment is undefined");
  }
  if (!(nm2 > floor * kt.squaredNorm())) {
    fail_domain(fn, "the teacher's relation Gram vanishes", o.centered ? " after centering" : "",
                " (a constant teacher), so the alignment is undefined");
  }
  const A na = sqrt(na2), nm = sqrt(nm2);
  relation_value<A> out{A(am.cwiseProduct(mm).sum() / (na * nm)), matrix<A>()};
  if (!want_grad) return out;

  matrix<A> w = mm / A(na * nm) - (out.alignment / na2) * am;
  if (o.row_normalize) {
    // ∂a/∂K_ij = W_ij/√K_ii, and the diagonal gains −½ K_ii^−3/2 Σ_l W_il K_il.
    const vector<A> diag = (w.cwiseProduct(ks).rowwise().sum().array() * inv_s.array().cube() / A(2)).matrix();
    w = inv_s.asDiagonal() * w;
    w.diagonal() -= diag;
  }
  out.grad = (w + w.transpose()) * xs;
  return out;
}

}  // namespace cka::detail
