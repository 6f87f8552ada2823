// cka::mpi under mpirun (-np 1, 2 and 3): every distributed route against the same computation in one
// process, which each rank also runs alone. Run by CTest through mpirun; every rank checks, and a failed
// check on any rank fails the run. One case reaches into the tile engine: the median over a team member's
// share of the stored distances.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cka/mpi.hpp>

#include <cmath>
#include <exception>
#include <limits>
#include <random>
#include <vector>

namespace {

using matrix = Eigen::MatrixXd;

int rank_of() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int size_of() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

/// The same pseudo-random matrix on every rank.
matrix random_matrix(Eigen::Index n, Eigen::Index d, unsigned seed, double offset = 0) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  matrix m(n, d);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(g) + offset;
  return m;
}

/// A pair with some dependence: Y is a noisy nonlinear map of X.
void dependent_pair(Eigen::Index n, matrix& x, matrix& y, double offset = 0) {
  x = random_matrix(n, 6, 11, offset);
  y = random_matrix(n, 4, 12);
  y.col(0) += x.col(0).array().tanh().matrix();
  y.col(1) += x.col(1) - x.col(2);
}

/// This rank's rows of n: a deliberately uneven split, and rank 1 of three gets none.
void my_rows(Eigen::Index n, Eigen::Index& r0, Eigen::Index& h) {
  const int r = rank_of(), p = size_of();
  if (p == 3) {
    const Eigen::Index cut = n / 3;
    r0 = r == 0 ? 0 : cut;
    h = r == 0 ? cut : r == 1 ? 0 : n - cut;
    return;
  }
  r0 = n * r / p;
  h = n * (r + 1) / p - r0;
}

bool close(double a, double b, double rel) { return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b)); }

}  // namespace

TEST_CASE("allreduce of linear states equals the state of all rows") {
  matrix x, y;
  dependent_pair(1000, x, y, 1000.0);  // a large common offset: the shifts must be agreed exactly
  Eigen::Index r0, h;
  my_rows(x.rows(), r0, h);
  for (cka::estimator est : {cka::estimator::biased, cka::estimator::unbiased}) {
    cka::linear_state s(x.cols(), y.cols());
    if (h > 0) {  // two chunks, so that each rank's shift is its own first chunk's mean
      s.add(x.middleRows(r0, h / 2), y.middleRows(r0, h / 2));
      s.add(x.middleRows(r0 + h / 2, h - h / 2), y.middleRows(r0 + h / 2, h - h / 2));
    }
    cka::mpi::allreduce(s, MPI_COMM_WORLD);
    CHECK(s.samples() == x.rows());
    const double one = cka::linear_cka(x, y, est);
    CHECK(close(s.cka(est), one, 1e-12));
    CHECK(close(cka::mpi::linear_cka_of_rows(x.middleRows(r0, h), y.middleRows(r0, h), MPI_COMM_WORLD, est), one, 1e-12));
  }
}

TEST_CASE("allreduce of layer states equals one process's layer matrix") {
  const std::vector<matrix> layers{random_matrix(600, 5, 1), random_matrix(600, 3, 2, 50.0), random_matrix(600, 7, 3)};
  Eigen::Index r0, h;
  my_rows(600, r0, h);
  cka::layers_state s({5, 3, 7});
  if (h > 0) s.add(std::vector<Eigen::Block<const matrix>>{layers[0].middleRows(r0, h), layers[1].middleRows(r0, h),
                                                            layers[2].middleRows(r0, h)});
  cka::mpi::allreduce(s, MPI_COMM_WORLD);
  cka::layers_state all({5, 3, 7});
  all.add(layers);
  const matrix a = s.cka(), b = all.cka();
  for (Eigen::Index i = 0; i < a.size(); ++i) CHECK(close(a.data()[i], b.data()[i], 1e-12));
}

TEST_CASE("states made for other widths on one rank: every rank throws") {
  cka::linear_state s(3, rank_of() == size_of() - 1 && size_of() > 1 ? 4 : 3);
  s.add(random_matrix(10, 3, 5), random_matrix(10, s.y_features(), 6));
  if (size_of() > 1) {
    CHECK_THROWS_AS(cka::mpi::allreduce(s, MPI_COMM_WORLD), std::invalid_argument);
  } else {
    CHECK_NOTHROW(cka::mpi::allreduce(s, MPI_COMM_WORLD));
  }
}

