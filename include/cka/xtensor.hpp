#pragma once
/// \file xtensor.hpp
/// xtensor inputs for every estimator and loss: 2-D expressions (`xt::xtensor<T, 2>`, `xt::xarray<T>`,
/// views, `xt::adapt`ed buffers) are passed to the Eigen implementation as an `Eigen::Map` over their own
/// memory whenever they have a data interface with positive strides — contiguous row-major data, and
/// row-major slices, are not copied — and are evaluated once into a row-major `xt::xtensor` otherwise
/// (lazy expressions, broadcasts, reversed views). Results are the same types as for Eigen input
/// (scalars, `cka::matrix<T>`, `loss_result<T>`). Needs Debian's `xtensor-dev` (0.24); opt-in: the core
/// headers do not include xtensor.
///
/// Throws cka::invalid_argument, besides what each function throws, for an expression that is not 2-D.

#include <cka/cka.hpp>
#include <cka/detail/checks.hpp>
#include <cka/mmd_bound.hpp>
#include <cka/rcka.hpp>
#include <cka/state.hpp>

#include <xtensor/xexpression.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xutils.hpp>

#include <optional>
#include <type_traits>

namespace cka {
namespace detail {

/// An Eigen view (`map()`) of a 2-D xtensor expression; see the file comment.
template <class E>
class xt_matrix {
 public:
  using scalar = std::decay_t<typename E::value_type>;
  using map_type = Eigen::Map<const Eigen::Matrix<scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                              Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

  /// `name` is the argument's name in the function's errors ("X", "K", "student").
  xt_matrix(const E& e, const char* fn, const char* name) {
    if (e.dimension() != 2) fail_argument(fn, name, " is a ", e.dimension(), "-D xtensor expression; a 2-D one (samples × features) is needed");
    const Eigen::Index rows = Eigen::Index(e.shape()[0]), cols = Eigen::Index(e.shape()[1]);
    if constexpr (xt::has_data_interface<E>::value) {
      const auto s0 = std::ptrdiff_t(e.strides()[0]), s1 = std::ptrdiff_t(e.strides()[1]);
      const bool usable = (s0 > 0 || rows <= 1) && (s1 > 0 || cols <= 1);
      if (usable) {
        map_.emplace(e.data() + e.data_offset(), rows, cols,
                     Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(std::max<std::ptrdiff_t>(s0, 1),
                                                                   std::max<std::ptrdiff_t>(s1, 1)));
        return;
      }
    }
    owned_ = e;  // evaluate once, row-major and contiguous
    map_.emplace(owned_.data(), rows, cols, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(std::max<Eigen::Index>(cols, 1), 1));
  }
  const map_type& map() const { return *map_; }

