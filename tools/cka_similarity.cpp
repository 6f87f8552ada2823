// cka-similarity: CKA between the layers of trained networks, from .npy activation dumps.
// See `cka-similarity --help` and docs/tutorial.md. The parts, in the order a run uses them:
//   options.hpp          the command line
//   processes.hpp        this process alone, or those mpirun or srun started
//   layers.hpp           layer discovery: files, directories, .npz members, names and order
//   inputs.hpp           the layers opened, checked, streamed or loaded
//   plan.hpp             the memory plan, before anything proportional to n is read
//   report.hpp           the warnings and the view of a finished run
//   render.hpp           its CSV, JSON and SVG renderings
//   staged_outputs.hpp   writes committed only when the whole run has succeeded
//   signals.hpp          Ctrl-C and SIGTERM: the run stopped, its outputs removed
// This file runs them: run() for one process's part, main() for the agreement and the exit status.
#include "inputs.hpp"
#include "layers.hpp"
#include "options.hpp"
#include "plan.hpp"
#include "processes.hpp"
#include "render.hpp"
#include "report.hpp"
#include "signals.hpp"
#include "staged_outputs.hpp"

#include <cka/inference.hpp>
#include <cka/interrupt.hpp>
#include <cka/similarity_matrix.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <unistd.h>

namespace {

using cka::matrix;
using tool::config;
using tool::failure;
using tool::warn;
using tool::world;

/// The outputs of this run (rank 0's), staged: committed only once every process agrees the run succeeded.
tool::staged_outputs outputs;
std::string committed_note;  ///< printed on stderr once the outputs are committed

/// Where the demo's heatmap goes without --svg: the system's temporary directory, not the working one.
std::string demo_svg_path() { return (std::filesystem::temp_directory_path() / "cka-demo.svg").string(); }

/// Threads for OpenMP and Eigen (--threads), with a warning for more than the cores.
void set_threads(const config& cfg) {
  if (cfg.threads <= 0) return;
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && cfg.threads > (long long)cores) {
    warn(cfg, "--threads " + std::to_string(cfg.threads) + " on " + std::to_string(cores) +
                  " cores; more threads than cores slows the matrix products down");
  }
#ifdef _OPENMP
  omp_set_num_threads(int(cfg.threads));
#endif
  Eigen::setNbThreads(int(cfg.threads));
}

/// A progress bar on stderr (a terminal, rank 0, not --quiet), shown once the work has run for a second;
/// `drawn` tells whether it must be cleared.
std::function<void(std::size_t, std::size_t)> progress_bar(const config& cfg, bool& drawn) {
  if (cfg.quiet || !isatty(2) || !world.speaker()) return {};
  const auto start = std::chrono::steady_clock::now();
  return [start, &drawn](std::size_t done, std::size_t total) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed < 1.0) return;  // quick work shows no bar at all
    const double frac = double(done) / double(total), eta = elapsed / std::max(frac, 1e-9) * (1 - frac);
    const int filled = int(frac * 30);
    std::fprintf(stderr, "\r[%.*s%*s] %3.0f%%  ETA %.0fs ", filled, "##############################", 30 - filled, "",
                 100 * frac, eta);
    drawn = true;
  };
}

/// The square matrix of `layers`, or its first `row_count` against the rest with `versus`.
template <class M, class Kernel>
cka::similarity_result layer_matrix(std::vector<M>& layers, std::size_t row_count, bool versus, const Kernel& kernel,
                                    const cka::similarity_matrix_options& options, const cka::compute_options& compute) {
  auto [rows, cols] = tool::split_layers(layers, row_count);
  return versus ? cka::similarity_matrix(rows, cols, kernel, options, compute)
                : cka::similarity_matrix(rows, kernel, options, compute);
}

