// cka-similarity: CKA between the layers of trained networks, from .npy activation dumps.
// See `cka-similarity --help` and docs/tutorial.md.
#include <cka/npy.hpp>
#include <cka/npy_map.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/state.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using cka::matrix;

const char* usage =
    "usage: cka-similarity [options] LAYER... [--vs LAYER...]\n"
    "       cka-similarity --demo [--svg FILE]\n"
    "\n"
    "Each LAYER is an .npy file of activations, shape (n, ...), float32 or float64; a directory stands for\n"
    "its .npy files in name order. Without --vs the layers are compared with each other (a square matrix);\n"
    "with --vs the first list gives the rows and the second the columns.\n"
    "The linear kernel without --minibatch streams the memory-mapped files through one accumulation state:\n"
    "exact CKA over all n rows in memory independent of n. The RBF kernel and --minibatch load the layers.\n"
    "\n"
    "  --kernel linear|rbf        kernel (default linear)\n"
    "  --sigma-fraction F         rbf: sigma^2 = F^2 * median squared distance (default 1)\n"
    "  --median-rule all-pairs|off-diagonal   which distances the median is over (default all-pairs)\n"
    "  --debiased                 unbiased HSIC estimator (debiased CKA)\n"
    "  --minibatch B              minibatch CKA over batches of B >= 4 samples (Nguyen et al. 2021)\n"
    "  --csv FILE                 write the CSV there instead of standard output\n"
    "  --json FILE                also write {\"rows\", \"columns\", \"values\"} as JSON\n"
    "  --svg FILE                 also write a heatmap as SVG\n"
    "  --threads N                threads for the matrix products\n"
    "  --chunk-rows N             linear streaming: rows read per chunk (default: about 32 MB of them)\n"
    "  --quiet                    no progress bar and no warnings\n"
    "  --demo                     compare the layers of two small seeded networks (writes cka-demo.svg)\n"
    "Exit status: 0 on success, 2 on bad usage or bad input (one line on stderr naming the file).\n";

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "cka-similarity: %s\n", message.c_str());
  std::exit(2);
}

struct config {
  std::vector<std::string> rows, cols;
  bool versus = false, quiet = false, demo = false, rbf = false;
  double sigma_fraction = 1.0;
  cka::median_rule rule = cka::median_rule::all_pairs;
  std::string csv, json, svg;
  Eigen::Index chunk_rows = 0;  // 0: automatic
  cka::similarity_matrix_options options;
};

double parse_number(const std::string& option, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v)) die(option + " needs a number, got '" + text + "'");
  return v;
}

config parse_arguments(int argc, char** argv) {
  config c;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) die(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (a == "--vs") {
      if (c.versus) die("--vs given twice");
      c.versus = true;
    } else if (a == "--kernel") {
      const std::string k = value(i);
      if (k == "linear") c.rbf = false;
      else if (k == "rbf") c.rbf = true;
      else die("--kernel must be linear or rbf, got '" + k + "'");
    } else if (a == "--sigma-fraction") {
      c.sigma_fraction = parse_number(a, value(i));
      if (!(c.sigma_fraction > 0)) die("--sigma-fraction must be positive");
    } else if (a == "--median-rule") {
      const std::string r = value(i);
      if (r == "all-pairs") c.rule = cka::median_rule::all_pairs;
      else if (r == "off-diagonal") c.rule = cka::median_rule::off_diagonal;
      else die("--median-rule must be all-pairs or off-diagonal, got '" + r + "'");
    } else if (a == "--debiased") {
      c.options.est = cka::estimator::unbiased;
    } else if (a == "--minibatch") {
      const double b = parse_number(a, value(i));
      if (b < 4 || b != std::floor(b) || b > 1e9) die("--minibatch must be an integer of at least 4");
      c.options.minibatch = Eigen::Index(b);
    } else if (a == "--threads") {
      const double t = parse_number(a, value(i));
      if (t < 1 || t != std::floor(t) || t > 4096) die("--threads must be a positive integer");
#ifdef _OPENMP
      omp_set_num_threads(int(t));
#endif
      Eigen::setNbThreads(int(t));
    } else if (a == "--chunk-rows") {
      const double r = parse_number(a, value(i));
      if (r < 1 || r != std::floor(r) || r > 1e12) die("--chunk-rows must be a positive integer");
      c.chunk_rows = Eigen::Index(r);
    } else if (a == "--csv") {
      c.csv = value(i);
    } else if (a == "--json") {
      c.json = value(i);
    } else if (a == "--svg") {
      c.svg = value(i);
    } else if (a == "--quiet") {
      c.quiet = true;
    } else if (a == "--demo") {
      c.demo = true;
    } else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
      die("unknown option " + a + " (see --help)");
    } else {
      (c.versus ? c.cols : c.rows).push_back(a);
    }
  }
  if (!c.demo && c.rows.empty()) die("no layers given (see --help)");
  if (c.versus && c.cols.empty()) die("--vs needs at least one layer after it");
  if (c.demo && !c.rows.empty()) die("--demo takes no layers");
  return c;
}

