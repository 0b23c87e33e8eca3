// The monitor's way to ready: one boot (again after a hung first boot), the readiness gate's
// verdict, and snapshots (--save-snapshot, `fcvm snapshot create`).
#include <fmt/format.h>
#include <unistd.h>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/readiness/gate.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/monitor_impl.hpp"
#include "fcvm/vm/snapshot.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

namespace proto = agent_proto;

// One boot (or restore) of the VM, run until its VMM ends.
void Monitor::boot_and_run() {
  auto setup = setup_vm(
      m_ctx, m_rec, m_timings, [this] { save(); }, m_restore_from ? &*m_restore_from : nullptr);
  if (!setup) {
    record_error(setup.error());
    return;
  }
  m_vm = std::move(*setup);
  std::optional<readiness::Gate> gate;
  if (!m_vm->options.wait_ready.empty()) {
    auto parsed = readiness::parse_gate(m_vm->options.wait_ready);
    if (parsed) {
      gate = *parsed;
    } else {
      record_error(parsed.error());
    }
  }
  m_gate = std::make_unique<readiness::GateRunner>(gate);
  if (m_vm->restored) publish(EventType::kCloneStarted, m_restore_from ? m_restore_from->name : "");
  if (!m_error) loop();
}

// The agent's channel. QEMU's socket is there as soon as QEMU runs; Firecracker's vsock answers
// only once the guest's agent listens, seconds into the boot (about 17 s under nested
// virtualisation). Each pass of the loop tries for a short slice, so that the boot deadline, the
// console watch and control requests keep working while the guest boots.
void Monitor::connect_channel() {
  if (!m_vm || m_channel_open) return;
  if (m_reconnect ? m_phase > Phase::kRunning : (m_vm->channel || m_phase != Phase::kBooting)) {
    return;
  }
  auto channel = m_vm->backend->connect_agent(k_agent_connect_slice);
  if (!channel) {
    if (channel.error().code() == ErrorCode::kTimeout) return;       // not listening yet
    if (m_reconnect && Clock::now() < m_reconnect_deadline) return;  // end_of_vmm may know why
    record_error(std::move(channel.error()).wrap("connect to the guest agent"));
    m_vm->backend->kill();
    return;
  }
  bool again = m_reconnect;
  m_reconnect = false;
  m_vm->channel = std::move(*channel);
  m_channel_open = true;
  m_agent_decoder = {};
  m_timings.mark(again ? "agent_reconnected" : "agent_connected");
  // A plan sent on the lost connection may not have arrived: the next hello gets it again (an
  // agent that has it keeps its running plan).
  if (again && m_phase <= Phase::kStarting) m_hello = false;
  // The restored (or reconnected) agent is mid-plan and may not notice the new connection: ask
  // for a hello (its answer gets the clone's plan: id, clock, fresh entropy).
  if (m_vm->restored || again) send_agent(proto::encode_hello({proto::k_protocol_version, "fcvm"}));
}

// A guest whose kernel hung before its container was ready, on the VM's first boot, boots once
// more from a fresh disk: under emulation (TCG) a guest kernel rarely locks up for good early in
// its life, and a second boot is cheaper than a failed `run`. The hang is a kernel's report on
// the console, or a boot that ran out of time without its init ever writing to the console.
// Not retried: restored clones (their memory is the snapshot's), VMs with live volumes whose
// guest got to userspace (the container may have written through them already), a stop that was
// asked for, a second hang. The first boot's console stays beside the VM as console.1.log.
bool Monitor::retry_after_hang() {
  if (!m_hang || !m_error || m_ready || !m_launch.fresh || m_restore_from || m_boot_attempts > 1 ||
      m_stop_deadline || !m_vm) {
    return false;
  }
  if (m_console.reached_userspace()) {
    for (const auto& v : m_vm->options.volumes) {
      if (v.mode != storage::VolumeMode::kBlock) return false;
    }
  }
  ++m_boot_attempts;
  auto why = *m_hang;
  FCVM_LOG(kWarn, "monitor", "the guest kernel hung during its first boot ({}): booting again",
           why);
  m_timings.mark("boot_retry", why);
  auto root_disk = vmm::backend_traits(m_vm->backend->name());
  m_vm.reset();  // the VMM, the network and the helpers go
  if (root_disk) ::unlink((m_rec.dir + "/" + (*root_disk)->root_disk_file).c_str());
  (void)::rename((m_rec.dir + "/console.log").c_str(), (m_rec.dir + "/console.1.log").c_str());
  if (m_control) {
    for (auto& c : m_control->clients()) {
      if (c.guest_stream == 0) continue;
      reply(c, control::Failure{Error(ErrorCode::kSystem, "the guest rebooted: " + why)});
      c.guest_stream = 0;
    }
  }
  m_phase = Phase::kSettingUp;
  m_agent_decoder = {};
  m_channel_open = m_hello = m_plan_pending = m_gate_settled = m_reconnect = false;
  m_gate.reset();
  m_probe_stream = m_sync_stream = 0;
  m_next_stream = 1;
  m_poweroff_deadline.reset();
  m_exit_code.reset();
  m_error.reset();
  m_sync_exit.reset();
  m_hang.reset();
  m_attach_deadline = Clock::now() + k_attach_timeout;
  m_console.restart();
  publish(EventType::kStarting, "booting again: the guest kernel hung: " + why);
  return true;
}