/// The tests (p-values, intervals) of every pair, as layer_matrix pairs the layers.
template <class Kernel>
cka::similarity_tests_result layer_tests(std::vector<matrix<double>>& layers, std::size_t row_count, bool versus,
                                         const Kernel& kernel, const cka::similarity_tests_options& options) {
  auto [rows, cols] = tool::split_layers(layers, row_count);
  return versus ? cka::similarity_tests(rows, cols, kernel, options) : cka::similarity_tests(rows, kernel, options);
}

int run(int argc, char** argv) {
  const config cfg = tool::parse_arguments(argc, argv);
  // Every output path is checked (a temporary file made beside it) before any work.
  const std::string svg_path = cfg.svg.empty() && cfg.demo ? demo_svg_path() : cfg.svg;
  if (world.speaker())
    for (const std::string& path : {cfg.csv, cfg.csv_long, cfg.json, svg_path}) outputs.reserve(path);
  set_threads(cfg);
  cka::similarity_matrix_options options;
  options.est = cfg.debiased ? cka::estimator::unbiased : cka::estimator::biased;
  options.minibatch = Eigen::Index(cfg.minibatch);
  const bool rbf = cfg.kernel == "rbf";
  const cka::median_rule rule = cfg.rule == "nonzero"        ? cka::median_rule::nonzero
                                : cfg.rule == "off-diagonal" ? cka::median_rule::off_diagonal
                                                             : cka::median_rule::all_pairs;
  const cka::rbf_kernel rbf_kernel = cfg.sigma > 0 ? cka::rbf_kernel{cfg.sigma} : cka::rbf_kernel::median(cfg.sigma_fraction, rule);
  const bool inference = !cfg.pvalues.empty() || cfg.ci > 0;
  cka::similarity_tests_options to;
  to.est = options.est;
  to.permutations = cfg.pvalues.empty() || cfg.pvalues == "analytic" ? 0 : std::size_t(std::stoull(cfg.pvalues));
  to.seed = cfg.seed;
  to.level = cfg.ci;

  // The layers: files (expanded, ordered, named) or the demo's matrices.
  tool::run_layers run_layers;
  std::vector<std::string> row_files, col_files;
  std::vector<matrix<double>> values;  // loaded layers (all but the streamed route)
  if (cfg.demo) {
    tool::demo_layers(run_layers.names, values);
  } else {
    row_files = tool::expand(cfg.rows, cfg.recursive);
    col_files = tool::expand(cfg.cols, cfg.recursive);
    if (!cfg.order.empty()) tool::apply_order(cfg.order, row_files, col_files);
    // Names repeat freely between the two sides of a --vs run (the same layers of two models); within one
    // side they are made distinct.
    std::vector<std::string> renamed;
    run_layers.names = tool::display_names(row_files, renamed);
    const std::vector<std::string> col_names = tool::display_names(col_files, renamed);
    run_layers.names.insert(run_layers.names.end(), col_names.begin(), col_names.end());
    for (const auto& r : renamed) warn(cfg, r);
  }
  std::vector<std::string>& all_files = run_layers.files;
  all_files = row_files;
  all_files.insert(all_files.end(), col_files.begin(), col_files.end());
  run_layers.versus = !col_files.empty();
  run_layers.row_count = cfg.demo ? run_layers.names.size() : row_files.size();
  const bool versus = run_layers.versus;
  const std::size_t row_count = run_layers.row_count;
  const bool streaming = !cfg.demo && !rbf && cfg.minibatch == 0 && !inference;
  // RBF on all samples runs on the library's tile engine: its stored kernel tiles (4 n^2 bytes per layer)
  // where they fit the budget, else tiles recomputed in every pass and nothing n x n. Its layers are kept
  // in float when every file holds float16 or float32 (exactly; half the memory).
  const bool rbf_tiles = rbf && !cfg.minibatch && !inference;
  const bool shared_work = streaming || (!cfg.demo && rbf_tiles);
  // The fewest samples the run can use, and what needs them (for the message).
  const Eigen::Index needed = inference ? cka::min_samples(to)
                                        : cka::min_samples(cfg.minibatch ? cka::estimator::unbiased : options.est);
  const std::string asked = !cfg.pvalues.empty() && cfg.ci > 0 ? "--pvalues with --ci" : !cfg.pvalues.empty() ? "--pvalues" : "--ci";
  const std::string why = inference ? asked + (cfg.debiased ? " with --debiased" : "")
                          : cfg.minibatch ? std::string("--minibatch (the unbiased estimator per batch)")
                          : cfg.debiased  ? std::string("--debiased (the unbiased estimator)")
                                          : std::string("CKA");

  std::vector<std::unique_ptr<tool::mapped_layer>> layers;
  std::vector<std::int64_t> selection;  // --rows
  std::vector<matrix<float>> narrow_values;
  cka::compute_options compute;
  const Eigen::Index n = cfg.demo ? values[0].rows() : tool::open_layers(all_files, cfg, needed, why, layers, selection);
  tool::agree_on_inputs(cfg, run_layers.names, layers, n, selection);
  if (world.size > 1 && !shared_work) {
    warn(cfg, std::string(cfg.demo ? "--demo" : cfg.minibatch ? "--minibatch" : "--pvalues and --ci") + " run on rank 0 alone; the other " +
                  std::to_string(world.size - 1) + " processes wait");
    if (!world.speaker()) return 0;
  }
  if (!cfg.demo && !streaming) {
    const bool narrow = rbf_tiles && std::all_of(layers.begin(), layers.end(), [](const auto& l) { return l->item() <= 4; });
    std::vector<Eigen::Index> widths;
    for (const auto& l : layers) widths.push_back(l->cols());
    double test_bytes = 0;
    if (inference) {
      const std::vector<Eigen::Index> rw(widths.begin(), widths.begin() + std::ptrdiff_t(row_count)),
          cw(widths.begin() + std::ptrdiff_t(row_count), widths.end());
      test_bytes = rbf ? cka::similarity_tests_bytes(n, rw, cw, rbf_kernel, to) : cka::similarity_tests_bytes(n, rw, cw, cka::linear_kernel{}, to);
    }
    compute = tool::plan_memory(cfg, all_files, n, widths, narrow, rbf_tiles, rbf_kernel, options, test_bytes);
    to.max_bytes = compute.max_bytes;
    for (auto& l : layers) {
      if (narrow) {
        narrow_values.emplace_back(n, l->cols());
        l->read(0, n, narrow_values.back());
      } else {
        values.emplace_back(n, l->cols());
        l->read(0, n, values.back());
      }
    }
  }

  bool drawn = false;
  options.progress = progress_bar(cfg, drawn);
  to.progress = options.progress;
  cka::similarity_result result;
  cka::similarity_tests_result tests;
  try {
    if (inference) {
      tests = rbf ? layer_tests(values, row_count, versus, rbf_kernel, to)
                  : layer_tests(values, row_count, versus, cka::linear_kernel{}, to);
      result.values = tests.values;
      result.undefined = tests.undefined;
    } else if (!narrow_values.empty()) {
      result = layer_matrix(narrow_values, row_count, versus, rbf_kernel, options, compute);
    } else if (streaming) {
      const matrix<double> full = tool::stream_linear(layers, n, options.est, Eigen::Index(cfg.chunk_rows), options.progress);
      const Eigen::Index col0 = versus ? Eigen::Index(row_count) : 0;
      const Eigen::Index ncols = versus ? Eigen::Index(col_files.size()) : Eigen::Index(row_count);
      result.values = full.block(0, col0, Eigen::Index(row_count), ncols);
      for (Eigen::Index a = 0; a < full.rows(); ++a)
        if (std::isnan(full(a, a))) result.undefined.push_back({std::size_t(a), cka::zero_variance_cause(options.est)});
    } else if (rbf) {
      result = layer_matrix(values, row_count, versus, rbf_kernel, options, compute);
    } else {
      result = layer_matrix(values, row_count, versus, cka::linear_kernel{}, options, cka::compute_options{});
    }
  } catch (const failure&) {
    throw;  // already names its file
  } catch (const std::bad_alloc&) {
    if (world.agreed_failure()) throw;
    throw failure(tool::which_layers(all_files) + ": out of memory computing the matrix (n = " + std::to_string(n) + ")");
  } catch (const std::exception& e) {
    if (world.agreed_failure()) throw;
    throw failure(tool::which_layers(all_files) + ": " + e.what());
  }
  if (drawn) std::fprintf(stderr, "\r%*s\r", 50, "");
  if (!world.speaker()) return 0;  // rank 0 writes the outputs
  tool::warn_about_result(cfg, run_layers, result, tests);
  const tool::matrix_view view = tool::view_of(cfg, run_layers, n, result, tests);

  // Staged here; main commits them once every process has succeeded.
  if (cfg.csv.empty()) {
    outputs.put_stdout(tool::csv(view));
  } else {
    outputs.put(cfg.csv, tool::csv(view));
  }
  if (!cfg.csv_long.empty()) outputs.put(cfg.csv_long, tool::csv_long(view));
  if (!cfg.json.empty()) outputs.put(cfg.json, tool::json(view));
  if (!svg_path.empty()) outputs.put(svg_path, tool::svg(view));
  if (cfg.demo && cfg.svg.empty() && !cfg.quiet) committed_note = "cka-similarity: heatmap written to " + svg_path + "\n";
  return 0;
}

