#pragma once
// cka-similarity: which files are the layers, in which order, under which names.

#include <cka/npy_map.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tool {

/// A failure the tool reports as one line and exit status 2.
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Natural (number-aware) order: runs of digits compare by value, so layer_2 < layer_10; ties (leading
/// zeros) fall back to the plain text order, which keeps the order total.
inline bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    const bool db = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (da && db) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::size_t is = i, js = j;  // skip leading zeros, then longer means larger
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;
}

/// An array of an .npz archive is named like a file inside it: "archive.npz/name.npy". Splits such a
/// path (the first component ending in .npz that is a regular file) into archive and array name.
inline bool split_npz(const std::string& path, std::string& archive, std::string& member) {
  namespace fs = std::filesystem;
  for (std::size_t at = path.find(".npz/"); at != std::string::npos; at = path.find(".npz/", at + 1)) {
    std::error_code ec;
    const std::string a = path.substr(0, at + 4);
    if (!fs::is_regular_file(a, ec)) continue;
    archive = a;
    member = path.substr(at + 5);
    if (member.size() > 4 && member.compare(member.size() - 4, 4, ".npy") == 0) member.resize(member.size() - 4);
    return true;
  }
  return false;
}

/// The arrays of an .npz archive as "archive.npz/name.npy" paths, in archive order.
inline std::vector<std::string> npz_layers(const std::string& archive) {
  std::vector<std::string> out;
  try {
    for (const auto& name : cka::npy::mapped_file::archive_members(archive)) out.push_back(archive + "/" + name + ".npy");
  } catch (const cka::npy::error& e) {
    throw failure(e.what());
  }
  if (out.empty()) throw failure(archive + ": the archive holds no arrays");
  return out;
}

/// The layer files named on the command line: a directory stands for the regular .npy and .npz files in
/// it (and, with `recursive`, in its subdirectories) in natural order of their paths; an .npz archive
/// for its arrays in archive order; anything else is taken as a file (opening it checks that it is a
/// regular .npy file).
inline std::vector<std::string> expand(const std::vector<std::string>& args, bool recursive) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  auto is_npz = [](const fs::path& p) {
    std::error_code ec;
    return p.extension() == ".npz" && fs::is_regular_file(p, ec);
  };
  for (const auto& a : args) {
    std::error_code ec;
    if (!fs::is_directory(a, ec)) {
      if (is_npz(a)) {
        const auto arrays = npz_layers(a);
        out.insert(out.end(), arrays.begin(), arrays.end());
      } else {
        out.push_back(a);
      }
      continue;
    }
    std::vector<std::string> found;
    auto take = [&](const fs::directory_entry& e) {
      std::error_code ec2;
      const auto ext = e.path().extension();
      if ((ext == ".npy" || ext == ".npz") && e.is_regular_file(ec2)) found.push_back(e.path().string());
    };
    if (recursive) {
      for (auto it = fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        take(*it);
    } else {
      for (auto it = fs::directory_iterator(a, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) take(*it);
    }
    if (ec) throw failure(a + ": cannot list the directory (" + ec.message() + ")");
    if (found.empty()) throw failure(a + ": the directory holds no .npy or .npz files" + (recursive ? "" : " (--recursive looks in subdirectories)"));
    std::sort(found.begin(), found.end(), natural_less);
    for (const auto& f : found) {
      if (is_npz(f)) {
        const auto arrays = npz_layers(f);
        out.insert(out.end(), arrays.begin(), arrays.end());
      } else {
        out.push_back(f);
      }
    }
  }
  return out;
}

/// Reorders the layer lists by an order file: one layer name (file stem) or path per line, blank lines and
/// lines starting with # ignored. Each list (`rows`, and `cols` for a --vs run) takes the order of its
/// layers' lines; every layer must be listed exactly once, and every line must name a layer.
inline void apply_order(const std::string& order_path, std::vector<std::string>& rows, std::vector<std::string>& cols) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(order_path, ec)) throw failure(order_path + ": is a directory, not an order file (one layer name per line)");
  std::ifstream in(order_path);
  if (!in) throw failure(order_path + ": cannot open the order file");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  std::vector<bool> line_used(lines.size(), false);
  auto reorder = [&](std::vector<std::string>& files) {
    std::vector<std::string> out;
    std::vector<bool> used(files.size(), false);
    for (std::size_t k = 0; k < lines.size(); ++k) {
      std::size_t match = files.size();
      for (std::size_t i = 0; i < files.size(); ++i) {
        if (fs::path(files[i]).stem().string() != lines[k] && files[i] != lines[k]) continue;
        if (match != files.size()) throw failure(order_path + ": '" + lines[k] + "' matches more than one layer; give its path");
        match = i;
      }
      if (match == files.size()) continue;
      if (used[match]) throw failure(order_path + ": '" + lines[k] + "' is listed twice");
      used[match] = line_used[k] = true;
      out.push_back(files[match]);
    }
    for (std::size_t i = 0; i < files.size(); ++i)
      if (!used[i]) throw failure(order_path + ": does not list the layer " + files[i]);
    files = out;
  };
  reorder(rows);
  reorder(cols);
  for (std::size_t k = 0; k < lines.size(); ++k)
    if (!line_used[k]) throw failure(order_path + ": '" + lines[k] + "' is not one of the layers");
}

/// Display names: each file's stem; where stems repeat, every file is labelled with the same number of
/// trailing path components — the fewest that tell the files with a common stem apart (dirA/layer and
/// dirB/layer, and then dirA/other too, so that the labels read alike). `renamed` receives one note.
inline std::vector<std::string> display_names(const std::vector<std::string>& files, std::vector<std::string>& renamed) {
  namespace fs = std::filesystem;
  std::vector<std::vector<std::string>> parts;  // path components, last first, the file as its stem
  for (const auto& f : files) {
    const fs::path p = fs::absolute(fs::path(f)).lexically_normal();
    std::vector<std::string> c{p.stem().string()};
    for (fs::path q = p.parent_path(); !q.empty() && q != q.root_path(); q = q.parent_path()) c.push_back(q.filename().string());
    parts.push_back(c);
  }
  auto label = [&](std::size_t i, std::size_t depth) {
    std::string name = parts[i][0];
    for (std::size_t k = 1; k < depth && k < parts[i].size(); ++k) name = parts[i][k] + "/" + name;
    return name;
  };
  // The depth at which the files with a common stem (other than the same file twice) are told apart.
  std::size_t depth = 1;
  std::string example;
  for (std::size_t i = 0; i < files.size(); ++i)
    for (std::size_t j = i + 1; j < files.size(); ++j) {
      if (parts[j][0] != parts[i][0] || parts[j] == parts[i]) continue;
      if (example.empty()) example = parts[i][0];
      std::size_t d = 1;
      while (label(i, d) == label(j, d) && (d < parts[i].size() || d < parts[j].size())) ++d;
      depth = std::max(depth, d);
    }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < files.size(); ++i) names.push_back(label(i, depth));
  if (depth > 1) {
    renamed.push_back("more than one layer is named " + example + ": every layer is labelled with its last " +
                      std::to_string(depth - 1) + (depth == 2 ? " directory" : " directories") + " (" + names.front() + ", …)");
  }
  return names;
}

}  // namespace tool