TEST_CASE("a rank with bad rows makes every rank throw, no hang") {
  matrix x, y;
  dependent_pair(300, x, y);
  Eigen::Index r0, h;
  my_rows(x.rows(), r0, h);
  matrix mine = x.middleRows(r0, h);
  if (rank_of() == size_of() - 1 && h > 0) mine(0, 0) = std::nan("");
  CHECK_THROWS_AS(cka::mpi::linear_cka_of_rows(mine, y.middleRows(r0, h), MPI_COMM_WORLD), std::invalid_argument);
}

TEST_CASE("distributed RBF kernel CKA equals one process's, stored and recomputed tiles") {
  matrix x, y;
  dependent_pair(1500, x, y);  // 6 tiles a side, 21 upper tiles; over 2^18 pairs: a sampled median bracket
  const cka::mpi::team t(MPI_COMM_WORLD);
  for (cka::estimator est : {cka::estimator::biased, cka::estimator::unbiased}) {
    for (std::size_t budget : {std::size_t(0), std::size_t(1) << 20}) {  // stored, then recomputed
      for (const cka::rbf_kernel& k : {cka::rbf_kernel::median(), cka::rbf_kernel::median(0.5, cka::median_rule::off_diagonal),
                                      cka::rbf_kernel{1.3}}) {
        cka::compute_options alone, shared;
        alone.max_bytes = shared.max_bytes = budget;
        shared.processes = &t;
        const double one = cka::kernel_cka(x, y, k, est, alone);
        const double many = cka::kernel_cka(x, y, k, est, shared);
        CHECK(close(many, one, 1e-13));
        CHECK(close(cka::mpi::kernel_cka_shared(x, y, k, k, MPI_COMM_WORLD, est, alone), one, 1e-13));
      }
    }
  }
}

TEST_CASE("distributed polynomial and mixed kernel CKA and polynomial MMD equal one process's") {
  matrix x, y;
  dependent_pair(900, x, y, 0.5);  // 4 tiles a side
  const cka::mpi::team t(MPI_COMM_WORLD);
  const cka::polynomial_kernel cubic{3, 0.2, 1.0};
  for (cka::estimator est : {cka::estimator::biased, cka::estimator::unbiased}) {
    for (std::size_t budget : {std::size_t(0), std::size_t(1) << 20}) {  // stored, then recomputed
      cka::compute_options alone, shared;
      alone.max_bytes = shared.max_bytes = budget;
      shared.processes = &t;
      CHECK(close(cka::kernel_cka(x, y, cubic, est, shared), cka::kernel_cka(x, y, cubic, est, alone), 1e-13));
      CHECK(close(cka::kernel_cka(x, y, cubic, cka::rbf_kernel::median(), est, shared),
                  cka::kernel_cka(x, y, cubic, cka::rbf_kernel::median(), est, alone), 1e-13));
      CHECK(close(cka::kernel_cka(x, y, cka::linear_kernel{}, cka::rbf_kernel{1.3}, est, shared),
                  cka::kernel_cka(x, y, cka::linear_kernel{}, cka::rbf_kernel{1.3}, est, alone), 1e-13));
      CHECK(close(cka::mmd2(x.topRows(500), x.bottomRows(400), cubic, est, shared),
                  cka::mmd2(x.topRows(500), x.bottomRows(400), cubic, est, alone), 1e-13));
    }
  }
}

TEST_CASE("distributed exact median with a sampled bracket over recomputed tiles") {
  // Above 2^24 pairs the recomputed route samples 2^22 pairs (dealt over the ranks) before counting.
  const matrix x = random_matrix(5900, 3, 21), y = random_matrix(5900, 2, 22);
  const cka::mpi::team t(MPI_COMM_WORLD);
  cka::compute_options alone, shared;
  alone.max_bytes = shared.max_bytes = std::size_t(1) << 20;
  shared.processes = &t;
  for (cka::median_rule rule : {cka::median_rule::all_pairs, cka::median_rule::nonzero}) {
    const cka::rbf_kernel k = cka::rbf_kernel::median(1.0, rule);
    CHECK(close(cka::kernel_cka(x, y, k, cka::estimator::biased, shared),
                cka::kernel_cka(x, y, k, cka::estimator::biased, alone), 1e-13));
  }
}

