#pragma once
// Wire framing of the host <-> fc-agent channel (docs/agent-protocol.md). Transport-agnostic: a
// byte stream (virtio-serial port, vsock connection, Unix socket in tests).
//
//   frame  = length:u32be kind:u8 stream:u32be payload
//   length = 5 + payload size (kind and stream included), payload <= k_max_payload
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::agent_proto {

inline constexpr uint32_t k_protocol_version = 1;
inline constexpr size_t k_max_payload = 1u << 20;
inline constexpr size_t k_header_size = 9;

enum class Kind : uint8_t {
  kControl = 1,   // payload: one JSON object with a "type" member (messages.hpp)
  kStdout = 2,    // payload: bytes the stream's process wrote to stdout (guest -> host)
  kStderr = 3,    // payload: bytes written to stderr (guest -> host)
  kStdin = 4,     // payload: bytes for the stream's stdin (host -> guest)
  kStdinEof = 5,  // no payload: close the stream's stdin (host -> guest)
};

// Stream 0 is the VM's main container; exec sessions use the ids the host assigns (>= 1).
inline constexpr uint32_t k_main_stream = 0;

struct Frame {
  Kind kind = Kind::kControl;
  uint32_t stream = 0;
  std::string payload;
};

std::string encode(Kind kind, uint32_t stream, std::string_view payload);
inline std::string encode(const Frame& f) { return encode(f.kind, f.stream, f.payload); }

// Incremental decoder: feed bytes as they arrive, pop complete frames.
class Decoder {
 public:
  void feed(std::string_view bytes) { m_buffer.append(bytes); }
  // A complete frame, nullopt when more bytes are needed, an error for a malformed stream.
  Result<std::optional<Frame>> next();
  size_t buffered() const { return m_buffer.size(); }

 private:
  std::string m_buffer;
  size_t m_offset = 0;
};

// Blocking helpers over a file descriptor.
Result<> write_frame(int fd, Kind kind, uint32_t stream, std::string_view payload);
Result<Frame> read_frame(int fd);

}  // namespace fcvm::agent_proto