void Monitor::gate_passed() {
  if (m_ready) return;
  m_timings.mark("ready", m_gate->mode_name());
  if (!save_snapshot_on_ready()) return;
  m_rec.status = m_stop_deadline ? state::VmStatus::kStopping : state::VmStatus::kRunning;
  save();
  publish(EventType::kReady, m_gate->mode_name());
  report_ready("ok");
}

// Acts once on what the gate runner decided.
void Monitor::on_gate_verdict() {
  using V = readiness::GateRunner::Verdict;
  auto verdict = m_gate->verdict();
  if (verdict == V::kPending || m_gate_settled) return;
  m_gate_settled = true;
  if (verdict == V::kPassed) {
    if (m_exit_code) {
      report_ready("ok");  // it ran and ended before it was reported: nothing to snapshot
    } else {
      gate_passed();
    }
    return;
  }
  if (m_ready) return;
  if (m_exit_code) {
    record_error(m_gate->failure());  // the container ended first; the guest powers off
    return;
  }
  if (m_vm->options.keep_on_failure) {
    report_ready("error: " + m_gate->failure().to_string() +
                 " (the VM is kept: --keep-on-failure)");
    return;
  }
  record_error(m_gate->failure());
  begin_stop(0);
}

// Runs the next probe of an http or exec gate, and fails the gate at its deadline.
void Monitor::gate_tick() {
  if (m_ready || m_error || m_stop_deadline) return;
  auto probe = m_gate->tick(Clock::now());
  if (probe) {
    proto::Exec exec;
    exec.argv = probe->argv;
    exec.in_vm = probe->in_vm;
    m_probe_stream = start_guest_exec(std::move(exec));
  }
  on_gate_verdict();
}

Result<state::SnapshotRecord> Monitor::snapshot(const std::string& name, bool then_stop) {
  FCVM_TRY_ASSIGN(auto snap,
                  take_snapshot(m_ctx, m_store, m_rec, *m_vm, name, /*resume_after=*/!then_stop));
  m_timings.mark("snapshot_saved", snap.name);
  FCVM_LOG(kInfo, "monitor", "snapshot {} written ({} bytes)", snap.name, snap.size_bytes);
  publish(EventType::kSnapshotCreated, snap.name);
  if (then_stop) {
    // The snapshot holds the running container; this VM has served its purpose.
    m_exit_code = 0;
    m_stop_deadline = Clock::now();
    advance(Phase::kStopping);
    m_vm->backend->kill();
  }
  return snap;
}

bool Monitor::save_snapshot_on_ready() {
  const auto& name = m_vm->options.save_snapshot;
  if (name.empty() || !m_launch.fresh || m_vm->restored) return true;
  auto snap = snapshot(name, m_vm->options.snapshot_then_stop);
  if (snap) return true;
  record_error(Error(snap.error().code(),
                     fmt::format("save snapshot {}: {}", name, snap.error().message()),
                     snap.error().sys_errno()));
  begin_stop(0);
  return false;
}

}  // namespace fcvm::vm
