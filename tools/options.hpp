#pragma once
// cka-similarity: the command line — what the tool is for (--help), the options it takes, and their
// parsing and checks (bad usage throws tool::failure).

#include "layers.hpp"
#include "render.hpp"

#include <cka/version.hpp>

#include <CLI/CLI.hpp>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace tool {

inline const char* const description =
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
    "Exit status: 0 on success; 2 on bad usage, bad input or a failed write (one line on stderr naming the file);\n"
    "stopped by Ctrl-C or SIGTERM: that signal (130 in a shell), no output written.\n";

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

/// A byte count with an optional K, M, G or T suffix (powers of 1024). Throws failure.
inline double parse_bytes(const std::string& text) {
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

/// Parses the command line; exits 0 after --help or --version, throws failure on bad usage.
inline config parse_arguments(int argc, char** argv) {
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

}  // namespace tool
