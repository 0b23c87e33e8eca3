// Requests from the monitor's clients (control_proto.hpp), and what a client's leaving means.
#include <fmt/format.h>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/monitor_impl.hpp"
#include "fcvm/vm/options.hpp"

namespace fcvm::vm {

namespace proto = agent_proto;

namespace {
constexpr size_t k_early_stdin_max = 16u << 20;
}  // namespace

void Monitor::reply(ControlConnection& c, const control::Message& m) {
  m_control->send(c, proto::Kind::kControl, 0, control::encode(m));
}

ControlConnection* Monitor::client_for_stream(uint32_t stream) {
  if (!m_control || stream == 0) return nullptr;
  for (auto& c : m_control->clients()) {
    if (!c.closed && c.guest_stream == stream) return &c;
  }
  return nullptr;
}

bool Monitor::attached_client() const {
  if (!m_control) return false;
  for (const auto& c : m_control->clients()) {
    if (c.attach && !c.closed) return true;
  }
  return false;
}

void Monitor::log_dropped_output(const ControlConnection& c) const {
  if (c.dropped_total > 0) {
    FCVM_LOG(kInfo, "monitor", "client {} missed {} bytes of output (slow reader)", c.id,
             c.dropped_total);
  }
}

void Monitor::on_client_gone(ControlConnection& c) {
  if (c.guest_stream != 0) {
    // An exec whose client left loses its process.
    send_agent(proto::encode_signal({c.guest_stream, "KILL"}));
  }
  log_dropped_output(c);
  if (!c.attach) return;
  c.attach = false;
  // A foreground run's VM ends with its client; a detached one's outlives any `fcvm attach`.
  if (!attached_client() && m_launch.wait_attach && m_rec.auto_remove && !m_exit_code) {
    FCVM_LOG(kInfo, "monitor", "the attached client left: stopping the VM");
    begin_stop(m_vm->options.stop_timeout_s);
  }
}

void Monitor::on_request(ControlConnection& c, control::Request request) {
  auto not_running = [&] {
    return control::Failure{Error(ErrorCode::kInvalidInput,
                                  fmt::format("VM {} is not running a container", m_rec.name))};
  };
  bool running = m_phase == Phase::kRunning && m_channel_open;
  auto paused = [&] {
    return control::Failure{
        Error(ErrorCode::kInvalidInput,
              fmt::format("VM {} is paused: fcvm unpause it first", m_rec.name))};
  };
  std::visit(
      [&](auto&& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, control::Attach>) {
          c.attach = true;
          // run -t: the terminal's size, before the plan goes out (it waits for this client).
          if (r.rows != 0 && m_vm->plan.tty) {
            m_vm->plan.rows = r.rows;
            m_vm->plan.cols = r.cols;
          }
          if (r.rows != 0 && m_vm->plan.tty && m_channel_open && !m_plan_pending && m_hello) {
            // A client attaching to a running container: its terminal takes this size.
            send_agent(proto::encode_resize({proto::k_main_stream, r.rows, r.cols}));
          }
          reply(c, control::Ok{m_rec.id, m_rec.name, {}});
          maybe_send_plan();
        } else if constexpr (std::is_same_v<T, control::Detach>) {
          // Not "the attached client left": the container runs on without it.
          c.attach = false;
          m_attach_deadline = Clock::now();  // a container still waiting for it starts now
          FCVM_LOG(kInfo, "monitor", "client {} detached", c.id);
        } else if constexpr (std::is_same_v<T, control::SetExpiry>) {
          if (r.expires_ms == 0) {
            m_rec.expires_ms.reset();
          } else {
            m_rec.expires_ms = r.expires_ms;
          }
          save();
          reply(c, control::Ok{m_rec.id, m_rec.name, {}});
        } else if constexpr (std::is_same_v<T, control::Subscribe>) {
          c.subscriber = true;
          reply(c, control::Ok{m_rec.id, m_rec.name, {}});
        } else if constexpr (std::is_same_v<T, control::Stop>) {
          m_stop_requested = true;
          begin_stop(r.timeout_s.value_or(m_vm->options.stop_timeout_s));
          reply(c, control::Ok{});
        } else if constexpr (std::is_same_v<T, control::Kill>) {
          m_stop_requested = true;
          if (!m_stop_deadline) publish(EventType::kStopping, "kill");
          m_vm->backend->kill();
          reply(c, control::Ok{});
        } else if constexpr (std::is_same_v<T, control::VolumeSync>) {
          if (!running) return reply(c, not_running());
          if (m_paused) return reply(c, paused());
          auto synced = sync_volumes_live();
          if (!synced) return reply(c, control::Failure{synced.error()});
          reply(c, control::Ok{{}, {}, static_cast<int64_t>(*synced)});
        } else if constexpr (std::is_same_v<T, control::Snapshot>) {
          if (!running || !m_ready) return reply(c, not_running());
          if (m_paused) return reply(c, paused());
          auto snap = snapshot(r.name, r.then_stop);
          if (!snap) return reply(c, control::Failure{snap.error()});
          reply(c, control::Ok{snap->id, snap->name, {}});
        } else if constexpr (std::is_same_v<T, control::Exec>) {
          if (!running) return reply(c, not_running());
          if (m_paused) return reply(c, paused());
          if (c.guest_stream != 0) {
            return reply(c, control::Failure{Error(ErrorCode::kInvalidInput,
                                                   "this connection already runs an exec")});
          }
          proto::Exec exec{0, r.argv, r.env, r.workdir, r.user, r.tty, r.in_vm, r.rows, r.cols};
          // An exec's output is not kept anywhere else: a client that stops reading is
          // disconnected (and its process killed) rather than silently missing output.
          c.drop_output = false;
          c.guest_stream = start_guest_exec(std::move(exec));
          publish(EventType::kExecStarted, join(r.argv, " "));
        } else if constexpr (std::is_same_v<T, control::Resize>) {
          if (c.guest_stream != 0) {
            send_agent(proto::encode_resize({c.guest_stream, r.rows, r.cols}));
          } else if (c.attach && m_vm->plan.tty && m_channel_open) {
            send_agent(proto::encode_resize({proto::k_main_stream, r.rows, r.cols}));
          }
        } else if constexpr (std::is_same_v<T, control::Signal>) {
          if (c.guest_stream == 0) return;
          send_agent(proto::encode_signal({c.guest_stream, r.signal}));
        } else if constexpr (std::is_same_v<T, control::ContainerSignal>) {
          if (!running) return reply(c, not_running());
          if (m_paused) return reply(c, paused());
          // Stream 0 is the container's: the agent signals its main process.
          send_agent(proto::encode_signal({proto::k_main_stream, r.signal}));
          publish(EventType::kSignalled, r.signal);
          reply(c, control::Ok{});
        } else if constexpr (std::is_same_v<T, control::Pause>) {
          if (!running) return reply(c, not_running());
          if (m_paused) {
            return reply(
                c, control::Failure{Error(ErrorCode::kInvalidInput,
                                          fmt::format("VM {} is already paused", m_rec.name))});
          }
          if (auto done = m_vm->backend->pause(); !done) {
            return reply(c, control::Failure{done.error().wrap("pause the VMM")});
          }
          m_paused = true;
          m_rec.status = state::VmStatus::kPaused;
          save();
          publish(EventType::kPaused);
          reply(c, control::Ok{m_rec.id, m_rec.name, {}});
        } else if constexpr (std::is_same_v<T, control::Unpause>) {
          if (!m_paused) {
            return reply(c,
                         control::Failure{Error(ErrorCode::kInvalidInput,
                                                fmt::format("VM {} is not paused", m_rec.name))});
          }
          if (auto done = m_vm->backend->resume(); !done) {
            return reply(c, control::Failure{done.error().wrap("resume the VMM")});
          }
          m_paused = false;
          m_rec.status = state::VmStatus::kRunning;
          save();
          publish(EventType::kUnpaused);
          reply(c, control::Ok{m_rec.id, m_rec.name, {}});
        } else if constexpr (std::is_same_v<T, control::Rename>) {
          if (auto valid = validate_name(r.name); !valid) {
            return reply(c, control::Failure{valid.error()});
          }
          auto old = m_rec.name;
          m_rec.name = r.name;
          if (auto saved = m_store.update(m_rec); !saved) {
            m_rec.name = old;
            return reply(c, control::Failure{name_taken(saved.error(), r.name)});
          }
          publish(EventType::kRenamed, old);
          reply(c, control::Ok{m_rec.id, m_rec.name, {}});
        }
      },
      request);
}

