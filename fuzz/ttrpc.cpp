// ttrpc bytes from a peer (containerd, or anything that reaches a shim's socket): the frame
// reader in random pieces, then dispatch of each frame to a registry with one method. Every
// request frame gets exactly one response for its stream; nothing crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fcvm/ttrpc/frame.hpp"
#include "fcvm/ttrpc/server.hpp"

using namespace fcvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ttrpc::Registry registry = [] {
    ttrpc::Registry r;
    r.add("containerd.task.v2.Task", "State", [](const ttrpc::Call& c) -> Result<std::string> {
      if (c.payload.empty()) return fail(ErrorCode::kNotFound, "no task");
      return c.payload;
    });
    return r;
  }();
  if (size == 0) return 0;
  size_t piece = 1 + data[0] % 16;  // the first byte: how the bytes arrive
  ttrpc::FrameReader reader;
  for (size_t at = 1; at < size; at += piece) {
    reader.feed(
        std::string_view(reinterpret_cast<const char*>(data) + at, std::min(piece, size - at)));
    while (auto frame = reader.next()) {
      auto answer = registry.dispatch(*frame);
      if (frame->type == ttrpc::MessageType::kRequest || frame->oversized) {
        if (!answer || answer->stream_id != frame->stream_id) std::abort();
        if (!ttrpc::encode_frame(*answer)) std::abort();
      }
    }
  }
  return 0;
}
