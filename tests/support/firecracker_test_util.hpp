#pragma once
// Helpers shared by the Firecracker tests: a temporary directory, scoped environment variables,
// the spec (or a skip), and small files standing in for kernel, initrd and disks.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/fs.hpp"
#include "support/firecracker_spec.hpp"

namespace fcvm::testing {

// A fresh directory under /tmp (short paths: Unix socket paths are limited to 107 bytes).
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/fcvm-fc-XXXXXX";
    if (::mkdtemp(templ) != nullptr) m_path = templ;
  }
  ~TempDir() {
    if (!m_path.empty()) (void)remove_all(m_path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }
  std::string file(const std::string& name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

// Sets (or, with nullopt, unsets) an environment variable; restores the old value on scope exit.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value) : m_name(std::move(name)) {
    if (const char* old = ::getenv(m_name.c_str())) m_old = old;
    if (value) {
      ::setenv(m_name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(m_name.c_str());
    }
  }
  ~ScopedEnv() {
    if (m_old) {
      ::setenv(m_name.c_str(), m_old->c_str(), 1);
    } else {
      ::unsetenv(m_name.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string m_name;
  std::optional<std::string> m_old;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A file that starts like an ELF vmlinux (enough for the checks before Firecracker).
inline void write_dummy_kernel(const std::string& path) {
  write_text(path, std::string("\x7f"
                               "ELF",
                               4) +
                       std::string(60, '\0'));
}

inline std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return lines;
}

// Paths of the Unix sockets under dir (recursively).
inline std::vector<std::string> sockets_in(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;  // the error_code overloads do not throw
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_socket(ec)) found.push_back(it->path().string());
  }
  return found;
}

inline std::string spec_missing_reason(const std::string& source_dir) {
  return "Firecracker's API spec is not on this machine (looked for " +
         expected_spec_file(source_dir) +
         "; set FCVM_SHARED_DIR to the directory that holds firecracker-api/)";
}

inline bool pid_gone(pid_t pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace fcvm::testing

// Loads the spec into `var` or skips the test with the reason.
#define FCVM_LOAD_SPEC_OR_SKIP(var)                                                        \
  auto var##_path_ = ::fcvm::testing::find_spec_file(FCVM_SOURCE_DIR);                     \
  if (!var##_path_) GTEST_SKIP() << ::fcvm::testing::spec_missing_reason(FCVM_SOURCE_DIR); \
  auto var##_loaded_ = ::fcvm::testing::FirecrackerSpec::load(*var##_path_);               \
  ASSERT_TRUE(var##_loaded_) << var##_loaded_.error().to_string();                         \
  const ::fcvm::testing::FirecrackerSpec& var = *var##_loaded_
