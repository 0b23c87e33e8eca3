#pragma once
// ttrpc 1.x framing (containerd/ttrpc channel.go): a 10-byte big-endian header (payload length,
// stream id, message type, flags) and the payload. A payload over 4 MiB is not read into memory:
// the reader skips it and reports the stream as oversized, so that the server can answer it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::ttrpc {

inline constexpr size_t k_header_size = 10;
inline constexpr uint32_t k_max_payload = 4u << 20;

enum class MessageType : uint8_t { kRequest = 1, kResponse = 2, kData = 3 };

struct Frame {
  uint32_t stream_id = 0;
  MessageType type = MessageType::kRequest;
  uint8_t flags = 0;
  std::string payload{};
  bool oversized = false;  // the payload exceeded k_max_payload and was skipped
};

// Header and payload; kInvalidInput for a payload over k_max_payload.
Result<std::string> encode_frame(const Frame& frame);

// Takes bytes as they arrive and yields whole frames.
class FrameReader {
 public:
  void feed(std::string_view bytes);
  // The next complete frame; nullopt until one is.
  std::optional<Frame> next();
  // Bytes held (of an incomplete frame).
  size_t buffered() const { return m_buffer.size(); }

 private:
  std::string m_buffer;
  uint64_t m_skip = 0;  // bytes of an oversized payload still to drop
};

}  // namespace fcvm::ttrpc