/// The line on stderr for a failure.
void report(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "cka-similarity: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cka-similarity: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "cka-similarity: unexpected error\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef CKA_TOOL_MPI
  std::unique_ptr<cka::mpi::team> team;
  if (tool::under_launcher()) {
    MPI_Init(&argc, &argv);
    std::atexit(tool::finalize_mpi);  // also after --help's exit
    team = std::make_unique<cka::mpi::team>(MPI_COMM_WORLD);
    world.rank = team->rank();
    world.size = team->size();
    world.team = team->size() > 1 ? team.get() : nullptr;
    world.mpi = world.team ? team.get() : nullptr;
    MPI_Comm here;  // the processes on this machine share its memory
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &here);
    MPI_Comm_size(here, &tool::processes_here);
    MPI_Comm_free(&here);
  }
#endif
  // Every failure, whatever its source and on whichever process, ends as one line on stderr (from rank
  // 0) and exit status 2 on every process; a signal to a process alone ends it by that signal.
  std::exception_ptr error;
  int status = 2;
  const bool alone = world.team == nullptr;
  if (alone) tool::catch_signals();
  try {
    const cka::interrupt_check check(alone ? std::function<void()>(tool::stop_if_signalled) : nullptr);
    status = run(argc, argv);
    tool::stop_if_signalled();  // a signal during the last steps still stops the commit
  } catch (...) {
    error = std::current_exception();
  }
#ifdef CKA_TOOL_MPI
  // The last step of the run: every process learns whether any failed (unless a step already agreed so).
  if (world.mpi && !world.mpi->failed()) {
    try {
      world.mpi->agree(error);
    } catch (...) {
      error = std::current_exception();
    }
  }
#endif
  if (!error && world.speaker()) {
    try {
      outputs.commit();
      std::fputs(committed_note.c_str(), stderr);
    } catch (...) {
      error = std::current_exception();
    }
  }
  outputs.discard();  // a failed run leaves no output behind
  if (!error) return status;
  try {
    std::rethrow_exception(error);
  } catch (const tool::signalled& s) {
    if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\r%*s\r", 50, "");  // over a progress bar
    std::fprintf(stderr, "cka-similarity: stopped by %s; no output written\n", tool::signal_name(s.number).c_str());
    std::fflush(stderr);
    std::signal(s.number, SIG_DFL);
    std::raise(s.number);
    return 128 + s.number;
  } catch (...) {
  }
  if (world.speaker()) report(error);
  return 2;
}
