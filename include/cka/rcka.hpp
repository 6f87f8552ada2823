#pragma once
/// \file rcka.hpp
/// Distillation losses of "Rethinking Centered Kernel Alignment in Knowledge Distillation" (Zhou et al.,
/// IJCAI 2024) with their analytic gradients, for C++ training loops that have no autograd: RCKA on
/// logits (sample and class relations), FCKA on feature maps and PCKA on patches. Includes the core.
///
/// Every loss is 1 − alignment ∈ [0, 2] (the official code minimises −alignment; the two differ by a
/// constant, so their gradients agree). `grad` is ∂value/∂student, the student's shape, in its scalar
/// type; the teacher is a constant. Float input is computed in double (its large products in float under
/// relation_options::products = product_precision::input). Each loss has a second form that writes the
/// gradient into the caller's matrix or view, in any layout (a framework's gradient buffer), and returns
/// loss_value.

#include <cka/cka.hpp>
#include <cka/detail/logit_relations.hpp>
#include <cka/detail/output_view.hpp>
#include <cka/detail/parallel.hpp>
#include <cka/detail/relation.hpp>
#include <cka/mmd_bound.hpp>
#include <cka/rcka_options.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka::rcka {

/// A loss value, its gradient with respect to the student input, and how many terms (relations, or
/// channels of patch_loss) were undefined and skipped under undefined_policy::skip.
template <class T>
struct loss_result {
  T value;
  matrix<T> grad;
  Eigen::Index skipped = 0;
};

namespace detail {

/// The options as the relation routines take them, for inputs of scalar T (float products for float only).
template <class T>
cka::detail::relation_spec spec(const relation_options& o) {
  return {o.centered, o.row_normalize, o.est, o.on_undefined == undefined_policy::skip,
          std::is_same_v<T, float> && o.products == product_precision::input};
}

/// r itself, or cka::domain_error where its value or gradient left the range of T: float logits so small
/// that the gradient, which goes as 1/|logits|, exceeds float (near 1e-40), or weights beyond T's range.
/// One pass over the gradient.
template <class T, class G>
loss_value<T> finished(const char* fn, loss_value<T> r, const G& grad) {
  if (!cka::detail::is_finite_value(r.value) || !cka::detail::all_finite(grad)) cka::detail::fail_loss_overflow(fn);
  return r;
}
template <class T>
loss_result<T> finished(const char* fn, loss_result<T>&& r) {
  finished<T>(fn, loss_value<T>{r.value, std::int64_t(r.skipped)}, r.grad);
  return std::move(r);
}

/// Where a matrix with direct access lies (detail/output_view.hpp).
template <class M>
cka::detail::placement placed(const M& m) {
  return cka::detail::placement_of(m.data(), m.rows(), m.cols(), m.rowStride(), m.colStride());
}

/// Enables the forms with a gradient argument for Eigen types; the rest is checked with a message.
template <class G>
using if_eigen = std::enable_if_t<std::is_base_of_v<Eigen::DenseBase<std::decay_t<G>>, std::decay_t<G>>>;

/// The compile-time checks of a gradient argument for a student of scalar T, and its run-time checks
/// against the inputs: the student's shape, one place per element, no memory shared with an input.
template <class T, class G, class VS, class VT>
void require_gradient(const char* fn, G&& grad, const VS& s, const VT& t) {
  using plain = std::decay_t<G>;
  static_assert(std::is_same_v<typename plain::Scalar, T>, "cka::rcka: grad needs the student's scalar type");
  static_assert(!std::is_const_v<std::remove_reference_t<G>> && (int(plain::Flags) & Eigen::LvalueBit) != 0 &&
                    (int(plain::Flags) & Eigen::DirectAccessBit) != 0,
                "cka::rcka: grad must be writable memory: a matrix, or a Map, Ref or block of one");
  cka::detail::require_gradient_view(fn, placed(grad), placed(s), placed(t));
}

/// A loss_result whose gradient, allocated in the student's shape, `into(grad)` writes.
template <class T, class F>
loss_result<T> with_gradient(Eigen::Index rows, Eigen::Index cols, F&& into) {
  loss_result<T> r{T(0), matrix<T>(rows, cols), 0};
  const loss_value<T> v = into(r.grad);
  r.value = v.value;
  r.skipped = Eigen::Index(v.skipped);
  return r;
}

/// 1 − the alignment of the row Grams of s and t, its gradient written into `out` (transposed when asked):
/// the relation's gradient negated, converted and transposed in one pass; zero where the alignment is
/// undefined and skipped.
template <class T, class MS, class MT, class G>
loss_value<T> relation_loss(const char* fn, const MS& s, const MT& t, const relation_options& opts, bool transpose,
                            G& out) {
  using A = accumulator_t<T>;
  const auto r = cka::detail::row_relation<A>(fn, s, t, spec<T>(opts), true, [&](const Eigen::Map<matrix<A>>& g) {
    if (transpose) {
      cka::detail::convert_into(out, (-g).transpose());
    } else {
      cka::detail::convert_into(out, -g);
    }
  });
  if (!r.defined) {
    out.setZero();
    return {T(0), 1};
  }
  return finished<T>(fn, {T(A(1) - r.alignment), 0}, out);
}

template <class VS, class VT>
void require_inputs(const char* fn, const VS& s, const VT& t) {
  cka::detail::require_finite(fn, "student", s);
  cka::detail::require_finite(fn, "teacher", t);
}

/// Loss on the Grams of the rows (B×B): the sample relation and FCKA.
template <class DS, class DT, class G>
loss_value<typename DS::Scalar> rows_loss(const char* fn, const Eigen::MatrixBase<DS>& student,
                                          const Eigen::MatrixBase<DT>& teacher, G& grad, const relation_options& opts) {
  using T = typename DS::Scalar;
  static_assert(std::is_same_v<T, typename DT::Scalar>, "cka::rcka: student and teacher need the same scalar type");
  const cka::detail::view_t<DS> s(student.derived());
  const cka::detail::view_t<DT> t(teacher.derived());
  require_gradient<T>(fn, grad, s, t);
  cka::detail::require_same_samples(fn, "student", s, "teacher", t);
  require_inputs(fn, s, t);
  return relation_loss<T>(fn, s, t, opts, false, grad);
}

}  // namespace detail

