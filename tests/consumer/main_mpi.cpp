// Links against cka::mpi; run without mpirun it only checks that the header and target are usable.
#include <cka/mpi.hpp>

int main() {
  cka::linear_state s(2, 3);
  return s.size() == std::size_t(8 * 8) ? 0 : 1;
}
