#include "fcvm/sys/command_runner.hpp"

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::sys {

Result<std::string> RealCommandRunner::run(const std::vector<std::string>& argv, pid_t ns_pid) {
  FCVM_LOG(kDebug, "cmd", "{}{}", ns_pid ? fmt::format("[ns {}] ", ns_pid) : "", join(argv, " "));
  return run_checked(argv, std::chrono::seconds(60), ns_pid);
}

Result<CommandOutput> RealCommandRunner::capture(const std::vector<std::string>& argv,
                                                 pid_t ns_pid) {
  FCVM_LOG(kDebug, "cmd", "{}{}", ns_pid ? fmt::format("[ns {}] ", ns_pid) : "", join(argv, " "));
  return run_capture(argv, std::chrono::seconds(60), ns_pid);
}

Result<CommandOutput> CommandRunner::capture(const std::vector<std::string>& argv, pid_t ns_pid) {
  auto out = run(argv, ns_pid);
  if (out) return CommandOutput{ExitStatus{true, 0}, *out, {}};
  return CommandOutput{ExitStatus{true, 1}, {}, out.error().message()};
}

CommandRunner& default_runner() {
  static RealCommandRunner runner;
  return runner;
}

}  // namespace fcvm::sys