/// Sample-relation loss (the paper's intra-class term): 1 − alignment of the B×B Grams of the rows of the
/// student (B×Cs logits or features) and the teacher (B×Ct); widths may differ.
/// Cost O(B²(Cs+Ct)) for value and gradient, or O(B(Cs+Ct)²) when Cs + Ct < B.
/// A batch of 2 gives loss 0 and a zero gradient by construction (two centered points are always aligned).
/// An undefined alignment (a constant student or teacher, B below 2 — 4 for the unbiased estimator —, a
/// zero row under row_normalize) follows opts.on_undefined: skipped by default (value 0, zero gradient,
/// skipped = 1). Throws cka::invalid_argument for different batch sizes, NaN/Inf, or row_normalize with
/// centered unbiased CKA; under undefined_policy::raise also for the undefined cases (cka::domain_error
/// for no variance).
template <class DS, class DT>
loss_result<typename DS::Scalar> sample_relation_loss(const Eigen::MatrixBase<DS>& student,
                                                      const Eigen::MatrixBase<DT>& teacher,
                                                      const relation_options& opts = {}) {
  return detail::with_gradient<typename DS::Scalar>(student.rows(), student.cols(), [&](auto& g) {
    return detail::rows_loss("rcka::sample_relation_loss", student, teacher, g, opts);
  });
}

/// sample_relation_loss with ∂loss/∂student written into `grad` — a writable matrix, Map, Ref or block
/// of the student's shape and scalar, in any layout (a row-major Map of a framework's gradient buffer, say),
/// not sharing memory with the inputs — and the value and skip count returned. The same bits as the form
/// above, and the same cost without its allocation. Throws as it does, plus cka::invalid_argument for a
/// gradient of another shape, one whose elements overlap, or one that shares memory with an input (grad
/// is left unspecified after an exception).
template <class DS, class DT, class DG, class = detail::if_eigen<DG>>
loss_value<typename DS::Scalar> sample_relation_loss(const Eigen::MatrixBase<DS>& student,
                                                     const Eigen::MatrixBase<DT>& teacher, DG&& grad,
                                                     const relation_options& opts = {}) {
  return detail::rows_loss("rcka::sample_relation_loss", student, teacher, grad, opts);
}

