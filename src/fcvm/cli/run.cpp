// fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]]
#include <fmt/format.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/net/privileged.hpp"
#include "fcvm/readiness/gate.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/backend_select.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::cli {
namespace {

struct RunArgs {
  std::string name;
  std::vector<std::string> publish;
  std::vector<std::string> env;
  std::vector<std::string> env_files;
  std::vector<std::string> insecure_registries;
  std::string entrypoint;
  std::string workdir;
  std::string mem = "1024";
  std::string cpu = "2";
  std::string vmm = "auto";
  std::string network = "rootless";
  std::string stop_timeout = "10";
  std::string timings_file;
  std::string wait_ready;
  std::string save_snapshot;
  bool snapshot_then_stop = false;
  std::vector<std::string> maps;
  std::string map_size;
  bool keep_on_failure = false;
  bool detach = false;
  bool rm = false;
  bool keep = false;
};

// Turns the raw arguments into validated options; nothing is created here.
Result<vm::RunOptions> validate(const RunArgs& a, const std::vector<std::string>& rest) {
  vm::RunOptions o;
  if (rest.empty())
    return fail(ErrorCode::kInvalidInput,
                "missing IMAGE (fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]])");
  if (!a.name.empty()) FCVM_TRY(vm::validate_name(a.name));
  o.name = a.name;
  auto image = storage::parse_image_ref(rest[0]);
  if (!image) return tl::unexpected<Error>(image.error());
  o.image = *image;
  o.command.assign(rest.begin() + 1, rest.end());
  if (!a.entrypoint.empty()) o.entrypoint = {a.entrypoint};
  auto ports = parse_ports(a.publish);
  if (!ports) return tl::unexpected<Error>(ports.error());
  o.ports = *ports;
  for (const auto& f : a.env_files) {
    auto entries = vm::read_env_file(f);
    if (!entries) return tl::unexpected<Error>(entries.error());
    o.env.insert(o.env.end(), entries->begin(), entries->end());
  }
  for (const auto& e : a.env) {
    auto entry = vm::normalize_env(e);
    if (!entry) return tl::unexpected<Error>(entry.error());
    o.env.push_back(*entry);
  }
  for (const auto& r : a.insecure_registries) {
    FCVM_TRY(vm::validate_registry(r));
    o.insecure_registries.push_back(r);
  }
  if (!a.workdir.empty() && a.workdir[0] != '/') {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --workdir \"{}\": must be an absolute path", a.workdir));
  }
  o.workdir = a.workdir;
  auto mem = parse_int(a.mem, 128, 1 << 20);
  if (!mem) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --mem \"{}\": expected MiB as a whole number >= 128", a.mem));
  }
  o.mem_mib = static_cast<int>(*mem);
  auto cpu = parse_int(a.cpu, 1, 64);
  if (!cpu) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --cpu \"{}\": expected a whole number from 1 to 64", a.cpu));
  }
  o.vcpus = static_cast<int>(*cpu);
  if (a.vmm != "auto" && a.vmm != "qemu" && a.vmm != "firecracker") {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --vmm \"{}\": expected auto, qemu or firecracker", a.vmm));
  }
  o.vmm = a.vmm;
  FCVM_TRY(validate_network(a.network));
  o.network = a.network;
  auto stop = parse_int(a.stop_timeout, 0, 3600);
  if (!stop) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid --stop-timeout \"{}\": expected seconds 0-3600", a.stop_timeout));
  }
  o.stop_timeout_s = static_cast<int>(*stop);
  o.timings_file = a.timings_file;
  for (const auto& text : a.maps) {
    auto m = storage::parse_volume_map(text);
    if (!m) return tl::unexpected<Error>(m.error());
    o.volumes.push_back(*m);
  }
  FCVM_TRY(storage::check_unique_guests(o.volumes));
  for (const auto& m : o.volumes) FCVM_TRY(check_volume_mode(m, o.network));
  if (!a.map_size.empty()) {
    auto size = storage::parse_size_mib(a.map_size);
    if (!size) return fail(ErrorCode::kInvalidInput, "--map-size: " + size.error().message());
    o.map_size_mib = *size;
  }
  FCVM_TRY(validate_gate(a.wait_ready));
  o.wait_ready = a.wait_ready;
  o.keep_on_failure = a.keep_on_failure;
  if (!a.save_snapshot.empty()) FCVM_TRY(vm::validate_snapshot_name(a.save_snapshot));
  if (a.snapshot_then_stop && a.save_snapshot.empty()) {
    return fail(ErrorCode::kInvalidInput, "--snapshot-then-stop needs --save-snapshot NAME");
  }
  if (!a.save_snapshot.empty() && !o.volumes.empty()) {
    return fail(ErrorCode::kInvalidInput,
                "--save-snapshot: VMs with --map volumes cannot be snapshotted (yet)");
  }
  o.save_snapshot = a.save_snapshot;
  o.snapshot_then_stop = a.snapshot_then_stop;
  // Last, because it touches the host.
  FCVM_TRY(check_ports_available(o.ports));
  return o;
}

}  // namespace

