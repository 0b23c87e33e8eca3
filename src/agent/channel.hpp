#pragma once
// Channel: the agent's end of the byte stream to the host, over one of three transports:
//
//   serial  a virtio-serial port (QEMU). The device node stays open for the agent's whole life.
//           The host side is a chardev socket: while no host is connected the port polls
//           POLLHUP, reads return 0 and writes would block, so the channel leaves the fd out of
//           poll and looks again every k_tick_ms. A host that connects clears POLLHUP.
//   vsock   an AF_VSOCK listening socket (Firecracker; the host reaches it through the hybrid
//           vsock Unix socket with "CONNECT <port>"). Each accepted connection is one host
//           session; a newer connection replaces an older one.
//   unix    a Unix socket the agent connects to, retrying (tests on the host).
//
// Outgoing frames are queued and written without blocking when the fd is writable; while no host
// is connected they wait in the queue (the agent stops reading its processes' output when the
// queue is long, so a container that writes much blocks on its pipe until a host reads again).
// A new connection starts with the frame put first by send_first() (the agent's hello); the frame
// that was half-written when the old host left is sent again whole. Nothing here blocks.
//
// Events (connected, disconnected, a received frame) are queued and taken by the agent after
// each loop iteration, so that the agent never runs inside the channel's own I/O.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "agent/logic/cmdline.hpp"
#include "agent/poll_set.hpp"
#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::agent {

// /dev/vportNpM of the virtio-serial port with this name (found through sysfs: no udev here).
Result<std::string> find_serial_port(const std::string& name);

struct ChannelEvent {
  enum class Type { kConnected, kDisconnected, kFrame };
  Type type = Type::kFrame;
  agent_proto::Frame frame{};
};

class Channel {
 public:
  static constexpr int k_tick_ms = 100;
  // Output frames carry at most this much: a virtio-serial write moves at most 32 KiB at once,
  // so a frame of this size reaches the host whole or not at all.
  static constexpr size_t k_max_output_chunk = 16 * 1024;

  explicit Channel(ChannelSpec spec) : m_spec(std::move(spec)) {}

  const ChannelSpec& spec() const { return m_spec; }
  bool connected() const { return m_connected; }

  // Registers this iteration's fds (listening socket; connection for input, and for output when
  // frames are queued).
  void add_to(PollSet& set);
  // Periodic work outside poll: opening the port or connecting, noticing a serial host that
  // (re)connected. Call every iteration; cheap when there is nothing to do.
  void tick();
  // The longest the loop may wait before tick() has work (-1: no deadline from the channel).
  int wait_hint_ms() const;

  void send(agent_proto::Kind kind, uint32_t stream, std::string_view payload);
  void send_control(std::string_view json) { send(agent_proto::Kind::kControl, 0, json); }
  // Puts a control frame before everything queued but a half-sent one (hello of a connection).
  void send_control_first(std::string_view json);
  size_t queued_bytes() const { return m_queued_bytes; }
  bool flushed() const { return m_outbox.empty(); }

  std::vector<ChannelEvent> take_events();

 private:
  void try_open();
  void on_ready(short revents);
  void on_accept();
  void read_input();
  void flush();
  void became_connected();
  // Drops the current host (reason for the console); close_fd also closes the connection.
  void lost_host(std::string_view reason, bool close_fd);

  ChannelSpec m_spec;
  UniqueFd m_fd;         // serial port, or the vsock/unix connection
  UniqueFd m_listen_fd;  // vsock only
  bool m_connected = false;
  bool m_awaiting_first = false;  // a new connection: nothing goes out before send_control_first
  int64_t m_next_attempt_ms = 0;  // uptime when opening/connecting is retried
  int m_failures = 0;             // consecutive open/connect failures (for quieter logging)
  agent_proto::Decoder m_decoder;
  std::deque<std::string> m_outbox;  // encoded frames; the head may be partly written
  size_t m_head_written = 0;
  size_t m_queued_bytes = 0;
  std::vector<ChannelEvent> m_events;
};

}  // namespace fcvm::agent
