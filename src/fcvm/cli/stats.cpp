// fcvm stats [--no-stream] [--json] [VM...]   fcvm top VM
#include "fcvm/vm/stats.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/top.hpp"

namespace fcvm::cli {
namespace {

struct Row {
  state::VmRecord rec;
  vm::VmSample sample;
  double cpu = 0;
};

nlohmann::json row_json(const Row& r) {
  const auto& s = r.sample;
  return {{"id", r.rec.id},
          {"name", r.rec.name},
          {"cpu_percent", r.cpu},
          {"mem_bytes", s.rss_bytes},
          {"mem_limit_bytes", s.mem_limit_bytes},
          {"net_rx_bytes", s.net_rx_bytes},
          {"net_tx_bytes", s.net_tx_bytes},
          {"block_read_bytes", s.block_read_bytes},
          {"block_write_bytes", s.block_write_bytes}};
}

std::string table(const std::vector<Row>& rows) {
  std::string out = fmt::format("{:<20} {:<12} {:>7} {:>21} {:>6} {:>21} {:>21}\n", "NAME", "ID",
                                "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O");
  for (const auto& r : rows) {
    const auto& s = r.sample;
    double mem_pct = s.mem_limit_bytes > 0 ? 100.0 * static_cast<double>(s.rss_bytes) /
                                                 static_cast<double>(s.mem_limit_bytes)
                                           : 0;
    out += fmt::format(
        "{:<20} {:<12} {:>6.1f}% {:>21} {:>5.1f}% {:>21} {:>21}\n", r.rec.name,
        r.rec.id.substr(0, 12), r.cpu,
        fmt::format("{} / {}", human_size(s.rss_bytes), human_size(s.mem_limit_bytes)), mem_pct,
        fmt::format("{} / {}", human_size(s.net_rx_bytes), human_size(s.net_tx_bytes)),
        fmt::format("{} / {}", human_size(s.block_read_bytes), human_size(s.block_write_bytes)));
  }
  return out;
}

}  // namespace

Command add_stats(CLI::App& app) {
  struct Args {
    std::vector<std::string> refs;
    bool no_stream = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "stats",
      "What running VMs cost the host, from their VMM: CPU, memory (resident / the guest's RAM), "
      "network (received / sent by the guest) and disk I/O (read / written); every second "
      "until interrupted, or once with --no-stream");
  cmd->add_option("vm", args->refs, "VM names or ids (default: every running VM)");
  cmd->add_flag("--no-stream", args->no_stream, "Print one sample and exit");
  cmd->add_flag("--json", args->json, "Print JSON (an array per sample)");
  return {cmd, [args]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("stats"));
            std::vector<state::VmRecord> vms;
            if (args->refs.empty()) {
              auto all = vm::list_vms(*s.store);
              if (!all) return report_error(all.error().wrap("stats"));
              for (auto& r : *all) {
                if (vm::is_active(r)) vms.push_back(std::move(r));
              }
            } else {
              for (const auto& ref : args->refs) {
                auto rec = resolve(s, ref);
                if (!rec) return report_error(rec.error().wrap("stats"));
                vms.push_back(*rec);
              }
            }
            std::map<std::string, vm::VmSample> before;
            bool terminal = ::isatty(STDOUT_FILENO) != 0;
            for (;;) {
              std::vector<Row> rows;
              for (const auto& rec : vms) {
                auto sample = vm::sample_vm(rec);
                if (!sample) {
                  // A VM named on the command line must run; one that ended meanwhile drops out.
                  if (!args->refs.empty()) return report_error(sample.error().wrap("stats"));
                  continue;
                }
                auto it = before.find(rec.id);
                double cpu = vm::cpu_percent(
                    *sample, it == before.end() ? std::nullopt : std::optional(it->second));
                before[rec.id] = *sample;
                rows.push_back({rec, *sample, cpu});
              }
              if (args->json) {
                auto arr = nlohmann::json::array();
                for (const auto& r : rows) arr.push_back(row_json(r));
                fmt::print("{}\n", args->no_stream ? arr.dump(2) : arr.dump());
              } else {
                fmt::print("{}{}", terminal && !args->no_stream ? "\033[2J\033[H" : "",
                           table(rows));
              }
              std::fflush(stdout);
              if (args->no_stream) return k_exit_ok;
              std::this_thread::sleep_for(std::chrono::seconds(1));
            }
          }};
}

Command add_top(CLI::App& app) {
  auto ref = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "top",
      "The container's processes: user id, pid and parent in the container, CPU time, command");
  cmd->add_option("vm", *ref, "VM name or id")->required();
  return {cmd, [ref]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("top"));
            auto rec = resolve(s, *ref);
            if (!rec) return report_error(rec.error().wrap("top"));
            vm::ExecRequest request;
            request.argv = {"sh", "-c", vm::top_script()};
            request.in_vm = true;
            auto code = vm::exec_in_vm(*rec, request);
            if (!code) return report_error(code.error().wrap("top " + *ref));
            return *code;
          }};
}

}  // namespace fcvm::cli