/// Class-relation loss (the paper's inter-class term): 1 − alignment of the C×C Grams of the columns of
/// the B×C student and teacher logits (the same C required). Cost O(C²B). Throws as sample_relation_loss,
/// with C in place of B, plus cka::invalid_argument for different class counts.
template <class DS, class DT, class DG, class = detail::if_eigen<DG>>
loss_value<typename DS::Scalar> class_relation_loss(const Eigen::MatrixBase<DS>& student,
                                                    const Eigen::MatrixBase<DT>& teacher, DG&& grad,
                                                    const relation_options& opts = {}) {
  using T = typename DS::Scalar;
  static_assert(std::is_same_v<T, typename DT::Scalar>, "cka::rcka: student and teacher need the same scalar type");
  const char* fn = "rcka::class_relation_loss";
  const cka::detail::view_t<DS> s(student.derived());
  const cka::detail::view_t<DT> t(teacher.derived());
  detail::require_gradient<T>(fn, grad, s, t);
  cka::detail::require_same_samples(fn, "student", s, "teacher", t);
  if (s.cols() != t.cols()) {
    cka::detail::fail_argument(fn, "the student has ", s.cols(), " classes (columns) but the teacher has ",
                               t.cols(), "; the class relation compares the same classes");
  }
  detail::require_inputs(fn, s, t);
  return detail::relation_loss<T>(fn, s.transpose(), t.transpose(), opts, true, grad);
}

/// class_relation_loss with its gradient returned in a new matrix; as the form with `grad`.
template <class DS, class DT>
loss_result<typename DS::Scalar> class_relation_loss(const Eigen::MatrixBase<DS>& student,
                                                     const Eigen::MatrixBase<DT>& teacher,
                                                     const relation_options& opts = {}) {
  return detail::with_gradient<typename DS::Scalar>(student.rows(), student.cols(), [&](auto& g) {
    return class_relation_loss(student, teacher, g, opts);
  });
}

/// FCKA: 1 − alignment of the B×B Grams of feature maps flattened to B × (C·H·W) rows (any widths).
/// Same cost and errors as sample_relation_loss.
template <class DS, class DT>
loss_result<typename DS::Scalar> feature_loss(const Eigen::MatrixBase<DS>& student,
                                              const Eigen::MatrixBase<DT>& teacher,
                                              const relation_options& opts = {}) {
  return detail::with_gradient<typename DS::Scalar>(student.rows(), student.cols(), [&](auto& g) {
    return detail::rows_loss("rcka::feature_loss", student, teacher, g, opts);
  });
}

/// feature_loss with its gradient written into `grad`; as sample_relation_loss's form with `grad`.
template <class DS, class DT, class DG, class = detail::if_eigen<DG>>
loss_value<typename DS::Scalar> feature_loss(const Eigen::MatrixBase<DS>& student, const Eigen::MatrixBase<DT>& teacher,
                                             DG&& grad, const relation_options& opts = {}) {
  return detail::rows_loss("rcka::feature_loss", student, teacher, grad, opts);
}