// Files named on the command line, a directory standing for its .npy files in name order.
std::vector<std::string> expand(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(a, ec))
        if (e.path().extension() == ".npy") found.push_back(e.path().string());
      if (found.empty()) die(a + ": directory holds no .npy files");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(a);
    }
  }
  return out;
}

struct layer_set {
  std::vector<std::string> names;
  std::vector<matrix<double>> values;
};

layer_set load(const std::vector<std::string>& files, Eigen::Index& n, std::string& first) {
  layer_set s;
  for (const auto& f : files) {
    cka::npy::array a;
    try {
      a = cka::npy::load(f);
    } catch (const cka::npy::error& e) {
      die(e.what());
    }
    if (first.empty()) {
      first = f;
      n = a.values.rows();
    } else if (a.values.rows() != n) {
      die(f + ": " + std::to_string(a.values.rows()) + " samples, but " + first + " has " + std::to_string(n));
    }
    for (Eigen::Index j = 0; j < a.values.cols(); ++j)
      for (Eigen::Index i = 0; i < a.values.rows(); ++i)
        if (!std::isfinite(a.values(i, j))) {
          die(f + ": NaN or infinity at sample " + std::to_string(i) + ", feature " + std::to_string(j));
        }
    s.names.push_back(fs::path(f).stem().string());
    s.values.push_back(std::move(a.values));
  }
  return s;
}

// One .npy layer, memory-mapped (cka/npy_map.hpp), whose rows are checked for NaN and infinity as read.
class mapped_layer {
 public:
  explicit mapped_layer(const std::string& path) : file_(open(path)) {}
  const std::string& path() const { return file_->path(); }
  Eigen::Index rows() const { return file_->rows(); }
  Eigen::Index cols() const { return file_->cols(); }
  template <class Dest>
  void read(Eigen::Index r0, Eigen::Index h, Dest&& dest) {
    file_->read(r0, h, dest);
    if (dest.allFinite()) return;
    for (Eigen::Index i = 0; i < h; ++i)
      for (Eigen::Index j = 0; j < dest.cols(); ++j)
        if (!std::isfinite(dest(i, j))) {
          die(path() + ": NaN or infinity at sample " + std::to_string(r0 + i) + ", feature " + std::to_string(j));
        }
  }

 private:
  static std::unique_ptr<cka::npy::mapped_file> open(const std::string& path) {
    try {
      return std::make_unique<cka::npy::mapped_file>(path);
    } catch (const cka::npy::error& e) {
      die(e.what());
    }
  }
  std::unique_ptr<cka::npy::mapped_file> file_;
};

