// cka-similarity: CKA between the layers of trained networks, from .npy activation dumps.
// See `cka-similarity --help` and docs/tutorial.md. Layer discovery is in layers.hpp, the renderings and
// the checked writes in output.hpp.
#include "layers.hpp"
#include "output.hpp"

#include <cka/npy.hpp>
#include <cka/inference.hpp>
#include <cka/npy_map.hpp>
#include <cka/similarity.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/state.hpp>
#include <cka/version.hpp>

#ifdef CKA_TOOL_MPI
#include <cka/mpi.hpp>
#endif

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <random>
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
using tool::failure;

const char* description =
    "CKA between the layers of trained networks, from .npy activation dumps.\n\n"
    "Each LAYER is an .npy file of activations, shape (n, ...), float16, float32 or float64, or an .npz archive\n"
    "(np.savez) standing for its arrays; a directory stands for its .npy and .npz files in natural order\n"
    "(layer_2 before layer_10; --order to choose). Without --vs the layers are compared with each other (a\n"
    "square matrix); with --vs the layers before it give the rows and the ones after it the columns. The linear kernel without --minibatch streams the memory-mapped files through one\n"
    "accumulation state: exact CKA over all n rows in memory independent of n. The RBF kernel loads the layers\n"
    "and runs on kernel tiles (stored within --memory, else recomputed); --minibatch, --pvalues and --ci hold\n"
    "one n x n (or B x B) Gram per layer.\n"
    "Under mpirun or srun (when built with MPI) the processes share the work: each streams its own rows of\n"
    "every layer for the linear kernel, and computes its share of the tiles for the RBF kernel; rank 0 alone\n"
    "writes the outputs and shows progress. --minibatch, --pvalues and --ci run on rank 0 alone.\n"
    "Exit status: 0 on success; 2 on bad usage, bad input or a failed write (one line on stderr naming the file).\n";

struct config {
  std::vector<std::string> rows, cols;
  bool quiet = false, demo = false, recursive = false, unit_range = false;
  std::string kernel = "linear", rule = "all-pairs", range = "data";
  double sigma = 0, sigma_fraction = 1.0, vmin = std::nan(""), vmax = std::nan("");
  bool debiased = false;
  long long minibatch = 0, threads = 0, chunk_rows = 0, samples = 0;
  int precision = 12;
  std::string csv, csv_long, json, svg, order, title, rows_file, pvalues, memory;
  double ci = 0;
  unsigned long long seed = 0;
  double memory_bytes = 0;  ///< --memory parsed (0: not given)
};

/// The processes of this run: this one alone, or those that mpirun or srun started (MPI is initialised
/// only under such a launcher, so that a plain run never touches MPI).
struct processes {
  int rank = 0, size = 1;
  const cka::team* team = nullptr;
#ifdef CKA_TOOL_MPI
  const cka::mpi::team* mpi = nullptr;
#endif
  bool speaker() const { return rank == 0; }
  /// Whether the processes have already agreed on a failure (its message is final: pass it on as it is).
  bool agreed_failure() const {
#ifdef CKA_TOOL_MPI
    return mpi != nullptr && mpi->failed();
#else
    return false;
#endif
  }
};
processes world;

/// The outputs of this run (rank 0's), staged: committed only once every process agrees the run succeeded.
tool::staged_outputs outputs;
std::string committed_note;  ///< printed on stderr once the outputs are committed

/// Where the demo's heatmap goes without --svg: the system's temporary directory, not the working one.
std::string demo_svg_path() { return (std::filesystem::temp_directory_path() / "cka-demo.svg").string(); }

void warn(const config& c, const std::string& message) {
  if (!c.quiet && world.speaker()) std::fprintf(stderr, "cka-similarity: warning: %s\n", message.c_str());
}

double parse_bytes(const std::string& text);

