#pragma once
// The fake Firecracker's guest: after InstanceStart (or a snapshot load) a thread plays fc-agent
// behind the hybrid vsock socket. It answers "CONNECT <agent port>\n" with "OK <n>\n" (and hangs
// up on any other port, or while the guest is still "booting"), then speaks the agent protocol:
//   -> hello, <- plan, [FAKE_FC_START_DELAY_MS: the container starting],
//   -> events network_ready, image_ready, container_started, -> ready,
//   -> stdout "fake guest: running <image>\n" + "fake guest: env <env...>\n",
//   [FAKE_FC_RUN_UNTIL_STOP=1: <- stop, exit code 143]  -> exit (code FAKE_FC_EXIT_CODE, default 0)
// and then powers the VM off (the fake process exits). While paused it does nothing.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "fcvm/util/unique_fd.hpp"

namespace fake_fc {

struct GuestOptions {
  uint32_t agent_port = 1024;
  int exit_code = 0;                         // FAKE_FC_EXIT_CODE
  bool run_until_stop = false;               // FAKE_FC_RUN_UNTIL_STOP=1
  std::chrono::milliseconds boot_delay{0};   // FAKE_FC_GUEST_DELAY_MS: agent not listening yet
  std::chrono::milliseconds start_delay{0};  // FAKE_FC_START_DELAY_MS: from plan to first event
};

class FakeGuest {
 public:
  FakeGuest();
  ~FakeGuest();
  FakeGuest(const FakeGuest&) = delete;
  FakeGuest& operator=(const FakeGuest&) = delete;

  // Starts the guest thread; it takes the bound vsock listener.
  void start(fcvm::UniqueFd listener, GuestOptions options, bool paused);
  void set_paused(bool paused);
  bool started() const { return m_thread.joinable(); }
  // Readable (one byte) once the guest has powered off.
  int poweroff_fd() const { return m_poweroff_read.get(); }

 private:
  void run();
  // One agent session on a connected stream; true when the VM should power off afterwards.
  bool session(int fd);
  // Blocks while paused; false when the guest is being torn down.
  bool wait_running();
  // Sleeps for `d`; false when the guest is being torn down meanwhile.
  bool sleep_for(std::chrono::milliseconds d);
  int64_t uptime_ms() const;

  GuestOptions m_options;
  fcvm::UniqueFd m_listener;
  fcvm::UniqueFd m_poweroff_read, m_poweroff_write;
  std::chrono::steady_clock::time_point m_boot_time;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_paused = false;
  bool m_stopping = false;
  std::thread m_thread;
};

}  // namespace fake_fc
