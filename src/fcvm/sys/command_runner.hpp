#pragma once
// CommandRunner: the seam through which modules run external helpers (ip, qemu-img, nft, ...).
// Production code uses the real runner; unit tests substitute a recorder to check exact argv.
#include <sys/types.h>

#include <string>
#include <vector>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::sys {

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv (inside the namespaces of ns_pid when non-zero); stdout on success, an error naming
  // the command with its stderr otherwise.
  virtual Result<std::string> run(const std::vector<std::string>& argv, pid_t ns_pid = 0) = 0;
  // Runs argv to its end and returns its exit status, stdout and stderr; fails only when it
  // cannot be started or runs out of time. What the status and output mean is the caller's
  // decision. The default serves runners that only record run(): its error text is the stderr.
  virtual Result<CommandOutput> capture(const std::vector<std::string>& argv, pid_t ns_pid = 0);
};

class RealCommandRunner final : public CommandRunner {
 public:
  Result<std::string> run(const std::vector<std::string>& argv, pid_t ns_pid = 0) override;
  Result<CommandOutput> capture(const std::vector<std::string>& argv, pid_t ns_pid = 0) override;
};

// Process-wide default runner (the real one).
CommandRunner& default_runner();

}  // namespace fcvm::sys