TEST_CASE("distributed exact median with a bracket too full to collect, stored and recomputed tiles") {
  // A small collecting cap forces what n beyond ~120,000 meets: the bracket counted by bucket, then the
  // buckets of the middle ranks collected from every rank.
  const matrix x = random_matrix(2000, 4, 23);
  const auto rows = cka::detail::tiled_rows_of<double>(x, 1.0);
  const cka::mpi::team t(MPI_COMM_WORLD);
  const auto mine = cka::detail::stored_distances("test", rows, 1, nullptr, cka::detail::tile_share::of(&t));
  const auto all = cka::detail::stored_distances("test", rows, 1);
  for (cka::median_rule rule : {cka::median_rule::all_pairs, cka::median_rule::off_diagonal, cka::median_rule::nonzero}) {
    const double one = cka::detail::tiled_median("test", all, rule, 1);
    CHECK(cka::detail::tiled_median("test", mine, rule, 1, nullptr, &t, &rows, 256) == one);
    CHECK(cka::detail::tiled_median("test", mine, rule, 1, nullptr, &t, &rows) == one);
  }
}

TEST_CASE("distributed RBF MMD and layer matrix equal one process's") {
  const matrix a = random_matrix(700, 4, 31), b = random_matrix(500, 4, 32, 0.3);
  const cka::mpi::team t(MPI_COMM_WORLD);
  cka::compute_options alone, shared;
  shared.processes = &t;
  for (cka::estimator est : {cka::estimator::biased, cka::estimator::unbiased}) {
    CHECK(close(cka::mmd2(a, b, cka::rbf_kernel::median(), est, shared), cka::mmd2(a, b, cka::rbf_kernel::median(), est, alone),
                1e-13));
  }
  const std::vector<matrix> layers{random_matrix(800, 5, 41), random_matrix(800, 3, 42), random_matrix(800, 8, 43)};
  cka::similarity_matrix_options o;
  const matrix one = cka::similarity_matrix(layers, cka::rbf_kernel::median(), o, alone).values;
  const matrix many = cka::similarity_matrix(layers, cka::rbf_kernel::median(), o, shared).values;
  for (Eigen::Index i = 0; i < one.size(); ++i) CHECK(close(many.data()[i], one.data()[i], 1e-13));
}

TEST_CASE("an overflow in one rank's tiles ends every rank with the same error") {
  matrix x = random_matrix(700, 3, 51), y = random_matrix(700, 3, 52);
  x(650, 0) = 1e200;  // a fixed bandwidth: the distances of row 650 overflow, in tiles of one rank only
  const cka::mpi::team t(MPI_COMM_WORLD);
  cka::compute_options shared;
  shared.processes = &t;
  CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::rbf_kernel{1.0}, cka::estimator::biased, shared), std::domain_error);
  CHECK(t.failed());
}

TEST_CASE("a backend failure on one rank reaches every rank as cka::backend_error") {
  const cka::mpi::team t(MPI_COMM_WORLD);
  std::exception_ptr error;
  if (rank_of() == size_of() - 1) error = std::make_exception_ptr(cka::backend_error("cka::test: injected failure"));
  CHECK_THROWS_AS(t.agree(error), cka::backend_error);
  CHECK(t.failed());
}

TEST_CASE("ranks holding different data: every rank throws") {
  if (size_of() == 1) return;
  matrix x = random_matrix(400, 3, 61), y = random_matrix(400, 3, 62);
  if (rank_of() == 1) x(5, 1) += 1.0;
  const cka::mpi::team t(MPI_COMM_WORLD);
  cka::compute_options shared;
  shared.processes = &t;
  CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::rbf_kernel::median(), cka::estimator::biased, shared), std::invalid_argument);
}

