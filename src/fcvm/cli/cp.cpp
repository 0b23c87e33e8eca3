// fcvm cp VM:PATH HOSTPATH|-     fcvm cp HOSTPATH|- VM:PATH
// Tar streams between the host's tar and the container's (vm/copy.hpp). The names follow cp and
// podman cp: into an existing directory the source keeps its name; otherwise it takes the
// destination's. Files copied into the container belong to root (as with podman cp); copied out
// as root they keep their owners, as another user they become that user's.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <regex>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/copy.hpp"

namespace fcvm::cli {
namespace {

struct Location {
  std::string vm;  // empty: the host
  std::string path;
};

// VM:PATH (a VM name or id, then an absolute path) or a host path ("-": a tar stream).
Location parse_location(const std::string& text) {
  static const std::regex vm_path("([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)");
  std::smatch m;
  if (text != "-" && std::regex_match(text, m, vm_path) && text[0] != '/' && text[0] != '.') {
    return {m[1].str(), m[2].str()};
  }
  return {"", text};
}

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}
std::string dir_of(const std::string& p) {
  auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}
std::string base_of(const std::string& p) {
  if (p == "/") return ".";
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

Result<ExitStatus> finish(ChildProcess& tar, const char* what) {
  FCVM_TRY_ASSIGN(auto status, tar.wait());
  if (!status.exited || status.code != 0) {
    return fail(ErrorCode::kSystem, fmt::format("{} failed ({})", what, status.describe()));
  }
  return status;
}

Result<> copy_out(Session& s, const Location& from, const std::string& to) {
  FCVM_TRY_ASSIGN(auto rec, resolve(s, from.vm));
  auto src = strip_slashes(from.path);
  auto dir = dir_of(src), name = base_of(src);
  if (to == "-") return vm::copy_out(rec, dir, name, 1, 2);
  // Where the stream is unpacked: into `to` if it is a directory, else beside it, then renamed.
  struct stat st {};
  bool into = ::stat(to.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  std::string target = into ? to : dir_of(strip_slashes(to));
  if (!into && (::stat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    return fail(ErrorCode::kInvalidInput, fmt::format("{}: no such directory on the host", target));
  }
  std::string staging;
  if (!into) {
    std::string tmpl = target + "/.fcvm-cp-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return fail_errno(fmt::format("mkdtemp in {}", target));
    staging = tmpl;
  }
  auto cleanup = [&] {
    if (!staging.empty()) (void)remove_all(staging);
  };
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail_errno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  SpawnOptions tar_options;
  tar_options.argv = {"tar", "-x", "-f", "-", "-C", staging.empty() ? target : staging};
  tar_options.stdin_fd = read_end.get();
  tar_options.stderr_fd = 2;
  auto tar = ChildProcess::spawn(tar_options);
  if (!tar) {
    cleanup();
    return tl::unexpected(tar.error().wrap("start tar"));
  }
  read_end.reset();
  auto copied = vm::copy_out(rec, dir, name, write_end.get(), 2);
  write_end.reset();
  auto unpacked = finish(*tar, "tar -x on the host");
  if (!copied || !unpacked) {
    cleanup();
    return tl::unexpected(!copied ? copied.error() : unpacked.error());
  }
  if (!staging.empty()) {
    auto made = name == "." ? staging : staging + "/" + name;
    if (::rename(made.c_str(), to.c_str()) != 0) {
      int e = errno;
      cleanup();
      return fail_errno(fmt::format("rename to {}", to), e);
    }
    cleanup();
  }
  return {};
}

Result<> copy_in(Session& s, const std::string& from, const Location& to) {
  FCVM_TRY_ASSIGN(auto rec, resolve(s, to.vm));
  auto dest = strip_slashes(to.path);
  if (from == "-") return vm::copy_in(rec, 0, dest, 2);  // a tar stream into a directory
  auto src = strip_slashes(from);
  struct stat st {};
  if (::lstat(src.c_str(), &st) != 0) {
    return fail(ErrorCode::kInvalidInput, fmt::format("{}: no such file or directory", src));
  }
  auto name = base_of(src);
  // Into an existing directory the source keeps its name; otherwise it becomes dest.
  auto kind = vm::container_path_kind(rec, dest);
  bool into = kind && *kind == vm::ContainerPathKind::kDirectory;
  if (!kind && kind.error().code() != ErrorCode::kNotFound) return tl::unexpected(kind.error());
  if (!into && to.path.size() > 1 && to.path.back() == '/') {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("{}:{}: no such directory in the container", rec.name, to.path));
  }
  std::string target = into ? dest : dir_of(dest);
  std::vector<std::string> argv = {
      "tar", "-c", "-f", "-", "-C", dir_of(src), "--owner=0", "--group=0", "--numeric-owner"};
  if (!into && name != base_of(dest)) argv.push_back(vm::tar_rename_transform(name, base_of(dest)));
  argv.push_back(name);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail_errno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  SpawnOptions tar_options;
  tar_options.argv = argv;
  tar_options.stdout_fd = write_end.get();
  tar_options.stderr_fd = 2;
  FCVM_TRY_ASSIGN(auto tar, ChildProcess::spawn(tar_options));
  write_end.reset();
  auto copied = vm::copy_in(rec, read_end.get(), target, 2);
  read_end.reset();
  auto packed = finish(tar, "tar -c on the host");
  if (!copied) return tl::unexpected(copied.error());
  if (!packed) return tl::unexpected(packed.error());
  return {};
}

}  // namespace

Command add_cp(CLI::App& app) {
  struct Args {
    std::string from, to;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "cp",
      "Copy files and directories between a running VM's container and the host: fcvm cp "
      "VM:PATH HOSTPATH, fcvm cp HOSTPATH VM:PATH; - for a tar stream on stdout or stdin");
  cmd->footer(
      "Paths in the container resolve in its own root and mounts (a symlink never leads out of "
      "it). Into an existing directory the source keeps its name, otherwise it takes the "
      "destination's. Modes and symlinks are kept; files copied in belong to root; copied out "
      "by root they keep their owners. The VM must be running.");
  cmd->add_option("from", args->from, "VM:PATH, a host path, or - (a tar stream on stdin)")
      ->required();
  cmd->add_option("to", args->to, "VM:PATH, a host path, or - (a tar stream on stdout)")
      ->required();
  return {cmd, [args]() -> int {
            // A reader that goes away (fcvm cp VM:/x - | head) ends the copy with an error, not
            // a signal.
            ::signal(SIGPIPE, SIG_IGN);
            auto from = parse_location(args->from);
            auto to = parse_location(args->to);
            auto bad = [&](const std::string& why) {
              return report_error(Error(ErrorCode::kInvalidInput, "cp: " + why));
            };
            if (from.vm.empty() == to.vm.empty()) {
              return bad(fmt::format("\"{}\" -> \"{}\": exactly one side must be VM:PATH",
                                     args->from, args->to));
            }
            const auto& in_vm = from.vm.empty() ? to : from;
            if (in_vm.path.empty() || in_vm.path[0] != '/') {
              return bad(fmt::format("\"{}:{}\": the path in the container must be absolute",
                                     in_vm.vm, in_vm.path));
            }
            if (args->from == "-" && args->to == "-") return bad("both sides are -");
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("cp"));
            auto done = from.vm.empty() ? copy_in(s, from.path, to) : copy_out(s, from, to.path);
            if (!done) return report_error(done.error().wrap("cp"));
            return k_exit_ok;
          }};
}

}  // namespace fcvm::cli
