// fcvm logs [-f] [--tail N] [--timestamps] [--console] NAME
#include "fcvm/vm/logs.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <thread>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/container_log.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {
namespace {

struct LogsArgs {
  std::string ref;
  bool follow = false;
  std::string tail = "all";
  bool timestamps = false;
  bool console = false;
};

// Prints a log line as the user asked (stdout or stderr, timestamps).
class Printer {
 public:
  Printer(const LogsArgs& a) : m_args(a) {}
  bool print(const std::string& line) {
    if (m_args.console) return write_all(1, line + "\n").has_value();
    auto rec = vm::parse_log_line(line);
    if (!rec) return true;
    int fd = rec->stream == vm::LogStream::kStdout ? 1 : 2;
    bool& at_start = m_at_line_start[fd - 1];
    std::string out;
    if (m_args.timestamps && at_start) out += rec->time + " ";
    out += rec->text;
    if (!rec->partial) out += "\n";
    at_start = !rec->partial;
    // A reader that went away (a closed pipe) ends the command.
    return write_all(fd, out).has_value();
  }

 private:
  const LogsArgs& m_args;
  bool m_at_line_start[2] = {true, true};
};

}  // namespace

Command add_logs(CLI::App& app) {
  auto args = std::make_shared<LogsArgs>();
  auto* cmd = app.add_subcommand("logs", "Show a VM's container output (or its serial console)");
  cmd->add_option("vm", args->ref, "VM name or id")->required();
  cmd->add_flag("-f,--follow", args->follow, "Keep printing new output until the VM ends");
  cmd->add_option("--tail", args->tail, "Only the last N lines (default: all)");
  cmd->add_flag("-t,--timestamps", args->timestamps, "Prefix each line with its time (RFC 3339)");
  cmd->add_flag("--console", args->console, "Show the guest's serial console instead");
  return {cmd, [args]() -> int {
            auto tail = vm::parse_tail(args->tail, "--tail");
            if (!tail) return report_error(tail.error().wrap("logs"));
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("logs"));
            auto rec = resolve(s, args->ref);
            if (!rec) return report_error(rec.error().wrap("logs"));
            Printer printer(*args);
            auto read = vm::read_logs(*s.store, *rec, {*tail, args->follow, args->console},
                                      [&](const std::string& line) { return printer.print(line); });
            if (!read) return report_error(read.error().wrap("logs"));
            return k_exit_ok;
          }};
}

}  // namespace fcvm::cli