/// RCKA on logits, its gradient written into `grad` (as sample_relation_loss's form with `grad`):
/// weights.sample · sample_relation_loss + weights.cls · class_relation_loss, and the same combination of
/// their gradients. The paper's classification runs used weight 15 on each term (with −alignment; see the
/// file comment). With the default options (centered, biased, no row scaling) both terms come from one
/// symmetric product and the gradient from one more: 8·min(B, C)²·max(B, C) flops. Throws as the two
/// losses do, under their names; cka::invalid_argument for a NaN or infinite weight.
template <class DS, class DT, class DG, class = detail::if_eigen<DG>>
loss_value<typename DS::Scalar> rcka_loss(const Eigen::MatrixBase<DS>& student_logits,
                                          const Eigen::MatrixBase<DT>& teacher_logits, DG&& grad,
                                          const rcka_weights& weights = {}, const relation_options& opts = {}) {
  using T = typename DS::Scalar;
  using A = accumulator_t<T>;
  static_assert(std::is_same_v<T, typename DT::Scalar>, "cka::rcka: student and teacher need the same scalar type");
  weights.require_finite("rcka::rcka_loss");
  const cka::detail::view_t<DS> sv(student_logits.derived());
  const cka::detail::view_t<DT> tv(teacher_logits.derived());
  detail::require_gradient<T>("rcka::rcka_loss", grad, sv, tv);
  const Eigen::Index nb = sv.rows(), nc = sv.cols();
  if (opts.centered && !opts.row_normalize && opts.est == estimator::biased && nb >= 2 && nc >= 2 &&
      tv.rows() == nb && tv.cols() == nc) {
    // The paper's loss: both relations from one product (detail/logit_relations.hpp), over the smaller side.
    const char *sample_fn = "rcka::sample_relation_loss", *class_fn = "rcka::class_relation_loss";
    const bool rows = nb <= nc;
    const bool fp = detail::spec<T>(opts).float_products;
    auto rel = rows ? cka::detail::logit_relations<A>(sv, tv, fp)
                    : cka::detail::logit_relations<A>(sv.transpose(), tv.transpose(), fp);
    if (!rel.finite()) detail::require_inputs(sample_fn, sv, tv);  // names the NaN or Inf
    const auto policy = opts.on_undefined == undefined_policy::skip ? cka::detail::when_undefined::nan
                                                                    : cka::detail::when_undefined::raise;
    const auto sides = cka::detail::relation_sides();
    const A a_sample = cka::detail::cka_ratio(sample_fn, rows ? rel.rows_sums() : rel.cols_sums(), policy, sides);
    const A a_class = cka::detail::cka_ratio(class_fn, rows ? rel.cols_sums() : rel.rows_sums(), policy, sides);
    const A ws(weights.sample), wc(weights.cls);
    A value(0);
    if (a_sample == a_sample) value += ws * (A(1) - a_sample);
    if (a_class == a_class) value += wc * (A(1) - a_class);
    if (rows) {
      rel.gradient_into(grad, ws, a_sample, wc, a_class, false);
    } else {
      rel.gradient_into(grad, wc, a_class, ws, a_sample, true);
    }
    const std::int64_t skipped = std::int64_t(!(a_sample == a_sample)) + std::int64_t(!(a_class == a_class));
    return detail::finished<T>("rcka::rcka_loss", {T(value), skipped}, grad);
  }
  const auto s = sample_relation_loss(sv, tv, grad, opts);
  matrix<T> class_grad(nb, nc);
  const auto c = class_relation_loss(sv, tv, class_grad, opts);
  grad = T(weights.sample) * grad + T(weights.cls) * class_grad;
  return detail::finished<T>("rcka::rcka_loss", {T(T(weights.sample) * s.value + T(weights.cls) * c.value),
                                                 s.skipped + c.skipped}, grad);
}

/// rcka_loss with its gradient returned in a new matrix; as the form with `grad`.
template <class DS, class DT>
loss_result<typename DS::Scalar> rcka_loss(const Eigen::MatrixBase<DS>& student_logits,
                                           const Eigen::MatrixBase<DT>& teacher_logits,
                                           const rcka_weights& weights = {}, const relation_options& opts = {}) {
  return detail::with_gradient<typename DS::Scalar>(student_logits.rows(), student_logits.cols(), [&](auto& g) {
    return rcka_loss(student_logits, teacher_logits, g, weights, opts);
  });
}

/// Shape of an NCHW feature map.
struct map_shape {
  Eigen::Index batch, channels, height, width;
};

