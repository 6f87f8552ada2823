#pragma once
// Private: the alignment of two row-relation Grams and its analytic gradient, shared by every RCKA loss.

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/float_products.hpp>
#include <cka/detail/moments.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/workspace.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <cmath>
#include <optional>

namespace cka::detail {

/// How two relation Grams are compared (the fields of the public rcka::relation_options).
struct relation_spec {
  bool centered;
  bool row_normalize;
  estimator est;
  bool skip_undefined;  ///< an undefined alignment gives `defined = false` and a zero gradient, not an exception
  bool float_products = false;  ///< the Grams and the gradient's products in float (detail/float_products.hpp)
};

/// The alignment a of the Grams of the rows of s (n×ds, the student) and t (n×dt, the teacher); row_relation
/// hands ∂a/∂s (n×ds) to the caller's sink. With P the (row-scaled) student Gram, A = C(P) its centering
/// (or P), and M the same for the teacher:
///   a = ⟨A, M⟩ / (‖A‖‖M‖),  ∂a/∂P = W = M/(‖A‖‖M‖) − a·A/‖A‖²
/// (both centerings are self-adjoint and idempotent, so C disappears from W). Row scaling
/// P = diag(K_ii^−½)·K adds a diagonal term; then ∂a/∂s = (G + Gᵀ)·s for G = ∂a/∂K.
/// Cost: two n×n Grams (n²(ds+dt) flops) and, for the gradient, one n×n×ds product; O(n²) otherwise —
/// or, for centered CKA without row scaling and ds + dt < n, O(n(ds+dt)²) in feature space.
template <class A>
struct relation_value {
  A alignment;
  bool defined = true;  ///< false: undefined under skip_undefined, and no gradient was handed over
};

/// The value of an undefined alignment under skip_undefined.
template <class A>
relation_value<A> undefined_relation() {
  return {A(0), false};
}

/// The student's and the teacher's rows in scalar A (n×ds and n×dt), column-centered when asked, in the
/// calling thread's workspace (detail/workspace.hpp): no fresh pages on every call of a loss.
template <class A>
struct relation_copies {
  workspace_lease<A> lease;
  Eigen::Map<matrix<A>> s, t;
  template <class MS, class MT>
  relation_copies(const MS& student, const MT& teacher, bool center)
      : lease(std::size_t(student.rows() * (student.cols() + teacher.cols()))),
        s(lease.data(), student.rows(), student.cols()),
        t(lease.data() + student.size(), teacher.rows(), teacher.cols()) {
    if (center) {
      centered_columns_into(student, s);
      centered_columns_into(teacher, t);
    } else {
      s = student.template cast<A>();
      t = teacher.template cast<A>();
    }
  }
};

/// Centered CKA of the row Grams in feature space, for ds + dt < n. The value comes from the shared
/// moment state (the same routine as linear_cka): p = ‖C_st‖², q = ‖C_ss‖², r = ‖C_tt‖² (plus the
/// unbiased estimator's row-norm terms), a = p/√(qr). The gradient, with Xs, Xt the column-centered inputs:
///   ∂a/∂Xs = ∂p/√(qr) − a/(2q)·∂q,  ∂p = 2Xt·C_stᵀ [+ 2(c₂Σk_t − c₁k_t)∘Xs],  ∂q = 4Xs·C_ss [+ 4(c₂Σk_s − c₁k_s)∘Xs],
/// column-centered at the end (the chain rule through Xs = HS). Cost O(n(ds + dt)²) instead of O(n²(ds + dt)).
/// row_relation takes it for the unbiased estimator (biased_feature_relation, below, for the biased one).
template <class A, class MS, class MT, class Sink>
relation_value<A> feature_space_relation(const char* fn, const MS& s, const MT& t, estimator est, bool skip,
                                         bool want_grad, Sink&& sink) {
  using std::sqrt;
  const Eigen::Index ds = s.cols(), dt = t.cols();
  moments<A> m({ds, dt});
  m.add_pair(fn, s, t);
  matrix<A> c;
  const centered_sums<A> sums = m.take_pair_sums(0, 1, est, c);
  const relation_value<A> out{cka_ratio(fn, sums, skip ? when_undefined::nan : when_undefined::raise, relation_sides())};
  if (skip && !(out.alignment == out.alignment)) return undefined_relation<A>();
  if (!want_grad) return out;
  const A q = sums.kk, r = sums.ll;
  const auto mst = c.block(m.offset(0), m.offset(1), ds, dt);
  const auto mss = c.block(m.offset(0), m.offset(0), ds, ds);
  const Eigen::Index n = s.rows();
  const relation_copies<A> x(s, t, true);
  const auto& xs = x.s;
  const auto& xt = x.t;
  // ∂a/∂Xs = Xt·(u·2C_stᵀ) + Xs·(−v·4C_ss) [+ diag(u·∂p_i − v·∂q_i)·Xs] with u = 1/√(qr), v = a/(2q): two
  // products (product_into, add_product) with the coefficients folded into their small right factors.
  const A u = A(1) / sqrt(A(q * r)), v = out.alignment / (A(2) * q);
  const workspace_lease<A> lease(std::size_t(ds * (dt + ds + n)));
  Eigen::Map<matrix<A>> cst(lease.data(), dt, ds), css(lease.data() + dt * ds, ds, ds),
      grad(lease.data() + (dt + ds) * ds, n, ds);
  cst = (A(2) * u) * mst.transpose();
  css = (A(-4) * v) * mss;
  product_into(grad, xt, cst);
  add_product(grad, xs, css);
  if (est == estimator::unbiased) {
    const unbiased_feature_terms<A> terms(n);
    const vector<A> ks = xs.rowwise().squaredNorm(), kt = xt.rowwise().squaredNorm();
    const vector<A> row = (A(2) * u * (terms.c2 * kt.sum() - terms.c1 * kt.array()) -
                           A(4) * v * (terms.c2 * ks.sum() - terms.c1 * ks.array())).matrix();
    grad += row.asDiagonal() * xs;
  }
  const Eigen::Matrix<A, 1, Eigen::Dynamic> mean = grad.colwise().mean();
  grad.rowwise() -= mean;
  sink(grad);
  return out;
}

/// feature_space_relation for the biased estimator, from the column-centered inputs side by side,
/// X = [Xs Xt] (n×d): C = XᵀX by one symmetric product, p = ‖C_ts‖², q = ‖C_ss‖², r = ‖C_tt‖², and the
/// gradient as one product X·[−4v·C_ss; 2u·C_ts] — with float_products both products in float from float
/// factors written straight from the inputs (detail/float_products.hpp), else in A from centered copies.
/// A constant input has exactly zero centered columns, so its self-sum is exactly zero (the reference is
/// the self-sum). Cost nd² + 2nd·ds flops.
template <class A, class MS, class MT, class Sink>
relation_value<A> biased_feature_relation(const char* fn, const MS& s, const MT& t, bool skip, bool float_products,
                                          bool want_grad, Sink&& sink) {
  using std::sqrt;
  const Eigen::Index n = s.rows(), ds = s.cols(), dt = t.cols(), d = ds + dt;
  std::optional<relation_copies<A>> x;  // the two copies lie side by side: [Xs Xt]
  std::optional<float_factor<>> f;      // or [Xs Xt] in float
  if (float_products) {
    f.emplace(from_columns{true}, s, t);
  } else {
    x.emplace(s, t, true);
  }
  const Eigen::Map<const matrix<A>> xm(x ? x->s.data() : nullptr, n, x ? d : 0);  // X in A, where the products are
  const workspace_lease<A> lease(std::size_t(d * d + d * ds + n * ds));
  Eigen::Map<matrix<A>> c(lease.data(), d, d), right(lease.data() + d * d, d, ds),
      grad(lease.data() + d * d + d * ds, n, ds);
  if (f) {
    float_gram_into(c, f->x.transpose(), f->exponent);
  } else {
    symmetric_outer_into(c, xm.transpose());
  }
  const A q = c.topLeftCorner(ds, ds).squaredNorm(), r = c.bottomRightCorner(dt, dt).squaredNorm();
  const centered_sums<A> sums{c.bottomLeftCorner(dt, ds).squaredNorm(), q, r, q, r};
  const relation_value<A> out{cka_ratio(fn, sums, skip ? when_undefined::nan : when_undefined::raise, relation_sides())};
  if (skip && !(out.alignment == out.alignment)) return undefined_relation<A>();
  if (!want_grad) return out;
  const A u = A(1) / sqrt(A(q * r)), v = out.alignment / (A(2) * q);
  right.topRows(ds) = (A(-4) * v) * c.topLeftCorner(ds, ds);
  right.bottomRows(dt) = (A(2) * u) * c.bottomLeftCorner(dt, ds);
  if (f) {
    const float_factor<> fr(right);
    float_product_into(grad, f->x, f->exponent, fr.x, fr.exponent);
  } else {
    product_into(grad, xm, right);
  }
  const Eigen::Matrix<A, 1, Eigen::Dynamic> mean = grad.colwise().mean();
  grad.rowwise() -= mean;
  sink(grad);
  return out;
}

/// row_relation on inputs whose magnitudes are safe (scaled already where they were not).
template <class A, class MS, class MT, class Sink>
relation_value<A> scaled_row_relation(const char* fn, const MS& s, const MT& t, const relation_spec& o,
                                      bool want_grad, Sink&& sink) {
  using std::sqrt;
  const Eigen::Index n = s.rows();
  // Centered CKA without row scaling works on centered features: H K H = Xc Xcᵀ, and float data with a
  // large offset keeps its accuracy. With fewer features than rows it never forms the n×n Grams.
  const bool center_features = o.centered && !o.row_normalize;
  if (center_features && s.cols() + t.cols() < n) {
    if (o.est == estimator::biased) {
      return biased_feature_relation<A>(fn, s, t, o.skip_undefined, o.float_products, want_grad, sink);
    }
    return feature_space_relation<A>(fn, s, t, o.est, o.skip_undefined, want_grad, sink);
  }
  // The rows in A (centered where the features are) — or, with float products, only their float factors,
  // written straight from the inputs. Each object is declared where its workspace lease is taken: leases
  // end in the reverse order.
  std::optional<relation_copies<A>> x;
  if (!o.float_products) x.emplace(s, t, center_features);
  const workspace_lease<A> grams(std::size_t(2 * n * n));
  Eigen::Map<matrix<A>> ks(grams.data(), n, n), kt(grams.data() + n * n, n, n);
  std::optional<float_factor<>> fs;  // the student's float factor, for its Gram and the gradient
  if (o.float_products) {
    fs.emplace(from_columns{center_features}, s);
    float_gram_into(ks, fs->x, fs->exponent);
    const float_factor<> ft(from_columns{center_features}, t);
    float_gram_into(kt, ft.x, ft.exponent);
  } else {
    symmetric_outer_into(ks, x->s);
    symmetric_outer_into(kt, x->t);
  }

  auto inverse_root_diagonal = [&](const auto& k, const char* who) {
    vector<A> inv(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      if (!(k(i, i) > A(0))) {
        if (o.skip_undefined) return vector<A>();
        fail_domain(fn, who, " row ", i, " is zero, so row_normalize would divide by zero");
      }
      inv(i) = A(A(1) / sqrt(k(i, i)));
    }
    return inv;
  };
  const vector<A> inv_s = o.row_normalize ? inverse_root_diagonal(ks, "the student's") : vector<A>();
  const vector<A> inv_t = o.row_normalize ? inverse_root_diagonal(kt, "the teacher's") : vector<A>();
  if (o.row_normalize && (inv_s.size() != n || inv_t.size() != n)) return undefined_relation<A>();
  // The Grams compared: ks and kt themselves where they are uncentered or centered already (the centered
  // features' Grams, biased), else their row-scaled or centered versions.
  const bool as_is = !o.row_normalize && (!o.centered || (center_features && o.est == estimator::biased));
  // Each compared Gram's reference for the zero-variance rule is its uncentered self-product, in its own
  // units: ‖K‖², or ‖P‖² for the row-scaled P (which goes as the inputs' scale, K as its square).
  A ref_s = A(0), ref_t = A(0);
  auto prepare = [&](const Eigen::Map<matrix<A>>& k, const vector<A>& inv, A& ref) {
    ref = k.squaredNorm();
    if (as_is) return matrix<A>();
    if (!o.row_normalize) return centered_dense<A>(k, o.est);
    matrix<A> p = inv.asDiagonal() * k;  // not symmetric: the general (biased) centering
    ref = p.squaredNorm();
    if (!o.centered) return p;
    const centering<A> c = centering_of_general<A>(p);
    return centered_dense<A>(std::move(p), c, estimator::biased);
  };
  const matrix<A> ps = prepare(ks, inv_s, ref_s), pt = prepare(kt, inv_t, ref_t);
  const Eigen::Map<const matrix<A>> am(as_is ? ks.data() : ps.data(), n, n), mm(as_is ? kt.data() : pt.data(), n, n);

  const A na2 = am.squaredNorm(), nm2 = mm.squaredNorm();
  side_names sides = relation_sides();
  if (!o.centered) sides.condition = "vanishes";
  const centered_sums<A> sums{am.cwiseProduct(mm).sum(), na2, nm2, ref_s, ref_t};
  const relation_value<A> out{cka_ratio(fn, sums, o.skip_undefined ? when_undefined::nan : when_undefined::raise, sides)};
  if (o.skip_undefined && !(out.alignment == out.alignment)) return undefined_relation<A>();
  if (!want_grad) return out;

  const A na = sqrt(na2), nm = sqrt(nm2);
  const workspace_lease<A> lease(std::size_t(n * (2 * n + s.cols())));
  Eigen::Map<matrix<A>> w(lease.data(), n, n), sym(lease.data() + n * n, n, n), grad(lease.data() + 2 * n * n, n, s.cols());
  w = mm / A(na * nm) - (out.alignment / na2) * am;
  if (o.row_normalize) {
    // ∂a/∂K_ij = W_ij/√K_ii, and the diagonal gains −½ K_ii^−3/2 Σ_l W_il K_il.
    const vector<A> diag = (w.cwiseProduct(ks).rowwise().sum().array() * inv_s.array().cube() / A(2)).matrix();
    w = inv_s.asDiagonal() * w;
    w.diagonal() -= diag;
  }
  sym = w + w.transpose();
  if (o.float_products) {
    const float_factor<> fsym(sym);
    float_product_into(grad, fsym.x, fsym.exponent, fs->x, fs->exponent);
  } else {
    product_into(grad, sym, x->s);
  }
  sink(grad);
  return out;
}

/// The sink of a call that wants no gradient.
struct no_gradient {
  template <class G>
  void operator()(const G&) const {}
};

/// The alignment of the row Grams of s (the student) and t and, when asked (want_grad) and defined, its
/// gradient ∂a/∂s: sink(g) is called once with g an Eigen::Map<matrix<A>> (n×ds) that it may change and
/// must not keep. In feature space where that is cheaper, else from the Grams (as relation_value
/// describes); the Grams, the gradient and its factors lie in the thread's workspace, so a loss called
/// every step allocates what it returns and, in feature space, the moment state. s and t are finite
/// (checked by the caller).
template <class A, class MS, class MT, class Sink = no_gradient>
relation_value<A> row_relation(const char* fn, const MS& s, const MT& t, const relation_spec& o, bool want_grad,
                               Sink&& sink = Sink()) {
  const Eigen::Index n = s.rows();
  if (o.row_normalize && o.centered && o.est == estimator::unbiased) {
    fail_argument(fn, "row_normalize with centered = true needs estimator::biased (U-centering is defined "
                      "for symmetric Grams only)");
  }
  const Eigen::Index needed = o.centered ? min_samples(o.est) : 2;
  if (o.skip_undefined && n < needed) return undefined_relation<A>();
  require_samples(fn, "the student", n, needed, o.centered ? estimator_name(o.est) : "an uncentered alignment");
  // The alignment does not depend on the scale of s or of t: magnitudes whose fourth powers would leave the
  // range of A are first scaled by a power of two (exact; one O(n·d) scan each, and a scaled copy only in
  // that case), and the gradient scaled back: ∂a/∂s = c·(∂a/∂s')(c·s) for s' = c·s.
  const A cs = safe_scale<A>(s), ct = safe_scale<A>(t);
  if (cs == A(1) && ct == A(1)) return scaled_row_relation<A>(fn, s, t, o, want_grad, sink);
  return scaled_row_relation<A>(fn, scaled_copy<A>(s, cs), scaled_copy<A>(t, ct), o, want_grad,
                                [&](Eigen::Map<matrix<A>>& g) {
                                  g *= cs;
                                  sink(g);
                                });
}

}  // namespace cka::detail
