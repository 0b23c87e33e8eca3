// fc-agent: the guest side of fcvm. Started by the guest's init chain (catatonit as PID 1 reaps
// orphans; the agent is its child), it talks to the host over one channel (docs/agent-protocol.md),
// runs the VM's plan and powers the VM off when the container ends.
//
//   fc-agent [--channel serial:NAME|vsock:PORT|unix:PATH] [--root DIR] [--no-system]
//
// Without --channel the channel comes from the kernel command line (fcvm.agent=...). --root and
// --no-system exist for tests that run the agent on the host: files go under DIR, and the clock,
// hostname, entropy pool and power state are left alone.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/cmdline.hpp"
#include "agent/logic/mmds.hpp"
#include "agent/logic/oci.hpp"
#include "agent/power.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::agent {
namespace {

constexpr const char* k_usage =
    "usage: fc-agent [--channel serial:NAME|vsock:PORT|unix:PATH] [--root DIR] [--no-system]\n"
    "       fc-agent --in-container PID APPLET [ARG...]   (busybox APPLET in PID's mounts)\n"
    "The guest agent of fcvm. Without --channel it reads fcvm.agent= from /proc/cmdline\n"
    "(default serial:fcvm.agent). Exit codes: 0 ok (only with --no-system), 1 failure, 2 usage.\n";

struct Args {
  AgentOptions options;
  bool channel_given = false;
};

// 0 on success, else the exit code.
int parse_args(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--help" || a == "-h") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    } else if (a == "--version") {
      std::printf("fc-agent %s\n", FCVM_VERSION);
      std::exit(0);
    } else if (a == "--channel") {
      const char* v = value();
      auto spec =
          v ? parse_channel_spec(v) : fail(ErrorCode::kInvalidInput, "--channel needs a value");
      if (!spec) {
        std::fprintf(stderr, "fc-agent: %s\n%s", spec.error().message().c_str(), k_usage);
        return 2;
      }
      args.options.channel = *spec;
      args.channel_given = true;
    } else if (a == "--root") {
      const char* v = value();
      if (!v) {
        std::fprintf(stderr, "fc-agent: --root needs a value\n%s", k_usage);
        return 2;
      }
      args.options.root = v;
    } else if (a == "--no-system") {
      args.options.system_changes = false;
    } else {
      std::fprintf(stderr, "fc-agent: unknown argument '%s'\n%s", argv[i], k_usage);
      return 2;
    }
  }
  return 0;
}

// The init chain hands the agent a bare environment: give podman and ip what they expect.
void prepare_environment() {
  ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0);
  ::setenv("HOME", "/root", 0);
  // Only `podman run` gets NOTIFY_SOCKET, set by the agent; one inherited from outside would
  // make every podman call notify someone else.
  ::unsetenv("NOTIFY_SOCKET");
  // Writes to a pipe whose reader is gone (an exec's stdin) fail with EPIPE instead of killing us.
  ::signal(SIGPIPE, SIG_IGN);
}

// fc-agent --in-container PID APPLET [ARG...]: the guest's static busybox APPLET inside the mount
// namespace of process PID (the container's), so that every path, symlinks included, resolves in
// the container's own root and mounts (fcvm cp runs tar this way: the image needs no tar). The
// binary is opened before entering the namespace and executed from that descriptor.
int in_container(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: fc-agent --in-container PID APPLET [ARG...]\n");
    return 2;
  }
  auto pid = parse_int(argv[2], 1, INT32_MAX);
  if (!pid) {
    std::fprintf(stderr, "fc-agent: invalid pid '%s'\n", argv[2]);
    return 2;
  }
  UniqueFd program(::open(k_guest_busybox, O_RDONLY | O_CLOEXEC));
  if (!program) {
    std::fprintf(stderr, "fc-agent: open %s: %s\n", k_guest_busybox, std::strerror(errno));
    return 126;
  }
  auto ns_path = "/proc/" + std::to_string(*pid) + "/ns/mnt";
  UniqueFd ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns || ::setns(ns.get(), CLONE_NEWNS) != 0 || ::chdir("/") != 0) {
    std::fprintf(stderr, "fc-agent: enter the container's mount namespace (%s): %s\n",
                 ns_path.c_str(), std::strerror(errno));
    return 125;
  }
  ::syscall(SYS_execveat, program.get(), "", argv + 3, environ, AT_EMPTY_PATH);
  std::fprintf(stderr, "fc-agent: run %s: %s\n", argv[3], std::strerror(errno));
  return errno == ENOENT ? 127 : 126;
}

int agent_main(int argc, char** argv) {
  Args args;
  if (int rc = parse_args(argc, argv, args); rc != 0) return rc;
  prepare_environment();
  open_console(args.options.system_changes);
  if (!args.channel_given) {
    auto cmdline = read_file("/proc/cmdline");
    if (!cmdline) {
      sayf("{}; using the default channel", cmdline.error().to_string());
    } else if (auto spec = channel_from_cmdline(*cmdline); !spec) {
      sayf("{}; using the default channel", spec.error().message());
    } else {
      args.options.channel = *spec;
    }
    if (cmdline) args.options.mmds = args.options.system_changes && mmds_from_cmdline(*cmdline);
  }
  std::string reason;
  {
    Agent agent(args.options);
    auto r = agent.run();
    reason = r ? *r : "agent failed: " + r.error().to_string();
  }  // the Agent's children (podman run, exec sessions) are killed and reaped here
  if (args.options.system_changes) unmount_volumes(args.options.root);
  power_off(args.options.system_changes, reason);
  return 0;
}

}  // namespace
}  // namespace fcvm::agent

int main(int argc, char** argv) {
  // A helper for fcvm cp, never the agent itself: nothing here may power the VM off.
  if (argc >= 2 && std::strcmp(argv[1], "--in-container") == 0) {
    return fcvm::agent::in_container(argc, argv);
  }
  // Our code does not throw; this catches what a library might (allocation failure, json) so that
  // the VM still powers off instead of idling without an agent.
  bool system_changes = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-system") == 0) system_changes = false;
  }
  try {
    return fcvm::agent::agent_main(argc, argv);
  } catch (const std::exception& e) {
    fcvm::agent::power_off(system_changes, std::string("fc-agent crashed: ") + e.what());
  } catch (...) {
    fcvm::agent::power_off(system_changes, "fc-agent crashed: unknown exception");
  }
  return 1;
}
