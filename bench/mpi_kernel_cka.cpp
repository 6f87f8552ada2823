// Times exact RBF kernel CKA (median bandwidth) shared by the processes of an MPI run, and counts the
// bytes each process sent into sums and gathers. Run under mpirun with 1, 2, 3 … ranks:
//   mpirun -np 2 ./cka_bench_mpi [n] [d] [budget_bytes] [repeats]
// Every rank builds the same inputs; rank 0 prints the value (the same for any number of ranks, to
// rounding), the best wall time of the repeats, and the bytes communicated per rank.
#include <cka/mpi.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const Eigen::Index n = argc > 1 ? std::atol(argv[1]) : 20000, d = argc > 2 ? std::atol(argv[2]) : 256;
  const std::size_t budget = argc > 3 ? std::size_t(std::atof(argv[3])) : 0;
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 2;
  std::mt19937_64 g(42);
  std::normal_distribution<double> normal(0.0, 1.0);
  Eigen::MatrixXd x(n, d), y(n, d);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(g);
  for (Eigen::Index i = 0; i < y.size(); ++i) y.data()[i] = normal(g) + 0.5 * std::tanh(x.data()[i]);

  cka::mpi::team t(MPI_COMM_WORLD);
  cka::compute_options co;
  co.max_bytes = budget;
  co.processes = &t;
  double best = 1e300, value = 0, bytes = 0;
  for (int r = 0; r < repeats; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double before = t.bytes_communicated();
    const double start = MPI_Wtime();
    value = cka::kernel_cka(x, y, cka::rbf_kernel::median(), cka::estimator::biased, co);
    MPI_Barrier(MPI_COMM_WORLD);
    best = std::min(best, MPI_Wtime() - start);
    bytes = t.bytes_communicated() - before;
  }
  double most = 0;
  MPI_Reduce(&bytes, &most, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  if (t.rank() == 0) {
    const char* threads = std::getenv("OMP_NUM_THREADS");
    std::printf("ranks %d  threads/rank %s  n %ld  d %ld  route %s  cka %.17g  best %.2f s  bytes/rank %.3g\n", t.size(),
                threads ? threads : "all", long(n), long(d),
                2 * cka::detail::rbf_tiles::stored_bytes(n, t.size()) <= cka::detail::memory_budget(co) ? "stored" : "recomputed",
                value, best, most);
  }
  MPI_Finalize();
  return 0;
}