/// Parses the command line; exits 0 after --help or --version, throws failure on bad usage.
config parse_arguments(int argc, char** argv) {
  config c;
  CLI::App app{description, "cka-similarity"};
  app.set_version_flag("--version", std::string("cka-similarity ") + std::to_string(CKA_VERSION_MAJOR) + "." +
                                        std::to_string(CKA_VERSION_MINOR) + "." + std::to_string(CKA_VERSION_PATCH));
  app.add_option("layers", c.rows, "LAYER files or directories (the rows; all layers without --vs)");
  app.add_option("--vs", c.cols, "the column layers: a rectangular matrix of the layers before --vs against these")
      ->expected(1, -1);
  app.add_option("--kernel", c.kernel, "linear or rbf (default linear)")->check(CLI::IsMember({"linear", "rbf"}));
  auto* sigma = app.add_option("--sigma", c.sigma, "rbf: a fixed bandwidth sigma instead of the median rule");
  auto* fraction = app.add_option("--sigma-fraction", c.sigma_fraction,
                                  "rbf: sigma^2 = F^2 * median squared distance (default 1)");
  auto* rule = app.add_option("--median-rule", c.rule,
                              "rbf: the distances the median is over: all-pairs (default; NumPy reference code), "
                              "off-diagonal, or nonzero (pairs at a positive distance)")
                   ->check(CLI::IsMember({"all-pairs", "off-diagonal", "nonzero"}));
  sigma->excludes(fraction)->excludes(rule);
  app.add_flag("--debiased", c.debiased, "the unbiased HSIC estimator (debiased CKA)");
  app.add_option("--minibatch", c.minibatch, "minibatch CKA over batches of B >= 4 samples (Nguyen et al. 2021)")
      ->check(CLI::Range(4LL, 1000000000LL));
  app.add_option("--pvalues", c.pvalues,
                 "p-values against independence for every cell: N permutations, or 'analytic' (the exact "
                 "permutation mean and variance; docs/inference.md)");
  std::string seed;
  app.add_option("--seed", seed, "the permutations' seed, 0 to 2^64 - 1 (default 0)");
  app.add_option("--ci", c.ci, "jackknife intervals at this level, 0.5 to 0.9999, e.g. 0.95");
  auto* samples = app.add_option("--samples", c.samples, "use the first N samples of every layer");
  app.add_option("--rows", c.rows_file, "use the samples whose indices an .npy file of integers lists, in its order")
      ->excludes(samples);
  app.add_option("--order", c.order, "a file listing the layer names (or paths), one per line, in the order wanted");
  app.add_flag("--recursive", c.recursive, "a directory stands for the .npy files in its subdirectories too");
  app.add_option("--csv", c.csv, "write the CSV there instead of standard output");
  app.add_option("--csv-long", c.csv_long, "also write a long-format CSV (row,column,cka)");
  app.add_option("--json", c.json, "also write {rows, columns, values, kernel, estimator, n, undefined} as JSON");
  app.add_option("--svg", c.svg, "also write a heatmap as SVG");
  app.add_option("--precision", c.precision, "significant digits in the CSV (default 12)")->check(CLI::Range(1, 17));
  app.add_option("--title", c.title, "the heatmap's title (default: kernel, bandwidth, estimator and n)");
  app.add_option("--range", c.range,
                 "heatmap colours over the data's range (default: layer matrices often span 0.7-1) or unit (0-1, "
                 "comparable across pictures)")
      ->check(CLI::IsMember({"data", "unit"}));
  app.add_option("--vmin", c.vmin, "heatmap colour scale minimum (overrides --range)");
  app.add_option("--vmax", c.vmax, "heatmap colour scale maximum (overrides --range)");
  app.add_option("--memory", c.memory,
                 "working memory allowed, e.g. 8G or 500M (default 80% of this machine's); RBF keeps each layer's "
                 "kernel tiles (4 n^2 bytes) where they fit, else recomputes them in every pass");
  app.add_option("--threads", c.threads, "threads for the matrix products")->check(CLI::Range(1LL, 4096LL));
  app.add_option("--chunk-rows", c.chunk_rows, "linear streaming: rows read per chunk (default: about 32 MB of them)")
      ->check(CLI::Range(1LL, 1000000000000LL));
  app.add_flag("-q,--quiet", c.quiet, "no progress bar and no warnings");
  app.add_flag("--demo", c.demo, "compare the layers of two small seeded networks (the heatmap goes to --svg, else to "
                                 "cka-demo.svg in the temporary directory)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForVersion&) {
    std::printf("%s\n", app.version().c_str());
    std::exit(std::fflush(stdout) == 0 ? 0 : 2);
  } catch (const CLI::Success&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(std::fflush(stdout) == 0 ? 0 : 2);
  } catch (const CLI::ExtrasError& e) {
    throw failure(std::string("unknown option or argument: ") + e.what() + " (see --help)");
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw failure(what + " (see --help)");
  }
  // Every option's value, on every route, with a message that names it and the value given.
  auto given = [&](const char* option) { return app.count(option) > 0; };
  auto text = [](double v) { return tool::number(v, 6); };
  if (given("--sigma") && !(c.sigma > 0 && std::isfinite(c.sigma))) {
    throw failure("--sigma must be a positive number, got " + text(c.sigma));
  }
  if (given("--sigma-fraction") && !(c.sigma_fraction > 0 && std::isfinite(c.sigma_fraction))) {
    throw failure("--sigma-fraction must be a positive number, got " + text(c.sigma_fraction));
  }
  if (given("--ci") && !(c.ci >= 0.5 && c.ci <= 0.9999)) throw failure("--ci must be a level from 0.5 to 0.9999, got " + text(c.ci));
  if (given("--samples") && c.samples < 1) throw failure("--samples must be 1 or more, got " + std::to_string(c.samples));
  for (const auto& [option, v] : {std::pair<const char*, double>{"--vmin", c.vmin}, {"--vmax", c.vmax}}) {
    if (given(option) && !std::isfinite(v)) throw failure(std::string(option) + " must be a finite number, got " + text(v));
  }
  if (given("--seed")) {
    char* end = nullptr;
    errno = 0;
    c.seed = std::strtoull(seed.c_str(), &end, 10);
    if (seed.empty() || !std::isdigit(static_cast<unsigned char>(seed[0])) || *end != '\0' || errno == ERANGE) {
      throw failure("--seed must be a whole number from 0 to 18446744073709551615, got '" + seed + "'");
    }
  }
  if (given("--pvalues") && c.pvalues.empty()) throw failure("--pvalues must be a number of permutations or 'analytic', got ''");
  if (given("--memory")) c.memory_bytes = parse_bytes(c.memory);
  if (!c.demo && c.rows.empty()) throw failure("no layers given (see --help)");
  if (c.demo && (!c.rows.empty() || !c.cols.empty())) throw failure("--demo takes no layers");
  if (c.sigma > 0 && c.kernel != "rbf") throw failure("--sigma needs --kernel rbf");
  if (!std::isnan(c.vmin) && !std::isnan(c.vmax) && !(c.vmax > c.vmin)) throw failure("--vmax must exceed --vmin");
  c.unit_range = c.range == "unit";
  if (!c.pvalues.empty() && c.pvalues != "analytic") {
    char* end = nullptr;
    errno = 0;
    const unsigned long long count = std::strtoull(c.pvalues.c_str(), &end, 10);
    if (!std::isdigit(static_cast<unsigned char>(c.pvalues[0])) || *end != '\0' || errno == ERANGE || count < 1 ||
        count > 100000000ULL) {
      throw failure("--pvalues must be a number of permutations (1 to 100000000) or 'analytic', got '" + c.pvalues + "'");
    }
  }
  if ((!c.pvalues.empty() || c.ci > 0) && c.minibatch) throw failure("--pvalues and --ci need all samples at once, not --minibatch");
  return c;
}

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
Eigen::Index open_layers(const std::vector<std::string>& files, const config& c, Eigen::Index needed, const std::string& why,
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
matrix<double> stream_linear(std::vector<std::unique_ptr<mapped_layer>>& layers, Eigen::Index n, cka::estimator est,
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
void agree_on_inputs(const config& c, const std::vector<std::string>& names,
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
void demo_layers(std::vector<std::string>& names, std::vector<matrix<double>>& values) {
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

/// A byte count with an optional K, M, G or T suffix (powers of 1024). Throws failure.
double parse_bytes(const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  const std::string unit = end ? std::string(end) : std::string();
  const std::string units = "KMGT";
  if (unit.size() == 1 && units.find(char(std::toupper(static_cast<unsigned char>(unit[0])))) != std::string::npos) {
    v *= std::pow(1024.0, double(units.find(char(std::toupper(static_cast<unsigned char>(unit[0])))) + 1));
  } else if (!unit.empty() || text.empty()) {
    throw failure("--memory needs a size such as 8G, 500M or 1000000, got '" + text + "'");
  }
  if (!(v >= 1e6) || !std::isfinite(v)) throw failure("--memory must be a size of at least 1M, got '" + text + "'");
  return v;
}

/// Physical memory in bytes (0 if unknown), divided among the processes of this run on this machine.
int processes_here = 1;
double physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) / double(processes_here) : 0.0;
}

/// A byte count for a message: "3.25 GB", "12.6 MB" or "900 bytes".
std::string gigabytes(double bytes) {
  char buf[48];
  if (bytes >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  } else if (bytes >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f bytes", bytes);
  }
  return buf;
}

/// "a.npy", "a.npy and b.npy", or "a.npy and 11 more layers": the files a message is about.
std::string which_layers(const std::vector<std::string>& files) {
  if (files.empty()) return "the demo layers";
  if (files.size() == 1) return files[0];
  if (files.size() == 2) return files[0] + " and " + files[1];
  return files[0] + " and " + std::to_string(files.size() - 1) + " more layers";
}

/// An axis title from the command-line arguments of one side: their last path components, comma-separated.
std::string axis_title(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) {
    std::filesystem::path p(a);
    std::string name = p.filename().string();
    if (name.empty() || name == ".") name = p.parent_path().filename().string();
    if (name.empty()) name = a;
    out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

int run(int argc, char** argv) {
  const config cfg = parse_arguments(argc, argv);
  // Every output path is checked (a temporary file made beside it) before any work.
  const std::string svg_path = cfg.svg.empty() && cfg.demo ? demo_svg_path() : cfg.svg;
  if (world.speaker())
    for (const std::string& path : {cfg.csv, cfg.csv_long, cfg.json, svg_path}) outputs.reserve(path);
  if (cfg.threads > 0) {
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
  cka::similarity_matrix_options options;
  options.est = cfg.debiased ? cka::estimator::unbiased : cka::estimator::biased;
  options.minibatch = Eigen::Index(cfg.minibatch);
  const bool rbf = cfg.kernel == "rbf";
  const cka::median_rule rule = cfg.rule == "nonzero"        ? cka::median_rule::nonzero
                                : cfg.rule == "off-diagonal" ? cka::median_rule::off_diagonal
                                                             : cka::median_rule::all_pairs;
  const cka::rbf_kernel rbf_kernel = cfg.sigma > 0 ? cka::rbf_kernel{cfg.sigma} : cka::rbf_kernel::median(cfg.sigma_fraction, rule);

  // The layers: files (expanded, ordered, named) or the demo's matrices.
  std::vector<std::string> row_files, col_files, names;
  std::vector<matrix<double>> values;  // loaded layers (all but the streamed route)
  if (cfg.demo) {
    demo_layers(names, values);
  } else {
    row_files = tool::expand(cfg.rows, cfg.recursive);
    col_files = tool::expand(cfg.cols, cfg.recursive);
    if (!cfg.order.empty()) tool::apply_order(cfg.order, row_files, col_files);
    // Names repeat freely between the two sides of a --vs run (the same layers of two models); within one
    // side they are made distinct.
    std::vector<std::string> renamed;
    names = tool::display_names(row_files, renamed);
    const std::vector<std::string> col_names = tool::display_names(col_files, renamed);
    names.insert(names.end(), col_names.begin(), col_names.end());
    for (const auto& r : renamed) warn(cfg, r);
  }
  std::vector<std::string> all_files = row_files;
  all_files.insert(all_files.end(), col_files.begin(), col_files.end());
  const bool versus = !col_files.empty();
  const std::size_t row_count = cfg.demo ? names.size() : row_files.size();
  const bool inference = !cfg.pvalues.empty() || cfg.ci > 0;
  const bool streaming = !cfg.demo && !rbf && cfg.minibatch == 0 && !inference;
  const bool shared_work = streaming || (!cfg.demo && rbf && !cfg.minibatch && !inference);
  // The fewest samples the run can use, and what needs them (for the message).
  const Eigen::Index needed = inference ? (cfg.debiased ? (cfg.ci > 0 ? 6 : 5) : 4) : cfg.debiased || cfg.minibatch ? 4 : 2;
  const std::string asked = !cfg.pvalues.empty() && cfg.ci > 0 ? "--pvalues with --ci" : !cfg.pvalues.empty() ? "--pvalues" : "--ci";
  const std::string why = inference ? asked + (cfg.debiased ? " with --debiased" : "")
                          : cfg.minibatch ? std::string("--minibatch (the unbiased estimator per batch)")
                          : cfg.debiased  ? std::string("--debiased (the unbiased estimator)")
                                          : std::string("CKA");

  std::vector<std::unique_ptr<mapped_layer>> layers;
  std::vector<std::int64_t> selection;  // --rows
  // RBF on all samples runs on the library's tile engine: its stored kernel tiles (4 n^2 bytes per layer)
  // where they fit the budget, else tiles recomputed in every pass and nothing n x n. Its layers are kept
  // in float when every file holds float16 or float32 (exactly; half the memory).
  const bool rbf_tiles = rbf && !cfg.minibatch && !inference;
  std::vector<matrix<float>> narrow_values;
  cka::compute_options compute;
  Eigen::Index n = cfg.demo ? values[0].rows() : open_layers(all_files, cfg, needed, why, layers, selection);
  agree_on_inputs(cfg, names, layers, n, selection);
  if (world.size > 1 && !shared_work) {
    warn(cfg, std::string(cfg.demo ? "--demo" : cfg.minibatch ? "--minibatch" : "--pvalues and --ci") + " run on rank 0 alone; the other " +
                  std::to_string(world.size - 1) + " processes wait");
    if (!world.speaker()) return 0;
  }
  if (!cfg.demo && !streaming) {
    const bool narrow = rbf_tiles && std::all_of(layers.begin(), layers.end(), [](const auto& l) { return l->item() <= 4; });
    double data = 0, copies = 0;
    for (const auto& l : layers) {
      data += (narrow ? 4.0 : 8.0) * double(n) * double(l->cols());
      copies += 8.0 * double(n) * double(l->cols() + 1);
    }
    const double budget = cfg.memory_bytes > 0 ? cfg.memory_bytes : std::max(0.8 * physical_memory(), 1e9);
    if (rbf_tiles) {
      // The layers, their centered copies and a few tiles per thread at least; stored tiles if they fit too.
      const double least = data + copies + 8.0 * 65536.0 * double(2 * layers.size() + 2) * double(Eigen::nbThreads());
      if (least > budget) {
        throw failure(which_layers(all_files) + ": n = " + std::to_string(n) + " needs " + gigabytes(least) +
                      " for the layers and their centered copies, more than " + gigabytes(budget) +
                      " of memory (80% of this machine's, or --memory)");
      }
      compute.max_bytes = std::size_t(budget - data);
      compute.processes = world.team;
    } else {
      // The layers in double and one n×n (B×B) Gram per layer.
      const double batch = cfg.minibatch ? double(std::min<long long>(cfg.minibatch, n)) : double(n);
      const double grams = 8.0 * batch * batch * double(layers.size());
      if (data + grams > budget) {
        throw failure(which_layers(all_files) + ": n = " + std::to_string(n) + " needs " + gigabytes(data + grams) +
                      " (" + gigabytes(grams) + " of " + (cfg.minibatch ? "B x B" : "n x n") + " Gram matrices), more than " +
                      gigabytes(budget) + " of memory (80% of this machine's); " +
                      (inference ? "--pvalues and --ci hold one n x n Gram per layer"
                                 : "--minibatch holds one B x B Gram per layer"));
      }
    }
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

  // A progress bar on a terminal, once the work has run for a second.
  const bool bar = !cfg.quiet && isatty(2) && world.speaker();
  const auto start = std::chrono::steady_clock::now();
  bool drawn = false;
  if (bar) {
    options.progress = [&](std::size_t done, std::size_t total) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed < 1.0) return;  // quick work shows no bar at all
      const double frac = double(done) / double(total), eta = elapsed / std::max(frac, 1e-9) * (1 - frac);
      const int filled = int(frac * 30);
      std::fprintf(stderr, "\r[%.*s%*s] %3.0f%%  ETA %.0fs ", filled, "##############################", 30 - filled, "",
                   100 * frac, eta);
      drawn = true;
    };
  }
  cka::similarity_result result;
  cka::similarity_tests_result tests;
  try {
    if (inference) {
      std::vector<matrix<double>> rows_v(std::make_move_iterator(values.begin()), std::make_move_iterator(values.begin() + std::ptrdiff_t(row_count)));
      std::vector<matrix<double>> cols_v(std::make_move_iterator(values.begin() + std::ptrdiff_t(row_count)), std::make_move_iterator(values.end()));
      values.clear();
      cka::similarity_tests_options to;
      to.est = options.est;
      to.permutations = cfg.pvalues.empty() || cfg.pvalues == "analytic" ? 0 : std::size_t(std::stoull(cfg.pvalues));
      to.seed = cfg.seed;
      to.level = cfg.ci;
      to.progress = options.progress;
      if (rbf) {
        tests = versus ? cka::similarity_tests(rows_v, cols_v, rbf_kernel, to) : cka::similarity_tests(rows_v, rbf_kernel, to);
      } else {
        tests = versus ? cka::similarity_tests(rows_v, cols_v, cka::linear_kernel{}, to)
                       : cka::similarity_tests(rows_v, cka::linear_kernel{}, to);
      }
      result.values = tests.values;
      for (std::size_t a : tests.undefined) result.undefined.push_back({a, cka::zero_variance_cause(options.est)});
    } else if (!narrow_values.empty()) {
      std::vector<matrix<float>> rows_v(std::make_move_iterator(narrow_values.begin()), std::make_move_iterator(narrow_values.begin() + std::ptrdiff_t(row_count)));
      std::vector<matrix<float>> cols_v(std::make_move_iterator(narrow_values.begin() + std::ptrdiff_t(row_count)), std::make_move_iterator(narrow_values.end()));
      narrow_values.clear();
      result = versus ? cka::similarity_matrix(rows_v, cols_v, rbf_kernel, options, compute)
                      : cka::similarity_matrix(rows_v, rbf_kernel, options, compute);
    } else if (streaming) {
      const matrix<double> full = stream_linear(layers, n, options.est, Eigen::Index(cfg.chunk_rows), options.progress);
      const Eigen::Index col0 = versus ? Eigen::Index(row_count) : 0;
      const Eigen::Index ncols = versus ? Eigen::Index(col_files.size()) : Eigen::Index(row_count);
      result.values = full.block(0, col0, Eigen::Index(row_count), ncols);
      for (Eigen::Index a = 0; a < full.rows(); ++a)
        if (std::isnan(full(a, a))) result.undefined.push_back({std::size_t(a), cka::zero_variance_cause(options.est)});
    } else {
      std::vector<matrix<double>> rows_v(std::make_move_iterator(values.begin()), std::make_move_iterator(values.begin() + std::ptrdiff_t(row_count)));
      std::vector<matrix<double>> cols_v(std::make_move_iterator(values.begin() + std::ptrdiff_t(row_count)), std::make_move_iterator(values.end()));
      values.clear();
      if (rbf) {
        result = versus ? cka::similarity_matrix(rows_v, cols_v, rbf_kernel, options, compute)
                        : cka::similarity_matrix(rows_v, rbf_kernel, options, compute);
      } else {
        result = versus ? cka::similarity_matrix(rows_v, cols_v, cka::linear_kernel{}, options)
                        : cka::similarity_matrix(rows_v, cka::linear_kernel{}, options);
      }
    }
  } catch (const failure&) {
    throw;  // already names its file
  } catch (const std::bad_alloc&) {
    if (world.agreed_failure()) throw;
    throw failure(which_layers(all_files) + ": out of memory computing the matrix (n = " + std::to_string(n) + ")");
  } catch (const std::exception& e) {
    if (world.agreed_failure()) throw;
    throw failure(which_layers(all_files) + ": " + e.what());
  }
  if (drawn) std::fprintf(stderr, "\r%*s\r", 50, "");
  if (!world.speaker()) return 0;  // rank 0 writes the outputs
  for (const auto& u : result.undefined) {
    const std::string who = cfg.demo ? names[u.layer] : all_files[u.layer];
    warn(cfg, who + ": " + u.cause + "; its cells are nan");
  }
  if (cfg.ci > 0) {
    for (Eigen::Index i = 0; i < tests.values.rows(); ++i)
      for (Eigen::Index j = 0; j < tests.values.cols(); ++j) {
        if (std::isnan(tests.values(i, j)) || !std::isnan(tests.lower(i, j)) || (!versus && j < i)) continue;
        warn(cfg, names[std::size_t(i)] + " vs " + names[std::size_t(versus ? Eigen::Index(row_count) + j : j)] +
                      ": no jackknife interval (without one sample a layer has no variance left); its bounds are nan");
      }
  }
  for (const std::size_t a : tests.degenerate) {
    warn(cfg, (cfg.demo ? names[a] : all_files[a]) + ": every permutation of its samples gives the same CKA (a "
              "permutation-invariant layer, such as one-hot rows of distinct classes), so its p-values are 1");
  }
  if (result.dropped_samples) {
    warn(cfg, "the last " + std::to_string(result.dropped_samples) + " samples (a batch shorter than 4) were left out");
  }

  tool::matrix_view view;
  view.rows.assign(names.begin(), names.begin() + std::ptrdiff_t(row_count));
  view.cols = versus ? std::vector<std::string>(names.begin() + std::ptrdiff_t(row_count), names.end()) : view.rows;
  view.values = result.values;
  if (!cfg.pvalues.empty()) view.p_value = tests.p_value;
  if (cfg.ci > 0) {
    view.lower = tests.lower;
    view.upper = tests.upper;
  }
  view.precision = cfg.precision;
  view.vmin = cfg.vmin;
  view.vmax = cfg.vmax;
  view.unit_range = cfg.unit_range;
  const std::string estimator = cfg.minibatch ? "minibatch " + std::to_string(cfg.minibatch) + ", unbiased"
                                : cfg.debiased ? "debiased" : "biased";
  std::string bandwidth;
  if (rbf) {
    bandwidth = cfg.sigma > 0 ? "sigma = " + tool::number(cfg.sigma, 6)
                              : "sigma^2 = " + (cfg.sigma_fraction != 1.0 ? tool::number(cfg.sigma_fraction, 6) + "^2 x " : std::string()) +
                                    "median (" + cfg.rule + ")";
  }
  view.title = cfg.title.empty() ? (rbf ? "RBF CKA (" + bandwidth + "), " : std::string("linear CKA, ")) + estimator +
                                       ", n = " + std::to_string(n)
                                 : cfg.title;
  if (versus) {
    view.row_axis = axis_title(cfg.rows);
    view.col_axis = axis_title(cfg.cols);
  }
  view.meta["kernel"] = cfg.kernel;
  if (rbf) view.meta["bandwidth"] = bandwidth;
  view.meta["estimator"] = estimator;
  view.meta["n"] = n;
  nlohmann::json undefined = nlohmann::json::array();
  for (const auto& u : result.undefined) undefined.push_back({{"layer", names[u.layer]}, {"cause", u.cause}});
  view.meta["undefined"] = undefined;
  if (!cfg.pvalues.empty()) {
    view.meta["p_value_method"] = cfg.pvalues == "analytic" ? "analytic (exact permutation moments)"
                                                             : cfg.pvalues + " permutations, seed " + std::to_string(cfg.seed);
  }
  if (cfg.ci > 0) view.meta["interval"] = "jackknife, level " + tool::number(cfg.ci, 6);

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


#ifdef CKA_TOOL_MPI
/// Whether a launcher (mpirun, mpiexec, srun) started this process: then it joins MPI_COMM_WORLD.
bool under_launcher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

void finalize_mpi() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}
#endif

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
  if (under_launcher()) {
    MPI_Init(&argc, &argv);
    std::atexit(finalize_mpi);  // also after --help's exit
    team = std::make_unique<cka::mpi::team>(MPI_COMM_WORLD);
    world.rank = team->rank();
    world.size = team->size();
    world.team = team->size() > 1 ? team.get() : nullptr;
    world.mpi = world.team ? team.get() : nullptr;
    MPI_Comm here;  // the processes on this machine share its memory
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &here);
    MPI_Comm_size(here, &processes_here);
    MPI_Comm_free(&here);
  }
#endif
  // Every failure, whatever its source and on whichever process, ends as one line on stderr (from rank
  // 0) and exit status 2 on every process.
  std::exception_ptr error;
  int status = 2;
  try {
    status = run(argc, argv);
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
  if (world.speaker()) report(error);
  return 2;
}
