// The README's usage example, compiled and run by the test suite.
#include <cka/cka.hpp>

#include <iostream>
#include <vector>

int main() {
  Eigen::MatrixXd x = Eigen::MatrixXd::Random(500, 64);               // 500 samples, 64 features
  Eigen::MatrixXd y = x * Eigen::MatrixXd::Random(64, 32);            // another layer: 32 features
  y += 0.1 * Eigen::MatrixXd::Random(500, 32);

  double lin = cka::linear_cka(x, y);                                 // biased HSIC, as Kornblith et al.
  double deb = cka::linear_cka(x, y, cka::estimator::unbiased);       // debiased CKA
  double rbf = cka::kernel_cka(x, y, cka::rbf_kernel::median(0.5));   // sigma^2 = 0.25 * median d^2
  std::cout << "linear " << lin << "  debiased " << deb << "  rbf " << rbf << '\n';

  std::vector<Eigen::MatrixXd> layers = {x, y, x.array().tanh()};    // every pair of layers at once
  cka::similarity_result m = cka::similarity_matrix(layers);          // m.values: 3 x 3, symmetric
  for (const auto& u : m.undefined) std::cout << u.layer << ": " << u.cause << "\n";  // NaN rows, and why
  std::cout << m.values << '\n';
  return m.values.allFinite() && lin > 0 && deb > 0 && rbf > 0 ? 0 : 1;
}
