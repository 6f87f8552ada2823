#pragma once
/// \file mpi.hpp
/// Exact CKA on a cluster with MPI (CMake target cka::mpi; Debian libopenmpi-dev).
///
/// - States (linear_state, layers_state): each process adds its own rows, then `allreduce(state, comm)`
///   brings every state to one shift (rank order: the lowest rank that has one) and sums the flat arrays
///   in one MPI_Allreduce; every process can then finish. `linear_cka(x_rows, y_rows, comm)` does all of it.
/// - The tile engine (kernel_cka with RBF, polynomial, linear or generic kernels; mmd2 and
///   similarity_matrix with RBF, polynomial or generic kernels): every process passes the same inputs and
///   `compute_options::processes = &team`; the upper tiles are dealt round-robin, each
///   process computes (and stores) only its own, and every pass ends in one sum over the team — the exact
///   median's counts and collected values, the row sums, the centered sums per tile row. The result is the
///   same on every process and agrees with one process to rounding (~1e-15).
/// - Failures: each collective step starts with an agreement, so an exception on one process (an overflow
///   in its tiles, bad rows in its chunk) is thrown on every process of the team, instead of a hang.
///   Code of a caller that fails between steps calls `team::agree(error)` once to do the same.
/// docs/distributed.md has the cost model and how to run under mpirun or srun.

#include <cka/compute.hpp>
#include <cka/errors.hpp>
#include <cka/estimator.hpp>
#include <cka/mmd.hpp>
#include <cka/similarity.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/state.hpp>

// The C API only: the deprecated C++ bindings of Open MPI and MPICH are not needed (and warn).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cka::mpi {

/// A team over an MPI communicator (not duplicated: the caller keeps it alive and must not interleave
/// other collectives on it with the team's). Counts the bytes this process contributes to sums and
/// gathers, for measuring communication.
class team final : public cka::team {
 public:
  explicit team(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }

  void sum(double* values, std::size_t count) const override { reduce(values, count, MPI_DOUBLE); }
  void sum(std::uint64_t* values, std::size_t count) const override { reduce(values, count, MPI_UINT64_T); }