void Monitor::on_client_frame(ControlConnection& c, const proto::Frame& frame) {
  switch (frame.kind) {
    case proto::Kind::kControl: {
      auto request = control::decode_request(frame.payload);
      if (!request) {
        reply(c, control::Failure{request.error()});
        return;
      }
      on_request(c, std::move(*request));
      return;
    }
    case proto::Kind::kStdin:
    case proto::Kind::kStdinEof:
      if (c.guest_stream != 0) {
        send_agent_frame(frame.kind, c.guest_stream, frame.payload);
      } else if (c.attach && m_vm->plan.stdin_open) {
        // run -i: the attached client's input is the container's (stream 0); until the plan
        // is out it waits here (bounded: a client that sends more before the boot is cut off).
        if (m_channel_open && !m_plan_pending && m_hello) {
          send_agent_frame(frame.kind, proto::k_main_stream, frame.payload);
        } else if (frame.kind == proto::Kind::kStdinEof) {
          m_early_stdin_eof = true;
        } else if (m_early_stdin.size() + frame.payload.size() <= k_early_stdin_max) {
          m_early_stdin += frame.payload;
        } else {
          FCVM_LOG(kWarn, "monitor",
                   "input before the container started exceeds {} bytes: "
                   "dropping the client",
                   k_early_stdin_max);
          c.closed = true;
        }
      }
      return;
    default:
      c.closed = true;
  }
}

}  // namespace fcvm::vm