// Linear CKA of all layers (rows, then columns) streamed through one layers_state. Returns the full
// (all × all) matrix, NaN on the rows and columns of layers with zero variance, and sets n.
matrix<double> stream_linear(const std::vector<std::string>& files, cka::estimator est, Eigen::Index chunk_rows,
                             const std::function<void(std::size_t, std::size_t)>& progress, Eigen::Index& n_out) {
  std::vector<std::unique_ptr<mapped_layer>> layers;
  std::vector<Eigen::Index> widths;
  for (const auto& f : files) {
    layers.push_back(std::make_unique<mapped_layer>(f));
    const mapped_layer& l = *layers.back();
    if (l.rows() != layers[0]->rows()) {
      die(f + ": " + std::to_string(l.rows()) + " samples, but " + layers[0]->path() + " has " +
          std::to_string(layers[0]->rows()));
    }
    if (l.cols() < 1) die(f + ": the layer has no features");
    widths.push_back(l.cols());
  }
  const Eigen::Index n = layers[0]->rows();
  n_out = n;
  if (n < cka::min_samples(est)) {
    die(files[0] + ": " + std::to_string(n) + " samples, but " +
        (est == cka::estimator::biased ? "CKA needs at least 2" : "the debiased estimator needs at least 4"));
  }
  Eigen::Index total_width = 0;
  for (Eigen::Index w : widths) total_width += w;
  // About 32 MB of chunk buffers in all: enough rows for the rank-h update to run at GEMM speed.
  const Eigen::Index automatic = std::max<Eigen::Index>(256, (Eigen::Index(1) << 22) / std::max<Eigen::Index>(total_width, 1));
  const Eigen::Index chunk = std::min(n, chunk_rows > 0 ? chunk_rows : automatic);
  using row_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  std::vector<row_matrix> buffers;
  for (Eigen::Index w : widths) buffers.emplace_back(chunk, w);
  cka::layers_state state(widths);
  const std::size_t steps = std::size_t((n + chunk - 1) / chunk);
  std::size_t step = 0;
  for (Eigen::Index r0 = 0; r0 < n; r0 += chunk) {
    const Eigen::Index h = std::min(chunk, n - r0);
    std::vector<Eigen::Ref<const row_matrix>> views;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      layers[l]->read(r0, h, buffers[l].topRows(h));
      views.emplace_back(buffers[l].topRows(h));
    }
    state.add(views);
    if (progress) progress(++step, steps);
  }
  return state.cka(est);
}

// Activations of two seeded tanh networks (different widths and seeds) on a fixed synthetic data set.
void demo_layers(layer_set& s) {
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
      s.names.push_back(std::string(net) + "_layer" + std::to_string(l + 1));
      s.values.push_back(h);
    }
  }
}

std::string number(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}

void write_csv(std::ostream& out, const layer_set& r, const layer_set& c, const matrix<double>& v) {
  for (const auto& name : c.names) out << ',' << name;
  out << '\n';
  for (Eigen::Index i = 0; i < v.rows(); ++i) {
    out << r.names[std::size_t(i)];
    for (Eigen::Index j = 0; j < v.cols(); ++j) out << ',' << number(v(i, j));
    out << '\n';
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

void write_json(std::ostream& out, const layer_set& r, const layer_set& c, const matrix<double>& v) {
  auto names = [&](const layer_set& s) {
    std::string t = "[";
    for (std::size_t i = 0; i < s.names.size(); ++i) t += (i ? ", " : "") + json_string(s.names[i]);
    return t + "]";
  };
  out << "{\n  \"rows\": " << names(r) << ",\n  \"columns\": " << names(c) << ",\n  \"values\": [";
  for (Eigen::Index i = 0; i < v.rows(); ++i) {
    out << (i ? ",\n    [" : "\n    [");
    for (Eigen::Index j = 0; j < v.cols(); ++j) out << (j ? ", " : "") << (std::isnan(v(i, j)) ? "null" : number(v(i, j)));
    out << ']';
  }
  out << "\n  ]\n}\n";
}

std::string xml_text(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else if (ch == '&') out += "&amp;";
    else if (ch == '"') out += "&quot;";
    else out += ch;
  }
  return out;
}

// Viridis-like colour for t in [0, 1].
std::string colour(double t) {
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::min(1.0, std::max(0.0, t)) * 4.0;
  const int k = std::min(3, int(t));
  const double f = t - k;
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(stops[k][0] + f * (stops[k + 1][0] - stops[k][0]) + 0.5),
                int(stops[k][1] + f * (stops[k + 1][1] - stops[k][1]) + 0.5),
                int(stops[k][2] + f * (stops[k + 1][2] - stops[k][2]) + 0.5));
  return buf;
}

