// The main job until the command-line tool exists: compare the layers of a small seeded network.
//
// A random two-layer tanh network is applied to 2000 synthetic inputs; the program prints linear CKA,
// debiased linear CKA and RBF CKA (median bandwidth) between the input, the hidden layer and the output,
// and between the hidden layer of this network and that of a second network trained on nothing (a
// different seed). Run: ./compare_representations [n_samples]
#include <cka/cka.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>

namespace {

cka::matrix<double> random_matrix(Eigen::Index rows, Eigen::Index cols, unsigned seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  cka::matrix<double> m(rows, cols);
  for (Eigen::Index j = 0; j < cols; ++j)
    for (Eigen::Index i = 0; i < rows; ++i) m(i, j) = normal(engine);
  return m;
}

cka::matrix<double> layer(const cka::matrix<double>& input, Eigen::Index width, unsigned seed) {
  const cka::matrix<double> w = random_matrix(input.cols(), width, seed) / std::sqrt(double(input.cols()));
  return (input * w).array().tanh().matrix();
}

}  // namespace

int main(int argc, char** argv) {
  const Eigen::Index n = argc > 1 ? std::atol(argv[1]) : 2000;
  const cka::matrix<double> input = random_matrix(n, 32, 1);
  const cka::matrix<double> hidden = layer(input, 128, 2);
  const cka::matrix<double> output = layer(hidden, 10, 3);
  const cka::matrix<double> other_hidden = layer(input, 64, 4);

  struct pair {
    const char* name;
    const cka::matrix<double>* a;
    const cka::matrix<double>* b;
  } pairs[] = {{"input  vs hidden      ", &input, &hidden},
               {"hidden vs output      ", &hidden, &output},
               {"input  vs output      ", &input, &output},
               {"hidden vs other hidden", &hidden, &other_hidden}};

  std::printf("CKA between layers of a seeded tanh network (n = %ld samples)\n", static_cast<long>(n));
  std::printf("%-24s %12s %12s %12s\n", "pair", "linear", "debiased", "rbf(median)");
  for (const auto& p : pairs) {
    const double lin = cka::linear_cka(*p.a, *p.b);
    const double deb = cka::linear_cka(*p.a, *p.b, cka::estimator::unbiased);
    const double rbf = cka::kernel_cka(*p.a, *p.b, cka::rbf_kernel::median());
    std::printf("%-24s %12.6f %12.6f %12.6f\n", p.name, lin, deb, rbf);
  }
  return 0;
}
