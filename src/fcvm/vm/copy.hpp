#pragma once
// `fcvm cp`: tar streams in and out of a running container. The tar that reads or writes the
// container's files is the guest's static busybox, run by the agent's helper inside the
// container's mount namespace (`fc-agent --in-container`): every path, symlinks included,
// resolves in the container's root and mounts, so a symlink can never lead out of it, and the
// image needs no tar of its own.
#include <string>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

// What a path in the container is; kNotFound when it does not exist.
enum class ContainerPathKind { kDirectory, kOther };
Result<ContainerPathKind> container_path_kind(const state::VmRecord& rec, const std::string& path);

// Writes a tar stream of DIR/NAME (members named NAME...) to out_fd; the container's tar
// messages go to err_fd.
Result<> copy_out(const state::VmRecord& rec, const std::string& dir, const std::string& name,
                  int out_fd, int err_fd);
// Extracts the tar stream read from in_fd into the container's directory DIR (which must exist),
// owners and modes as the stream has them.
Result<> copy_in(const state::VmRecord& rec, int in_fd, const std::string& dir, int err_fd);

// A GNU tar option renaming the leading member name OLD (and what is below it) to NEW, leaving
// symlink targets alone: --transform=s,^OLD(/|$),NEW\1,Sx with OLD's regex characters escaped.
std::string tar_rename_transform(const std::string& old_name, const std::string& new_name);

// The script the three run in the guest OS (sh -c SCRIPT sh OP ARGS...), exposed for tests.
std::string copy_script();

}  // namespace fcvm::vm