void write_svg(std::ostream& out, const layer_set& r, const layer_set& c, const matrix<double>& v,
               const std::string& title) {
  const double cell = 44, left = 150, top = 150, legend_w = 110;
  double lo = 0.0;  // debiased CKA can be negative: the scale then starts below 0
  for (Eigen::Index i = 0; i < v.size(); ++i)
    if (std::isfinite(v.data()[i])) lo = std::min(lo, v.data()[i]);
  const double width = left + cell * double(v.cols()) + legend_w, height = top + cell * double(v.rows()) + 30;
  const bool labels = v.rows() <= 30 && v.cols() <= 30;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << std::max(height, top + 260)
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  out << "<title>" << xml_text(title) << "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out << "<text x=\"10\" y=\"20\" font-size=\"14\">" << xml_text(title) << "</text>\n";
  for (Eigen::Index j = 0; j < v.cols(); ++j) {
    const double x = left + cell * (double(j) + 0.5);
    out << "<text x=\"" << x << "\" y=\"" << top - 6 << "\" transform=\"rotate(-60 " << x << ' ' << top - 6
        << ")\">" << xml_text(c.names[std::size_t(j)]) << "</text>\n";
  }
  for (Eigen::Index i = 0; i < v.rows(); ++i) {
    const double y = top + cell * (double(i) + 0.5);
    out << "<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
        << xml_text(r.names[std::size_t(i)]) << "</text>\n";
    for (Eigen::Index j = 0; j < v.cols(); ++j) {
      const double value = v(i, j), x = left + cell * double(j), yy = top + cell * double(i);
      const double t = std::isnan(value) ? 0 : (value - lo) / (1.0 - lo);
      out << "<rect class=\"cell\" x=\"" << x << "\" y=\"" << yy << "\" width=\"" << cell << "\" height=\"" << cell
          << "\" fill=\"" << (std::isnan(value) ? "#cccccc" : colour(t)) << "\"><title>"
          << xml_text(r.names[std::size_t(i)] + " vs " + c.names[std::size_t(j)] + ": " + number(value))
          << "</title></rect>\n";
      if (labels) {
        char buf[16];
        std::snprintf(buf, sizeof buf, std::isnan(value) ? "nan" : "%.2f", value);
        out << "<text x=\"" << x + cell / 2 << "\" y=\"" << yy + cell / 2 + 4 << "\" text-anchor=\"middle\" fill=\""
            << (t > 0.6 ? "black" : "white") << "\">" << buf << "</text>\n";
      }
    }
  }
  // Legend: a colour bar from lo to 1 with five ticks.
  const double lx = left + cell * double(v.cols()) + 30, bar_h = 200;
  for (int k = 0; k < 50; ++k) {
    out << "<rect x=\"" << lx << "\" y=\"" << top + bar_h * (1 - (k + 1) / 50.0) << "\" width=\"16\" height=\""
        << bar_h / 50 + 0.5 << "\" fill=\"" << colour((k + 0.5) / 50) << "\"/>\n";
  }
  for (int k = 0; k <= 4; ++k) {
    const double value = lo + (1.0 - lo) * k / 4.0;
    out << "<text x=\"" << lx + 22 << "\" y=\"" << top + bar_h * (1 - k / 4.0) + 4 << "\">" << number(std::round(value * 100) / 100)
        << "</text>\n";
  }
  out << "<text x=\"" << lx << "\" y=\"" << top - 12 << "\">CKA</text>\n</svg>\n";
}

template <class F>
void write_file(const std::string& path, F writer) {
  std::ofstream out(path);
  if (!out) die(path + ": cannot open for writing");
  writer(out);
  if (!out) die(path + ": write failed");
}

}  // namespace