namespace detail {

/// A position (r, c) in a view's entries taken in its storage order (row after row for a row-major view,
/// column after column otherwise): placed at a linear index with one division, then stepped without.
struct storage_cursor {
  Eigen::Index rows, cols;
  bool row_major;
  Eigen::Index r = 0, c = 0;
  template <class V>
  static storage_cursor of(const V& v) {
    return {v.rows(), v.cols(), bool(V::IsRowMajor)};
  }
  void place(Eigen::Index i) {
    r = row_major ? i / cols : i % rows;
    c = row_major ? i % cols : i / rows;
  }
  void next() {
    if (row_major) {
      if (++c == cols) c = 0, ++r;
    } else if (++r == rows) {
      r = 0, ++c;
    }
  }
  /// Whether the len values from the current place lie along one storage line (one row of a row-major
  /// view, one column otherwise), where a matrix m of the view's shape holds them at &m(r, c) + k·step(m).
  bool line_holds(Eigen::Index len) const { return row_major ? c + len <= cols : r + len <= rows; }
  template <class M>
  Eigen::Index step(const M& m) const {
    return row_major ? m.colStride() : m.rowStride();
  }
};

/// In place of patch_relation's gradient: the value alone (the benchmarks' forward).
struct value_only {};

/// PCKA's value, its gradient written into `grad` (see patch_loss's form with `grad`) unless grad is
/// value_only.
template <class DS, class DT, class G>
loss_value<typename DS::Scalar> patch_relation(const Eigen::MatrixBase<DS>& student,
                                               const Eigen::MatrixBase<DT>& teacher, G& grad, const map_shape& shape,
                                               Eigen::Index patch_h, Eigen::Index patch_w, const relation_options& opts) {
  using T = typename DS::Scalar;
  using A = accumulator_t<T>;
  static_assert(std::is_same_v<T, typename DT::Scalar>, "cka::rcka: student and teacher need the same scalar type");
  const char* fn = "rcka::patch_loss";
  constexpr bool want_grad = !std::is_same_v<std::decay_t<G>, value_only>;
  const Eigen::Index nb = shape.batch, nc = shape.channels, nh = shape.height, nw = shape.width;
  if (nb < 1 || nc < 1 || nh < 1 || nw < 1 || patch_h < 1 || patch_w < 1) {
    cka::detail::fail_argument(fn, "shape {", nb, ", ", nc, ", ", nh, ", ", nw, "} and patch ", patch_h, "x",
                               patch_w, " must all be at least 1");
  }
  const cka::detail::view_t<DS> s(student.derived());
  const cka::detail::view_t<DT> t(teacher.derived());
  if constexpr (want_grad) require_gradient<T>(fn, grad, s, t);
  // B·C·H·W, each factor checked against the input's size first, so the product cannot overflow.
  const Eigen::Index size = s.size();
  Eigen::Index total = 1;
  for (Eigen::Index f : {nb, nc, nh, nw}) total = total > size / f ? size + 1 : total * f;
  if (s.size() != total || t.size() != total) {
    cka::detail::fail_argument(fn, "student has ", s.size(), " values and teacher ", t.size(), " but shape {",
                               nb, ", ", nc, ", ", nh, ", ", nw, "} needs ", double(nb) * double(nc) * double(nh) * double(nw));
  }
  detail::require_inputs(fn, s, t);
  const Eigen::Index gh = nh / patch_h + (nh % patch_h != 0), gw = nw / patch_w + (nw % patch_w != 0);
  if (gh * gw < 2) {
    cka::detail::fail_argument(fn, "a ", nh, "x", nw, " map gives ", gh * gw, " patch of ", patch_h, "x",
                               patch_w, "; the patch relation needs at least 2");
  }
  // A patch larger than the map holds zero padding only beyond it, which no Gram sees: its columns are
  // indexed within the map (ph × pw), so memory stays bounded by the input whatever the patch size.
  const Eigen::Index ph = std::min(patch_h, nh), pw = std::min(patch_w, nw);
  const Eigen::Index area = ph * pw, patches = gh * gw;
  // Each map column x's patch (gx) and column within it (dx), computed once.
  std::vector<Eigen::Index> gx(static_cast<std::size_t>(nw)), dx(static_cast<std::size_t>(nw));
  for (Eigen::Index x = 0; x < nw; ++x) {
    gx[std::size_t(x)] = x / patch_w;
    dx[std::size_t(x)] = x % pw;
  }
  // Calls f(row0, col0, lines) for every map row of channel c, with the cursors placed at the row's first
  // value (its NCHW index): value x of the row goes to patch row row0 + gx[x], column col0 + dx[x]; `lines`
  // says whether the row lies along one storage line of every cursor's view (then its values are a
  // pointer and a step apart; storage_cursor::line_holds), else the caller steps the cursors.
  auto visit = [&](Eigen::Index c, std::initializer_list<storage_cursor*> cursors, auto&& f) {
    for (Eigen::Index b = 0; b < nb; ++b)
      for (Eigen::Index y = 0; y < nh; ++y) {
        bool lines = true;
        for (storage_cursor* k : cursors) {
          k->place(((b * nc + c) * nh + y) * nw);
          lines = lines && k->line_holds(nw);
        }
        f((y / patch_h) * gw, b * area + (y % ph) * pw, lines);
      }
  };
  // The channels dealt to the threads: each gathers into its own patch matrices, its relation's buffers
  // lie in its own workspace, and the channels' gradients fill disjoint entries of `grad`. Their values are
  // added in channel order afterwards, so the result has the same bits on any number of threads, and the
  // error raised is the lowest channel's (every lower channel was dealt before it, and none is skipped).
  const int threads = int(std::min<Eigen::Index>(Eigen::nbThreads(), nc));
  // Row-major in the input's type: a patch's values along a map row are written side by side.
  using patch_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  auto buffers = cka::detail::per_thread(threads, std::array<patch_matrix, 2>{});
  std::vector<A> values(std::size_t(nc), A(0));
  std::vector<char> defined(std::size_t(nc), 0);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(nc));
  std::atomic<Eigen::Index> first_error{nc};
  // Every entry of grad is written once: by its channel's gradient, or zero where the channel is undefined.
  // Writes value(patch row, patch column) at the place in grad of every value of channel c.
  auto scatter = [&](Eigen::Index c, auto&& value) {
    if constexpr (want_grad) {
      storage_cursor out = storage_cursor::of(s);  // grad has the student's rows and columns, in any layout
      visit(c, {&out}, [&](Eigen::Index row0, Eigen::Index col0, bool lines) {
        if (lines) {
          T* g = &grad(out.r, out.c);
          const Eigen::Index k = out.step(grad);
          for (Eigen::Index x = 0; x < nw; ++x) g[x * k] = value(row0 + gx[std::size_t(x)], col0 + dx[std::size_t(x)]);
          return;
        }
        for (Eigen::Index x = 0; x < nw; ++x, out.next()) {
          grad(out.r, out.c) = value(row0 + gx[std::size_t(x)], col0 + dx[std::size_t(x)]);
        }
      });
    }
  };
  const bool padded = nh % patch_h != 0 || nw % patch_w != 0;  // patches beyond the map hold zeros
  cka::detail::parallel_for(nc, threads, [&](int thread, Eigen::Index c) {
    if (c > first_error.load()) return;
    try {
      // Gather: row = patch (gy, gx), column = (b, dy, dx); zero outside the map.
      patch_matrix& ps = buffers[std::size_t(thread)][0];
      patch_matrix& pt = buffers[std::size_t(thread)][1];
      ps.resize(patches, nb * area);
      pt.resize(patches, nb * area);
      if (padded) {
        ps.setZero();
        pt.setZero();
      }
      storage_cursor in_s = storage_cursor::of(s), in_t = storage_cursor::of(t);
      visit(c, {&in_s, &in_t}, [&](Eigen::Index row0, Eigen::Index col0, bool lines) {
        if (lines) {
          const T *vs = &s.coeffRef(in_s.r, in_s.c), *vt = &t.coeffRef(in_t.r, in_t.c);
          const Eigen::Index ks = in_s.step(s), kt = in_t.step(t);
          for (Eigen::Index x = 0; x < nw; ++x) {
            const Eigen::Index row = row0 + gx[std::size_t(x)], col = col0 + dx[std::size_t(x)];
            ps(row, col) = vs[x * ks];
            pt(row, col) = vt[x * kt];
          }
          return;
        }
        for (Eigen::Index x = 0; x < nw; ++x, in_s.next(), in_t.next()) {
          const Eigen::Index row = row0 + gx[std::size_t(x)], col = col0 + dx[std::size_t(x)];
          ps(row, col) = s(in_s.r, in_s.c);
          pt(row, col) = t(in_t.r, in_t.c);
        }
      });
      // The channel's gradient scattered (scaled to the mean over the defined channels below); padding has none.
      const std::string where = cka::detail::concat(fn, ", channel ", c);  // errors name the channel
      const auto r = cka::detail::row_relation<A>(where.c_str(), ps, pt, spec<T>(opts), want_grad, [&](const Eigen::Map<matrix<A>>& d) {
        scatter(c, [&](Eigen::Index row, Eigen::Index col) { return T(-d(row, col)); });
      });
      if (want_grad && !r.defined) scatter(c, [](Eigen::Index, Eigen::Index) { return T(0); });
      defined[std::size_t(c)] = r.defined;  // an undefined (dead or constant) channel is left out of the mean
      values[std::size_t(c)] = r.alignment;
    } catch (...) {
      errors[std::size_t(c)] = std::current_exception();
      for (Eigen::Index e = first_error.load(); c < e && !first_error.compare_exchange_weak(e, c);) {
      }
    }
  });
  if (first_error.load() < nc) std::rethrow_exception(errors[std::size_t(first_error.load())]);
  A sum(0);
  Eigen::Index skipped = 0;
  for (Eigen::Index c = 0; c < nc; ++c) {
    if (defined[std::size_t(c)]) {
      sum += A(1) - values[std::size_t(c)];
    } else {
      ++skipped;
    }
  }
  const Eigen::Index used = nc - skipped;
  if (used == 0) return {T(0), std::int64_t(skipped)};
  const loss_value<T> out{T(sum / A(used)), std::int64_t(skipped)};
  if constexpr (want_grad) {
    grad *= T(A(1) / A(used));
    return finished<T>(fn, out, grad);
  } else {
    return finished<T>(fn, out, matrix<T>());
  }
}

}  // namespace detail

