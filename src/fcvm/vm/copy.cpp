#include "fcvm/vm/copy.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <string_view>
#include <vector>

#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/attach.hpp"

namespace fcvm::vm {
namespace {

// Exit codes of the script besides tar's own.
constexpr int k_missing = 3;       // the path does not exist (or, for `in`, is no directory)
constexpr int k_no_container = 4;  // the container's process was not found

Result<int> run_script(const state::VmRecord& rec, std::vector<std::string> args, const Stdio& io,
                       bool with_stdin) {
  ExecRequest request;
  request.argv = {"sh", "-c", copy_script(), "sh"};
  request.argv.insert(request.argv.end(), args.begin(), args.end());
  request.in_vm = true;
  request.interactive = with_stdin;
  return exec_in_vm(rec, request, io);
}

Error script_failure(const state::VmRecord& rec, const std::string& path, int code) {
  if (code == k_missing) {
    return Error(ErrorCode::kNotFound,
                 fmt::format("{}:{}: no such file or directory in the container", rec.name, path));
  }
  if (code == k_no_container) {
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("VM {}: its container is not running", rec.name));
  }
  return Error(ErrorCode::kSystem, fmt::format("{}:{}: tar in the container failed (exit code {})",
                                               rec.name, path, code));
}

}  // namespace

std::string tar_rename_transform(const std::string& old_name, const std::string& new_name) {
  std::string re, rep;
  for (char c : old_name) {
    if (std::string_view("\\^$.[]|()*+?{},").find(c) != std::string_view::npos) re += '\\';
    re += c;
  }
  for (char c : new_name) {
    if (c == '\\' || c == '&' || c == ',') rep += '\\';
    rep += c;
  }
  return fmt::format("--transform=s,^{}(/|$),{}\\1,Sx", re, rep);
}

std::string copy_script() {
  return R"SH(pid=$(cat /run/fcvm-agent/bundle/main.pid 2>/dev/null) ||
  pid=$(podman container inspect --format '{{.State.Pid}}' fcvm-main 2>/dev/null) || exit 4
[ -n "$pid" ] && [ "$pid" != 0 ] && [ -d "/proc/$pid" ] || exit 4
c() { /usr/sbin/fc-agent --in-container "$pid" "$@"; }
case $1 in
  kind) c test -e "$2" || c test -L "$2" || exit 3
        if c test -d "$2"; then echo directory; else echo other; fi ;;
  out)  c test -e "$2/$3" || c test -L "$2/$3" || exit 3
        exec /usr/sbin/fc-agent --in-container "$pid" tar -C "$2" -cf - "$3" ;;
  in)   c test -d "$2" || exit 3
        exec /usr/sbin/fc-agent --in-container "$pid" tar -C "$2" -xpf - ;;
  *)    exit 2 ;;
esac
)SH";
}

Result<ContainerPathKind> container_path_kind(const state::VmRecord& rec, const std::string& path) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail_errno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  // The answer is one short line: it fits the pipe, read once the script ended.
  FCVM_TRY_ASSIGN(auto code, run_script(rec, {"kind", path}, Stdio{0, write_end.get(), 2}, false));
  write_end.reset();
  if (code != 0) return tl::unexpected(script_failure(rec, path, code));
  char buf[64] = {};
  ssize_t n = ::read(read_end.get(), buf, sizeof buf - 1);
  std::string answer(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return answer.rfind("directory", 0) == 0 ? ContainerPathKind::kDirectory
                                           : ContainerPathKind::kOther;
}

Result<> copy_out(const state::VmRecord& rec, const std::string& dir, const std::string& name,
                  int out_fd, int err_fd) {
  FCVM_TRY_ASSIGN(auto code, run_script(rec, {"out", dir, name}, Stdio{0, out_fd, err_fd}, false));
  if (code != 0) return tl::unexpected(script_failure(rec, dir + "/" + name, code));
  return {};
}

Result<> copy_in(const state::VmRecord& rec, int in_fd, const std::string& dir, int err_fd) {
  FCVM_TRY_ASSIGN(auto code, run_script(rec, {"in", dir}, Stdio{in_fd, 2, err_fd}, true));
  if (code != 0) return tl::unexpected(script_failure(rec, dir, code));
  return {};
}

}  // namespace fcvm::vm
