// fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]]
#include <fmt/format.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/images.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/validate.hpp"

namespace fcvm::cli {
namespace {

// The request as the flags fill it, plus what only the CLI decides.
struct RunArgs {
  vm::RunRequest request;
  bool detach = false;
  bool rm = false;
  bool keep = false;
  std::string detach_keys = vm::k_default_detach_keys;
};

}  // namespace

void add_detach_keys_option(CLI::App* cmd, std::string& keys, const std::string& when) {
  cmd->add_option("--detach-keys", keys,
                  when +
                      ": the keys that leave the container running and return to the shell "
                      "(default ctrl-p,ctrl-q; characters or ctrl-X, comma separated; \"\" turns "
                      "them off)")
      ->option_text("KEYS");
}

Result<vm::AttachEnd> attach_terminal(const state::VmRecord& rec, int ready_fd,
                                      const std::string& detach_keys, bool with_stdin) {
  FCVM_TRY_ASSIGN(auto keys, vm::parse_detach_keys(detach_keys));
  auto options = vm::options_from_json(rec.options_json);
  vm::AttachOptions attach;
  if (options) {
    attach.interactive = options->interactive && with_stdin;
    attach.tty = options->tty;
    attach.window_size = terminal_size;
  }
  // -i -t: the terminal goes raw for the container (restored on every way out of here), and the
  // detach keys leave it running.
  std::optional<RawTerminal> raw;
  if (attach.tty && attach.interactive) {
    raw.emplace();
    attach.detach_keys = keys;
  }
  auto end = vm::attach_foreground(rec, ready_fd, {}, attach);
  raw.reset();
  if (end && end->detached) {
    fmt::print(stderr, "\nfcvm: detached from VM {}: it runs on (fcvm attach {} to return)\n",
               rec.name, rec.name);
  }
  return end;
}

int launch_vm(Session& s, const state::VmRecord& rec, const Launch& how) {
  auto who = how.verb + " " + rec.name;
  auto monitor =
      vm::spawn_monitor(*s.ctx, rec, {true, /*wait_attach=*/!how.detach, how.timings_file});
  if (!monitor) {
    (void)vm::remove_vm(*s.store, rec, true);
    return report_error(monitor.error().wrap(who));
  }
  if (how.detach) {
    monitor->process.detach();
    auto ok = vm::wait_ready(monitor->ready.get(), rec);
    if (!ok) return report_error(ok.error().wrap(who));
    fmt::print("{}\n", rec.id);
    return k_exit_ok;
  }
  auto end = attach_terminal(rec, monitor->ready.get(), how.detach_keys);
  if (end && end->detached) {
    monitor->process.detach();
    return k_exit_ok;
  }
  // The monitor finishes its clean-up after it reported the exit: wait for it, so that nothing of
  // the VM is left when we return.
  (void)monitor->process.wait_for(std::chrono::seconds(30));
  monitor->process.detach();
  if (!end) return report_error(end.error().wrap(who));
  return end->exit_code;
}

Command add_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand(
      "run", "Run a container in a new microVM: fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]]");
  // Usage: fcvm run [OPTIONS] IMAGE [COMMAND [ARG...]]
  cmd->footer(
      "IMAGE is a registry reference or oci-archive:PATH / docker-archive:PATH. It comes from the "
      "host image store (fcvm images): one read-only disk per image, shared by every VM of it; "
      "an image not stored yet is pulled first (fcvm pull). --guest-pull fetches it inside the "
      "guest instead (a registry on this host's 127.0.0.1 is then reached through the VM's "
      "gateway).\nThe exit code is the container's; 1 when fcvm fails, "
      "2 for bad input.");
  // Everything from IMAGE on belongs to the container, not to fcvm.
  cmd->prefix_command();
  cmd->add_option("--name", args->request.name, "VM name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63)");
  cmd->add_option("-p,--publish", args->request.publish,
                  "Publish a port: [IP:]HOSTPORT:GUESTPORT[/tcp|/udp]; IP defaults to 127.0.0.1")
      ->allow_extra_args(false);
  cmd->add_option("-e,--env", args->request.env, "Set a container environment variable K=V (or K)")
      ->allow_extra_args(false);
  cmd->add_option("--env-file", args->request.env_files, "Read K=V lines from a file")
      ->allow_extra_args(false);
  cmd->add_option("--entrypoint", args->request.entrypoint, "Override the image's entrypoint");
  cmd->add_option("-w,--workdir", args->request.workdir, "Working directory inside the container");
  cmd->add_option("-u,--user", args->request.user,
                  "Run the container as NAME or UID, optionally :GROUP or :GID (names from the "
                  "image's /etc/passwd and /etc/group)");
  cmd->add_option("--hostname", args->request.hostname,
                  "The container's (and the VM's) host name (default: the VM name)");
  cmd->add_flag("--read-only", args->request.read_only,
                "Mount the container's root read-only (tmpfs on /tmp, /var/tmp and /run)");
  cmd->add_flag("--init", args->request.init,
                "Run an init (catatonit) as the container's PID 1: it reaps zombies and forwards "
                "signals, for images whose command does not");
  cmd->add_option("--ulimit", args->request.ulimits,
                  "Set a resource limit of the container's process, NAME=SOFT[:HARD] (nofile, "
                  "nproc, core, memlock, stack, ...; -1: unlimited; repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("-l,--label", args->request.labels, "Set a label K=V (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--mem", args->request.mem, "Guest memory in MiB (default 1024)");
  cmd->add_option("--cpu", args->request.cpu, "Guest vCPUs (default 2)");
  cmd->add_option("--vmm", args->request.vmm, "auto | qemu | firecracker (default auto)");
  auto* jailer = cmd->add_flag_callback(
      "--jailer", [args] { args->request.jailer = "on"; },
      "Firecracker through its jailer: chrooted, as a user of its own, in a new PID namespace and "
      "a cgroup limited to --cpu/--mem (root; the default for root when a jailer is found)");
  auto* no_jailer = cmd->add_flag_callback(
      "--no-jailer", [args] { args->request.jailer = "off"; }, "Firecracker without its jailer");
  jailer->excludes(no_jailer);
  cmd->add_option("--network", args->request.network,
                  "rootless (user-space network stack, any user) | privileged (root: a bridge, "
                  "veths and nftables; real addresses) (default rootless)");
  cmd->add_option("--insecure-registry", args->request.insecure_registries,
                  "Allow plain HTTP for this registry HOST[:PORT]")
      ->allow_extra_args(false);
  cmd->add_flag("--guest-pull", args->request.guest_pull,
                "Pull or load the image inside the guest (podman there) instead of using the "
                "host image store");
  cmd->add_option("--authfile", args->request.authfile,
                  "Registry credentials for pulling into the image store (podman's auth.json "
                  "format; default: podman's)");
  cmd->add_option("--restart", args->request.restart,
                  "With -d: no | on-failure[:N] | always | unless-stopped: start the VM again "
                  "when its container ends (on-failure: with a non-zero exit code; at most N "
                  "times). Never after fcvm stop; back-off 100 ms doubling to 30 s")
      ->option_text("POLICY");
  cmd->add_option("--timeout", args->request.ttl,
                  "Stop the VM this many seconds after it was created (its time-to-live; kept by "
                  "its monitor, with no fcvm command running)")
      ->option_text("SECONDS");
  cmd->add_option("--stop-timeout", args->request.stop_timeout,
                  "Seconds between SIGTERM and SIGKILL when stopping (default 10)");
  cmd->add_option("--boot-timeout", args->request.boot_timeout,
                  "Seconds the guest may take to boot until its agent answers (default 180); "
                  "a first boot whose kernel never reached the guest's init is tried once more")
      ->option_text("SECONDS");
  cmd->add_option("--timings", args->request.timings_file,
                  "Append start-up milestones as JSON lines")
      ->group("");
  cmd->add_option(
      "--wait-ready", args->request.wait_ready,
      "When the VM counts as ready (run -d returns then): mode=agent | "
      "mode=http,url=URL[,status=N] (probed inside the guest) | mode=log,pattern=REGEX | "
      "mode=exec,cmd=CMD; each with [,timeout=SECS] (default 60)");
  cmd->add_flag("--keep-on-failure", args->request.keep_on_failure,
                "Keep the VM running when its readiness gate fails (for debugging)");
  cmd->add_option("--map", args->request.maps,
                  "Map host data into the container: HOST:GUEST[:ro][,mode=block|sshfs|nfs] "
                  "(repeatable; HOST must exist). block (default): a directory becomes a disk "
                  "image of its contents, written back when the VM stops cleanly (or on `fcvm "
                  "volume sync`); an image file is attached as is. sshfs: live, rootless (QEMU). "
                  "nfs: live, root and --network privileged")
      ->allow_extra_args(false);
  cmd->add_option("--map-size", args->request.map_size,
                  "Size of the disk image made for each mapped directory (e.g. 4G; default: twice "
                  "its data plus 256 MiB, at least 512 MiB)");
  cmd->add_option("--save-snapshot", args->request.save_snapshot,
                  "Once ready: pause, write a snapshot NAME (memory, devices, disk), resume; "
                  "`fcvm clone --snapshot NAME` starts copies of it");
  cmd->add_flag("--snapshot-then-stop", args->request.snapshot_then_stop,
                "With --save-snapshot: end the VM once the snapshot is written");
  cmd->add_flag("-i,--interactive", args->request.interactive,
                "Keep stdin open: your input is the container's (end of file when it ends)");
  cmd->add_flag("-t,--tty", args->request.tty,
                "Run the container on a terminal (with -i: yours, in raw mode, its size "
                "followed; ^C and ^Z reach the container)");
  cmd->add_flag("-d,--detach", args->detach,
                "Run in the background: print the VM id once the container runs (with -i/-t: "
                "fcvm attach reaches its stdin and terminal)");
  add_detach_keys_option(cmd, args->detach_keys, "With -it");
  cmd->add_flag("--rm", args->rm, "With -d: remove the VM when it ends");
  cmd->add_flag("--keep", args->keep,
                "In the foreground: keep the VM (disk, logs) after it ends; by default a "
                "foreground VM is removed when it ends");
  return {
      cmd, [args, cmd]() -> int {
        Session s;
        if (auto r = load_config(s); !r) return report_error(r.error().wrap("run"));
        if (args->rm && args->keep) {
          return report_error(Error(ErrorCode::kInvalidInput, "run: --rm and --keep conflict"));
        }
        if (args->rm && !args->request.restart.empty() && args->request.restart != "no") {
          return report_error(
              Error(ErrorCode::kInvalidInput,
                    fmt::format("run: --rm and --restart {} conflict", args->request.restart)));
        }
        if (auto keys = vm::parse_detach_keys(args->detach_keys); !keys) {
          return report_error(keys.error().wrap("run"));
        }
        args->request.image_and_command = cmd->remaining();
        args->request.detach = args->detach;
        // The configuration file supplies what the command line leaves out.
        auto options = vm::validate_run(args->request, run_defaults(s.config), vm::process_env());
        if (!options) return report_error(options.error().wrap("run"));
        if (auto r = open_session(s); !r) return report_error(r.error());
        if (auto r = vm::check_run(*s.ctx, *s.store, *options); !r) {
          return report_error(r.error().wrap("run"));
        }
        bool auto_remove = args->detach ? args->rm : !args->keep;
        auto who = options->name.empty() ? std::string("run") : "run " + options->name;
        // 0. The image, from the host image store (pulled now if it is not stored yet).
        if (auto r = vm::resolve_image(*s.ctx, *s.store, *options,
                                       pull_progress("pull " + options->image.original));
            !r) {
          return report_error(r.error().wrap(who));
        }
        // 1. The record and its directory (a taken name fails here, with nothing created).
        auto rec = vm::create_vm(*s.ctx, *s.store, *options, auto_remove);
        if (!rec) return report_error(rec.error().wrap(who));
        // 2. The monitor boots and owns the VM from here on.
        return launch_vm(s, *rec, {args->detach, "run", options->timings_file, args->detach_keys});
      }};
}

}  // namespace fcvm::cli