/// PCKA: for each channel the map is cut into patch_h × patch_w patches; the patches are the rows of a
/// (patches × B·patch_h·patch_w) matrix, the loss is 1 − alignment of the patch Grams of student and
/// teacher, and the result is the mean over channels. Inputs hold B·C·H·W values in NCHW order, read in
/// their storage order (pass an `Eigen::Map` of a contiguous tensor as a vector, or a row-major B×(C·H·W)
/// matrix); `grad` has the input's rows and columns.
/// H and W that are not multiples of the patch size are zero-padded at the bottom and right: the map is
/// embedded in a zero canvas, its values are used as they are, and the padding carries no gradient. (The
/// reference code resizes bilinearly to the next multiple instead, which alters every value.)
/// Cost O(C·P²·B·patch_h·patch_w) for P patches per channel, plus one pass over the maps.
/// A channel whose alignment is undefined (dead or constant in the student or the teacher) follows
/// opts.on_undefined: by default it is left out and the mean is over the other channels (`skipped` counts
/// it; all skipped: value 0, zero gradient). A grid of 2 patches gives loss 0 and a zero gradient by
/// construction. Throws cka::invalid_argument if a size is not B·C·H·W, a dimension or patch size is below
/// 1, the grid has fewer than 2 patches (4 for the unbiased estimator), or a value is NaN/Inf; under
/// undefined_policy::raise, cka::domain_error for a constant channel (the first, named). The channels are
/// dealt to Eigen::nbThreads() threads; the result has the same bits on any number of them.
template <class DS, class DT>
loss_result<typename DS::Scalar> patch_loss(const Eigen::MatrixBase<DS>& student,
                                            const Eigen::MatrixBase<DT>& teacher, const map_shape& shape,
                                            Eigen::Index patch_h = 16, Eigen::Index patch_w = 16,
                                            const relation_options& opts = {}) {
  return detail::with_gradient<typename DS::Scalar>(student.rows(), student.cols(), [&](auto& g) {
    return detail::patch_relation(student, teacher, g, shape, patch_h, patch_w, opts);
  });
}

/// patch_loss with ∂loss/∂student written into `grad` — a writable matrix, Map, Ref or block of the
/// student's rows, columns and scalar, in any layout, not sharing memory with the inputs (a Map of a
/// framework's gradient buffer for the maps) — and the value and skip count returned. The same bits as the
/// form above; throws as it does, plus cka::invalid_argument for a gradient of another shape, one whose
/// elements overlap, or one that shares memory with an input (grad is left unspecified after an exception).
template <class DS, class DT, class DG, class = detail::if_eigen<DG>>
loss_value<typename DS::Scalar> patch_loss(const Eigen::MatrixBase<DS>& student, const Eigen::MatrixBase<DT>& teacher,
                                           DG&& grad, const map_shape& shape, Eigen::Index patch_h = 16,
                                           Eigen::Index patch_w = 16, const relation_options& opts = {}) {
  return detail::patch_relation(student, teacher, grad, shape, patch_h, patch_w, opts);
}

}  // namespace cka::rcka
