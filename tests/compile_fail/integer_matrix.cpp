// Must not compile: CKA of integer matrices would be truncated to an integer (0). The suite builds this
// file and expects the library's static_assert message (tests/CMakeLists.txt, test compile_fail_integer).
#include <cka/cka.hpp>

int main() {
  const Eigen::MatrixXi x = Eigen::MatrixXi::Random(10, 3), y = Eigen::MatrixXi::Random(10, 2);
  return int(cka::linear_cka(x, y));
}
