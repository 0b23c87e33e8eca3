#pragma once
// ControlServer: the monitor's end of DIR/control.sock. It owns the listening socket and every
// client connection; the monitor owns what the clients mean (attached, exec stream, subscriber).
//
// No client can stall the monitor: connections are non-blocking, and what the monitor sends a
// client is queued and written as the socket accepts it. A client that stops reading (a
// `fcvm run | less` left at its prompt, a suspended `fcvm exec`) fills its own queue only:
//   - output frames (stdout/stderr) past k_max_queued_bytes are dropped for that client, counted,
//     and a notice on its stderr says how many bytes it missed once it reads again (the
//     container log on disk is written before any client and stays complete);
//   - a client whose queue still grows past k_max_queued_bytes + k_control_reserve (control
//     messages only) is disconnected.
// Nothing here blocks: poll_fds() says what to wait for, on_poll() does the I/O, and complete
// frames from clients come back through the handler.
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vm {

struct ControlConnection {
  uint64_t id = 0;
  UniqueFd fd;
  agent_proto::Decoder decoder{};
  std::deque<std::string> queue{};  // encoded frames; the first may be partly written
  size_t queued_bytes = 0;
  size_t head_written = 0;     // bytes of queue.front() already written
  uint64_t dropped_bytes = 0;  // output dropped since the last notice
  uint64_t dropped_total = 0;  // output dropped over the connection's life
  bool drop_output = true;     // false: a queue past the bound disconnects instead
  bool closed = false;         // to be removed (peer gone, protocol error, or overflow)
  // A write failed (the peer closed): nothing more is sent, but what it sent before it closed
  // (a detach) is still read, up to its end of file.
  bool write_closed = false;
  // What the monitor made of it.
  bool attach = false;
  bool subscriber = false;
  uint32_t guest_stream = 0;  // the exec stream in the guest this client drives (0: none)
};

class ControlServer {
 public:
  static constexpr size_t k_max_queued_bytes = 4u << 20;
  static constexpr size_t k_control_reserve = 1u << 20;

  using FrameHandler = std::function<void(ControlConnection&, const agent_proto::Frame&)>;

  static Result<ControlServer> listen(const std::string& path);

  // The fds to poll this round: the listening socket, then each client (POLLOUT while its queue
  // is not empty). Appends to `fds` and remembers where its entries start.
  void poll_fds(std::vector<pollfd>& fds);
  // After poll: accepts, reads (calling `on_frame` for each complete frame) and writes.
  void on_poll(const std::vector<pollfd>& fds, const FrameHandler& on_frame);

  // Queues a frame for a client and writes what the socket takes now.
  void send(ControlConnection& c, agent_proto::Kind kind, uint32_t stream,
            std::string_view payload);

  std::list<ControlConnection>& clients() { return m_clients; }
  const std::list<ControlConnection>& clients() const { return m_clients; }
  // Removes closed connections, calling `on_gone` for each first.
  void reap(const std::function<void(ControlConnection&)>& on_gone);
  // Writes what is queued, for at most `timeout` in all (the monitor's last words at teardown).
  void flush(std::chrono::milliseconds timeout);

 private:
  void flush_some(ControlConnection& c);
  void read_some(ControlConnection& c, const FrameHandler& on_frame);

  UniqueFd m_listen;
  std::list<ControlConnection> m_clients;
  uint64_t m_next_id = 1;
  size_t m_first_fd = 0;
  size_t m_polled = 0;  // clients in this round's fds
};

}  // namespace fcvm::vm
