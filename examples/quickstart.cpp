// The README's usage example, compiled and run by the test suite.
#include <cka/cka.hpp>

#include <iostream>

int main() {
  Eigen::MatrixXd x = Eigen::MatrixXd::Random(500, 64);               // 500 samples, 64 features
  Eigen::MatrixXd y = x * Eigen::MatrixXd::Random(64, 32);            // another layer: 32 features
  y += 0.1 * Eigen::MatrixXd::Random(500, 32);

  double lin = cka::linear_cka(x, y);                                 // biased HSIC, as Kornblith et al.
  double deb = cka::linear_cka(x, y, cka::estimator::unbiased);       // debiased CKA
  double rbf = cka::kernel_cka(x, y, cka::rbf_kernel::median(0.5));   // sigma^2 = 0.25 * median d^2
  std::cout << "linear " << lin << "  debiased " << deb << "  rbf " << rbf << '\n';
}
