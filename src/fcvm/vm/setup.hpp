#pragma once
// The start-up steps of a VM, as the monitor runs them (numbered in setup.cpp). On failure every
// step already done is undone; on success the caller owns everything in VmResources.
#include <signal.h>

#include <functional>
#include <memory>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/net/network.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/signal_fd.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"
#include "fcvm/vm/timings.hpp"
#include "fcvm/vmm/backend.hpp"

namespace fcvm::vm {

struct VmResources {
  // First: SIGINT/SIGTERM/SIGHUP that arrive during start-up wait in the signalfd.
  SignalFd signals{SIGINT, SIGTERM, SIGHUP};
  RunOptions options;
  agent_proto::Plan plan;
  std::unique_ptr<vmm::Backend> backend;
  std::unique_ptr<net::VmNetwork> network;
  UniqueFd channel;       // to fc-agent
  bool restored = false;  // resumed from a snapshot: the agent is mid-plan and must re-handshake
  std::vector<ChildProcess> volume_servers;  // sshfs volumes: the host's SFTP servers
};

// The virtio-serial port of the index-th --map in sshfs mode.
std::string sshfs_port_name(size_t index);

// The ext4 image made for the index-th --map of a host directory.
std::string volume_image_path(const state::VmRecord& rec, size_t index);

// Where a booting VM's RAM file is made (QEMU; unlinked as soon as QEMU runs).
std::string memory_file_path(const state::VmRecord& rec);

// Boots the VM of `rec` (updating rec and calling save() as processes appear) up to a started
// VMM; the agent channel is connected by the monitor's loop. With `restore_from` (a clone's first
// start) the VM is restored from that snapshot instead of booted: its disk is a fresh layer over
// the snapshot's, its memory the snapshot's mapped copy-on-write.
Result<std::unique_ptr<VmResources>> setup_vm(Context& ctx, state::VmRecord& rec, Timings& timings,
                                              const std::function<void()>& save,
                                              const state::SnapshotRecord* restore_from = nullptr);

}  // namespace fcvm::vm
