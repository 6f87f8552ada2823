#include <cka/cka.hpp>

#include <iostream>

int main() {
  Eigen::MatrixXd x(4, 2), y(4, 2);
  x << 1, 2, 3, 5, 4, 1, 0, 2;
  y = 2.0 * x;
  const double value = cka::linear_cka(x, y);
  std::cout << "consumer: CKA(x, 2x) = " << value << '\n';
  return (value > 0.999999 && value < 1.000001) ? 0 : 1;
}
