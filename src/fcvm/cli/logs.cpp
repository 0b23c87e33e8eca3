// fcvm logs [-f] [--tail N] [--timestamps] [--console] NAME
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

// Prints complete lines of `chunk` (a partial last line stays in `carry`).
class Printer {
 public:
  Printer(const LogsArgs& a) : m_args(a) {}
  void lines(std::string& carry, std::string_view chunk, std::deque<std::string>* keep_last,
             size_t keep_n) {
    carry.append(chunk);
    size_t start = 0;
    for (;;) {
      auto nl = carry.find('\n', start);
      if (nl == std::string::npos) break;
      auto line = carry.substr(start, nl - start);
      start = nl + 1;
      if (keep_last) {
        keep_last->push_back(std::move(line));
        if (keep_last->size() > keep_n) keep_last->pop_front();
      } else {
        print(line);
      }
    }
    carry.erase(0, start);
  }
  void print(const std::string& line) {
    if (m_args.console) {
      (void)write_all(1, line + "\n");
      return;
    }
    auto rec = vm::parse_log_line(line);
    if (!rec) return;
    int fd = rec->stream == vm::LogStream::kStdout ? 1 : 2;
    bool& at_start = m_at_line_start[fd - 1];
    std::string out;
    if (m_args.timestamps && at_start) out += rec->time + " ";
    out += rec->text;
    if (!rec->partial) out += "\n";
    at_start = !rec->partial;
    (void)write_all(fd, out);
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
  return {
      cmd, [args]() -> int {
        std::optional<size_t> tail;
        if (args->tail != "all") {
          auto n = parse_int(args->tail, 0, 100000000);
          if (!n) {
            return report_error(Error(ErrorCode::kInvalidInput,
                                      fmt::format("logs: invalid --tail \"{}\": expected a "
                                                  "number or \"all\"",
                                                  args->tail)));
          }
          tail = static_cast<size_t>(*n);
        }
        Session s;
        if (auto r = open_session(s); !r) return report_error(r.error().wrap("logs"));
        auto rec = resolve(s, args->ref);
        if (!rec) return report_error(rec.error().wrap("logs"));
        auto path = rec->dir + (args->console ? "/console.log" : "/container.log");
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        Printer printer(*args);
        std::string carry;
        std::deque<std::string> last;
        char buf[65536];
        // 1. What is there now (only the last N lines with --tail).
        if (fd) {
          for (;;) {
            ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n <= 0) break;
            printer.lines(carry, std::string_view(buf, static_cast<size_t>(n)),
                          tail ? &last : nullptr, tail.value_or(0));
          }
          for (const auto& l : last) printer.print(l);
        }
        // 2. With -f, what comes while the VM runs.
        while (args->follow) {
          if (!fd) fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
          ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf) : 0;
          if (n > 0) {
            printer.lines(carry, std::string_view(buf, static_cast<size_t>(n)), nullptr, 0);
            continue;
          }
          auto current = s.store->get(rec->id);
          if (!current || !*current || !vm::is_active(**current) || !(**current).monitor.alive()) {
            // One last read: the monitor flushes before it ends.
            while (fd && (n = ::read(fd.get(), buf, sizeof buf)) > 0) {
              printer.lines(carry, std::string_view(buf, static_cast<size_t>(n)), nullptr, 0);
            }
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return k_exit_ok;
      }};
}

}  // namespace fcvm::cli
