#pragma once
// cka-similarity: the layers of a run — memory-mapped .npy files opened and checked before anything
// proportional to them is read, streamed through one accumulation state for the linear kernel, agreed on
// by every process under mpirun — and the demo's layers.

#include "layers.hpp"
#include "options.hpp"
#include "processes.hpp"
#include "render.hpp"
#include "signals.hpp"

#include <cka/npy.hpp>
#include <cka/npy_map.hpp>
#include <cka/state.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace tool {

using cka::matrix;

/// One .npy layer, memory-mapped (cka/npy_map.hpp), whose rows are checked for NaN and infinity as read.
class mapped_layer {
 public:
  explicit mapped_layer(const std::string& path) : path_(path) {
    try {
      std::string archive, member;
      if (tool::split_npz(path, archive, member)) {
        file_ = std::make_unique<cka::npy::mapped_file>(archive, member);
      } else {
        file_ = std::make_unique<cka::npy::mapped_file>(path);
      }
    } catch (const cka::npy::error& e) {
      throw failure(e.what());
    }
  }
  const std::string& path() const { return path_; }
  /// Bytes per value in the file: 2, 4 or 8.
  std::size_t item() const { return file_->layout().item; }
  Eigen::Index rows() const { return file_->rows(); }
  Eigen::Index cols() const { return file_->cols(); }
  /// Samples r0 … r0+h−1 into dest: rows r0… of the file, or, with a selection, the rows it lists there.
  template <class Dest>
  void read(Eigen::Index r0, Eigen::Index h, Dest&& dest) {
    if (selection_ == nullptr) {
      file_->read(r0, h, dest);
    } else {
      for (Eigen::Index i = 0; i < h; ++i) file_->read(Eigen::Index((*selection_)[std::size_t(r0 + i)]), 1, dest.row(i));
    }
    if (dest.allFinite()) return;
    for (Eigen::Index i = 0; i < h; ++i)
      for (Eigen::Index j = 0; j < dest.cols(); ++j)
        if (!std::isfinite(dest(i, j))) {
          const Eigen::Index row = selection_ ? Eigen::Index((*selection_)[std::size_t(r0 + i)]) : r0 + i;
          throw failure(path() + ": NaN or infinity at sample " + std::to_string(row) + ", feature " + std::to_string(j));
        }
  }
  void select(const std::vector<std::int64_t>* rows) { selection_ = rows; }

 private:
  std::string path_;
  std::unique_ptr<cka::npy::mapped_file> file_;
  const std::vector<std::int64_t>* selection_ = nullptr;
};

/// Opens every layer and checks the shapes before anything proportional to them is allocated or read:
/// at least one feature, the same number of samples, enough samples for the estimator. Returns n.
inline Eigen::Index open_layers(const std::vector<std::string>& files, const config& c, Eigen::Index needed, const std::string& why,
                         std::vector<std::unique_ptr<mapped_layer>>& layers, std::vector<std::int64_t>& selection) {
  for (const auto& f : files) {
    layers.push_back(std::make_unique<mapped_layer>(f));
    const mapped_layer& l = *layers.back();
    if (l.cols() < 1) throw failure(f + ": the layer has no features (shape (" + std::to_string(l.rows()) + ", 0))");
    const mapped_layer& first = *layers.front();
    if (l.rows() != first.rows()) {
      throw failure(first.path() + " has " + std::to_string(first.rows()) + " samples but " + f + " has " +
                    std::to_string(l.rows()) + "; the layers must hold the same samples");
    }
  }
  Eigen::Index n = layers.front()->rows();
  if (c.samples > 0) {
    if (c.samples > n) {
      throw failure("--samples " + std::to_string(c.samples) + ", but " + files.front() + " has only " + std::to_string(n));
    }
    n = Eigen::Index(c.samples);
  }
  if (!c.rows_file.empty()) {
    try {
      selection = cka::npy::load_indices(c.rows_file);
    } catch (const cka::npy::error& e) {
      throw failure(e.what());
    }
    for (std::size_t k = 0; k < selection.size(); ++k) {
      if (selection[k] < 0 || selection[k] >= n) {
        throw failure(c.rows_file + ": index " + std::to_string(k) + " is " + std::to_string(selection[k]) +
                      ", outside the " + std::to_string(n) + " samples of " + files.front());
      }
    }
    for (auto& l : layers) l->select(&selection);
    n = Eigen::Index(selection.size());
  }
  if (n < needed) {
    throw failure((c.rows_file.empty() ? files.front() : c.rows_file) + ": " + std::to_string(n) + " samples, but " + why +
                  " needs at least " + std::to_string(needed));
  }
  return n;
}

/// Linear CKA of all layers (rows, then columns) streamed through one layers_state: the full (all × all)
/// matrix, NaN on the rows and columns of layers with zero variance. With several processes each streams
/// its own range of rows, and the states are summed (cka::mpi::allreduce).
inline matrix<double> stream_linear(std::vector<std::unique_ptr<mapped_layer>>& layers, Eigen::Index n, cka::estimator est,
                             Eigen::Index chunk_rows, const std::function<void(std::size_t, std::size_t)>& progress) {
  const Eigen::Index first = n * world.rank / world.size, last = n * (world.rank + 1) / world.size;
  std::vector<Eigen::Index> widths;
  Eigen::Index total_width = 0;
  for (const auto& l : layers) {
    widths.push_back(l->cols());
    total_width += l->cols();
  }
  // About 32 MB of chunk buffers in all: enough rows for the rank-h update to run at GEMM speed.
  const Eigen::Index automatic = std::max<Eigen::Index>(256, (Eigen::Index(1) << 22) / std::max<Eigen::Index>(total_width, 1));
  const Eigen::Index chunk = std::min(n, chunk_rows > 0 ? chunk_rows : automatic);
  using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  std::vector<row_matrix> buffers;
  for (Eigen::Index w : widths) buffers.emplace_back(chunk, w);
  cka::layers_state state(widths);
  const std::size_t steps = std::size_t((last - first + chunk - 1) / chunk);
  std::size_t step = 0;
  for (Eigen::Index r0 = first; r0 < last; r0 += chunk) {
    const Eigen::Index h = std::min(chunk, last - r0);
    std::vector<Eigen::Ref<const row_matrix>> views;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      layers[l]->read(r0, h, buffers[l].topRows(h));
      views.emplace_back(buffers[l].topRows(h));
    }
    state.add(views);
    stop_if_signalled();  // the state's adds never stop on their own (an add is whole or not at all)
    if (progress) progress(++step, steps);
  }
