#pragma once
// cka-similarity: writes that never lose output quietly — every output staged beside its path before the
// work, and committed only when the whole run has succeeded.

#include "layers.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tool {

namespace detail {
/// Writes all of `content` to fd (retrying short writes); false with errno set on failure.
inline bool write_all(int fd, const std::string& content) {
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += std::size_t(w);
  }
  return true;
}
}  // namespace detail

/// The run's outputs, staged so that a failed run leaves none behind and a path that cannot be written is
/// found before any computing:
/// - `reserve(path)` (before the work) creates an empty temporary file beside `path` (mode 0666 less the
///   umask), or, for a path that exists and is not a regular file (a FIFO, /dev/stdout, /dev/full), checks
///   that it can be opened for writing; a directory or a missing or read-only directory throws failure.
/// - `put(path, content)` (after the work) writes and closes the temporary file, every write checked;
///   standard output's content (`put_stdout`) is held.
/// - `commit()` (once every process has agreed that the run succeeded) renames the temporary files over
///   their paths, writes the special files in place, and prints standard output's content.
/// Whatever is not committed is removed when the object is destroyed. Errors throw tool::failure naming
/// the path and the system's reason.
class staged_outputs {
 public:
  staged_outputs() = default;
  staged_outputs(const staged_outputs&) = delete;
  staged_outputs& operator=(const staged_outputs&) = delete;
  ~staged_outputs() { discard(); }

  void reserve(const std::string& path) {
    if (path.empty() || find(path) != nullptr) return;
    entry e;
    e.path = path;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      if (S_ISDIR(st.st_mode)) throw failure(path + ": is a directory");
      const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd < 0 && errno != ENXIO) fail(path, "cannot open for writing");  // ENXIO: a FIFO with no reader yet
      if (fd >= 0) ::close(fd);
      e.in_place = true;
    } else {
      const std::filesystem::path target(path);
      const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
      e.temp = (std::filesystem::path(dir) / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
      const int fd = ::mkstemp(e.temp.data());
      if (fd < 0) fail(path, "cannot create a file in " + dir);
      const mode_t mask = ::umask(0);
      ::umask(mask);
      ::fchmod(fd, 0666 & ~mask);
      ::close(fd);
    }
    entries_.push_back(e);
  }

  void put(const std::string& path, std::string content) {
    reserve(path);
    entry& e = *find(path);
    if (e.in_place) {
      e.content = std::move(content);
      return;
    }
    const int fd = ::open(e.temp.c_str(), O_WRONLY | O_TRUNC);
    if (fd < 0) fail(path, "cannot write its temporary file");
    const bool ok = detail::write_all(fd, content);
    int saved = errno;
    const bool closed = ::close(fd) == 0;
    if (!ok || !closed) {
      if (ok) saved = errno;
      errno = saved;
      fail(path, "write failed");
    }
  }
  void put_stdout(std::string content) {
    stdout_ = std::move(content);
    has_stdout_ = true;
  }

  void commit() {
    for (entry& e : entries_) {
      if (e.in_place) {
        const int fd = ::open(e.path.c_str(), O_WRONLY | O_TRUNC);
        if (fd < 0) fail(e.path, "cannot open for writing");
        const bool ok = detail::write_all(fd, e.content);
        const int saved = errno;
        if (::close(fd) != 0 || !ok) {
          if (!ok) errno = saved;
          fail(e.path, "write failed");
        }
      } else if (::rename(e.temp.c_str(), e.path.c_str()) != 0) {
        fail(e.path, "cannot replace the file");
      } else {
        e.temp.clear();
      }
    }
    if (has_stdout_) {
      if ((!stdout_.empty() && std::fwrite(stdout_.data(), 1, stdout_.size(), stdout) != stdout_.size()) ||
          std::fflush(stdout) != 0 || std::ferror(stdout)) {
        throw failure(std::string("standard output: write failed (") + std::strerror(errno) + ")");
      }
    }
  }

  /// Removes the temporary files not yet committed.
  void discard() {
    for (entry& e : entries_)
      if (!e.temp.empty()) ::unlink(e.temp.c_str());
    entries_.clear();
  }

 private:
  struct entry {
    std::string path, temp, content;
    bool in_place = false;
  };
  entry* find(const std::string& path) {
    for (entry& e : entries_)
      if (e.path == path) return &e;
    return nullptr;
  }
  [[noreturn]] static void fail(const std::string& path, const std::string& what) {
    throw failure(path + ": " + what + " (" + std::strerror(errno) + ")");
  }
  std::vector<entry> entries_;
  std::string stdout_;
  bool has_stdout_ = false;
};

}  // namespace tool