// Issue 25, item 2: a check that fails on one rank only (a NaN in its copy of the rows, a width that
// differs) used to throw before the first collective step and leave the others waiting forever; every
// tile-engine entry point now agrees on its checks first.
TEST_CASE("a NaN in one rank's copy of the data: every rank throws, no hang") {
  const cka::mpi::team t(MPI_COMM_WORLD);
  cka::compute_options shared;
  shared.processes = &t;
  matrix x = random_matrix(300, 3, 71), y = random_matrix(300, 2, 72);
  if (rank_of() == size_of() - 1) x(17, 1) = std::nan("");
  CHECK_THROWS_AS(cka::mpi::kernel_cka_shared(x, y, cka::rbf_kernel::median(), cka::rbf_kernel::median(), MPI_COMM_WORLD,
                                              cka::estimator::biased),
                  std::invalid_argument);
  CHECK_THROWS_AS(cka::mmd2(x, random_matrix(200, 3, 73), cka::rbf_kernel::median(), cka::estimator::biased, shared),
                  std::invalid_argument);
  const std::vector<matrix> layers{x, y};
  CHECK_THROWS_AS(cka::similarity_matrix(layers, cka::rbf_kernel::median(), cka::similarity_matrix_options{}, shared),
                  std::invalid_argument);
  // A shape that differs on one rank (Y one column narrower there).
  const matrix z = random_matrix(rank_of() == size_of() - 1 && size_of() > 1 ? 299 : 300, 2, 74);
  if (size_of() > 1) {
    CHECK_THROWS_AS(cka::mpi::kernel_cka_shared(random_matrix(300, 3, 71), z, cka::rbf_kernel{1.0}, cka::rbf_kernel{1.0},
                                                MPI_COMM_WORLD, cka::estimator::biased),
                    std::invalid_argument);
  }
}

// Issue 25, item 6: states whose flat arrays have the same size but whose widths are in another order (the
// layers listed in another order, X and Y swapped) were summed into a wrong matrix; now every rank throws.
TEST_CASE("states with the same size but the widths in another order: every rank throws") {
  if (size_of() == 1) return;
  const bool odd = rank_of() == 1;
  matrix x = random_matrix(50, 6, 81), y = random_matrix(50, 4, 82);
  CHECK_THROWS_WITH(cka::mpi::linear_cka_of_rows(odd ? y : x, odd ? x : y, MPI_COMM_WORLD),
                    Catch::Matchers::Contains("width") && Catch::Matchers::Contains("same order"));
  cka::layers_state s(odd ? std::vector<Eigen::Index>{3, 5, 7} : std::vector<Eigen::Index>{5, 3, 7});
  CHECK_THROWS_AS(cka::mpi::allreduce(s, MPI_COMM_WORLD), std::invalid_argument);
  cka::layers_state fewer(odd ? std::vector<Eigen::Index>{15} : std::vector<Eigen::Index>{5, 3, 7});
  CHECK_THROWS_AS(cka::mpi::allreduce(fewer, MPI_COMM_WORLD), std::invalid_argument);
}

// Issue 25, item 13: ranks whose first rows differ in magnitude beyond 2^±200 fix different power-of-two
// scales; allreduce brings them to one scale exactly before summing.
TEST_CASE("allreduce of states with different scales equals one process's CKA") {
  matrix x, y;
  dependent_pair(400, x, y);
  Eigen::Index r0, h;
  my_rows(x.rows(), r0, h);
  matrix xs = x;
  for (Eigen::Index i = 0; i < xs.rows(); ++i) xs.row(i) *= (i * size_of() / xs.rows()) % 2 == 0 ? 1e-250 : 1e-245;
  for (cka::estimator est : {cka::estimator::biased, cka::estimator::unbiased}) {
    const double one = cka::linear_cka(xs, y, est);
    CHECK(close(cka::mpi::linear_cka_of_rows(xs.middleRows(r0, h), y.middleRows(r0, h), MPI_COMM_WORLD, est), one, 1e-12));
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int failed = Catch::Session().run(argc, argv);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any ? 1 : 0;
}