#ifdef CKA_TOOL_MPI
  if (world.team) cka::mpi::allreduce(state, static_cast<const cka::mpi::team&>(*world.team));
#endif
  return state.cka(est);
}


/// Under mpirun, the processes must run one computation: the same options, the same layers (names, order
/// and shapes) and the same samples (n and the row selection). Each process's digests of the three are
/// gathered, and every process compares them alike, so that all of them fail together with one line,
/// instead of waiting for each other in different steps or summing rows of different runs.
inline void agree_on_inputs(const config& c, const std::vector<std::string>& names,
                     const std::vector<std::unique_ptr<mapped_layer>>& layers, Eigen::Index n,
                     const std::vector<std::int64_t>& selection) {
#ifdef CKA_TOOL_MPI
  if (world.mpi == nullptr) return;
  // A 64-bit FNV-1a digest of a text, as two exact doubles (the team gathers doubles).
  auto digest = [](const std::string& text) {
    std::uint64_t h = 1469598103934665603ULL;
    for (const unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
    return std::pair<double, double>{double(h >> 32), double(h & 0xffffffffULL)};
  };
  std::string options = c.kernel + '|' + c.rule + '|' + tool::number(c.sigma, 17) + '|' + tool::number(c.sigma_fraction, 17) +
                        '|' + std::to_string(c.debiased) + '|' + std::to_string(c.minibatch) + '|' + c.pvalues + '|' +
                        std::to_string(c.seed) + '|' + tool::number(c.ci, 17) + '|' + std::to_string(c.samples) + '|' +
                        std::to_string(c.cols.size()) + '|' + c.memory + '|' + std::to_string(c.demo);
  std::string inputs;
  for (std::size_t k = 0; k < names.size(); ++k) {
    inputs += names[k] + '|';
    if (k < layers.size()) inputs += std::to_string(layers[k]->rows()) + 'x' + std::to_string(layers[k]->cols()) + '|';
  }
  std::string samples = std::to_string(n) + '|';
  for (const std::int64_t r : selection) samples += std::to_string(r) + ',';
  const std::pair<double, double> mine[3] = {digest(options), digest(inputs), digest(samples)};
  world.mpi->agree(nullptr);  // a process that failed before this step (its options, its files) fails all here
  const std::vector<double> all =
      world.mpi->gather({mine[0].first, mine[0].second, mine[1].first, mine[1].second, mine[2].first, mine[2].second});
  const char* what[3] = {"different options (every process needs the same command line)",
                         "different layers (names, order or shapes)", "a different sample count or row selection"};
  for (int r = 1; r < world.size; ++r)
    for (int k = 0; k < 3; ++k) {
      const double* theirs = all.data() + 6 * r + 2 * k;
      if (theirs[0] != all[std::size_t(2 * k)] || theirs[1] != all[std::size_t(2 * k + 1)]) {
        throw failure("the processes disagree: rank " + std::to_string(r) + " was given " + what[k] + " than rank 0");
      }
    }
#else
  (void)c, (void)names, (void)layers, (void)n, (void)selection;
#endif
}

/// Activations of two seeded tanh networks (different widths and seeds) on a fixed synthetic data set.
inline void demo_layers(std::vector<std::string>& names, std::vector<matrix<double>>& values) {
  std::mt19937 engine(2024);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto random = [&](Eigen::Index r, Eigen::Index c, double scale) {
    matrix<double> m(r, c);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * normal(engine);
    return m;
  };
  const matrix<double> input = random(500, 16, 1.0);
  for (const char* net : {"a", "b"}) {
    const std::vector<Eigen::Index> widths = net[0] == 'a' ? std::vector<Eigen::Index>{64, 64, 32, 10}
                                                           : std::vector<Eigen::Index>{128, 32, 16, 10};
    matrix<double> h = input;
    for (std::size_t l = 0; l < widths.size(); ++l) {
      h = (h * random(h.cols(), widths[l], 1.5 / std::sqrt(double(h.cols())))).array().tanh().matrix();
      names.push_back(std::string(net) + "_layer" + std::to_string(l + 1));
      values.push_back(h);
    }
  }
}

/// The first `count` layers (the rows) and the rest (the columns), moved out of `all`.
template <class M>
std::pair<std::vector<M>, std::vector<M>> split_layers(std::vector<M>& all, std::size_t count) {
  std::vector<M> rows(std::make_move_iterator(all.begin()), std::make_move_iterator(all.begin() + std::ptrdiff_t(count)));
  std::vector<M> cols(std::make_move_iterator(all.begin() + std::ptrdiff_t(count)), std::make_move_iterator(all.end()));
  all.clear();
  return {std::move(rows), std::move(cols)};
}

}  // namespace tool
