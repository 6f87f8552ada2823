// Exact linear CKA over rows that arrive in chunks, from several workers, saved and merged later: the
// accumulation state of <cka/state.hpp>. Checks every route against linear_cka on all rows at once.
#include <cka/cka.hpp>
#include <cka/state.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const Eigen::Index n = 10000, d1 = 64, d2 = 32;
  Eigen::MatrixXf x = Eigen::MatrixXf::Random(n, d1).array() + 100.0f;  // float32 activations, offset
  Eigen::MatrixXf y = (x * Eigen::MatrixXf::Random(d1, d2)).array().tanh().matrix() + 0.1f * Eigen::MatrixXf::Random(n, d2);
  const double expected = cka::linear_cka(x.cast<double>().eval(), y.cast<double>().eval());

  // 1. One process, rows in batches (as a data loader yields them).
  cka::linear_state stream(d1, d2);
  for (Eigen::Index r0 = 0; r0 < n; r0 += 512) {
    const Eigen::Index h = std::min<Eigen::Index>(512, n - r0);
    stream.add(x.middleRows(r0, h), y.middleRows(r0, h));
  }

  // 2. Four workers with their own states, merged in any order (shifts may differ: moved exactly).
  std::vector<cka::linear_state> workers(4, cka::linear_state(d1, d2));
  for (Eigen::Index r0 = 0, w = 0; r0 < n; r0 += 1000, w = (w + 1) % 4) {
    workers[std::size_t(w)].add(x.middleRows(r0, 1000), y.middleRows(r0, 1000));
  }
  workers[2].merge(workers[3]);
  workers[0].merge(workers[2]);
  workers[0].merge(workers[1]);

  // 3. All-reduce style: every worker uses rank 0's shift, so the flat arrays simply add up
  //    (MPI_Allreduce(MPI_SUM) or torch.distributed.all_reduce on state.data(), state.size()).
  cka::linear_state rank0(d1, d2);
  rank0.add(x.topRows(5000), y.topRows(5000));
  cka::linear_state rank1(rank0.shift_x(), rank0.shift_y());  // the shift, broadcast from rank 0
  rank1.add(x.bottomRows(5000), y.bottomRows(5000));
  for (std::size_t k = 0; k < rank0.size(); ++k) rank0.data()[k] += rank1.data()[k];

  // 4. Saved to disk and merged later.
  rank1.save("streaming_example_state.npy");
  cka::linear_state reloaded = cka::linear_state::load("streaming_example_state.npy");
  std::remove("streaming_example_state.npy");
  cka::linear_state first_half(d1, d2);
  first_half.add(x.topRows(5000), y.topRows(5000));
  first_half.merge(reloaded);

  const double values[] = {stream.cka(), workers[0].cka(), rank0.cka(), first_half.cka()};
  std::printf("linear CKA of %ld rows: in memory %.15f\n", long(n), expected);
  const char* names[] = {"streamed", "merged", "flat sum", "reloaded"};
  int bad = 0;
  for (int i = 0; i < 4; ++i) {
    const double rel = std::abs(values[i] - expected) / expected;
    std::printf("  %-9s %.15f (relative difference %.1e)\n", names[i], values[i], rel);
    bad += rel > 1e-12;
  }
  std::printf("  debiased, streamed: %.15f\n", stream.cka(cka::estimator::unbiased));
  return bad;
}