int launch_vm(Session& s, const state::VmRecord& rec, bool detach, const std::string& verb) {
  auto who = verb + " " + rec.name;
  auto monitor = vm::spawn_monitor(*s.ctx, rec, true, /*wait_attach=*/!detach);
  if (!monitor) {
    (void)vm::remove_vm(*s.store, rec, true);
    return report_error(monitor.error().wrap(who));
  }
  if (detach) {
    monitor->process.detach();
    auto ok = vm::wait_ready(monitor->ready.get(), rec);
    if (!ok) return report_error(ok.error().wrap(who));
    fmt::print("{}\n", rec.id);
    return k_exit_ok;
  }
  auto code = vm::attach_foreground(rec, monitor->ready.get());
  // The monitor finishes its clean-up after it reported the exit: wait for it, so that nothing of
  // the VM is left when we return.
  (void)monitor->process.wait_for(std::chrono::seconds(30));
  monitor->process.detach();
  if (!code) return report_error(code.error().wrap(who));
  return *code;
}

Command add_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand(
      "run", "Run a container in a new microVM: fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]]");
  // Usage: fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]]
  cmd->footer(
      "IMAGE is a registry reference (pulled inside the guest; a registry on this host's "
      "127.0.0.1 is reached through the VM's gateway) or oci-archive:PATH / docker-archive:PATH "
      "(attached read-only and loaded).\nThe exit code is the container's; 1 when fcvm fails, "
      "2 for bad input.");
  // Everything from IMAGE on belongs to the container, not to fcvm.
  cmd->prefix_command();
  cmd->add_option("--name", args->name, "VM name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63)");
  cmd->add_option("-p,--publish", args->publish,
                  "Publish a port: [IP:]HOSTPORT:GUESTPORT[/tcp|/udp]; IP defaults to 127.0.0.1")
      ->allow_extra_args(false);
  cmd->add_option("-e,--env", args->env, "Set a container environment variable K=V (or K)")
      ->allow_extra_args(false);
  cmd->add_option("--env-file", args->env_files, "Read K=V lines from a file")
      ->allow_extra_args(false);
  cmd->add_option("--entrypoint", args->entrypoint, "Override the image's entrypoint");
  cmd->add_option("-w,--workdir", args->workdir, "Working directory inside the container");
  cmd->add_option("--mem", args->mem, "Guest memory in MiB (default 1024)");
  cmd->add_option("--cpu", args->cpu, "Guest vCPUs (default 2)");
  cmd->add_option("--vmm", args->vmm, "auto | qemu | firecracker (default auto)");
  cmd->add_option("--network", args->network,
                  "rootless (user-space network stack, any user) | privileged (root: a bridge, "
                  "veths and nftables; real addresses) (default rootless)");
  cmd->add_option("--insecure-registry", args->insecure_registries,
                  "Allow plain HTTP for this registry HOST[:PORT]")
      ->allow_extra_args(false);
  cmd->add_option("--stop-timeout", args->stop_timeout,
                  "Seconds between SIGTERM and SIGKILL when stopping (default 10)");
  cmd->add_option("--timings", args->timings_file, "Append start-up milestones as JSON lines")
      ->group("");
  cmd->add_option(
      "--wait-ready", args->wait_ready,
      "When the VM counts as ready (run -d returns then): mode=agent | "
      "mode=http,url=URL[,status=N] (probed inside the guest) | mode=log,pattern=REGEX | "
      "mode=exec,cmd=CMD; each with [,timeout=SECS] (default 60)");
  cmd->add_flag("--keep-on-failure", args->keep_on_failure,
                "Keep the VM running when its readiness gate fails (for debugging)");
  cmd->add_option("--map", args->maps,
                  "Map host data into the container: HOST:GUEST[:ro][,mode=block|sshfs|nfs] "
                  "(repeatable; HOST must exist). block (default): a directory becomes a disk "
                  "image of its contents, written back when the VM stops cleanly (or on `fcvm "
                  "volume sync`); an image file is attached as is. sshfs: live, rootless (QEMU). "
                  "nfs: live, root and --network privileged")
      ->allow_extra_args(false);
  cmd->add_option("--map-size", args->map_size,
                  "Size of the disk image made for each mapped directory (e.g. 4G; default: twice "
                  "its data plus 256 MiB, at least 512 MiB)");
  cmd->add_option("--save-snapshot", args->save_snapshot,
                  "Once ready: pause, write a snapshot NAME (memory, devices, disk), resume; "
                  "`fcvm clone --snapshot NAME` starts copies of it");
  cmd->add_flag("--snapshot-then-stop", args->snapshot_then_stop,
                "With --save-snapshot: end the VM once the snapshot is written");
  cmd->add_flag("-d,--detach", args->detach,
                "Run in the background: print the VM id once the container runs");
  cmd->add_flag("--rm", args->rm, "With -d: remove the VM when it ends");
  cmd->add_flag("--keep", args->keep,
                "In the foreground: keep the VM (disk, logs) after it ends; by default a "
                "foreground VM is removed when it ends");
  return {cmd, [args, cmd]() -> int {
            // The configuration file supplies what the command line leaves out.
            Session s;
            if (auto r = load_config(s); !r) return report_error(r.error().wrap("run"));
            if (cmd->count("--mem") == 0) args->mem = std::to_string(s.config.defaults.mem_mib);
            if (cmd->count("--cpu") == 0) args->cpu = std::to_string(s.config.defaults.vcpus);
            if (cmd->count("--stop-timeout") == 0) {
              args->stop_timeout = std::to_string(s.config.defaults.stop_timeout_s);
            }
            if (cmd->count("--vmm") == 0) args->vmm = s.config.vmm;
            if (cmd->count("--network") == 0) args->network = s.config.network;
            args->insecure_registries.insert(args->insecure_registries.begin(),
                                             s.config.insecure_registries.begin(),
                                             s.config.insecure_registries.end());
            if (args->rm && args->keep) {
              return report_error(Error(ErrorCode::kInvalidInput, "run: --rm and --keep conflict"));
            }
            auto options = validate(*args, cmd->remaining());
            if (!options) return report_error(options.error().wrap("run"));
            if (auto r = open_session(s); !r) return report_error(r.error());
            if (!options->save_snapshot.empty()) {
              if (auto r = check_snapshot_name_free(s, options->save_snapshot); !r) {
                return report_error(r.error().wrap("run"));
              }
            }
            // An explicit --vmm firecracker that cannot work fails before anything is created.
            if (options->vmm == "firecracker") {
              std::string why;
              auto backend = vm::select_backend(*s.ctx, options->vmm, why);
              if (!backend) return report_error(backend.error().wrap("run"));
            }
            if (!args->timings_file.empty())
              ::setenv("FCVM_TIMINGS", args->timings_file.c_str(), 1);
            bool auto_remove = args->detach ? args->rm : !args->keep;
            auto who = options->name.empty() ? std::string("run") : "run " + options->name;
            // 1. The record and its directory (a taken name fails here, with nothing created).
            auto rec = vm::create_vm(*s.ctx, *s.store, *options, auto_remove);
            if (!rec) return report_error(rec.error().wrap(who));
            // 2. The monitor boots and owns the VM from here on.
            return launch_vm(s, *rec, args->detach, "run");
          }};
}

}  // namespace fcvm::cli