 private:
  xt::xtensor<scalar, 2> owned_;
  std::optional<map_type> map_;
};

/// xtensor chunks for the accumulation states (state.hpp): `state.add(x_chunk, y_chunk)` with 2-D xtensor
/// expressions maps them as above.
template <class E>
struct chunk_input<E, std::enable_if_t<xt::is_xexpression<E>::value>> {
  xt_matrix<E> m;
  chunk_input(const E& e, const char* fn, const char* name) : m(e, fn, name) {}
  const typename xt_matrix<E>::map_type& get() const { return m.map(); }
};

/// Calls f with Eigen views of two xtensor expressions, named xname and yname in fn's errors.
template <class EX, class EY, class F>
decltype(auto) on_eigen(const char* fn, const char* xname, const char* yname, const xt::xexpression<EX>& x,
                        const xt::xexpression<EY>& y, F&& f) {
  const xt_matrix<EX> ex(x.derived_cast(), fn, xname);
  const xt_matrix<EY> ey(y.derived_cast(), fn, yname);
  return f(ex.map(), ey.map());
}

}  // namespace detail

/// xtensor overloads: same formulas, costs, preconditions and errors as the Eigen functions of the same
/// names (see their headers).
template <class E, class Kernel>
auto gram(const xt::xexpression<E>& x, const Kernel& kernel) {
  const detail::xt_matrix<E> ex(x.derived_cast(), "gram", "X");
  return gram(ex.map(), kernel);
}
template <class E>
auto center_gram(const xt::xexpression<E>& k, estimator est = estimator::biased) {
  const detail::xt_matrix<E> ek(k.derived_cast(), "center_gram", "K");
  return center_gram(ek.map(), est);
}
template <class EK, class EL>
auto hsic(const xt::xexpression<EK>& k, const xt::xexpression<EL>& l, estimator est = estimator::biased) {
  return detail::on_eigen("hsic", "K", "L", k, l, [&](const auto& a, const auto& b) { return hsic(a, b, est); });
}
template <class EK, class EL>
auto gram_cka(const xt::xexpression<EK>& k, const xt::xexpression<EL>& l, estimator est = estimator::biased) {
  return detail::on_eigen("gram_cka", "K", "L", k, l, [&](const auto& a, const auto& b) { return gram_cka(a, b, est); });
}
template <class EX, class EY>
auto linear_cka(const xt::xexpression<EX>& x, const xt::xexpression<EY>& y, estimator est = estimator::biased) {
  return detail::on_eigen("linear_cka", "X", "Y", x, y, [&](const auto& a, const auto& b) { return linear_cka(a, b, est); });
}
template <class EX, class EY, class KX, class KY, class = std::enable_if_t<!std::is_same_v<KY, estimator>>>
auto kernel_cka(const xt::xexpression<EX>& x, const xt::xexpression<EY>& y, const KX& kx, const KY& ky,
                estimator est = estimator::biased) {
  return detail::on_eigen("kernel_cka", "X", "Y", x, y,
                          [&](const auto& a, const auto& b) { return kernel_cka(a, b, kx, ky, est); });
}
template <class EX, class EY, class Kernel>
auto kernel_cka(const xt::xexpression<EX>& x, const xt::xexpression<EY>& y, const Kernel& kernel,
                estimator est = estimator::biased) {
  return kernel_cka(x, y, kernel, kernel, est);
}
template <class EX, class EY, class Kernel>
auto mmd2(const xt::xexpression<EX>& x, const xt::xexpression<EY>& y, const Kernel& kernel,
          estimator est = estimator::biased) {
  return detail::on_eigen("mmd2", "X", "Y", x, y, [&](const auto& a, const auto& b) { return mmd2(a, b, kernel, est); });
}
template <class EX, class EY, class Kernel = linear_kernel>
auto mmd_bound(const xt::xexpression<EX>& x, const xt::xexpression<EY>& y, const Kernel& kernel = {},
               const mmd_bound_options& options = {}) {
  return detail::on_eigen("mmd_bound", "X", "Y", x, y,
                          [&](const auto& a, const auto& b) { return mmd_bound(a, b, kernel, options); });
}

namespace rcka {
template <class ES, class ET>
auto sample_relation_loss(const xt::xexpression<ES>& s, const xt::xexpression<ET>& t, const relation_options& o = {}) {
  return cka::detail::on_eigen("rcka::sample_relation_loss", "student", "teacher", s, t,
                               [&](const auto& a, const auto& b) { return sample_relation_loss(a, b, o); });
}
template <class ES, class ET>
auto class_relation_loss(const xt::xexpression<ES>& s, const xt::xexpression<ET>& t, const relation_options& o = {}) {
  return cka::detail::on_eigen("rcka::class_relation_loss", "student", "teacher", s, t,
                               [&](const auto& a, const auto& b) { return class_relation_loss(a, b, o); });
}
template <class ES, class ET>
auto feature_loss(const xt::xexpression<ES>& s, const xt::xexpression<ET>& t, const relation_options& o = {}) {
  return cka::detail::on_eigen("rcka::feature_loss", "student", "teacher", s, t,
                               [&](const auto& a, const auto& b) { return feature_loss(a, b, o); });
}
template <class ES, class ET>
auto rcka_loss(const xt::xexpression<ES>& s, const xt::xexpression<ET>& t, const rcka_weights& w = {},
               const relation_options& o = {}) {
  return cka::detail::on_eigen("rcka::rcka_loss", "student", "teacher", s, t,
                               [&](const auto& a, const auto& b) { return rcka_loss(a, b, w, o); });
}
template <class ES, class ET>
auto patch_loss(const xt::xexpression<ES>& s, const xt::xexpression<ET>& t, const map_shape& shape,
                Eigen::Index patch_h = 16, Eigen::Index patch_w = 16, const relation_options& o = {}) {
  return cka::detail::on_eigen("rcka::patch_loss", "student", "teacher", s, t, [&](const auto& a, const auto& b) {
    return patch_loss(a, b, shape, patch_h, patch_w, o);
  });
}
}  // namespace rcka

}  // namespace cka