  std::vector<double> gather(const std::vector<double>& mine) const override {
    if (mine.size() > std::size_t(std::numeric_limits<int>::max())) {
      throw cka::backend_error("cka::mpi::team::gather: " + std::to_string(mine.size()) + " values from one process, more than MPI's int count");
    }
    int count = int(mine.size());
    std::vector<int> counts(static_cast<std::size_t>(size_), 0), offsets(static_cast<std::size_t>(size_), 0);
    MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_);
    long long total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[std::size_t(r)] = int(std::min<long long>(total, std::numeric_limits<int>::max()));
      total += counts[std::size_t(r)];
    }
    if (total > std::numeric_limits<int>::max()) {
      throw cka::backend_error("cka::mpi::team::gather: " + std::to_string(total) + " values in all, more than MPI's int count");
    }
    std::vector<double> all(static_cast<std::size_t>(total));
    MPI_Allgatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE, comm_);
    bytes_ += 8.0 * double(total);
    return all;
  }

  void agree(std::exception_ptr error) const override {
    int mine = error ? rank_ : size_, first = size_;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm_);
    if (first == size_) return;
    failed_ = true;
    // The failing process tells the others what it was: kind and message.
    int kind = 0;
    std::string message;
    if (rank_ == first) classify(error, kind, message);
    int length = int(message.size());
    MPI_Bcast(&kind, 1, MPI_INT, first, comm_);
    MPI_Bcast(&length, 1, MPI_INT, first, comm_);
    message.resize(std::size_t(length));
    MPI_Bcast(message.data(), length, MPI_CHAR, first, comm_);
    if (rank_ == first) std::rethrow_exception(error);
    const std::string text = message + " (on rank " + std::to_string(first) + ")";
    switch (kind) {
      case 0: throw cka::invalid_argument(text);
      case 1: throw cka::domain_error(text);
      case 2: throw std::bad_alloc();
      case 3: throw cka::backend_error(text);
      default: throw std::runtime_error(text);
    }
  }

  /// Whether an agreement has ended in an error on this process (so that the caller does not agree again).
  bool failed() const { return failed_; }
  /// Bytes this process has sent into sums and received from gathers so far.
  double bytes_communicated() const { return bytes_; }

 private:
  template <class T>
  void reduce(T* values, std::size_t count, MPI_Datatype type) const {
    constexpr std::size_t step = std::size_t(1) << 28;  // MPI counts are int
    for (std::size_t at = 0; at < count; at += step) {
      MPI_Allreduce(MPI_IN_PLACE, values + at, int(std::min(step, count - at)), type, MPI_SUM, comm_);
    }
    bytes_ += double(sizeof(T)) * double(count);
  }
  static void classify(const std::exception_ptr& error, int& kind, std::string& message) {
    try {
      std::rethrow_exception(error);
    } catch (const std::invalid_argument& e) {
      kind = 0;
      message = e.what();
    } catch (const std::domain_error& e) {
      kind = 1;
      message = e.what();
    } catch (const std::bad_alloc&) {
      kind = 2;
      message = "out of memory";
    } catch (const cka::backend_error& e) {
      kind = 3;
      message = e.what();
    } catch (const std::exception& e) {
      kind = 4;
      message = e.what();
    } catch (...) {
      kind = 4;
      message = "unknown error";
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  mutable bool failed_ = false;
  mutable double bytes_ = 0;
};

/// Makes every process's state the merge of all of them (collective): the states are moved exactly to one
/// shift — that of the lowest rank which has one, broadcast — and to one set of power-of-two scales (the
/// lowest rank's that has them; 1 unless magnitudes lie beyond 2^±200), and their flat arrays summed in one
/// MPI_Allreduce ((3 + d1 + d2)² doubles for a linear_state). A process may have added no rows. Throws
/// cka::invalid_argument on every process if the states were made for different widths (in order: layers
/// listed in another order, or X and Y swapped, on one process), not only if their sizes differ.
template <class State>
void allreduce(State& state, const team& t) {
  t.agree(nullptr);  // a process that failed before this step makes all of them throw here
  // Every process's [entries, has_shift, has_scale, widths…], gathered: the states can be summed only if
  // the widths agree. Each process reads the same gathered array, so all of them decide alike.
  std::vector<double> mine{0.0, state.has_shift() ? 1.0 : 0.0, state.has_scale() ? 1.0 : 0.0};
  for (const Eigen::Index w : state.widths()) mine.push_back(double(w));
  mine[0] = double(mine.size());
  const std::vector<double> all = t.gather(mine);
  const std::size_t first = std::size_t(all[0]);
  int root = -1, scale_root = -1;
  std::size_t at = 0;
  for (int r = 0; r < t.size(); ++r) {
    const std::size_t length = std::size_t(all[at]);
    if (length != first) {
      detail::fail_argument("mpi::allreduce", "rank ", r, "'s state holds ", length - 3, " representations but rank 0's holds ",
                            first - 3, "; every process must make its state for the same widths");
    }
    for (std::size_t k = 3; k < length; ++k) {
      if (all[at + k] != all[k]) {
        detail::fail_argument("mpi::allreduce", "rank ", r, "'s state has width ", all[at + k], " for representation ", k - 3,
                              " but rank 0's has ", all[k], "; every process must make its state for the same widths, "
                              "in the same order");
      }
    }
    if (root < 0 && all[at + 1] == 1.0) root = r;
    if (scale_root < 0 && all[at + 2] == 1.0) scale_root = r;
    at += length;
  }
  if (root < 0) return;  // every state is empty, and all arrays are zero
  vector<typename State::scalar> shift = state.shift();
  long long length = (long long)shift.size();
  MPI_Bcast(&length, 1, MPI_LONG_LONG, root, t.comm());
  shift.resize(Eigen::Index(length));
  MPI_Bcast(shift.data(), int(length), MPI_DOUBLE, root, t.comm());
  state.set_shift(shift);
  if (scale_root >= 0) {  // one set of scales too (the lowest rank's with rows), moved to exactly
    vector<typename State::scalar> scale = state.scale();
    MPI_Bcast(scale.data(), int(scale.size()), MPI_DOUBLE, scale_root, t.comm());
    state.set_scale(scale);
  }
  t.sum(state.data(), state.size());
}

template <class State>
void allreduce(State& state, MPI_Comm comm) {
  allreduce(state, team(comm));
}

// The two contracts are in the names: `linear_cka_of_rows` takes each process's own rows (the rows are
// spread over the processes), `kernel_cka_shared` takes all rows on every process (the tiles are spread).
// Both take the data, the kernels if any, the team (or communicator), then the estimator, and return the
// input's scalar type, as cka::linear_cka and cka::kernel_cka do.

/// Linear CKA of rows spread over the processes (collective): this process's rows of X (h×d1) and Y (h×d2),
/// h ≥ 0, any Eigen expressions. Equals cka::linear_cka on all rows stacked in rank order, to rounding.
/// Cost: h·(d1 + d2 + 3)² flops here, one allreduce of (d1 + d2 + 3)² doubles. Throws as linear_state on
/// every process (bad rows on one process included).
template <class DX, class DY>
typename DX::Scalar linear_cka_of_rows(const Eigen::MatrixBase<DX>& x_rows, const Eigen::MatrixBase<DY>& y_rows,
                                       const team& t, estimator est = estimator::biased) {
  std::optional<linear_state> s;
  detail::together(&t, [&] {
    s.emplace(x_rows.cols(), y_rows.cols());
    if (x_rows.rows() > 0 || y_rows.rows() > 0) s->add(x_rows.derived(), y_rows.derived());
  });
  allreduce(*s, t);
  return typename DX::Scalar(s->cka(est));
}
template <class DX, class DY>
typename DX::Scalar linear_cka_of_rows(const Eigen::MatrixBase<DX>& x_rows, const Eigen::MatrixBase<DY>& y_rows,
                                       MPI_Comm comm, estimator est = estimator::biased) {
  return linear_cka_of_rows(x_rows, y_rows, team(comm), est);
}

/// Kernel CKA with the tiles shared by the processes (collective; every process passes all rows of X and
/// Y): cka::kernel_cka with compute_options::processes set, the same value on every process. The memory
/// budget of `co` is per process.
template <class DX, class DY, class KX, class KY>
typename DX::Scalar kernel_cka_shared(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                      const KY& ky, const team& t, estimator est = estimator::biased,
                                      compute_options co = {}) {
  co.processes = &t;
  return cka::kernel_cka(x, y, kx, ky, est, co);
}
template <class DX, class DY, class KX, class KY>
typename DX::Scalar kernel_cka_shared(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                      const KY& ky, MPI_Comm comm, estimator est = estimator::biased,
                                      compute_options co = {}) {
  return kernel_cka_shared(x, y, kx, ky, team(comm), est, co);
}

}  // namespace cka::mpi
