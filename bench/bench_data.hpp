#pragma once
// The benchmarks' inputs: an n×d matrix of standard normal values drawn from a seed (column after column),
// in scalar T.
#include <cka/detail/scalar.hpp>

#include <random>

namespace bench {

template <class T>
cka::matrix<T> data(Eigen::Index n, Eigen::Index d, unsigned seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  cka::matrix<T> m(n, d);
  for (Eigen::Index j = 0; j < d; ++j)
    for (Eigen::Index i = 0; i < n; ++i) m(i, j) = static_cast<T>(normal(engine));
  return m;
}

}  // namespace bench
