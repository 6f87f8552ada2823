#pragma once
// Test support: seeded data, NumPy's legacy normal generator, relative errors.

#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <vector>
#include <random>

namespace test {

template <class T>
using mat = cka::matrix<T>;

/// n×d standard normal matrix from a seeded engine (then converted to T).
template <class T>
mat<T> normal(Eigen::Index n, Eigen::Index d, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  mat<double> m(n, d);
  for (Eigen::Index j = 0; j < d; ++j)
    for (Eigen::Index i = 0; i < n; ++i) m(i, j) = dist(engine);
  return m.cast<T>();
}

/// Y = X·W + noise: a second representation related to the first, d2 features.
template <class T>
mat<T> related(const mat<T>& x, Eigen::Index d2, std::uint64_t seed, double noise = 0.5) {
  const mat<T> w = normal<T>(x.cols(), d2, seed);
  return (x * w / T(std::sqrt(double(x.cols()))) + T(noise) * normal<T>(x.rows(), d2, seed + 1)).eval();
}

/// The indices of a similarity_matrix result's undefined layers.
template <class R>
std::vector<std::size_t> undefined_layers(const R& r) {
  std::vector<std::size_t> out;
  for (const auto& u : r.undefined) out.push_back(u.layer);
  return out;
}

/// Whether Eigen, and with it the tile engine, can run two threads here. Without OpenMP a check of "the
/// same bits with one thread and with two" would compare one thread with itself: such checks skip.
inline bool two_threads_available() {
  const int before = Eigen::nbThreads();
  Eigen::setNbThreads(2);
  const bool two = Eigen::nbThreads() == 2;
  Eigen::setNbThreads(before);
  return two;
}

/// |a − b| / |b| in double.
template <class A, class B>
double rel_err(const A& a, const B& b) {
  const double bd = static_cast<double>(b);
  return std::abs(static_cast<double>(a) - bd) / std::abs(bd);
}

/// NumPy's legacy global generator (np.random.seed(s); np.random.randn(...)): MT19937 seeded by
/// init_genrand, 53-bit doubles from two draws, and the polar Box–Muller method that returns the second
/// value of each pair first and caches the other. Written from NumPy's documented algorithm so the tests
/// can rebuild the published demo data exactly.
class numpy_legacy_rng {
 public:
  explicit numpy_legacy_rng(std::uint32_t seed) : mt_(seed) {}
  double uniform() {
    const std::uint32_t a = static_cast<std::uint32_t>(mt_()) >> 5, b = static_cast<std::uint32_t>(mt_()) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  }
  double gauss() {
    if (has_cached_) {
      has_cached_ = false;
      return cached_;
    }
    double x1, x2, r2;
    do {
      x1 = 2.0 * uniform() - 1.0;
      x2 = 2.0 * uniform() - 1.0;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    const double f = std::sqrt(-2.0 * std::log(r2) / r2);
    cached_ = f * x1;
    has_cached_ = true;
    return f * x2;
  }
  /// randn(n, d) in C order.
  mat<double> randn(Eigen::Index n, Eigen::Index d) {
    mat<double> m(n, d);
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < d; ++j) m(i, j) = gauss();
    return m;
  }

 private:
  std::mt19937 mt_;
  bool has_cached_ = false;
  double cached_ = 0.0;
};

}  // namespace test