int main(int argc, char** argv) {
  config cfg = parse_arguments(argc, argv);
  layer_set rows, cols;
  Eigen::Index n = 0;
  // The linear kernel without a minibatch streams the files; everything else loads them.
  const bool streaming = !cfg.demo && !cfg.rbf && cfg.options.minibatch == 0;
  std::vector<std::string> row_files, col_files;
  if (cfg.demo) {
    demo_layers(rows);
    n = rows.values[0].rows();
    if (cfg.svg.empty()) cfg.svg = "cka-demo.svg";
  } else if (streaming) {
    row_files = expand(cfg.rows);
    if (cfg.versus) col_files = expand(cfg.cols);
    for (const auto& f : row_files) rows.names.push_back(fs::path(f).stem().string());
    for (const auto& f : col_files) cols.names.push_back(fs::path(f).stem().string());
  } else {
    std::string first;
    rows = load(expand(cfg.rows), n, first);
    if (cfg.versus) cols = load(expand(cfg.cols), n, first);
  }
  const layer_set& col_set = cfg.versus ? cols : rows;
  const cka::rbf_kernel rbf = cka::rbf_kernel::median(cfg.sigma_fraction, cfg.rule);
  if (!streaming) {
    const double work_bytes =
        cfg.rbf ? (cfg.versus ? cka::similarity_matrix_bytes(rows.values, cols.values, rbf, cfg.options)
                              : cka::similarity_matrix_bytes(rows.values, rbf, cfg.options))
                : (cfg.versus ? cka::similarity_matrix_bytes(rows.values, cols.values, cka::linear_kernel{}, cfg.options)
                              : cka::similarity_matrix_bytes(rows.values, cka::linear_kernel{}, cfg.options));
    if (work_bytes > 16e9) {
      std::ostringstream msg;
      msg << "n = " << n << " would need " << work_bytes / 1e9 << " GB of Gram matrices; use --minibatch (e.g. --minibatch 1024)";
      die(msg.str());
    }
  }

  // A progress bar on a terminal, once the work has run for a second.
  const bool bar = !cfg.quiet && isatty(2);
  const auto start = std::chrono::steady_clock::now();
  bool drawn = false;
  if (bar) {
    cfg.options.progress = [&](std::size_t done, std::size_t total) {
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
  try {
    if (streaming) {
      std::vector<std::string> all = row_files;
      all.insert(all.end(), col_files.begin(), col_files.end());
      const matrix<double> full = stream_linear(all, cfg.options.est, cfg.chunk_rows, cfg.options.progress, n);
      const Eigen::Index col0 = cfg.versus ? Eigen::Index(row_files.size()) : 0;
      const Eigen::Index ncols = cfg.versus ? Eigen::Index(col_files.size()) : Eigen::Index(row_files.size());
      result.values = full.block(0, col0, Eigen::Index(row_files.size()), ncols);
      for (Eigen::Index a = 0; a < full.rows(); ++a)
        if (std::isnan(full(a, a))) result.undefined.push_back({std::size_t(a), "zero variance (all samples equal)"});
    } else if (cfg.rbf) {
      result = cfg.versus ? cka::similarity_matrix(rows.values, cols.values, rbf, cfg.options)
                          : cka::similarity_matrix(rows.values, rbf, cfg.options);
    } else {
      result = cfg.versus ? cka::similarity_matrix(rows.values, cols.values, cka::linear_kernel{}, cfg.options)
                          : cka::similarity_matrix(rows.values, cka::linear_kernel{}, cfg.options);
    }
  } catch (const std::exception& e) {
    die(e.what());
  }
  if (drawn) std::fprintf(stderr, "\r%*s\r", 50, "");
  if (!cfg.quiet) {
    for (const auto& u : result.undefined) {
      const std::string& name = u.layer < rows.names.size() ? rows.names[u.layer] : cols.names[u.layer - rows.names.size()];
      std::fprintf(stderr, "cka-similarity: warning: layer %s: %s; its cells are nan\n", name.c_str(), u.cause.c_str());
    }
    if (result.dropped_samples) {
      std::fprintf(stderr, "cka-similarity: warning: the last %ld samples (a batch shorter than 4) were left out\n",
                   long(result.dropped_samples));
    }
  }

  if (cfg.csv.empty()) {
    write_csv(std::cout, rows, col_set, result.values);
  } else {
    write_file(cfg.csv, [&](std::ostream& o) { write_csv(o, rows, col_set, result.values); });
  }
  if (!cfg.json.empty()) write_file(cfg.json, [&](std::ostream& o) { write_json(o, rows, col_set, result.values); });
  if (!cfg.svg.empty()) {
    std::string title = std::string(cfg.rbf ? "RBF" : "linear") + " CKA" +
                        (cfg.options.est == cka::estimator::unbiased ? " (debiased)" : "") +
                        (cfg.options.minibatch ? ", minibatch " + std::to_string(cfg.options.minibatch) : "") +
                        ", n = " + std::to_string(n);
    write_file(cfg.svg, [&](std::ostream& o) { write_svg(o, rows, col_set, result.values, title); });
    if (cfg.demo && !cfg.quiet) std::fprintf(stderr, "cka-similarity: heatmap written to %s\n", cfg.svg.c_str());
  }
  return 0;
}
