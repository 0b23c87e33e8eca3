#include "scratch.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fcvm/util/fs.hpp"

namespace fcvm::test {
namespace {

struct Scratch {
  std::string dir;
  pid_t owner = ::getpid();
  Scratch() {
    std::string base = testing::TempDir();
    if (!base.empty() && base.back() == '/') base.pop_back();
    std::string tmpl = base + "/fcvm-unit.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      std::perror("fcvm unit tests: mkdtemp");
      std::abort();
    }
    dir = buf.data();
  }
  // A child forked by a test exits without touching its parent's directory.
  ~Scratch() {
    if (::getpid() == owner) (void)remove_all(dir);
  }
};

}  // namespace

const std::string& scratch_dir() {
  static Scratch scratch;
  return scratch.dir;
}

std::string scratch_path(const std::string& prefix) {
  static std::atomic<int> n{0};
  return scratch_dir() + "/" + prefix + "-" + std::to_string(n++);
}

}  // namespace fcvm::test
